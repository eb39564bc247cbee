//! The twin's AWS endpoint: EKS (restJson1), EC2 (ec2 query), ELBv2 (awsQuery)
//! and STS behind one local HTTP port, routed by the SigV4 credential scope,
//! so that aws-sdk-rust and the aws CLI work against it unchanged.
//!
//! [`AwsState`] is the model (VPCs, subnets, security groups, ENIs, clusters,
//! load balancers, target groups, listeners, target health); [`serve`] puts
//! it on the wire. The twin's own programs (load balancer controller, health
//! checker, DNS) use the methods on [`AwsState`] directly.

mod auth;
mod cidr;
pub mod clock;
mod ec2;
mod eks;
mod elbv2;
mod error;
pub mod faults;
mod model;
mod names;
mod query;
mod server;
mod state;
mod sts;
mod xml;

pub use auth::CallerIdentity;
pub use cidr::{Cidr, CidrError};
pub use clock::{Clock, Delays};
pub use error::AwsError;
pub use faults::ApiFaults;
pub use server::{serve, AwsServer};
pub use state::{AwsConfig, AwsState};
pub use sts::check_eks_token_url;

use std::net::Ipv4Addr;

/// What the twin's load balancer controller asks for (a network load balancer).
#[derive(Clone, Debug, Default)]
pub struct NewLoadBalancer {
    pub name: String,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancerInfo {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    pub vpc_id: String,
    pub scheme: String,
    /// `provisioning` or `active`.
    pub state: String,
    /// (availability zone, subnet id, address: public for internet-facing, else private)
    pub zones: Vec<(String, String, Ipv4Addr)>,
    pub security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// One network load balancer as a data plane and a health checker need it:
/// where its nodes are, what its listeners forward to, and each target's
/// health as DescribeTargetHealth would report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NlbSnapshot {
    pub lb: LoadBalancerInfo,
    /// `load_balancing.cross_zone.enabled`.
    pub cross_zone: bool,
    /// In creation order.
    pub listeners: Vec<ListenerSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSnapshot {
    pub arn: String,
    pub port: u16,
    /// `TCP`, `TLS`, `UDP` or `TCP_UDP`.
    pub protocol: String,
    /// The forward action's target groups with their weights.
    pub forward: Vec<ForwardSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardSnapshot {
    pub target_group: TargetGroupInfo,
    pub weight: u32,
    /// The health check's timeout (HealthCheckTimeoutSeconds).
    pub health_check_timeout_seconds: u64,
    /// Registered targets, draining ones included, in registration order.
    pub targets: Vec<TargetSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSnapshot {
    pub ip: String,
    pub port: u16,
    /// The target's availability zone, `all` for an address outside the VPC's subnets.
    pub az: String,
    /// DescribeTargetHealth's state: `initial`, `healthy`, `unhealthy`, `unused` or `draining`.
    pub state: &'static str,
}

impl TargetSnapshot {
    /// The port a health check probes: the group's, else the traffic port.
    pub fn health_check_port(&self, tg: &TargetGroupInfo) -> u16 {
        tg.health_check_port.unwrap_or(self.port)
    }
}

/// A TCP target group of target type `ip`.
#[derive(Clone, Debug, Default)]
pub struct NewTargetGroup {
    pub name: String,
    pub port: u16,
    pub vpc_id: String,
    /// Health check port; None = `traffic-port`.
    pub health_check_port: Option<u16>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub arn: String,
    pub name: String,
    pub port: u16,
    pub protocol: String,
    pub vpc_id: String,
    pub target_type: String,
    /// Health check port; None = the traffic port of each target.
    pub health_check_port: Option<u16>,
    pub health_check_interval_seconds: u64,
    pub load_balancer_arns: Vec<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub az: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    pub arn: String,
    /// CREATING | ACTIVE | DELETING | FAILED
    pub status: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub cluster_security_group_id: String,
    /// Present once ACTIVE (and when the hook provided one).
    pub endpoint: Option<String>,
}

/// What the EKS side of the twin needs from the Kubernetes side: starting and
/// stopping a cluster's API server.
pub trait EksHooks: Send + Sync + 'static {
    fn start_cluster(&self, spec: ClusterSpec) -> futures::future::BoxFuture<'static, anyhow::Result<ClusterEndpoint>>;
    fn stop_cluster(&self, name: &str);
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub arn: String,
    pub version: String,
    pub vpc_id: String,
    pub vpc_cidr: String,
    pub subnet_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterEndpoint {
    /// `https://127.0.0.1:PORT`
    pub endpoint: String,
    /// The cluster CA certificate (PEM); EKS shows it base64-encoded.
    pub ca_pem: String,
}
