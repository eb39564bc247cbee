//! The twin's AWS resources and the time-driven transitions between their
//! states. Transitions are settled lazily: every access first applies what
//! the (compressed) clock says has happened since, so no timers are needed.

use crate::cidr::Cidr;
use crate::clock::{Clock, Delays};
use crate::ClusterEndpoint;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub type Tags = BTreeMap<String, String>;

/// What every operation needs besides the resources.
#[derive(Clone)]
pub struct Ctx {
    pub region: String,
    pub account: String,
    pub clock: Clock,
    pub delays: Delays,
}

impl Ctx {
    /// Whether the simulated `delay` has passed since `since`.
    pub fn elapsed(&self, since: Instant, delay: Duration) -> bool {
        self.clock.since(since) >= delay
    }
}

pub struct Vpc {
    pub id: String,
    pub seq: u64,
    pub cidr: Cidr,
    pub cidr_association_id: String,
    pub created: Instant,
    pub available: bool,
    /// `enableDnsSupport`: the Amazon-provided DNS server answers in the VPC
    /// (default true for a VPC made by CreateVpc; botocore ec2 ModifyVpcAttribute docs).
    pub dns_support: bool,
    /// `enableDnsHostnames` (default false outside the default VPC).
    pub dns_hostnames: bool,
    pub tags: Tags,
}

pub struct Subnet {
    pub id: String,
    pub seq: u64,
    pub vpc_id: String,
    pub cidr: Cidr,
    pub az: String,
    pub az_id: String,
    pub used_ips: BTreeSet<Ipv4Addr>,
    pub tags: Tags,
}

impl Subnet {
    /// AWS reserves the first four and the last address of every subnet.
    pub fn available_ips(&self) -> u64 {
        self.cidr.size().saturating_sub(5).saturating_sub(self.used_ips.len() as u64)
    }
}

pub struct SecurityGroup {
    pub id: String,
    pub seq: u64,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub is_default: bool,
    pub tags: Tags,
}

/// Who created an ENI (users cannot delete these while the owner exists).
#[derive(Clone, PartialEq, Eq)]
pub enum EniOwner {
    LoadBalancer(String),
    Cluster(String),
}

pub struct Eni {
    pub id: String,
    pub seq: u64,
    pub subnet_id: String,
    pub vpc_id: String,
    pub az: String,
    pub description: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    pub interface_type: String,
    pub requester_id: String,
    pub group_ids: Vec<String>,
    pub owner: EniOwner,
    pub tags: Tags,
}

/// Progress of the cluster's control plane (the EKS hook).
pub enum ControlPlane {
    Starting,
    Ready(Option<ClusterEndpoint>),
    Failed(String),
}

pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub seq: u64,
    pub version: String,
    pub role_arn: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub cluster_security_group_id: String,
    pub endpoint_public_access: bool,
    pub endpoint_private_access: bool,
    pub public_access_cidrs: Vec<String>,
    pub service_ipv4_cidr: String,
    pub oidc_id: String,
    pub created_at: DateTime<Utc>,
    pub created: Instant,
    pub control_plane: ControlPlane,
    pub deleting: Option<Instant>,
    /// An UpdateClusterVersion in progress or done: when it started and to which version.
    pub version_update: Option<(Instant, String)>,
    pub tags: Tags,
}

impl Cluster {
    pub fn status(&self, ctx: &Ctx) -> &'static str {
        if self.deleting.is_some() {
            return "DELETING";
        }
        match &self.control_plane {
            ControlPlane::Failed(_) => "FAILED",
            ControlPlane::Ready(_) if ctx.elapsed(self.created, ctx.delays.cluster_create) => {
                if self.updating(ctx) {
                    "UPDATING"
                } else {
                    "ACTIVE"
                }
            }
            _ => "CREATING",
        }
    }

    /// A version update still running. The twin lets it take as long as a
    /// create: EKS gives no fixed duration.
    fn updating(&self, ctx: &Ctx) -> bool {
        self.version_update.as_ref().is_some_and(|(started, _)| !ctx.elapsed(*started, ctx.delays.cluster_create))
    }

    /// The Kubernetes version: the updated one once its update is done.
    pub fn version(&self, ctx: &Ctx) -> &str {
        match &self.version_update {
            Some((_, to)) if !self.updating(ctx) => to,
            _ => &self.version,
        }
    }

    /// The control plane's endpoint, shown once ACTIVE and while it updates.
    pub fn endpoint(&self, ctx: &Ctx) -> Option<&ClusterEndpoint> {
        match (&self.control_plane, self.status(ctx)) {
            (ControlPlane::Ready(Some(endpoint)), "ACTIVE" | "UPDATING") => Some(endpoint),
            _ => None,
        }
    }
}

