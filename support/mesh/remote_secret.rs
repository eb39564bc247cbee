//! Remote secrets: what `istioctl create-remote-secret` makes and istiod reads
//! to watch another cluster. The check reads it like istiod does: label,
//! annotation, one data key named after the cluster, a token kubeconfig whose
//! server answers with that token.

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;

pub const LABEL: &str = "istio/multiCluster";
pub const ANNOTATION: &str = "networking.istio.io/cluster";

pub fn secret_name(remote_cluster: &str) -> String {
    format!("istio-remote-secret-{remote_cluster}")
}

#[derive(Clone, Debug, Serialize)]
pub struct RemoteSecret {
    pub name: String,
    pub cluster: String,
    pub server: String,
}

/// Parse and validate a remote secret for `remote_cluster`; returns its kubeconfig too.
pub fn parse(secret: &Secret, remote_cluster: &str) -> Result<(RemoteSecret, Kubeconfig)> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    ensure!(
        labels.get(LABEL).map(String::as_str) == Some("true"),
        "{name} lacks the label {LABEL}=true (istiod ignores it)"
    );
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        annotations.get(ANNOTATION).map(String::as_str) == Some(remote_cluster),
        "{name} has annotation {ANNOTATION}={:?}, expected {remote_cluster:?}",
        annotations.get(ANNOTATION)
    );
    let data = secret.data.clone().unwrap_or_default();
    let keys: Vec<&String> = data.keys().collect();
    let Some(raw) = data.get(remote_cluster) else {
        bail!(
            "{}: {name} has data keys {keys:?}; istiod takes each key as a cluster ID, so it must be {remote_cluster:?}",
            crate::faults::diagnosis(
                format!("the remote secret's data key is not the cluster ID {remote_cluster}"),
                format!("recreate it with istioctl create-remote-secret --name={remote_cluster}")
            )
        );
    };
    ensure!(keys.len() == 1, "{name} has several data keys {keys:?}: each one becomes a remote cluster");
    let text = String::from_utf8(raw.0.clone()).context("the kubeconfig is not text")?;
    let kubeconfig = Kubeconfig::from_yaml(&text).with_context(|| format!("{name}: the kubeconfig does not parse"))?;
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == remote_cluster)
        .with_context(|| format!("{name}: no context named {remote_cluster}"))?;
    let ctx_body = ctx.context.as_ref().context("an empty context")?;
    let user = kubeconfig
        .auth_infos
        .iter()
        .find(|u| Some(&u.name) == ctx_body.user.as_ref())
        .and_then(|u| u.auth_info.as_ref())
        .with_context(|| format!("{name}: the context's user is missing"))?;
    ensure!(
        user.exec.is_none() && user.auth_provider.is_none() && user.client_certificate_data.is_none(),
        "{name}: istiod refuses exec, auth-provider and client-certificate credentials by default"
    );
    ensure!(user.token.is_some() || user.token_file.is_some(), "{name}: the user has no bearer token");
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx_body.cluster)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("{name}: the context's cluster is missing"))?;
    let server = cluster.server.clone().with_context(|| format!("{name}: the cluster has no server"))?;
    ensure!(
        cluster.certificate_authority_data.is_some() || cluster.certificate_authority.is_some(),
        "{name}: no certificate authority for {server}"
    );
    Ok((RemoteSecret { name, cluster: remote_cluster.to_string(), server }, kubeconfig))
}

/// Read the remote cluster with the secret's own credentials, as istiod would.
pub async fn server_answers(kubeconfig: Kubeconfig, remote_cluster: &str) -> Result<()> {
    let opts = KubeConfigOptions { context: Some(remote_cluster.to_string()), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &opts).await?;
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(15));
    let client = kube::Client::try_from(config)?;
    let namespaces: Api<Namespace> = Api::all(client);
    match namespaces.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => Err(anyhow::anyhow!(
            "{}: {status}",
            crate::faults::diagnosis(
                format!("the API server of {remote_cluster} rejects the remote secret's token"),
                format!(
                    "recreate the remote secret from the istio-reader-service-account token of {remote_cluster} (istioctl create-remote-secret)"
                )
            )
        )),
        Err(e) => Err(anyhow::anyhow!(
            "{}: {e}",
            crate::faults::diagnosis(
                format!("the API server of {remote_cluster} named in the remote secret does not answer"),
                "check the server address in the remote secret and that istiod's network can reach it"
            )
        )),
    }
}

pub async fn get(client: &kube::Client, remote_cluster: &str) -> Result<Option<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), crate::topology::names::ISTIO_SYSTEM);
    Ok(api.get_opt(&secret_name(remote_cluster)).await?)
}
