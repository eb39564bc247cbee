//! SigV4 verification. The signature is recomputed with the `aws-sigv4`
//! crate from what arrived (method, path, query, the headers the client
//! signed, the body) at the client's own X-Amz-Date, then compared.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use chrono::{NaiveDateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// Who signed a request, as STS GetCallerIdentity reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

impl CallerIdentity {
    /// Every known access key belongs to the IAM user `meshspec` of the twin's account.
    pub(crate) fn for_key(account: &str, access_key_id: &str) -> Self {
        let digest = hex::encode_upper(Sha256::digest(access_key_id.as_bytes()));
        CallerIdentity {
            account: account.to_string(),
            arn: format!("arn:aws:iam::{account}:user/meshspec"),
            user_id: format!("AIDA{}", &digest[..17]),
        }
    }
}

/// `AKID/20261125/us-west-2/ec2/aws4_request`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    pub fn parse(credential: &str) -> Option<Scope> {
        let mut parts = credential.split('/');
        let scope = Scope {
            access_key_id: parts.next()?.to_string(),
            date: parts.next()?.to_string(),
            region: parts.next()?.to_string(),
            service: parts.next()?.to_string(),
        };
        (parts.next() == Some("aws4_request") && parts.next().is_none() && !scope.access_key_id.is_empty())
            .then_some(scope)
    }
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthHeader {
    pub scope: Scope,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl AuthHeader {
    pub fn parse(value: &str) -> Option<AuthHeader> {
        let rest = value.trim().strip_prefix("AWS4-HMAC-SHA256")?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, val) = part.trim().split_once('=')?;
            match key.trim() {
                "Credential" => credential = Some(val.trim()),
                "SignedHeaders" => signed = Some(val.trim()),
                "Signature" => signature = Some(val.trim()),
                _ => {}
            }
        }
        Some(AuthHeader {
            scope: Scope::parse(credential?)?,
            signed_headers: signed?.split(';').map(|h| h.to_ascii_lowercase()).collect(),
            signature: signature?.to_string(),
        })
    }
}

/// Why a request was not authenticated; each service spells these its own way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No Authorization header and no presigned query.
    Missing,
    /// The access key id is not one of the twin's.
    UnknownKey,
    /// The signature does not match, or the request is malformed or expired.
    BadSignature(String),
}

/// What is needed to recompute a signature.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// `scheme://host[:port]`
    pub origin: &'a str,
    /// Path and raw query, as sent (`/?Action=..`).
    pub path_and_query: &'a str,
    /// The signed headers with their values (lower-case names).
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Parse `20261125T120000Z`.
pub fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let naive = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ").ok()?;
    Some(Utc.from_utc_datetime(&naive).into())
}

