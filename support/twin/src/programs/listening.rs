//! Which TCP ports a pod accepts connections on, decided like a kubelet would
//! run it: by container image.
//!
//! - An Istio gateway (every container is `proxyv2`): Envoy's status port
//!   15021 always; any other port only while an Istio `Gateway` in the same
//!   cluster selects the pod's labels and has a server on that port (Envoy
//!   opens a listener only for configured Gateway servers). So 15443 opens
//!   once `cross-network-gateway` exists, while 15012/15017 stay closed.
//! - Anything else: the `containerPort`s its containers declare.
//!
//! Only a Ready, running, not terminating pod accepts connections.

use serde_json::Value;

use super::objects::{self, pod};

/// Envoy's health/status port on Istio proxies.
pub const ISTIO_STATUS_PORT: u16 = 15021;

/// Whether the image is Istio's proxy (e.g. `docker.io/istio/proxyv2:1.20.2`).
pub fn is_istio_proxy(image: &str) -> bool {
    image.contains("proxyv2")
}

/// Whether the pod is an Istio gateway: only proxy containers.
pub fn is_istio_gateway(p: &Value) -> bool {
    let containers = pod::containers(p);
    !containers.is_empty() && containers.iter().all(|c| is_istio_proxy(pod::image(c)))
}

/// Whether `p` accepts TCP connections on `port`, given the Istio Gateways of
/// its cluster.
pub fn listens_on(p: &Value, port: u16, gateways: &[Value]) -> bool {
    if !pod::is_serving(p) {
        return false;
    }
    if is_istio_gateway(p) {
        return port == ISTIO_STATUS_PORT || gateway_ports(p, gateways).contains(&port);
    }
    pod::containers(p).iter().flat_map(pod::container_ports).any(|(_, n)| n == port)
}

/// Ports of the servers of every Gateway whose selector matches the pod.
fn gateway_ports(p: &Value, gateways: &[Value]) -> Vec<u16> {
    let labels = objects::labels(p);
    gateways
        .iter()
        .filter(|gw| !objects::is_terminating(gw))
        .filter(|gw| {
            // Istio: an empty or missing selector selects no workloads.
            let sel = objects::string_map(gw.pointer("/spec/selector"));
            !sel.is_empty() && objects::selects(&sel, &labels)
        })
        .flat_map(|gw| {
            gw.pointer("/spec/servers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.pointer("/port/number")?.as_u64())
                .filter_map(|n| u16::try_from(n).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway_pod(ready: bool) -> Value {
        json!({
            "metadata": {"name": "gw", "labels": {"istio": "eastwestgateway", "topology.istio.io/network": "network1"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.20.2",
                                      "ports": [{"containerPort": 15090}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        })
    }

    fn cross_network_gateway() -> Value {
        json!({"metadata": {"name": "cross-network-gateway", "namespace": "istio-ingress"},
               "spec": {"selector": {"istio": "eastwestgateway"},
                        "servers": [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                                     "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}})
    }

    #[test]
    fn a_gateway_pod_opens_15443_only_with_a_selecting_gateway() {
        let p = gateway_pod(true);
        assert!(listens_on(&p, 15021, &[]));
        assert!(!listens_on(&p, 15443, &[]));
        let gw = cross_network_gateway();
        assert!(listens_on(&p, 15443, std::slice::from_ref(&gw)));
        assert!(!listens_on(&p, 15012, std::slice::from_ref(&gw)));
        assert!(!listens_on(&p, 15017, std::slice::from_ref(&gw)));
        let mut other = gw.clone();
        other["spec"]["selector"] = json!({"istio": "ingressgateway"});
        assert!(!listens_on(&p, 15443, &[other]));
    }

    #[test]
    fn a_pod_that_is_not_ready_accepts_nothing() {
        assert!(!listens_on(&gateway_pod(false), 15021, &[cross_network_gateway()]));
    }

    #[test]
    fn other_pods_listen_on_their_declared_ports() {
        let p = json!({
            "metadata": {"name": "hw"},
            "spec": {"containers": [
                {"name": "helloworld", "image": "docker.io/istio/examples-helloworld-v1", "ports": [{"containerPort": 5000}]},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.20.2", "ports": [{"containerPort": 15090}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        assert!(!is_istio_gateway(&p));
        assert!(listens_on(&p, 5000, &[]));
        assert!(listens_on(&p, 15090, &[]));
        assert!(!listens_on(&p, 8080, &[]));
    }
}
