//! Steps of features/readiness.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::{MeshWorld, StepResult};
use crate::checks::readiness as check;
use crate::topology::names;

/// Wait until the cluster's east-west gateway Service has a load balancer hostname in its status.
#[when(expr = "the east-west gateway Service of {string} has a load balancer hostname")]
async fn gateway_hostname(w: &mut MeshWorld, step: &Step, cluster: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    w.hostname = Some(w.until(step, &check::GatewayHostname(c.clone())).await?);
    w.cluster = Some(c);
    Ok(())
}

/// Find the load balancer whose DNSName is that hostname, through every page of DescribeLoadBalancers.
#[then("the load balancer with that DNS name is found among all load balancers")]
async fn nlb_found(w: &mut MeshWorld, step: &Step) -> StepResult {
    let hostname = w.hostname.clone().context("no hostname from an earlier step")?;
    let cluster = w.cluster()?.name.clone();
    w.load_balancer = Some(w.until(step, &check::LoadBalancerOf { cluster, hostname, active: false }).await?);
    Ok(())
}

/// Wait for the load balancer to leave `provisioning`; it must then have this type, scheme and state.
#[then(expr = "it is of type {string} with scheme {string} and becomes {string}")]
async fn nlb_kind(w: &mut MeshWorld, step: &Step, kind: String, scheme: String, state: String) -> StepResult {
    let hostname = w.hostname.clone().context("no hostname from an earlier step")?;
    let cluster = w.cluster()?.name.clone();
    let lb = w.until(step, &check::LoadBalancerOf { cluster, hostname, active: true }).await?;
    check::load_balancer_is(&lb, &kind, &scheme, Some(&state)).map_err(anyhow::Error::msg)?;
    w.load_balancer = Some(lb);
    Ok(())
}

/// The load balancer has a listener on the cross-network port whose action forwards to a target group.
#[then(expr = "its listener on port {int} forwards to a target group")]
async fn listener_forwards(w: &mut MeshWorld, step: &Step, port: u16) -> StepResult {
    ensure!(port == names::CROSS_NETWORK_PORT, "cross-network traffic uses port {}", names::CROSS_NETWORK_PORT);
    let lb = w.load_balancer.clone().context("no load balancer from an earlier step")?;
    let cluster = w.cluster()?.name.clone();
    w.target_group = Some(w.now(step, &check::ListenerTargetGroup { cluster, lb, port }).await?);
    Ok(())
}

/// Wait until the target group has targets and EVERY one is healthy (the check refuses an empty group);
/// attaches each target's health.
#[then("every target of that target group becomes healthy")]
async fn every_target_healthy(w: &mut MeshWorld, step: &Step) -> StepResult {
    let tg = w.target_group.clone().context("no target group from an earlier step")?;
    let c = w.cluster()?.clone();
    let targets = w.until(step, &check::TargetsHealthy { cluster: c.clone(), target_group: tg.clone() }).await?;
    let cluster = c.name;
    w.attach(step, "target health", &serde_json::json!({"cluster": cluster, "target_group": tg, "targets": targets}));
    Ok(())
}

/// The hostname resolves to exactly the public addresses of the load balancer's nodes (its network interfaces),
/// one per availability zone; attaches the addresses.
#[then("the hostname resolves to one public address per availability zone")]
async fn resolves(w: &mut MeshWorld, step: &Step) -> StepResult {
    let lb = w.load_balancer.clone().context("no load balancer from an earlier step")?;
    let cluster = w.cluster()?.name.clone();
    let ips = w.until(step, &check::ResolvesPerZone { cluster, lb: lb.clone() }).await?;
    w.attach(step, "resolved addresses", &serde_json::json!({"hostname": lb.dns_name, "addresses": ips}));
    Ok(())
}
