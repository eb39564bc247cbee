//! What provisioning must have produced, read back from the target's APIs.

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DynamicObject};
use serde::Serialize;

use super::check::{Check, Diagnosis, Observation};
use crate::aws::{eks, network};
use crate::kube::rollout::{deployment_available, deployment_state};
use crate::mesh::cacerts::{self, VerifiedCaCerts};
use crate::run::Session;
use crate::timeouts::Timeouts;
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
    ensure!(!v.git_version.is_empty(), "{}: the API server reported no version", c.name);
    Ok(v.git_version)
}

pub async fn namespace_label(session: &Session, c: &ClusterTopology, ns: &str, key: &str) -> Result<Option<String>> {
    let api: Api<Namespace> = Api::all(session.kube(&c.name).await?);
    let namespace = api.get_opt(ns).await?.with_context(|| format!("{}: namespace {ns} does not exist", c.name))?;
    Ok(namespace.metadata.labels.and_then(|l| l.get(key).cloned()))
}

/// The `cacerts` secret of a cluster, decoded, and its X.509 verification.
///
/// Definite, both ways it fails: no secret (nothing but an operator creates
/// it), or one that does not verify.
pub struct Cacerts(pub ClusterTopology);

impl Check for Cacerts {
    type Evidence = (Vec<String>, VerifiedCaCerts);

