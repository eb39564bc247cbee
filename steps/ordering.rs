//! Steps of features/ordering.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{given, then, when};

use super::{MeshWorld, StepResult};
use crate::checks::ordering as check;
use crate::checks::readiness;
use crate::topology::names;

/// Before each stage of this run's provisioning started, every precondition the table names was seen to hold
/// in every cluster (checked on the target, before the stage's start time); attaches what each showed.
#[then("each stage started only once its preconditions held:")]
async fn preconditions_held(w: &mut MeshWorld, step: &Step) -> StepResult {
    let table = step.table.as_ref().context("this step needs a table")?;
    let record = match w.session.run.provisioned.get() {
        Some(Ok(r)) => r,
        _ => bail!("the deployment was not provisioned by meshspec in this run"),
    };
    for row in &table.rows[1..] {
        let number: u32 = row[0].parse().context("a stage number")?;
        let stage = record.stages.iter().find(|s| s.number == number).with_context(|| format!("no stage {number}"))?;
        let held: std::collections::BTreeSet<&str> = stage
            .precondition_evidence
            .iter()
            .filter(|p| p.checked_at <= stage.started_at && p.seen.len() == w.topology().clusters.len())
            .map(|p| p.name.as_str())
            .collect();
        for want in row[1].split(',').map(str::trim).filter(|p| !p.is_empty()) {
            ensure!(
                held.contains(want),
                "stage {number} ({}) started at {} without {want} seen to hold in every cluster; seen: {:?}",
                stage.name,
                stage.started_at,
                stage.precondition_evidence
            );
        }
        w.attach(step, &format!("stage {number} preconditions"), &stage.precondition_evidence);
    }
    Ok(())
}

/// istiod's pods started after cacerts was created, and the root it hands out in the namespace's
/// istio-ca-root-cert is cacerts' root; attaches both times and roots per cluster.
#[then(expr = "in each cluster istiod started after cacerts existed and serves the cacerts root in {string}")]
async fn istiod_after_cacerts(w: &mut MeshWorld, step: &Step, namespace: String) -> StepResult {
    for c in w.clusters() {
        let evidence =
            w.until(step, &check::IstiodAfterCacerts { cluster: c.clone(), namespace: namespace.clone() }).await?;
        w.attach(step, &format!("istiod and cacerts in {}", c.name), &evidence);
    }
    Ok(())
}

/// Both clusters' istio-ca-root-cert in the namespace hold the same root.
#[then(expr = "both clusters serve one root in {string}")]
async fn one_served_root(w: &mut MeshWorld, namespace: String) -> StepResult {
    check::one_served_root(&w.session, &namespace).await?;
    Ok(())
}

/// The load balancer controller ran before the east-west gateway Service was created, by evidence that
/// survives controller restarts: this run's stage record, else the loadBalancerClass the controller's webhook
/// sets at creation. Where neither exists (a verify-only run), the order is reported as unknown, with why,
/// on stderr and in the attached evidence, rather than failed or passed silently.
#[then("in each cluster the load balancer controller was running before the east-west gateway Service was created")]
async fn controller_first(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        let evidence = check::controller_before_gateway(&w.session, &c).await.map_err(|e| w.failed(step, e))?;
        let name = match &evidence.order {
            check::ControllerOrder::Unknown { why } => {
                eprintln!(
                    "note: {}: the order of the load balancer controller and the gateway Service is unknown: {why}",
                    c.name
                );
                // The name is what the report page shows of collapsed evidence.
                format!("order unknown in {}: controller and gateway", c.name)
            }
            _ => format!("controller and gateway in {}", c.name),
        };
        w.attach(step, &name, &evidence);
    }
    Ok(())
}

/// Each east-west gateway Service's NLB (found by its hostname) has this type and scheme.
#[then(expr = "each east-west gateway load balancer is of type {string} with scheme {string}")]
async fn gateway_lb_kind(w: &mut MeshWorld, step: &Step, kind: String, scheme: String) -> StepResult {
    for c in w.clusters() {
        let hostname = w.until(step, &readiness::GatewayHostname(c.clone())).await?;
        let lb = w.until(step, &readiness::LoadBalancerOf { cluster: c.name.clone(), hostname, active: false }).await?;
        readiness::load_balancer_is(&lb, &kind, &scheme, None).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// A second deployment, on its own fresh twin, provisioned with another plan:
/// the scenario's remaining steps act on it; the run's deployment is untouched.
#[given(expr = "a separate deployment on a fresh twin, provisioned with the plan {string}")]
async fn separate_deployment(w: &mut MeshWorld, plan: String) -> StepResult {
    let mut opts = w.fresh_twin();
    opts.plan = plan;
    w.use_separate(opts).await?.map_err(|e| anyhow::anyhow!("provisioning failed: {e}"))?;
    Ok(())
}

/// Without a load balancer controller the gateway Service gets no address within a shortened deadline,
/// the failure names the cause, and no load balancer resource exists.
#[then(expr = "the east-west gateway of {string} gets no load balancer address, with a diagnosis naming {string}")]
async fn no_address(w: &mut MeshWorld, cluster: String, cause: String) -> StepResult {
    let c = w.topology().cluster(&cluster)?.clone();
    // No controller is a definite break: the check ends at once, well within its deadline.
    match crate::checks::check::until(&w.session, &readiness::GatewayHostname(c)).await {
        Ok(h) => bail!("the gateway got {h} although no load balancer controller runs"),
        Err(f) => {
            let d = f.diagnosis.as_ref().map(|d| d.cause.as_str()).unwrap_or_default();
            ensure!(d.contains(&cause), "the diagnosis does not name {cause:?}: {f}");
        }
    }
    crate::checks::destroy::no_load_balancer_resources(&w.session).await.context("without a controller")?;
    Ok(())
}

/// Install the AWS load balancer controller in both clusters (the step of stage 2, run late).
#[when("the AWS load balancer controller is installed in both clusters")]
async fn install_controller(w: &mut MeshWorld) -> StepResult {
    crate::provision::api::install_load_balancer_controller(&w.session).await?;
    Ok(())
}

/// The istiod-after-cacerts check fails in each cluster, and its failure names the root istiod serves there
/// (its fingerprint, read separately from istio-ca-root-cert), which is not cacerts' root.
#[then("in each cluster the ordering check of istiod and cacerts fails, naming the root istiod serves")]
async fn ordering_check_fails(w: &mut MeshWorld) -> StepResult {
    for c in w.clusters() {
        let served = check::served_root(&w.session, &c, names::SAMPLE).await?;
        let ordering = check::IstiodAfterCacerts { cluster: c.clone(), namespace: names::SAMPLE.into() };
        match crate::checks::check::until(&w.session, &ordering).await {
            Ok(e) => bail!("{}: the check passed on a wrong order: {e:?}", c.name),
            Err(f) => {
                let msg = f.last_seen;
                ensure!(
                    msg.contains(&format!("istiod serves the root {}", &served[..12])),
                    "{}: the failure does not name the served root {}: {msg}",
                    c.name,
                    &served[..12]
                );
            }
        }
    }
    Ok(())
}

/// Only the local version answered; every other answer is an Envoy 503 with this reason.
#[then(expr = "only the local version answers and every other answer is a 503 with {string}")]
async fn local_only_and_503(w: &mut MeshWorld, reason: String) -> StepResult {
    let e = w.traffic.as_ref().context("no requests were sent by an earlier step")?;
    let remote = w.topology().peer_of(w.cluster()?).sample_version.clone();
    e.local_only_with_503(&remote, &reason).map_err(anyhow::Error::msg)?;
    Ok(())
}
