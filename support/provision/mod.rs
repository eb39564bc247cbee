//! Provisioning: the staged plan from fixtures/stages.yaml, executed in order
//! by a provisioner. The API provisioner creates everything through the AWS
//! and Kubernetes APIs (the twin, or any target that allows it).

pub mod api;
pub mod destroy;
pub mod plan;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use plan::{Stage, StagePlan};

/// What one stage did and when.
#[derive(Clone, Debug, Serialize)]
pub struct StageRecord {
    pub number: u32,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The plan's steps in the order they ran.
    pub steps: Vec<String>,
    /// Preconditions that held before the stage started.
    pub preconditions: Vec<String>,
    /// What was created or applied, one line each.
    pub created: Vec<String>,
}

/// The provisioning of one run.
#[derive(Clone, Debug, Serialize)]
pub struct ProvisionRecord {
    pub stages: Vec<StageRecord>,
    /// SHA-256 of the root certificate put into both clusters' cacerts.
    pub root_fingerprint: Option<String>,
}
