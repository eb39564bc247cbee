//! Redaction: evidence and reports never carry a credential. Applied to every
//! piece of evidence, whatever a check put in it.

use serde_json::Value;

const REDACTED: &str = "<redacted>";

/// Keys whose values are credentials wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "token",
    "client-key-data",
    "client-certificate-data",
    "password",
    "ca-key.pem",
    "secret_access_key",
    "SecretAccessKey",
    "AWS_SECRET_ACCESS_KEY",
    "session_token",
];

/// Redact a whole string if it carries a credential (a private key, an EKS
/// token, a bearer header).
pub fn redact_text(s: &str) -> String {
    let markers = ["PRIVATE KEY-----", "k8s-aws-v1.", "Bearer ", "X-Amz-Signature="];
    if markers.iter().any(|m| s.contains(m)) {
        REDACTED.to_string()
    } else {
        s.to_string()
    }
}

/// Redact line by line: a multi-line message (an error chain) keeps its
/// other lines when one carries a credential.
pub fn redact_lines(s: &str) -> String {
    s.lines().map(redact_text).collect::<Vec<_>>().join("\n")
}

pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s)) && !v.is_null() {
                        (k, Value::String(REDACTED.into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::String(s) => Value::String(redact_text(&s)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_replaced_wherever_they_sit() {
        let v = serde_json::json!({
            "users": [{"name": "c", "user": {"token": "abc"}}],
            // Assembled at run time: no key-looking text in the repository.
            "note": format!("-----BEGIN {} KEY-----\nMII...", "PRIVATE"),
            "auth": "k8s-aws-v1.aHR0cHM6Ly9zdHM",
            "kept": "HEALTHY",
            "data": {"ca-key.pem": "x"}
        });
        let r = redact(v);
        assert_eq!(r["users"][0]["user"]["token"], REDACTED);
        assert_eq!(r["note"], REDACTED);
        assert_eq!(r["auth"], REDACTED);
        assert_eq!(r["kept"], "HEALTHY");
        assert_eq!(r["data"]["ca-key.pem"], REDACTED);
    }
}
