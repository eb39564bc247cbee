//! Steps of features/destroy.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::{MeshWorld, StepResult};
use crate::aws::connect::ServiceError;
use crate::aws::network;
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

/// No LoadBalancer Service and no NLB, target group or ENI of either cluster was left when stage two began.
#[then("no Service of type LoadBalancer and no load balancer resource of either cluster remained when the clusters were deleted")]
async fn load_balancers_first(w: &mut MeshWorld) -> StepResult {
    let record = w.destroyed.as_ref().context("nothing was destroyed by an earlier step")?;
    ensure!(
        record.load_balancer_services_before_stage_two == 0,
        "{} LoadBalancer Services were left",
        record.load_balancer_services_before_stage_two
    );
    ensure!(
        record.leaks_before_stage_two.is_empty(),
        "left when the clusters went: {:?}",
        record.leaks_before_stage_two
    );
    ensure!(
        record.deleted.iter().any(|d| d.contains("Service istio-ingress/istio-eastwestgateway")),
        "the gateway Services were not deleted: {:?}",
        record.deleted
    );
    Ok(())
}

/// Nothing tagged for either cluster is left in EC2, ELBv2 or EKS; attaches what the sweep found.
#[then("a leak sweep by tags finds nothing of either cluster")]
async fn leak_sweep(w: &mut MeshWorld, step: &Step) -> StepResult {
    let left = destroy::leak_sweep(&w.session).await?;
    w.attach(step, "leak sweep", &left);
    ensure!(left.is_empty(), "left behind: {left:?}");
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
    match &w.refusal {
        Some(got) if *got == code => Ok(()),
        Some(got) => bail!("AWS refused with {got}, expected {code}"),
        None => bail!("AWS accepted the delete"),
    }
}

/// The cluster's VPC is still there (one VPC by that name).
#[then(expr = "the VPC of {string} still exists")]
async fn vpc_exists(w: &mut MeshWorld, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    ensure!(network::vpcs_named(w.session.aws()?, &c.vpc_name).await?.len() == 1, "VPC {} is gone", c.vpc_name);
    Ok(())
}
