//! Ordering, read back from state on any target: istiod started after `cacerts`
//! existed and serves its root; the load balancer controller ran before the
//! gateway Services were created.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::check::{Check, Diagnosis, Observation};
use crate::mesh::cacerts::root_fingerprint;
use crate::provision::StageStep;
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

/// When each container of the pods matching `selector` started running.
async fn started_at(client: &kube::Client, ns: &str, selector: &str) -> Result<Vec<(String, DateTime<Utc>)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for p in pods.list(&ListParams::default().labels(selector)).await?.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        for cs in p.status.and_then(|s| s.container_statuses).unwrap_or_default() {
            if let Some(t) = cs.state.and_then(|s| s.running).and_then(|r| r.started_at) {
                out.push((name.clone(), DateTime::<Utc>::from_timestamp(t.0.as_second(), 0).unwrap_or_default()));
            }
        }
    }
    ensure!(!out.is_empty(), "no running pod with {selector} in {ns}");
    Ok(out)
}

fn created(meta: &kube::api::ObjectMeta) -> Option<DateTime<Utc>> {
    meta.creation_timestamp.as_ref().and_then(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0))
}

/// istiod's Deployment scaled to zero replicas: a definite break (nothing
/// brings a pod back, and nothing pushes configuration meanwhile; sidecars
/// keep what they last got, Envoy docs configuration/overview/mgmt_server).
/// None when it has replicas, or when it cannot be read.
pub async fn istiod_scaled_to_zero(session: &Session, c: &ClusterTopology) -> Option<Diagnosis> {
    let client = session.kube(&c.name).await.ok()?;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, names::ISTIO_SYSTEM);
    let d = deployments.get_opt("istiod").await.ok()??;
    (d.spec.as_ref().and_then(|s| s.replicas) == Some(0)).then(|| {
        Diagnosis::new(
            format!(
                "istiod in {} is scaled to zero replicas: nothing pushes configuration there, and its sidecars keep what they last received",
                c.name
            ),
            format!("kubectl --context <{}> -n {} scale deployment/istiod --replicas=1", c.name, names::ISTIO_SYSTEM),
        )
    })
}

fn restart_istiod() -> Diagnosis {
    Diagnosis::new(
        "istiod started before cacerts existed and hands out its own self-signed root",
        "kubectl rollout restart deployment/istiod -n istio-system, then restart the workloads",
    )
}

#[derive(Debug, Serialize)]
pub struct IstiodOrdering {
    pub cluster: String,
    pub cacerts_created: DateTime<Utc>,
    pub istiod_started: Vec<(String, DateTime<Utc>)>,
    pub cacerts_root: String,
    pub served_root: String,
}

/// istiod started after `cacerts` existed: the root it hands out
/// (`istio-ca-root-cert` in `namespace`) is cacerts' root. The root decides
/// (timestamps have a resolution of one second, and cacerts may be re-created
/// with the same root); the start times are reported with it.
///
/// Definite: cacerts missing, or istiod serving another root (it keeps its
/// own until restarted), or istiod scaled to zero. Transient: istiod not
/// running yet, or the root ConfigMap not written yet.
pub struct IstiodAfterCacerts {
    pub cluster: ClusterTopology,
    pub namespace: String,
}

impl Check for IstiodAfterCacerts {
    type Evidence = IstiodOrdering;

