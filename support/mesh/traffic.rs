//! Cross-cluster load balancing: requests from a sleep pod through its sidecar,
//! the answers counted per helloworld version, and the check that the split is
//! what the endpoint weights predict (a binomial tolerance, as gateway-api's
//! conformance checks a traffic split).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::kube::exec::exec;

/// The answers of N requests.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Distribution {
    pub requests: usize,
    /// helloworld version -> answers.
    pub versions: BTreeMap<String, usize>,
    /// instance (pod) -> answers.
    pub instances: BTreeMap<String, usize>,
    /// Answers that were not a helloworld greeting (error text, exit codes).
    pub errors: Vec<String>,
}

impl Distribution {
    pub fn record(&mut self, answer: &str) {
        self.requests += 1;
        match parse_hello(answer) {
            Some((version, instance)) => {
                *self.versions.entry(version).or_default() += 1;
                *self.instances.entry(instance).or_default() += 1;
            }
            None => self.errors.push(answer.trim().to_string()),
        }
    }

    pub fn share(&self, version: &str) -> usize {
        self.versions.get(version).copied().unwrap_or(0)
    }
}

/// `Hello version: v1, instance: helloworld-v1-867747c89-7vzwl` -> (v1, pod).
pub fn parse_hello(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("Hello version: ")?;
    let (version, instance) = rest.split_once(", instance: ")?;
    Some((version.to_string(), instance.trim().to_string()))
}

/// The container requests are sent from.
pub struct Source<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
}

/// Requests per curl process: curl fetches several URLs in one run, as a
/// person would with `curl URL URL ...`, which saves an exec per request.
pub const BATCH: usize = 10;
/// Written by curl after each transfer (`-w`), so that bodies without a final
/// newline (Envoy's error texts) and failed transfers are still counted apart.
const MARK: &str = "--meshspec-transfer-end";

/// Send `n` requests to `url` from a container: `curl -sS` with up to `BATCH`
/// URLs per exec, `parallel` execs in flight.
pub async fn curl_from(
    from: &Source<'_>,
    url: &str,
    n: usize,
    parallel: usize,
    timeout: Duration,
) -> Result<Distribution> {
    let batches: Vec<usize> = (0..n).step_by(BATCH).map(|start| BATCH.min(n - start)).collect();
    let write_out = format!("\\n{MARK} %{{http_code}}\\n");
    let results: Vec<Vec<String>> = stream::iter(batches)
        .map(|k| {
            let write_out = write_out.clone();
            async move {
                let mut command = vec!["curl", "-sS", "-w", write_out.as_str()];
                command.extend(std::iter::repeat_n(url, k));
                match exec(from.client, from.namespace, from.pod, from.container, &command, timeout).await {
                    Ok(out) => split_transfers(&out.stdout, &out.stderr, k),
                    Err(e) => vec![format!("exec failed: {e:#}"); k],
                }
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut d = Distribution::default();
    for answer in results.into_iter().flatten() {
        d.record(&answer);
    }
    Ok(d)
}

/// One answer per transfer: the body, or what went wrong (curl's error on stderr).
fn split_transfers(stdout: &str, stderr: &str, expected: usize) -> Vec<String> {
    let mut answers = Vec::new();
    let mut body = String::new();
    for line in stdout.split_inclusive('\n') {
        if let Some(code) = line.trim_end().strip_prefix(MARK) {
            let code = code.trim();
            let text = body.trim().to_string();
            answers.push(if code == "200" && !text.is_empty() {
                text
            } else if code == "000" {
                format!("no HTTP answer: {}", stderr.trim())
            } else {
                format!("HTTP {code}: {text}")
            });
            body.clear();
        } else {
            body.push_str(line);
        }
    }
    while answers.len() < expected {
        answers.push(format!("no answer (curl stopped): {}", stderr.trim()));
    }
    answers
}

/// How far an observed count may stray from `n * p` before the split is called
/// wrong: `z` standard deviations of the binomial, at least one request.
pub fn binomial_tolerance(n: usize, p: f64, z: f64) -> f64 {
    (z * (n as f64 * p * (1.0 - p)).sqrt()).max(1.0)
}

/// Whether `observed` out of `n` fits probability `p`; the Err says how it does not.
pub fn check_share(version: &str, observed: usize, n: usize, p: f64, z: f64) -> Result<(), String> {
    let expected = n as f64 * p;
    let tolerance = binomial_tolerance(n, p, z);
    if (observed as f64 - expected).abs() <= tolerance {
        Ok(())
    } else {
        Err(format!(
            "{version} answered {observed} of {n}; the endpoint weights predict {expected:.1} ± {tolerance:.1} (p = {p:.3})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_counted_and_errors_kept() {
        let mut d = Distribution::default();
        d.record("Hello version: v1, instance: helloworld-v1-867747c89-7vzwl\n");
        d.record("Hello version: v2, instance: helloworld-v2-7f46498c69-5g9rk\n");
        d.record("upstream connect error or disconnect/reset before headers. reset reason: connection timeout");
        assert_eq!((d.share("v1"), d.share("v2"), d.errors.len(), d.requests), (1, 1, 1, 3));
    }

    #[test]
    fn batched_transfers_are_split_into_answers() {
        let stdout = format!(
            "Hello version: v1, instance: a\n\n{MARK} 200\nupstream connect error or disconnect/reset before headers. reset reason: connection timeout\n{MARK} 503\n\n{MARK} 000\n"
        );
        let answers = split_transfers(&stdout, "curl: (28) Operation timed out", 4);
        assert_eq!(answers[0], "Hello version: v1, instance: a");
        assert!(answers[1].starts_with("HTTP 503: upstream connect error"));
        assert!(answers[2].contains("Operation timed out"));
        assert!(answers[3].starts_with("no answer"));
        let mut d = Distribution::default();
        answers.iter().for_each(|a| d.record(a));
        assert_eq!((d.share("v1"), d.errors.len()), (1, 3));
    }

    #[test]
    fn the_binomial_check_accepts_likely_splits_and_refuses_one_sided_ones() {
        // Local weight 3 vs three gateway IPs of weight 1: p = 0.5 for each version.
        assert!(check_share("v1", 10, 20, 0.5, 4.0).is_ok());
        assert!(check_share("v1", 3, 20, 0.5, 4.0).is_ok());
        assert!(check_share("v1", 20, 20, 0.5, 4.0).is_err());
        assert!(check_share("v1", 0, 100, 0.5, 4.0).unwrap_err().contains("predict 50.0"));
        assert!(check_share("v1", 50, 100, 0.5, 4.0).is_ok());
    }
}
