//! What a stage requires of the target before it starts, checked the same way
//! by every provisioner (API, Terraform, kind). A failed precondition names
//! where it does not hold and carries a diagnosis.

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Serialize;

use crate::aws::eks;
use crate::checks::check::Diagnosis;
use crate::checks::provisioning::deployment_is_available;
use crate::run::Session;
use crate::topology::{names, ClusterTopology};

/// The conditions a stage plan may name.
pub const KNOWN: &[&str] = &[
    "clusters-active",
    "clusters-reachable",
    "cacerts-present",
    "load-balancer-controller-available",
    "load-balancer-available",
    "istiod-available",
];

/// The MetalLB controller as its Helm chart names it (release `metallb`).
pub const METALLB_NAMESPACE: &str = "metallb-system";
pub const METALLB_CONTROLLER: &str = "metallb-controller";

fn diagnosis_of(name: &str) -> Diagnosis {
    let (cause, fix) = match name {
        "cacerts-present" => (
            "cacerts is missing from istio-system, so istiod would make its own root",
            "create cacerts from the shared root in both clusters (stage 1) before istiod starts",
        ),
        "load-balancer-controller-available" => (
            "the AWS load balancer controller is not running",
            "install it (the seed installs it with istiod, stage 2) before the gateways, so that their Services become internet-facing NLBs",
        ),
        "load-balancer-available" => (
            "no LoadBalancer implementation runs in the cluster, so the gateways would get no address",
            "install one before the gateways (stage 2 on EKS, stage 1 on kind): the AWS load balancer controller, or MetalLB",
        ),
        "istiod-available" => ("istiod is not available", "install istiod (stage 2) and wait until it is ready"),
        "clusters-reachable" => (
            "a cluster's Kubernetes API does not answer",
            "create the clusters (stage 1) and check the kubeconfig contexts before installing anything in them",
        ),
        _ => ("an EKS cluster is not ACTIVE", "wait for the clusters (stage 1) before installing anything in them"),
    };
    Diagnosis::new(cause, fix)
}

/// Whether `name` holds in one cluster; what was seen when it does.
pub async fn holds_in(session: &Session, c: &ClusterTopology, name: &str) -> Result<String> {
    let seen = match name {
        "clusters-active" => {
            let aws = session.aws()?;
            let d = eks::describe(aws, &c.name).await?.with_context(|| format!("EKS has no cluster {}", c.name))?;
            ensure!(d.status == "ACTIVE", "EKS cluster {} is {}", c.name, d.status);
            format!("EKS cluster {} ACTIVE", c.name)
        }
        "clusters-reachable" => {
            let client = session.kube(&c.name).await?;
            let v = client
                .apiserver_version()
                .await
                .with_context(|| format!("the API server of {} does not answer", c.name))?;
            format!("the API server of {} answers ({})", c.name, v.git_version)
        }
        "cacerts-present" => {
            let secrets: Api<Secret> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_SYSTEM);
            let s = secrets
                .get_opt(names::CACERTS)
                .await?
                .with_context(|| format!("{}: no secret istio-system/cacerts", c.name))?;
            let data = s.data.unwrap_or_default();
            for key in crate::mesh::cacerts::KEYS {
                ensure!(data.contains_key(key), "{}: cacerts has no {key}", c.name);
            }
            format!("{}: istio-system/cacerts with {}", c.name, crate::mesh::cacerts::KEYS.join(", "))
        }
        "load-balancer-controller-available" => {
            deployment_is_available(session, c, names::KUBE_SYSTEM, names::LB_CONTROLLER).await?;
            format!("{}: deployment {}/{} available", c.name, names::KUBE_SYSTEM, names::LB_CONTROLLER)
        }
        "load-balancer-available" => {
            use crate::checks::readiness::{load_balancer_implementation, LoadBalancerImplementation as Lb};
            match load_balancer_implementation(session, c).await? {
                Lb::AwsController => {
                    format!("{}: deployment {}/{} available", c.name, names::KUBE_SYSTEM, names::LB_CONTROLLER)
                }
                Lb::MetalLb => format!("{}: deployment {METALLB_NAMESPACE}/{METALLB_CONTROLLER} available", c.name),
                Lb::ServiceLb => format!("{}: K3s' ServiceLB (a K3s node: instance type k3s)", c.name),
                Lb::NotAvailable(seen) => {
                    bail!("{}: neither the AWS load balancer controller nor MetalLB is available: {seen}", c.name)
                }
                Lb::Absent => bail!(
                    "{}: neither the AWS load balancer controller nor MetalLB is available: neither is installed, and the nodes are not K3s'",
                    c.name
                ),
            }
        }
        "istiod-available" => {
            deployment_is_available(session, c, names::ISTIO_SYSTEM, "istiod").await?;
            format!("{}: deployment {}/istiod available", c.name, names::ISTIO_SYSTEM)
        }
        other => bail!("unknown precondition {other:?}"),
    };
    Ok(seen)
}

/// A precondition as it was observed to hold before a stage started.
#[derive(Clone, Debug, Serialize)]
pub struct PreconditionHeld {
    pub name: String,
    /// When the last cluster was seen to satisfy it.
    pub checked_at: DateTime<Utc>,
    /// What was seen, one line per cluster.
    pub seen: Vec<String>,
}

/// Check one condition in every cluster; the error says where it does not hold.
pub async fn holds(session: &Session, name: &str) -> Result<PreconditionHeld> {
    let mut seen = Vec::new();
    for c in &session.topology.clusters {
        seen.push(holds_in(session, c, name).await?);
    }
    Ok(PreconditionHeld { name: name.to_string(), checked_at: Utc::now(), seen })
}

/// Check a stage's preconditions before it starts; what each showed.
pub async fn check_stage(session: &Session, stage: &super::Stage) -> Result<Vec<PreconditionHeld>> {
    let mut held = Vec::new();
    for p in &stage.preconditions {
        held.push(
            holds(session, p)
                .await
                .with_context(|| {
                    format!("stage {} ({}) cannot start: precondition {p} does not hold", stage.number, stage.name)
                })
                .with_context(|| diagnosis_of(p))?,
        );
    }
    Ok(held)
}
