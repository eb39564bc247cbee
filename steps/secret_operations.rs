//! Steps of the operations on remote secrets and reader tokens
//! (features/operations.feature): rotating a cluster's istio-reader token, a
//! cluster leaving the mesh and rejoining, and the checks on what istiod and
//! the sidecars made of it. The operations are `mesh::secret_operations`; the
//! checks `checks::secret_operations` and `checks::sync`.

use anyhow::Context as _;
use cucumber::gherkin::Step;
use cucumber::{then, when};
use k8s_openapi::api::core::v1::Secret;

use super::probe::StatedDuration;
use super::{MeshWorld, StepResult};
use crate::checks::secret_operations::{Before, LocalEndpointsOnly, NoIstiodRestart, RebuiltRemote};
use crate::checks::sync::RemoteSecretOf;
use crate::mesh::secret_operations as ops;

/// What a scenario's operations on secrets did so far.
#[derive(Clone, Debug, Default)]
pub struct SecretOperations {
    /// istiod's pods and log before the first operation.
    pub before: Option<Before>,
    /// (cluster, Secret) of the reader token made by the rotation, and of the one it replaces.
    pub new_token: Option<(String, String)>,
    pub old_token: Option<(String, String)>,
    /// (cluster holding it, the Secret as it was) of a removed remote secret.
    pub removed: Option<(String, Secret)>,
}

impl MeshWorld {
    /// Records istiod's state before the scenario's first operation.
    async fn before_operation(&mut self) -> anyhow::Result<()> {
        if self.secret_ops.before.is_none() {
            self.secret_ops.before = Some(Before::record(&self.session).await?);
        }
        Ok(())
    }

    fn peer_name(&self, cluster: &str) -> anyhow::Result<(String, String)> {
        let c = self.topology().cluster(cluster)?;
        let peer = self.topology().peer_of(c);
        Ok((peer.name.clone(), peer.istio_cluster.clone()))
    }
}

/// A new service-account token Secret for istio-reader-service-account in the cluster, as the seed's reader-token
/// manifest makes the first one, filled by the token controller (waited for within the rollout deadline); the
/// Secret whose token the other cluster's remote secret carries now is noted as the old token.
#[when(expr = "a new istio-reader token is made in {string}")]
async fn new_token(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    w.before_operation().await?;
    let c = w.topology().cluster(&cluster)?.clone();
    let holder = w.topology().peer_of(&c).clone();
    let client = w.session.kube(&c.name).await?;
    let in_use = ops::token_secret_in_use(&w.session.kube(&holder.name).await?, &client, &c.istio_cluster)
        .await?
        .with_context(|| {
            format!(
                "no istio-reader token Secret of {} holds the token of the remote secret in {}",
                c.name, holder.name
            )
        })?;
    let made = ops::new_reader_token(&client, &w.session.timeouts).await.map_err(|e| w.failed(step, e))?;
    w.attach(step, "reader tokens", &serde_json::json!({"old": in_use, "new": made}));
    w.secret_ops.old_token = Some((c.name.clone(), in_use));
    w.secret_ops.new_token = Some((c.name, made));
    Ok(())
}

/// The remote secret for the other cluster in this cluster is rewritten with the other cluster's new (or old)
/// istio-reader token in its kubeconfig, server and CA kept: what applying `istioctl create-remote-secret`'s output
/// again does. `old` re-applies the token it had (the operation done wrong: a stale token).
#[when(expr = "the remote secret for the other cluster in {string} is updated with its {word} istio-reader token")]
async fn update_secret(w: &mut MeshWorld, step: &Step, cluster: String, which: String) -> StepResult {
    w.before_operation().await?;
    let (peer, peer_id) = w.peer_name(&cluster)?;
    let token = match which.as_str() {
        "new" => w.secret_ops.new_token.clone(),
        "old" => w.secret_ops.old_token.clone(),
        other => bail!("{other:?}: the token is `new` or `old`"),
    };
    let (token_cluster, secret) = token.context("no istio-reader token was made by an earlier step")?;
    ensure!(token_cluster == peer, "the {which} token was made in {token_cluster}, not in {peer}");
    let value = ops::token_of(&w.session.kube(&peer).await?, &secret).await?;
    ops::set_remote_secret_token(&w.session.kube(&cluster).await?, &peer_id, &value)
        .await
        .map_err(|e| w.failed(step, e))?;
    Ok(())
}

/// The old istio-reader token of the cluster is revoked: its Secret is deleted.
#[when(expr = "the old istio-reader token of {string} is revoked")]
async fn revoke(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let (token_cluster, secret) =
        w.secret_ops.old_token.clone().context("no old token was noted by an earlier step")?;
    ensure!(token_cluster == cluster, "the old token noted is of {token_cluster}, not of {cluster}");
    ops::revoke(&w.session.kube(&cluster).await?, &secret).await.map_err(|e| w.failed(step, e))?;
    w.attach(step, "revoked", &serde_json::json!({"secret": secret}));
    Ok(())
}

