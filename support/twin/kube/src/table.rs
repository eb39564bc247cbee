//! `meta.k8s.io/v1` Tables, what `kubectl get` prints without `-o`: the
//! columns of the real server's printers for the kinds the twin serves, and
//! NAME + AGE for the rest.

use serde_json::{json, Value};

use crate::resources::Resource;

/// Whether an Accept header asks for a Table (`...;as=Table;v=v1;g=meta.k8s.io`).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.split(';').map(str::trim).any(|p| p == "as=Table"))
}

/// How much of each object a row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(q: Option<&str>) -> Self {
        match q {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table of `items` (already presented at the requested version).
pub fn table(r: &Resource, items: &[Value], resource_version: u64, include: IncludeObject) -> Value {
    let columns: Vec<Value> = columns(&r.kind)
        .iter()
        .map(|(name, priority, format)| json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority}))
        .collect();
    let rows: Vec<Value> = items.iter().map(|o| row(r, o, include)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version.to_string()},
           "columnDefinitions": columns, "rows": rows})
}

fn row(r: &Resource, obj: &Value, include: IncludeObject) -> Value {
    let cells = cells(&r.kind, obj);
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => {
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
        }
    };
    json!({"cells": cells, "object": object})
}

/// (name, priority, format): priority 1 columns show with `-o wide`.
fn columns(kind: &str) -> Vec<(&'static str, u8, &'static str)> {
    let name = ("Name", 0, "name");
    let age = ("Age", 0, "");
    match kind {
        "Pod" => vec![
            name,
            ("Ready", 0, ""),
            ("Status", 0, ""),
            ("Restarts", 0, ""),
            age,
            ("IP", 1, ""),
            ("Node", 1, ""),
            ("Nominated Node", 1, ""),
            ("Readiness Gates", 1, ""),
        ],
        "Service" => vec![
            name,
            ("Type", 0, ""),
            ("Cluster-IP", 0, ""),
            ("External-IP", 0, ""),
            ("Port(s)", 0, ""),
            age,
            ("Selector", 1, ""),
        ],
        "Deployment" => vec![
            name,
            ("Ready", 0, ""),
            ("Up-to-date", 0, ""),
            ("Available", 0, ""),
            age,
            ("Containers", 1, ""),
            ("Images", 1, ""),
            ("Selector", 1, ""),
        ],
        "ReplicaSet" => vec![name, ("Desired", 0, ""), ("Current", 0, ""), ("Ready", 0, ""), age],
        "Namespace" => vec![name, ("Status", 0, ""), age],
        "Secret" => vec![name, ("Type", 0, ""), ("Data", 0, ""), age],
        "ConfigMap" => vec![name, ("Data", 0, ""), age],
        "ServiceAccount" => vec![name, ("Secrets", 0, ""), age],
        "Endpoints" => vec![name, ("Endpoints", 0, ""), age],
        "Node" => vec![name, ("Status", 0, ""), ("Roles", 0, ""), age, ("Version", 0, "")],
        "Event" => {
            vec![("Last Seen", 0, ""), ("Type", 0, ""), ("Reason", 0, ""), ("Object", 0, ""), ("Message", 0, "")]
        }
        "VirtualService" => vec![name, ("Gateways", 0, ""), ("Hosts", 0, ""), age],
        "DestinationRule" => vec![name, ("Host", 0, ""), age],
        _ => vec![name, age],
    }
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn n(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn len(obj: &Value, pointer: &str) -> usize {
    match obj.pointer(pointer) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let age = json!(self::age(s(o, "/metadata/creationTimestamp")));
    match kind {
        "Pod" => {
            let statuses =
                o.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let ready = statuses.iter().filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true)).count();
            let restarts: i64 = statuses.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum();
            let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating".to_string()
            } else {
                s(o, "/status/phase").to_string()
            };
            vec![
                name,
                json!(format!("{ready}/{}", len(o, "/spec/containers"))),
                json!(status),
                json!(restarts),
                age,
                json!(or_none(s(o, "/status/podIP").into())),
                json!(or_none(s(o, "/spec/nodeName").into())),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "Service" => {
            let ty = s(o, "/spec/type");
            let external = match ty {
                "LoadBalancer" => {
                    let ingress = o
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let addrs: Vec<String> = ingress
                        .iter()
                        .filter_map(|i| {
                            i.get("hostname").or_else(|| i.get("ip")).and_then(Value::as_str).map(String::from)
                        })
                        .collect();
                    if addrs.is_empty() {
                        "<pending>".to_string()
                    } else {
                        addrs.join(",")
                    }
                }
                "ExternalName" => s(o, "/spec/externalName").to_string(),
                _ => "<none>".to_string(),
            };
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selector = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(ty),
                json!(or_none(s(o, "/spec/clusterIP").into())),
                json!(external),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector)),
            ]
        }
        "Deployment" => {
            let containers =
                o.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
            let names: Vec<&str> = containers.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect();
            let images: Vec<&str> = containers.iter().filter_map(|c| c.get("image").and_then(Value::as_str)).collect();
            let selector = o
                .pointer("/spec/selector")
                .and_then(|sel| crate::selector::LabelSelector::from_object(sel).ok())
                .map(|sel| sel.to_query())
                .unwrap_or_default();
            vec![
                name,
                json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
                json!(n(o, "/status/updatedReplicas")),
                json!(n(o, "/status/availableReplicas")),
                age,
                json!(names.join(",")),
                json!(images.join(",")),
                json!(selector),
            ]
        }
        "ReplicaSet" => vec![
            name,
            json!(n(o, "/spec/replicas")),
            json!(n(o, "/status/replicas")),
            json!(n(o, "/status/readyReplicas")),
            age,
        ],
        "Namespace" => vec![name, json!(s(o, "/status/phase")), age],
        "Secret" => vec![name, json!(s(o, "/type")), json!(len(o, "/data")), age],
        "ConfigMap" => vec![name, json!(len(o, "/data") + len(o, "/binaryData")), age],
        "ServiceAccount" => vec![name, json!(len(o, "/secrets")), age],
        "Endpoints" => {
            let mut eps = Vec::new();
            for subset in o.pointer("/subsets").and_then(Value::as_array).cloned().unwrap_or_default() {
                let ports: Vec<i64> = subset
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|p| p.iter().filter_map(|p| p.get("port").and_then(Value::as_i64)).collect())
                    .unwrap_or_default();
                for addr in subset.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let ip = addr.get("ip").and_then(Value::as_str).unwrap_or_default().to_string();
                    if ports.is_empty() {
                        eps.push(ip.clone());
                    }
                    eps.extend(ports.iter().map(|p| format!("{ip}:{p}")));
                }
            }
            vec![name, json!(or_none(eps.join(","))), age]
        }
        "Node" => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")).cloned());
            let status = match ready.as_ref().and_then(|c| c.get("status")).and_then(Value::as_str) {
                Some("True") => "Ready",
                _ => "NotReady",
            };
            vec![name, json!(status), json!("<none>"), age, json!(s(o, "/status/nodeInfo/kubeletVersion"))]
        }
        "Event" => {
            let last = o
                .pointer("/lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
                .unwrap_or_default();
            let object =
                format!("{}/{}", s(o, "/involvedObject/kind").to_ascii_lowercase(), s(o, "/involvedObject/name"));
            vec![
                json!(self::age(last)),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(object),
                json!(s(o, "/message")),
            ]
        }
        "VirtualService" => vec![
            name,
            json!(format!("{:?}", strings_at(o, "/spec/gateways"))),
            json!(format!("{:?}", strings_at(o, "/spec/hosts"))),
            age,
        ],
        "DestinationRule" => vec![name, json!(s(o, "/spec/host")), age],
        _ => vec![name, age],
    }
}

