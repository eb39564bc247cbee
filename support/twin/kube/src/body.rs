//! Request bodies in the encodings kube-apiserver reads (JSON, YAML, and
//! protobuf for built-in kinds), and answers in protobuf for clients that
//! prefer it. Every failure is a 400 (or 415/406) Status worded as the
//! apiserver words it (k8s.io/apiserver v0.32.4 pkg/endpoints/handlers).
//!
//! Observed with kubectl 1.32.4 (`-v=8`) against this server: only the typed
//! `kubectl create <kind>` subcommands send protobuf (`Content-Type:
//! application/vnd.kubernetes.protobuf`, `Accept:
//! application/vnd.kubernetes.protobuf,application/json`); get, list, watch,
//! delete, scale and wait ask for JSON.

use http::{header, HeaderValue};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::protobuf::{self, ProtoError};
use crate::server::{Request, Response};

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// What the URL says the body (or the answer) is: apiVersion and kind. Kinds
/// with a message in Kubernetes' protobuf schema also travel as protobuf.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
}

impl Expected<'_> {
    fn protobuf(&self) -> bool {
        protobuf::has_message(self.api_version, self.kind)
    }

    /// negotiation.MediaTypesForSerializer: the legacy codecs offer JSON, YAML
    /// and protobuf; custom resources JSON and YAML.
    fn accepted(&self) -> &'static [&'static str] {
        if self.protobuf() {
            &[JSON, YAML, protobuf::MEDIA_TYPE]
        } else {
            &[JSON, YAML]
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Json,
    Yaml,
    Protobuf,
}

/// negotiation.NegotiateInputSerializerForMediaType: an empty Content-Type is
/// the first supported type (JSON); parameters are ignored; anything else is 415.
fn input_encoding(content_type: &str, expected: &Expected) -> Result<Encoding, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media.as_str() {
        "" | JSON => Ok(Encoding::Json),
        YAML => Ok(Encoding::Yaml),
        protobuf::MEDIA_TYPE if expected.protobuf() => Ok(Encoding::Protobuf),
        _ => Err(unsupported(expected.accepted())),
    }
}

/// negotiation/errors.go `NewUnsupportedMediaTypeError`.
fn unsupported(accepted: &[&str]) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
    )
}

/// negotiation/errors.go `NewNotAcceptableError`.
fn not_acceptable(accepted: &[&str]) -> ApiError {
    ApiError::new(406, "NotAcceptable", format!("only the following media types are accepted: {}", accepted.join(", ")))
}

/// handlers/rest.go `summarizeData`: JSON text or hex, cut at 30 bytes.
fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    let cut = &data[..data.len().min(MAX)];
    let more = if data.len() > MAX { " ..." } else { "" };
    match data.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => format!("{}{more}", cut.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// handlers/rest.go `transformDecodeError`: with the kind the data named, or
/// without one, the summary of the body.
fn decode_error(
    expected: &Expected,
    data_kind: Option<(&str, &str)>,
    err: &dyn std::fmt::Display,
    body: &[u8],
) -> ApiError {
    match data_kind {
        Some((api_version, kind)) if !kind.is_empty() => {
            let version = api_version.rsplit('/').next().unwrap_or_default();
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {}: {err}",
                expected.kind
            ))
        }
        _ => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): {err} ({})",
            expected.kind,
            summarize(body)
        )),
    }
}

/// The object of a create or update body as Kubernetes JSON, whatever its encoding.
pub(crate) fn object(req: &Request, expected: Expected) -> Result<Value, ApiError> {
    let body = &req.body[..];
    let value = match input_encoding(req.header(header::CONTENT_TYPE), &expected)? {
        Encoding::Json => serde_json::from_slice::<Value>(body).map_err(|e| {
            // json/meta.go SimpleMetaFactory.Interpret.
            decode_error(&expected, None, &format!("couldn't get version/kind; json parse error: {e}"), body)
        })?,
        Encoding::Yaml => serde_yaml::from_slice::<Value>(body).map_err(|e| {
            // json.go runs sigs.k8s.io/yaml's YAMLToJSON before anything else.
            decode_error(&expected, None, &format!("error converting YAML to JSON: {e}"), body)
        })?,
        Encoding::Protobuf => {
            let decoded = protobuf::decode(body, (expected.api_version, expected.kind))
                .map_err(|e: ProtoError| decode_error(&expected, e.data_kind(), &e, body))?;
            decoded.object
        }
    };
    match value {
        Value::Object(_) => Ok(value),
        // Go unmarshals the body into a struct: anything else fails in Interpret.
        other => Err(decode_error(
            &expected,
            None,
            &format!(
                "couldn't get version/kind; json parse error: cannot unmarshal {} into an object",
                type_name(&other)
            ),
            body,
        )),
    }
}

