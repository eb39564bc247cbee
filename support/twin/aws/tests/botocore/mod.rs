//! Checks a response the endpoint rendered against the service model botocore
//! ships (the models the aws CLI v1 itself parses with; aws-sdk-rust is
//! generated from the same Smithy models). The model is the oracle: every
//! element or key must be a member of the operation's output shape, required
//! members must be there, enums, numbers, booleans and timestamps must read as
//! the model's types, and errors must come in the protocol's envelope with a
//! code the model lists for the operation (or one every operation may answer).
//!
//! Protocol facts, as botocore's own parsers apply them (botocore/parsers.py:
//! `QueryParser`, `EC2QueryParser`, `BaseXMLResponseParser`, `BaseJSONParser`,
//! `RestJSONParser`):
//! - query (ELBv2, STS): `<{Op}Response xmlns=metadata.xmlNamespace>` holding
//!   the operation's `resultWrapper` element, then `ResponseMetadata/RequestId`;
//!   errors `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`;
//! - ec2: the output members directly under `<{Op}Response>`, next to
//!   `requestId`; errors `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`;
//! - both XML protocols: a member's element is its `locationName` (else its
//!   name); list items are the list member's `locationName` (else `member`),
//!   repeated directly in the parent when `flattened`; maps are `entry` with
//!   `key`/`value`; timestamps ISO 8601 unless `timestampFormat` says otherwise;
//! - rest-json: body keys are `locationName` (else the member name), members
//!   bound to a header, query or URI are not in the body, timestamps are epoch
//!   seconds (JSON numbers); errors name their code in `x-amzn-ErrorType`
//!   (or `__type`) and carry the error shape's members in the body.

use base64::Engine;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The services of the twin's endpoint: (botocore service name, API version).
pub const SERVICES: &[(&str, &str)] =
    &[("ec2", "2016-11-15"), ("elbv2", "2015-12-01"), ("sts", "2011-06-15"), ("eks", "2017-11-01")];

/// Errors any operation of these services may answer, though no operation
/// lists them: AWS's "Common Errors" pages (e.g.
/// https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/CommonErrors.html,
/// https://docs.aws.amazon.com/eks/latest/APIReference/CommonErrors.html) and the
/// query-parameter and signature codes of the same pages' older editions (the
/// EC2 API Reference's "Common client error codes" still lists them). Throttling
/// and transient codes come from botocore itself (see `LOADER`).
const COMMON_ERRORS: &[&str] = &[
    "AccessDeniedException",
    "IncompleteSignature",
    "InternalFailure",
    "InvalidAction",
    "InvalidClientTokenId",
    "InvalidParameterCombination",
    "InvalidParameterValue",
    "InvalidQueryParameter",
    "MalformedQueryString",
    "MissingAction",
    "MissingAuthenticationToken",
    "MissingParameter",
    "NotAuthorized",
    "OptInRequired",
    "RequestExpired",
    "ServiceUnavailable",
    "SignatureDoesNotMatch",
    "ThrottlingException",
    "ValidationError",
];

/// Loads the models through botocore's own loader (it reads service-2.json
/// or service-2.json.gz and applies the sdk-extras, as the aws CLI does), and
/// the error codes botocore retries on every operation: retries/standard.py
/// (`ThrottledRetryableChecker`, `TransientRetryableChecker`) and data/_retry.json.
const LOADER: &str = r#"
import json, os, sys
try:
    import botocore, botocore.loaders
    from botocore.retries import standard
except ImportError as e:
    sys.exit("python3 cannot import botocore (%s): scripts/test installs it with the aws CLI ('awscli>=1.45,<2')" % e)
loader = botocore.loaders.Loader()
data = os.path.join(os.path.dirname(botocore.__file__), "data")
out = {"version": botocore.__version__, "services": {}}
for svc, ver in json.loads(sys.argv[1]):
    base = os.path.join(data, svc, ver, "service-2.json")
    path = base if os.path.exists(base) else base + ".gz"
    if not os.path.exists(path):
        sys.exit("botocore %s has no model %s[.gz]" % (botocore.__version__, base))
    out["services"][svc] = {"path": path, "model": loader.load_service_model(svc, "service-2", api_version=ver)}
codes = set(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
codes |= set(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES)
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "service_error_code":
                codes.add(x)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(loader.load_data("_retry"))
out["retry_codes"] = sorted(codes)
json.dump(out, sys.stdout)
"#;

pub struct Botocore {
    pub version: String,
    pub services: BTreeMap<String, ServiceModel>,
    common: BTreeSet<String>,
}

pub struct ServiceModel {
    pub name: String,
    /// The model file botocore read.
    pub path: String,
    model: Value,
}

/// The models, loaded once per test binary. Panics (fails the test) with
/// the reason when python3 or botocore's models are not there: the check must
/// not pass by skipping.
pub fn botocore() -> &'static Botocore {
    static MODELS: OnceLock<Botocore> = OnceLock::new();
    MODELS.get_or_init(|| Botocore::load().unwrap_or_else(|e| panic!("botocore's service models are needed: {e}")))
}

