//! The cluster's worker nodes as Node objects, one per node of the pod
//! network (one per private subnet, as the seed's managed node group
//! `initial` spreads them), labelled with their region and zone like EKS
//! labels them: istiod reads pod localities from these labels, also through
//! a remote cluster's API server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::network::Node;
use super::objects;
use super::runtime::{timestamp, Cluster, Reconciler};
use crate::kube::{EventKind, Resource, StoreEvent};

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
const NODE_GROUP: &str = "initial";
const INSTANCE_TYPE: &str = "t3.medium";

/// Subnets may appear after the cluster: look again now and then.
const RESYNC: Duration = Duration::from_secs(2);

/// The Node object of a node, without status.
pub fn node_object(node: &Node, region: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": INSTANCE_TYPE,
                "eks.amazonaws.com/nodegroup": NODE_GROUP,
                "eks.amazonaws.com/capacityType": "ON_DEMAND",
                REGION_LABEL: region,
                ZONE_LABEL: node.subnet.az,
            },
        },
        "spec": {"providerID": format!("aws:///{}/i-{}", node.subnet.az, instance_id(&node.name))},
    })
}

/// A Ready node's status.
pub fn node_status(node: &Node, now: &str) -> Value {
    json!({
        "addresses": [{"type": "InternalIP", "address": node.ip.to_string()},
                      {"type": "Hostname", "address": node.name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}],
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "containerRuntimeVersion": "containerd://1.7.11"},
    })
}

/// 17 hex digits, stable per node name (like an EC2 instance id).
fn instance_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(name.as_bytes()))[..17].to_owned()
}

pub struct NodeController;

impl Reconciler for NodeController {
    fn name(&self) -> &'static str {
        "nodes"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        event.resource.plural == "nodes" && event.kind == EventKind::Deleted
    }

    fn resync(&self) -> Option<Duration> {
        Some(RESYNC)
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let nodes: Vec<Node> = cluster.network().as_ref().map(|n| n.nodes().to_vec()).unwrap_or_default();
        for node in &nodes {
            if cluster.get(&Resource::nodes(), None, &node.name).is_some() {
                continue;
            }
            if let Some(created) = cluster.create(&Resource::nodes(), node_object(node, &cluster.region)) {
                let mut ready = created;
                ready["status"] = node_status(node, &timestamp());
                cluster.set_status(&Resource::nodes(), &ready);
            }
        }
    }
}

/// The zone of the node a pod runs on, from the nodes' labels.
pub fn zone_of<'a>(nodes: &'a [Value], node_name: &str) -> Option<&'a str> {
    nodes
        .iter()
        .find(|n| objects::name(n) == node_name)
        .and_then(|n| n.pointer("/metadata/labels")?.get(ZONE_LABEL)?.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::programs::network::NodeSubnet;

    #[test]
    fn a_node_carries_its_zone_and_region() {
        let subnet = NodeSubnet::parse("subnet-a", "us-west-2b", "10.1.16.0/20").unwrap();
        let node =
            Node { name: "ip-10-1-19-7.us-west-2.compute.internal".into(), ip: "10.1.19.7".parse().unwrap(), subnet };
        let obj = node_object(&node, "us-west-2");
        assert_eq!(obj["metadata"]["labels"][ZONE_LABEL], "us-west-2b");
        assert_eq!(obj["metadata"]["labels"][REGION_LABEL], "us-west-2");
        assert!(obj["spec"]["providerID"].as_str().unwrap().starts_with("aws:///us-west-2b/i-"));
        assert_eq!(zone_of(&[obj], &node.name), Some("us-west-2b"));
        assert_eq!(node_status(&node, "t")["addresses"][0]["address"], "10.1.19.7");
    }
}
