//! STS: GetCallerIdentity (signed POST, or the presigned GET inside an EKS
//! token), and the token checks aws-iam-authenticator applies before it calls
//! STS with a token's URL.

use crate::auth::{CallerIdentity, Presigned};
use crate::error::{AwsError, AwsResult};
use crate::query::Params;
use crate::xml::{query_response, STS_NS};
use serde_json::json;
use std::time::{Duration, SystemTime};

/// How long after X-Amz-Date an EKS token is accepted, whatever its X-Amz-Expires.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The query keys aws-iam-authenticator allows in a token URL (compared lower-case).
const TOKEN_QUERY_KEYS: &[&str] = &[
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// STS answers in JSON when asked to (aws-iam-authenticator does), else XML.
pub fn handle(
    params: &Params,
    identity: &CallerIdentity,
    request_id: &str,
    json_wanted: bool,
) -> AwsResult<(String, &'static str)> {
    match params.get("Action").unwrap_or_default() {
        "GetCallerIdentity" if json_wanted => {
            let body = json!({ "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": { "Account": identity.account, "Arn": identity.arn, "UserId": identity.user_id },
                "ResponseMetadata": { "RequestId": request_id },
            }});
            Ok((body.to_string(), "application/json"))
        }
        "GetCallerIdentity" => {
            let body = query_response("GetCallerIdentity", STS_NS, request_id, |x| {
                x.leaf("Arn", &identity.arn).leaf("UserId", &identity.user_id).leaf("Account", &identity.account);
            });
            Ok((body, "text/xml"))
        }
        "" => Err(AwsError::bad("MissingAction", "The request must contain the parameter Action")),
        other => {
            Err(AwsError::bad("InvalidAction", format!("Could not find operation {other} for version 2011-06-15")))
        }
    }
}

/// Whether a presigned request's date is acceptable now: not older than the
/// token lifetime, not from the future beyond the same skew.
pub fn check_token_time(signed_at: SystemTime, now: SystemTime) -> Result<(), String> {
    if now > signed_at + TOKEN_LIFETIME {
        return Err("the token has expired (X-Amz-Date is more than 15 minutes ago)".into());
    }
    if signed_at > now + TOKEN_LIFETIME {
        return Err("X-Amz-Date is in the future".into());
    }
    Ok(())
}

/// A token URL's shape, checked as aws-iam-authenticator does: host and path,
/// only known query keys and each once, the action, the signed cluster
/// header, the expiry bounds and the date. Returns the parsed signature fields.
pub fn check_token_url(
    scheme: &str,
    host: &str,
    path: &str,
    raw_query: &str,
    host_allowed: impl Fn(&str, &str) -> bool,
    now: SystemTime,
) -> Result<Presigned, String> {
    if !host_allowed(scheme, host) {
        return Err(format!("unexpected STS endpoint {scheme}://{host}"));
    }
    if path != "/" {
        return Err(format!("unexpected path {path:?} in the token URL"));
    }
    let mut seen: Vec<String> = Vec::new();
    for (key, _) in form_urlencoded::parse(raw_query.as_bytes()) {
        let key = key.to_ascii_lowercase();
        if !TOKEN_QUERY_KEYS.contains(&key.as_str()) {
            return Err(format!("non-allowlisted query parameter {key:?}"));
        }
        if seen.contains(&key) {
            return Err(format!("query parameter {key:?} appears more than once"));
        }
        seen.push(key);
    }
    let action =
        form_urlencoded::parse(raw_query.as_bytes()).find(|(k, _)| k.eq_ignore_ascii_case("action")).map(|(_, v)| v);
    if action.as_deref() != Some("GetCallerIdentity") {
        return Err("the token URL's Action is not GetCallerIdentity".into());
    }
    let presigned = Presigned::parse(raw_query)?;
    if presigned.scope.service != "sts" {
        return Err("the token is not signed for sts".into());
    }
    if !presigned.signed_headers.iter().any(|h| h == "x-k8s-aws-id") {
        return Err("x-k8s-aws-id is not a signed header".into());
    }
    if presigned.expires > 900 {
        return Err("X-Amz-Expires must be between 0 and 900".into());
    }
    check_token_time(presigned.time, now)?;
    Ok(presigned)
}

