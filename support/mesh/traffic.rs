//! Cross-cluster load balancing: requests from a sleep pod through its sidecar,
//! the answers counted per helloworld version, and the check that the split is
//! what the endpoint weights predict. The traffic probe sends its requests
//! through the same curl path, one at a time ([`curl_once`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::kube::exec::exec;

/// What one request got, typed: a greeting, or how it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// A helloworld greeting (`Hello version: v1, instance: POD`).
    Hello { version: String, instance: String },
    /// An HTTP answer that is not a greeting: Envoy's 503 with its reason in
    /// the body (`no healthy upstream`, `upstream connect error ...`), a 404.
    Http { status: u16, body: String },
    /// No HTTP answer at all: curl's own error (exit 7, 28, 56 ...).
    NoHttp { curl: String },
    /// curl ended before it reached this transfer; what it printed on stderr.
    CurlStopped { stderr: String },
    /// The exec into the pod failed or missed its deadline.
    Exec { error: String },
}

impl Answer {
    /// The helloworld version that answered, if one did.
    pub fn version(&self) -> Option<&str> {
        match self {
            Answer::Hello { version, .. } => Some(version),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.version().is_none()
    }
}

// As the answers read in the reports: the greeting itself, or the error as before.
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Hello { version, instance } => write!(f, "Hello version: {version}, instance: {instance}"),
            Answer::Http { status, body } => write!(f, "HTTP {status:03}: {body}"),
            Answer::NoHttp { curl } => write!(f, "no HTTP answer: {curl}"),
            Answer::CurlStopped { stderr } => write!(f, "no answer (curl stopped): {stderr}"),
            Answer::Exec { error } => write!(f, "exec failed: {error}"),
        }
    }
}

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
    pub fn record(&mut self, answer: &Answer) {
        self.requests += 1;
        match answer {
            Answer::Hello { version, instance } => {
                *self.versions.entry(version.clone()).or_default() += 1;
                *self.instances.entry(instance.clone()).or_default() += 1;
            }
            other => self.errors.push(other.to_string()),
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
    let results: Vec<Vec<Answer>> = stream::iter(batches)
        .map(|k| curl_batch(from, url, k, timeout))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let mut d = Distribution::default();
    for answer in results.iter().flatten() {
        d.record(answer);
    }
    Ok(d)
}

/// One request to `url` from a container, as [`curl_from`] sends each: one
/// answer, whatever happened, within `timeout`.
pub async fn curl_once(from: &Source<'_>, url: &str, timeout: Duration) -> Answer {
    let mut answers = curl_batch(from, url, 1, timeout).await;
    answers.pop().unwrap_or_else(|| Answer::CurlStopped { stderr: String::new() })
}

/// One exec of `curl -sS URL...` with `k` URLs: `k` answers.
async fn curl_batch(from: &Source<'_>, url: &str, k: usize, timeout: Duration) -> Vec<Answer> {
    let write_out = format!("\\n{MARK} %{{http_code}}\\n");
    let mut command = vec!["curl", "-sS", "-w", write_out.as_str()];
    command.extend(std::iter::repeat_n(url, k));
    match exec(from.client, from.namespace, from.pod, from.container, &command, timeout).await {
        Ok(out) => split_transfers(&out.stdout, &out.stderr, k),
        Err(e) => vec![Answer::Exec { error: crate::kube::failure::render(&e) }; k],
    }
}

/// One answer per transfer: the greeting, or what went wrong (curl's error on stderr).
fn split_transfers(stdout: &str, stderr: &str, expected: usize) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut body = String::new();
    for line in stdout.split_inclusive('\n') {
        if let Some(code) = line.trim_end().strip_prefix(MARK) {
            let code = code.trim();
            let text = body.trim().to_string();
            answers.push(match (code, code.parse::<u16>(), parse_hello(&text)) {
                ("200", _, Some((version, instance))) => Answer::Hello { version, instance },
                // curl writes 000 when no HTTP response came.
                (_, Ok(0), _) | (_, Err(_), _) => Answer::NoHttp { curl: stderr.trim().to_string() },
                (_, Ok(status), _) => Answer::Http { status, body: text },
            });
            body.clear();
        } else {
            body.push_str(line);
        }
    }
    while answers.len() < expected {
        answers.push(Answer::CurlStopped { stderr: stderr.trim().to_string() });
    }
    answers
}

