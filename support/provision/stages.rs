//! The one stage loop every provisioner runs: each stage's preconditions are
//! checked on the target, its work is timed, a failure names the stage (and the
//! step) and that the stages after it did not run, and each stage leaves a
//! `StageRecord`. A provisioner only says how it executes a step.

use std::future::Future;

use anyhow::{bail, Context, Result};

use super::plan::{Stage, StagePlan, StageStep};
use super::StageRecord;
use crate::run::Session;

/// How a stage's work is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageUnit {
    /// Step by step, each through `StageExecutor::step`.
    Steps,
    /// The whole stage at once, through `StageExecutor::stage` (Terraform applies
    /// a stage's `-target`s in one run).
    Stage,
}

/// What a provisioner supplies to the stage loop.
pub trait StageExecutor: Send {
    /// Who runs the plan, for refusals, e.g. "the kind provisioner".
    fn who(&self) -> &'static str;

    /// The plan written for this provisioner, named when another plan asks it
    /// for a step it cannot run.
    fn plan_file(&self) -> &'static str;

    /// Whether it can run `step`; the loop refuses a plan with another step
    /// before any stage starts.
    fn supports(&self, step: StageStep) -> bool;

    /// How the stage's work is split (step by step unless said otherwise).
    fn unit(&self) -> StageUnit {
        StageUnit::Steps
    }

    /// Run one step; what it created or applied, one line each.
    fn step(&mut self, session: &Session, step: StageStep) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Run a whole stage, for executors whose unit is `StageUnit::Stage`.
    fn stage(&mut self, _session: &Session, stage: &Stage) -> impl Future<Output = Result<Vec<String>>> + Send {
        let who = self.who();
        async move { bail!("{who} runs stage {} step by step, not as a whole", stage.number) }
    }
}

/// Refuse a plan that asks `exec` for a step it cannot run, before anything is created.
pub fn check_supported(exec: &impl StageExecutor, plan: &StagePlan) -> Result<()> {
    for stage in &plan.stages {
        for &step in &stage.steps {
            if !exec.supports(step) {
                bail!(
                    "stage {} ({}): {} has no step {:?} (its plan is {})",
                    stage.number,
                    stage.name,
                    exec.who(),
                    step.as_str(),
                    exec.plan_file()
                );
            }
        }
    }
    Ok(())
}

