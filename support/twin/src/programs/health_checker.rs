//! The NLBs' TCP health checks: every `delays.health_check_interval` of
//! simulated time, each registered target of each load balancer's target
//! groups is probed. A probe passes iff a pod with the target's IP exists in a
//! twin cluster in the target group's VPC, and accepts connections on the
//! health-check port (see `listening`). AWS turns the results into target
//! health with its thresholds.
//!
//! Two ways to probe: [`run`] looks at the clusters of this process in
//! memory; [`run_over_fabric`] (the AWS process, when each cluster runs in
//! its own) connects to each target through its VPC's ingress
//! (`processes::vpc`), where the cluster answers with the same rule.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::listening::listens_on;
use super::load_balancer_controller::running_instance;
use super::objects::pod;
use super::runtime::Cluster;
use crate::aws::AwsState;
use crate::kube::Resource;
use crate::processes::vpc::{self, IngressOf};

/// The pods and Istio Gateways of one cluster, as one probe round sees them.
struct ClusterView {
    vpc_id: String,
    /// Pods by IP.
    pods: HashMap<String, Value>,
    gateways: Vec<Value>,
}

impl ClusterView {
    fn of(cluster: &Cluster) -> ClusterView {
        let mut pods = HashMap::new();
        for p in cluster.list(&Resource::pods()) {
            if let Some(ip) = pod::ip(&p).map(str::to_owned) {
                // A terminating pod and its replacement may share nothing but
                // an IP briefly; the serving one answers.
                let keep_old = pods.get(&ip).is_some_and(pod::is_serving);
                if !keep_old {
                    pods.insert(ip, p);
                }
            }
        }
        ClusterView { vpc_id: cluster.vpc_id.clone(), pods, gateways: cluster.list(&Resource::gateways()) }
    }
}

/// What one cluster shows a probe round, kept while its store does not change:
/// listing every pod each round of each twin would be most of a test run's CPU.
struct Seen {
    revision: u64,
    view: Arc<ClusterView>,
    /// The name its load balancer controller was told (`--cluster-name`), if one runs.
    controller_cluster_name: Option<String>,
}

#[derive(Default)]
pub struct Views {
    by_cluster: HashMap<String, Seen>,
    /// Probe results by (VPC, IP, port), valid while no cluster changed.
    results: HashMap<(String, String, u16), bool>,
    revisions: Vec<u64>,
}

impl Views {
    fn of(&mut self, cluster: &Cluster) -> &Seen {
        let revision = cluster.store.resource_version();
        let stale = self.by_cluster.get(&cluster.eks_name).is_none_or(|s| s.revision != revision);
        if stale {
            let controller_cluster_name =
                running_instance(&cluster.list(&Resource::pods()), &cluster.vpc_id).map(|i| i.cluster_name);
            let seen = Seen { revision, view: Arc::new(ClusterView::of(cluster)), controller_cluster_name };
            self.by_cluster.insert(cluster.eks_name.clone(), seen);
        }
        &self.by_cluster[&cluster.eks_name]
    }
}

/// One probe of every registered target; returns how many were probed.
pub fn probe_all(aws: &AwsState, clusters: &[Arc<Cluster>], cache: &mut Views) -> usize {
    // Cluster names the load balancers of these clusters may be tagged with:
    // their EKS names and what their load balancer controllers were told.
    let mut names = BTreeSet::new();
    let mut views = Vec::new();
    let mut revisions = Vec::new();
    for c in clusters {
        let seen = cache.of(c);
        names.insert(c.eks_name.clone());
        names.extend(seen.controller_cluster_name.clone());
        views.push(seen.view.clone());
        revisions.push(seen.revision);
    }
    if revisions != cache.revisions {
        cache.results.clear();
        cache.revisions = revisions;
    }
    let mut probed = 0;
    let mut seen_lbs = BTreeSet::new();
    for name in names {
        for lb in aws.load_balancers_tagged("elbv2.k8s.aws/cluster", &name) {
            if !seen_lbs.insert(lb.arn.clone()) {
                continue;
            }
            for tg in aws.target_groups_of(&lb.arn) {
                for (ip, port) in aws.registered_targets(&tg.arn) {
                    let check_port = tg.health_check_port.unwrap_or(port);
                    let passed =
                        *cache.results.entry((tg.vpc_id.clone(), ip.clone(), check_port)).or_insert_with(|| {
                            views
                                .iter()
                                .filter(|v| v.vpc_id == tg.vpc_id)
                                .any(|v| v.pods.get(&ip).is_some_and(|p| listens_on(p, check_port, &v.gateways)))
                        });
                    aws.record_health_check(&tg.arn, &ip, port, passed);
                    probed += 1;
                }
            }
        }
    }
    probed
}

