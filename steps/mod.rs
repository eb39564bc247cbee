//! Step definitions: parse the Gherkin, call support, assert. One module per
//! feature; the World only carries the session and what a scenario found.

/// Like anyhow's `ensure!`, for steps: the error converts into a `StepFailure`.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(anyhow::anyhow!($($arg)+).into());
        }
    };
}

/// Like anyhow's `bail!`, for steps.
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err(anyhow::anyhow!($($arg)+).into())
    };
}

pub mod ca_rotation;
pub mod destroy;
pub mod diagnosis;
pub mod gateway_operations;
pub mod load_balancing;
pub mod operations;
pub mod ordering;
pub mod probe;
pub mod provisioning;
pub mod readiness;
pub mod secret_operations;
pub mod sync;
pub mod topology;

use std::sync::{Arc, RwLock};

use cucumber::gherkin::Step;

use crate::aws::nlb::LoadBalancer;
use crate::checks::check::{self, Check};

/// The name of the evidence that carries a failed step's typed diagnosis.
pub const DIAGNOSIS_EVIDENCE: &str = "diagnosis";
use crate::run::Session;
use crate::topology::ClusterTopology;

/// The session of the run in progress (set by the runner).
static SESSION: RwLock<Option<Arc<Session>>> = RwLock::new(None);

pub fn set_session(session: Option<Arc<Session>>) {
    *SESSION.write().expect("session lock") = session;
}

#[derive(Debug, cucumber::World)]
#[world(init = Self::new)]
pub struct MeshWorld {
    pub session: Arc<Session>,
    /// The run's session while a scenario works on a separate deployment in `session`.
    pub main_session: Option<Arc<Session>>,
    /// Where the scenario stands, for attaching evidence (set by the runner's before hook).
    pub feature: String,
    pub scenario: String,
    /// The cluster a scenario is about (readiness outlines).
    pub cluster: Option<ClusterTopology>,
    pub hostname: Option<String>,
    pub load_balancer: Option<LoadBalancer>,
    pub target_group: Option<String>,
    /// The requests a load-balancing scenario sent.
    pub traffic: Option<crate::checks::load_balancing::LoadBalancingEvidence>,
    /// What a destroy did, and the code of an AWS refusal.
    pub destroyed: Option<crate::provision::destroy::DestroyRecord>,
    pub refusal: Option<String>,
    /// Every check's outcome on a deployment with a fault.
    pub sweep: Option<Vec<crate::checks::sweep::CheckOutcome>>,
    /// The traffic probe running through the scenario, if one was started.
    pub probe: Option<probe::ScenarioProbe>,
    /// What the scenario's operations on remote secrets and reader tokens did.
    pub secret_ops: secret_operations::SecretOperations,
    /// An east-west gateway Service a scenario deleted, to create it again.
    pub deleted_gateway: Option<(ClusterTopology, crate::mesh::gateway_ops::DeletedGateway)>,
}

impl MeshWorld {
    fn new() -> Self {
        let session =
            SESSION.read().expect("session lock").clone().expect("the runner opens a session before running features");
        MeshWorld {
            session,
            main_session: None,
            feature: String::new(),
            scenario: String::new(),
            cluster: None,
            hostname: None,
            load_balancer: None,
            target_group: None,
            traffic: None,
            destroyed: None,
            refusal: None,
            sweep: None,
            probe: None,
            secret_ops: Default::default(),
            deleted_gateway: None,
        }
    }

    /// On failure: what each cluster looked like, attached to the failed step.
    pub async fn attach_failure_bundle(&self) {
        let bundle = crate::report::bundle::collect(&self.session).await;
        self.session.run.evidence.add(crate::report::evidence::Evidence {
            feature: self.feature.clone(),
            scenario: self.scenario.clone(),
            step: String::new(),
            name: "failure bundle".into(),
            data: bundle,
        });
    }

    /// Options for a separate deployment on a fresh twin, like the run's.
    pub fn fresh_twin(&self) -> crate::target::TargetOptions {
        let mut opts = crate::target::TargetOptions::new(crate::target::TargetKind::Twin, self.topology().clone());
        opts.fixtures = self.session.fixtures.clone();
        // The run's API faults reach every twin of the run.
        opts.api_fault_rate = self.session.api_fault_rate;
        // And every twin runs where the run's does (in this process, or as processes).
        opts.twin_runtime = self.session.twin_runtime;
        opts.meshspec_binary = self.session.meshspec_binary.clone();
        opts
    }

