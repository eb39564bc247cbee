//! A small XML writer for the query protocols' responses. Elements are written
//! through closures so that nesting in the code mirrors nesting in the output.

use quick_xml::escape::escape;
use std::fmt::Display;

pub const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
pub const ELB_NS: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub struct Xml {
    buf: String,
}

impl Xml {
    fn new() -> Self {
        Xml { buf: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n") }
    }

    /// `<tag>` children `</tag>`.
    pub fn node(&mut self, tag: &str, children: impl FnOnce(&mut Xml)) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        children(self);
        self.close(tag);
        self
    }

    fn node_ns(&mut self, tag: &str, ns: &str, children: impl FnOnce(&mut Xml)) {
        self.buf.push_str(&format!("<{tag} xmlns=\"{ns}\">"));
        children(self);
        self.close(tag);
    }

    fn close(&mut self, tag: &str) {
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
    }

    /// `<tag>text</tag>`, text escaped.
    pub fn leaf(&mut self, tag: &str, text: impl Display) -> &mut Self {
        let text = text.to_string();
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push('>');
        self.buf.push_str(&escape(text.as_str()));
        self.close(tag);
        self
    }

    /// Escaped text directly inside the current element (lists of strings:
    /// `<member>sg-1</member>`).
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.buf.push_str(&escape(text));
        self
    }

    /// A leaf only when there is a value.
    pub fn opt_leaf(&mut self, tag: &str, text: Option<impl Display>) -> &mut Self {
        if let Some(text) = text {
            self.leaf(tag, text);
        }
        self
    }

    /// `<tag/>`: how the services write empty lists.
    pub fn empty(&mut self, tag: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(tag);
        self.buf.push_str("/>");
        self
    }

    /// A list: `<tag><item>..</item>...</tag>` (or `<tag/>` when empty).
    pub fn list<T>(
        &mut self,
        tag: &str,
        item_tag: &str,
        items: impl IntoIterator<Item = T>,
        mut write: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return self.empty(tag);
        }
        self.node(tag, |x| {
            for item in items {
                x.node(item_tag, |x| write(x, item));
            }
        })
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

/// EC2's envelope: `<{Op}Response xmlns=..><requestId/>..payload..</{Op}Response>`.
pub fn ec2_response(op: &str, request_id: &str, payload: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml::new();
    x.node_ns(&format!("{op}Response"), EC2_NS, |x| {
        x.leaf("requestId", request_id);
        payload(x);
    });
    x.finish()
}

/// EC2's error envelope (no namespace, `RequestID` spelled with a capital D).
pub fn ec2_error(code: &str, message: &str, request_id: &str) -> String {
    let mut x = Xml::new();
    x.node("Response", |x| {
        x.node("Errors", |x| {
            x.node("Error", |x| {
                x.leaf("Code", code).leaf("Message", message);
            });
        });
        x.leaf("RequestID", request_id);
    });
    x.finish()
}

/// The awsQuery envelope (ELBv2, STS): `{Op}Result` must be the first child.
pub fn query_response(op: &str, ns: &str, request_id: &str, result: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml::new();
    x.node_ns(&format!("{op}Response"), ns, |x| {
        x.node(&format!("{op}Result"), result);
        x.node("ResponseMetadata", |x| {
            x.leaf("RequestId", request_id);
        });
    });
    x.finish()
}

/// The awsQuery error envelope; `Type` is Sender for 4xx and Receiver for 5xx.
pub fn query_error(ns: &str, status: u16, code: &str, message: &str, request_id: &str) -> String {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let mut x = Xml::new();
    x.node_ns("ErrorResponse", ns, |x| {
        x.node("Error", |x| {
            x.leaf("Type", kind).leaf("Code", code).leaf("Message", message);
        });
        x.leaf("RequestId", request_id);
    });
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_envelope_has_request_id_first_and_namespace() {
        let body = ec2_response("CreateVpc", "rid-1", |x| {
            x.node("vpc", |x| {
                x.leaf("vpcId", "vpc-1").empty("tagSet");
            });
        });
        assert!(body.contains(
            "<CreateVpcResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>rid-1</requestId><vpc><vpcId>vpc-1</vpcId><tagSet/></vpc></CreateVpcResponse>"
        ));
    }

    #[test]
    fn query_envelope_puts_result_first() {
        let body = query_response("DescribeTags", ELB_NS, "r", |_| {});
        let root = body.split_once('\n').map(|(_, b)| b).unwrap_or_default();
        assert_eq!(
            root,
            "<DescribeTagsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTagsResult></DescribeTagsResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeTagsResponse>"
        );
    }

    #[test]
    fn text_is_escaped_and_empty_lists_are_self_closing() {
        let body = ec2_response("X", "r", |x| {
            x.leaf("description", "a<b & \"c\"");
            x.list("groupSet", "item", Vec::<&str>::new(), |x, g| {
                x.leaf("groupId", g);
            });
            x.list("tagSet", "item", [("k", "v")], |x, (k, v)| {
                x.leaf("key", k).leaf("value", v);
            });
        });
        assert!(body.contains("<description>a&lt;b &amp; &quot;c&quot;</description>"));
        assert!(body.contains("<groupSet/>"));
        assert!(body.contains("<tagSet><item><key>k</key><value>v</value></item></tagSet>"));
    }

    #[test]
    fn error_envelopes() {
        let e = ec2_error("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist", "r");
        assert!(e.contains("<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID &apos;vpc-1&apos; does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"));
        let q = query_error(ELB_NS, 400, "LoadBalancerNotFound", "m", "r");
        assert!(q.contains("<Error><Type>Sender</Type><Code>LoadBalancerNotFound</Code>"));
        assert!(query_error(ELB_NS, 503, "ServiceUnavailable", "m", "r").contains("<Type>Receiver</Type>"));
    }
}
