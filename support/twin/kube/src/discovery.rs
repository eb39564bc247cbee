//! Discovery documents: `/version`, legacy `/api` + `/apis` + per group
//! version resource lists, the aggregated form (only when asked for), and the
//! OpenAPI v3 documents `kubectl apply` needs to learn that PATCH accepts
//! `fieldValidation` (no schemas: kubectl then falls back to its built-in
//! patch metadata, as against a real server without them).

use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use crate::resources::{Catalog, ResourceInfo};

/// The Content-Type of aggregated discovery, and what kubectl's Accept must ask for.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList")
            && params.contains(&"v=v2")
            && params.contains(&"g=apidiscovery.k8s.io")
    })
}

pub fn version(minor: &str, git_version: &str, platform: &str) -> Value {
    json!({
        "major": "1",
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-11-15T00:00:00Z",
        "goVersion": "go1.22.8",
        "compiler": "gc",
        "platform": platform,
    })
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

/// `GET /apis`: every named group, preferred version first.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> =
        catalog.groups().iter().filter(|(g, _)| !g.is_empty()).map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`.
pub fn api_group(catalog: &Catalog, group: &str) -> Option<Value> {
    let (_, versions) = catalog.groups().into_iter().find(|(g, _)| g == group && !g.is_empty())?;
    let mut doc = group_doc(group, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `GET /api/v1`, `GET /apis/<group>/<version>`: resources and their subresources.
pub fn api_resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    if !catalog.serves(group, version) {
        return None;
    }
    let mut resources = Vec::new();
    for info in catalog.resources_in(group, version) {
        let r = &info.resource;
        let mut entry = json!({"name": r.plural, "singularName": info.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": info.verbs});
        if !info.short_names.is_empty() {
            entry["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            entry["categories"] = json!(info.categories);
        }
        resources.push(entry);
        for sub in &info.subresources {
            let mut entry = json!({"name": format!("{}/{}", r.plural, sub.name), "singularName": "", "namespaced": r.namespaced, "kind": sub.kind, "verbs": sub.verbs});
            if let Some(g) = &sub.group {
                entry["group"] = json!(g);
            }
            if let Some(v) = &sub.version {
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

fn aggregated_resource(info: &ResourceInfo) -> Value {
    let r = &info.resource;
    let subresources: Vec<Value> = info
        .subresources
        .iter()
        .map(|s| {
            json!({"subresource": s.name, "verbs": s.verbs,
                   "responseKind": {"group": s.group.clone().unwrap_or_default(), "version": s.version.clone().unwrap_or_default(), "kind": s.kind}})
        })
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": "", "version": "", "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": info.verbs,
    });
    if !info.short_names.is_empty() {
        entry["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        entry["categories"] = json!(info.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// Aggregated discovery for `/api` (`legacy`: the core group only) or `/apis`.
pub fn aggregated(catalog: &Catalog, legacy: bool) -> Value {
    let items: Vec<Value> = catalog
        .groups()
        .iter()
        .filter(|(g, _)| g.is_empty() == legacy)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        catalog.resources_in(g, v).into_iter().map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `api/v1` or `apis/<group>/<version>`: the OpenAPI v3 key of a group version.
fn openapi_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: one entry per group version; the hash changes with the document.
pub fn openapi_v3_root(catalog: &Catalog) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in catalog.groups() {
        for version in versions {
            if let Some(doc) = openapi_v3_group_version(catalog, &group, &version) {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                doc.to_string().hash(&mut h);
                let key = openapi_key(&group, &version);
                paths.insert(
                    key.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={:016X}", h.finish())}),
                );
            }
        }
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group version, by its key (`api/v1`, `apis/apps/v1`).
pub fn openapi_v3_by_key(catalog: &Catalog, key: &str) -> Option<Value> {
    let parts: Vec<&str> = key.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version] => openapi_v3_group_version(catalog, "", version),
        ["apis", group, version] => openapi_v3_group_version(catalog, group, version),
        _ => None,
    }
}

fn openapi_v3_group_version(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let infos = catalog.resources_in(group, version);
    if infos.is_empty() {
        return None;
    }
    let field_validation = json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true},
        "description": "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."});
    let mut paths = serde_json::Map::new();
    for info in infos {
        let r = &info.resource;
        let item = if r.namespaced {
            format!("{}/{{name}}", r.collection_path(Some("{namespace}")))
        } else {
            format!("{}/{{name}}", r.collection_path(None))
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |action: &str| {
            json!({"operationId": format!("{action}{}", r.kind), "x-kubernetes-action": action,
                   "x-kubernetes-group-version-kind": gvk, "parameters": [field_validation],
                   "responses": {"200": {"description": "OK"}}})
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        paths.insert(
            r.collection_path(if r.namespaced { Some("{namespace}") } else { None }),
            json!({"post": op("post")}),
        );
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"}, "paths": paths, "components": {"schemas": {}}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_core_list_has_pods_and_subresources() {
        let c = Catalog::builtin();
        let doc = api_resource_list(&c, "", "v1").expect("served");
        let resources = doc["resources"].as_array().expect("list");
        let pods = resources.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(
            pods["verbs"],
            json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"])
        );
        let exec = resources.iter().find(|r| r["name"] == "pods/exec").expect("pods/exec");
        assert_eq!(exec["kind"], "PodExecOptions");
        let ns = resources.iter().find(|r| r["name"] == "namespaces").expect("ns");
        assert_eq!(ns["namespaced"], false);
        let scale = api_resource_list(&c, "apps", "v1").expect("apps");
        let scale = scale["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "deployments/scale").cloned())
            .expect("scale");
        assert_eq!(
            (scale["group"].as_str(), scale["version"].as_str(), scale["kind"].as_str()),
            (Some("autoscaling"), Some("v1"), Some("Scale"))
        );
        assert!(api_resource_list(&c, "apps", "v2").is_none());
    }

    #[test]
    fn group_list_and_aggregated() {
        let c = Catalog::builtin();
        let groups = api_group_list(&c);
        let apps =
            groups["groups"].as_array().and_then(|g| g.iter().find(|g| g["name"] == "apps").cloned()).expect("apps");
        assert_eq!(apps["preferredVersion"], json!({"groupVersion": "apps/v1", "version": "v1"}));
        let agg = aggregated(&c, true);
        assert_eq!(agg["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(agg["items"][0]["metadata"]["name"], "");
        let pods = agg["items"][0]["versions"][0]["resources"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["resource"] == "pods").cloned())
            .expect("pods");
        assert_eq!(pods["responseKind"]["kind"], "Pod");
        assert_eq!(pods["scope"], "Namespaced");
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn openapi_v3_announces_field_validation_on_patch() {
        let c = Catalog::builtin();
        let root = openapi_v3_root(&c);
        let url = root["paths"]["apis/networking.istio.io/v1"]["serverRelativeURL"].as_str().expect("url");
        assert!(url.starts_with("/openapi/v3/apis/networking.istio.io/v1?hash="));
        let doc = openapi_v3_by_key(&c, "api/v1").expect("doc");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "version": "v1", "kind": "Secret"}));
        assert_eq!(patch["parameters"][0]["name"], "fieldValidation");
        assert!(doc["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
        assert!(openapi_v3_by_key(&c, "apis/nope/v1").is_none());
    }
}
