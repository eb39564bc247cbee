//! Provisioning: the staged plan from fixtures/stages.yaml, executed in order
//! by a provisioner. The API provisioner creates everything through the AWS
//! and Kubernetes APIs (the twin, or any target that allows it). A target
//! meshspec may not provision is only verified: the deployment must be there.

pub mod api;
pub mod destroy;
pub mod existing;
pub mod k3s;
pub mod kind;
pub mod plan;
pub mod preconditions;
pub mod stages;
pub mod terraform;

use anyhow::Result;

use crate::run::Session;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use plan::{Stage, StagePlan, StageStep};

/// What one stage did and when.
#[derive(Clone, Debug, Serialize)]
pub struct StageRecord {
    pub number: u32,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The plan's steps in the order they ran.
    pub steps: Vec<String>,
    /// Preconditions observed to hold before the stage started (names).
    pub preconditions: Vec<String>,
    /// The same, with when each was checked and what it showed.
    pub precondition_evidence: Vec<preconditions::PreconditionHeld>,
    /// What was created or applied, one line each.
    pub created: Vec<String>,
}

impl StageRecord {
    /// The record of `stage` of the plan, whose preconditions were seen to hold as
    /// `held` says, started at `started_at` and finished now.
    pub fn of(
        stage: &Stage,
        held: Vec<preconditions::PreconditionHeld>,
        started_at: DateTime<Utc>,
        created: Vec<String>,
    ) -> Self {
        StageRecord {
            number: stage.number,
            name: stage.name.clone(),
            started_at,
            finished_at: Utc::now(),
            steps: stage.steps.iter().map(|s| s.as_str().to_string()).collect(),
            preconditions: held.iter().map(|p| p.name.clone()).collect(),
            precondition_evidence: held,
            created,
        }
    }
}

/// Who made the deployment a run verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionedBy {
    /// meshspec, through the AWS and Kubernetes APIs.
    Api,
    /// The user's Terraform, driven stage by stage.
    Terraform,
    /// kind, Helm and meshspec's own applies.
    Kind,
    /// K3s containers through testcontainers, and meshspec's own applies.
    K3s,
    /// Nobody in this run: it was found on the target.
    Existing,
}

/// Why provisioning failed: the whole error chain as text, and its typed diagnosis if it has one.
#[derive(Clone, Debug)]
pub struct ProvisionFailure {
    pub message: String,
    pub diagnosis: Option<crate::checks::check::Diagnosis>,
}

impl ProvisionFailure {
    pub fn of(e: &anyhow::Error) -> Self {
        ProvisionFailure {
            message: crate::kube::failure::render(e),
            diagnosis: crate::checks::check::failure_diagnosis(e),
        }
    }
}

impl std::fmt::Display for ProvisionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a target that may be provisioned is provisioned.
#[derive(Clone, Debug)]
pub enum Provisioner {
    Api,
    Terraform(terraform::TerraformProvisioner),
    Kind(kind::KindProvisioner),
    /// One a target kind brings in its own file (k3s).
    Own(std::sync::Arc<dyn OwnProvisioner>),
}

impl Provisioner {
    /// Whether it makes the mesh's CA itself, and so holds the root key for the
    /// run. The user's Terraform makes `cacerts` where meshspec cannot see the key.
    pub fn makes_ca(&self) -> bool {
        match self {
            Provisioner::Api | Provisioner::Kind(_) => true,
            Provisioner::Terraform(_) => false,
            Provisioner::Own(p) => p.makes_ca(),
        }
    }
}

/// A provisioner that lives with its target kind: how it deploys and tears
/// down, what it checks before the target opens and for doctor, and what it
/// removes when the target closes (what must not outlive the run).
pub trait OwnProvisioner: Send + Sync + std::fmt::Debug {
    /// The kubeconfig the target's clients read, when the provisioner writes one.
    fn kubeconfig(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Before the target opens: what it needs answers, or one line why not.
    fn preflight(&self) -> futures::future::BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn deploy<'a>(&'a self, session: &'a Session) -> futures::future::BoxFuture<'a, Result<ProvisionRecord>>;

    /// Whether `deploy` makes the mesh's CA itself (it then holds the root key for the run).
    fn makes_ca(&self) -> bool;

    fn teardown<'a>(
        &'a self,
        session: &'a Session,
    ) -> futures::future::BoxFuture<'a, Result<Vec<crate::aws::network::Leftover>>>;

    /// When the target closes.
    fn close(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// doctor's findings; none means doctor goes on with the clusters.
    fn doctor(&self) -> futures::future::BoxFuture<'_, Vec<crate::doctor::Finding>> {
        Box::pin(async { Vec::new() })
    }
}

/// The provisioning of one run.
#[derive(Clone, Debug, Serialize)]
pub struct ProvisionRecord {
    pub by: ProvisionedBy,
    pub stages: Vec<StageRecord>,
    /// SHA-256 of the root certificate put into both clusters' cacerts.
    pub root_fingerprint: Option<String>,
}

/// The deployment of this run: provisioned stage by stage when the target
/// allows it, else found on the target and left as it is.
pub async fn deploy(session: &Session) -> Result<ProvisionRecord> {
    if !session.allow_provision {
        return existing::verify(session).await;
    }
    match &session.provisioner {
        Provisioner::Api => api::provision(session).await,
        Provisioner::Terraform(p) => terraform::provision(session, p).await,
        Provisioner::Kind(p) => kind::provision(session, p).await,
        Provisioner::Own(p) => p.deploy(session).await,
    }
}

/// Tear down what this target's provisioner made, in the runbook's order;
/// returns what the leak sweep still finds.
pub async fn teardown(session: &Session) -> Result<Vec<crate::aws::network::Leftover>> {
    anyhow::ensure!(session.allow_provision, "destroy is not allowed on the {} target", session.kind);
    match &session.provisioner {
        Provisioner::Api => {
            destroy::destroy(session).await?;
            destroy::leak_sweep(session).await
        }
        Provisioner::Terraform(p) => Ok(terraform::destroy(session, &p.terraform).await?.left),
        Provisioner::Kind(p) => kind::teardown(session, p).await,
        Provisioner::Own(p) => p.teardown(session).await,
    }
}