    fn name(&self) -> String {
        format!("{}: cacerts", self.0.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.api_call
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Self::Evidence>> {
        let c = &self.0;
        let api: Api<Secret> = Api::namespaced(s.kube(&c.name).await?, names::ISTIO_SYSTEM);
        let Some(secret) = api.get_opt(names::CACERTS).await? else {
            return Ok(Observation::broken(
                format!("no secret {}/{}", names::ISTIO_SYSTEM, names::CACERTS),
                Diagnosis::new(
                    "cacerts is missing from istio-system, so istiod makes its own self-signed root and the clusters do not trust each other",
                    "create cacerts from the shared root in both clusters, then restart istiod and the workloads",
                ),
            ));
        };
        let mut data = BTreeMap::new();
        for (k, v) in secret.data.unwrap_or_default() {
            match String::from_utf8(v.0) {
                Ok(text) => data.insert(k, text),
                Err(_) => return Ok(Observation::broken(format!("cacerts {k} is not text"), bad_cacerts())),
            };
        }
        let keys = data.keys().cloned().collect();
        Ok(match cacerts::verify(&data) {
            Ok(verified) => Observation::Holds((keys, verified)),
            Err(e) => Observation::broken(format!("cacerts does not verify: {e:#}"), bad_cacerts()),
        })
    }
}

fn bad_cacerts() -> Diagnosis {
    Diagnosis::new(
        "cacerts does not hold a valid intermediate CA chained to its root, so istiod cannot sign workload certificates with it",
        "recreate cacerts from the shared root (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) and restart istiod",
    )
}

/// Both clusters' cacerts come from one root. Definite when they differ.
pub struct OneRoot(pub Vec<ClusterTopology>);

impl Check for OneRoot {
    type Evidence = String;

    fn name(&self) -> String {
        "one root for every cluster's cacerts".into()
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.api_call
    }

    async fn observe(&self, s: &Session) -> Result<Observation<String>> {
        let mut roots = Vec::new();
        for c in &self.0 {
            match Cacerts(c.clone()).observe(s).await? {
                Observation::Holds((_, v)) => roots.push((c.name.clone(), v.root_fingerprint)),
                other => return Ok(other.map_holds(|_| String::new())),
            }
        }
        Ok(if roots.windows(2).all(|p| p[0].1 == p[1].1) {
            Observation::Holds(roots.first().map(|r| r.1.clone()).unwrap_or_default())
        } else {
            Observation::broken(
                format!("roots {roots:?}"),
                Diagnosis::new(
                    "the clusters' cacerts come from different roots, so they cannot verify each other's workloads",
                    "issue both intermediates from one root, replace cacerts and restart istiod, then the workloads",
                ),
            )
        })
    }
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
///
/// Definite when missing: no controller creates a Gateway. Transient while
/// Istio's Gateway kind is not served (istio-base installing).
pub struct IstioGateway {
    pub cluster: ClusterTopology,
    pub namespace: String,
    pub gateway: String,
}

impl IstioGateway {
    pub fn cross_network(cluster: ClusterTopology) -> Self {
        IstioGateway { cluster, namespace: names::ISTIO_INGRESS.into(), gateway: names::CROSS_NETWORK_GATEWAY.into() }
    }
}

impl Check for IstioGateway {
    type Evidence = serde_json::Value;

    fn name(&self) -> String {
        format!("{}: Gateway {}/{}", self.cluster.name, self.namespace, self.gateway)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.api_call
    }

    async fn observe(&self, s: &Session) -> Result<Observation<serde_json::Value>> {
        let (c, ns, name) = (&self.cluster, &self.namespace, &self.gateway);
        let client = s.kube(&c.name).await?;
        let (ar, _) = match crate::kube::apply::served_kind(&client, "networking.istio.io", "Gateway").await {
            Ok(k) => k,
            Err(e) => {
                return Ok(Observation::Pending {
                    seen: format!("Istio's Gateway kind is not served: {}", crate::kube::failure::render(&e)),
                    diagnosis: Some(Diagnosis::new(
                        format!("{} does not serve Istio's Gateway kind", c.name),
                        "install istio-base (stage 2)",
                    )),
                })
            }
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
        Ok(match api.get_opt(name).await? {
            Some(gw) => Observation::Holds(gw.data),
            None => Observation::broken(
                format!("no Gateway {ns}/{name}"),
                Diagnosis::new(
                    format!("the Gateway {ns}/{name} is missing, so the east-west gateway does not listen for cross-network traffic"),
                    "apply it (the multicluster chart renders it): port 15443, TLS, AUTO_PASSTHROUGH, hosts *.local",
                ),
            ),
        })
    }
}

/// The judgements of what provisioning produced, on what the checks above read:
/// each says what is wrong, or nothing.
pub mod judge {
    use super::*;

    /// The stages, ordered by when they really started, are `want` (numbers and names);
    /// each created something and started after the previous one finished.
    pub fn stages_in_order(
        record: &crate::provision::ProvisionRecord,
        want: &[(String, String)],
    ) -> Result<(), String> {
        let mut ran: Vec<&crate::provision::StageRecord> = record.stages.iter().collect();
        ran.sort_by_key(|s| s.started_at);
        let got: Vec<(String, String)> = ran.iter().map(|s| (s.number.to_string(), s.name.clone())).collect();
        if got != want {
            return Err(format!("stages ran as {got:?}, expected {want:?}"));
        }
        if let Some(s) = ran.iter().find(|s| s.created.is_empty()) {
            return Err(format!("stage {} ({}) created nothing", s.number, s.name));
        }
        match ran.windows(2).find(|p| p[0].finished_at > p[1].started_at) {
            Some(p) => Err(format!("stage {} started before stage {} finished", p[1].name, p[0].name)),
            None => Ok(()),
        }
    }

    /// `count` subnets carry the tag, one in each of `azs`.
    pub fn subnets_per_zone(tagged: &[(String, String)], count: usize, azs: &[String]) -> Result<(), String> {
        if tagged.len() != count {
            return Err(format!("{} subnets carry the tag, expected {count}: {tagged:?}", tagged.len()));
        }
        let mut got: Vec<&String> = tagged.iter().map(|(_, az)| az).collect();
        got.sort();
        if got.iter().copied().ne(azs.iter()) {
            return Err(format!("they are in {got:?}, expected {azs:?}"));
        }
        Ok(())
    }

    pub fn label_is(ns: &str, key: &str, got: Option<&str>, want: &str) -> Result<(), String> {
        if got == Some(want) {
            Ok(())
        } else {
            Err(format!("namespace {ns} has {key}={got:?}, expected {want:?}"))
        }
    }

    pub fn has_keys(keys: &[String], want: &[&str]) -> Result<(), String> {
        match want.iter().find(|k| !keys.iter().any(|x| x == *k)) {
            Some(k) => Err(format!("cacerts lacks {k} (keys: {keys:?})")),
            None => Ok(()),
        }
    }

    /// What of istiod's settings differs from `want`.
    pub fn istiod_settings(got: &IstiodSettings, want: &IstiodSettings) -> Result<(), String> {
        let show = |v: &Option<String>| v.as_deref().map(|s| format!("{s:?}")).unwrap_or_else(|| "nothing".into());
        let wrong: Vec<String> = [
            ("mesh ID (mesh config defaultConfig.meshId)", &got.mesh_id, &want.mesh_id),
            ("cluster ID (istiod's CLUSTER_ID)", &got.cluster_id, &want.cluster_id),
            ("network (injector values global.network)", &got.network, &want.network),
        ]
        .into_iter()
        .filter(|(_, g, w)| g != w)
        .map(|(what, g, w)| format!("{what} is {}, expected {}", show(g), show(w)))
        .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("istiod's {}", wrong.join("; ")))
        }
    }

    /// The east-west gateway's pods carry the network label and ask for their own network's view.
    pub fn eastwest_network(d: &Deployment, network: &str) -> Result<(), String> {
        let labels = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let label = labels.get(names::NETWORK_LABEL).map(String::as_str);
        if label != Some(network) {
            return Err(format!("east-west gateway pods are labelled {}={label:?}", names::NETWORK_LABEL));
        }
        let env = container_env(d);
        let view = env.get("ISTIO_META_REQUESTED_NETWORK_VIEW").map(String::as_str);
        if view != Some(network) {
            return Err(format!("ISTIO_META_REQUESTED_NETWORK_VIEW is {view:?}, expected {network}"));
        }
        Ok(())
    }

    /// The Gateway selects the east-west gateway and passes TLS through on `port` for `hosts`.
    pub fn passes_tls_through(gateway: &serde_json::Value, port: u16, hosts: &str) -> Result<(), String> {
        let spec = &gateway["spec"];
        if spec["selector"]["istio"] != "eastwestgateway" {
            return Err(format!("selects {}", spec["selector"]));
        }
        let servers = spec["servers"].as_array().cloned().unwrap_or_default();
        let ok = servers.iter().any(|s| {
            s["port"]["number"] == port
                && s["port"]["protocol"] == "TLS"
                && s["tls"]["mode"] == "AUTO_PASSTHROUGH"
                && s["hosts"].as_array().is_some_and(|h| h.iter().any(|x| x == hosts))
        });
        if ok {
            Ok(())
        } else {
            Err(format!("has no TLS AUTO_PASSTHROUGH server on {port} for {hosts}: {servers:?}"))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_gateway_without_passthrough_or_with_another_selector_is_named() {
            let gw = serde_json::json!({"spec": {"selector": {"istio": "eastwestgateway"}, "servers": [
                {"port": {"number": 15443, "protocol": "TLS"}, "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}});
            assert!(passes_tls_through(&gw, 15443, "*.local").is_ok());
            assert!(passes_tls_through(&gw, 15443, "*.example").is_err());
            let mut simple = gw.clone();
            simple["spec"]["servers"][0]["tls"]["mode"] = "SIMPLE".into();
            assert!(passes_tls_through(&simple, 15443, "*.local").is_err());
            let mut other = gw;
            other["spec"]["selector"]["istio"] = "ingressgateway".into();
            assert!(passes_tls_through(&other, 15443, "*.local").unwrap_err().contains("selects"));
        }

        #[test]
        fn subnets_are_counted_and_placed_and_settings_compared() {
            let azs: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
            let tagged =
                vec![("10.0.0.0/24".to_string(), "b".to_string()), ("10.0.1.0/24".to_string(), "a".to_string())];
            assert!(subnets_per_zone(&tagged, 2, &azs).is_ok());
            assert!(subnets_per_zone(&tagged, 3, &azs).is_err());
            assert!(subnets_per_zone(&tagged[..1], 1, &azs[..1]).is_err());
            let s = |m: &str| IstiodSettings { mesh_id: Some(m.into()), cluster_id: None, network: None };
            assert!(istiod_settings(&s("mesh1"), &s("mesh1")).is_ok());
            assert!(istiod_settings(&s("mesh2"), &s("mesh1")).unwrap_err().contains("mesh ID"));
            assert!(has_keys(&["a".into()], &["a", "b"]).unwrap_err().contains("lacks b"));
            assert!(label_is("istio-system", "k", Some("n1"), "n2").is_err());
        }
    }
}
