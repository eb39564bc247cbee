//! The replica set controller: keeps `spec.replicas` pods of the template
//! (named `<replicaset>-<5 chars>`, owned by the ReplicaSet), replaces pods
//! that are deleted, removes surplus ones (not-ready and newest first), and
//! reports counts in the ReplicaSet's status.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::deployments::desired_replicas;
use super::events;
use super::objects::{self, pod};
use super::runtime::{Cluster, Reconciler};
use crate::kube::{Resource, StoreEvent};

/// The suffix alphabet Kubernetes uses for generated names (no vowels, no
/// look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix() -> String {
    (0..5).map(|_| char::from(NAME_ALPHABET[rand::random_range(0..NAME_ALPHABET.len())])).collect()
}

/// A new pod of the ReplicaSet's template.
pub fn pod_for(rs: &Value) -> Value {
    let template = rs.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = template.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    let rs_name = objects::name(rs);
    metadata["name"] = json!(format!("{rs_name}-{}", random_suffix()));
    metadata["generateName"] = json!(format!("{rs_name}-"));
    metadata["namespace"] = json!(objects::namespace(rs));
    metadata["ownerReferences"] = json!([objects::owner_reference(rs, "apps/v1", "ReplicaSet")]);
    // The API server fills the pod spec's defaults.
    let spec = template.get("spec").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// Which pods to delete to get down to `keep`: not-ready first, then newest.
fn surplus(mut pods: Vec<&Value>, keep: usize) -> Vec<&Value> {
    pods.sort_by(|a, b| {
        let created =
            |p: &Value| p.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_owned();
        pod::is_ready(a)
            .cmp(&pod::is_ready(b))
            .then_with(|| created(b).cmp(&created(a)))
            .then_with(|| objects::name(b).cmp(objects::name(a)))
    });
    let n = pods.len().saturating_sub(keep);
    pods.into_iter().take(n).collect()
}

/// How soon a pod creation that admission refused is tried again. A real
/// controller requeues the ReplicaSet with a back-off; what lifts a refusal
/// (istiod turning Ready behind the injection webhook) need not be a store
/// event this controller sees.
const REFUSED_RETRY: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct ReplicaSetController {
    /// Whether the last pass had a pod creation refused.
    refused: bool,
}

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicasets"
    }

    fn resync(&self) -> Option<Duration> {
        self.refused.then_some(REFUSED_RETRY)
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        matches!(event.resource.plural.as_str(), "replicasets" | "pods")
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let replica_sets = cluster.list(&Resource::replicasets());
        let pods = cluster.list(&Resource::pods());
        self.refused = false;

        for rs in &replica_sets {
            if objects::is_terminating(rs) {
                continue;
            }
            let ns = objects::namespace(rs);
            let owned: Vec<&Value> = pods
                .iter()
                .filter(|p| {
                    objects::namespace(p) == ns
                        && objects::controller_uid(p, "ReplicaSet") == Some(objects::uid(rs))
                        && !objects::is_terminating(p)
                        && !matches!(pod::phase(p), "Succeeded" | "Failed")
                })
                .collect();
            let desired = usize::try_from(desired_replicas(rs)).unwrap_or(usize::MAX);
            // A pod refused by admission (a webhook) is tried again on the next pass.
            let mut refused = None;
            if owned.len() < desired {
                for _ in owned.len()..desired {
                    match cluster.admit_pod(pod_for(rs)) {
                        Ok(p) => {
                            if let Some(created) = cluster.create(&Resource::pods(), p) {
                                let msg = format!("Created pod: {}", objects::name(&created));
                                record(cluster, rs, events::NORMAL, "SuccessfulCreate", &msg);
                            }
                        }
                        Err(why) => {
                            if !refused_before(rs, &why) {
                                record(cluster, rs, events::WARNING, "FailedCreate", &format!("Error creating: {why}"));
                            }
                            refused = Some(why);
                            break;
                        }
                    }
                }
            } else {
                for p in surplus(owned.clone(), desired) {
                    if cluster.delete(&Resource::pods(), Some(ns), objects::name(p)).is_some() {
                        let msg = format!("Deleted pod: {}", objects::name(p));
                        record(cluster, rs, events::NORMAL, "SuccessfulDelete", &msg);
                    }
                }
            }

            let ready = owned.iter().filter(|p| pod::is_ready(p)).count();
            let mut status = json!({"replicas": owned.len(), "fullyLabeledReplicas": owned.len()});
            if ready > 0 {
                status["readyReplicas"] = json!(ready);
                status["availableReplicas"] = json!(ready);
            }
            if let Some(g) = rs.pointer("/metadata/generation").and_then(Value::as_i64) {
                status["observedGeneration"] = json!(g);
            }
            if let Some(why) = refused {
                self.refused = true;
                status["conditions"] = json!([failed_create(rs, &why)]);
            }
            if rs.get("status") != Some(&status) {
                let mut updated = rs.clone();
                updated["status"] = status;
                cluster.set_status(&Resource::replicasets(), &updated);
            }
        }
    }
}

