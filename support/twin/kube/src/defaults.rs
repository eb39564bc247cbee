//! Server-side defaulting, the part of it clients see: Secret `stringData`
//! folded into `data`, Service cluster IPs and node ports, pod and workload
//! defaults, Namespace phase. Applied on every create and update.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// Hands out Service cluster IPs (EKS's default 10.100.0.0/16, or a given
/// range such as K3s' `--service-cidr`) and node ports.
#[derive(Debug)]
pub struct Allocator {
    /// The service range's network address and size.
    base: u32,
    size: u32,
    next_ip: u32,
    next_node_port: u16,
}

impl Default for Allocator {
    fn default() -> Self {
        // 10.100.0.1 is the `kubernetes` Service's address.
        Self::for_range(std::net::Ipv4Addr::new(10, 100, 0, 0), 16)
    }
}

impl Allocator {
    /// Cluster IPs from `network/prefix` (prefix 8..=30): the first address
    /// after the network one goes to the first Service made, the `kubernetes`
    /// one (k8s.io/kubernetes pkg/controlplane ServiceIPRange: the API server's
    /// service IP is the range's first usable address).
    pub fn for_range(network: std::net::Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.clamp(8, 30);
        let size = 1u32 << (32 - prefix);
        let base = u32::from(network) & !(size - 1);
        Allocator { base, size, next_ip: 1, next_node_port: 30000 }
    }

    fn cluster_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip = if n >= self.size - 2 { 2 } else { n + 1 };
        std::net::Ipv4Addr::from(self.base + n).to_string()
    }

    fn node_port(&mut self) -> u16 {
        let p = self.next_node_port;
        self.next_node_port = if p >= 32767 { 30000 } else { p + 1 };
        p
    }
}

/// Fills defaults for `kind`. `old` is the stored object on updates, whose
/// allocated values (cluster IP, node ports) are kept when the client omits them.
pub fn apply(kind: &str, obj: &mut Value, old: Option<&Value>, alloc: &mut Allocator) -> Result<(), ApiError> {
    match kind {
        "Secret" => secret(obj),
        "Namespace" => {
            namespace(obj);
            Ok(())
        }
        "Service" => {
            service(obj, old, alloc);
            Ok(())
        }
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec);
            }
            Ok(())
        }
        "Deployment" | "ReplicaSet" => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
                if kind == "Deployment" {
                    spec.entry("revisionHistoryLimit").or_insert(json!(10));
                    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                    spec.entry("strategy").or_insert(
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                    );
                }
                if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec(pod);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Status a freshly created object starts with, for kinds whose status the server owns.
pub fn initial_status(kind: &str) -> Option<Value> {
    match kind {
        "Pod" => Some(json!({"phase": "Pending", "qosClass": "BestEffort"})),
        "Service" => Some(json!({"loadBalancer": {}})),
        "Namespace" => Some(json!({"phase": "Active"})),
        "Deployment" | "ReplicaSet" => Some(json!({})),
        _ => None,
    }
}