    /// Provision a separate deployment and let the scenario's remaining steps
    /// act on it (the run's session waits aside until the scenario ends).
    /// Provisioning may fail; the outcome is recorded and returned.
    pub async fn use_separate(&mut self, opts: crate::target::TargetOptions) -> anyhow::Result<Result<(), String>> {
        let scratch = Session::open(opts).await?;
        let outcome =
            crate::provision::api::provision(&scratch).await.map_err(|e| crate::provision::ProvisionFailure::of(&e));
        let result = outcome.as_ref().map(|_| ()).map_err(|f| f.message.clone());
        let _ = scratch.run.provisioned.set(outcome);
        self.main_session = Some(std::mem::replace(&mut self.session, scratch));
        Ok(result)
    }

    /// Stop a separate deployment the scenario started (its twin), if any.
    pub async fn close_separate(&mut self) {
        if let Some(main) = self.main_session.take() {
            let scratch = std::mem::replace(&mut self.session, main);
            // Its evidence belongs to the run's reports.
            for e in scratch.run.evidence.all() {
                self.session.run.evidence.add(e);
            }
            self.session.run.convergence.absorb(&scratch.run.convergence, scratch.fault.map(|f| f.name()));
            scratch.close().await;
        }
    }

    pub fn topology(&self) -> &crate::topology::Topology {
        &self.session.topology
    }

    pub fn clusters(&self) -> Vec<ClusterTopology> {
        self.session.topology.clusters.clone()
    }

    /// Attach what a check saw to the step that checked it.
    pub fn attach(&self, step: &cucumber::gherkin::Step, name: &str, data: &impl serde::Serialize) {
        self.session.run.evidence.add(crate::report::evidence::Evidence {
            feature: self.feature.clone(),
            scenario: self.scenario.clone(),
            step: step.value.clone(),
            name: name.to_string(),
            data: serde_json::to_value(data).unwrap_or_else(|e| serde_json::json!({"unserializable": e.to_string()})),
        });
    }

    /// Wait on a check within its deadline; a failure's typed diagnosis is
    /// attached to the step (the reports read it from there, never from text).
    pub async fn until<C: Check>(&self, step: &Step, c: &C) -> Result<C::Evidence, StepFailure> {
        self.judged(step, check::until(&self.session, c).await)
    }

    /// Wait on a check within a deadline of the step's choosing.
    pub async fn until_within<C: Check>(
        &self,
        step: &Step,
        c: &C,
        deadline: std::time::Duration,
    ) -> Result<C::Evidence, StepFailure> {
        self.judged(step, check::until_within(&self.session, c, deadline).await)
    }

    /// Observe a check once: a state that must already hold.
    pub async fn now<C: Check>(&self, step: &Step, c: &C) -> Result<C::Evidence, StepFailure> {
        self.judged(step, check::now(&self.session, c).await)
    }

    fn judged<T>(&self, step: &Step, r: Result<T, check::CheckFailure>) -> Result<T, StepFailure> {
        r.map_err(|f| {
            if let Some(d) = &f.diagnosis {
                self.attach(step, DIAGNOSIS_EVIDENCE, d);
            }
            StepFailure(f.into())
        })
    }

    /// A failure that is not a check's, with the diagnosis its chain carries, if any.
    pub fn failed(&self, step: &Step, e: anyhow::Error) -> StepFailure {
        if let Some(d) = check::failure_diagnosis(&e) {
            self.attach(step, DIAGNOSIS_EVIDENCE, &d);
        }
        StepFailure(e)
    }

    pub fn cluster(&self) -> anyhow::Result<&ClusterTopology> {
        self.cluster.as_ref().ok_or_else(|| anyhow::anyhow!("no cluster chosen by an earlier step"))
    }
}

/// A failed step. cucumber prints a step's error with `{}`, which for anyhow
/// shows only the outermost context: this shows the whole chain, so that a
/// failure says what was awaited, what was last seen and the diagnosis.
pub struct StepFailure(pub anyhow::Error);

// Rendered once, as the user reads errors everywhere (no Rust Debug of API errors).
impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::kube::failure::render(&self.0))
    }
}

impl std::fmt::Debug for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::kube::failure::render(&self.0))
    }
}

impl From<anyhow::Error> for StepFailure {
    fn from(e: anyhow::Error) -> Self {
        StepFailure(e)
    }
}

/// Step results: a failed check is an Err whose message is the report.
pub type StepResult = Result<(), StepFailure>;
