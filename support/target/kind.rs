//! The kind target: two local kind clusters, no AWS; provisioned with kind,
//! Helm and MetalLB (provision/kind.rs) and reached through kind's contexts.

use std::collections::BTreeMap;

use anyhow::Result;

use super::driver::{terraform_refused, TargetDriver};
use super::rules::{kind_kubeconfig, Env, ProvisionerKind, TargetRequest};
use super::TargetKind;
use crate::provision::kind::KindProvisioner;
use crate::provision::Provisioner;
use crate::topology::Topology;

pub struct KindTarget;

impl TargetDriver for KindTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Kind
    }

    fn has_aws(&self) -> bool {
        false
    }

    fn default_plan(&self) -> &'static str {
        crate::provision::kind::PLAN
    }

    /// `--provisioner api` means meshspec's own work, which on kind is kind and Helm.
    fn provisioner(&self, choice: ProvisionerKind, req: &TargetRequest, env: Env) -> Result<Provisioner> {
        match choice {
            ProvisionerKind::Api => Ok(Provisioner::Kind(KindProvisioner {
                kubeconfig: kind_kubeconfig(req, env),
                created_per_ledger: Default::default(),
            })),
            ProvisionerKind::Terraform => terraform_refused(self.kind()),
        }
    }

    /// kind names a cluster's context kind-<name>.
    fn contexts(&self, topology: &Topology, _env: Env) -> BTreeMap<String, String> {
        topology
            .clusters
            .iter()
            .map(|c| (c.name.clone(), crate::tools::kind::context(&topology.kind_cluster(c).name)))
            .collect()
    }

    /// The kind clusters the ledger says the run created may go even unlabelled.
    fn reap_provisioner(&self, req: &TargetRequest, entries: &[crate::ledger::Entry], env: Env) -> Provisioner {
        Provisioner::Kind(KindProvisioner {
            kubeconfig: kind_kubeconfig(req, env),
            created_per_ledger: entries
                .iter()
                .filter(|e| e.kind == crate::provision::kind::LEDGER_KIND)
                .map(|e| e.name.clone())
                .collect(),
        })
    }
}