impl Botocore {
    fn load() -> Result<Botocore, String> {
        let services = serde_json::to_string(SERVICES).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("python3")
            .args(["-c", LOADER, &services])
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        if !out.status.success() {
            return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("the loader's output: {e}"))?;
        let mut common: BTreeSet<String> = COMMON_ERRORS.iter().map(|s| s.to_string()).collect();
        common.extend(v["retry_codes"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_string)));
        let services = v["services"]
            .as_object()
            .ok_or("no services in the loader's output")?
            .iter()
            .map(|(name, s)| {
                let model = ServiceModel {
                    name: name.clone(),
                    path: s["path"].as_str().unwrap_or_default().to_string(),
                    model: s["model"].clone(),
                };
                (name.clone(), model)
            })
            .collect();
        Ok(Botocore { version: v["version"].as_str().unwrap_or("?").to_string(), services, common })
    }

    pub fn service(&self, name: &str) -> &ServiceModel {
        self.services.get(name).unwrap_or_else(|| panic!("no botocore model loaded for {name}"))
    }

    /// Every way `response` disagrees with the model of `service`'s `op`
    /// (empty: it agrees). A status of 300 or more is read as an error.
    pub fn check(&self, service: &str, op: &str, response: &Response) -> Vec<String> {
        let model = self.service(service);
        let mut c = Checker { m: model, proto: model.protocol(), problems: Vec::new() };
        match model.operation(op) {
            None => c.problems.push(format!("{service} has no operation {op} in botocore's model")),
            Some(operation) if response.status >= 300 => c.error(operation, response, &self.common),
            Some(operation) => c.success(op, operation, response),
        }
        c.problems.into_iter().map(|p| format!("{service} {op}: {p}")).collect()
    }
}

impl Botocore {
    /// A query-protocol answer rendered as JSON, as STS gives it to a client
    /// that asks for `application/json` (aws-iam-authenticator, pkg/token/token.go:
    /// `{"{Op}Response":{"{Op}Result":{..members..},"ResponseMetadata":{"RequestId":..}}}`).
    pub fn check_query_json(&self, service: &str, op: &str, r: &Response) -> Vec<String> {
        let model = self.service(service);
        let mut c = Checker { m: model, proto: model.protocol(), problems: Vec::new() };
        let output = model.operation(op).and_then(|o| o.get("output"));
        let wrapper = output.and_then(|o| o["resultWrapper"].as_str());
        match (serde_json::from_str::<Value>(&r.body), output, wrapper) {
            _ if r.status != 200 => c.fail("status", format!("{} for a success", r.status)),
            (Err(e), _, _) => c.fail("body", format!("not JSON ({e})")),
            (Ok(body), Some(out), Some(wrapper)) => {
                let root = format!("{op}Response");
                let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
                if keys(&body) != [root.clone()] {
                    c.fail("$", format!("keys {:?}, expected [{root:?}]", keys(&body)));
                }
                let inner = &body[&root];
                let mut got = keys(inner);
                got.sort();
                let mut want = vec![wrapper.to_string(), "ResponseMetadata".to_string()];
                want.sort();
                if got != want {
                    c.fail(&format!("$.{root}"), format!("keys {got:?}, expected {want:?}"));
                }
                if let Some(result) = inner[wrapper].as_object() {
                    let m = c.member(out);
                    c.json_object(&m, result, &format!("$.{root}.{wrapper}"), &[]);
                }
                if keys(&inner["ResponseMetadata"]) != ["RequestId"] {
                    c.fail(&format!("$.{root}.ResponseMetadata"), "only RequestId is expected");
                }
            }
            (Ok(_), _, _) => c.fail(op, "not a query-protocol operation with a result"),
        }
        c.problems.into_iter().map(|p| format!("{service} {op} (JSON): {p}")).collect()
    }
}

/// One HTTP answer as the endpoint rendered it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Ec2,
    Query,
    RestJson,
}

impl ServiceModel {
    fn protocol(&self) -> Proto {
        match self.model["metadata"]["protocol"].as_str() {
            Some("ec2") => Proto::Ec2,
            Some("query") => Proto::Query,
            Some("rest-json") => Proto::RestJson,
            other => panic!("{}: protocol {other:?} is not one the twin speaks", self.name),
        }
    }

    fn operation(&self, op: &str) -> Option<&Value> {
        self.model["operations"].get(op)
    }

    fn shape(&self, name: &str) -> &Value {
        &self.model["shapes"][name]
    }

    fn namespace(&self) -> Option<&str> {
        self.model["metadata"]["xmlNamespace"].as_str()
    }

    /// The service's error shapes by wire code (`error.code`, else the shape name).
    fn error_shape_by_code(&self, code: &str) -> Option<&str> {
        self.model["shapes"].as_object()?.iter().find_map(|(name, s)| {
            let is_error = s["exception"].as_bool() == Some(true);
            let wire = s["error"]["code"].as_str().unwrap_or(name);
            (is_error && wire == code).then_some(name.as_str())
        })
    }
}

/// The traits of a reference that adds none (an error shape named by its code).
static NO_TRAITS: Value = Value::Null;

/// A member reference merged with its target shape's traits (the member's win),
/// as botocore's model.py resolves them.
struct Member<'a> {
    shape_name: &'a str,
    shape: &'a Value,
    reference: &'a Value,
}

impl<'a> Member<'a> {
    fn trait_(&self, key: &str) -> Option<&'a Value> {
        self.reference.get(key).or_else(|| self.shape.get(key))
    }

    fn kind(&self) -> &'a str {
        self.shape["type"].as_str().unwrap_or("?")
    }

    fn flattened(&self) -> bool {
        self.trait_("flattened").and_then(Value::as_bool) == Some(true)
    }

    fn location_name(&self) -> Option<&'a str> {
        self.reference.get("locationName").and_then(Value::as_str)
    }

    /// Bound to a header, the query, the URI or the status code: not in the body.
    fn outside_body(&self) -> bool {
        self.reference.get("location").is_some()
    }
}

struct Checker<'a> {
    m: &'a ServiceModel,
    proto: Proto,
    problems: Vec<String>,
}

/// A parsed XML element (namespace prefixes dropped, as botocore drops them).
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub xmlns: Option<String>,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    fn child(&self, name: &str) -> Vec<&Node> {
        self.children.iter().filter(|c| c.name == name).collect()
    }
}

