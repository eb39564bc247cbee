//! The four PATCH flavours of the Kubernetes API: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902), strategic merge patch (built-in kinds only: lists
//! merged by key so that a client-side `kubectl apply` does not wipe sibling
//! entries) and server-side apply (a deep merge; field ownership is not tracked).

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The patch flavour, from the request's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    StrategicMerge,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

fn patch_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {err}"))
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// RFC 6902 operations applied in order; any failing operation rejects the whole patch.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(patch_failed)?;
    Ok(doc)
}

/// Server-side apply without managed fields: the applied configuration is merged
/// into the live object with the strategic rules (lists of named things by key).
pub fn apply_patch(original: &Value, applied: &Value, kind: &str) -> Result<Value, ApiError> {
    strategic_merge(original, applied, kind)
}

/// Strategic merge patch as kubectl's client-side apply sends it.
pub fn strategic_merge(original: &Value, patch: &Value, kind: &str) -> Result<Value, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request("a strategic merge patch must be a JSON object"));
    };
    let empty = Map::new();
    let orig = original.as_object().unwrap_or(&empty);
    let mut path = Vec::new();
    match merge_map(orig, patch, &mut path, kind)? {
        Some(map) => Ok(Value::Object(map)),
        None => Err(patch_failed("the patch deletes the whole object")),
    }
}

