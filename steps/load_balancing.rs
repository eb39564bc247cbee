//! Steps of features/load_balancing.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::{MeshWorld, StepResult};
use crate::checks::load_balancing::{self as check, LoadBalancingEvidence, FALSE_ALARM_RATE};
use crate::mesh::traffic::{binomial_miss_rate, check_share};

/// The skew the split check must catch: 20 points off the predicted share.
const SKEW: f64 = 0.2;

fn last(w: &MeshWorld) -> anyhow::Result<&LoadBalancingEvidence> {
    w.traffic.as_ref().context("no requests were sent by an earlier step")
}

/// Send N requests from the cluster's sleep pod through its sidecar, once it holds both networks'
/// endpoints; attaches the response distribution and the split the endpoint weights predict.
#[when(expr = "the sleep pod in {string} sends {int} requests to {string}")]
async fn send(w: &mut MeshWorld, step: &Step, cluster: String, n: usize, url: String) -> StepResult {
    ensure!(n > 0, "at least one request");
    let c = w.topology().cluster(&cluster)?.clone();
    let evidence = check::requests_from(&w.session, &c, &url, n).await.map_err(|e| w.failed(step, e))?;
    w.attach(step, "response distribution", &evidence);
    w.cluster = Some(c);
    w.traffic = Some(evidence);
    Ok(())
}

/// Every cluster's helloworld version answered at least once.
#[then(expr = "both helloworld versions answer")]
async fn both_versions(w: &mut MeshWorld) -> StepResult {
    let e = last(w)?;
    for c in &w.topology().clusters {
        ensure!(
            e.distribution.share(&c.sample_version) > 0,
            "{} ({}) never answered: {:?}",
            c.sample_version,
            c.name,
            e.distribution.versions
        );
    }
    Ok(())
}

/// Each version's count of answers passes an exact two-sided binomial test (false-alarm rate 1e-4) against
/// the split the endpoint weights predict.
/// Refuses a request count too small for the test to catch a skew of 20 points (70/30 where 50/50 is
/// predicted) at least 999 times in 1 000.
#[then(expr = "each version's share passes an exact binomial test against the endpoint weights")]
async fn shares(w: &mut MeshWorld) -> StepResult {
    let e = last(w)?;
    let local = w.cluster()?.clone();
    let remote = w.topology().peer_of(&local).clone();
    let n = e.distribution.requests;
    let p = e.local_probability;
    let skew = if p <= 0.5 { p + SKEW } else { p - SKEW };
    let miss = binomial_miss_rate(n, p, FALSE_ALARM_RATE, skew);
    if miss >= 1e-3 {
        bail!(
            "{n} requests are too few: a split of {skew:.2} where {p:.2} is predicted would pass {:.1}% of the time (send at least {})",
            miss * 100.0,
            check::REQUESTS
        );
    }
    let mut problems = Vec::new();
    for (version, prob) in [(&local.sample_version, p), (&remote.sample_version, 1.0 - p)] {
        if let Err(why) = check_share(version, e.distribution.share(version), n, prob, FALSE_ALARM_RATE) {
            problems.push(why);
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    Ok(())
}

/// Every answer was a helloworld greeting: no 5xx, no connection error.
#[then(expr = "no request gets an error answer")]
async fn no_errors(w: &mut MeshWorld) -> StepResult {
    let e = last(w)?;
    ensure!(
        e.distribution.errors.is_empty(),
        "{} of {} requests failed: {:?}",
        e.distribution.errors.len(),
        e.distribution.requests,
        e.distribution.errors
    );
    Ok(())
}
