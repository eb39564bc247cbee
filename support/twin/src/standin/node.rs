//! The one node of a K3s stand-in, registered as a k3s server registers
//! itself: the kubelet's well-known labels, k3s' instance type and role
//! labels, its address annotations, a /24 pod CIDR out of the cluster CIDR,
//! and its InternalIP/ExternalIP/Hostname addresses.
//!
//! Sources (k3s v1.28.8+k3s1): pkg/cloudprovider/instances.go (instance type
//! "k3s", provider ID `k3s://<node>`, the `k3s.io/internal-ip`,
//! `k3s.io/external-ip` and `k3s.io/hostname` annotations turned into node
//! addresses), pkg/agent/run.go (node-role labels control-plane and master
//! "true" on a server), kube-controller-manager's node IPAM
//! (`--node-cidr-mask-size` 24: the first node gets the CIDR's first /24).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::kube::{EventKind, Resource, StoreEvent};
use crate::programs::runtime::{timestamp, Cluster, Reconciler};

/// The Kubernetes release a stand-in reports (its kubelet and `/version`).
pub const K3S_VERSION: &str = "v1.28.8+k3s1";
/// containerd as bundled by k3s v1.28.8+k3s1 (its release notes' component table).
const CONTAINERD_VERSION: &str = "containerd://1.7.11-k3s2";

/// What the node is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K3sNode {
    pub name: String,
    pub internal_ip: Ipv4Addr,
    pub external_ip: Option<Ipv4Addr>,
    /// This node's pod CIDR (`10.42.0.0/24` by default).
    pub pod_cidr: String,
}

impl K3sNode {
    /// The Node object, status included.
    pub fn object(&self, now: &str) -> Value {
        let mut annotations = json!({
            "k3s.io/hostname": self.name,
            "k3s.io/internal-ip": self.internal_ip.to_string(),
            "alpha.kubernetes.io/provided-node-ip": self.internal_ip.to_string(),
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        });
        let mut addresses = vec![json!({"type": "InternalIP", "address": self.internal_ip.to_string()})];
        if let Some(ext) = self.external_ip {
            annotations["k3s.io/external-ip"] = json!(ext.to_string());
            addresses.push(json!({"type": "ExternalIP", "address": ext.to_string()}));
        }
        addresses.push(json!({"type": "Hostname", "address": self.name}));
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "beta.kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/instance-type": "k3s",
                    "beta.kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "true",
                    "node-role.kubernetes.io/master": "true",
                    "node.kubernetes.io/instance-type": "k3s",
                },
                "annotations": annotations,
            },
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr], "providerID": format!("k3s://{}", self.name)},
            "status": {
                "addresses": addresses,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                                "lastTransitionTime": now}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "osImage": "K3s dev",
                             "kubeletVersion": K3S_VERSION, "kubeProxyVersion": K3S_VERSION,
                             "containerRuntimeVersion": CONTAINERD_VERSION},
            },
        })
    }
}

/// Registers the node (again, if someone deletes it), as the kubelet does.
pub struct NodeRegistrar(pub Arc<K3sNode>);

impl Reconciler for NodeRegistrar {
    fn name(&self) -> &'static str {
        "k3s-node"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        event.resource.plural == "nodes" && event.kind == EventKind::Deleted
    }

    fn resync(&self) -> Option<Duration> {
        Some(Duration::from_secs(2))
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        if cluster.get(&Resource::nodes(), None, &self.0.name).is_some() {
            return;
        }
        let obj = self.0.object(&timestamp());
        if let Some(mut created) = cluster.create(&Resource::nodes(), obj.clone()) {
            created["status"] = obj["status"].clone();
            cluster.set_status(&Resource::nodes(), &created);
        }
    }
}

/// The node's addresses as ServiceLB advertises them: every ExternalIP if
/// the node has one, else its InternalIPs (k3s pkg/cloudprovider/servicelb.go
/// podIPs, IPv4 sorted as filterByIPFamily sorts them).
pub fn ingress_ips(nodes: &[Value]) -> Vec<String> {
    let of_type = |t: &str| -> Vec<String> {
        let mut ips: Vec<String> = nodes
            .iter()
            .flat_map(|n| n.pointer("/status/addresses").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter(|a| a.get("type").and_then(Value::as_str) == Some(t))
            .filter_map(|a| a.get("address").and_then(Value::as_str).map(str::to_owned))
            .filter(|a| a.parse::<Ipv4Addr>().is_ok())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    };
    let external = of_type("ExternalIP");
    if external.is_empty() {
        of_type("InternalIP")
    } else {
        external
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ext: Option<&str>) -> K3sNode {
        K3sNode {
            name: "k3s-1".into(),
            internal_ip: "127.0.0.2".parse().unwrap(),
            external_ip: ext.map(|e| e.parse().unwrap()),
            pod_cidr: "10.42.0.0/24".into(),
        }
    }

    #[test]
    fn the_node_is_shaped_like_k3s_registers_it() {
        let n = node(Some("172.18.0.5")).object("2026-01-01T00:00:00Z");
        assert_eq!(n["metadata"]["labels"]["node.kubernetes.io/instance-type"], "k3s");
        assert_eq!(n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(n["metadata"]["annotations"]["k3s.io/internal-ip"], "127.0.0.2");
        assert_eq!(n["metadata"]["annotations"]["k3s.io/external-ip"], "172.18.0.5");
        assert_eq!(n["spec"]["providerID"], "k3s://k3s-1");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], K3S_VERSION);
        let without = node(None).object("2026-01-01T00:00:00Z");
        assert!(without["metadata"]["annotations"].get("k3s.io/external-ip").is_none());
    }

    #[test]
    fn servicelb_advertises_external_ips_else_internal_ones() {
        let with_ext = node(Some("172.18.0.5")).object("t");
        let without = node(None).object("t");
        assert_eq!(ingress_ips(std::slice::from_ref(&without)), ["127.0.0.2"]);
        assert_eq!(ingress_ips(std::slice::from_ref(&with_ext)), ["172.18.0.5"]);
        // One node with an ExternalIP is enough for only ExternalIPs to be listed.
        assert_eq!(ingress_ips(&[without, with_ext]), ["172.18.0.5"]);
        assert!(ingress_ips(&[]).is_empty());
    }
}
