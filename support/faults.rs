//! Faults: named misconfigurations the twin can be provisioned with
//! (`meshspec run --fault NAME`). Each is a mistake seen in the field; the
//! checks that catch it say so with a `diagnosis:` line naming cause and fix.

use anyhow::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Fault {
    CacertsMissing,
    DifferentRoots,
    IstiodBeforeCacerts,
    RemoteSecretMissing,
    RemoteSecretWrongKey,
    BadReaderToken,
    GatewayWithoutNetworkLabel,
    GatewayWithoutAddress,
    NlbHostnameUnresolvable,
    NlbTargetsUnhealthy,
    LoadBalancerControllerAbsent,
    CrossNetworkGatewayMissing,
    RemoteApiUnreachable,
    ReaderRoleWithoutPods,
}

pub const ALL: &[Fault] = &[
    Fault::CacertsMissing,
    Fault::DifferentRoots,
    Fault::IstiodBeforeCacerts,
    Fault::RemoteSecretMissing,
    Fault::RemoteSecretWrongKey,
    Fault::BadReaderToken,
    Fault::GatewayWithoutNetworkLabel,
    Fault::GatewayWithoutAddress,
    Fault::NlbHostnameUnresolvable,
    Fault::NlbTargetsUnhealthy,
    Fault::LoadBalancerControllerAbsent,
    Fault::CrossNetworkGatewayMissing,
    Fault::RemoteApiUnreachable,
    Fault::ReaderRoleWithoutPods,
];

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::CacertsMissing => "cacerts-missing",
            Fault::DifferentRoots => "different-roots",
            Fault::IstiodBeforeCacerts => "istiod-before-cacerts",
            Fault::RemoteSecretMissing => "remote-secret-missing",
            Fault::RemoteSecretWrongKey => "remote-secret-wrong-key",
            Fault::BadReaderToken => "bad-reader-token",
            Fault::GatewayWithoutNetworkLabel => "gateway-without-network-label",
            Fault::GatewayWithoutAddress => "gateway-without-address",
            Fault::NlbHostnameUnresolvable => "nlb-hostname-unresolvable",
            Fault::NlbTargetsUnhealthy => "nlb-targets-unhealthy",
            Fault::LoadBalancerControllerAbsent => "load-balancer-controller-absent",
            Fault::CrossNetworkGatewayMissing => "cross-network-gateway-missing",
            Fault::RemoteApiUnreachable => "remote-api-unreachable",
            Fault::ReaderRoleWithoutPods => "reader-role-without-pods",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Fault::CacertsMissing => "no cacerts secret: istiod makes a self-signed root in each cluster",
            Fault::DifferentRoots => "each cluster's cacerts comes from its own root",
            Fault::IstiodBeforeCacerts => "istiod starts before cacerts exists and keeps its own root",
            Fault::RemoteSecretMissing => "no remote secret: istiod never reads the other cluster",
            Fault::RemoteSecretWrongKey => "the remote secret's data key is the EKS name, not the Istio cluster ID",
            Fault::BadReaderToken => "the remote secret carries a token the other API server rejects",
            Fault::GatewayWithoutNetworkLabel => "the east-west gateway Service lacks topology.istio.io/network",
            Fault::GatewayWithoutAddress => "the east-west gateway Service lacks the load balancer type annotation",
            Fault::NlbHostnameUnresolvable => {
                "the first cluster's VPC has DNS resolution turned off (enableDnsSupport=false): istiod there cannot resolve the other NLB's hostname"
            }
            Fault::NlbTargetsUnhealthy => {
                "the east-west gateway Service's health-check port annotation names port 80, where nothing listens"
            }
            Fault::LoadBalancerControllerAbsent => "no AWS load balancer controller is installed",
            Fault::CrossNetworkGatewayMissing => "no Gateway cross-network-gateway: nothing listens on 15443",
            Fault::RemoteApiUnreachable => "the remote secret names an API server nobody answers at",
            Fault::ReaderRoleWithoutPods => {
                "the istio-reader ClusterRole lacks pods: the other cluster's istiod cannot list them with the reader token"
            }
        }
    }

    /// The stage plan a deployment with this fault is made with, when it is not the
    /// seed's: a wrong order, or a step left out, without meshspec's preconditions
    /// (the checks of the deployment must catch it, as on a verify-only run).
    pub fn plan(self) -> Option<&'static str> {
        match self {
            Fault::IstiodBeforeCacerts => Some("plans/istiod-before-cacerts.yaml"),
            Fault::CacertsMissing => Some("plans/without-cacerts.yaml"),
            // No controller at all: the gateways are installed and no NLB is ever made.
            Fault::LoadBalancerControllerAbsent => Some("plans/gateway-before-controller.yaml"),
            _ => None,
        }
    }

    pub fn parse(name: &str) -> Result<Fault> {
        match ALL.iter().find(|f| f.name() == name) {
            Some(f) => Ok(*f),
            None => bail!(
                "unknown fault {name:?}; known faults: {}",
                ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_has_a_distinct_name_that_parses_back() {
        let mut names: Vec<_> = ALL.iter().map(|f| f.name()).collect();
        for f in ALL {
            assert_eq!(Fault::parse(f.name()).unwrap(), *f);
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(Fault::parse("gremlins").unwrap_err().to_string().contains("cacerts-missing"));
    }
}