/// Run `plan` stage by stage with `exec`; stops at the first failure.
pub async fn run<E: StageExecutor>(session: &Session, plan: &StagePlan, exec: &mut E) -> Result<Vec<StageRecord>> {
    check_supported(exec, plan)?;
    let mut records = Vec::new();
    for stage in &plan.stages {
        // A precondition's error names its stage already.
        let held = super::preconditions::check_stage(session, stage).await?;
        let started_at = chrono::Utc::now();
        let mut created = Vec::new();
        match exec.unit() {
            StageUnit::Steps => {
                for &step in &stage.steps {
                    tracing::info!(stage = stage.number, step = %step, "provisioning");
                    created.extend(exec.step(session, step).await.with_context(|| {
                        format!("stage {} ({}), step {step}; the stages after it did not run", stage.number, stage.name)
                    })?);
                }
            }
            StageUnit::Stage => {
                created.extend(exec.stage(session, stage).await.with_context(|| {
                    format!("stage {} ({}); the stages after it did not run", stage.number, stage.name)
                })?);
            }
        }
        records.push(StageRecord::of(stage, held, started_at, created));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{TargetKind, TargetOptions};
    use crate::topology::Topology;

    /// Runs what it is told, fails at `fail`, and notes each step it was asked for.
    struct Scripted {
        fail: Option<StageStep>,
        ran: Vec<StageStep>,
        refuses: Option<StageStep>,
    }

    impl StageExecutor for Scripted {
        fn who(&self) -> &'static str {
            "the scripted provisioner"
        }
        fn plan_file(&self) -> &'static str {
            "plans/scripted.yaml"
        }
        fn supports(&self, step: StageStep) -> bool {
            self.refuses != Some(step)
        }
        async fn step(&mut self, _session: &Session, step: StageStep) -> Result<Vec<String>> {
            self.ran.push(step);
            if self.fail == Some(step) {
                bail!("{step} broke");
            }
            Ok(vec![format!("made by {step}")])
        }
    }

    fn plan() -> StagePlan {
        serde_yaml::from_str(
            "stages:
               - {number: 1, name: infrastructure, summary: s, steps: [cacerts, reader-tokens]}
               - {number: 2, name: control-plane, summary: s, steps: [istiod, gateways]}
               - {number: 3, name: workloads, summary: s, steps: [samples]}",
        )
        .unwrap()
    }

    /// A session on the kind target: opening it starts nothing and calls nothing,
    /// and these plans have no preconditions.
    async fn session() -> std::sync::Arc<Session> {
        Session::open(TargetOptions::new(TargetKind::Kind, Topology::seed())).await.unwrap()
    }

    #[tokio::test]
    async fn the_loop_stops_at_the_first_failing_step_and_names_its_stage() {
        let session = session().await;
        let mut exec = Scripted { fail: Some(StageStep::Istiod), ran: Vec::new(), refuses: None };
        let e = run(&session, &plan(), &mut exec).await.unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "stage 2 (control-plane), step istiod; the stages after it did not run: istiod broke"
        );
        assert_eq!(exec.ran, [StageStep::Cacerts, StageStep::ReaderTokens, StageStep::Istiod]);
    }

    #[tokio::test]
    async fn every_stage_leaves_a_record_of_its_steps_in_order() {
        let session = session().await;
        let mut exec = Scripted { fail: None, ran: Vec::new(), refuses: None };
        let records = run(&session, &plan(), &mut exec).await.unwrap();
        let names: Vec<_> = records.iter().map(|r| (r.number, r.name.as_str(), r.steps.clone())).collect();
        assert_eq!(
            names,
            [
                (1, "infrastructure", vec!["cacerts".to_string(), "reader-tokens".to_string()]),
                (2, "control-plane", vec!["istiod".to_string(), "gateways".to_string()]),
                (3, "workloads", vec!["samples".to_string()]),
            ]
        );
        assert_eq!(records[2].created, ["made by samples"]);
        assert!(records.iter().all(|r| r.started_at <= r.finished_at));
    }

    #[tokio::test]
    async fn a_step_the_provisioner_cannot_run_is_refused_before_anything_runs() {
        let session = session().await;
        let mut exec = Scripted { fail: None, ran: Vec::new(), refuses: Some(StageStep::Samples) };
        let e = run(&session, &plan(), &mut exec).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "stage 3 (workloads): the scripted provisioner has no step \"samples\" (its plan is plans/scripted.yaml)"
        );
        assert!(exec.ran.is_empty(), "nothing ran: {:?}", exec.ran);
    }

    struct Whole;

    impl StageExecutor for Whole {
        fn who(&self) -> &'static str {
            "the whole-stage provisioner"
        }
        fn plan_file(&self) -> &'static str {
            "stages.yaml"
        }
        fn supports(&self, _: StageStep) -> bool {
            true
        }
        fn unit(&self) -> StageUnit {
            StageUnit::Stage
        }
        async fn step(&mut self, _session: &Session, step: StageStep) -> Result<Vec<String>> {
            bail!("asked for step {step}")
        }
        async fn stage(&mut self, _session: &Session, stage: &Stage) -> Result<Vec<String>> {
            if stage.number == 2 {
                bail!("apply failed");
            }
            Ok(vec![format!("applied {}", stage.name)])
        }
    }

    #[tokio::test]
    async fn a_whole_stage_failure_names_the_stage_without_a_step() {
        let session = session().await;
        let e = run(&session, &plan(), &mut Whole).await.unwrap_err();
        assert_eq!(format!("{e:#}"), "stage 2 (control-plane); the stages after it did not run: apply failed");
    }
}