/// Wall time between probe rounds at least: at extreme time scales a round
/// per compressed interval would only burn CPU (health then simply turns a
/// little later in simulated time).
const MIN_ROUND: Duration = Duration::from_millis(20);

/// Probes forever, once per health-check interval (simulated time).
pub async fn run(aws: AwsState, clusters: impl Fn() -> Vec<Arc<Cluster>> + Send + 'static) {
    let cfg = aws.config();
    let round = cfg.clock.compress(cfg.delays.health_check_interval).max(MIN_ROUND);
    let mut cache = Views::default();
    loop {
        tokio::time::sleep(round).await;
        probe_all(&aws, &clusters(), &mut cache);
    }
}

/// How many probes over the fabric run at once.
const FABRIC_PROBES_AT_ONCE: usize = 16;
/// The least wall time a probe over the fabric gets: the compressed
/// HealthCheckTimeoutSeconds would be milliseconds, less than a busy
/// cluster process may take to answer its ingress.
const MIN_WALL_PROBE: Duration = Duration::from_secs(1);

/// One probe of every registered target of every active NLB over the VPC
/// fabric, at most [`FABRIC_PROBES_AT_ONCE`] at a time; returns how many
/// were probed. A probe passes iff the connection to (target IP,
/// health-check port) is accepted within the group's health-check timeout.
pub async fn probe_all_over_fabric(aws: &AwsState, ingress_of: &IngressOf) -> usize {
    use futures::StreamExt;
    let clock = aws.config().clock;
    let mut probes = Vec::new();
    let mut seen = BTreeSet::new();
    for nlb in aws.network_load_balancers().into_iter().filter(|n| n.lb.state == "active") {
        for forward in nlb.listeners.iter().flat_map(|l| &l.forward) {
            let tg = &forward.target_group;
            let within = clock.compress(Duration::from_secs(forward.health_check_timeout_seconds)).max(MIN_WALL_PROBE);
            for t in forward.targets.iter().filter(|t| t.state != "draining") {
                // A group behind several listeners is checked once per target.
                if seen.insert((tg.arn.clone(), t.ip.clone(), t.port)) {
                    probes.push((
                        tg.arn.clone(),
                        tg.vpc_id.clone(),
                        t.ip.clone(),
                        t.port,
                        t.health_check_port(tg),
                        within,
                    ));
                }
            }
        }
    }
    let probed = probes.len();
    futures::stream::iter(probes)
        .map(|(tg_arn, vpc_id, ip, port, check_port, within)| async move {
            let passed = probe_over_fabric(ingress_of, &vpc_id, &ip, check_port, within).await;
            aws.record_health_check(&tg_arn, &ip, port, passed);
        })
        .buffer_unordered(FABRIC_PROBES_AT_ONCE)
        .for_each(|()| async {})
        .await;
    probed
}

/// A TCP health check: connected means passed.
async fn probe_over_fabric(ingress_of: &IngressOf, vpc_id: &str, ip: &str, port: u16, within: Duration) -> bool {
    let (Some(ingress), Some(target)) = (ingress_of(vpc_id), vpc::pod_address(ip, port)) else {
        return false;
    };
    match vpc::connect(ingress, target, within).await {
        Ok(conn) => {
            // Closed with a RST: hundreds of probes a second would otherwise
            // leave as many sockets in TIME_WAIT.
            let _ = conn.set_zero_linger();
            true
        }
        Err(_) => false,
    }
}

/// Probes over the VPC fabric forever, once per health-check interval
/// (simulated time), as the AWS process's health checker.
pub async fn run_over_fabric(aws: AwsState, ingress_of: IngressOf) {
    let cfg = aws.config();
    let round = cfg.clock.compress(cfg.delays.health_check_interval).max(MIN_ROUND);
    loop {
        tokio::time::sleep(round).await;
        probe_all_over_fabric(&aws, &ingress_of).await;
    }
}
