//! The evidence bundle of a failed scenario: per cluster, what an on-call
//! engineer would look at first. Every part is best effort (a part that cannot
//! be read says why) and bounded by the API deadlines; Secrets are listed by
//! name only.

use k8s_openapi::api::core::v1::{Event, Pod, Secret, Service};
use kube::api::{Api, ListParams, LogParams};
use serde_json::{json, Value};

use crate::checks::{check, readiness, sync};
use crate::mesh::istiod;
use crate::run::Session;
use crate::topology::names;

const NAMESPACES: &[&str] = &[names::ISTIO_SYSTEM, names::ISTIO_INGRESS, names::SAMPLE];

fn or_error<T: serde::Serialize>(r: anyhow::Result<T>) -> Value {
    match r {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => json!({"unavailable": format!("{e:#}")}),
    }
}

async fn cluster_bundle(session: &Session, cluster: &str) -> Value {
    let Ok(c) = session.topology.cluster(cluster).cloned() else { return Value::Null };
    let client = match session.kube(&c.name).await {
        Ok(client) => client,
        Err(e) => return json!({"unavailable": format!("{e:#}")}),
    };
    let mut objects = serde_json::Map::new();
    for ns in NAMESPACES {
        let pods: anyhow::Result<Vec<Value>> = async {
            Ok(Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|p| {
                    let st = p.status.unwrap_or_default();
                    json!({"name": p.metadata.name, "phase": st.phase, "podIP": st.pod_ip,
                           "containers": p.spec.map(|s| s.containers.into_iter().map(|c| c.name).collect::<Vec<_>>())})
                })
                .collect())
        }
        .await;
        let services: anyhow::Result<Vec<Value>> = async {
            Ok(Api::<Service>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|s| json!({"name": s.metadata.name, "labels": s.metadata.labels,
                                "type": s.spec.and_then(|sp| sp.type_), "loadBalancer": s.status.and_then(|st| st.load_balancer)}))
                .collect())
        }
        .await;
        // Secrets by name and type only: their data never leaves the cluster.
        let secrets: anyhow::Result<Vec<Value>> = async {
            Ok(Api::<Secret>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|s| json!({"name": s.metadata.name, "type": s.type_, "keys": s.data.map(|d| d.into_keys().collect::<Vec<_>>())}))
                .collect())
        }
        .await;
        let events = events_of(&client, ns).await;
        objects.insert(
            ns.to_string(),
            json!({"pods": or_error(pods), "services": or_error(services), "secrets": or_error(secrets), "events": or_error(events)}),
        );
    }
    let timeout = session.timeouts.api_call;
    let istiod_log = or_error(istiod_log(&client, timeout).await);
    let clusterz = or_error(istiod::clusterz(&client, timeout).await);
    let networkz = or_error(istiod::networkz(&client, timeout).await);
    let endpoints = or_error(
        async {
            let pod = sync::sleep_pod(session, &c).await?;
            sync::sidecar_endpoints(session, &c, names::SAMPLE, &pod).await
        }
        .await,
    );
    let target_health = or_error(
        async {
            let hostname = check::now(session, &readiness::GatewayHostname(c.clone())).await?;
            let lb =
                check::now(session, &readiness::LoadBalancerOf { cluster: c.name.clone(), hostname, active: false })
                    .await?;
            let tg = check::now(
                session,
                &readiness::ListenerTargetGroup { cluster: c.name.clone(), lb, port: names::CROSS_NETWORK_PORT },
            )
            .await?;
            crate::aws::nlb::target_health(session.aws()?, &tg).await
        }
        .await,
    );
    json!({"objects": objects, "istiod_log": istiod_log, "clusterz": clusterz, "networkz": networkz,
           "sleep_endpoints": endpoints, "eastwest_target_health": target_health})
}

/// The namespace's Events as `kubectl get events` shows them (oldest first,
/// by last seen: lastTimestamp, else eventTime for events.k8s.io recorders such
/// as kube-scheduler's), with who reported them and how often.
async fn events_of(client: &kube::Client, ns: &str) -> anyhow::Result<Vec<Value>> {
    let mut events = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let last_seen = |e: &Event| {
        e.last_timestamp.as_ref().map(|t| t.0).or_else(|| e.event_time.as_ref().map(|t| t.0)).unwrap_or_default()
    };
    events.sort_by_key(last_seen);
    Ok(events
        .iter()
        .map(|e| {
            let o = &e.involved_object;
            let object = format!(
                "{}/{}",
                o.kind.as_deref().unwrap_or_default().to_lowercase(),
                o.name.as_deref().unwrap_or_default()
            );
            let from = e
                .reporting_component
                .clone()
                .filter(|c| !c.is_empty())
                .or_else(|| e.source.as_ref().and_then(|s| s.component.clone()));
            json!({"lastSeen": last_seen(e).to_string(), "type": e.type_, "reason": e.reason, "object": object,
                   "subobject": o.field_path, "message": e.message, "count": e.count, "from": from})
        })
        .collect())
}

/// Lines read from the end of istiod's log for the bundle.
const ISTIOD_LOG_TAIL: i64 = 100;

/// The end of istiod's log (`kubectl logs -l app=istiod -n istio-system -c discovery --tail=100`).
async fn istiod_log(client: &kube::Client, timeout: std::time::Duration) -> anyhow::Result<String> {
    let pod = crate::kube::exec::first_running_pod(client, names::ISTIO_SYSTEM, "app=istiod").await?;
    let name = pod.metadata.name.unwrap_or_default();
    let params =
        LogParams { container: Some("discovery".into()), tail_lines: Some(ISTIOD_LOG_TAIL), ..LogParams::default() };
    let api: Api<Pod> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    Ok(tokio::time::timeout(timeout, api.logs(&name, &params)).await??)
}

/// One bundle per cluster of the session's topology.
pub async fn collect(session: &Session) -> Value {
    let mut out = serde_json::Map::new();
    for c in &session.topology.clusters {
        out.insert(c.name.clone(), cluster_bundle(session, &c.name).await);
    }
    Value::Object(out)
}
