//! Day-2 operations on the plugged-in CA, done through the Kubernetes API as an
//! operator does them: a new intermediate written into `cacerts`, a rollout
//! restart of a Deployment (istiod, the workloads), and the certificate
//! chain a workload's sidecar holds afterwards.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::cacerts::{self, CaCerts, RootCa, VerifiedCaCerts};
use crate::kube::rollout::deployment_state;
use crate::run::Session;
use crate::topology::{names, ClusterTopology};
use crate::wait::{self, Poll, WaitOptions};

/// Where the new intermediate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuedBy {
    /// The root every cluster shares (the run's own, kept since provisioning).
    SameRoot,
    /// A root made for the occasion: the operation done wrong.
    NewRoot,
}

/// Replace the intermediate in `cluster`'s `cacerts` with a new one, keeping
/// the Secret's four keys; returns what the new bundle verifies as.
pub async fn replace_intermediate(session: &Session, c: &ClusterTopology, from: IssuedBy) -> Result<VerifiedCaCerts> {
    let shared = session.run.root_ca.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let istio_cluster = c.istio_cluster.clone();
    // RSA keys: made on a blocking thread, never on an async worker.
    let bundle: CaCerts = tokio::task::spawn_blocking(move || -> Result<CaCerts> {
        match from {
            IssuedBy::SameRoot => shared
                .ok_or_else(|| {
                    anyhow!(
                        "this run did not make the shared root, so it holds no key to issue an intermediate from \
                         (the API provisioner keeps it; a deployment made elsewhere keeps it where it was made)"
                    )
                })?
                .intermediate(&istio_cluster),
            IssuedBy::NewRoot => RootCa::generate()?.intermediate(&istio_cluster),
        }
    })
    .await
    .context("making the new intermediate")??;
    let data: std::collections::BTreeMap<String, String> = [
        ("ca-cert.pem", &bundle.ca_cert_pem),
        ("ca-key.pem", &bundle.ca_key_pem),
        ("root-cert.pem", &bundle.root_cert_pem),
        ("cert-chain.pem", &bundle.cert_chain_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    let verified = cacerts::verify(&data)?;
    let encoded: serde_json::Map<String, serde_json::Value> =
        data.iter().map(|(k, v)| (k.clone(), json!(STANDARD.encode(v)))).collect();
    let api: Api<Secret> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_SYSTEM);
    tokio::time::timeout(
        session.timeouts.api_call,
        api.patch(names::CACERTS, &PatchParams::default(), &Patch::Merge(json!({"data": encoded}))),
    )
    .await
    .with_context(|| {
        format!("{}: patching {}/{} took longer than one API call", c.name, names::ISTIO_SYSTEM, names::CACERTS)
    })?
    .with_context(|| format!("{}: patching {}/{}", c.name, names::ISTIO_SYSTEM, names::CACERTS))?;
    Ok(verified)
}

/// What `kubectl rollout restart` sets (kubectl pkg/polymorphichelpers/objectrestarter.go:
/// the pod template's annotation `kubectl.kubernetes.io/restartedAt`, RFC 3339).
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Whether a Deployment finished rolling out its current template, as
/// `kubectl rollout status` judges it (kubectl pkg/polymorphichelpers/rollout_status.go):
/// the generation observed, every replica updated, no old replica left, and
/// every updated replica available.
pub fn rolled_out(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let updated = st.updated_replicas.unwrap_or(0);
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && updated >= want
        && st.replicas.unwrap_or(0) <= updated
        && st.available_replicas.unwrap_or(0) >= updated
}

/// `kubectl rollout restart deployment/<name>`, then wait (within `deadline`)
/// until the new pods are Ready and the old ones gone.
pub async fn rollout_restart(
    session: &Session,
    c: &ClusterTopology,
    ns: &str,
    name: &str,
    deadline: Duration,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(session.kube(&c.name).await?, ns);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
    let patched = tokio::time::timeout(
        session.timeouts.api_call,
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)),
    )
    .await
    .with_context(|| format!("{}: restarting deployment {ns}/{name} took longer than one API call", c.name))?
    .with_context(|| format!("{}: restarting deployment {ns}/{name}", c.name))?;
    let generation = patched.metadata.generation.unwrap_or(0);
    let what = format!("{}: deployment {ns}/{name} to roll out its restart", c.name);
    Ok(wait::until(what, WaitOptions::new(deadline), || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("not found".into()),
            Some(d) if d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0) < generation => {
                Poll::Pending(format!("generation {generation} not observed yet"))
            }
            Some(d) if rolled_out(&d) => Poll::Ready(d),
            Some(d) => Poll::Pending(deployment_state(&d)),
        })
    })
    .await?)
}

