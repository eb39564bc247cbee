//! What provisioning must have produced, read back from the target's APIs.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DynamicObject};
use serde::Serialize;

use crate::aws::{eks, network};
use crate::kube::rollout::{deployment_available, deployment_state};
use crate::mesh::cacerts::{self, VerifiedCaCerts};
use crate::target::Session;
use crate::topology::{names, ClusterTopology};

#[derive(Debug, Serialize)]
pub struct VpcEvidence {
    pub cluster: String,
    pub vpc_id: String,
    pub cidr: String,
    pub subnets: Vec<(String, String, bool)>,
}

/// The cluster's VPC (by Name tag) with the topology's CIDR, and exactly the
/// seed's subnets: CIDRs, AZs and role tags.
pub async fn vpc(session: &Session, c: &ClusterTopology) -> Result<VpcEvidence> {
    let aws = session.aws()?;
    let vpcs = network::vpcs_named(aws, &c.vpc_name).await?;
    ensure!(vpcs.len() == 1, "expected one VPC named {}, found {}", c.vpc_name, vpcs.len());
    let vpc = &vpcs[0];
    ensure!(vpc.cidr == c.vpc_cidr, "VPC {} has CIDR {}, expected {}", c.vpc_name, vpc.cidr, c.vpc_cidr);
    let subnets = network::subnets_of(aws, &vpc.id).await?;
    let azs = session.topology.availability_zones();
    let plan = c.subnet_plan()?;
    let mut seen = Vec::new();
    for want in &plan {
        let got = subnets.iter().find(|s| s.cidr == want.cidr).with_context(|| {
            format!(
                "VPC {} has no subnet {} (has: {})",
                c.vpc_name,
                want.cidr,
                subnets.iter().map(|s| s.cidr.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
        let (k, v) = want.role_tag();
        ensure!(
            got.tags.get(k).map(String::as_str) == Some(v),
            "subnet {} ({}) lacks tag {k}={v} (tags: {:?})",
            got.cidr,
            got.id,
            got.tags
        );
        ensure!(
            got.availability_zone == azs[want.az_index],
            "subnet {} is in {}, expected {}",
            got.cidr,
            got.availability_zone,
            azs[want.az_index]
        );
        seen.push((got.cidr.clone(), got.availability_zone.clone(), want.public));
    }
    ensure!(
        subnets.len() == plan.len(),
        "VPC {} has {} subnets, the seed makes {}",
        c.vpc_name,
        subnets.len(),
        plan.len()
    );
    Ok(VpcEvidence { cluster: c.name.clone(), vpc_id: vpc.id.clone(), cidr: vpc.cidr.clone(), subnets: seen })
}

/// The subnets of a cluster's VPC carrying a role tag, with their AZs.
pub async fn subnets_tagged(
    session: &Session,
    c: &ClusterTopology,
    key: &str,
    value: &str,
) -> Result<Vec<(String, String)>> {
    let aws = session.aws()?;
    let vpc = network::vpcs_named(aws, &c.vpc_name)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("no VPC named {}", c.vpc_name))?;
    Ok(network::subnets_of(aws, &vpc.id)
        .await?
        .into_iter()
        .filter(|s| s.tags.get(key).map(String::as_str) == Some(value))
        .map(|s| (s.cidr, s.availability_zone))
        .collect())
}

/// The EKS cluster is ACTIVE (or UPDATING: an upgrade in progress keeps serving, and
/// its version stays the old one until it is done) with the expected Kubernetes version.
pub async fn cluster_active(session: &Session, c: &ClusterTopology, version: &str) -> Result<eks::EksCluster> {
    let cluster =
        eks::describe(session.aws()?, &c.name).await?.with_context(|| format!("EKS has no cluster {}", c.name))?;
    ensure!(
        cluster.status == "ACTIVE" || cluster.status == "UPDATING",
        "EKS cluster {} is {}, expected ACTIVE",
        c.name,
        cluster.status
    );
    ensure!(
        cluster.version == version,
        "EKS cluster {} runs Kubernetes {}, expected {version}",
        c.name,
        cluster.version
    );
    ensure!(cluster.endpoint.is_some() && cluster.ca_pem.is_some(), "EKS cluster {} has no endpoint or CA", c.name);
    Ok(cluster)
}

/// The cluster's API server answers through the session's client, and says its version.
pub async fn api_answers(session: &Session, c: &ClusterTopology) -> Result<String> {
    let client = session.kube(&c.name).await?;
    let v =
        client.apiserver_version().await.with_context(|| format!("the API server of {} does not answer", c.name))?;
    Ok(v.git_version)
}

pub async fn namespace_label(session: &Session, c: &ClusterTopology, ns: &str, key: &str) -> Result<Option<String>> {
    let api: Api<Namespace> = Api::all(session.kube(&c.name).await?);
    let namespace = api.get_opt(ns).await?.with_context(|| format!("{}: namespace {ns} does not exist", c.name))?;
    Ok(namespace.metadata.labels.and_then(|l| l.get(key).cloned()))
}

/// The `cacerts` secret of a cluster, decoded, and its X.509 verification.
pub async fn cacerts(session: &Session, c: &ClusterTopology) -> Result<(Vec<String>, VerifiedCaCerts)> {
    let api: Api<Secret> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_SYSTEM);
    let secret = api.get_opt(names::CACERTS).await?.with_context(|| {
        format!(
            "{}: {}: no secret {}/{}",
            crate::faults::diagnosis(
                "cacerts is missing from istio-system, so istiod makes its own self-signed root and the clusters do not trust each other",
                "create cacerts from the shared root in both clusters, then restart istiod and the workloads"
            ),
            c.name,
            names::ISTIO_SYSTEM,
            names::CACERTS
        )
    })?;
    let mut data = BTreeMap::new();
    for (k, v) in secret.data.unwrap_or_default() {
        data.insert(k.clone(), String::from_utf8(v.0).with_context(|| format!("cacerts {k} is not text"))?);
    }
    let keys = data.keys().cloned().collect();
    let verified = cacerts::verify(&data).with_context(|| format!("{}: cacerts", c.name))?;
    Ok((keys, verified))
}

pub async fn deployment(session: &Session, c: &ClusterTopology, ns: &str, name: &str) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(session.kube(&c.name).await?, ns);
    api.get_opt(name).await?.with_context(|| format!("{}: no deployment {ns}/{name}", c.name))
}

pub async fn deployment_is_available(session: &Session, c: &ClusterTopology, ns: &str, name: &str) -> Result<()> {
    let d = deployment(session, c, ns, name).await?;
    ensure!(deployment_available(&d), "{}: deployment {ns}/{name} is not available: {}", c.name, deployment_state(&d));
    Ok(())
}

/// The env of a deployment's first container, as a map.
pub fn container_env(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect()
}

#[derive(Debug, Serialize, PartialEq)]
pub struct IstiodSettings {
    pub mesh_id: Option<String>,
    pub cluster_id: Option<String>,
    pub network: Option<String>,
}

/// istiod's meshID (mesh config), cluster name (CLUSTER_ID) and network (injector values), as the chart renders them.
pub async fn istiod_settings(session: &Session, c: &ClusterTopology) -> Result<IstiodSettings> {
    let client = session.kube(&c.name).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, names::ISTIO_SYSTEM);
    let mesh = cms.get_opt("istio").await?.with_context(|| format!("{}: no ConfigMap istio-system/istio", c.name))?;
    let mesh_yaml = mesh.data.and_then(|d| d.get("mesh").cloned()).unwrap_or_default();
    let mesh_cfg: serde_json::Value = serde_yaml::from_str(&mesh_yaml).context("mesh config is not YAML")?;
    let injector = cms
        .get_opt("istio-sidecar-injector")
        .await?
        .with_context(|| format!("{}: no ConfigMap istio-system/istio-sidecar-injector", c.name))?;
    let values: serde_json::Value =
        serde_json::from_str(&injector.data.and_then(|d| d.get("values").cloned()).unwrap_or_default())
            .context("injector values are not JSON")?;
    let d = deployment(session, c, names::ISTIO_SYSTEM, "istiod").await?;
    Ok(IstiodSettings {
        mesh_id: mesh_cfg["defaultConfig"]["meshId"].as_str().map(str::to_string),
        cluster_id: container_env(&d).get("CLUSTER_ID").cloned(),
        network: values["global"]["network"].as_str().map(str::to_string),
    })
}

/// An Istio Gateway, read generically at the version the cluster prefers (discovery:
/// Istio 1.20 and 1.21 serve v1alpha3 and v1beta1, v1 arrives in 1.22).
pub async fn istio_gateway(session: &Session, c: &ClusterTopology, ns: &str, name: &str) -> Result<serde_json::Value> {
    let client = session.kube(&c.name).await?;
    let (ar, _) = crate::kube::apply::served_kind(&client, "networking.istio.io", "Gateway")
        .await
        .with_context(|| format!("{}: Istio's Gateway kind (is istio-base installed?)", c.name))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
    let gw = api.get_opt(name).await?.with_context(|| {
        format!(
            "{}: {}: no Gateway {ns}/{name}",
            crate::faults::diagnosis(
                format!("the Gateway {ns}/{name} is missing, so the east-west gateway does not listen for cross-network traffic"),
                "apply it (the multicluster chart renders it): port 15443, TLS, AUTO_PASSTHROUGH, hosts *.local"
            ),
            c.name
        )
    })?;
    Ok(gw.data)
}
