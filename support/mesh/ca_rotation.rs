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
use crate::checks::ca_rotation::TrustsHeldRoot;
use crate::checks::check;
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
    let api: Api<Secret> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_SYSTEM);
    let root = match from {
        IssuedBy::SameRoot => {
            let root = held_root(session)?;
            // Never plug in an intermediate from a root the cluster does not trust:
            // its workloads would stop trusting every other cluster's.
            let trusts = TrustsHeldRoot { cluster: c.clone(), held: root.fingerprint()? };
            check::now(session, &trusts)
                .await
                .context("refusing to issue an intermediate from the root meshspec holds")?;
            root
        }
        IssuedBy::NewRoot => {
            std::sync::Arc::new(tokio::task::spawn_blocking(RootCa::generate).await.context("making a new root")??)
        }
    };
    let istio_cluster = c.istio_cluster.clone();
    // RSA keys: made on a blocking thread, never on an async worker.
    let bundle: CaCerts = tokio::task::spawn_blocking(move || root.intermediate(&istio_cluster))
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

/// The root a same-root intermediate is issued from: the one this run made
/// cacerts with, else the one the user holds (`--mesh-root-ca`).
fn held_root(session: &Session) -> Result<std::sync::Arc<RootCa>> {
    let made = session.run.root_ca.lock().unwrap_or_else(|p| p.into_inner()).clone();
    made.or_else(|| session.mesh_root_ca.clone()).ok_or_else(|| {
        anyhow!(
            "meshspec holds no key of the mesh's root to issue an intermediate from: this run did not make \
             cacerts, and no --mesh-root-ca was given"
        )
    })
}

/// What `kubectl rollout restart` sets (kubectl pkg/polymorphichelpers/objectrestarter.go,
/// `defaultObjectRestarter`, read at kubernetes/kubectl dee3483: the pod template's annotation
/// `kubectl.kubernetes.io/restartedAt`, `time.Now().Format(time.RFC3339)`, sent as a
/// strategic merge patch by pkg/cmd/rollout/rollout_restart.go).
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// A Deployment's rollout as `kubectl rollout status` judges it
/// (kubectl pkg/polymorphichelpers/rollout_status.go, `DeploymentStatusViewer.Status`,
/// read at kubernetes/kubectl dee3483).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStatus {
    Done,
    /// Still rolling out: kubectl's "Waiting for ..." line.
    Waiting(String),
    /// It will not finish by itself: the Progressing condition says
    /// `ProgressDeadlineExceeded` (pkg/util/deployment `TimedOutReason`).
    Failed(String),
}

pub fn rollout_status(d: &Deployment) -> RolloutStatus {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting("Waiting for deployment spec update to be observed".into());
    }
    let timed_out = st
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    if timed_out {
        return RolloutStatus::Failed(format!("deployment {name:?} exceeded its progress deadline"));
    }
    let (updated, replicas, available) =
        (st.updated_replicas.unwrap_or(0), st.replicas.unwrap_or(0), st.available_replicas.unwrap_or(0));
    if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas).filter(|want| updated < *want) {
        return RolloutStatus::Waiting(format!("{updated} out of {want} new replicas have been updated"));
    }
    if replicas > updated {
        return RolloutStatus::Waiting(format!("{} old replicas are pending termination", replicas - updated));
    }
    if available < updated {
        return RolloutStatus::Waiting(format!("{available} of {updated} updated replicas are available"));
    }
    RolloutStatus::Done
}

/// `kubectl rollout restart deployment/<name>`, then wait as `kubectl rollout
/// status` does (within `deadline`) until the new pods are available and the
/// old ones gone; a progress deadline exceeded ends the wait at once.
pub async fn rollout_restart(
    session: &Session,
    c: &ClusterTopology,
    ns: &str,
    name: &str,
    deadline: Duration,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(session.kube(&c.name).await?, ns);
    let what = format!("{}: deployment {ns}/{name}", c.name);
    let before = tokio::time::timeout(session.timeouts.api_call, api.get(name))
        .await
        .with_context(|| format!("{what}: reading it took longer than one API call"))?
        .with_context(|| format!("{what}: reading it"))?;
    let spec = before.spec.as_ref();
    // kubectl's own refusals, in its words.
    ensure!(
        !spec.and_then(|s| s.paused).unwrap_or(false),
        "{what}: can't restart paused deployment (run rollout resume first)"
    );
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let previous = spec
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(RESTARTED_AT));
    ensure!(
        previous != Some(&now),
        "{what}: restarted within the past second already; the same annotation again would restart nothing"
    );
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
    let patched = tokio::time::timeout(
        session.timeouts.api_call,
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)),
    )
    .await
    .with_context(|| format!("{what}: restarting it took longer than one API call"))?
    .with_context(|| format!("{what}: restarting it"))?;
    let generation = patched.metadata.generation.unwrap_or(0);
    let outcome = wait::until(format!("{what} to roll out its restart"), WaitOptions::new(deadline), || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("not found".into()),
            Some(d) if d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0) < generation => {
                Poll::Pending(format!("generation {generation} not observed yet"))
            }
            Some(d) => match rollout_status(&d) {
                RolloutStatus::Done => Poll::Ready(Ok(d)),
                RolloutStatus::Failed(why) => Poll::Ready(Err(why)),
                RolloutStatus::Waiting(why) => Poll::Pending(format!("{why} ({})", deployment_state(&d))),
            },
        })
    })
    .await?;
    outcome.map_err(|why| anyhow!("{what}: the restart did not roll out: {why}"))
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
            metadata: ObjectMeta { name: Some("istiod".into()), generation: Some(generation), ..Default::default() },
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
        let waiting = |d: Deployment| matches!(rollout_status(&d), RolloutStatus::Waiting(_));
        assert_eq!(rollout_status(&deployment(2, 2, 1, 1, 1)), RolloutStatus::Done);
        assert!(waiting(deployment(2, 1, 1, 1, 1)), "new generation not observed");
        assert!(waiting(deployment(2, 2, 2, 1, 2)), "the old pod still runs");
        assert!(waiting(deployment(2, 2, 1, 1, 0)), "the new pod not available");
        assert!(waiting(deployment(2, 2, 1, 0, 1)), "nothing updated");
    }

    #[test]
    fn a_progress_deadline_exceeded_ends_the_rollout_as_kubectl_does() {
        use k8s_openapi::api::apps::v1::DeploymentCondition;
        let mut d = deployment(2, 2, 2, 1, 1);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..Default::default()
        }]);
        assert_eq!(
            rollout_status(&d),
            RolloutStatus::Failed("deployment \"istiod\" exceeded its progress deadline".into())
        );
        // Not before the controller observed the generation: the condition may be the old one's.
        d.status.as_mut().unwrap().observed_generation = Some(1);
        assert!(matches!(rollout_status(&d), RolloutStatus::Waiting(_)));
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