pub struct LbZone {
    pub az: String,
    pub subnet_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// With `AwsConfig::nlb_address_range`: the address of this host that
    /// stands in for the zone's node (also its public address when
    /// internet-facing; an internal NLB's private address stays in its subnet).
    pub host_ip: Option<Ipv4Addr>,
}

impl LbZone {
    /// The address clients reach this zone's node at.
    pub fn address(&self) -> Ipv4Addr {
        self.host_ip.or(self.public_ip).unwrap_or(self.private_ip)
    }
}

pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub seq: u64,
    pub dns_name: String,
    pub scheme: String,
    pub vpc_id: String,
    pub created_at: DateTime<Utc>,
    pub created: Instant,
    pub active: bool,
    pub zones: Vec<LbZone>,
    pub security_groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Tags,
}

impl LoadBalancer {
    pub fn state(&self) -> &'static str {
        if self.active {
            "active"
        } else {
            "provisioning"
        }
    }

    pub fn cross_zone(&self) -> bool {
        self.attributes.get("load_balancing.cross_zone.enabled").map(String::as_str) == Some("true")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Initial,
    Healthy,
    Unhealthy,
}

pub struct Target {
    pub id: String,
    pub port: u16,
    pub az: String,
    pub registered: Instant,
    pub deregistered: Option<Instant>,
    pub health: Health,
    pub passes: u32,
    pub failures: u32,
}

impl Target {
    /// A target as RegisterTargets makes it: registration starts now, no check results yet.
    pub fn registered(id: String, port: u16, az: String, now: Instant) -> Self {
        Target { id, port, az, registered: now, deregistered: None, health: Health::Initial, passes: 0, failures: 0 }
    }
}

pub struct HealthCheck {
    pub protocol: String,
    /// None = `traffic-port`.
    pub port: Option<u16>,
    pub interval_seconds: u64,
    pub timeout_seconds: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub seq: u64,
    pub protocol: String,
    pub port: u16,
    pub vpc_id: String,
    pub target_type: String,
    pub health_check: HealthCheck,
    pub targets: Vec<Target>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Tags,
}

impl TargetGroup {
    /// Simulated time a deregistered target stays `draining`.
    pub fn deregistration_delay(&self) -> Duration {
        let secs =
            self.attributes.get("deregistration_delay.timeout_seconds").and_then(|v| v.parse().ok()).unwrap_or(300);
        Duration::from_secs(secs)
    }
}

pub struct Listener {
    pub arn: String,
    pub seq: u64,
    pub lb_arn: String,
    pub port: u16,
    pub protocol: String,
    /// (target group ARN, weight)
    pub forward: Vec<(String, u32)>,
    pub tags: Tags,
}

pub struct Model {
    pub ctx: Ctx,
    seq: u64,
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub enis: BTreeMap<String, Eni>,
    pub clusters: BTreeMap<String, Cluster>,
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub target_groups: BTreeMap<String, TargetGroup>,
    pub listeners: BTreeMap<String, Listener>,
    pub public_ips: HashSet<Ipv4Addr>,
    /// Where NLB nodes get bindable addresses from, if configured.
    pub host_addresses: Option<crate::names::HostAddresses>,
}

impl Model {
    pub fn new(ctx: Ctx) -> Self {
        Model {
            ctx,
            seq: 0,
            vpcs: BTreeMap::new(),
            subnets: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            enis: BTreeMap::new(),
            clusters: BTreeMap::new(),
            load_balancers: BTreeMap::new(),
            target_groups: BTreeMap::new(),
            listeners: BTreeMap::new(),
            public_ips: HashSet::new(),
            host_addresses: None,
        }
    }

    /// Creation order: listings and pagination tokens follow it.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Apply every transition that is due by now.
    pub fn settle(&mut self) {
        let ctx = self.ctx.clone();
        for vpc in self.vpcs.values_mut() {
            if !vpc.available && ctx.elapsed(vpc.created, ctx.delays.vpc_available) {
                vpc.available = true;
            }
        }
        for lb in self.load_balancers.values_mut() {
            if !lb.active && ctx.elapsed(lb.created, ctx.delays.nlb_provision) {
                lb.active = true;
            }
        }
        for tg in self.target_groups.values_mut() {
            let delay = tg.deregistration_delay();
            tg.targets.retain(|t| t.deregistered.is_none_or(|at| !ctx.elapsed(at, delay)));
        }
        let gone: Vec<String> = self
            .clusters
            .values()
            .filter(|c| c.deleting.is_some_and(|at| ctx.elapsed(at, ctx.delays.cluster_delete)))
            .map(|c| c.name.clone())
            .collect();
        for name in gone {
            self.remove_cluster(&name);
        }
    }

