//! Ordering, read back from state on any target: istiod started after `cacerts`
//! existed and serves its root; the load balancer controller ran before the
//! gateway Services were created.

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::faults::diagnosis;
use crate::mesh::cacerts::root_fingerprint;
use crate::target::Session;
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

fn restart_istiod() -> String {
    diagnosis(
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

/// istiod started after `cacerts` existed, and the root it hands out
/// (`istio-ca-root-cert` in `namespace`) is cacerts' root. Timestamps have a
/// resolution of one second, so the root comparison is what decides.
pub async fn istiod_after_cacerts(session: &Session, c: &ClusterTopology, namespace: &str) -> Result<IstiodOrdering> {
    let client = session.kube(&c.name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    let cacerts = secrets.get_opt(names::CACERTS).await?.with_context(|| format!("{}: no cacerts", c.name))?;
    let cacerts_created = created(&cacerts.metadata).context("cacerts has no creationTimestamp")?;
    let root_pem = cacerts
        .data
        .and_then(|d| d.get("root-cert.pem").cloned())
        .with_context(|| format!("{}: cacerts has no root-cert.pem", c.name))?;
    let cacerts_root = root_fingerprint(&String::from_utf8_lossy(&root_pem.0))?;
    let istiod_started = started_at(&client, names::ISTIO_SYSTEM, "app=istiod").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, namespace);
    let served = cms
        .get_opt("istio-ca-root-cert")
        .await?
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("root-cert.pem").cloned())
        .with_context(|| format!("{}: no istio-ca-root-cert in {namespace} (is istiod running?)", c.name))?;
    let served_root = root_fingerprint(&served)?;
    let evidence =
        IstiodOrdering { cluster: c.name.clone(), cacerts_created, istiod_started, cacerts_root, served_root };
    for (pod, t) in &evidence.istiod_started {
        ensure!(
            *t >= evidence.cacerts_created,
            "{}: {}: istiod {pod} started at {t}, before cacerts existed ({}): it keeps its own root until restarted",
            restart_istiod(),
            c.name,
            evidence.cacerts_created
        );
    }
    ensure!(
        evidence.served_root == evidence.cacerts_root,
        "{}: {}: istiod serves a root ({}) that is not cacerts' root ({}): it started before cacerts existed or was not restarted after cacerts changed",
        restart_istiod(),
        c.name,
        &evidence.served_root[..12],
        &evidence.cacerts_root[..12]
    );
    Ok(evidence)
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

#[derive(Debug, Serialize)]
pub struct ControllerOrdering {
    pub cluster: String,
    pub controller_started: DateTime<Utc>,
    pub gateway_service_created: DateTime<Utc>,
}

/// The load balancer controller ran before the east-west gateway Service was
/// created (its oldest running pod started no later than the Service).
pub async fn controller_before_gateway(session: &Session, c: &ClusterTopology) -> Result<ControllerOrdering> {
    let client = session.kube(&c.name).await?;
    let started =
        started_at(&client, names::KUBE_SYSTEM, "app.kubernetes.io/name=aws-load-balancer-controller").await?;
    let controller_started = started.iter().map(|(_, t)| *t).min().context("no controller pod")?;
    let svcs: Api<Service> = Api::namespaced(client, names::ISTIO_INGRESS);
    let svc = svcs.get(names::EASTWEST_GATEWAY).await?;
    let gateway_service_created = created(&svc.metadata).context("the Service has no creationTimestamp")?;
    ensure!(
        controller_started <= gateway_service_created,
        "{}: {}: the east-west gateway Service was created at {gateway_service_created}, before the load balancer controller ran ({controller_started})",
        diagnosis(
            "the gateway Service was created before the AWS load balancer controller ran",
            "install the controller first (stage 1), then recreate the gateway Service"
        ),
        c.name
    );
    Ok(ControllerOrdering { cluster: c.name.clone(), controller_started, gateway_service_created })
}
