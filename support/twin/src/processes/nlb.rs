//! The NLBs' data plane, run by the AWS process: for every active network
//! load balancer, a TCP listener on each zone's address (from
//! `AwsConfig::nlb_address_range`, so bindable) and each TCP listener port.
//! A connection goes to one target of the listener's target group, through
//! the VPC fabric to the target's VPC, and the bytes are spliced both ways.
//!
//! Which target, as Elastic Load Balancing documents it ("Health checks for
//! Network Load Balancer target groups",
//! docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html):
//!
//! - "each load balancer node routes requests only to the healthy targets in
//!   its Availability Zone"; with cross-zone load balancing, to the healthy
//!   targets in all enabled zones. A target outside the VPC's subnets (zone
//!   `all`) takes traffic from every zone; one in a zone the NLB does not
//!   enable takes none ("Troubleshoot your Network Load Balancer": "these
//!   registered targets do not receive traffic").
//! - "If all targets fail health checks at the same time in all enabled
//!   Availability Zones, the load balancer fails open ... allow traffic to
//!   all targets in all enabled Availability Zones, regardless of their
//!   health status": no healthy target in the group, so every registered
//!   (not draining) target may be picked. The in-process data plane
//!   (`mesh::dataplane`) does the same: refused by a target that does not
//!   listen.
//! - A node whose zone has no healthy target while another zone's has
//!   (cross-zone off) has nowhere to send: DNS no longer answers its address
//!   (`AwsState::resolve`), and a client that kept it gets no answer.
//!
//! What the client sees: a target's refusal becomes a reset of the client's
//! connection; no target, or one nobody answers for, leaves the connection
//! silent until the client gives up or the NLB's idle timeout passes
//! ("The default idle timeout value for TCP flows is 350 seconds", "Update
//! the TCP idle timeout for your Network Load Balancer listener"). A real
//! NLB passes the client's SYN on and would leave it unanswered or refused;
//! here the host's kernel has completed the handshake before the data plane
//! sees the connection, so the client learns a moment later. A port with no
//! NLB listener is refused by the host's kernel where AWS would drop it.
//! TLS, UDP and TCP_UDP listeners are not served (the twin's controller
//! makes TCP ones).

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::vpc::{self, FabricError, IngressOf};
use crate::aws::{AwsState, ForwardSnapshot, ListenerSnapshot, NlbSnapshot, TargetSnapshot};

/// How often (wall time) the listeners are brought in line with the NLBs.
const RECHECK: Duration = Duration::from_millis(50);
/// How long after a failed bind the address is tried again.
const BIND_RETRY: Duration = Duration::from_secs(1);
/// How long (wall time) a target's VPC may take to answer a connection.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// An NLB's default idle timeout for TCP flows (see the module doc).
const IDLE_TIMEOUT: Duration = Duration::from_secs(350);

/// One bound (zone address, listener port) of one NLB.
struct Bound {
    task: JoinHandle<()>,
}

type Key = (String, SocketAddrV4);

/// The running data plane. [`NlbDataPlane::shutdown`] (or drop) stops it and
/// closes every listener and the connections through them.
pub struct NlbDataPlane {
    supervisor: Option<JoinHandle<()>>,
    bound: Arc<Mutex<BTreeMap<Key, Bound>>>,
}

impl NlbDataPlane {
    /// Starts serving every active NLB of `aws`; `ingress_of` says where each
    /// VPC's fabric ingress is.
    pub fn start(aws: AwsState, ingress_of: IngressOf) -> NlbDataPlane {
        let bound = Arc::new(Mutex::new(BTreeMap::new()));
        let supervisor = tokio::spawn(supervise(aws, ingress_of, bound.clone()));
        NlbDataPlane { supervisor: Some(supervisor), bound }
    }

    /// The addresses listened on now.
    pub fn listening(&self) -> Vec<SocketAddrV4> {
        lock(&self.bound).keys().map(|(_, addr)| *addr).collect()
    }