    /// A cluster's deletion is complete: its ENIs and security group go with it.
    fn remove_cluster(&mut self, name: &str) {
        let Some(cluster) = self.clusters.remove(name) else {
            return;
        };
        let owner = EniOwner::Cluster(name.to_string());
        self.remove_enis_of(&owner);
        self.security_groups.remove(&cluster.cluster_security_group_id);
    }

    pub fn remove_enis_of(&mut self, owner: &EniOwner) {
        let enis: Vec<String> = self.enis.values().filter(|e| &e.owner == owner).map(|e| e.id.clone()).collect();
        for id in enis {
            if let Some(eni) = self.enis.remove(&id) {
                if let Some(subnet) = self.subnets.get_mut(&eni.subnet_id) {
                    subnet.used_ips.remove(&eni.private_ip);
                }
            }
        }
    }

    /// A free private address in a subnet (random, like EC2's choice), marked used.
    pub fn allocate_private_ip(&mut self, subnet_id: &str) -> Option<Ipv4Addr> {
        use rand::Rng;
        let subnet = self.subnets.get_mut(subnet_id)?;
        if subnet.available_ips() == 0 {
            return None;
        }
        let usable = subnet.cidr.size() - 5;
        let mut rng = rand::rng();
        // Random probes first; a linear scan guarantees an answer in a nearly full subnet.
        for _ in 0..64 {
            let ip = subnet.cidr.nth(4 + rng.random_range(0..usable))?;
            if subnet.used_ips.insert(ip) {
                return Some(ip);
            }
        }
        let ip = (4..4 + usable).filter_map(|i| subnet.cidr.nth(i)).find(|ip| !subnet.used_ips.contains(ip))?;
        subnet.used_ips.insert(ip);
        Some(ip)
    }

    /// Whether a target group receives traffic (a listener forwards to it).
    pub fn target_group_in_use(&self, tg_arn: &str) -> bool {
        self.listeners.values().any(|l| l.forward.iter().any(|(arn, _)| arn == tg_arn))
    }

    /// The load balancers whose listeners forward to a target group.
    pub fn load_balancers_of_target_group(&self, tg_arn: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .listeners
            .values()
            .filter(|l| l.forward.iter().any(|(arn, _)| arn == tg_arn))
            .map(|l| l.lb_arn.clone())
            .collect();
        set.into_iter().collect()
    }
}

/// Items in creation order, after an opaque token, at most `limit` of them;
/// returns the page and the token for the next one (only when more follow).
pub fn paginate<T>(mut items: Vec<(u64, T)>, after: Option<u64>, limit: usize) -> (Vec<T>, Option<u64>) {
    items.sort_by_key(|(seq, _)| *seq);
    let mut rest: Vec<(u64, T)> = items.into_iter().filter(|(seq, _)| after.is_none_or(|a| *seq > a)).collect();
    if rest.len() > limit {
        let tail = rest.split_off(limit);
        let last = rest.last().map(|(seq, _)| *seq);
        drop(tail);
        (rest.into_iter().map(|(_, t)| t).collect(), last)
    } else {
        (rest.into_iter().map(|(_, t)| t).collect(), None)
    }
}

/// Pagination tokens: opaque to clients, a creation sequence number to us.
pub fn encode_token(kind: &str, seq: u64) -> String {
    format!("{kind}-{seq:016x}")
}

pub fn decode_token(kind: &str, token: &str) -> Option<u64> {
    let hex = token.strip_prefix(kind)?.strip_prefix('-')?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_creation_order_and_stop() {
        let items: Vec<(u64, u64)> = (1..=5).rev().map(|i| (i, i * 10)).collect();
        let (page, next) = paginate(items.clone(), None, 2);
        assert_eq!(page, vec![10, 20]);
        assert_eq!(next, Some(2));
        let (page, next) = paginate(items.clone(), next, 2);
        assert_eq!(page, vec![30, 40]);
        let (page, next) = paginate(items.clone(), next, 2);
        assert_eq!(page, vec![50]);
        assert_eq!(next, None);
        let (page, next) = paginate(items, None, 5);
        assert_eq!((page.len(), next), (5, None));
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token("lb", 42);
        assert_eq!(decode_token("lb", &t), Some(42));
        assert_eq!(decode_token("tg", &t), None);
        assert_eq!(decode_token("lb", "lb-zz"), None);
    }
}
