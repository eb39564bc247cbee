//! The k3s target: two K3s clusters in Docker containers through
//! testcontainers (or the stand-in as local processes), no AWS; provisioned by
//! provision/k3s.rs, reached through the kubeconfig it writes. The clusters are
//! the run's own, so it provisions without `--allow-provision`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;

use super::driver::{terraform_refused, TargetDriver};
use super::rules::{Env, ProvisionerKind, TargetRequest};
use super::TargetKind;
use crate::containers::standin_image::ImageRef;
use crate::provision::k3s::K3sProvisioner;
use crate::provision::Provisioner;
use crate::topology::Topology;

pub struct K3sTarget;

impl K3sTarget {
    fn provisioner_for(req: &TargetRequest) -> Result<K3sProvisioner> {
        let image = ImageRef::parse(&req.k3s_image)?;
        // Where the clients read the clusters' kubeconfig (client keys: 0600, removed at the end).
        let kubeconfig = std::env::temp_dir().join(format!("meshspec-k3s-{}.kubeconfig", std::process::id()));
        Ok(K3sProvisioner::new(req.k3s_runtime, image, kubeconfig))
    }
}

impl TargetDriver for K3sTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::K3s
    }

    fn has_aws(&self) -> bool {
        false
    }

    fn provisions_unasked(&self) -> bool {
        true
    }

    fn default_plan(&self) -> &'static str {
        crate::provision::k3s::PLAN
    }

    fn provisioner(&self, choice: ProvisionerKind, req: &TargetRequest, _env: Env) -> Result<Provisioner> {
        match choice {
            ProvisionerKind::Api => Ok(Provisioner::Own(Arc::new(Self::provisioner_for(req)?))),
            ProvisionerKind::Terraform => terraform_refused(self.kind()),
        }
    }

    fn contexts(&self, topology: &Topology, _env: Env) -> BTreeMap<String, String> {
        topology.clusters.iter().map(|c| (c.name.clone(), crate::containers::k3s::context(&c.name))).collect()
    }

    /// The run's containers, networks and processes carry its id; the ledger
    /// names the directories of its kubeconfigs.
    fn reap_provisioner(&self, req: &TargetRequest, entries: &[crate::ledger::Entry], _env: Env) -> Provisioner {
        let Ok(mut p) = Self::provisioner_for(req) else { return Provisioner::Api };
        let run = entries.first().map(|e| e.run_id.clone()).unwrap_or_default();
        let files = entries
            .iter()
            .filter(|e| e.kind == crate::containers::processes::LEDGER_FILES)
            .map(|e| std::path::PathBuf::from(&e.name))
            .collect();
        p.reaping = Some((run, files));
        Provisioner::Own(Arc::new(p))
    }
}
