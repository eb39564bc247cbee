//! Day-2 operations on the credentials istiod reads other clusters with, done
//! through the Kubernetes API as an operator does them with kubectl and
//! istioctl (features/operations.feature):
//! - rotating a cluster's istio-reader token: a new service-account token
//!   Secret for `istio-reader-service-account` (as the seed's reader-token
//!   manifest makes the first one), the other cluster's remote secret
//!   rewritten with it (what re-applying `istioctl create-remote-secret`'s
//!   output does: same server and CA, the new token), then the old token
//!   revoked by deleting its Secret;
//! - a cluster leaving the mesh (its remote secret deleted from the other
//!   cluster) and rejoining (the same Secret applied again).
//!
//! The tokens never leave this module's values: nothing here logs them.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use super::remote_secret;
use crate::kube::rollout::wait_token;
use crate::timeouts::Timeouts;
use crate::topology::names;

/// The service account whose token a remote secret carries.
pub const READER_SERVICE_ACCOUNT: &str = "istio-reader-service-account";
/// The annotation that makes a Secret a service-account token Secret
/// (Kubernetes docs, "Manually create a long-lived API token for a ServiceAccount").
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";

/// The istio-reader token Secrets of a cluster: name -> token.
async fn reader_tokens(client: &kube::Client) -> Result<BTreeMap<String, String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    let list = api.list(&ListParams::default()).await.context("listing the Secrets of istio-system")?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some(TOKEN_SECRET_TYPE))
        .filter(|s| {
            s.metadata.annotations.as_ref().and_then(|a| a.get(SA_NAME_ANNOTATION)).map(String::as_str)
                == Some(READER_SERVICE_ACCOUNT)
        })
        .filter_map(|s| {
            let token = s.data.as_ref()?.get("token")?;
            Some((s.metadata.name.clone()?, String::from_utf8(token.0.clone()).ok()?))
        })
        .collect())
}

/// The name of the istio-reader token Secret of `remote` (the cluster read)
/// whose token the remote secret in `holder` carries now, if any holds it.
pub async fn token_secret_in_use(
    holder: &kube::Client,
    remote: &kube::Client,
    remote_id: &str,
) -> Result<Option<String>> {
    let token = remote_secret_token(holder, remote_id).await?;
    Ok(reader_tokens(remote).await?.into_iter().find(|(_, t)| *t == token).map(|(name, _)| name))
}

/// Make a new istio-reader token Secret in a cluster and wait (at most the
/// rollout deadline) until the token controller filled it; its name.
pub async fn new_reader_token(client: &kube::Client, timeouts: &Timeouts) -> Result<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    // A name of its own per rotation: the old Secret stays until it is revoked.
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let name = format!("{}-{stamp}", names::READER_TOKEN_SECRET);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(names::ISTIO_SYSTEM.into()),
            annotations: Some([(SA_NAME_ANNOTATION.to_string(), READER_SERVICE_ACCOUNT.to_string())].into()),
            ..ObjectMeta::default()
        },
        type_: Some(TOKEN_SECRET_TYPE.into()),
        ..Secret::default()
    };
    api.create(&PostParams::default(), &secret).await.with_context(|| format!("creating the Secret {name}"))?;
    wait_token(client, names::ISTIO_SYSTEM, &name, Timeouts::wait(timeouts.rollout)).await?;
    Ok(name)
}

/// The token an istio-reader token Secret holds.
pub async fn token_of(client: &kube::Client, secret: &str) -> Result<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    let s = api.get(secret).await.with_context(|| format!("reading the Secret {secret}"))?;
    let token = s.data.and_then(|d| d.get("token").cloned()).with_context(|| format!("{secret} holds no token"))?;
    String::from_utf8(token.0).with_context(|| format!("the token in {secret} is not text"))
}

/// Revoke a service-account token by deleting its Secret (Kubernetes: a
/// legacy token is valid only while its Secret exists and holds it).
pub async fn revoke(client: &kube::Client, secret: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    api.delete(secret, &DeleteParams::default()).await.with_context(|| format!("deleting the Secret {secret}"))?;
    Ok(())
}

/// The bearer token of the remote secret for `remote_id` in `holder`.
async fn remote_secret_token(holder: &kube::Client, remote_id: &str) -> Result<String> {
    let secret =
        remote_secret::find(holder, remote_id).await?.with_context(|| format!("no remote secret for {remote_id}"))?;
    let (_, kubeconfig) = remote_secret::parse(&secret, remote_id)?;
    remote_secret::bearer_token(&kubeconfig)
        .with_context(|| format!("the remote secret for {remote_id} holds no bearer token"))
}

