//! What runs "inside" a twin cluster: the control plane's controllers and
//! the kubelets, in-process on the cluster's Store, each a reconcile loop
//! (`runtime`). Behaviour is chosen like a kubelet chooses it: by container
//! image and labels (`listening`, `load_balancer_controller`). Istio's part
//! (istiod, injection, the proxies) lives in `crate::mesh` and hooks in
//! through `runtime::PodHooks`.

pub mod deployments;
pub mod endpoints;
pub mod events;
pub mod health_checker;
pub mod kubelet;
pub mod listening;
pub mod load_balancer_controller;
pub mod namespaces;
pub mod network;
pub mod nodes;
pub mod objects;
pub mod replicasets;
pub mod runtime;
pub mod tokens;

use std::sync::Arc;

use tokio::task::JoinHandle;

pub use runtime::{Cluster, ContainerExit, PodHooks, Reconciler};

/// Starts every per-cluster program; abort the handles to stop them.
pub fn start(cluster: Arc<Cluster>) -> Vec<JoinHandle<()>> {
    vec![
        runtime::spawn(cluster.clone(), namespaces::NamespaceController),
        runtime::spawn(cluster.clone(), nodes::NodeController),
        runtime::spawn(cluster.clone(), tokens::TokenController),
        runtime::spawn(cluster.clone(), deployments::DeploymentController),
        runtime::spawn(cluster.clone(), replicasets::ReplicaSetController::default()),
        runtime::spawn(cluster.clone(), kubelet::Kubelet::new()),
        runtime::spawn(cluster.clone(), endpoints::EndpointsController),
        runtime::spawn(cluster, load_balancer_controller::LoadBalancerController::default()),
    ]
}