pub fn parse_xml(body: &str) -> Result<Node, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Node {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let xmlns = e
            .attributes()
            .flatten()
            .find(|a| a.key.as_ref() == b"xmlns")
            .map(|a| String::from_utf8_lossy(&a.value).into_owned());
        Node { name, xmlns, ..Node::default() }
    };
    loop {
        let event = reader.read_event().map_err(|e| format!("not XML: {e}"))?;
        let done = |node: Node, stack: &mut Vec<Node>, root: &mut Option<Node>| -> Result<(), String> {
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None if root.is_none() => *root = Some(node),
                None => return Err("more than one root element".into()),
            }
            Ok(())
        };
        match event {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => done(open(&e), &mut stack, &mut root)?,
            Event::End(_) => {
                let node = stack.pop().ok_or("an end tag without a start")?;
                done(node, &mut stack, &mut root)?;
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => match r.decode().map_err(|e| e.to_string())?.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                stack.last_mut().ok_or("an entity outside the root element")?.text.push_str(&resolved);
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| e.to_string())?;
                stack.last_mut().ok_or("CDATA outside the root element")?.text.push_str(&text);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("unclosed elements".into());
    }
    root.ok_or_else(|| "no root element".to_string())
}

impl<'a> Checker<'a> {
    fn fail(&mut self, path: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {what}"));
    }

    fn member(&self, reference: &'a Value) -> Member<'a> {
        let shape_name = reference["shape"].as_str().unwrap_or("?");
        Member { shape_name, shape: self.m.shape(shape_name), reference }
    }

    fn success(&mut self, op: &str, operation: &'a Value, r: &Response) {
        let output = operation.get("output");
        match self.proto {
            Proto::RestJson => {
                let expected = operation["http"]["responseCode"].as_u64().unwrap_or(200);
                if u64::from(r.status) != expected {
                    self.fail("status", format!("{} where the model says {expected}", r.status));
                }
                let body: Value = match serde_json::from_str(&r.body) {
                    Ok(v) => v,
                    Err(_) if r.body.is_empty() && output.is_none() => return,
                    Err(e) => return self.fail("body", format!("not JSON ({e})")),
                };
                match output {
                    Some(out) => self.json_value(&self.member(out), &body, "$"),
                    None if body == Value::Object(Map::new()) => {}
                    None => self.fail("$", "a body for an operation with no output"),
                }
            }
            Proto::Ec2 | Proto::Query => {
                if r.status != 200 {
                    self.fail("status", format!("{} for a success", r.status));
                }
                let root = match parse_xml(&r.body) {
                    Ok(root) => root,
                    Err(e) => return self.fail("body", e),
                };
                let root_name = format!("{op}Response");
                let path = format!("/{}", root.name);
                if root.name != root_name {
                    self.fail(&path, format!("the root element is <{}>, not <{root_name}>", root.name));
                }
                self.check_namespace(&root, &path);
                if self.proto == Proto::Ec2 {
                    self.ec2_body(op, output, &root, &path);
                } else {
                    self.query_body(output, &root, &path);
                }
            }
        }
    }

    fn check_namespace(&mut self, root: &Node, path: &str) {
        // EC2's model names the namespace without the trailing slash its answers carry.
        let want = self.m.namespace().map(|n| n.trim_end_matches('/'));
        let got = root.xmlns.as_deref().map(|n| n.trim_end_matches('/'));
        if want.is_some() && got != want {
            self.fail(path, format!("xmlns {got:?}, the model's is {want:?}"));
        }
    }

    fn ec2_body(&mut self, op: &str, output: Option<&'a Value>, root: &Node, path: &str) {
        // botocore's EC2QueryParser reads the request id from <requestId>.
        let ids = root.child("requestId");
        if ids.len() != 1 || ids[0].text.trim().is_empty() {
            self.fail(path, "exactly one non-empty <requestId> is expected");
        }
        let rest = Node {
            name: root.name.clone(),
            children: root.children.iter().filter(|c| c.name != "requestId").cloned().collect(),
            ..Node::default()
        };
        match output {
            Some(out) => {
                let member = self.member(out);
                self.xml_structure(&member, &rest, path);
            }
            None => {
                // An operation without an output shape still answers `return`
                // (boolean) next to requestId: EC2 API Reference, e.g. DeleteVpc
                // "Response Elements: requestId, return"
                // (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteVpc.html).
                for child in &rest.children {
                    let p = format!("{path}/{}", child.name);
                    if child.name != "return" || rest.child("return").len() > 1 {
                        self.fail(
                            &p,
                            format!("{op} has no output shape: only <requestId> and one <return> may be sent"),
                        );
                    } else if !child.children.is_empty() || !["true", "false"].contains(&child.text.trim()) {
                        self.fail(&p, "<return> must be a boolean");
                    }
                }
            }
        }
    }

    fn query_body(&mut self, output: Option<&'a Value>, root: &Node, path: &str) {
        let wrapper = output.and_then(|o| o["resultWrapper"].as_str());
        let mut expected: Vec<&str> = wrapper.into_iter().collect();
        expected.push("ResponseMetadata");
        let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        if names != expected {
            self.fail(path, format!("children {names:?}, expected {expected:?}"));
        }
        if let (Some(out), Some(wrapper)) = (output, wrapper) {
            if let Some(result) = root.child(wrapper).first() {
                let member = self.member(out);
                self.xml_structure(&member, result, &format!("{path}/{wrapper}"));
            }
        }
        if let Some(meta) = root.child("ResponseMetadata").first() {
            let ids: Vec<&str> = meta.children.iter().map(|c| c.name.as_str()).collect();
            if ids != ["RequestId"] || meta.children[0].text.trim().is_empty() {
                self.fail(&format!("{path}/ResponseMetadata"), "only a non-empty <RequestId> is expected");
            }
        }
    }

    /// The element name of `member` inside its structure (botocore
    /// `_member_key_name`: a flattened list takes its member's locationName).
    fn xml_name(&self, name: &'a str, member: &Member<'a>) -> &'a str {
        if member.kind() == "list" && member.flattened() {
            if let Some(item) = member.shape["member"]["locationName"].as_str() {
                return item;
            }
        }
        member.location_name().unwrap_or(name)
    }

