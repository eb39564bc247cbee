//! meshspec's twin: a small, faithful simulation of the seed system (two EKS
//! clusters with Istio multi-network) behind the real wire protocols, so that
//! meshspec's adapters, kubectl and the aws CLI talk to it as to AWS and EKS.
//!
//! - `meshspec_twin_aws`: one HTTP endpoint for EKS (restJson1), EC2 (ec2 query),
//!   ELBv2 (awsQuery) and STS, routed by the SigV4 credential scope.
//! - `meshspec_twin_kube`: one HTTPS Kubernetes API server per EKS cluster.
//! - `programs`: what runs "inside" the clusters, chosen like a kubelet by image.
//! - `mesh`: Istio in the clusters: istiod, injection, proxies, apps, curl, the data plane.
//! - `dns`: the resolver for NLB hostnames.
//! - `auth`: who each cluster's API server lets in.
//! - `aws_api`: AWS as a cluster's programs reach it, in this process or over the wire.
//! - `twin`: starts and stops all of it.
//! - `standin`: one cluster of the twin standing in for K3s (`meshspec k3s serve`).
//! - `processes`: the network between the twin's processes when each cluster
//!   and the AWS endpoint run in their own (VPC fabric, NLB data plane).

pub use meshspec_twin_aws as aws;
pub use meshspec_twin_aws::{Clock, Delays};
pub use meshspec_twin_kube as kube;

pub mod auth;
pub mod aws_api;
pub mod dns;
pub mod istio;
pub mod mesh;
pub mod processes;
pub mod programs;
pub mod standin;
pub mod twin;

pub use mesh::Mesh;
pub use twin::{Twin, TwinConfig};