/// Rewrite the remote secret for `remote_id` in `holder` with `token` in
/// place of its user's token: what applying `istioctl create-remote-secret`'s
/// output again does once the reader token changed (server, CA, names kept).
pub async fn set_remote_secret_token(holder: &kube::Client, remote_id: &str, token: &str) -> Result<()> {
    let secret =
        remote_secret::find(holder, remote_id).await?.with_context(|| format!("no remote secret for {remote_id}"))?;
    let name = secret.metadata.name.clone().unwrap_or_default();
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get(remote_id))
        .with_context(|| format!("{name} has no key {remote_id}"))?;
    let text = String::from_utf8(raw.0.clone()).with_context(|| format!("{name}: the kubeconfig is not text"))?;
    let rewritten = with_token(&text, token).with_context(|| format!("{name}: rewriting the kubeconfig"))?;
    let api: Api<Secret> = Api::namespaced(holder.clone(), names::ISTIO_SYSTEM);
    let patch = serde_json::json!({"data": {remote_id: ByteString(rewritten.into_bytes())}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("updating {name}"))?;
    Ok(())
}

/// A kubeconfig with the token of its current context's user replaced.
pub fn with_token(kubeconfig: &str, token: &str) -> Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(kubeconfig).context("the kubeconfig is not YAML")?;
    let context = doc.get("current-context").and_then(|c| c.as_str()).context("no current-context")?.to_string();
    let user = doc
        .get("contexts")
        .and_then(|c| c.as_sequence())
        .and_then(|cs| cs.iter().find(|c| c.get("name").and_then(|n| n.as_str()) == Some(context.as_str())))
        .and_then(|c| c.get("context")?.get("user")?.as_str())
        .with_context(|| format!("context {context:?} names no user"))?
        .to_string();
    let users = doc.get_mut("users").and_then(|u| u.as_sequence_mut()).context("no users")?;
    let Some(entry) = users.iter_mut().find(|u| u.get("name").and_then(|n| n.as_str()) == Some(user.as_str())) else {
        bail!("user {user:?} is missing");
    };
    let Some(body) = entry.get_mut("user").and_then(|u| u.as_mapping_mut()) else {
        bail!("user {user:?} has no credentials");
    };
    body.insert("token".into(), token.into());
    serde_yaml::to_string(&doc).context("writing the kubeconfig")
}

/// Take a cluster out of the mesh as seen from `holder`: delete the remote
/// secret for `remote_id` there. Returns the Secret as it was, to apply again.
pub async fn remove_remote_secret(holder: &kube::Client, remote_id: &str) -> Result<Secret> {
    let secret =
        remote_secret::find(holder, remote_id).await?.with_context(|| format!("no remote secret for {remote_id}"))?;
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(holder.clone(), names::ISTIO_SYSTEM);
    api.delete(&name, &DeleteParams::default()).await.with_context(|| format!("deleting {name}"))?;
    Ok(secret)
}

/// Apply a removed remote secret again (as `kubectl apply -f` of the saved
/// manifest); `labelled: false` leaves out the `istio/multiCluster` label, as
/// a hand-written or trimmed manifest does.
pub async fn reapply_remote_secret(holder: &kube::Client, removed: &Secret, labelled: bool) -> Result<String> {
    let mut labels = removed.metadata.labels.clone().unwrap_or_default();
    if !labelled {
        labels.remove(remote_secret::LABEL);
    }
    let name = removed.metadata.name.clone().unwrap_or_default();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(names::ISTIO_SYSTEM.into()),
            labels: Some(labels),
            annotations: removed.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        type_: removed.type_.clone(),
        data: removed.data.clone(),
        ..Secret::default()
    };
    let api: Api<Secret> = Api::namespaced(holder.clone(), names::ISTIO_SYSTEM);
    api.create(&PostParams::default(), &secret).await.with_context(|| format!("creating {name} again"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_users_token_is_replaced() {
        let kc = "apiVersion: v1\nkind: Config\ncurrent-context: cluster2\nclusters:\n- name: cluster2\n  cluster:\n    server: https://10.0.0.1\n    certificate-authority-data: Q0E=\ncontexts:\n- name: cluster2\n  context: {cluster: cluster2, user: cluster2}\n- name: other\n  context: {cluster: cluster2, user: other}\nusers:\n- name: other\n  user: {token: keep}\n- name: cluster2\n  user: {token: old}\n";
        let out = with_token(kc, "new").unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        let token = |i: usize| doc["users"][i]["user"]["token"].as_str().unwrap().to_string();
        assert_eq!((token(0), token(1)), ("keep".to_string(), "new".to_string()));
        assert_eq!(doc["clusters"][0]["cluster"]["server"].as_str(), Some("https://10.0.0.1"));
        assert!(with_token("current-context: x\ncontexts: []\nusers: []\n", "t").is_err());
    }
}
