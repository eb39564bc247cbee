//! Steps of features/diagnosis.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{given, then, when};

use super::{MeshWorld, StepResult};
use crate::checks::sweep;
use crate::faults::Fault;

/// Deadlines for a deployment that is expected to fail: a fifth of the usual,
/// still minutes of simulated time.
const FAULT_TIMEOUT_SCALE: f64 = 0.2;

/// A fresh twin provisioned with a fault. Provisioning may fail: that failure
/// is itself what the checks report.
#[given(expr = "a separate deployment on a fresh twin, provisioned with the fault {string}")]
async fn with_fault(w: &mut MeshWorld, fault: String) -> StepResult {
    let mut opts = w.fresh_twin();
    opts.fault = Some(Fault::parse(&fault)?);
    opts.timeout_scale = FAULT_TIMEOUT_SCALE;
    // A failed provisioning is kept: it is what the checks then report.
    let _ = w.use_separate(opts).await?;
    Ok(())
}

/// Run every check of the runbook against the deployment and keep each outcome (attached as evidence).
#[when("every check of the runbook runs against it")]
async fn sweep_all(w: &mut MeshWorld, step: &Step) -> StepResult {
    let outcomes = sweep::run(&w.session).await;
    w.attach(step, "checks", &outcomes);
    w.sweep = Some(outcomes);
    Ok(())
}

/// At least one check failed, and the diagnosis of a failed check names the cause.
#[then(expr = "a check fails with a diagnosis naming {string}")]
async fn diagnosed(w: &mut MeshWorld, cause: String) -> StepResult {
    let outcomes = w.sweep.as_ref().context("no checks ran in an earlier step")?;
    sweep::a_diagnosis_names(outcomes, &cause).map_err(anyhow::Error::msg)?;
    Ok(())
}