/// [`check_token_url`] on a whole URL, for a caller that then asks STS itself
/// (the twin's cluster programs when AWS is another process): `host_allowed`
/// gets the scheme and the lower-case `host[:port]`.
pub fn check_eks_token_url(
    url: &str,
    host_allowed: impl Fn(&str, &str) -> bool,
    now: SystemTime,
) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| "the token URL is not a URL".to_string())?;
    let scheme = uri.scheme_str().ok_or("the token URL has no scheme")?;
    let authority = uri.authority().ok_or("the token URL has no host")?.as_str().to_ascii_lowercase();
    check_token_url(scheme, &authority, uri.path(), uri.query().unwrap_or_default(), host_allowed, now).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261125%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20261125T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=ab";

    fn at(date: &str) -> SystemTime {
        crate::auth::parse_amz_date(date).unwrap()
    }

    fn check(query: &str, now: &str) -> Result<Presigned, String> {
        check_token_url("https", "sts.us-west-2.amazonaws.com", "/", query, |_, _| true, at(now))
    }

    #[test]
    fn shape_checks() {
        assert!(check(Q, "20261125T120500Z").is_ok());
        assert!(check(Q, "20261125T121600Z").unwrap_err().contains("expired"));
        assert!(check(Q, "20261125T114000Z").unwrap_err().contains("future"));
        assert!(check(&format!("{Q}&Extra=1"), "20261125T120000Z").unwrap_err().contains("non-allowlisted"));
        assert!(check(&format!("{Q}&action=GetCallerIdentity"), "20261125T120000Z")
            .unwrap_err()
            .contains("more than once"));
        assert!(check(&Q.replace("GetCallerIdentity", "AssumeRole"), "20261125T120000Z").is_err());
        assert!(check(&Q.replace("host%3Bx-k8s-aws-id", "host"), "20261125T120000Z")
            .unwrap_err()
            .contains("x-k8s-aws-id"));
        assert!(check(&Q.replace("Expires=60", "Expires=901"), "20261125T120000Z").is_err());
        assert!(check_token_url("https", "evil.example", "/", Q, |_, h| h.starts_with("sts."), at("20261125T120000Z"))
            .is_err());
        assert!(check_token_url("https", "sts.amazonaws.com", "/x", Q, |_, _| true, at("20261125T120000Z")).is_err());
    }

    #[test]
    fn whole_urls_are_split_before_the_shape_checks() {
        let now = at("20261125T120000Z");
        let own = |s: &str, h: &str| s == "http" && h == "127.0.0.1:4566";
        assert_eq!(check_eks_token_url(&format!("http://127.0.0.1:4566/?{Q}"), own, now), Ok(()));
        assert!(check_eks_token_url(&format!("HTTP://127.0.0.1:4566/?{Q}"), own, now).is_ok());
        assert!(check_eks_token_url(&format!("https://127.0.0.1:4566/?{Q}"), own, now).is_err());
        assert!(check_eks_token_url(&format!("http://127.0.0.1:4567/?{Q}"), own, now).is_err());
        assert!(check_eks_token_url("/?Action=GetCallerIdentity", own, now).unwrap_err().contains("scheme"));
        assert!(check_eks_token_url("not a url", own, now).is_err());
    }

    #[test]
    fn caller_identity_in_xml_and_json() {
        let id = CallerIdentity {
            account: "123456789012".into(),
            arn: "arn:aws:iam::123456789012:user/meshspec".into(),
            user_id: "AIDAX".into(),
        };
        let params = Params::parse(b"Action=GetCallerIdentity&Version=2011-06-15");
        let (xml, kind) = handle(&params, &id, "rid", false).unwrap();
        assert_eq!(kind, "text/xml");
        assert!(xml.contains("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/meshspec</Arn>"));
        let (body, kind) = handle(&params, &id, "rid", true).unwrap();
        assert_eq!(kind, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Account"], "123456789012");
        assert_eq!(v["GetCallerIdentityResponse"]["ResponseMetadata"]["RequestId"], "rid");
        assert_eq!(handle(&Params::parse(b"Action=AssumeRole"), &id, "r", false).unwrap_err().code, "InvalidAction");
    }
}
