//! The endpoints controller: every Service with a selector gets an Endpoints
//! object of the same name listing the selected pods, ready ones under
//! `addresses` and the others under `notReadyAddresses`, with the Service's
//! ports resolved to each pod's target port (named ports per pod, so pods
//! that resolve differently land in different subsets, as in Kubernetes).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::objects::{self, pod, service};
use super::runtime::{Cluster, Reconciler};
use crate::kube::{EventKind, Resource, StoreEvent};

/// The `subsets` of the Endpoints of `svc` given the namespace's pods;
/// `None` when the Service has no selector (its Endpoints are the user's).
pub fn subsets(svc: &Value, pods: &[Value]) -> Option<Vec<Value>> {
    let selector = service::selector(svc)?;
    let ports = service::ports(svc);
    // Pods that resolve the ports alike share a subset, keyed by the ports.
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for p in pods {
        if objects::namespace(p) != objects::namespace(svc)
            || objects::is_terminating(p)
            || !objects::selects(&selector, &objects::labels(p))
        {
            continue;
        }
        let Some(ip) = pod::ip(p) else { continue };
        if matches!(pod::phase(p), "Succeeded" | "Failed") {
            continue;
        }
        let resolved: Vec<Value> = ports
            .iter()
            .filter_map(|sp| {
                let number = sp.resolve_on(p)?;
                let mut port = json!({"port": number, "protocol": sp.protocol});
                if let Some(name) = &sp.name {
                    port["name"] = json!(name);
                }
                Some(port)
            })
            .collect();
        let mut address = json!({
            "ip": ip,
            "targetRef": {"kind": "Pod", "namespace": objects::namespace(p),
                          "name": objects::name(p), "uid": objects::uid(p)},
        });
        if let Some(node) = pod::node_name(p) {
            address["nodeName"] = json!(node);
        }
        let key = serde_json::to_string(&resolved).unwrap_or_default();
        let subset = groups.entry(key).or_insert_with(|| Subset { ports: resolved, ..Subset::default() });
        let addresses = if pod::is_ready(p) { &mut subset.ready } else { &mut subset.not_ready };
        addresses.insert(sortable_ip(ip), address);
    }
    Some(
        groups
            .into_values()
            .map(|Subset { ports, ready, not_ready }| {
                let mut subset = json!({});
                if !ready.is_empty() {
                    subset["addresses"] = Value::Array(ready.into_values().collect());
                }
                if !not_ready.is_empty() {
                    subset["notReadyAddresses"] = Value::Array(not_ready.into_values().collect());
                }
                if !ports.is_empty() {
                    subset["ports"] = Value::Array(ports);
                }
                subset
            })
            .collect(),
    )
}

/// One subset of Endpoints being built; addresses keyed by IP, for order.
#[derive(Default)]
struct Subset {
    ports: Vec<Value>,
    ready: BTreeMap<String, Value>,
    not_ready: BTreeMap<String, Value>,
}

fn sortable_ip(ip: &str) -> String {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(a) => format!("{:010}", u32::from(a)),
        Err(_) => ip.to_owned(),
    }
}

