//! The clusters istiod knows, each as the objects it reads from it: its own
//! cluster (through its own informers, here the store) and every remote
//! cluster of a remote secret (through that cluster's API server).

use serde_json::Value;

use crate::kube::Resource;
use crate::mesh::injection::NETWORK_LABEL;
use crate::programs::objects;
use crate::programs::Cluster;

pub const ISTIO_SYSTEM: &str = "istio-system";

/// One cluster as istiod sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The Istio cluster ID (`CLUSTER_ID`, or the remote secret's data key).
    pub id: String,
    /// The network of the cluster's endpoints: the `topology.istio.io/network`
    /// label of its istio-system namespace ("" when unknown).
    pub network: String,
    pub services: Vec<Value>,
    pub endpoints: Vec<Value>,
    pub pods: Vec<Value>,
    pub nodes: Vec<Value>,
}

impl ClusterView {
    /// A twin cluster read from its store.
    pub fn from_store(id: &str, cluster: &Cluster) -> ClusterView {
        ClusterView {
            id: id.to_owned(),
            network: network_of(&cluster.list(&Resource::namespaces())),
            services: cluster.list(&Resource::services()),
            endpoints: cluster.list(&Resource::endpoints()),
            pods: cluster.list(&Resource::pods()),
            nodes: cluster.list(&Resource::nodes()),
        }
    }

    /// The pod an Endpoints address points at.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.pods.iter().find(|p| objects::namespace(p) == namespace && objects::name(p) == name)
    }
}

/// The network label of istio-system among a cluster's namespaces.
pub fn network_of(namespaces: &[Value]) -> String {
    namespaces
        .iter()
        .find(|ns| objects::name(ns) == ISTIO_SYSTEM)
        .and_then(|ns| objects::labels(ns).get(NETWORK_LABEL).cloned())
        .unwrap_or_default()
}
