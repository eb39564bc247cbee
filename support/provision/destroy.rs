//! Destroy in the runbook's order: first the releases and gateways, so that the
//! load balancer controller (still running) deletes the NLBs and what hangs on
//! them; wait until no LoadBalancer Service and nothing tagged for either
//! cluster remains; then the rest (controllers, clusters, subnets, VPCs).
//! Only what meshspec can prove it created is touched (labels and tags).

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::api::OWNER_TAG;
use crate::aws::network::{self, Leftover};
use crate::aws::{eks, nlb};
use crate::fixtures::{quoted, Vars};
use crate::kube::apply::Applier;
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};
use crate::wait::{self, Poll};

/// The manifests the first destroy stage removes (the runbook's Helm releases
/// and multicluster chart), in reverse order of creation. The load balancer
/// controller stays: it must delete the NLBs.
const RELEASES: &[&str] =
    &["remote-secret", "samples", "reader-token", "eastwest-gateway", "ingress-gateway", "istiod"];

#[derive(Debug, Serialize)]
pub struct DestroyRecord {
    /// What was deleted, in the order it was deleted.
    pub deleted: Vec<String>,
    /// The load balancer resources of either cluster in AWS before anything was
    /// deleted (what the controller made, and must delete).
    pub load_balancers_before: Vec<Leftover>,
}

fn release_vars(session: &Session, c: &ClusterTopology) -> Vars {
    let peer = session.topology.peer_of(c);
    let mut v = super::api::vars_for(session, c);
    v.insert("REMOTE_CLUSTER", peer.istio_cluster.clone());
    v.insert("REMOTE_SECRET_KEY", peer.istio_cluster.clone());
    // Contents do not matter to a delete, only kinds and names.
    v.insert("REMOTE_KUBECONFIG", quoted(""));
    v
}

/// The clusters that exist in EKS, once they are past CREATING (an
/// interrupted run may leave one half made; it must be deleted all the same).
async fn existing_clusters(session: &Session) -> Result<Vec<ClusterTopology>> {
    let aws = session.aws()?;
    let mut out = Vec::new();
    for c in &session.topology.clusters {
        match eks::describe(aws, &c.name).await? {
            None => {}
            Some(d) if d.status == "CREATING" => {
                eks::wait_active(aws, &c.name, Timeouts::wait(session.timeouts.cluster_active)).await?;
                out.push(c.clone());
            }
            Some(d) if d.status == "ACTIVE" => out.push(c.clone()),
            Some(_) => {}
        }
    }
    Ok(out)
}

/// LoadBalancer Services still in istio-ingress, per cluster.
async fn load_balancer_services(session: &Session) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for c in &existing_clusters(session).await? {
        let svcs: Api<Service> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_INGRESS);
        for s in svcs.list(&ListParams::default()).await?.items {
            if s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer") {
                left.push(format!("{}: {}", c.name, s.metadata.name.unwrap_or_default()));
            }
        }
    }
    Ok(left)
}

/// Everything tagged for either cluster that the load balancer controller made
/// (NLBs, target groups, security groups) and the network interfaces of the
/// clusters' VPCs, found by the AWS APIs, not by memory.
pub async fn load_balancer_leaks(session: &Session) -> Result<Vec<Leftover>> {
    let aws = session.aws()?;
    let clusters: Vec<&str> = session.topology.clusters.iter().map(|c| c.name.as_str()).collect();
    let mut left = Vec::new();
    let lbs = nlb::all(aws).await?;
    let tgs = nlb::target_groups(aws).await?;
    let arns: Vec<String> = lbs.iter().map(|l| l.arn.clone()).chain(tgs.iter().map(|t| t.0.clone())).collect();
    let tags = nlb::tags(aws, &arns).await?;
    let owner = |arn: &str| tags.get(arn).and_then(|t| t.get("elbv2.k8s.aws/cluster")).cloned();
    for lb in &lbs {
        if owner(&lb.arn).is_some_and(|c| clusters.contains(&c.as_str())) {
            left.push(Leftover { kind: "load balancer".into(), id: lb.arn.clone(), detail: lb.dns_name.clone() });
        }
    }
    for (arn, name) in &tgs {
        if owner(arn).is_some_and(|c| clusters.contains(&c.as_str())) {
            left.push(Leftover { kind: "target group".into(), id: arn.clone(), detail: name.clone() });
        }
    }
    for c in &session.topology.clusters {
        left.extend(network::security_groups_tagged(aws, "elbv2.k8s.aws/cluster", &c.name).await?);
        for vpc in network::vpcs_named(aws, &c.vpc_name).await? {
            left.extend(
                network::network_interfaces(aws, &vpc.id).await?.into_iter().filter(|n| n.detail.starts_with("ELB ")),
            );
        }
    }
    Ok(left)
}