/// The replica set controller's events (kubernetes pkg/controller/controller_utils.go
/// RealPodControl: `Created pod: %v`, `Deleted pod: %v`, `Error creating: %v`;
/// its recorder's component is `replicaset-controller`, pkg/controller/replicaset).
fn record(cluster: &Cluster, rs: &Value, type_: &str, reason: &str, message: &str) {
    let at = events::reference(&Resource::replicasets(), rs, None);
    events::record(cluster, at, type_, reason, message, events::Source::component("replicaset-controller"));
}

/// Whether the refusal is the one the status already shows (reported then: the
/// twin retries far more often than the controller's back-off would).
fn refused_before(rs: &Value, why: &str) -> bool {
    rs.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "ReplicaFailure" && c["message"] == why))
}

/// The `ReplicaFailure` condition of a ReplicaSet whose pods are refused,
/// keeping its transition time while the refusal stays the same (so that a
/// pass that changes nothing writes nothing).
fn failed_create(rs: &Value, why: &str) -> Value {
    let previous = rs
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure" && c["message"] == why));
    let since = match previous {
        Some(c) => c["lastTransitionTime"].clone(),
        None => {
            tracing::info!("replicaset {}/{}: pod creation refused: {why}", objects::namespace(rs), objects::name(rs));
            json!(super::runtime::timestamp())
        }
    };
    json!({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": why,
           "lastTransitionTime": since})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_after_the_replica_set_and_owned_by_it() {
        let rs = json!({
            "metadata": {"name": "sleep-0123456789", "namespace": "sample", "uid": "rs-1"},
            "spec": {"template": {"metadata": {"labels": {"app": "sleep", "pod-template-hash": "0123456789"}},
                                  "spec": {"containers": [{"name": "sleep", "image": "curlimages/curl"}]}}}
        });
        let p = pod_for(&rs);
        let name = p["metadata"]["name"].as_str().unwrap();
        let suffix = name.strip_prefix("sleep-0123456789-").unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| NAME_ALPHABET.contains(&b)));
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], "0123456789");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "rs-1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["spec"]["containers"][0]["image"], "curlimages/curl");
    }

    #[test]
    fn surplus_pods_are_the_unready_then_the_newest() {
        let mk = |name: &str, ready: bool, created: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
        };
        let a = mk("a", true, "2026-11-25T18:00:00Z");
        let b = mk("b", true, "2026-11-25T18:05:00Z");
        let c = mk("c", false, "2026-11-25T17:00:00Z");
        let gone: Vec<&str> = surplus(vec![&a, &b, &c], 1).into_iter().map(objects::name).collect();
        assert_eq!(gone, ["c", "b"]);
        assert!(surplus(vec![&a], 3).is_empty());
    }

    /// Admission that refuses pods until told otherwise, with no store event in between.
    struct Webhook(std::sync::atomic::AtomicBool);

    impl super::super::PodHooks for Webhook {
        fn admit(&self, p: Value) -> Result<Value, String> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(p)
            } else {
                Err("no endpoints available for service \"istiod\"".into())
            }
        }

        fn start(&self, _: &Value, _: &[String]) -> Result<(), super::super::ContainerExit> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_pod_is_created_once_admission_allows_it_without_another_event() {
        let aws = crate::aws::AwsState::new(crate::aws::AwsConfig::default());
        let cfg = aws.config();
        let store = crate::kube::Store::new();
        let auth = Arc::new(crate::auth::ClusterAuth::new("eks-1", crate::aws_api::in_process(&aws)));
        let cluster = Arc::new(Cluster::new(
            "eks-1",
            &cfg.region,
            "vpc-1",
            store,
            crate::aws_api::in_process(&aws),
            cfg.clock,
            cfg.delays.clone(),
            auth,
            String::new(),
        ));
        let webhook = Arc::new(Webhook(std::sync::atomic::AtomicBool::new(false)));
        cluster.set_pod_hooks(webhook.clone());
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "sleep-1", "namespace": "sample"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleep"}},
                     "template": {"metadata": {"labels": {"app": "sleep"}},
                                  "spec": {"containers": [{"name": "sleep", "image": "c"}]}}}});
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sample"}});
        cluster.store.create(&Resource::namespaces(), None, ns).expect("namespace");
        cluster.store.create(&Resource::replicasets(), Some("sample"), rs).expect("replica set");
        let task = super::super::runtime::spawn(cluster.clone(), ReplicaSetController::default());
        let pods = || cluster.list(&Resource::pods()).len();
        let start = std::time::Instant::now();
        while cluster.list(&Resource::replicasets())[0].pointer("/status/conditions").is_none() {
            assert!(start.elapsed() < Duration::from_secs(10), "the refusal never showed in the status");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pods(), 0);
        webhook.0.store(true, std::sync::atomic::Ordering::SeqCst);
        while pods() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "the pod was never created after admission allowed it");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
    }
}