/// A body that may be empty (DeleteOptions): `None` when there is none.
pub(crate) fn optional_object(req: &Request, expected: Expected) -> Result<Option<Value>, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    object(req, expected).map(Some)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The answer's encoding, from Accept: protobuf when the client ranks it above
/// every JSON range it accepts (client-go's protobuf clients send
/// `application/vnd.kubernetes.protobuf, */*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    Json,
    Protobuf,
}

/// negotiation.NegotiateOutputMediaType, as far as this server needs it.
/// Protobuf asked for alone, for a kind without a protobuf form, is a 406.
pub(crate) fn output(accept: &str, expected: &Expected) -> Result<Output, ApiError> {
    let mut ranges: Vec<(f32, usize, String)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, range)| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!media.is_empty() && q > 0.0).then_some((q, i, media))
        })
        .collect();
    if ranges.is_empty() {
        return Ok(Output::Json);
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut asked_protobuf = false;
    for (_, _, media) in &ranges {
        match media.as_str() {
            protobuf::MEDIA_TYPE if expected.protobuf() => return Ok(Output::Protobuf),
            protobuf::MEDIA_TYPE => asked_protobuf = true,
            JSON | YAML | "application/*" | "*/*" => return Ok(Output::Json),
            _ => {}
        }
    }
    if asked_protobuf {
        return Err(not_acceptable(expected.accepted()));
    }
    // Other media types (text/html, ...) get JSON, as this server always did.
    Ok(Output::Json)
}

/// Re-encodes a JSON answer as protobuf when its kind has a protobuf form;
/// anything else (Tables, streams, text) passes unchanged.
pub(crate) async fn encode_answer(resp: Response) -> Response {
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == JSON.as_bytes());
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let encoded = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| protobuf::encode(&v));
    match encoded {
        Some(Ok(proto)) => {
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(protobuf::MEDIA_TYPE));
            http::Response::from_parts(parts, crate::server::full_body(proto))
        }
        other => {
            if let Some(Err(e)) = other {
                // The client accepted JSON too (or it would have had a 406): answer that.
                tracing::warn!("answering JSON: the object does not fit its protobuf message: {e}");
            }
            http::Response::from_parts(parts, crate::server::full_body(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM: Expected = Expected { api_version: "v1", kind: "ConfigMap" };
    const GW: Expected = Expected { api_version: "networking.istio.io/v1", kind: "Gateway" };

    #[test]
    fn output_follows_the_clients_ranking() {
        assert_eq!(output("", &CM), Ok(Output::Json));
        assert_eq!(output("application/vnd.kubernetes.protobuf, */*", &CM), Ok(Output::Protobuf));
        assert_eq!(output("application/json, application/vnd.kubernetes.protobuf", &CM), Ok(Output::Json));
        assert_eq!(output("application/vnd.kubernetes.protobuf;q=0.5, application/json", &CM), Ok(Output::Json));
        assert_eq!(output("application/vnd.kubernetes.protobuf, */*", &GW), Ok(Output::Json));
        let e = output("application/vnd.kubernetes.protobuf", &GW).unwrap_err();
        assert_eq!((e.code, e.reason.as_str()), (406, "NotAcceptable"));
        assert_eq!(e.message, "only the following media types are accepted: application/json, application/yaml");
    }

    #[test]
    fn summaries_are_cut_like_the_apiservers() {
        assert_eq!(summarize(b""), "<empty>");
        assert_eq!(summarize(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(summarize(b"k8s"), "6b3873");
        assert_eq!(summarize(&[b'{'; 40]), format!("{} ...", "{".repeat(30)));
    }

    #[test]
    fn content_types() {
        assert_eq!(input_encoding("", &CM), Ok(Encoding::Json));
        assert_eq!(input_encoding("application/json; charset=utf-8", &CM), Ok(Encoding::Json));
        assert_eq!(input_encoding("application/yaml", &CM), Ok(Encoding::Yaml));
        assert_eq!(input_encoding("application/vnd.kubernetes.protobuf", &CM), Ok(Encoding::Protobuf));
        let e = input_encoding("application/vnd.kubernetes.protobuf", &GW).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.ends_with("accepted media types include: application/json, application/yaml"));
        assert_eq!(input_encoding("text/plain", &CM).unwrap_err().code, 415);
    }
}
