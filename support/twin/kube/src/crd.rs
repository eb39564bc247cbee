//! CustomResourceDefinitions: creating one makes the server serve its kind
//! (schemaless, like the generic store of the built-in Istio kinds), deleting
//! one stops that and removes its objects.

use serde_json::Value;

use crate::resources::{Resource, ResourceInfo, Subresource};

/// The resources a CRD object declares, one per served version.
pub fn resource_infos(crd: &Value) -> Vec<ResourceInfo> {
    let Some(spec) = crd.get("spec") else {
        return Vec::new();
    };
    let text = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let (group, plural, kind) = (text("/group"), text("/names/plural"), text("/names/kind"));
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = match text("/names/singular") {
        s if s.is_empty() => kind.to_ascii_lowercase(),
        s => s,
    };
    let namespaced = text("/scope") != "Cluster";
    let versions: Vec<&Value> =
        spec.get("versions").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| versions.first())
        .and_then(|v| v.get("name").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
        .filter_map(|v| {
            let version = v.get("name").and_then(Value::as_str)?;
            let mut info =
                ResourceInfo::new(Resource::new(&group, version, &plural, &kind, namespaced), &singular, &[]);
            info.short_names = strings("/names/shortNames");
            info.categories = strings("/names/categories");
            info.storage_version = storage.clone();
            info.builtin = false;
            if v.pointer("/subresources/status").is_some() {
                info.subresources.push(Subresource {
                    name: "status".into(),
                    kind: kind.clone(),
                    group: None,
                    version: None,
                    verbs: vec!["get".into(), "patch".into(), "update".into()],
                });
            }
            Some(info)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn served_versions_become_resources() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v1beta1", "served": true, "storage": false},
                         {"name": "v1alpha1", "served": false, "storage": false}]}});
        let infos = resource_infos(&crd);
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].resource, Resource::new("example.com", "v1", "widgets", "Widget", true));
        assert_eq!(infos[1].storage_version, "v1");
        assert_eq!(infos[0].singular, "widget");
        assert!(infos[0].has_subresource("status") && !infos[1].has_subresource("status"));
        assert!(resource_infos(&json!({"spec": {}})).is_empty());
    }
}
