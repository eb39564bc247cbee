//! What each target kind is, in one place per kind: whether it has AWS, the
//! plan and provisioner it gets, the kube contexts of its clusters, how a run
//! opens it, whether it lives in meshspec's process. The rest of meshspec asks
//! these questions of the target instead of comparing kinds, so that a new
//! kind is one file (an impl of `TargetDriver`) and one line in `driver`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use futures::future::BoxFuture;

use super::rules::{Env, ProvisionerKind, TargetRequest};
use super::{TargetKind, TargetOptions};
use crate::aws::AwsSettings;
use crate::dns::Dns;
use crate::provision::terraform::TerraformProvisioner;
use crate::provision::Provisioner;
use crate::timeouts::Timeouts;
use crate::topology::Topology;

/// What opening a target yields before its clients are made.
pub struct Opened {
    pub timeouts: Timeouts,
    pub dns: Dns,
    /// How the AWS clients are made (the twin's endpoint and credentials on the twin).
    pub aws: AwsSettings,
    /// The in-process twin, when the target is one.
    pub twin: Option<super::twin::RunningTwin>,
}

/// One target kind.
pub trait TargetDriver: Send + Sync {
    fn kind(&self) -> TargetKind;

    /// Whether it has the AWS APIs (EC2, EKS, ELBv2) and the load balancer controller.
    fn has_aws(&self) -> bool;

    /// Whether meshspec provisions it without `--allow-provision` (a target made for the run).
    fn provisions_unasked(&self) -> bool {
        false
    }

    /// Whether it lives in meshspec's process and ends with it: nothing of it
    /// can be provisioned to stay, destroyed or reaped later.
    fn in_process(&self) -> bool {
        false
    }

    /// Whether the twin's faults (`--fault`, `--api-faults`) can be injected into it.
    fn injects_faults(&self) -> bool {
        false
    }

    /// The stage plan it runs unless the user names one.
    fn default_plan(&self) -> &'static str {
        crate::provision::plan::DEFAULT_PLAN
    }

    /// The provisioner it gets without `--provisioner`.
    fn default_provisioner(&self) -> ProvisionerKind {
        ProvisionerKind::Api
    }

    /// The provisioner `choice` means here, or why it is refused.
    fn provisioner(&self, choice: ProvisionerKind, req: &TargetRequest, env: Env) -> Result<Provisioner>;

    /// Each cluster's kube context when the user names none (`--context` wins).
    fn contexts(&self, _topology: &Topology, _env: Env) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// How a reap tears down what the run with these ledger entries made: the
    /// run's Terraform root module when the ledger names one, else meshspec's API calls.
    fn reap_provisioner(&self, req: &TargetRequest, entries: &[crate::ledger::Entry], _env: Env) -> Provisioner {
        let terraform_dir = entries
            .iter()
            .filter(|e| e.kind == crate::provision::terraform::LEDGER_KIND)
            .find_map(|e| e.tags.iter().find(|(k, _)| k == "dir").map(|(_, v)| std::path::PathBuf::from(v)));
        match terraform_dir {
            Some(dir) => Provisioner::Terraform(TerraformProvisioner {
                terraform: super::rules::terraform_config(req, dir),
                kubeconfig_out: None,
            }),
            None => Provisioner::Api,
        }
    }

    /// Start what the target needs (the twin) and say how it is reached.
    /// By default: EKS's deadlines and the system's resolver.
    fn open<'a>(&'a self, opts: &'a TargetOptions) -> BoxFuture<'a, Result<Opened>> {
        Box::pin(async move {
            Ok(Opened { timeouts: Timeouts::eks(), dns: Dns::from_env()?, aws: opts.aws.clone(), twin: None })
        })
    }
}

/// Terraform drives the user's root module of EKS clusters; elsewhere it is refused.
pub(super) fn terraform_refused(kind: TargetKind) -> Result<Provisioner> {
    bail!("--provisioner terraform is for the eks target, not {kind}")
}

/// The driver of each target kind: the registry a new kind adds its line to.
pub fn driver(kind: TargetKind) -> &'static dyn TargetDriver {
    match kind {
        TargetKind::Twin => &super::twin::TwinTarget,
        TargetKind::Kind => &super::kind::KindTarget,
        TargetKind::Eks => &super::eks::EksTarget,
        TargetKind::K3s => &super::k3s::K3sTarget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [TargetKind; 4] = [TargetKind::Twin, TargetKind::Kind, TargetKind::Eks, TargetKind::K3s];

    #[test]
    fn each_kind_is_registered_with_its_own_driver() {
        for kind in ALL {
            assert_eq!(driver(kind).kind(), kind);
        }
    }

    #[test]
    fn the_questions_asked_of_each_kind() {
        let answers: Vec<_> = ALL
            .iter()
            .map(|k| {
                let d = k.driver();
                (
                    k.to_string(),
                    d.has_aws(),
                    d.in_process(),
                    d.provisions_unasked(),
                    d.injects_faults(),
                    d.default_plan(),
                )
            })
            .collect();
        assert_eq!(
            answers,
            [
                ("twin".to_string(), true, true, true, true, "stages.yaml"),
                ("kind".to_string(), false, false, false, false, "plans/kind.yaml"),
                ("eks".to_string(), true, false, false, false, "stages.yaml"),
                ("k3s".to_string(), false, false, true, false, "plans/k3s.yaml"),
            ]
        );
    }
}