    /// Stops the data plane; when this returns, no listener is open.
    pub async fn shutdown(mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
            let _ = supervisor.await;
        }
        let bound = std::mem::take(&mut *lock(&self.bound));
        for b in bound.values() {
            b.task.abort();
        }
        for (_, b) in bound {
            // A cancelled task's future (its listener) is dropped before the handle resolves.
            let _ = b.task.await;
        }
    }
}

impl Drop for NlbDataPlane {
    fn drop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        for (_, b) in std::mem::take(&mut *lock(&self.bound)) {
            b.task.abort();
        }
    }
}

fn lock(bound: &Mutex<BTreeMap<Key, Bound>>) -> MutexGuard<'_, BTreeMap<Key, Bound>> {
    bound.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps the listeners in line with the NLBs: binds what is wanted, closes what is not.
async fn supervise(aws: AwsState, ingress_of: IngressOf, bound: Arc<Mutex<BTreeMap<Key, Bound>>>) {
    let mut failed: BTreeMap<Key, tokio::time::Instant> = BTreeMap::new();
    loop {
        let wanted = wanted_listeners(&aws.network_load_balancers());
        let missing: Vec<(Key, String)> = {
            let mut bound = lock(&bound);
            bound.retain(|key, b| {
                let keep = wanted.contains_key(key);
                if !keep {
                    b.task.abort();
                }
                keep
            });
            wanted.iter().filter(|(k, _)| !bound.contains_key(*k)).map(|(k, az)| (k.clone(), az.clone())).collect()
        };
        let now = tokio::time::Instant::now();
        failed.retain(|key, at| wanted.contains_key(key) && *at > now);
        for (key, az) in missing {
            if failed.contains_key(&key) {
                continue;
            }
            match TcpListener::bind(SocketAddr::V4(key.1)).await {
                Ok(listener) => {
                    let node = Node { aws: aws.clone(), ingress_of: ingress_of.clone(), lb_arn: key.0.clone(), az };
                    let task = tokio::spawn(node.serve(listener, key.1.port()));
                    lock(&bound).insert(key, Bound { task });
                }
                Err(e) => {
                    tracing::warn!(addr = %key.1, lb = %key.0, "NLB data plane: cannot listen: {e}");
                    failed.insert(key, now + BIND_RETRY);
                }
            }
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// (NLB ARN, zone address:listener port) -> the zone, for every TCP listener of every active NLB.
fn wanted_listeners(nlbs: &[NlbSnapshot]) -> BTreeMap<Key, String> {
    let mut wanted = BTreeMap::new();
    for nlb in nlbs.iter().filter(|n| n.lb.state == "active") {
        for listener in nlb.listeners.iter().filter(|l| l.protocol == "TCP") {
            for (az, _, ip) in &nlb.lb.zones {
                wanted.insert((nlb.lb.arn.clone(), SocketAddrV4::new(*ip, listener.port)), az.clone());
            }
        }
    }
    wanted
}

/// One zone's node of one NLB.
#[derive(Clone)]
struct Node {
    aws: AwsState,
    ingress_of: IngressOf,
    lb_arn: String,
    az: String,
}

impl Node {
    /// Accepts connections on one listener port; aborting the task closes
    /// the listener and ends the connections it accepted.
    async fn serve(self, listener: TcpListener, port: u16) {
        let mut flows = JoinSet::new();
        loop {
            while flows.try_join_next().is_some() {}
            match listener.accept().await {
                Ok((client, _)) => {
                    flows.spawn(self.clone().forward(client, port));
                }
                Err(e) => {
                    tracing::debug!(lb = %self.lb_arn, port, "NLB accept: {e}");
                    tokio::time::sleep(RECHECK).await;
                }
            }
        }
    }

    /// One client connection: a target, the fabric, then both ways until either side closes.
    async fn forward(self, mut client: TcpStream, port: u16) {
        let _ = client.set_nodelay(true);
        let nlb = self.aws.network_load_balancer(&self.lb_arn).filter(|n| n.lb.state == "active");
        let listener = nlb.as_ref().and_then(|n| n.listeners.iter().find(|l| l.port == port && l.protocol == "TCP"));
        let (Some(nlb), Some(listener)) = (nlb.as_ref(), listener) else {
            // Deleted since the connection was accepted.
            let _ = client.set_zero_linger();
            return;
        };
        let Some((vpc_id, target)) = pick_target(nlb, listener, &self.az) else {
            return self.silent(client).await;
        };
        let Some(ingress) = (self.ingress_of)(&vpc_id) else {
            return self.silent(client).await;
        };
        match vpc::connect(ingress, target, CONNECT_WITHIN).await {
            Ok(mut upstream) => {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(FabricError::Refused) => {
                // The target's RST reaches the client as a reset.
                let _ = client.set_zero_linger();
            }
            Err(e) => {
                tracing::debug!(lb = %self.lb_arn, %target, "NLB target: {e}");
                self.silent(client).await;
            }
        }
    }

    /// Nothing answers: the client's bytes are taken and dropped until it
    /// closes or the idle timeout (simulated time) passes.
    async fn silent(&self, mut client: TcpStream) {
        let until = self.aws.config().clock.compress(IDLE_TIMEOUT);
        let drain = async {
            let mut sink = [0u8; 4096];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(until, drain).await;
    }
}

/// Where a node in zone `az` sends a new connection on `listener`: the
/// target group's VPC and one target (see the module doc); `None`: nowhere.
pub fn pick_target(nlb: &NlbSnapshot, listener: &ListenerSnapshot, az: &str) -> Option<(String, SocketAddrV4)> {
    let forward = pick_forward(&listener.forward)?;
    let enabled: HashSet<&str> = nlb.lb.zones.iter().map(|(z, _, _)| z.as_str()).collect();
    let registered: Vec<&TargetSnapshot> = forward
        .targets
        .iter()
        .filter(|t| t.state != "draining" && t.state != "unused")
        .filter(|t| t.az == "all" || enabled.contains(t.az.as_str()))
        .collect();
    let any_healthy = registered.iter().any(|t| t.state == "healthy");
    let candidates: Vec<&&TargetSnapshot> = if any_healthy {
        let reachable = |t: &&&TargetSnapshot| nlb.cross_zone || t.az == az || t.az == "all";
        registered.iter().filter(|t| t.state == "healthy").filter(reachable).collect()
    } else {
        // Fail open: every registered target, whatever its health.
        registered.iter().collect()
    };
    if candidates.is_empty() {
        return None;
    }
    let t = candidates[rand::random_range(0..candidates.len())];
    vpc::pod_address(&t.ip, t.port).map(|addr| (forward.target_group.vpc_id.clone(), addr))
}

/// A target group of the forward action, by weight.
fn pick_forward(forward: &[ForwardSnapshot]) -> Option<&ForwardSnapshot> {
    let total: u64 = forward.iter().map(|f| u64::from(f.weight)).sum();
    if total == 0 {
        return forward.first();
    }
    let mut at = rand::random_range(0..total);
    forward.iter().find(|f| {
        if at < u64::from(f.weight) {
            return true;
        }
        at -= u64::from(f.weight);
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{LoadBalancerInfo, TargetGroupInfo};
    use std::net::Ipv4Addr;

    fn target(ip: &str, az: &str, state: &'static str) -> TargetSnapshot {
        TargetSnapshot { ip: ip.into(), port: 15443, az: az.into(), state }
    }

    fn nlb(cross_zone: bool, targets: Vec<TargetSnapshot>) -> NlbSnapshot {
        let zone = |az: &str, n: u8| (az.to_owned(), format!("subnet-{n}"), Ipv4Addr::new(127, 77, 0, n));
        let tg = TargetGroupInfo {
            arn: "tg".into(),
            name: "gw-15443".into(),
            port: 15443,
            protocol: "TCP".into(),
            vpc_id: "vpc-1".into(),
            target_type: "ip".into(),
            health_check_port: None,
            health_check_interval_seconds: 10,
            load_balancer_arns: vec!["lb".into()],
            tags: vec![],
        };
        NlbSnapshot {
            lb: LoadBalancerInfo {
                arn: "lb".into(),
                name: "gw".into(),
                dns_name: "gw.elb".into(),
                vpc_id: "vpc-1".into(),
                scheme: "internet-facing".into(),
                state: "active".into(),
                zones: vec![zone("us-west-2a", 1), zone("us-west-2b", 2)],
                security_group_ids: vec![],
                tags: vec![],
            },
            cross_zone,
            listeners: vec![ListenerSnapshot {
                arn: "l".into(),
                port: 15443,
                protocol: "TCP".into(),
                forward: vec![ForwardSnapshot {
                    target_group: tg,
                    weight: 1,
                    health_check_timeout_seconds: 10,
                    targets,
                }],
            }],
        }
    }

    fn picks(n: &NlbSnapshot, az: &str) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..200 {
            let key = pick_target(n, &n.listeners[0], az).map_or("none".to_owned(), |(_, a)| a.ip().to_string());
            *seen.entry(key).or_default() += 1;
        }
        seen
    }

    #[test]
    fn healthy_targets_of_the_zone_take_the_traffic() {
        let n = nlb(
            false,
            vec![
                target("10.1.48.5", "us-west-2a", "healthy"),
                target("10.1.49.5", "us-west-2b", "healthy"),
                target("10.1.48.6", "us-west-2a", "unhealthy"),
                target("10.1.48.7", "us-west-2a", "draining"),
            ],
        );
        assert_eq!(picks(&n, "us-west-2a").keys().collect::<Vec<_>>(), ["10.1.48.5"]);
        assert_eq!(picks(&n, "us-west-2b").keys().collect::<Vec<_>>(), ["10.1.49.5"]);
        let vpc = pick_target(&n, &n.listeners[0], "us-west-2a").map(|(v, a)| (v, a.port()));
        assert_eq!(vpc, Some(("vpc-1".to_owned(), 15443)));
        let cross = nlb(true, n.listeners[0].forward[0].targets.clone());
        assert_eq!(picks(&cross, "us-west-2a").keys().collect::<Vec<_>>(), ["10.1.48.5", "10.1.49.5"]);
    }

    #[test]
    fn a_zone_without_healthy_targets_sends_nowhere_unless_none_is_healthy_anywhere() {
        let one_healthy = nlb(
            false,
            vec![target("10.1.49.5", "us-west-2b", "healthy"), target("10.1.48.6", "us-west-2a", "unhealthy")],
        );
        assert_eq!(picks(&one_healthy, "us-west-2a").keys().collect::<Vec<_>>(), ["none"]);
        // Fail open: all registered targets, whatever their health or zone.
        let none_healthy = nlb(
            false,
            vec![
                target("10.1.49.5", "us-west-2b", "unhealthy"),
                target("10.1.48.6", "us-west-2a", "initial"),
                target("10.1.48.7", "us-west-2a", "draining"),
                target("10.1.50.7", "us-west-2c", "unhealthy"),
            ],
        );
        assert_eq!(picks(&none_healthy, "us-west-2a").keys().collect::<Vec<_>>(), ["10.1.48.6", "10.1.49.5"]);
        assert_eq!(picks(&nlb(false, vec![]), "us-west-2a").keys().collect::<Vec<_>>(), ["none"]);
        // Outside the VPC's subnets: every zone's node reaches it.
        let outside = nlb(false, vec![target("10.42.0.9", "all", "healthy")]);
        assert_eq!(picks(&outside, "us-west-2b").keys().collect::<Vec<_>>(), ["10.42.0.9"]);
    }

    #[test]
    fn only_active_nlbs_tcp_listeners_are_bound_on_every_zone() {
        let mut active = nlb(false, vec![]);
        let mut udp = active.listeners[0].clone();
        udp.port = 53;
        udp.protocol = "UDP".into();
        active.listeners.push(udp);
        let mut provisioning = nlb(false, vec![]);
        provisioning.lb.arn = "other".into();
        provisioning.lb.state = "provisioning".into();
        let wanted = wanted_listeners(&[active, provisioning]);
        let addrs: Vec<String> = wanted.keys().map(|(arn, a)| format!("{arn} {a}")).collect();
        assert_eq!(addrs, ["lb 127.77.0.1:15443", "lb 127.77.0.2:15443"]);
        assert_eq!(wanted.values().collect::<Vec<_>>(), ["us-west-2a", "us-west-2b"]);
    }
}
