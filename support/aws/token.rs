//! EKS bearer tokens made in-process exactly as `aws eks get-token` makes them:
//! `k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL), with the
//! cluster name in the signed `x-k8s-aws-id` header.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use base64::Engine;

use super::AwsAccess;

pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// EKS accepts a token for 15 minutes after it was signed.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Clients re-sign their token this long after the last signing: two tries
/// fit before EKS would refuse it.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);
/// After a failed re-signing, the next try.
pub const TOKEN_RETRY: Duration = Duration::from_secs(30);

/// A bearer token; Debug never shows it.
#[derive(Clone)]
pub struct EksToken {
    pub token: String,
    pub signed_at: SystemTime,
}

impl std::fmt::Debug for EksToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksToken").field("signed_at", &self.signed_at).finish_non_exhaustive()
    }
}

/// The STS URL the token presigns: the configured endpoint when one is set
/// (AWS_ENDPOINT_URL(_STS) or the target's), else the regional STS endpoint.
fn sts_base(aws: &AwsAccess) -> String {
    let specific = std::env::var("AWS_ENDPOINT_URL_STS").ok().filter(|s| !s.is_empty());
    specific
        .or_else(|| aws.endpoint.clone())
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", aws.region))
}

pub async fn eks_token(aws: &AwsAccess, cluster_name: &str) -> Result<EksToken> {
    let provider = aws.config.credentials_provider().context("no AWS credentials provider")?;
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| anyhow::anyhow!("cannot load AWS credentials for the EKS token: {e}"))?;
    let identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let signed_at = SystemTime::now();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name("sts")
        .time(signed_at)
        .settings(settings)
        .build()
        .context("cannot build the STS signing parameters")?
        .into();
    let url = format!("{}/?Action=GetCallerIdentity&Version=2011-06-15", sts_base(aws));
    let request = SignableRequest::new(
        "GET",
        url.clone(),
        [("x-k8s-aws-id", cluster_name)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .context("cannot presign the STS request")?;
    let (instructions, _signature) = sign(request, &params).context("cannot presign the STS request")?.into_parts();
    let mut http_request = http::Request::builder().uri(&url).body(()).context("bad STS URL")?;
    instructions.apply_to_request_http1x(&mut http_request);
    let presigned = http_request.uri().to_string();
    Ok(EksToken {
        token: format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned.as_bytes())
        ),
        signed_at,
    })
}