/// `kubectl scale deployment/<name> --replicas=0`, then wait (within
/// `deadline`) until none of its pods is left: what an operator does to take
/// a control plane down for maintenance.
pub async fn scale_to_zero(
    session: &Session,
    c: &ClusterTopology,
    ns: &str,
    name: &str,
    deadline: Duration,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(session.kube(&c.name).await?, ns);
    tokio::time::timeout(
        session.timeouts.api_call,
        api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 0}}))),
    )
    .await
    .with_context(|| format!("{}: scaling deployment {ns}/{name} took longer than one API call", c.name))?
    .with_context(|| format!("{}: scaling deployment {ns}/{name} to zero", c.name))?;
    let what = format!("{}: deployment {ns}/{name} to have no pod", c.name);
    Ok(wait::until(what, WaitOptions::new(deadline), || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("not found".into()),
            Some(d) if d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) == 0 => Poll::Ready(d),
            Some(d) => Poll::Pending(deployment_state(&d)),
        })
    })
    .await?)
}

/// The certificate chain a workload's sidecar holds, read as `istioctl
/// proxy-config secret` reads it: Envoy's admin
/// `config_dump?resource=dynamic_active_secrets` through `pilot-agent request`
/// in the pod's `istio-proxy` container; the `default` secret's
/// `tls_certificate.certificate_chain.inline_bytes` (base64 of the PEM chain,
/// Envoy admin v3 SecretsConfigDump). DER certificates, leaf first.
pub async fn workload_chain(
    session: &Session,
    c: &ClusterTopology,
    namespace: &str,
    pod: &str,
) -> Result<Vec<Vec<u8>>> {
    let client = session.kube(&c.name).await?;
    let path = "config_dump?resource=dynamic_active_secrets";
    let dump = super::envoy::pilot_agent_get(&client, namespace, pod, path, session.timeouts.api_call).await?;
    default_chain(&dump).with_context(|| format!("{}: the secrets of {namespace}/{pod}'s sidecar", c.name))
}

/// The `default` secret's chain in a secrets config dump.
pub fn default_chain(dump: &str) -> Result<Vec<Vec<u8>>> {
    let v: serde_json::Value = serde_json::from_str(dump).context("the config dump is not JSON")?;
    let configs = v.get("configs").and_then(|c| c.as_array()).context("the config dump has no configs")?;
    let default = configs
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some("default"))
        .context("no `default` secret: the sidecar holds no workload certificate")?;
    let b64 = default
        .pointer("/secret/tls_certificate/certificate_chain/inline_bytes")
        .and_then(|b| b.as_str())
        .context("the `default` secret has no certificate_chain.inline_bytes")?;
    let pem = STANDARD.decode(b64).context("certificate_chain.inline_bytes is not base64")?;
    let mut ders = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        ders.push(p.context("the certificate chain is not PEM")?.contents);
    }
    ensure!(!ders.is_empty(), "the `default` secret's chain holds no certificate");
    Ok(ders)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use kube::api::ObjectMeta;

    fn deployment(generation: i64, observed: i64, replicas: i32, updated: i32, available: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(generation), ..Default::default() },
            spec: Some(DeploymentSpec { replicas: Some(1), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_restart_is_rolled_out_only_when_the_old_pod_is_gone_and_the_new_one_available() {
        assert!(rolled_out(&deployment(2, 2, 1, 1, 1)));
        assert!(!rolled_out(&deployment(2, 1, 1, 1, 1)), "new generation not observed");
        assert!(!rolled_out(&deployment(2, 2, 2, 1, 2)), "the old pod still runs");
        assert!(!rolled_out(&deployment(2, 2, 1, 1, 0)), "the new pod not available");
        assert!(!rolled_out(&deployment(2, 2, 1, 0, 1)), "nothing updated");
    }

    #[test]
    fn the_default_secret_chain_is_read_from_envoys_secrets_dump() {
        let pem = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";
        let dump = json!({"configs": [
            {"name": "ROOTCA", "secret": {"validation_context": {"trusted_ca": {"inline_bytes": STANDARD.encode("x")}}}},
            {"name": "default", "secret": {"tls_certificate": {"certificate_chain": {"inline_bytes": STANDARD.encode(pem)}}}},
        ]});
        assert_eq!(default_chain(&dump.to_string()).unwrap(), vec![vec![1, 2, 3], vec![4, 5, 6]]);
        let no_default = json!({"configs": [{"name": "ROOTCA"}]});
        assert!(default_chain(&no_default.to_string()).unwrap_err().to_string().contains("no `default` secret"));
    }
}
