//! Cross-cluster load balancing from each cluster's sleep pod.

use anyhow::{ensure, Result};
use serde::Serialize;

use super::check;
use super::sync::HelloworldEndpoints;
use crate::mesh::traffic::{self, binomial_miss_rate, check_share, Distribution};
use crate::run::Session;
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
        if r.port != u32::from(names::CROSS_NETWORK_PORT) {
            local += r.weight as u64;
        }
    }
    ensure!(total > 0, "{}: the sidecar of {pod} has no healthy helloworld endpoint", c.name);
    let client = session.kube(&c.name).await?;
    let from = traffic::Source { client: &client, namespace: names::SAMPLE, pod: &pod, container: "sleep" };
    let distribution = traffic::curl_from(&from, url, n, 8, session.timeouts.api_call).await?;
    let peer = session.topology.peer_of(c);
    if distribution.share(&peer.sample_version) > 0 {
        session.run.convergence.held(
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

/// The skew the split check must catch: 20 points off the predicted share.
pub const SKEW: f64 = 0.2;

impl LoadBalancingEvidence {
    /// Every one of these versions answered at least once.
    pub fn every_version_answered<'a>(&self, versions: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let silent: Vec<&str> = versions.into_iter().filter(|v| self.distribution.share(v) == 0).collect();
        if silent.is_empty() {
            Ok(())
        } else {
            Err(format!("{silent:?} never answered: {:?}", self.distribution.versions))
        }
    }

    /// Each version's count passes an exact two-sided binomial test (false-alarm rate
    /// [`FALSE_ALARM_RATE`]) against the split the endpoint weights predict; refuses a
    /// request count too small to catch a skew of [`SKEW`] at least 999 times in 1 000.
    pub fn shares_match_weights(&self, remote_version: &str) -> Result<(), String> {
        let n = self.distribution.requests;
        let p = self.local_probability;
        let skew = if p <= 0.5 { p + SKEW } else { p - SKEW };
        let miss = binomial_miss_rate(n, p, FALSE_ALARM_RATE, skew);
        if miss >= 1e-3 {
            return Err(format!(
                "{n} requests are too few: a split of {skew:.2} where {p:.2} is predicted would pass {:.1}% of the time (send at least {REQUESTS})",
                miss * 100.0
            ));
        }
        let problems: Vec<String> = [(self.local_version.as_str(), p), (remote_version, 1.0 - p)]
            .into_iter()
            .filter_map(|(v, prob)| check_share(v, self.distribution.share(v), n, prob, FALSE_ALARM_RATE).err())
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Every answer was a greeting: no 5xx, no connection error.
    pub fn no_error_answers(&self) -> Result<(), String> {
        let d = &self.distribution;
        if d.errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{} of {} requests failed: {:?}", d.errors.len(), d.requests, d.errors))
        }
    }

    /// Only the local version answered, something tried the other network, and every
    /// other answer is an Envoy 503 with `reason`.
    pub fn local_only_with_503(&self, remote_version: &str, reason: &str) -> Result<(), String> {
        let d = &self.distribution;
        if d.share(&self.local_version) == 0 {
            return Err(format!("the local version never answered: {d:?}"));
        }
        if d.share(remote_version) > 0 {
            return Err(format!("the other network answered: {:?}", d.versions));
        }
        if d.errors.is_empty() {
            return Err(format!("no request crossed to the other network: {d:?}"));
        }
        match d.errors.iter().find(|e| !(e.starts_with("HTTP 503") && e.contains(reason))) {
            Some(e) => Err(format!("an answer that is not a 503 with {reason}: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(v1: usize, v2: usize, errors: &[&str]) -> LoadBalancingEvidence {
        LoadBalancingEvidence {
            cluster: "eks-1".into(),
            pod: "sleep-0".into(),
            local_version: "v1".into(),
            local_probability: 0.5,
            distribution: Distribution {
                requests: v1 + v2 + errors.len(),
                versions: [("v1".to_string(), v1), ("v2".to_string(), v2)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                instances: Default::default(),
                errors: errors.iter().map(|e| e.to_string()).collect(),
            },
        }
    }

    #[test]
    fn an_even_split_passes_and_a_skewed_or_silent_one_does_not() {
        assert!(evidence(150, 150, &[]).shares_match_weights("v2").is_ok());
        assert!(evidence(210, 90, &[]).shares_match_weights("v2").is_err());
        assert!(evidence(10, 10, &[]).shares_match_weights("v2").unwrap_err().contains("too few"));
        assert!(evidence(300, 0, &[]).every_version_answered(["v1", "v2"]).unwrap_err().contains("v2"));
        assert!(evidence(1, 1, &[]).every_version_answered(["v1", "v2"]).is_ok());
        assert!(evidence(1, 1, &["HTTP 503"]).no_error_answers().is_err());
    }

    #[test]
    fn local_only_answers_need_a_503_with_the_reason_for_every_other_request() {
        let reason = "CERTIFICATE_VERIFY_FAILED";
        assert!(evidence(5, 0, &["HTTP 503 CERTIFICATE_VERIFY_FAILED"]).local_only_with_503("v2", reason).is_ok());
        assert!(evidence(5, 1, &["HTTP 503 CERTIFICATE_VERIFY_FAILED"]).local_only_with_503("v2", reason).is_err());
        assert!(evidence(5, 0, &[]).local_only_with_503("v2", reason).is_err());
        assert!(evidence(5, 0, &["connection refused"]).local_only_with_503("v2", reason).is_err());
    }
}