    fn name(&self) -> String {
        format!("{}: istiod after cacerts", self.cluster.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.rollout
    }

    async fn observe(&self, s: &Session) -> Result<Observation<IstiodOrdering>> {
        let (c, namespace) = (&self.cluster, &self.namespace);
        let client = s.kube(&c.name).await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
        let cacerts = secrets.get_opt(names::CACERTS).await?;
        let root_pem = cacerts.as_ref().and_then(|c| c.data.as_ref()).and_then(|d| d.get("root-cert.pem").cloned());
        let (Some(cacerts), Some(root_pem)) = (cacerts, root_pem) else {
            // Missing or without a root: the cacerts check names why. Should it hold by
            // now (cacerts written between the two reads), look again.
            return Ok(match super::provisioning::Cacerts(c.clone()).observe(s).await? {
                Observation::Holds(_) => Observation::pending("cacerts appeared while it was read"),
                other => other.map_holds(|_| unreachable!("a holding observation is handled above")),
            });
        };
        let cacerts_created = created(&cacerts.metadata).context("cacerts has no creationTimestamp")?;
        let cacerts_root = root_fingerprint(&String::from_utf8_lossy(&root_pem.0))?;
        let istiod_started = match started_at(&client, names::ISTIO_SYSTEM, "app=istiod").await {
            Ok(t) => t,
            Err(e) => {
                return Ok(match istiod_scaled_to_zero(s, c).await {
                    Some(d) => Observation::broken(crate::kube::failure::render(&e), d),
                    None => Observation::pending(crate::kube::failure::render(&e)),
                })
            }
        };
        let cms: Api<ConfigMap> = Api::namespaced(client, namespace);
        let Some(served) = cms
            .get_opt("istio-ca-root-cert")
            .await?
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("root-cert.pem").cloned())
        else {
            return Ok(Observation::pending(format!("no istio-ca-root-cert in {namespace} yet (is istiod running?)")));
        };
        let served_root = root_fingerprint(&served)?;
        let evidence =
            IstiodOrdering { cluster: c.name.clone(), cacerts_created, istiod_started, cacerts_root, served_root };
        if evidence.served_root == evidence.cacerts_root {
            return Ok(Observation::Holds(evidence));
        }
        let early: Vec<String> = evidence
            .istiod_started
            .iter()
            .filter(|(_, t)| *t < evidence.cacerts_created)
            .map(|(pod, t)| format!("{pod} started at {t}"))
            .collect();
        Ok(Observation::broken(
            format!(
                "istiod serves the root {} in {namespace}, not cacerts' root {} (cacerts created at {}; {}): it started before cacerts existed or was not restarted after cacerts changed",
                &evidence.served_root[..12],
                &evidence.cacerts_root[..12],
                evidence.cacerts_created,
                if early.is_empty() { "istiod started after it".to_string() } else { early.join(", ") }
            ),
            restart_istiod(),
        ))
    }
}

/// The root fingerprint istiod serves in a namespace.
pub async fn served_root(session: &Session, c: &ClusterTopology, namespace: &str) -> Result<String> {
    let cms: Api<ConfigMap> = Api::namespaced(session.kube(&c.name).await?, namespace);
    let cm = cms
        .get_opt("istio-ca-root-cert")
        .await?
        .with_context(|| format!("{}: no istio-ca-root-cert in {namespace}", c.name))?;
    root_fingerprint(&cm.data.and_then(|d| d.get("root-cert.pem").cloned()).unwrap_or_default())
}

/// Every cluster's istiod serves one root in the namespace.
pub async fn one_served_root(session: &Session, namespace: &str) -> Result<String> {
    let mut roots = Vec::new();
    for c in &session.topology.clusters {
        roots.push((c.name.clone(), served_root(session, c, namespace).await?));
    }
    ensure!(roots.windows(2).all(|p| p[0].1 == p[1].1), "the clusters serve different roots: {roots:?}");
    Ok(roots.first().map(|r| r.1.clone()).unwrap_or_default())
}

/// How the order of the load balancer controller and the gateway Service is known.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "evidence")]
pub enum ControllerOrder {
    /// This run provisioned the gateways only after the controller was seen available.
    Provisioned { gateways_stage: String, controller_seen: Vec<String> },
    /// The Service carries the class the controller's Service mutating webhook sets
    /// on CREATE (or that its author set): the controller owns it, and the in-tree
    /// provider leaves it alone, whenever the controller started.
    AdmittedByWebhook { load_balancer_class: String },
    /// Nothing that survives restarts tells the order (a verify-only run on a
    /// Service without the class): reported, not passed off as checked.
    Unknown { why: String },
}

#[derive(Debug, Serialize)]
pub struct ControllerOrdering {
    pub cluster: String,
    pub order: ControllerOrder,
}

/// The class the AWS Load Balancer Controller's Service mutating webhook
/// (`mservice.elbv2.k8s.aws`, controller v2.5.0+, Helm value
/// `enableServiceMutatorWebhook`, default true) writes into `spec.loadBalancerClass`
/// of a new LoadBalancer Service without one (aws-load-balancer-controller
/// `webhooks/core/service_mutator.go`, `pkg/config/service_config.go`).
pub const NLB_CLASS: &str = "service.k8s.aws/nlb";

/// The load balancer controller ran before the east-west gateway Service was
/// created, from evidence a controller restart does not erase: this run's
/// stage record (the gateways' stage started only once the controller was seen
/// available), else the class the controller's webhook sets at creation. Pod
/// start times are not evidence: a `rollout restart` or a node rotation renews them.
pub async fn controller_before_gateway(session: &Session, c: &ClusterTopology) -> Result<ControllerOrdering> {
    let order = match session.run.provisioned.get() {
        Some(Ok(record)) if !record.stages.is_empty() => from_record(record, c)?,
        _ => {
            let svcs: Api<Service> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_INGRESS);
            let svc = svcs.get(names::EASTWEST_GATEWAY).await?;
            match svc.spec.and_then(|s| s.load_balancer_class) {
                Some(class) if class == NLB_CLASS => ControllerOrder::AdmittedByWebhook { load_balancer_class: class },
                Some(other) => ControllerOrder::Unknown {
                    why: format!("the Service has loadBalancerClass {other:?}, which the AWS load balancer controller does not set"),
                },
                None => ControllerOrder::Unknown {
                    why: format!(
                        "this run did not provision the deployment, and the Service has no loadBalancerClass \
                         ({NLB_CLASS} would show the controller's webhook admitted it; the webhook exists from \
                         controller v2.5.0 unless enableServiceMutatorWebhook=false)"
                    ),
                },
            }
        }
    };
    Ok(ControllerOrdering { cluster: c.name.clone(), order })
}

