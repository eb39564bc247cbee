//! What a destroy must leave: nothing of either cluster, the load balancers
//! deleted (by their controller) before the clusters, and AWS refusing to
//! delete a VPC that still holds resources.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};

use crate::aws::network::{self, Leftover};
use crate::provision::destroy::{self, DestroyRecord};
use crate::run::Session;
use crate::topology::ClusterTopology;

/// The load balancer resources that existed before the destroy are gone, and each
/// cluster's gateway Service was deleted before any EKS cluster (so that the
/// controller, still running, deleted what it made). Returns what existed before.
pub async fn load_balancers_deleted_first(session: &Session, record: &DestroyRecord) -> Result<Vec<Leftover>> {
    ensure!(
        record.load_balancers_before.iter().any(|l| l.kind == "load balancer"),
        "there was no load balancer of either cluster before the destroy: nothing to check"
    );
    let now: BTreeSet<String> = destroy::load_balancer_leaks(session).await?.into_iter().map(|l| l.id).collect();
    let left: Vec<_> = record.load_balancers_before.iter().filter(|l| now.contains(&l.id)).collect();
    ensure!(left.is_empty(), "still in AWS after the destroy: {left:?}");
    let position = |what: &str| record.deleted.iter().position(|d| d.contains(what));
    let first_cluster = position("EKS cluster ").context("no EKS cluster was deleted")?;
    for c in &session.topology.clusters {
        let service = format!("{}: Service istio-ingress/istio-eastwestgateway", c.name);
        let at = position(&service).with_context(|| format!("{service} was not deleted: {:?}", record.deleted))?;
        ensure!(at < first_cluster, "{service} was deleted after an EKS cluster: {:?}", record.deleted);
    }
    Ok(record.load_balancers_before.clone())
}

/// Nothing tagged for either cluster is left in EC2, ELBv2 or EKS: what a leak sweep found must be empty.
pub fn none_left(left: &[Leftover]) -> Result<(), String> {
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("left behind: {left:?}"))
    }
}

/// No load balancer resource of either cluster exists.
pub async fn no_load_balancer_resources(session: &Session) -> Result<()> {
    let leaks = destroy::load_balancer_leaks(session).await?;
    ensure!(leaks.is_empty(), "load balancer resources exist: {leaks:?}");
    Ok(())
}

/// AWS refused the delete with exactly `code`.
pub fn refused_with(refusal: Option<&str>, code: &str) -> Result<(), String> {
    match refusal {
        Some(got) if got == code => Ok(()),
        Some(got) => Err(format!("AWS refused with {got}, expected {code}")),
        None => Err("AWS accepted the delete".into()),
    }
}

/// The cluster's VPC is still there (one VPC by that name).
pub async fn vpc_exists(session: &Session, c: &ClusterTopology) -> Result<()> {
    ensure!(network::vpcs_named(session.aws()?, &c.vpc_name).await?.len() == 1, "VPC {} is gone", c.vpc_name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_refusal_passes() {
        assert!(refused_with(Some("DependencyViolation"), "DependencyViolation").is_ok());
        assert!(refused_with(Some("UnauthorizedOperation"), "DependencyViolation").is_err());
        assert!(refused_with(None, "DependencyViolation").unwrap_err().contains("accepted"));
        let eni = Leftover { kind: "network interface".into(), id: "eni-1".into(), detail: String::new() };
        assert!(none_left(&[]).is_ok());
        assert!(none_left(&[eni]).unwrap_err().contains("eni-1"));
    }
}
