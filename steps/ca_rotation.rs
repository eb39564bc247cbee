//! Steps of the CA rotation scenarios (features/operations.feature): a new
//! intermediate in `cacerts`, istiod and the workloads restarted, and what
//! istiod and the workloads did with it.

use cucumber::gherkin::Step;
use cucumber::{then, when};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

use super::{MeshWorld, StepResult};
use crate::checks::ca_rotation::{CacertsReloaded, PresentsCacertsIntermediate, Reload};
use crate::mesh::ca_rotation::{replace_intermediate, rollout_restart, scale_to_zero, IssuedBy};
use crate::topology::{names, ClusterTopology};

impl MeshWorld {
    fn named_cluster(&self, name: &str) -> anyhow::Result<ClusterTopology> {
        self.topology().cluster(name).cloned()
    }

    async fn replace(&self, step: &Step, c: &ClusterTopology, from: IssuedBy) -> StepResult {
        let verified = replace_intermediate(&self.session, c, from).await.map_err(|e| self.failed(step, e))?;
        self.attach(step, &format!("new cacerts of {}", c.name), &verified);
        Ok(())
    }

    async fn restart(&self, step: &Step, c: &ClusterTopology, ns: &str, name: &str) -> StepResult {
        let d = rollout_restart(&self.session, c, ns, name, self.session.timeouts.rollout)
            .await
            .map_err(|e| self.failed(step, e))?;
        self.attach(step, &format!("{} {ns}/{name}", c.name), &crate::kube::rollout::deployment_state(&d));
        Ok(())
    }
}

/// Write a new intermediate, issued by the root every cluster shares, into each cluster's
/// istio-system/cacerts (the same four keys); attaches the new bundles' fingerprints.
#[when("the intermediate CA in every cluster's cacerts is replaced by a new one from the same root")]
async fn replace_everywhere(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        w.replace(step, &c, IssuedBy::SameRoot).await?;
    }
    Ok(())
}

/// The operation done wrong: a new intermediate issued by a root made for the occasion.
#[when(expr = "the intermediate CA in the cacerts of {string} is replaced by one from a different root")]
async fn replace_with_other_root(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.named_cluster(&cluster)?;
    w.replace(step, &c, IssuedBy::NewRoot).await
}

/// istiod's watch of its mounted cacerts took the new intermediate up while it runs (its log says so).
#[then("istiod in every cluster takes up the new intermediate without a restart")]
async fn taken_up(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        w.until(step, &CacertsReloaded { cluster: c, expect: Reload::TakenUp }).await?;
    }
    Ok(())
}

/// istiod's watch refused a new root while it runs (its log says so): it keeps signing with the old one.
#[then(expr = "istiod in {string} refuses the new root while it runs")]
async fn root_refused(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.named_cluster(&cluster)?;
    w.until(step, &CacertsReloaded { cluster: c, expect: Reload::RootRefused }).await?;
    Ok(())
}

/// `kubectl rollout restart deployment/istiod -n istio-system` in each cluster in the topology's order,
/// waiting until the new pod is Ready and the old one gone before the next cluster.
#[when("istiod is restarted cluster by cluster, each new pod Ready before the next")]
async fn restart_istiods(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        w.restart(step, &c, names::ISTIO_SYSTEM, "istiod").await?;
    }
    Ok(())
}

/// `kubectl rollout restart deployment/istiod -n istio-system` in one cluster, waiting for its new pod.
#[when(expr = "istiod in {string} is restarted")]
async fn restart_istiod(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.named_cluster(&cluster)?;
    w.restart(step, &c, names::ISTIO_SYSTEM, "istiod").await
}

/// Scale istiod of the cluster to zero replicas and wait until its pod is gone: its sidecars keep the
/// configuration they last received (Envoy docs, configuration/overview/mgmt_server, "Management Server
/// Unreachability": Envoy latches on to the previous configuration).
#[when(expr = "istiod in {string} is scaled to zero")]
async fn scale_istiod_to_zero(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.named_cluster(&cluster)?;
    let deadline = w.session.timeouts.rollout;
    scale_to_zero(&w.session, &c, names::ISTIO_SYSTEM, "istiod", deadline).await.map_err(|e| w.failed(step, e))?;
    Ok(())
}

/// Rollout-restart every helloworld Deployment of the cluster (label app=helloworld in sample), one after the
/// other: their sidecars get certificates from istiod's CA at once, instead of at their next rotation.
#[when(expr = "the helloworld workloads of {string} are restarted")]
async fn restart_helloworld(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.named_cluster(&cluster)?;
    let api: Api<Deployment> = Api::namespaced(w.session.kube(&c.name).await?, names::SAMPLE);
    let list =
        tokio::time::timeout(w.session.timeouts.api_call, api.list(&ListParams::default().labels("app=helloworld")))
            .await
            .map_err(|_| {
                anyhow::anyhow!("{}: listing the helloworld deployments took longer than one API call", c.name)
            })?
            .map_err(anyhow::Error::from)?;
    ensure!(!list.items.is_empty(), "{}: no helloworld deployment in {}", c.name, names::SAMPLE);
    for d in list.items {
        let name = d.metadata.name.unwrap_or_default();
        w.restart(step, &c, names::SAMPLE, &name).await?;
    }
    Ok(())
}

/// Every helloworld sidecar of each cluster holds a workload certificate whose intermediate is the one in that
/// cluster's cacerts (read from Envoy's secrets as `istioctl proxy-config secret` reads them). Attaches the chains.
#[then("the workloads of every cluster present certificates from the intermediate in its cacerts")]
async fn presents(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        let chain = w.until(step, &PresentsCacertsIntermediate(c.clone())).await?;
        w.attach(step, &format!("chain presented in {}", c.name), &chain);
    }
    Ok(())
}