/// Wait until the load balancer controller has deleted what it made: no
/// LoadBalancer Service in either cluster, nothing tagged for either in AWS.
pub async fn wait_no_load_balancers(session: &Session) -> Result<()> {
    let opts = Timeouts::wait(session.timeouts.nlb_active);
    wait::until("no LoadBalancer Service and no load balancer resource of either cluster to remain", opts, || async {
        let services = load_balancer_services(session).await?;
        let leaks = load_balancer_leaks(session).await?;
        Ok::<_, anyhow::Error>(if services.is_empty() && leaks.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending(format!(
                "Services {services:?}; AWS {:?}",
                leaks.iter().map(|l| format!("{} {}", l.kind, l.id)).collect::<Vec<_>>()
            ))
        })
    })
    .await?;
    Ok(())
}

/// The leak sweep after a destroy: anything of either cluster, of any kind.
pub async fn leak_sweep(session: &Session) -> Result<Vec<Leftover>> {
    let aws = session.aws()?;
    let mut left = load_balancer_leaks(session).await?;
    for c in &session.topology.clusters {
        if let Some(cluster) = eks::describe(aws, &c.name).await? {
            left.push(Leftover { kind: "EKS cluster".into(), id: cluster.arn, detail: cluster.status });
        }
        for vpc in network::vpcs_named(aws, &c.vpc_name).await? {
            for n in network::network_interfaces(aws, &vpc.id).await? {
                left.push(n);
            }
            left.push(Leftover { kind: "VPC".into(), id: vpc.id, detail: c.vpc_name.clone() });
        }
    }
    Ok(left)
}

pub async fn destroy(session: &Session) -> Result<DestroyRecord> {
    ensure!(session.allow_provision, "destroy is not allowed on the {} target", session.kind);
    let aws = session.aws()?;
    let mut deleted = Vec::new();
    let load_balancers_before = load_balancer_leaks(session).await?;

    // Stage 1: releases and gateways; the controller deletes the NLBs.
    for c in &existing_clusters(session).await? {
        let applier = Applier::new(session.kube(&c.name).await?);
        let vars = release_vars(session, c);
        for manifest in RELEASES {
            for doc in session.fixtures.manifest(manifest, &vars)?.iter().rev() {
                if doc["kind"] == "Namespace" {
                    continue; // namespaces go with their cluster
                }
                if let Some(done) = applier.delete_owned(doc).await? {
                    deleted.push(format!("{}: {done}", c.name));
                }
            }
        }
    }
    wait_no_load_balancers(session).await?;

    // Stage 2: the rest. Clusters first (their control-plane interfaces hold the subnets), then the network.
    for c in &existing_clusters(session).await? {
        if let Some(cluster) = eks::describe(aws, &c.name).await? {
            if cluster.tags.get(OWNER_TAG).map(String::as_str) == Some(names::MANAGED_BY) {
                eks::delete(aws, &c.name).await?;
                deleted.push(format!("EKS cluster {}", c.name));
            }
        }
    }
    for c in &session.topology.clusters {
        eks::wait_gone(aws, &c.name, Timeouts::wait(session.timeouts.cluster_active)).await?;
    }
    for c in &session.topology.clusters {
        for vpc in network::vpcs_named(aws, &c.vpc_name).await? {
            if vpc.tags.get(OWNER_TAG).map(String::as_str) != Some(names::MANAGED_BY) {
                continue;
            }
            for s in network::subnets_of(aws, &vpc.id).await? {
                network::delete_subnet(aws, &s.id).await?;
                deleted.push(format!("subnet {} ({})", s.cidr, s.id));
            }
            network::delete_vpc(aws, &vpc.id).await.with_context(|| format!("VPC {}", c.vpc_name))?;
            deleted.push(format!("VPC {} ({})", c.vpc_name, vpc.id));
        }
    }
    Ok(DestroyRecord { deleted, load_balancers_before })
}