/// Recompute a SigV4 signature; `presign_expires` selects query signing.
pub fn compute_signature(
    req: &SignedRequest<'_>,
    scope: &Scope,
    secret: &str,
    time: SystemTime,
    presign_expires: Option<Duration>,
) -> Result<String, String> {
    let identity: Identity = Credentials::new(&scope.access_key_id, secret, None, None, "twin").into();
    let mut settings = SigningSettings::default();
    // Only the headers the client signed are passed in, so none is excluded.
    settings.excluded_headers = None;
    if let Some(expires) = presign_expires {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name(&scope.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = format!("{}{}", req.origin, req.path_and_query);
    let headers = req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let signable =
        SignableRequest::new(req.method, uri, headers, SignableBody::Bytes(req.body)).map_err(|e| e.to_string())?;
    let output = sign(signable, &params).map_err(|e| e.to_string())?;
    Ok(output.signature().to_string())
}

/// Constant-time comparison, so that timing does not reveal a signature prefix.
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verify a request signed in the Authorization header.
pub fn verify_header(
    auth: &AuthHeader,
    req: &SignedRequest<'_>,
    amz_date: Option<&str>,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<(), AuthFailure> {
    let secret = secret_of(&auth.scope.access_key_id).ok_or(AuthFailure::UnknownKey)?;
    let date = amz_date.ok_or_else(|| AuthFailure::BadSignature("the request has no X-Amz-Date header".into()))?;
    let time =
        parse_amz_date(date).ok_or_else(|| AuthFailure::BadSignature(format!("X-Amz-Date '{date}' is not valid")))?;
    if !date.starts_with(&auth.scope.date) {
        return Err(AuthFailure::BadSignature("the credential scope date does not match X-Amz-Date".into()));
    }
    let expected = compute_signature(req, &auth.scope, &secret, time, None).map_err(AuthFailure::BadSignature)?;
    if same_signature(&expected, &auth.signature) {
        Ok(())
    } else {
        Err(AuthFailure::BadSignature(String::new()))
    }
}

/// The query parameters a presigned request carries about its own signature.
pub const PRESIGN_PARAMS: &[&str] =
    &["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"];

/// A presigned request's signature fields, read from its query.
#[derive(Debug)]
pub struct Presigned {
    pub scope: Scope,
    pub time: SystemTime,
    pub expires: u64,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// The query without the signature fields, encoding untouched.
    pub unsigned_query: String,
}

impl Presigned {
    pub fn parse(raw_query: &str) -> Result<Presigned, String> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
            return Err("X-Amz-Algorithm must be AWS4-HMAC-SHA256".into());
        }
        let scope = get("X-Amz-Credential").and_then(Scope::parse).ok_or("X-Amz-Credential is missing or malformed")?;
        let date = get("X-Amz-Date").ok_or("X-Amz-Date is missing")?.to_string();
        let time = parse_amz_date(&date).ok_or("X-Amz-Date is malformed")?;
        if !date.starts_with(&scope.date) {
            return Err("the credential scope date does not match X-Amz-Date".into());
        }
        let expires = get("X-Amz-Expires")
            .ok_or("X-Amz-Expires is missing")?
            .parse()
            .map_err(|_| "X-Amz-Expires is not a number")?;
        let signed_headers = get("X-Amz-SignedHeaders")
            .ok_or("X-Amz-SignedHeaders is missing")?
            .split(';')
            .map(str::to_string)
            .collect();
        let signature = get("X-Amz-Signature").ok_or("X-Amz-Signature is missing")?.to_string();
        let unsigned_query = raw_query
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
                !key.is_empty() && !PRESIGN_PARAMS.contains(&key.as_ref())
            })
            .collect::<Vec<_>>()
            .join("&");
        Ok(Presigned { scope, time, expires, signed_headers, signature, unsigned_query })
    }

    /// Recompute and compare; `headers` must hold the signed headers' values.
    pub fn verify(
        &self,
        method: &str,
        origin: &str,
        path: &str,
        headers: &[(String, String)],
        secret: &str,
    ) -> Result<(), String> {
        let path_and_query =
            if self.unsigned_query.is_empty() { path.to_string() } else { format!("{path}?{}", self.unsigned_query) };
        let req = SignedRequest { method, origin, path_and_query: &path_and_query, headers, body: b"" };
        let expected =
            compute_signature(&req, &self.scope, secret, self.time, Some(Duration::from_secs(self.expires)))?;
        if same_signature(&expected, &self.signature) {
            Ok(())
        } else {
            Err("the signature does not match".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_headers_from_both_clients() {
        // botocore separates with ", ", aws-sdk-rust with ", " too; tolerate none.
        let h = AuthHeader::parse(
            "AWS4-HMAC-SHA256 Credential=AKIDTWIN/20261125/us-west-2/ec2/aws4_request,SignedHeaders=content-type;host;x-amz-date, Signature=abc",
        )
        .unwrap();
        assert_eq!(h.scope.service, "ec2");
        assert_eq!(h.scope.region, "us-west-2");
        assert_eq!(h.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        assert_eq!(h.signature, "abc");
        assert!(AuthHeader::parse("Bearer xyz").is_none());
        assert!(AuthHeader::parse("AWS4-HMAC-SHA256 Credential=A/B/C, SignedHeaders=host, Signature=x").is_none());
    }

    #[test]
    fn identity_is_stable_per_key() {
        let a = CallerIdentity::for_key("123456789012", "AKIDTWIN");
        assert_eq!(a, CallerIdentity::for_key("123456789012", "AKIDTWIN"));
        assert_eq!(a.arn, "arn:aws:iam::123456789012:user/meshspec");
        assert_eq!(a.user_id.len(), 21);
    }

    #[test]
    fn header_signature_round_trip() {
        let headers = vec![
            ("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string()),
            ("host".to_string(), "127.0.0.1:4566".to_string()),
            ("x-amz-date".to_string(), "20261125T120000Z".to_string()),
        ];
        let body = b"Action=DescribeVpcs&Version=2016-11-15";
        let req = SignedRequest {
            method: "POST",
            origin: "http://127.0.0.1:4566",
            path_and_query: "/",
            headers: &headers,
            body,
        };
        let scope = Scope::parse("AKIDTWIN/20261125/us-west-2/ec2/aws4_request").unwrap();
        let time = parse_amz_date("20261125T120000Z").unwrap();
        let signature = compute_signature(&req, &scope, "secret", time, None).unwrap();
        let auth = AuthHeader { scope: scope.clone(), signed_headers: vec![], signature };
        let secrets = |k: &str| (k == "AKIDTWIN").then(|| "secret".to_string());
        assert_eq!(verify_header(&auth, &req, Some("20261125T120000Z"), secrets), Ok(()));
        let tampered = SignedRequest { body: b"Action=DeleteVpc", ..req };
        assert!(matches!(
            verify_header(&auth, &tampered, Some("20261125T120000Z"), secrets),
            Err(AuthFailure::BadSignature(_))
        ));
        let other_secret = |_: &str| Some("other".to_string());
        let req = SignedRequest {
            method: "POST",
            origin: "http://127.0.0.1:4566",
            path_and_query: "/",
            headers: &headers,
            body,
        };
        assert!(matches!(
            verify_header(&auth, &req, Some("20261125T120000Z"), other_secret),
            Err(AuthFailure::BadSignature(_))
        ));
        assert_eq!(verify_header(&auth, &req, Some("20261125T120000Z"), |_| None), Err(AuthFailure::UnknownKey));
    }

    #[test]
    fn presigned_query_strips_only_signature_fields() {
        let q = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261125%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date=20261125T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=ab";
        let p = Presigned::parse(q).unwrap();
        assert_eq!(p.unsigned_query, "Action=GetCallerIdentity&Version=2011-06-15");
        assert_eq!(p.signed_headers, vec!["host", "x-k8s-aws-id"]);
        assert_eq!(p.scope.service, "sts");
        assert_eq!(p.expires, 60);
        assert!(Presigned::parse("Action=GetCallerIdentity").is_err());
    }
}
