//! The `scale` subresource: an `autoscaling/v1` Scale view of a workload's
//! replica count, as `kubectl scale` reads and patches it.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::selector::LabelSelector;

/// The Scale of a Deployment or ReplicaSet.
pub fn to_scale(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| LabelSelector::from_object(s).ok())
        .map(|s| s.to_query())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": pick("name"), "namespace": pick("namespace"), "uid": pick("uid"),
                     "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp")},
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0), "selector": selector},
    })
}

/// The workload with the replica count a (patched or PUT) Scale asks for.
pub fn apply_scale(workload: &Value, scale: &Value) -> Result<Value, ApiError> {
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            crate::object::name(workload),
            vec![crate::error::FieldCause::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut next = workload.clone();
    match next.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("replicas".into(), json!(replicas));
        }
        None => return Err(ApiError::internal("the workload has no spec")),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_and_update() {
        let d = json!({"metadata": {"name": "sleep", "namespace": "sample", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "sleep"}}}, "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=sleep");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let next = apply_scale(&d, &json!({"spec": {"replicas": 0}})).expect("scaled");
        assert_eq!(next["spec"]["replicas"], 0);
        assert_eq!(apply_scale(&d, &json!({"spec": {"replicas": -1}})).expect_err("negative").code, 422);
    }
}