/// istiod in the cluster rebuilt its client of the other cluster from the changed remote secret in the pod it ran
/// in before the operation (one more `Updating cluster` line for it in its log, Istio's secretcontroller.go
/// `addSecret`) and reports it synced, within the duration (on the twin compressed as its deadlines are) from this
/// step; attaches istiod's pod, the log line counts and clusterz.
#[then(expr = "istiod in {string} rebuilds its client of the other cluster within {duration}, without a restart")]
async fn rebuilt(w: &mut MeshWorld, step: &Step, cluster: String, within: StatedDuration) -> StepResult {
    let c = RebuiltRemote {
        cluster: w.topology().cluster(&cluster)?.clone(),
        before: w.secret_ops.before.clone().context("no operation was done by an earlier step")?,
        allowed: w.session.timeouts.stated(within.0),
    };
    let evidence = w.until(step, &c).await?;
    w.attach(step, "istiod rebuilt the remote cluster", &evidence);
    Ok(())
}

/// istiod in every cluster still runs in the pod it ran in before the scenario's first operation, no container
/// restarted; attaches the pods.
#[then(expr = "istiod ran on without a restart in every cluster")]
async fn no_restart(w: &mut MeshWorld, step: &Step) -> StepResult {
    let before = w.secret_ops.before.clone().context("no operation was done by an earlier step")?;
    let pods = w.now(step, &NoIstiodRestart { before }).await?;
    w.attach(step, "istiod pods", &pods);
    Ok(())
}

/// The other cluster leaves the mesh as this cluster's istiod sees it: its remote secret here is deleted (and kept
/// by the scenario, to apply again).
#[when(expr = "the remote secret for the other cluster is deleted from {string}")]
async fn leave(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    w.before_operation().await?;
    let (_, peer_id) = w.peer_name(&cluster)?;
    let removed =
        ops::remove_remote_secret(&w.session.kube(&cluster).await?, &peer_id).await.map_err(|e| w.failed(step, e))?;
    let name = removed.metadata.name.clone().unwrap_or_default();
    w.attach(step, "deleted", &serde_json::json!({"secret": name}));
    w.secret_ops.removed = Some((cluster, removed));
    Ok(())
}

/// The deleted remote secret is applied again in the cluster, as it was.
#[when(expr = "the remote secret is applied again in {string} as it was")]
async fn rejoin(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    reapply(w, step, cluster, true).await
}

/// The deleted remote secret is applied again in the cluster without its label `istio/multiCluster` (a hand-made
/// or trimmed manifest: the operation done wrong).
#[when(expr = "the remote secret is applied again in {string} without its label istio\\/multiCluster")]
async fn rejoin_unlabelled(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    reapply(w, step, cluster, false).await
}

async fn reapply(w: &mut MeshWorld, step: &Step, cluster: String, labelled: bool) -> StepResult {
    let (holder, removed) = w.secret_ops.removed.clone().context("no remote secret was deleted by an earlier step")?;
    ensure!(holder == cluster, "the remote secret was deleted from {holder}, not from {cluster}");
    ops::reapply_remote_secret(&w.session.kube(&cluster).await?, &removed, labelled)
        .await
        .map_err(|e| w.failed(step, e))?;
    Ok(())
}

/// Wait until the sleep pod's Envoy in the cluster holds, for helloworld, only the local pods on 5000 (all HEALTHY,
/// no gateway of the other network); attaches the endpoint table.
#[then(expr = "the sleep pod's Envoy in {string} holds only the local helloworld pods")]
async fn local_only(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let evidence = w.until(step, &LocalEndpointsOnly(c)).await?;
    w.attach(step, "endpoints", &evidence);
    Ok(())
}

/// The remote secret check of the cluster fails (at once or by its deadline) with a diagnosis whose cause names
/// the text; attaches the failure.
#[then(expr = "the remote secret check of {string} fails with a diagnosis naming {string}")]
async fn secret_refused(w: &mut MeshWorld, step: &Step, cluster: String, cause: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    match crate::checks::check::until(&w.session, &RemoteSecretOf(c)).await {
        Ok(_) => {
            Err(anyhow::anyhow!("the remote secret check of {cluster} passed: the operation done wrong went unnoticed")
                .into())
        }
        Err(failure) => {
            w.attach(step, "check failure", &failure);
            let named = failure.diagnosis.as_ref().is_some_and(|d| d.cause.contains(&cause));
            ensure!(named, "the diagnosis does not name {cause:?}: {failure}");
            Ok(())
        }
    }
}