    fn xml_structure(&mut self, member: &Member<'a>, node: &Node, path: &str) {
        if member.kind() != "structure" {
            return self.fail(path, format!("{} is a {}, not a structure", member.shape_name, member.kind()));
        }
        if !node.text.trim().is_empty() {
            self.fail(path, format!("text {:?} inside structure {}", node.text.trim(), member.shape_name));
        }
        let mut by_xml: BTreeMap<&str, (&str, Member<'a>)> = BTreeMap::new();
        let shape_members = member.shape["members"].as_object();
        for (name, reference) in shape_members.into_iter().flatten() {
            let m = self.member(reference);
            if m.outside_body() {
                continue;
            }
            by_xml.insert(self.xml_name(name, &m), (name.as_str(), m));
        }
        let mut seen: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        for child in &node.children {
            match by_xml.get_key_value(child.name.as_str()) {
                Some((xml, _)) => seen.entry(*xml).or_default().push(child),
                None => self.fail(
                    &format!("{path}/{}", child.name),
                    format!("no member of {} is sent as <{}>", member.shape_name, child.name),
                ),
            }
        }
        for (xml, nodes) in &seen {
            let (_, m) = &by_xml[xml];
            let p = format!("{path}/{xml}");
            if m.kind() == "list" && m.flattened() {
                for (i, n) in nodes.iter().enumerate() {
                    let item = self.member(&m.shape["member"]);
                    self.xml_value(&item, n, &format!("{p}[{i}]"));
                }
            } else if nodes.len() > 1 {
                self.fail(&p, format!("sent {} times", nodes.len()));
            } else {
                self.xml_value(m, nodes[0], &p);
            }
        }
        for required in member.shape["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let Some(reference) = member.shape["members"].get(required) else { continue };
            let m = self.member(reference);
            let xml = self.xml_name(required, &m);
            if !seen.contains_key(xml) {
                self.fail(path, format!("required member {required} (<{xml}>) of {} is missing", member.shape_name));
            }
        }
    }

    fn xml_value(&mut self, member: &Member<'a>, node: &Node, path: &str) {
        match member.kind() {
            "structure" => self.xml_structure(member, node, path),
            "list" => {
                let item = self.member(&member.shape["member"]);
                let item_name = item.location_name().unwrap_or("member");
                if !node.text.trim().is_empty() {
                    self.fail(path, "text inside a list");
                }
                for (i, child) in node.children.iter().enumerate() {
                    let p = format!("{path}/{}[{i}]", child.name);
                    if child.name != item_name {
                        self.fail(&p, format!("list {} holds <{item_name}> items", member.shape_name));
                    } else {
                        self.xml_value(&item, child, &p);
                    }
                }
            }
            "map" => {
                let key = self.member(&member.shape["key"]);
                let value = self.member(&member.shape["value"]);
                let key_name = key.location_name().unwrap_or("key");
                let value_name = value.location_name().unwrap_or("value");
                for (i, entry) in node.children.iter().enumerate() {
                    let p = format!("{path}/{}[{i}]", entry.name);
                    if entry.name != "entry" {
                        self.fail(&p, "map entries are <entry>");
                        continue;
                    }
                    let names: Vec<&str> = entry.children.iter().map(|c| c.name.as_str()).collect();
                    if names.len() != 2 || !names.contains(&key_name) || !names.contains(&value_name) {
                        self.fail(&p, format!("an entry has one <{key_name}> and one <{value_name}>, not {names:?}"));
                        continue;
                    }
                    for c in &entry.children {
                        let m = if c.name == key_name { &key } else { &value };
                        self.xml_value(m, c, &format!("{p}/{}", c.name));
                    }
                }
            }
            _ => {
                if !node.children.is_empty() {
                    return self.fail(path, format!("{} is a {}: no child elements", member.shape_name, member.kind()));
                }
                self.scalar(member, Scalar::Text(&node.text), path);
            }
        }
    }

    fn json_value(&mut self, member: &Member<'a>, v: &Value, path: &str) {
        if v.is_null() {
            return self.fail(path, "null (AWS leaves an absent member out)");
        }
        match member.kind() {
            "structure" => {
                let Some(obj) = v.as_object() else {
                    return self.fail(path, format!("{} must be an object", member.shape_name));
                };
                self.json_object(member, obj, path, &[]);
            }
            "list" => {
                let Some(items) = v.as_array() else {
                    return self.fail(path, format!("{} must be an array", member.shape_name));
                };
                let item = self.member(&member.shape["member"]);
                for (i, x) in items.iter().enumerate() {
                    self.json_value(&item, x, &format!("{path}[{i}]"));
                }
            }
            "map" => {
                let Some(obj) = v.as_object() else {
                    return self.fail(path, format!("{} must be an object", member.shape_name));
                };
                let key = self.member(&member.shape["key"]);
                let value = self.member(&member.shape["value"]);
                for (k, x) in obj {
                    let p = format!("{path}.{k}");
                    self.scalar(&key, Scalar::Json(&Value::String(k.clone())), &p);
                    self.json_value(&value, x, &p);
                }
            }
            _ => self.scalar(member, Scalar::Json(v), path),
        }
    }

    /// A JSON object against a structure; `extra` keys are allowed besides members.
    fn json_object(&mut self, member: &Member<'a>, obj: &Map<String, Value>, path: &str, extra: &[&str]) {
        let mut by_key: BTreeMap<&str, (&str, Member<'a>)> = BTreeMap::new();
        for (name, reference) in member.shape["members"].as_object().into_iter().flatten() {
            let m = self.member(reference);
            if m.outside_body() {
                continue;
            }
            by_key.insert(m.location_name().unwrap_or(name), (name.as_str(), m));
        }
        for (k, x) in obj {
            let p = format!("{path}.{k}");
            match by_key.get(k.as_str()) {
                Some((_, m)) => self.json_value(m, x, &p),
                None if extra.contains(&k.as_str()) => {}
                None => self.fail(&p, format!("no member of {} is sent as {k:?}", member.shape_name)),
            }
        }
        for required in member.shape["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let key = by_key.iter().find(|(_, (n, _))| *n == required).map(|(k, _)| *k).unwrap_or(required);
            if !obj.contains_key(key) {
                self.fail(path, format!("required member {required} of {} is missing", member.shape_name));
            }
        }
    }

    fn timestamp_format(&self, member: &Member<'a>) -> &'a str {
        member.trait_("timestampFormat").and_then(Value::as_str).unwrap_or(match self.proto {
            Proto::RestJson => "unixTimestamp",
            Proto::Ec2 | Proto::Query => "iso8601",
        })
    }

    fn scalar(&mut self, member: &Member<'a>, value: Scalar<'_>, path: &str) {
        let shape = member.shape;
        let kind = member.kind();
        let text = value.text();
        let bad = |what: &str| format!("{:?} is not {what} ({})", value.shown(), member.shape_name);
        match kind {
            "string" => {
                let Some(s) = text else { return self.fail(path, bad("a string")) };
                if let Some(allowed) = shape["enum"].as_array() {
                    if !allowed.iter().any(|a| a.as_str() == Some(s)) {
                        let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                        self.fail(path, format!("{s:?} is not a value of enum {}: {list:?}", member.shape_name));
                    }
                }
                let len = s.chars().count() as i64;
                self.range(shape, len, path, "length");
            }
            "integer" | "long" | "short" | "byte" => {
                let n = match value {
                    Scalar::Text(t) => t.trim().parse::<i64>().ok().filter(|_| t.trim() == t),
                    Scalar::Json(v) => v.as_i64(),
                };
                let Some(n) = n else { return self.fail(path, bad(&format!("an {kind}"))) };
                let limit = match kind {
                    "integer" => i64::from(i32::MIN)..=i64::from(i32::MAX),
                    "short" => i64::from(i16::MIN)..=i64::from(i16::MAX),
                    "byte" => i64::from(i8::MIN)..=i64::from(i8::MAX),
                    _ => i64::MIN..=i64::MAX,
                };
                if !limit.contains(&n) {
                    self.fail(path, bad(&format!("in the range of an {kind}")));
                }
                self.range(shape, n, path, "value");
            }
            "float" | "double" => {
                let ok = match value {
                    Scalar::Text(t) => t.parse::<f64>().is_ok(),
                    Scalar::Json(v) => v.is_number(),
                };
                if !ok {
                    self.fail(path, bad("a number"));
                }
            }
            "boolean" => {
                let ok = match value {
                    Scalar::Text(t) => t == "true" || t == "false",
                    Scalar::Json(v) => v.is_boolean(),
                };
                if !ok {
                    self.fail(path, bad("a boolean"));
                }
            }
            "timestamp" => {
                let format = self.timestamp_format(member);
                let ok = match (format, value) {
                    ("unixTimestamp", Scalar::Json(v)) => v.is_number(),
                    ("unixTimestamp", Scalar::Text(t)) => t.parse::<f64>().is_ok(),
                    ("iso8601", _) => {
                        text.is_some_and(|t| t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok())
                    }
                    ("rfc822", _) => text.is_some_and(|t| chrono::DateTime::parse_from_rfc2822(t).is_ok()),
                    _ => false,
                };
                if !ok {
                    self.fail(path, bad(&format!("a timestamp in the {format} format")));
                }
            }
            "blob" => {
                let ok = text.is_some_and(|t| base64::engine::general_purpose::STANDARD.decode(t).is_ok());
                if !ok {
                    self.fail(path, bad("base64"));
                }
            }
            other => self.fail(path, format!("shape type {other} is not known to this validator")),
        }
    }

    fn range(&mut self, shape: &Value, n: i64, path: &str, what: &str) {
        if let Some(min) = shape["min"].as_i64() {
            if n < min {
                self.fail(path, format!("{what} {n} is below the model's minimum {min}"));
            }
        }
        if let Some(max) = shape["max"].as_i64() {
            if n > max {
                self.fail(path, format!("{what} {n} is above the model's maximum {max}"));
            }
        }
    }

    /// The code must be one the model lists for the operation, or one any
    /// operation may answer; a code the service models takes that shape's
    /// HTTP status. Returns the error shape when the service models the code.
    fn error_code(
        &mut self,
        operation: &'a Value,
        code: &str,
        status: u16,
        common: &BTreeSet<String>,
    ) -> Option<&'a str> {
        let listed: Vec<&str> =
            operation["errors"].as_array().into_iter().flatten().filter_map(|e| e["shape"].as_str()).collect();
        let shape_name = self.m.error_shape_by_code(code);
        let allowed = shape_name.is_some_and(|s| listed.contains(&s)) || common.contains(code);
        // EC2's model lists no errors at all (its codes are documented apart, in
        // the EC2 API Reference "Error codes"), so only the envelope is checked.
        let unchecked = self.proto == Proto::Ec2 && listed.is_empty();
        if !(allowed || unchecked) {
            self.fail(
                "error code",
                format!(
                    "{code:?} is neither an error the model lists for this operation {listed:?} nor a common error"
                ),
            );
        }
        if let Some(name) = shape_name {
            if let Some(want) = self.m.shape(name)["error"]["httpStatusCode"].as_u64() {
                if u64::from(status) != want {
                    self.fail("status", format!("{status} for {code}, whose model ({name}) says {want}"));
                }
            }
        } else if status < 400 {
            self.fail("status", format!("{status} for an error"));
        }
        shape_name
    }

    fn error(&mut self, operation: &'a Value, r: &Response, common: &BTreeSet<String>) {
        match self.proto {
            Proto::RestJson => {
                let header = r.header("x-amzn-errortype").map(|h| h.split(':').next().unwrap_or_default().to_string());
                let body: Value = match serde_json::from_str(&r.body) {
                    Ok(v) => v,
                    Err(e) => return self.fail("body", format!("not JSON ({e})")),
                };
                let Some(obj) = body.as_object() else { return self.fail("body", "not a JSON object") };
                let from_body =
                    obj.get("__type").and_then(Value::as_str).map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
                let code = match (header, from_body) {
                    (Some(h), Some(b)) if h != b => {
                        self.fail("error code", format!("x-amzn-ErrorType {h:?} and __type {b:?} disagree"));
                        h
                    }
                    (Some(h), _) => h,
                    (None, Some(b)) => b,
                    (None, None) => return self.fail("error code", "neither x-amzn-ErrorType nor __type names it"),
                };
                match self.error_code(operation, &code, r.status, common) {
                    Some(shape) => {
                        let m = Member { shape_name: shape, shape: self.m.shape(shape), reference: &NO_TRAITS };
                        self.json_object(&m, obj, "$", &["__type"]);
                    }
                    None => {
                        for k in obj.keys() {
                            if !["message", "Message", "__type"].contains(&k.as_str()) {
                                self.fail(&format!("$.{k}"), "an unmodeled error carries only a message");
                            }
                        }
                    }
                }
            }
            Proto::Query => {
                let root = match parse_xml(&r.body) {
                    Ok(root) => root,
                    Err(e) => return self.fail("body", e),
                };
                let path = format!("/{}", root.name);
                if root.name != "ErrorResponse" {
                    return self.fail(&path, "the root of a query error is <ErrorResponse>");
                }
                self.check_namespace(&root, &path);
                let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
                if names != ["Error", "RequestId"] {
                    self.fail(&path, format!("children {names:?}, expected [\"Error\", \"RequestId\"]"));
                }
                let Some(error) = root.child("Error").into_iter().next() else { return };
                self.query_error(operation, error, r.status, common, &format!("{path}/Error"));
            }
            Proto::Ec2 => {
                let root = match parse_xml(&r.body) {
                    Ok(root) => root,
                    Err(e) => return self.fail("body", e),
                };
                let path = format!("/{}", root.name);
                if root.name != "Response" {
                    return self.fail(&path, "the root of an EC2 error is <Response>");
                }
                let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
                if names != ["Errors", "RequestID"] {
                    self.fail(&path, format!("children {names:?}, expected [\"Errors\", \"RequestID\"]"));
                }
                let Some(errors) = root.child("Errors").into_iter().next() else { return };
                if errors.children.is_empty() {
                    self.fail(&format!("{path}/Errors"), "no <Error>");
                }
                for (i, e) in errors.children.iter().enumerate() {
                    let p = format!("{path}/Errors/{}[{i}]", e.name);
                    if e.name != "Error" {
                        self.fail(&p, "<Errors> holds <Error> items");
                        continue;
                    }
                    let names: Vec<&str> = e.children.iter().map(|c| c.name.as_str()).collect();
                    if names != ["Code", "Message"] {
                        self.fail(&p, format!("children {names:?}, expected [\"Code\", \"Message\"]"));
                    }
                    if let Some(code) = e.child("Code").first() {
                        let code = code.text.clone();
                        self.error_code(operation, &code, r.status, common);
                    }
                }
            }
        }
    }

    fn query_error(&mut self, operation: &'a Value, error: &Node, status: u16, common: &BTreeSet<String>, path: &str) {
        let text = |name: &str| error.child(name).first().map(|n| n.text.clone());
        let Some(code) = text("Code") else { return self.fail(path, "no <Code>") };
        let shape = self.error_code(operation, &code, status, common);
        // Type: Sender for the client's faults, Receiver for the service's
        // (the model's senderFault; 5xx for codes it does not model).
        let sender = match shape {
            Some(s) => self.m.shape(s)["error"]["senderFault"].as_bool().unwrap_or(status < 500),
            None => status < 500,
        };
        let want = if sender { "Sender" } else { "Receiver" };
        if text("Type").as_deref() != Some(want) {
            self.fail(path, format!("<Type> {:?}, expected {want:?}", text("Type")));
        }
        let members: BTreeSet<String> = shape
            .and_then(|s| self.m.shape(s)["members"].as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for child in &error.children {
            let known = ["Type", "Code", "Message"].contains(&child.name.as_str()) || members.contains(&child.name);
            if !known {
                self.fail(&format!("{path}/{}", child.name), "not part of a query error");
            }
            if !child.children.is_empty() {
                self.fail(&format!("{path}/{}", child.name), "no child elements expected");
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Scalar<'v> {
    Text(&'v str),
    Json(&'v Value),
}

impl<'v> Scalar<'v> {
    fn text(&self) -> Option<&'v str> {
        match self {
            Scalar::Text(t) => Some(t),
            Scalar::Json(v) => v.as_str(),
        }
    }

    fn shown(&self) -> String {
        match self {
            Scalar::Text(t) => t.to_string(),
            Scalar::Json(v) => v.to_string(),
        }
    }
}

/// The validator must catch what it exists for: each case breaks one rule of
/// a body that otherwise agrees with the model.
#[cfg(test)]
mod tests {
    use super::*;

    fn xml(body: &str) -> Response {
        Response { status: 200, headers: vec![], body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}") }
    }

    fn problems(service: &str, op: &str, r: &Response) -> Vec<String> {
        botocore().check(service, op, r)
    }

    const ELB: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

    fn load_balancers(member: &str) -> Response {
        xml(&format!(
            "<DescribeLoadBalancersResponse xmlns=\"{ELB}\"><DescribeLoadBalancersResult><LoadBalancers><member>{member}</member></LoadBalancers></DescribeLoadBalancersResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></DescribeLoadBalancersResponse>"
        ))
    }

    const LB: &str = "<LoadBalancerArn>arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/net/ew/0123456789abcdef</LoadBalancerArn><DNSName>ew-0123456789abcdef.elb.us-west-2.amazonaws.com</DNSName><CreatedTime>2026-12-07T01:02:03.456Z</CreatedTime><LoadBalancerName>ew</LoadBalancerName><Scheme>internet-facing</Scheme><State><Code>active</Code></State><Type>network</Type><AvailabilityZones><member><ZoneName>us-west-2a</ZoneName><SubnetId>subnet-1</SubnetId><LoadBalancerAddresses/></member></AvailabilityZones><IpAddressType>ipv4</IpAddressType>";

    #[test]
    fn a_body_that_agrees_passes() {
        assert_eq!(problems("elbv2", "DescribeLoadBalancers", &load_balancers(LB)), Vec::<String>::new());
    }

    #[test]
    fn an_extra_member_fails() {
        let p = problems("elbv2", "DescribeLoadBalancers", &load_balancers(&format!("{LB}<Foo>1</Foo>")));
        assert!(p.len() == 1 && p[0].contains("/LoadBalancers/member[0]/Foo"), "{p:?}");
        // Also one the model knows under another spelling (EC2 style lower camel).
        let p = problems("elbv2", "DescribeLoadBalancers", &load_balancers(&format!("{LB}<vpcId>vpc-1</vpcId>")));
        assert!(p.len() == 1 && p[0].contains("vpcId"), "{p:?}");
    }

    #[test]
    fn a_bad_enum_value_fails() {
        let p = problems("elbv2", "DescribeLoadBalancers", &load_balancers(&LB.replace("<Code>active", "<Code>ready")));
        assert!(p.len() == 1 && p[0].contains("\"ready\" is not a value of enum LoadBalancerStateEnum"), "{p:?}");
    }

    #[test]
    fn a_wrong_timestamp_fails() {
        for bad in ["2026-12-07 01:02:03", "1796605323", "2026-12-07T01:02:03+01:00"] {
            let p = problems(
                "elbv2",
                "DescribeLoadBalancers",
                &load_balancers(&LB.replace("2026-12-07T01:02:03.456Z", bad)),
            );
            assert!(p.len() == 1 && p[0].contains("iso8601"), "{bad}: {p:?}");
        }
        // rest-json wants epoch seconds as a JSON number.
        let cluster = |created: &str| Response {
            status: 200,
            headers: vec![],
            body: format!(r#"{{"cluster":{{"name":"eks-1","createdAt":{created},"status":"ACTIVE"}}}}"#),
        };
        assert_eq!(problems("eks", "DescribeCluster", &cluster("1796605323.456")), Vec::<String>::new());
        let p = problems("eks", "DescribeCluster", &cluster("\"2026-12-07T01:02:03Z\""));
        assert!(p.len() == 1 && p[0].contains("unixTimestamp"), "{p:?}");
    }

    #[test]
    fn a_missing_required_member_fails() {
        // ELBv2's Action requires Type.
        let listeners = |action: &str| {
            xml(&format!(
                "<DescribeListenersResponse xmlns=\"{ELB}\"><DescribeListenersResult><Listeners><member><Port>15443</Port><DefaultActions><member>{action}</member></DefaultActions></member></Listeners></DescribeListenersResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeListenersResponse>"
            ))
        };
        assert_eq!(problems("elbv2", "DescribeListeners", &listeners("<Type>forward</Type>")), Vec::<String>::new());
        let p = problems("elbv2", "DescribeListeners", &listeners("<TargetGroupArn>arn</TargetGroupArn>"));
        assert!(p.len() == 1 && p[0].contains("required member Type"), "{p:?}");
    }

    #[test]
    fn wrong_scalars_lists_and_envelopes_fail() {
        let p = problems("elbv2", "DescribeListeners", &xml(&format!("<DescribeListenersResponse xmlns=\"{ELB}\"><DescribeListenersResult><Listeners><member><Port>x</Port></member></Listeners></DescribeListenersResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeListenersResponse>")));
        assert!(p.len() == 1 && p[0].contains("Port"), "{p:?}");
        // Port is 1..65535 in the model.
        let p = problems("elbv2", "DescribeListeners", &xml(&format!("<DescribeListenersResponse xmlns=\"{ELB}\"><DescribeListenersResult><Listeners><member><Port>0</Port></member></Listeners></DescribeListenersResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeListenersResponse>")));
        assert!(p.len() == 1 && p[0].contains("minimum"), "{p:?}");
        // EC2 lists are <item>s, not <member>s; and no result wrapper.
        let ec2 = |inner: &str| {
            xml(&format!("<DescribeVpcsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>{inner}</DescribeVpcsResponse>"))
        };
        assert_eq!(
            problems(
                "ec2",
                "DescribeVpcs",
                &ec2("<vpcSet><item><vpcId>vpc-1</vpcId><isDefault>false</isDefault></item></vpcSet>")
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("ec2", "DescribeVpcs", &ec2("<vpcSet><member><vpcId>vpc-1</vpcId></member></vpcSet>")).len(),
            1
        );
        assert_eq!(
            problems("ec2", "DescribeVpcs", &ec2("<vpcSet><item><isDefault>no</isDefault></item></vpcSet>")).len(),
            1
        );
        assert_eq!(problems("ec2", "DescribeVpcs", &ec2("<DescribeVpcsResult/>")).len(), 1);
        // The query wrapper is required, and so is the namespace.
        let p = problems("elbv2", "DescribeLoadBalancers", &xml(&format!("<DescribeLoadBalancersResponse xmlns=\"{ELB}\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeLoadBalancersResponse>")));
        assert!(p.len() == 1 && p[0].contains("DescribeLoadBalancersResult"), "{p:?}");
        let p = problems(
            "elbv2",
            "DescribeLoadBalancers",
            &load_balancers(LB).tap(|r| r.body = r.body.replace(ELB, "http://example.com/")),
        );
        assert!(p.len() == 1 && p[0].contains("xmlns"), "{p:?}");
        // An EC2 operation without an output answers `return` and nothing else.
        let delete = |inner: &str| {
            xml(&format!("<DeleteVpcResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>{inner}</DeleteVpcResponse>"))
        };
        assert_eq!(problems("ec2", "DeleteVpc", &delete("<return>true</return>")), Vec::<String>::new());
        assert_eq!(problems("ec2", "DeleteVpc", &delete("<return>true</return><vpcId>vpc-1</vpcId>")).len(), 1);
        // rest-json: unknown keys, nulls, wrong types, the status.
        let json = |body: &str| Response { status: 200, headers: vec![], body: body.to_string() };
        assert_eq!(problems("eks", "ListClusters", &json(r#"{"clusters":["a"],"next":"x"}"#)).len(), 1);
        assert_eq!(problems("eks", "ListClusters", &json(r#"{"clusters":null}"#)).len(), 1);
        assert_eq!(problems("eks", "ListClusters", &json(r#"{"clusters":"a"}"#)).len(), 1);
        assert_eq!(problems("eks", "DescribeCluster", &json(r#"{"cluster":{"status":"RUNNING"}}"#)).len(), 1);
        assert_eq!(problems("eks", "DescribeCluster", &json(r#"{"cluster":{"tags":{"a":1}}}"#)).len(), 1);
        assert_eq!(problems("eks", "ListClusters", &Response { status: 201, ..json(r#"{"clusters":[]}"#) }).len(), 1);
    }

    #[test]
    fn errors_are_checked_against_the_operation_and_the_protocol() {
        let query = |status: u16, kind: &str, code: &str| {
            Response {
            status,
            headers: vec![],
            body: format!("<ErrorResponse xmlns=\"{ELB}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>"),
        }
        };
        assert_eq!(
            problems("elbv2", "DescribeTargetHealth", &query(400, "Sender", "TargetGroupNotFound")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("elbv2", "DescribeTargetHealth", &query(400, "Sender", "Throttling")),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("elbv2", "DescribeTargetHealth", &query(503, "Receiver", "ServiceUnavailable")),
            Vec::<String>::new()
        );
        // A code of the service that this operation does not answer, an unknown
        // code, a status other than the model's, the wrong fault type.
        assert_eq!(problems("elbv2", "DescribeTargetHealth", &query(400, "Sender", "ListenerNotFound")).len(), 1);
        assert_eq!(problems("elbv2", "DescribeTargetHealth", &query(400, "Sender", "NoSuchThing")).len(), 1);
        assert_eq!(problems("elbv2", "DescribeTargetHealth", &query(404, "Sender", "TargetGroupNotFound")).len(), 1);
        assert_eq!(problems("elbv2", "DescribeTargetHealth", &query(400, "Receiver", "TargetGroupNotFound")).len(), 1);
        // EC2's envelope.
        let ec2 = |body: &str| Response { status: 400, headers: vec![], body: body.to_string() };
        assert_eq!(problems("ec2", "DescribeVpcs", &ec2("<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>")), Vec::<String>::new());
        assert_eq!(problems("ec2", "DescribeVpcs", &ec2("<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>m</Message></Error></Errors><RequestId>r</RequestId></Response>")).len(), 1);
        assert_eq!(problems("ec2", "DescribeVpcs", &ec2("<ErrorResponse><Error><Code>X</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>")).len(), 1);
        // rest-json: the header names the code, the body holds the shape's members.
        let eks = |status: u16, code: &str, body: &str| Response {
            status,
            headers: vec![("x-amzn-errortype".into(), code.into())],
            body: body.to_string(),
        };
        assert_eq!(
            problems(
                "eks",
                "DescribeCluster",
                &eks(404, "ResourceNotFoundException", r#"{"message":"m","clusterName":"eks-1"}"#)
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("eks", "DescribeCluster", &eks(400, "ResourceNotFoundException", r#"{"message":"m"}"#)).len(),
            1
        );
        assert_eq!(
            problems(
                "eks",
                "DescribeCluster",
                &eks(404, "ResourceNotFoundException", r#"{"message":"m","reason":"x"}"#)
            )
            .len(),
            1
        );
        assert_eq!(
            problems("eks", "DescribeCluster", &eks(409, "ResourceInUseException", r#"{"message":"m"}"#)).len(),
            1
        );
        // Throttling is answered by every operation, with the status EKS models for it.
        assert_eq!(
            problems("eks", "DescribeCluster", &eks(429, "ThrottlingException", r#"{"message":"m"}"#)),
            Vec::<String>::new()
        );
        assert_eq!(problems("eks", "DescribeCluster", &eks(400, "ThrottlingException", r#"{"message":"m"}"#)).len(), 1);
        assert_eq!(problems("eks", "DescribeCluster", &eks(404, "", r#"{"message":"m"}"#)).len(), 1);
    }

    #[test]
    fn query_answers_in_json_are_checked() {
        let r = |body: String| Response { status: 200, headers: vec![], body };
        let good = r#"{"GetCallerIdentityResponse":{"GetCallerIdentityResult":{"Account":"123456789012","Arn":"arn:aws:iam::123456789012:user/u","UserId":"AIDA"},"ResponseMetadata":{"RequestId":"r"}}}"#;
        let check = |body: String| botocore().check_query_json("sts", "GetCallerIdentity", &r(body));
        assert_eq!(check(good.to_string()), Vec::<String>::new());
        assert_eq!(check(good.replace("\"UserId\"", "\"userId\"")).len(), 1);
        assert_eq!(check(good.replace("\"RequestId\"", "\"requestId\"")).len(), 1);
        assert!(!check(good.replace("GetCallerIdentityResult", "Result")).is_empty());
    }

    trait Tap: Sized {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }

    impl Tap for Response {}
}