/// Age as kubectl shows it (apimachinery's HumanDuration), from an RFC 3339 timestamp.
pub fn age(timestamp: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(timestamp) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        if secs % 60 == 0 {
            format!("{mins}m")
        } else {
            format!("{mins}m{}s", secs % 60)
        }
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        if mins % 60 == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{}m", mins % 60)
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        if hours % 24 == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{}h", hours % 24)
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        format!("{}y{}d", days / 365, days % 365)
    } else {
        format!("{}y", days / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_detection() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn service_and_pod_rows() {
        let svc = json!({"metadata": {"name": "gw", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.100.0.9", "selector": {"app": "x"},
                     "ports": [{"port": 15443, "nodePort": 31000, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "k8s-x.elb.us-west-2.amazonaws.com"}]}}});
        let t = table(&Resource::services(), &[svc], 9, IncludeObject::Metadata);
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[3], "k8s-x.elb.us-west-2.amazonaws.com");
        assert_eq!(cells[4], "15443:31000/TCP");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{}, {}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 1}, {"ready": false, "restartCount": 2}]}});
        let t = table(&Resource::pods(), &[pod], 1, IncludeObject::None);
        assert_eq!(t["rows"][0]["cells"][1], "1/2");
        assert_eq!(t["rows"][0]["cells"][3], 3);
    }
}
