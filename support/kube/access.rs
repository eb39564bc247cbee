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
    /// A kubeconfig's exec credential plugin.
    pub plugin: Duration,
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        KubeTimeouts { connect: Duration::from_secs(5), read: Duration::from_secs(30), plugin: Duration::from_secs(30) }
    }
}

/// A client and what names it in errors: the context (or cluster) and the URL.
#[derive(Clone)]
pub struct KubeAccess {
    pub client: kube::Client,
    pub who: String,
    pub url: String,
}

impl KubeAccess {
    /// A failed call of this client, named with who and where.
    pub fn failure(&self, err: &kube::Error) -> super::failure::ApiFailure {
        super::failure::ApiFailure::of(self.who.clone(), self.url.clone(), err)
    }
}

/// Every client: bounded connects and reads, meshspec's retry (kube-rs' own is
/// unbounded in practice), and a bearer slot when the token changes while the
/// client lives.
fn build(
    mut config: kube::Config,
    t: KubeTimeouts,
    bearer: Option<&super::bearer::BearerSlot>,
) -> Result<kube::Client> {
    config.connect_timeout = Some(t.connect);
    config.read_timeout = Some(t.read);
    config.write_timeout = Some(t.read);
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config).context("cannot build a Kubernetes client")?;
    // The retry layer needs a service it can clone: a buffer in front of the stack.
    let builder = builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(super::retry::RetryPolicy::default()));
    Ok(match bearer {
        Some(b) => builder.with_layer(&super::bearer::BearerLayer(b.clone())).build(),
        None => builder.build(),
    })
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
    build(config, t, Some(bearer))
}

fn read_kubeconfig(path: Option<&Path>) -> Result<Kubeconfig> {
    match path {
        Some(p) => Kubeconfig::read_from(p).with_context(|| format!("cannot load the kubeconfig {}", p.display())),
        None => Kubeconfig::read().context("cannot load the kubeconfig (KUBECONFIG or ~/.kube/config)"),
    }
}

/// A client for the current context of a kubeconfig file.
pub async fn client_from_current_context(path: Option<&Path>, t: KubeTimeouts) -> Result<KubeAccess> {
    let kubeconfig = read_kubeconfig(path)?;
    let context =
        kubeconfig.current_context.clone().context("the kubeconfig has no current context: pass --context")?;
    client_from_kubeconfig(path, &context, t).await
}

/// A client for one context of a kubeconfig file (`KUBECONFIG` or ~/.kube/config when `path` is None).
/// An exec credential plugin runs here, bounded (see `credential_plugin`), and again before its token expires.
pub async fn client_from_kubeconfig(path: Option<&Path>, context: &str, t: KubeTimeouts) -> Result<KubeAccess> {
    let kubeconfig = read_kubeconfig(path)?;
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
    let who = format!("context {context:?}");
    let url = config.cluster_url.to_string();
    let bearer = match config.auth_info.exec.take() {
        None => None,
        Some(exec) => {
            use super::credential_plugin::{self as plugin, Credential};
            match plugin::run(&exec, context, t.plugin).await? {
                Credential::Certificate { certificate, key } => {
                    use base64::Engine as _;
                    let b64 = base64::engine::general_purpose::STANDARD;
                    config.auth_info.client_certificate_data = Some(b64.encode(certificate));
                    config.auth_info.client_key_data = Some(b64.encode(key).into());
                    None
                }
                Credential::Token { token, expires } => {
                    let slot = super::bearer::BearerSlot::new(token);
                    if let Some(expires) = expires {
                        // Renew at four fifths of the token's life, as it is renewed for EKS.
                        let life = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
                        let every = life.mul_f64(0.8).max(Duration::from_secs(30));
                        let context = context.to_string();
                        let _refresher = slot.refresh_with(every, Duration::from_secs(30), move || {
                            let (exec, context) = (exec.clone(), context.clone());
                            async move {
                                match plugin::run(&exec, &context, t.plugin).await? {
                                    Credential::Token { token, .. } => Ok(token),
                                    Credential::Certificate { .. } => {
                                        anyhow::bail!("the plugin now returns a certificate, not a token")
                                    }
                                }
                            }
                        });
                    }
                    Some(slot)
                }
            }
        }
    };
    let client = build(config, t, bearer.as_ref())
        .with_context(|| format!("cannot build a Kubernetes client for {context:?}"))?;
    Ok(KubeAccess { client, who, url })
}
