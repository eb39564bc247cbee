//! kube-rs clients: from an EKS endpoint + CA + bearer token (what
//! DescribeCluster gives), or from a kubeconfig context.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Clone, Copy, Debug)]
pub struct KubeTimeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        KubeTimeouts { connect: Duration::from_secs(5), read: Duration::from_secs(30) }
    }
}

/// DER certificates of a PEM bundle.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>> {
    let mut ders = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.context("the CA is not valid PEM")?;
        if p.label == "CERTIFICATE" {
            ders.push(p.contents);
        }
    }
    if ders.is_empty() {
        bail!("the CA PEM holds no certificate");
    }
    Ok(ders)
}

/// A client for `endpoint`, trusting only `ca_pem`, sending the token that
/// `bearer` holds at the time of each request.
pub fn client_from_endpoint(
    endpoint: &str,
    ca_pem: &str,
    bearer: &super::bearer::BearerSlot,
    t: KubeTimeouts,
) -> Result<kube::Client> {
    let uri: http::Uri = endpoint.parse().with_context(|| format!("bad API server endpoint {endpoint:?}"))?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(pem_certificates(ca_pem)?);
    config.connect_timeout = Some(t.connect);
    config.read_timeout = Some(t.read);
    config.write_timeout = Some(t.read);
    let builder = kube::client::ClientBuilder::try_from(config).context("cannot build a Kubernetes client")?;
    Ok(builder.with_layer(&super::bearer::BearerLayer(bearer.clone())).build())
}

/// A client for the current context of a kubeconfig file.
pub async fn client_from_current_context(path: Option<&Path>, t: KubeTimeouts) -> Result<kube::Client> {
    let kubeconfig = match path {
        Some(p) => Kubeconfig::read_from(p).with_context(|| format!("cannot load the kubeconfig {}", p.display()))?,
        None => Kubeconfig::read().context("cannot load the kubeconfig (KUBECONFIG or ~/.kube/config)")?,
    };
    let context =
        kubeconfig.current_context.clone().context("the kubeconfig has no current context: pass --context")?;
    client_from_kubeconfig(path, &context, t).await
}

/// A client for one context of a kubeconfig file (`KUBECONFIG` or ~/.kube/config when `path` is None).
pub async fn client_from_kubeconfig(path: Option<&Path>, context: &str, t: KubeTimeouts) -> Result<kube::Client> {
    let kubeconfig = match path {
        Some(p) => Kubeconfig::read_from(p).with_context(|| format!("cannot load the kubeconfig {}", p.display()))?,
        None => Kubeconfig::read().context("cannot load the kubeconfig (KUBECONFIG or ~/.kube/config)")?,
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == context) {
        let known: Vec<_> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "no context {context:?} in the kubeconfig (contexts: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        );
    }
    let options = KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("cannot use the kubeconfig context {context:?}"))?;
    config.connect_timeout = Some(t.connect);
    config.read_timeout = Some(t.read);
    config.write_timeout = Some(t.read);
    kube::Client::try_from(config).with_context(|| format!("cannot build a Kubernetes client for {context:?}"))
}
