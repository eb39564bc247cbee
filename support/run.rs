//! What a run did on its target: the provision record, the checks' evidence,
//! the convergence times and the ledger of what it created. A `Session` is
//! the steps' world: the target and the run, opened together.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::OnceCell;

use crate::provision::{ProvisionFailure, ProvisionRecord};
use crate::target::{Target, TargetOptions};

/// What one run did.
#[derive(Default)]
pub struct Run {
    /// The ledger of what this run creates, when it may create anything.
    pub ledger: Option<crate::ledger::Ledger>,
    /// The provisioning of this run, done once and shared by every scenario.
    pub provisioned: OnceCell<std::result::Result<ProvisionRecord, ProvisionFailure>>,
    /// What the checks of this run saw, for the reports.
    pub evidence: crate::report::evidence::EvidenceStore,
    /// When each convergence point was reached, and each failed check's time to diagnosis.
    pub convergence: crate::report::convergence::ConvergenceStore,
    /// The shared root of the cacerts this run made (its key only in memory), for
    /// issuing new intermediates from it; `None` where the run did not make them.
    pub root_ca: std::sync::Mutex<Option<Arc<crate::mesh::cacerts::RootCa>>>,
}

impl Run {
    /// Record a resource in the run ledger before creating it.
    pub fn record(&self, cluster: &str, kind: &str, name: &str, tags: Vec<(String, String)>) -> Result<()> {
        match &self.ledger {
            Some(l) => l.record(cluster, kind, name, tags),
            None => Ok(()),
        }
    }
}

/// A target and what this run did on it. Derefs to the target, so that
/// `session.kube(..)` and `session.topology` read as before.
pub struct Session {
    pub target: Target,
    pub run: Run,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("target", &self.target).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Session {
    type Target = Target;

    fn deref(&self) -> &Target {
        &self.target
    }
}

impl Session {
    /// Open the target and start a run on it, with a ledger when the run may
    /// create anything and a ledger directory is given.
    pub async fn open(opts: TargetOptions) -> Result<Arc<Session>> {
        let ledger_dir = opts.ledger_dir.clone();
        let target = Target::open(opts).await?;
        let ledger = match (&ledger_dir, target.allow_provision) {
            (Some(dir), true) => Some(crate::ledger::Ledger::create(dir, &target.kind.to_string())?),
            _ => None,
        };
        Ok(Arc::new(Session { target, run: Run { ledger, ..Run::default() } }))
    }

    /// Record a resource in the run ledger before creating it.
    pub fn record(&self, cluster: &str, kind: &str, name: &str, tags: Vec<(String, String)>) -> Result<()> {
        self.run.record(cluster, kind, name, tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetKind;
    use crate::topology::Topology;

    #[tokio::test]
    async fn a_run_keeps_a_ledger_only_when_it_may_create_anything() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = TargetOptions::new(TargetKind::Kind, Topology::seed());
        opts.ledger_dir = Some(dir.path().to_path_buf());
        let verified = Session::open(opts.clone()).await.unwrap();
        assert!(verified.run.ledger.is_none());
        verified.record("eks-1", "kind cluster", "cluster1", vec![]).unwrap();
        opts.allow_provision = true;
        let provisioning = Session::open(opts).await.unwrap();
        provisioning.record("eks-1", "kind cluster", "cluster1", vec![]).unwrap();
        let run_id = provisioning.run.ledger.as_ref().unwrap().run_id.clone();
        let read = crate::ledger::read(dir.path(), &run_id).unwrap();
        assert_eq!(read.entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["cluster1"]);
        // The target is reached through the session as before.
        assert_eq!(provisioning.kind, TargetKind::Kind);
    }
}
