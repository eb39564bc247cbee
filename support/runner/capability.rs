//! What a target can run. Scenarios declare what they need with tags; a
//! scenario whose needs the target lacks is left out of the run before it
//! starts, with the reason printed and reported, rather than skipped halfway
//! (a skipped step fails a run).
//!
//! - `@aws`: reads the AWS APIs (EKS, EC2, ELBv2). The kind target has none.
//! - `@provisions`: reads what this run provisioned (the stage record). A
//!   target that is only verified (eks without `--allow-provision`, or any
//!   target with existing clusters) has no such record.
//! - `@twin`: works on a separate deployment on a fresh twin of its own. A run
//!   with `--fault` leaves it out: it says nothing of the faulty deployment.
//! - `@disruptive`: changes the deployment under traffic (rotates credentials,
//!   replaces gateways, takes a cluster out). On the twin it works on a fresh
//!   twin of its own; elsewhere only on a run that provisions, never on one
//!   that only verifies. A `--fault` run leaves it out, as `@twin`.
//! - `@root-key`: issues a certificate from the mesh's root CA, so it needs the
//!   root key: held when this run's provisioner makes the CA, or given with
//!   `--mesh-root-ca`. Only on the twin and on runs that provision it, too.

use serde::{Deserialize, Serialize};

use crate::target::TargetKind;

pub const AWS: &str = "aws";
pub const PROVISIONS: &str = "provisions";
pub const TWIN: &str = "twin";
pub const DISRUPTIVE: &str = "disruptive";
pub const ROOT_KEY: &str = "root-key";

/// What the run's target offers.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    pub kind: TargetKind,
    /// Whether this run provisions the deployment it verifies.
    pub provisions: bool,
    /// The fault this run's deployment was provisioned with, if any.
    pub fault: Option<&'static str>,
    /// Whether this run holds the key of the mesh's root CA.
    pub root_key: bool,
}

impl Capabilities {
    /// Why a scenario with these tags (feature, rule and scenario tags, without
    /// `@`) cannot run here; None when it can.
    pub fn exclusion<'a>(&self, tags: impl IntoIterator<Item = &'a String>) -> Option<String> {
        let tags: Vec<&str> = tags.into_iter().map(|t| t.trim_start_matches('@')).collect();
        if tags.contains(&AWS) && !self.kind.driver().has_aws() {
            return Some(format!(
                "@aws: it needs AWS (its APIs or its load balancer controller), which the {} target does not have",
                self.kind
            ));
        }
        if tags.contains(&PROVISIONS) && !self.provisions {
            return Some(format!(
                "@provisions: it reads what this run provisioned, and the {} target is only verified \
                 (pass --allow-provision with every cluster of the topology to provision it)",
                self.kind
            ));
        }
        if tags.contains(&DISRUPTIVE) && !self.provisions {
            return Some(format!(
                "@disruptive: it changes the deployment under traffic, and the {} target is only verified \
                 (run it against a staging deployment with --allow-provision)",
                self.kind
            ));
        }
        if let Some(fault) = self.fault.filter(|_| tags.contains(&TWIN) || tags.contains(&DISRUPTIVE)) {
            return Some(format!(
                "@twin: it works on its own fresh twin, so it says nothing of the fault {fault} this run's deployment has (run it without --fault)"
            ));
        }
        if tags.contains(&ROOT_KEY) && !self.root_key {
            return Some(format!(
                "@root-key: it issues an intermediate from the mesh's root CA, and this run holds no root key: \
                 the {} target's cacerts were made outside meshspec (pass --mesh-root-ca DIR with the root's \
                 root-cert.pem and root-key.pem)",
                self.kind
            ));
        }
        None
    }
}

/// A scenario left out of the run, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    pub feature: String,
    pub scenario: String,
    /// Feature, rule and scenario tags, without `@`.
    pub tags: Vec<String>,
    pub reason: String,
}

impl std::fmt::Display for Excluded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not run: {} / {}: {}", self.feature, self.scenario, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_fault_run_leaves_out_what_runs_on_its_own_twin() {
        let faulty =
            Capabilities { kind: TargetKind::Twin, provisions: true, fault: Some("bad-reader-token"), root_key: true };
        assert!(faulty.exclusion(&tags(&["diagnosis", "twin"])).unwrap().contains("bad-reader-token"));
        assert_eq!(faulty.exclusion(&tags(&["sync"])), None);
        assert!(faulty.exclusion(&tags(&["operations", "disruptive"])).unwrap().contains("bad-reader-token"));
        let plain = Capabilities { kind: TargetKind::Twin, provisions: true, fault: None, root_key: true };
        assert_eq!(plain.exclusion(&tags(&["diagnosis", "twin"])), None);
    }

    #[test]
    fn aws_scenarios_are_left_out_on_kind_only() {
        let kind = Capabilities { kind: TargetKind::Kind, provisions: true, fault: None, root_key: true };
        let eks = Capabilities { kind: TargetKind::Eks, provisions: true, fault: None, root_key: true };
        assert!(kind.exclusion(&tags(&["readiness", "aws"])).unwrap().contains("kind target"));
        assert_eq!(eks.exclusion(&tags(&["readiness", "aws"])), None);
        assert_eq!(kind.exclusion(&tags(&["sync"])), None);
    }

    #[test]
    fn provisioning_records_are_needed_only_where_the_run_provisions() {
        let verified = Capabilities { kind: TargetKind::Eks, provisions: false, fault: None, root_key: true };
        let provisioned = Capabilities { kind: TargetKind::Twin, provisions: true, fault: None, root_key: true };
        let why = verified.exclusion(&tags(&["provisioning", "provisions"])).unwrap();
        assert!(why.contains("--allow-provision"), "{why}");
        assert_eq!(provisioned.exclusion(&tags(&["provisions"])), None);
        assert_eq!(verified.exclusion(&tags(&["sync"])), None);
    }

    #[test]
    fn disruptive_scenarios_never_run_where_the_run_only_verifies() {
        let verified = Capabilities { kind: TargetKind::Eks, provisions: false, fault: None, root_key: true };
        let staging = Capabilities { kind: TargetKind::Eks, provisions: true, fault: None, root_key: true };
        let why = verified.exclusion(&tags(&["operations", "disruptive"])).unwrap();
        assert!(why.contains("@disruptive") && why.contains("--allow-provision"), "{why}");
        assert_eq!(staging.exclusion(&tags(&["operations", "disruptive"])), None);
        // The undisturbed baseline of the same feature runs anywhere.
        assert_eq!(verified.exclusion(&tags(&["operations"])), None);
    }

    #[test]
    fn a_rotation_from_the_root_needs_the_root_key_where_the_deployment_is_the_users() {
        let terraform = Capabilities { kind: TargetKind::Eks, provisions: true, fault: None, root_key: false };
        let why = terraform.exclusion(&tags(&["operations", "disruptive", "root-key"])).unwrap();
        assert!(why.contains("@root-key") && why.contains("--mesh-root-ca"), "{why}");
        // The other operations run there.
        assert_eq!(terraform.exclusion(&tags(&["operations", "disruptive"])), None);
        let given = Capabilities { root_key: true, ..terraform };
        assert_eq!(given.exclusion(&tags(&["operations", "disruptive", "root-key"])), None);
    }
}