/// The order as this run's provisioning made it.
fn from_record(record: &crate::provision::ProvisionRecord, c: &ClusterTopology) -> Result<ControllerOrder> {
    let Some(gateways) = record.stages.iter().find(|s| s.steps.iter().any(|st| st == StageStep::Gateways.as_str()))
    else {
        return Ok(ControllerOrder::Unknown { why: "this run's provisioning had no gateways step".into() });
    };
    let controller =
        |st: &crate::provision::StageRecord| st.steps.iter().any(|s| s == StageStep::LoadBalancerController.as_str());
    let installed_before = record.stages.iter().any(|st| st.finished_at <= gateways.started_at && controller(st));
    let seen: Vec<String> = gateways
        .precondition_evidence
        .iter()
        .filter(|p| {
            matches!(p.name.as_str(), "load-balancer-controller-available" | "load-balancer-available")
                && p.checked_at <= gateways.started_at
        })
        .flat_map(|p| p.seen.iter().filter(|l| l.starts_with(&format!("{}:", c.name))).cloned())
        .collect();
    if !installed_before && seen.is_empty() {
        return Err(anyhow::anyhow!(
            "{}: stage {} ({}) installed the gateways at {} with no load balancer controller installed or seen available before it",
            c.name,
            gateways.number,
            gateways.name,
            gateways.started_at
        )
        .context(Diagnosis::new(
            "the gateway Service was created before the AWS load balancer controller ran",
            "install the controller before the gateways (stage 2), then recreate the gateway Service",
        )));
    }
    Ok(ControllerOrder::Provisioned { gateways_stage: gateways.name.clone(), controller_seen: seen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::preconditions::PreconditionHeld;
    use crate::provision::{ProvisionRecord, ProvisionedBy, StageRecord};

    fn stage(number: u32, steps: &[&str], at: i64, held: Vec<PreconditionHeld>) -> StageRecord {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        StageRecord {
            number,
            name: format!("stage-{number}"),
            started_at: t(at),
            finished_at: t(at + 5),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            preconditions: held.iter().map(|p| p.name.clone()).collect(),
            precondition_evidence: held,
            created: vec!["something".into()],
        }
    }

    fn record(stages: Vec<StageRecord>) -> ProvisionRecord {
        ProvisionRecord { by: ProvisionedBy::Api, stages, root_fingerprint: None }
    }

    #[test]
    fn the_order_comes_from_the_stage_record() {
        let c = crate::topology::Topology::seed().clusters[0].clone();
        // The seed's plan: the controller in stage 2, the gateways in stage 3 once it was seen available.
        let seen = PreconditionHeld {
            name: "load-balancer-controller-available".into(),
            checked_at: DateTime::<Utc>::from_timestamp(19, 0).unwrap(),
            seen: vec![format!("{}: deployment kube-system/aws-load-balancer-controller available", c.name)],
        };
        let seed = record(vec![
            stage(1, &["vpcs", "clusters", "cacerts"], 0, vec![]),
            stage(2, &["istiod", "load-balancer-controller"], 10, vec![]),
            stage(3, &["gateways", "reader-tokens", "samples"], 20, vec![seen]),
        ]);
        match from_record(&seed, &c).unwrap() {
            ControllerOrder::Provisioned { controller_seen, .. } => assert_eq!(controller_seen.len(), 1),
            other => panic!("{other:?}"),
        }
        // Gateways with no controller installed before them nor seen: the wrong order, named.
        let wrong = record(vec![
            stage(1, &["vpcs", "clusters", "cacerts"], 0, vec![]),
            stage(2, &["istiod"], 10, vec![]),
            stage(3, &["gateways", "reader-tokens", "samples"], 20, vec![]),
        ]);
        let e = format!("{:#}", from_record(&wrong, &c).unwrap_err());
        assert!(
            e.contains("diagnosis: the gateway Service was created before the AWS load balancer controller ran"),
            "{e}"
        );
        // No gateways step: nothing to say about the order.
        let none = record(vec![stage(1, &["vpcs"], 0, vec![])]);
        assert!(matches!(from_record(&none, &c).unwrap(), ControllerOrder::Unknown { .. }));
    }
}
