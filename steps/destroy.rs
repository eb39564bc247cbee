//! Steps of features/destroy.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::{MeshWorld, StepResult};
use crate::aws::connect::ServiceError;
use crate::aws::network;
use crate::checks::destroy as check;
use crate::provision::destroy;

/// Tear the deployment down as the runbook does: releases first (the controller deletes its NLBs),
/// then the rest; attaches the record of what was deleted.
#[when("meshspec destroys it in the runbook's order")]
async fn destroy_it(w: &mut MeshWorld, step: &Step) -> StepResult {
    let record = destroy::destroy(&w.session).await?;
    w.attach(step, "destroy", &record);
    w.destroyed = Some(record);
    Ok(())
}

/// The load balancer resources that existed before the destroy (NLBs, target groups, security groups and
/// interfaces of either cluster) are gone from AWS now, and the gateway Services were deleted before any EKS
/// cluster (the order the destroy record shows), so that the controller, still running, deleted what it made.
#[then("no Service of type LoadBalancer and no load balancer resource of either cluster remained when the clusters were deleted")]
async fn load_balancers_first(w: &mut MeshWorld, step: &Step) -> StepResult {
    let record = w.destroyed.as_ref().context("nothing was destroyed by an earlier step")?;
    let before = check::load_balancers_deleted_first(&w.session, record).await?;
    w.attach(step, "load balancers before the destroy", &before);
    Ok(())
}

/// Nothing tagged for either cluster is left in EC2, ELBv2 or EKS; attaches what the sweep found.
#[then("a leak sweep by tags finds nothing of either cluster")]
async fn leak_sweep(w: &mut MeshWorld, step: &Step) -> StepResult {
    let left = destroy::leak_sweep(&w.session).await?;
    w.attach(step, "leak sweep", &left);
    check::none_left(&left).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Try to delete a cluster's VPC while everything in it still exists; the refusal's error code is kept.
#[when(expr = "the VPC of {string} is deleted before anything else")]
async fn delete_vpc_first(w: &mut MeshWorld, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    let aws = w.session.aws()?;
    let vpc = network::vpcs_named(aws, &c.vpc_name)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("no VPC {}", c.vpc_name))?;
    w.refusal = match network::delete_vpc(aws, &vpc.id).await {
        Ok(()) => None,
        Err(e) => Some(e.downcast_ref::<ServiceError>().map(|s| s.code.clone()).unwrap_or_else(|| format!("{e:#}"))),
    };
    Ok(())
}

/// The earlier delete was refused with exactly this AWS error code.
#[then(expr = "AWS refuses with {string}")]
async fn refused(w: &mut MeshWorld, code: String) -> StepResult {
    check::refused_with(w.refusal.as_deref(), &code).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The cluster's VPC is still there (one VPC by that name).
#[then(expr = "the VPC of {string} still exists")]
async fn vpc_exists(w: &mut MeshWorld, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    check::vpc_exists(&w.session, &c).await?;
    Ok(())
}
