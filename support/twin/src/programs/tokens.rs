//! The service-account token controller: a Secret of type
//! `kubernetes.io/service-account-token` annotated with
//! `kubernetes.io/service-account.name` gets `data.token` (a token the
//! cluster's API server then accepts), `data.ca.crt` and `data.namespace`,
//! as on Kubernetes 1.24+ where such Secrets are the only long-lived tokens
//! (the remote secret's reader token comes from one).
//!
//! A Secret for a service account that does not exist yet waits for it; once
//! filled, deleting the service account deletes the Secret, and deleting the
//! Secret revokes its token.

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::objects;
use super::runtime::{Cluster, Reconciler};
use crate::auth::ServiceAccountRef;
use crate::kube::{Resource, StoreEvent};

pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// A token shaped like the legacy service-account JWTs (header, claims,
/// signature), so that tools decoding its claims find the usual ones. Its
/// signature is random: the API server accepts it by lookup, not by key.
pub fn mint(namespace: &str, service_account: &str, service_account_uid: &str, secret: &str) -> String {
    let kid: [u8; 20] = rand::random();
    let header = json!({"alg": "RS256", "kid": URL_SAFE_NO_PAD.encode(kid)});
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": service_account,
        "kubernetes.io/serviceaccount/service-account.uid": service_account_uid,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    });
    let signature: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The decoded `data.<key>` of a Secret.
fn secret_data(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret.pointer("/data")?.get(key)?.as_str()?;
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

pub struct TokenController;

impl Reconciler for TokenController {
    fn name(&self) -> &'static str {
        "serviceaccount-tokens"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        matches!(event.resource.plural.as_str(), "secrets" | "serviceaccounts")
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let secrets = cluster.list(&Resource::secrets());
        let accounts = cluster.list(&Resource::serviceaccounts());
        let find_sa =
            |ns: &str, name: &str| accounts.iter().find(|sa| objects::namespace(sa) == ns && objects::name(sa) == name);

        // Tokens stay valid only while their Secret holds them.
        cluster.auth.retain_service_account_tokens(|token, who| {
            secrets.iter().any(|s| {
                objects::namespace(s) == who.namespace
                    && objects::name(s) == who.secret
                    && secret_data(s, "token").as_deref() == Some(token)
            })
        });

        for secret in &secrets {
            if secret.get("type").and_then(Value::as_str) != Some(TOKEN_SECRET_TYPE) || objects::is_terminating(secret)
            {
                continue;
            }
            let Some(sa_name) = objects::annotation(secret, SA_NAME_ANNOTATION) else {
                continue;
            };
            let ns = objects::namespace(secret);
            let name = objects::name(secret);
            let filled_for = objects::annotation(secret, SA_UID_ANNOTATION);
            let Some(sa) = find_sa(ns, sa_name) else {
                if filled_for.is_some() {
                    // Its service account is gone: so is its token.
                    cluster.delete(&Resource::secrets(), Some(ns), name);
                }
                continue;
            };
            let sa_uid = objects::uid(sa);
            if filled_for.is_some_and(|uid| uid != sa_uid) {
                // Filled for an earlier service account of the same name.
                cluster.delete(&Resource::secrets(), Some(ns), name);
                continue;
            }
            let who = ServiceAccountRef {
                namespace: ns.to_owned(),
                service_account: sa_name.to_owned(),
                secret: name.to_owned(),
            };
            let current = secret_data(secret, "token");
            let token_ok = current.as_deref().and_then(|t| cluster.auth.service_account_of(t)).as_ref() == Some(&who);
            let ca_ok = secret_data(secret, "ca.crt").as_deref() == Some(cluster.ca_pem.as_str());
            let ns_ok = secret_data(secret, "namespace").as_deref() == Some(ns);
            if token_ok && ca_ok && ns_ok && filled_for.is_some() {
                continue;
            }
            let token = match current {
                Some(t) if token_ok => t,
                _ => mint(ns, sa_name, sa_uid, name),
            };
            let mut updated = secret.clone();
            if !updated.get("data").is_some_and(Value::is_object) {
                updated["data"] = json!({});
            }
            updated["data"]["token"] = json!(STANDARD.encode(&token));
            updated["data"]["ca.crt"] = json!(STANDARD.encode(&cluster.ca_pem));
            updated["data"]["namespace"] = json!(STANDARD.encode(ns));
            updated["metadata"]["annotations"][SA_UID_ANNOTATION] = json!(sa_uid);
            // Register first: a client may read the Secret the moment it is written.
            cluster.auth.register_service_account_token(&token, who);
            cluster.update(&Resource::secrets(), updated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_unique_jwts_with_the_service_account_claims() {
        let a = mint("istio-system", "istio-reader-service-account", "u-1", "reader-token");
        let b = mint("istio-system", "istio-reader-service-account", "u-1", "reader-token");
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:istio-system:istio-reader-service-account");
        assert_eq!(claims["kubernetes.io/serviceaccount/secret.name"], "reader-token");
    }

    #[test]
    fn secret_data_is_decoded_from_base64() {
        let s = json!({"data": {"namespace": STANDARD.encode("sample"), "bad": "%%%"}});
        assert_eq!(secret_data(&s, "namespace").as_deref(), Some("sample"));
        assert_eq!(secret_data(&s, "bad"), None);
        assert_eq!(secret_data(&s, "token"), None);
    }
}
