//! Steps of the gateway replacement scenarios (features/operations.feature):
//! a cluster's east-west gateway Service deleted and created again, and the
//! new NLB it gets.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::when;

use super::{MeshWorld, StepResult};
use crate::checks::readiness as check;
use crate::mesh::gateway_ops::{delete_gateway, recreate_gateway};
use crate::topology::names;

/// Delete the cluster's east-west gateway Service (istio-ingress/istio-eastwestgateway) and wait until it is gone:
/// the AWS load balancer controller deletes its NLB first, then removes its finalizer. Attaches the old hostname.
#[when(expr = "the east-west gateway Service of {string} is deleted, and gone once its NLB is")]
async fn delete(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let deadline = w.session.timeouts.nlb_active;
    let deleted = delete_gateway(&w.session, &c, deadline).await.map_err(|e| w.failed(step, e))?;
    w.attach(step, "deleted gateway", &serde_json::json!({"cluster": c.name, "hostname": deleted.hostname}));
    w.deleted_gateway = Some((c, deleted));
    Ok(())
}

async fn recreate(w: &mut MeshWorld, step: &Step, without_network_label: bool) -> StepResult {
    let (c, deleted) = w.deleted_gateway.clone().context("no gateway Service deleted by an earlier step")?;
    let deadline = w.session.timeouts.load_balancer_hostname;
    let hostname = recreate_gateway(&w.session, &c, &deleted, without_network_label, deadline)
        .await
        .map_err(|e| w.failed(step, e))?;
    w.attach(
        step,
        "recreated gateway",
        &serde_json::json!({"cluster": c.name, "old hostname": deleted.hostname, "new hostname": hostname}),
    );
    w.cluster = Some(c);
    w.hostname = Some(hostname);
    Ok(())
}

/// Create the deleted Service again from its spec, labels and annotations, and wait for its load balancer
/// hostname, a new one; attaches the old and the new hostname.
#[when("it is created again")]
async fn created_again(w: &mut MeshWorld, step: &Step) -> StepResult {
    recreate(w, step, false).await
}

/// The operation done wrong: the Service created again without its topology.istio.io/network label.
#[when("it is created again without its topology.istio.io/network label")]
async fn created_again_unlabelled(w: &mut MeshWorld, step: &Step) -> StepResult {
    recreate(w, step, true).await
}

/// Wait until the new NLB (found by that hostname) is active and every target behind its 15443 listener is
/// healthy; attaches the NLB and the targets' health.
#[when("the new load balancer has every target of its 15443 listener healthy")]
async fn new_nlb_healthy(w: &mut MeshWorld, step: &Step) -> StepResult {
    let hostname = w.hostname.clone().context("no new hostname from an earlier step")?;
    let c = w.cluster()?.clone();
    let lb = w
        .until(step, &check::LoadBalancerOf { cluster: c.name.clone(), hostname: hostname.clone(), active: true })
        .await?;
    let port = names::CROSS_NETWORK_PORT;
    let tg = w.until(step, &check::ListenerTargetGroup { cluster: c.name.clone(), lb: lb.clone(), port }).await?;
    let targets = w.until(step, &check::TargetsHealthy { cluster: c.clone(), target_group: tg.clone() }).await?;
    w.attach(
        step,
        "new load balancer",
        &serde_json::json!({"cluster": c.name, "hostname": hostname, "load_balancer": lb.name, "target_group": tg, "targets": targets}),
    );
    Ok(())
}
