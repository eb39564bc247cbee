//! Cross-cluster load balancing from each cluster's sleep pod.

use anyhow::{ensure, Result};
use serde::Serialize;

use super::check;
use super::sync::HelloworldEndpoints;
use crate::mesh::traffic::{self, Distribution};
use crate::target::Session;
use crate::topology::{names, ClusterTopology};

/// The false-alarm rate of the split check: an exact two-sided binomial test
/// that refuses a correct split once in 10 000 runs.
pub const FALSE_ALARM_RATE: f64 = 1e-4;

/// Requests per source cluster: at this rate, enough that a 70/30 skew where
/// the weights predict 50/50 passes less than once in a thousand runs (the
/// unit tests of `mesh::traffic` compute both rates exactly).
pub const REQUESTS: usize = 300;

#[derive(Debug, Serialize)]
pub struct LoadBalancingEvidence {
    pub cluster: String,
    pub pod: String,
    /// The helloworld version of the source cluster.
    pub local_version: String,
    /// Probability of the local version, from the sidecar's endpoint weights.
    pub local_probability: f64,
    pub distribution: Distribution,
}

/// Send `n` requests from the cluster's sleep pod; the expected split comes
/// from its sidecar's weights (local pod endpoints vs gateway endpoints),
/// read once the sidecar holds both networks' endpoints.
pub async fn requests_from(
    session: &Session,
    c: &ClusterTopology,
    url: &str,
    n: usize,
) -> Result<LoadBalancingEvidence> {
    // The split is only predictable once istiod has pushed both networks' endpoints.
    let synced = check::until(session, &HelloworldEndpoints(c.clone())).await?;
    let pod = synced.pod.clone();
    let (mut local, mut total) = (0u64, 0u64);
    for r in &synced.rows {
        total += r.weight as u64;
        if r.port != names::CROSS_NETWORK_PORT {
            local += r.weight as u64;
        }
    }
    ensure!(total > 0, "{}: the sidecar of {pod} has no healthy helloworld endpoint", c.name);
    let client = session.kube(&c.name).await?;
    let from = traffic::Source { client: &client, namespace: names::SAMPLE, pod: &pod, container: "sleep" };
    let distribution = traffic::curl_from(&from, url, n, 8, session.timeouts.api_call).await?;
    let peer = session.topology.peer_of(c);
    if distribution.share(&peer.sample_version) > 0 {
        session.convergence.held(
            Some("first_cross_network_request"),
            &format!("{}: a request from {pod} answered by {}", c.name, peer.sample_version),
            std::time::Duration::ZERO,
        );
    }
    Ok(LoadBalancingEvidence {
        cluster: c.name.clone(),
        pod,
        local_version: c.sample_version.clone(),
        local_probability: local as f64 / total as f64,
        distribution,
    })
}