/// The counts of one version, out of `n` answers, that an exact two-sided
/// binomial test at false-alarm rate `alpha` accepts when each answer comes
/// from that version with probability `p`: `lo..=hi`, with at most `alpha / 2`
/// of the probability below `lo` and at most `alpha / 2` above `hi`.
pub fn binomial_acceptance(n: usize, p: f64, alpha: f64) -> (usize, usize) {
    let pmf = binomial_pmf(n, p);
    let (mut lo, mut below) = (0, 0.0);
    while lo < n && below + pmf[lo] <= alpha / 2.0 {
        below += pmf[lo];
        lo += 1;
    }
    let (mut hi, mut above) = (n, 0.0);
    while hi > lo && above + pmf[hi] <= alpha / 2.0 {
        above += pmf[hi];
        hi -= 1;
    }
    (lo, hi)
}

/// P(X = k) for k in 0..=n, X ~ Binomial(n, p), computed in log space so that
/// thousands of requests do not underflow.
fn binomial_pmf(n: usize, p: f64) -> Vec<f64> {
    if p <= 0.0 || p >= 1.0 {
        let mut pmf = vec![0.0; n + 1];
        pmf[if p <= 0.0 { 0 } else { n }] = 1.0;
        return pmf;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) built up term by term.
    let mut ln_choose = 0.0;
    (0..=n)
        .map(|k| {
            if k > 0 {
                ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
            }
            (ln_choose + k as f64 * lp + (n - k) as f64 * lq).exp()
        })
        .collect()
}

/// The probability that the test of [`binomial_acceptance`] (built for `p`)
/// accepts when answers really come with probability `actual`: one minus its power.
pub fn binomial_miss_rate(n: usize, p: f64, alpha: f64, actual: f64) -> f64 {
    let (lo, hi) = binomial_acceptance(n, p, alpha);
    binomial_pmf(n, actual)[lo..=hi].iter().sum()
}

