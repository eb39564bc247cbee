//! Steps of features/cross_cluster_sync.feature.

use cucumber::gherkin::Step;
use cucumber::then;

use super::{MeshWorld, StepResult};
use crate::checks::sync as check;

/// The cluster holds a remote secret istiod would use for its peer (labelled, keyed by the peer's cluster ID, a
/// current-context and credentials istiod accepts), and its server answers to those credentials and is the peer
/// cluster itself (same kube-system UID); attaches the secret's name, context, server and auth kind (never the
/// credential) and both UIDs.
#[then(
    expr = "the remote secret for the other cluster in {string} is well-formed and its server answers with its token"
)]
async fn remote_secret(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let evidence = w.until(step, &check::RemoteSecretOf(c)).await?;
    w.attach(step, "remote secret", &evidence);
    Ok(())
}

/// Wait until istiod's /debug/clusterz in the cluster reports the peer `synced`; attaches clusterz.
#[then(expr = "istiod in {string} reports the other cluster synced")]
async fn synced(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let clusterz = w.until(step, &check::RemoteClusterSynced(c)).await?;
    w.attach(step, "clusterz", &clusterz);
    Ok(())
}

/// Wait until the sleep pod's Envoy holds, for helloworld, the local pod IPs on 5000 plus exactly the peer's
/// NLB addresses on 15443, all HEALTHY; attaches the endpoint table.
#[then(
    expr = "the sleep pod's Envoy in {string} holds the local helloworld pods on port 5000 and exactly the other cluster's NLB addresses on port 15443, all HEALTHY"
)]
async fn endpoints(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let evidence = w.until(step, &check::HelloworldEndpoints(c.clone())).await?;
    w.cluster = Some(c);
    evidence.crosses_networks().map_err(anyhow::Error::msg)?;
    w.attach(step, "endpoints", &evidence);
    Ok(())
}

/// No endpoint of that table is a helloworld pod IP of the other cluster; attaches the other cluster's pod IPs.
#[then(expr = "none of those endpoints is a pod IP of the other cluster")]
async fn no_remote_pod_ip(w: &mut MeshWorld, step: &Step) -> StepResult {
    let c = w.cluster.clone().ok_or_else(|| anyhow::anyhow!("no cluster chosen by an earlier step"))?;
    let evidence = w.until(step, &check::HelloworldEndpoints(c)).await?;
    evidence.no_remote_pod_ip().map_err(anyhow::Error::msg)?;
    w.attach(step, "remote pod IPs", &evidence.remote_pod_ips);
    Ok(())
}
