//! Who may talk to one cluster's API server: its static admin token, the
//! service-account tokens the token controller minted in it, and EKS tokens
//! (`aws eks get-token`) bound to its EKS name. An EKS token is unwrapped
//! here; the presigned STS URL inside is checked by the twin's STS
//! (aws-iam-authenticator's URL rules, then the SigV4 signature with this
//! cluster's name as the signed `x-k8s-aws-id` header).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::aws_api::AwsApi;
use crate::kube::authz::UserInfo;
use crate::kube::Authenticator;

const EKS_TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// aws-iam-authenticator refuses longer tokens.
const MAX_EKS_TOKEN_LEN: usize = 4096;

/// The service account a minted token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub service_account: String,
    /// The Secret that holds the token: deleting it revokes the token.
    pub secret: String,
}

/// The Authenticator of one cluster's API server.
pub struct ClusterAuth {
    eks_name: String,
    admin_token: String,
    /// STS (and the clock), in this process or over the wire.
    aws: Arc<dyn AwsApi>,
    service_accounts: RwLock<HashMap<String, ServiceAccountRef>>,
    /// EKS tokens STS accepted, until when (simulated): kube-apiserver caches a
    /// token webhook's answers for `--authentication-token-webhook-cache-ttl`
    /// (default 2m0s: kube-apiserver command-line reference; the cache is
    /// k8s.io/apiserver pkg/authentication/token/cache), and EKS authenticates
    /// its tokens through that webhook (aws-iam-authenticator).
    accepted: std::sync::Mutex<HashMap<String, (String, std::time::Duration)>>,
}

/// kube-apiserver's `--authentication-token-webhook-cache-ttl` default.
const WEBHOOK_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(120);

impl ClusterAuth {
    pub fn new(eks_name: &str, aws: Arc<dyn AwsApi>) -> ClusterAuth {
        ClusterAuth {
            eks_name: eks_name.to_owned(),
            admin_token: random_token(),
            aws,
            service_accounts: RwLock::new(HashMap::new()),
            accepted: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The static bearer token of the cluster's admin.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Makes `token` valid for the service account until revoked.
    pub fn register_service_account_token(&self, token: &str, who: ServiceAccountRef) {
        if let Ok(mut map) = self.service_accounts.write() {
            map.insert(token.to_owned(), who);
        }
    }

    /// Whether `token` is a live service-account token of this cluster.
    pub fn service_account_of(&self, token: &str) -> Option<ServiceAccountRef> {
        self.service_accounts.read().ok()?.get(token).cloned()
    }

    /// Keeps only the service-account tokens `keep` accepts (the others'
    /// Secrets were deleted or rewritten).
    pub fn retain_service_account_tokens(&self, keep: impl Fn(&str, &ServiceAccountRef) -> bool) {
        if let Ok(mut map) = self.service_accounts.write() {
            map.retain(|token, who| keep(token, who));
        }
    }

    fn eks_user(&self, token: &str) -> Option<UserInfo> {
        let now = self.aws.clock().now();
        {
            let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
            accepted.retain(|_, (_, until)| *until > now);
            if let Some((arn, _)) = accepted.get(token) {
                return Some(eks_admin(arn));
            }
        }
        match presigned_sts_url(token) {
            Ok(url) => match crate::aws_api::allowing_others(self.aws.as_ref(), || {
                self.aws.verify_presigned_sts(&url, &self.eks_name)
            }) {
                Ok(identity) => {
                    let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
                    accepted.insert(token.to_owned(), (identity.arn.clone(), now + WEBHOOK_CACHE_TTL));
                    Some(eks_admin(&identity.arn))
                }
                Err(reason) => {
                    tracing::debug!(cluster = %self.eks_name, "EKS token refused by STS: {reason}");
                    None
                }
            },
            Err(reason) => {
                tracing::debug!(cluster = %self.eks_name, "EKS token refused: {reason}");
                None
            }
        }
    }
}

/// The IAM identity that made the cluster: EKS makes it a cluster
/// administrator (Amazon EKS User Guide, add-user-role: "the IAM entity that
/// creates the cluster is automatically granted system:masters permissions").
/// The user name EKS gives it is not documented there: the twin uses the
/// caller's ARN, and no check reads it.
fn eks_admin(arn: &str) -> UserInfo {
    UserInfo::admin(arn)
}

impl Authenticator for ClusterAuth {
    fn authenticate(&self, bearer_token: &str) -> Option<UserInfo> {
        if constant_time_eq(bearer_token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(UserInfo::admin("kubernetes-admin"));
        }
        if bearer_token.starts_with(EKS_TOKEN_PREFIX) {
            return self.eks_user(bearer_token);
        }
        self.service_account_of(bearer_token).map(|sa| UserInfo::service_account(&sa.namespace, &sa.service_account))
    }
}

/// A fresh random bearer token (URL-safe, 256 bits).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The presigned URL inside an EKS token (`k8s-aws-v1.` + base64url of it).
fn presigned_sts_url(token: &str) -> Result<String, String> {
    if token.len() > MAX_EKS_TOKEN_LEN {
        return Err("token too long".into());
    }
    let encoded = token.strip_prefix(EKS_TOKEN_PREFIX).ok_or("missing k8s-aws-v1. prefix")?;
    // aws-iam-authenticator decodes RawURLEncoding; tolerate stray padding.
    let raw = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).map_err(|_| "token is not base64url")?;
    String::from_utf8(raw).map_err(|_| "token URL is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:4566/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Signature=abcd";

    #[test]
    fn the_url_is_unwrapped_from_a_token() {
        let token = format!("{EKS_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(URL));
        assert_eq!(presigned_sts_url(&token).as_deref(), Ok(URL));
        assert_eq!(presigned_sts_url(&format!("{token}==")).as_deref(), Ok(URL));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(presigned_sts_url("k8s-aws-v1.%%%").is_err());
        assert!(presigned_sts_url(&URL_SAFE_NO_PAD.encode(URL)).is_err(), "no prefix");
        let not_utf8 = format!("{EKS_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe]));
        assert!(presigned_sts_url(&not_utf8).is_err());
        let long = format!("{EKS_TOKEN_PREFIX}{}", "A".repeat(MAX_EKS_TOKEN_LEN));
        assert!(presigned_sts_url(&long).is_err());
    }

    #[test]
    fn the_admin_and_registered_service_account_tokens_are_accepted_until_revoked() {
        let aws = crate::aws::AwsState::new(crate::aws::AwsConfig::default());
        let auth = ClusterAuth::new("eks-1", crate::aws_api::in_process(&aws));
        assert!(auth.authenticate(auth.admin_token()).is_some());
        assert!(auth.authenticate(&format!("{}x", auth.admin_token())).is_none());
        assert!(auth.authenticate("").is_none());
        let who = ServiceAccountRef {
            namespace: "istio-system".into(),
            service_account: "istio-reader-service-account".into(),
            secret: "reader-token".into(),
        };
        auth.register_service_account_token("sa-token", who.clone());
        assert_eq!(
            auth.authenticate("sa-token").map(|u| u.name).as_deref(),
            Some("system:serviceaccount:istio-system:istio-reader-service-account")
        );
        assert_eq!(auth.service_account_of("sa-token"), Some(who));
        auth.retain_service_account_tokens(|_, who| who.secret != "reader-token");
        assert!(auth.authenticate("sa-token").is_none());
        // An EKS token whose URL the twin's STS does not accept.
        let token = format!("{EKS_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(URL));
        assert!(auth.authenticate(&token).is_none());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
