//! Steps of features/load_balancing.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::{then, when};

use super::{MeshWorld, StepResult};
use crate::checks::load_balancing::{self as check, LoadBalancingEvidence};

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
    let versions: Vec<String> = w.topology().clusters.iter().map(|c| c.sample_version.clone()).collect();
    last(w)?.every_version_answered(versions.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Each version's count of answers passes an exact two-sided binomial test (false-alarm rate 1e-4) against
/// the split the endpoint weights predict.
/// Refuses a request count too small for the test to catch a skew of 20 points (70/30 where 50/50 is
/// predicted) at least 999 times in 1 000.
#[then(expr = "each version's share passes an exact binomial test against the endpoint weights")]
async fn shares(w: &mut MeshWorld) -> StepResult {
    let remote = w.topology().peer_of(w.cluster()?).sample_version.clone();
    last(w)?.shares_match_weights(&remote).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Every answer was a helloworld greeting: no 5xx, no connection error.
#[then(expr = "no request gets an error answer")]
async fn no_errors(w: &mut MeshWorld) -> StepResult {
    last(w)?.no_error_answers().map_err(anyhow::Error::msg)?;
    Ok(())
}
