//! core/v1 Events, written the way the real components' recorders write them
//! (what `kubectl get events`, `kubectl events` and `describe` show).
//!
//! Sources (kubernetes/client-go v0.32.0):
//! - tools/record/event.go `makeEvent` and `generateEvent` (the recorder of
//!   the kubelet and the controllers): name `<object>.<UnixNano in hex>`, the
//!   object's namespace (`default` for cluster-scoped ones), count 1,
//!   firstTimestamp = lastTimestamp, `source`, and reportingComponent /
//!   reportingInstance copied from the source's component and host.
//! - tools/record/events_cache.go `getEventKey`: an event equal in source,
//!   object, type, reason and message to an earlier one raises that one's
//!   count and lastTimestamp instead of making a new one.
//! - tools/events/event_recorder.go `makeEvent`, event_broadcaster.go
//!   `NewRecorder` (the events.k8s.io recorder of kube-scheduler): eventTime
//!   (micro-seconds), reportingController, reportingInstance
//!   `<controller>-<hostname>`, action; no source, no first/lastTimestamp
//!   (as core/v1 shows it).

use chrono::Utc;
use serde_json::{json, Value};

use super::objects;
use super::runtime::Cluster;
use crate::kube::selector::{FieldSelector, LabelSelector};
use crate::kube::Resource;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Who records: a component (and its host, for kubelets).
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    pub const fn component(component: &'a str) -> Self {
        Source { component, host: None }
    }
}

/// The `involvedObject` reference to `obj` of `r`'s kind (`field_path` e.g. `spec.containers{app}`).
pub fn reference(r: &Resource, obj: &Value, field_path: Option<&str>) -> Value {
    let mut r = json!({
        "kind": r.kind,
        "namespace": objects::namespace(obj),
        "name": objects::name(obj),
        "uid": objects::uid(obj),
        "apiVersion": r.api_version(),
        "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
    });
    if let Some(f) = field_path {
        r["fieldPath"] = json!(f);
    }
    if objects::namespace(obj).is_empty() {
        if let Some(m) = r.as_object_mut() {
            m.remove("namespace");
        }
    }
    r
}

fn namespace_of(involved: &Value) -> String {
    match involved.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => ns.to_owned(),
        _ => "default".to_owned(),
    }
}

/// Whether `e` is the same event (events_cache.go getEventKey, less the
/// resourceVersion, which the key does not hold either).
fn same_event(e: &Value, involved: &Value, type_: &str, reason: &str, message: &str, source: &Source) -> bool {
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    let keys = ["kind", "namespace", "name", "fieldPath", "uid", "apiVersion"];
    keys.iter().all(|k| s(e, &format!("/involvedObject/{k}")) == s(involved, &format!("/{k}")))
        && s(e, "/source/component") == source.component
        && s(e, "/source/host") == source.host.unwrap_or_default()
        && s(e, "/type") == type_
        && s(e, "/reason") == reason
        && s(e, "/message") == message
}

/// Records an event about `involved` (a reference from [`reference`]) as
/// client-go's tools/record recorder does.
pub fn record(cluster: &Cluster, involved: Value, type_: &str, reason: &str, message: &str, source: Source) {
    let ns = namespace_of(&involved);
    let now = Utc::now();
    let stamp = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let uid = involved.get("uid").and_then(Value::as_str).unwrap_or_default();
    let earlier = FieldSelector::parse(&format!("involvedObject.uid={uid},reason={reason}"), "events")
        .ok()
        .and_then(|f| cluster.store.list_matching(&Resource::events(), Some(&ns), &LabelSelector::default(), &f).ok())
        .and_then(|(items, _)| items.into_iter().find(|e| same_event(e, &involved, type_, reason, message, &source)));
    if let Some(e) = earlier {
        let count = e.get("count").and_then(Value::as_i64).unwrap_or(1) + 1;
        cluster.merge_patch(
            &Resource::events(),
            Some(&ns),
            objects::name(&e),
            json!({"count": count, "lastTimestamp": stamp}),
        );
        return;
    }
    let name = format!(
        "{}.{:x}",
        involved.get("name").and_then(Value::as_str).unwrap_or_default(),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    let mut src = json!({"component": source.component});
    if let Some(h) = source.host {
        src["host"] = json!(h);
    }
    let mut event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": involved,
        "reason": reason, "message": message, "type": type_,
        "source": src,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        "eventTime": null,
        "reportingComponent": source.component,
        "reportingInstance": source.host.unwrap_or_default(),
    });
    if source.host.is_none() {
        // An empty string is left out on the wire (omitempty).
        if let Some(m) = event.as_object_mut() {
            m.remove("reportingInstance");
        }
    }
    cluster.create(&Resource::events(), event);
}

/// Records an event as the events.k8s.io recorder does (kube-scheduler), in
/// its core/v1 form.
pub fn record_v1(
    cluster: &Cluster,
    regarding: Value,
    type_: &str,
    reason: &str,
    action: &str,
    note: &str,
    controller: &str,
) {
    let ns = namespace_of(&regarding);
    let now = Utc::now();
    let name = format!(
        "{}.{:x}",
        regarding.get("name").and_then(Value::as_str).unwrap_or_default(),
        now.timestamp_nanos_opt().unwrap_or_default()
    );
    // The scheduler's host name is not known: the twin's control plane is "control-plane".
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": regarding,
        "reason": reason, "message": note, "type": type_,
        "source": {},
        "firstTimestamp": null, "lastTimestamp": null,
        "eventTime": now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "action": action,
        "reportingComponent": controller,
        "reportingInstance": format!("{controller}-control-plane"),
    });
    cluster.create(&Resource::events(), event);
}