/// `stringData` is write-only: folded into base64 `data`, where it wins over the same key.
fn secret(obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    map.entry("type").or_insert(json!("Opaque"));
    if let Some(data) = map.get("data") {
        let Some(data) = data.as_object() else {
            return Err(ApiError::bad_request("Secret.data must be an object of base64 strings"));
        };
        for (k, v) in data {
            let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                )));
            }
        }
    }
    if let Some(string_data) = map.remove("stringData") {
        let Value::Object(string_data) = string_data else {
            return Err(ApiError::bad_request("Secret.stringData must be an object of strings"));
        };
        let data = map.entry("data").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(data) = data {
            for (k, v) in string_data {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
    Ok(())
}

fn namespace(obj: &mut Value) {
    let name = crate::object::name(obj).to_string();
    let meta = crate::object::metadata_mut(obj);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(map) = obj.as_object_mut() {
        map.entry("spec").or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
    }
}

fn service(obj: &mut Value, old: Option<&Value>, alloc: &mut Allocator) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    spec.insert("type".into(), json!(ty));
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if ty == "ExternalName" {
        return;
    }
    let old_spec = old.and_then(|o| o.get("spec"));
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => match old_spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => alloc.cluster_ip(),
        },
    };
    spec.insert("clusterIP".into(), json!(ip));
    spec.insert("clusterIPs".into(), json!([ip]));
    spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
    spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
    spec.entry("internalTrafficPolicy").or_insert(json!("Cluster"));
    let external = ty == "LoadBalancer" || ty == "NodePort";
    if external {
        spec.entry("externalTrafficPolicy").or_insert(json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts").or_insert(json!(true));
    }
    let old_ports: Vec<Value> =
        old_spec.and_then(|s| s.get("ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut() {
            let Some(p) = port.as_object_mut() else {
                continue;
            };
            p.entry("protocol").or_insert(json!("TCP"));
            if let Some(number) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(number.clone());
                if external && !p.contains_key("nodePort") {
                    let kept = old_ports
                        .iter()
                        .find(|o| o.get("port") == Some(&number))
                        .and_then(|o| o.get("nodePort"))
                        .cloned();
                    p.insert("nodePort".into(), kept.unwrap_or_else(|| json!(alloc.node_port())));
                }
            }
        }
    }
}

fn pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName").or_insert(json!("default-scheduler"));
    spec.entry("terminationGracePeriodSeconds").or_insert(json!(30));
    let sa = spec.get("serviceAccountName").cloned().unwrap_or(json!("default"));
    spec.insert("serviceAccountName".into(), sa.clone());
    spec.entry("serviceAccount").or_insert(sa);
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let latest = image.rsplit('/').next().is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
            let policy = if latest && !image.contains('@') { "Always" } else { "IfNotPresent" };
            c.entry("imagePullPolicy").or_insert(json!(policy));
            c.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let mut s = json!({"stringData": {"token": "abc", "n": 1}, "data": {"old": "eA=="}});
        apply("Secret", &mut s, None, &mut Allocator::default()).expect("valid");
        assert_eq!(s, json!({"type": "Opaque", "data": {"old": "eA==", "token": "YWJj", "n": "MQ=="}}));
        let mut bad = json!({"data": {"k": "not base64!"}});
        assert_eq!(apply("Secret", &mut bad, None, &mut Allocator::default()).expect_err("bad").code, 400);
    }

    #[test]
    fn services_get_an_ip_and_node_ports_kept_across_updates() {
        let mut alloc = Allocator::default();
        let mut svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 15443, "name": "tls"}]}});
        apply("Service", &mut svc, None, &mut alloc).expect("ok");
        let ip = svc["spec"]["clusterIP"].as_str().expect("ip").to_string();
        assert!(ip.starts_with("10.100."));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 15443);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        let node_port = svc["spec"]["ports"][0]["nodePort"].clone();
        assert!(node_port.as_u64().is_some_and(|p| (30000..=32767).contains(&p)));
        let mut updated = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 15443, "name": "tls"}]}});
        apply("Service", &mut updated, Some(&svc), &mut alloc).expect("ok");
        assert_eq!(updated["spec"]["clusterIP"], ip.as_str());
        assert_eq!(updated["spec"]["ports"][0]["nodePort"], node_port);
    }

    #[test]
    fn pod_and_deployment_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "curlimages/curl"}, {"name": "h", "image": "docker.io/istio/examples-helloworld-v1:1.0"}]}}}});
        apply("Deployment", &mut d, None, &mut Allocator::default()).expect("ok");
        assert_eq!(d["spec"]["replicas"], 1);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "default");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn namespace_label_and_spec() {
        let mut ns = json!({"metadata": {"name": "sample"}});
        apply("Namespace", &mut ns, None, &mut Allocator::default()).expect("ok");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "sample");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    }
}