/// How a list field merges, by its path (list indices left out) and the object's kind.
#[derive(Debug, PartialEq)]
enum ListStrategy {
    /// Elements are objects identified by this key.
    ByKey(&'static str),
    /// Scalars, merged as a set.
    PrimitiveSet,
    Replace,
}

fn list_strategy(path: &[String], kind: &str) -> ListStrategy {
    let Some(field) = path.last() else {
        return ListStrategy::Replace;
    };
    let in_container =
        path.iter().any(|p| matches!(p.as_str(), "containers" | "initContainers" | "ephemeralContainers"));
    match field.as_str() {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => ListStrategy::ByKey("name"),
        "ports" if in_container => ListStrategy::ByKey("containerPort"),
        "ports" if kind == "Service" && path.len() == 2 && path[0] == "spec" => ListStrategy::ByKey("port"),
        "volumeMounts" => ListStrategy::ByKey("mountPath"),
        "volumeDevices" => ListStrategy::ByKey("devicePath"),
        "conditions" => ListStrategy::ByKey("type"),
        "ownerReferences" => ListStrategy::ByKey("uid"),
        "hostAliases" => ListStrategy::ByKey("ip"),
        "topologySpreadConstraints" => ListStrategy::ByKey("topologyKey"),
        "finalizers" if path.len() == 2 && path[0] == "metadata" => ListStrategy::PrimitiveSet,
        _ => ListStrategy::Replace,
    }
}

const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn is_directive(key: &str) -> bool {
    key == "$patch"
        || key == "$retainKeys"
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// Merges a patch map into an original map; `None` when the patch says `$patch: delete`.
fn merge_map(
    orig: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(strip_map(patch))),
        Some("merge") | None => {}
        Some(other) => return Err(patch_failed(format!("unknown patch directive {other:?}"))),
    }
    let mut out = orig.clone();
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|v| !remove.contains(v));
            }
        }
    }
    for (key, value) in patch {
        if is_directive(key) {
            continue;
        }
        if value.is_null() {
            out.remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = merge_value(out.get(key), value, path, kind)?;
        path.pop();
        match merged {
            Some(v) => {
                out.insert(key.clone(), v);
            }
            None => {
                out.remove(key);
            }
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        out.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(out))
}

fn merge_value(
    orig: Option<&Value>,
    patch: &Value,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Option<Value>, ApiError> {
    match patch {
        Value::Object(pm) => {
            let empty = Map::new();
            let om = orig.and_then(Value::as_object).unwrap_or(&empty);
            Ok(merge_map(om, pm, path, kind)?.map(Value::Object))
        }
        Value::Array(items) => {
            let replace_marker = |v: &Value| {
                v.get("$patch").and_then(Value::as_str) == Some("replace")
                    && v.as_object().is_some_and(|m| m.len() == 1)
            };
            if items.iter().any(replace_marker) {
                let kept = items.iter().filter(|v| !replace_marker(v)).map(strip).collect();
                return Ok(Some(Value::Array(kept)));
            }
            let orig_items = orig.and_then(Value::as_array);
            match (list_strategy(path, kind), orig_items) {
                (ListStrategy::ByKey(key), Some(orig_items)) => {
                    Ok(Some(Value::Array(merge_keyed(orig_items, items, key, path, kind)?)))
                }
                (ListStrategy::PrimitiveSet, Some(orig_items)) => {
                    let mut out = orig_items.clone();
                    for v in items {
                        if !out.contains(v) {
                            out.push(v.clone());
                        }
                    }
                    Ok(Some(Value::Array(out)))
                }
                // No original list, or an atomic list: the patch's list wins, minus deletions.
                (strategy, _) => {
                    let kept = items
                        .iter()
                        .filter(|v| {
                            !(matches!(strategy, ListStrategy::ByKey(_))
                                && v.get("$patch").and_then(Value::as_str) == Some("delete"))
                        })
                        .map(strip)
                        .collect();
                    Ok(Some(Value::Array(kept)))
                }
            }
        }
        other => Ok(Some(other.clone())),
    }
}

fn merge_keyed(
    orig: &[Value],
    patch: &[Value],
    key: &str,
    path: &mut Vec<String>,
    kind: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut out: Vec<Value> = orig.to_vec();
    for element in patch {
        let Some(pm) = element.as_object() else {
            // A scalar in a keyed list is malformed; keep it rather than guess.
            out.push(element.clone());
            continue;
        };
        let id = pm.get(key);
        let position = id.and_then(|id| out.iter().position(|o| o.get(key) == Some(id)));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(id) = id {
                out.retain(|o| o.get(key) != Some(id));
            }
            continue;
        }
        match position {
            Some(i) => {
                let empty = Map::new();
                let om = out[i].as_object().unwrap_or(&empty).clone();
                match merge_map(&om, pm, path, kind)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            None => out.push(strip(element)),
        }
    }
    Ok(out)
}

/// A patch value as it is stored: directives removed at every level.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_map(m)),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

fn strip_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter().filter(|(k, _)| !is_directive(k)).map(|(k, v)| (k.clone(), strip(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata": {"name": "sleep", "labels": {"app": "sleep"}, "finalizers": ["a"]},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "sleep", "image": "curl:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]},
                   {"name": "istio-proxy", "image": "proxy:1"}]}}}})
    }

    #[test]
    fn merge_patch_null_deletes_and_objects_merge() {
        let out =
            merge_patch(&json!({"a": {"b": 1, "c": 2}, "l": [1, 2]}), &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(out, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_applies_and_rejects() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}});
        let out = json_patch(&doc, &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/metadata/labels/a"}])).expect("applies");
        assert_eq!(out, json!({"metadata": {"labels": {"b": "2"}}}));
        let e = json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])).expect_err("missing path");
        assert_eq!(e.code, 422);
        assert_eq!(json_patch(&doc, &json!({"op": "x"})).expect_err("not a list").code, 400);
    }

    #[test]
    fn strategic_merge_keeps_sibling_containers_env_and_ports() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sleep"}, {"name": "istio-proxy"}],
            "containers": [{"name": "sleep", "image": "curl:2",
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                "env": [{"name": "A", "value": "9"}],
                "ports": [{"containerPort": 443, "name": "https"}]}]}}}});
        let out = strategic_merge(&deployment(), &patch, "Deployment").expect("merges");
        let containers = out.pointer("/spec/template/spec/containers").and_then(Value::as_array).expect("list");
        assert_eq!(containers.len(), 2, "sibling container kept");
        assert_eq!(containers[1]["image"], "proxy:1");
        assert_eq!(containers[0]["image"], "curl:2");
        assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]));
        assert_eq!(
            containers[0]["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}])
        );
        assert!(out.to_string().find('$').is_none(), "directives stripped: {out}");
    }

    #[test]
    fn a_plain_merge_would_have_wiped_the_siblings() {
        // The same patch as a merge patch replaces the container list: the reason strategic merge exists.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sleep", "image": "curl:2"}]}}}});
        let out = merge_patch(&deployment(), &patch);
        assert_eq!(out.pointer("/spec/template/spec/containers").and_then(Value::as_array).map(Vec::len), Some(1));
        let out = strategic_merge(&deployment(), &patch, "Deployment").expect("merges");
        assert_eq!(out.pointer("/spec/template/spec/containers").and_then(Value::as_array).map(Vec::len), Some(2));
    }

    #[test]
    fn strategic_merge_directives() {
        let patch = json!({"metadata": {"labels": {"app": null}, "$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]},
            "spec": {"template": {"spec": {"containers": [{"name": "istio-proxy", "$patch": "delete"},
                {"name": "sleep", "env": [{"name": "B", "$patch": "delete"}], "ports": [{"$patch": "replace"}, {"containerPort": 8080}]}]}}}});
        let out = strategic_merge(&deployment(), &patch, "Deployment").expect("merges");
        assert_eq!(out["metadata"], json!({"name": "sleep", "labels": {}, "finalizers": ["b"]}));
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().map(Vec::len), Some(1));
        assert_eq!(c[0]["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(c[0]["ports"], json!([{"containerPort": 8080}]));
    }

    #[test]
    fn strategic_merge_service_ports_by_port_and_retain_keys() {
        let svc = json!({"spec": {"ports": [{"port": 5000, "name": "http"}, {"port": 15443, "name": "tls"}],
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"ports": [{"port": 15443, "targetPort": 15443}],
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = strategic_merge(&svc, &patch, "Service").expect("merges");
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 5000, "name": "http"}, {"port": 15443, "name": "tls", "targetPort": 15443}])
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        // The same list in a non-Service object is atomic.
        let out = strategic_merge(&svc, &patch, "ConfigMap").expect("merges");
        assert_eq!(out["spec"]["ports"], json!([{"port": 15443, "targetPort": 15443}]));
    }

    #[test]
    fn patch_map_replace_and_content_types() {
        let out = strategic_merge(
            &json!({"data": {"a": "1", "b": "2"}}),
            &json!({"data": {"$patch": "replace", "c": "3"}}),
            "ConfigMap",
        )
        .expect("ok");
        assert_eq!(out, json!({"data": {"c": "3"}}));
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert!(strategic_merge(&json!({}), &json!([1]), "Pod").is_err());
    }
}
