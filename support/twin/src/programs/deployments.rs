//! The deployment controller: a Deployment owns one ReplicaSet per pod
//! template (named `<deployment>-<pod-template-hash>`); the current one is
//! scaled to `spec.replicas` and older ones scale down as the new pods become
//! ready (a rolling update without unavailability). The Deployment's status
//! sums its ReplicaSets'. (Deleting a Deployment deletes its ReplicaSets and
//! their pods through the store's garbage collection of owner references.)

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::events;
use super::objects;
use super::runtime::{Cluster, Reconciler};
use crate::kube::{Resource, StoreEvent};

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// 10 hex digits of a SHA-256 over the template with its keys sorted, so the
/// hash is the same whatever order a client wrote the fields in.
pub fn template_hash(template: &Value) -> String {
    let mut h = Sha256::new();
    h.update(canonical(template).as_bytes());
    hex::encode(h.finalize())[..10].to_owned()
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let body: Vec<String> = sorted.iter().map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// `spec.replicas`, 1 when unset (the API server's default).
pub fn desired_replicas(obj: &Value) -> u64 {
    obj.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1)
}

fn status_count(obj: &Value, field: &str) -> u64 {
    obj.pointer(&format!("/status/{field}")).and_then(Value::as_u64).unwrap_or(0)
}

/// The ReplicaSet a Deployment runs its current template with.
pub fn replica_set_for(deploy: &Value, hash: &str, replicas: u64) -> Value {
    let name = format!("{}-{hash}", objects::name(deploy));
    let mut template = deploy.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    if !template.get("metadata").is_some_and(Value::is_object) {
        template["metadata"] = json!({});
    }
    if !template["metadata"].get("labels").is_some_and(Value::is_object) {
        template["metadata"]["labels"] = json!({});
    }
    template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = deploy.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
    if !selector.get("matchLabels").is_some_and(Value::is_object) {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": objects::namespace(deploy),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string()},
            "ownerReferences": [objects::owner_reference(deploy, "apps/v1", "Deployment")],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    })
}

/// `maxUnavailable` of a rolling update, as a pod count (default 25%, rounded down).
fn max_unavailable(deploy: &Value, desired: u64) -> u64 {
    match deploy.pointer("/spec/strategy/rollingUpdate/maxUnavailable") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) if s.ends_with('%') => {
            let pct: u64 = s.trim_end_matches('%').parse().unwrap_or(25);
            desired * pct / 100
        }
        _ => desired / 4,
    }
}

/// The Deployment status for its ReplicaSets (`new_rs` is the current one's
/// name). Condition timestamps are kept from the Deployment's current status
/// while a condition does not change.
pub fn deployment_status(deploy: &Value, replica_sets: &[&Value], new_rs: &str, now: &str) -> Value {
    let desired = desired_replicas(deploy);
    let sum = |field: &str| replica_sets.iter().map(|rs| status_count(rs, field)).sum::<u64>();
    let (replicas, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
    let updated =
        replica_sets.iter().find(|rs| objects::name(rs) == new_rs).map(|rs| status_count(rs, "replicas")).unwrap_or(0);

    let mut status = json!({});
    if let Some(g) = deploy.pointer("/metadata/generation").and_then(Value::as_i64) {
        status["observedGeneration"] = json!(g);
    }
    // Zero counts are left out, as the API server's omitempty does.
    for (field, n) in [
        ("replicas", replicas),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", desired.saturating_sub(available)),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    let is_available = available + max_unavailable(deploy, desired) >= desired;
    let complete = updated == desired && replicas == desired && available == desired;
    let previous = deploy.pointer("/status/conditions").and_then(Value::as_array);
    status["conditions"] = json!([
        condition(
            previous,
            "Available",
            is_available,
            if is_available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            if is_available {
                "Deployment has minimum availability."
            } else {
                "Deployment does not have minimum availability."
            },
            now,
        ),
        condition(
            previous,
            "Progressing",
            true,
            if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
            &if complete {
                format!("ReplicaSet \"{new_rs}\" has successfully progressed.")
            } else {
                format!("ReplicaSet \"{new_rs}\" is progressing.")
            },
            now,
        ),
    ]);
    status
}

/// A condition, keeping the previous timestamps when nothing changed.
fn condition(previous: Option<&Vec<Value>>, kind: &str, ok: bool, reason: &str, message: &str, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous.and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)));
    let same = |c: &&Value| {
        c.get("status").and_then(Value::as_str) == Some(status)
            && c.get("reason").and_then(Value::as_str) == Some(reason)
    };
    let (update, transition) = match old {
        Some(c) if same(&c) => (
            c.get("lastUpdateTime").cloned().unwrap_or_else(|| json!(now)),
            c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now)),
        ),
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => {
            (json!(now), c.get("lastTransitionTime").cloned().unwrap_or_else(|| json!(now)))
        }
        _ => (json!(now), json!(now)),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": update, "lastTransitionTime": transition})
}

