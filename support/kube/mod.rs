//! The Kubernetes adapter: kube-rs clients per cluster and meshspec's apply.

pub mod access;
pub mod apply;
pub mod bearer;
pub mod credential_plugin;
pub mod exec;
pub mod failure;
pub mod retry;
pub mod rollout;

pub use access::{client_from_endpoint, client_from_kubeconfig, KubeAccess, KubeTimeouts};
pub use apply::Applier;