/// Keeps every Service's Endpoints in step with its pods.
pub struct EndpointsController;

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        let r = &event.resource;
        // Our own Endpoints writes matter only when someone else deletes one.
        r.plural == "services" || r.plural == "pods" || (r.plural == "endpoints" && event.kind == EventKind::Deleted)
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let services = cluster.list(&Resource::services());
        let pods = cluster.list(&Resource::pods());
        let mut by_ns: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for p in &pods {
            by_ns.entry(objects::namespace(p)).or_default().push(p.clone());
        }
        for svc in &services {
            let ns = objects::namespace(svc);
            let Some(subsets) = subsets(svc, by_ns.get(ns).map(Vec::as_slice).unwrap_or(&[])) else {
                continue;
            };
            let name = objects::name(svc);
            let mut desired = json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns},
            });
            // Kubernetes copies the Service's labels and marks its own Endpoints
            // so that the EndpointSlice mirror skips them.
            let mut labels = objects::labels(svc);
            labels.insert(SKIP_MIRROR.to_owned(), "true".to_owned());
            desired["metadata"]["labels"] = json!(labels);
            if !subsets.is_empty() {
                desired["subsets"] = Value::Array(subsets);
            }
            match cluster.get(&Resource::endpoints(), Some(ns), name) {
                None => {
                    cluster.create(&Resource::endpoints(), desired);
                }
                Some(mut current) => {
                    let same_subsets = current.get("subsets").unwrap_or(&Value::Null)
                        == desired.get("subsets").unwrap_or(&Value::Null);
                    let same_labels = current.pointer("/metadata/labels") == desired.pointer("/metadata/labels");
                    if same_subsets && same_labels {
                        continue;
                    }
                    match desired.get("subsets") {
                        Some(s) => current["subsets"] = s.clone(),
                        None => {
                            if let Some(o) = current.as_object_mut() {
                                o.remove("subsets");
                            }
                        }
                    }
                    current["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                    cluster.update(&Resource::endpoints(), current);
                }
            }
        }
        // Endpoints of deleted Services go with them (they carry no owner
        // reference in Kubernetes either: the controller removes them). Only
        // those this controller wrote: users' own Endpoints stay.
        for ep in cluster.list(&Resource::endpoints()) {
            let (ns, name) = (objects::namespace(&ep), objects::name(&ep));
            let has_service = services.iter().any(|s| objects::namespace(s) == ns && objects::name(s) == name);
            let ours = objects::labels(&ep).get(SKIP_MIRROR).map(String::as_str) == Some("true");
            if !has_service && ours {
                cluster.delete(&Resource::endpoints(), Some(ns), name);
            }
        }
    }
}

/// The label the endpoints controller puts on the Endpoints it manages.
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_obj(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "sample", "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"nodeName": "ip-10-1-0-9.us-west-2.compute.internal",
                     "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 5000}]}]},
            "status": {"phase": if ready {"Running"} else {"Pending"}, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        })
    }

    #[test]
    fn ready_and_not_ready_pods_are_listed_with_resolved_named_ports() {
        let svc = json!({"metadata": {"name": "helloworld", "namespace": "sample"},
            "spec": {"selector": {"app": "helloworld"},
                     "ports": [{"name": "http", "port": 5000, "targetPort": "http"}]}});
        let pods = vec![
            pod_obj("hw-2", "10.1.20.3", true, json!({"app": "helloworld"})),
            pod_obj("hw-1", "10.1.4.7", true, json!({"app": "helloworld"})),
            pod_obj("hw-3", "10.1.40.1", false, json!({"app": "helloworld"})),
            pod_obj("sleep", "10.1.4.8", true, json!({"app": "sleep"})),
        ];
        let subsets = subsets(&svc, &pods).unwrap();
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips: Vec<&str> = s["addresses"].as_array().unwrap().iter().map(|a| a["ip"].as_str().unwrap()).collect();
        assert_eq!(ips, ["10.1.4.7", "10.1.20.3"], "ready pods, sorted by IP");
        assert_eq!(
            s["addresses"][0]["targetRef"],
            json!({"kind": "Pod", "namespace": "sample", "name": "hw-1", "uid": "uid-hw-1"})
        );
        assert_eq!(s["notReadyAddresses"][0]["ip"], "10.1.40.1");
        assert_eq!(s["ports"], json!([{"name": "http", "port": 5000, "protocol": "TCP"}]));
    }

    #[test]
    fn services_without_selector_are_left_alone_and_pods_without_ip_are_skipped() {
        let svc = json!({"metadata": {"name": "ext", "namespace": "sample"}, "spec": {"ports": [{"port": 80}]}});
        assert_eq!(subsets(&svc, &[]), None);
        let empty = json!({"metadata": {"name": "e", "namespace": "sample"}, "spec": {"selector": {}}});
        assert_eq!(subsets(&empty, &[]), None, "an empty selector is no selector");
        let svc = json!({"metadata": {"name": "s", "namespace": "sample"},
                         "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let mut p = pod_obj("x", "10.1.0.9", true, json!({"app": "x"}));
        p["status"]["podIP"] = Value::Null;
        assert_eq!(subsets(&svc, &[p]), Some(vec![]));
    }
}