pub struct DeploymentController;

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployments"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        matches!(event.resource.plural.as_str(), "deployments" | "replicasets")
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let deployments = cluster.list(&Resource::deployments());
        let replica_sets = cluster.list(&Resource::replicasets());
        let now = super::runtime::timestamp();

        for deploy in &deployments {
            if objects::is_terminating(deploy) {
                continue;
            }
            let ns = objects::namespace(deploy);
            let desired = desired_replicas(deploy);
            let Some(template) = deploy.pointer("/spec/template") else {
                continue;
            };
            let hash = template_hash(template);
            let new_name = format!("{}-{hash}", objects::name(deploy));
            let owned: Vec<&Value> = replica_sets
                .iter()
                .filter(|rs| {
                    objects::namespace(rs) == ns
                        && objects::controller_uid(rs, "Deployment") == Some(objects::uid(deploy))
                })
                .collect();

            let new_rs = owned.iter().find(|rs| objects::name(rs) == new_name);
            let new_ready = match new_rs {
                None => {
                    if cluster.create(&Resource::replicasets(), replica_set_for(deploy, &hash, desired)).is_some() {
                        scaled(cluster, deploy, &new_name, 0, desired);
                    }
                    0
                }
                Some(rs) => {
                    if desired_replicas(rs) != desired {
                        let from = desired_replicas(rs);
                        let mut rs = (*rs).clone();
                        rs["spec"]["replicas"] = json!(desired);
                        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                            json!(desired.to_string());
                        if cluster.update(&Resource::replicasets(), rs).is_some() {
                            scaled(cluster, deploy, &new_name, from, desired);
                        }
                    }
                    status_count(rs, "readyReplicas")
                }
            };

            // Old templates keep only as many pods as the new one still lacks.
            let mut budget = desired.saturating_sub(new_ready);
            for rs in owned.iter().filter(|rs| objects::name(rs) != new_name) {
                let keep = desired_replicas(rs).min(budget);
                budget -= keep;
                if keep != desired_replicas(rs) {
                    let from = desired_replicas(rs);
                    let name = objects::name(rs).to_owned();
                    let mut rs = (*rs).clone();
                    rs["spec"]["replicas"] = json!(keep);
                    if cluster.update(&Resource::replicasets(), rs).is_some() {
                        scaled(cluster, deploy, &name, from, keep);
                    }
                }
            }

            let status = deployment_status(deploy, &owned, &new_name, &now);
            if deploy.get("status") != Some(&status) {
                let mut d = deploy.clone();
                d["status"] = status;
                cluster.set_status(&Resource::deployments(), &d);
            }
        }
    }
}

/// The deployment controller's event for a scaled replica set (kubernetes
/// pkg/controller/deployment/sync.go scaleReplicaSet; its recorder's
/// component is `deployment-controller`, deployment_controller.go).
fn scaled(cluster: &Cluster, deploy: &Value, rs: &str, from: u64, to: u64) {
    let op = if to > from { "up" } else { "down" };
    events::record(
        cluster,
        events::reference(&Resource::deployments(), deploy, None),
        events::NORMAL,
        "ScalingReplicaSet",
        &format!("Scaled {op} replica set {rs} to {to} from {from}"),
        events::Source::component("deployment-controller"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: u64) -> Value {
        json!({
            "metadata": {"name": "helloworld-v1", "namespace": "sample", "uid": "d-1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "helloworld", "version": "v1"}},
                     "template": {"metadata": {"labels": {"app": "helloworld", "version": "v1"}},
                                  "spec": {"containers": [{"name": "helloworld", "image": "docker.io/istio/examples-helloworld-v1"}]}}}
        })
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_content() {
        let a = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        let b: Value = serde_json::from_str(r#"{"spec":{"x":[1,2]},"metadata":{"labels":{"b":"2","a":"1"}}}"#).unwrap();
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_eq!(template_hash(&a).len(), 10);
        assert!(template_hash(&a).chars().all(|c| c.is_ascii_hexdigit()));
        let c = json!({"metadata": {"labels": {"a": "1", "b": "3"}}, "spec": {"x": [1, 2]}});
        assert_ne!(template_hash(&a), template_hash(&c));
    }

    #[test]
    fn the_replica_set_carries_the_hash_in_name_labels_and_selector() {
        let d = deploy(2);
        let rs = replica_set_for(&d, "0123456789", 2);
        assert_eq!(rs["metadata"]["name"], "helloworld-v1-0123456789");
        assert_eq!(rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH], "0123456789");
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH], "0123456789");
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["app"], "helloworld");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-1");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    }

    #[test]
    fn status_sums_the_replica_sets_and_says_when_available() {
        let d = deploy(2);
        let new_rs = json!({"metadata": {"name": "helloworld-v1-aaa"},
                            "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1}});
        let old_rs = json!({"metadata": {"name": "helloworld-v1-bbb"},
                            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}});
        let s = deployment_status(&d, &[&new_rs, &old_rs], "helloworld-v1-aaa", "2026-11-25T18:09:48Z");
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["updatedReplicas"], 2);
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(s["availableReplicas"], 2);
        assert_eq!(s["observedGeneration"], 2);
        assert!(s.get("unavailableReplicas").is_none());
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");

        let none_ready = json!({"metadata": {"name": "helloworld-v1-aaa"}, "status": {"replicas": 1}});
        let s = deployment_status(&deploy(1), &[&none_ready], "helloworld-v1-aaa", "2026-11-25T18:09:48Z");
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["unavailableReplicas"], 1);
        assert!(s.get("readyReplicas").is_none());
    }

    #[test]
    fn unchanged_conditions_keep_their_timestamps() {
        let mut d = deploy(1);
        let rs =
            json!({"metadata": {"name": "r"}, "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}});
        let first = deployment_status(&d, &[&rs], "r", "2026-11-25T18:00:00Z");
        d["status"] = first.clone();
        let again = deployment_status(&d, &[&rs], "r", "2026-11-25T18:05:00Z");
        assert_eq!(first, again, "a second pass changes nothing, so it writes nothing");
    }
}