/// Whether `observed` of `n` answers fits probability `p` at false-alarm rate
/// `alpha`; the Err says how it does not.
pub fn check_share(version: &str, observed: usize, n: usize, p: f64, alpha: f64) -> Result<(), String> {
    let (lo, hi) = binomial_acceptance(n, p, alpha);
    if (lo..=hi).contains(&observed) {
        Ok(())
    } else {
        Err(format!(
            "{version} answered {observed} of {n}; the endpoint weights predict {:.1} (p = {p:.3}), and an exact binomial test with a false-alarm rate of {alpha:e} accepts {lo} to {hi}",
            n as f64 * p
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_counted_and_errors_kept() {
        let hello = |v: &str, i: &str| Answer::Hello { version: v.into(), instance: i.into() };
        let mut d = Distribution::default();
        d.record(&hello("v1", "helloworld-v1-867747c89-7vzwl"));
        d.record(&hello("v2", "helloworld-v2-7f46498c69-5g9rk"));
        d.record(&Answer::Http {
            status: 503,
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection timeout".into(),
        });
        assert_eq!((d.share("v1"), d.share("v2"), d.errors.len(), d.requests), (1, 1, 1, 3));
        assert_eq!(
            d.errors[0],
            "HTTP 503: upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
        );
    }

    #[test]
    fn batched_transfers_are_split_into_typed_answers() {
        let stdout = format!(
            "Hello version: v1, instance: a\n\n{MARK} 200\nupstream connect error or disconnect/reset before headers. reset reason: connection timeout\n{MARK} 503\n\n{MARK} 000\nnot a greeting\n{MARK} 200\n"
        );
        let answers = split_transfers(&stdout, "curl: (28) Operation timed out", 5);
        assert_eq!(answers[0], Answer::Hello { version: "v1".into(), instance: "a".into() });
        assert_eq!(answers[0].version(), Some("v1"));
        assert!(
            matches!(&answers[1], Answer::Http { status: 503, body } if body.starts_with("upstream connect error"))
        );
        assert!(answers[1].to_string().starts_with("HTTP 503: upstream connect error"));
        assert_eq!(answers[2], Answer::NoHttp { curl: "curl: (28) Operation timed out".into() });
        assert!(answers[2].to_string().contains("Operation timed out"));
        assert_eq!(
            answers[3],
            Answer::Http { status: 200, body: "not a greeting".into() },
            "a 200 that is no greeting"
        );
        assert!(answers[4].to_string().starts_with("no answer") && answers[4].is_error());
        let mut d = Distribution::default();
        answers.iter().for_each(|a| d.record(a));
        assert_eq!((d.share("v1"), d.errors.len()), (1, 4));
    }

    #[test]
    fn answers_serialize_with_their_kind() {
        let a = Answer::Http { status: 503, body: "no healthy upstream".into() };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "http", "status": 503, "body": "no healthy upstream"}));
        assert_eq!(serde_json::from_value::<Answer>(v).unwrap(), a);
    }

    #[test]
    fn the_binomial_check_accepts_likely_splits_and_refuses_one_sided_ones() {
        // Local weight 3 vs three gateway IPs of weight 1: p = 0.5 for each version.
        let alpha = crate::checks::load_balancing::FALSE_ALARM_RATE;
        let n = crate::checks::load_balancing::REQUESTS;
        assert!(check_share("v1", n / 2, n, 0.5, alpha).is_ok());
        assert!(check_share("v1", n, n, 0.5, alpha).is_err());
        assert!(check_share("v1", 0, n, 0.5, alpha).unwrap_err().contains("predict 150.0"));
        let (lo, hi) = binomial_acceptance(n, 0.5, alpha);
        assert_eq!(lo + hi, n, "symmetric around n/2 for p = 0.5");
        assert!(check_share("v1", lo, n, 0.5, alpha).is_ok() && check_share("v1", lo - 1, n, 0.5, alpha).is_err());
    }

    #[test]
    fn the_exact_test_keeps_its_false_alarm_rate_and_catches_a_70_30_skew() {
        let alpha = crate::checks::load_balancing::FALSE_ALARM_RATE;
        let n = crate::checks::load_balancing::REQUESTS;
        // Exactly: a true 50/50 split is refused at most alpha of the time...
        let false_alarms = 1.0 - binomial_miss_rate(n, 0.5, alpha, 0.5);
        assert!(false_alarms <= alpha && false_alarms > alpha / 10.0, "{false_alarms}");
        // ...and a 70/30 or 30/70 skew passes less than once in a thousand runs.
        assert!(binomial_miss_rate(n, 0.5, alpha, 0.7) < 1e-3, "{}", binomial_miss_rate(n, 0.5, alpha, 0.7));
        assert!(binomial_miss_rate(n, 0.5, alpha, 0.3) < 1e-3);
        // The old check (20 requests, 4 standard deviations) accepted 2 to 18.
        assert!(binomial_miss_rate(20, 0.5, alpha, 0.7) > 0.99);
        // Drawn: 2000 simulated runs of a 70/30 skew, each refused.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let caught = (0..2000)
            .filter(|_| {
                let v1 = (0..n).filter(|_| rng.random_bool(0.7)).count();
                check_share("v1", v1, n, 0.5, alpha).is_err()
            })
            .count();
        assert!(caught >= 1995, "caught {caught} of 2000");
    }

    #[test]
    fn the_pmf_sums_to_one_and_handles_certain_outcomes() {
        for (n, p) in [(1, 0.5), (300, 0.5), (300, 0.75), (5000, 0.1)] {
            let total: f64 = binomial_pmf(n, p).iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{n} {p}: {total}");
        }
        assert_eq!(binomial_acceptance(10, 1.0, 1e-4), (10, 10));
        assert_eq!(binomial_acceptance(10, 0.0, 1e-4), (0, 0));
    }
}
