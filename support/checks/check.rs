//! A check is a value: it observes the target once and says what it saw.
//! The caller decides how long to wait ([`until`], [`now`]), as Istio's
//! checkers leave retrying to `retry.UntilSuccess` and kube-runtime's
//! `await_condition` takes a pure condition. Each check writes, next to its
//! `observe`, which observations are definite ([`Observation::Broken`]: a
//! wait ends at once with the diagnosis) and which are transient
//! ([`Observation::Pending`]: waiting may help, until the deadline).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::wait::{Backoff, WaitOptions};

/// Why a check fails and what to do about it: rendered once, by `Display`,
/// and carried as this value everywhere else (reports, sweep, tally).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub cause: String,
    pub fix: String,
}

impl Diagnosis {
    pub fn new(cause: impl std::fmt::Display, fix: impl std::fmt::Display) -> Self {
        Diagnosis { cause: cause.to_string(), fix: fix.to_string() }
    }
}

impl std::fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "diagnosis: {}; fix: {}", self.cause, self.fix)
    }
}

impl std::error::Error for Diagnosis {}

/// What one observation of a check saw.
pub enum Observation<T> {
    /// The fact holds; the evidence of it.
    Holds(T),
    /// Not yet, and waiting may help; what was seen, and the diagnosis to give
    /// if the deadline passes in this state (when the check can name one).
    Pending { seen: String, diagnosis: Option<Diagnosis> },
    /// A definite break: no controller or retry will make the fact hold.
    Broken { seen: String, diagnosis: Diagnosis },
}

impl<T> Observation<T> {
    pub fn pending(seen: impl Into<String>) -> Self {
        Observation::Pending { seen: seen.into(), diagnosis: None }
    }

    pub fn broken(seen: impl Into<String>, diagnosis: Diagnosis) -> Self {
        Observation::Broken { seen: seen.into(), diagnosis }
    }

    pub fn map_holds<U>(self, f: impl FnOnce(T) -> U) -> Observation<U> {
        match self {
            Observation::Holds(v) => Observation::Holds(f(v)),
            Observation::Pending { seen, diagnosis } => Observation::Pending { seen, diagnosis },
            Observation::Broken { seen, diagnosis } => Observation::Broken { seen, diagnosis },
        }
    }
}

/// A fact of the deployment, observed through the target's APIs.
pub trait Check {
    type Evidence;
    /// What is checked, and where: "eks-1: east-west gateway hostname".
    fn name(&self) -> String;
    /// The convergence point it marks when it first holds, if it is one users follow.
    fn point(&self) -> Option<&'static str> {
        None
    }
    /// How long a caller waits for it by default.
    fn deadline(&self, t: &Timeouts) -> Duration;
    /// One observation. An `Err` is an error of the API or the network, taken
    /// as transient (a wait goes on, and reports it as the last state seen).
    fn observe(&self, s: &Session) -> impl Future<Output = anyhow::Result<Observation<Self::Evidence>>> + Send;
}

/// How a check ended without holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// A definite break, reported as soon as it was seen.
    Broken,
    /// Still pending (or erring) when the deadline passed.
    Deadline,
    /// The run was interrupted while waiting.
    Interrupted,
}

/// A check that did not hold: typed, rendered once by `Display`.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
pub struct CheckFailure {
    pub check: String,
    pub ending: Ending,
    /// Seconds from the start of the wait to this failure: the time to diagnosis.
    pub waited: f64,
    pub last_seen: String,
    pub diagnosis: Option<Diagnosis>,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ending {
            Ending::Broken => {
                write!(f, "{}: {} (definite, seen after {:.1}s)", self.check, self.last_seen, self.waited)?
            }
            Ending::Deadline => write!(
                f,
                "timed out after {:.1}s waiting for {}; last seen: {}",
                self.waited, self.check, self.last_seen
            )?,
            Ending::Interrupted => write!(
                f,
                "interrupted after {:.1}s waiting for {}; last seen: {}",
                self.waited, self.check, self.last_seen
            )?,
        }
        if let Some(d) = &self.diagnosis {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// The typed diagnosis in an error chain, wherever a check put it.
pub fn diagnosis_of(e: &anyhow::Error) -> Option<Diagnosis> {
    // anyhow's downcast looks through every context layer; `chain` sees the errors beneath.
    if let Some(f) = e.downcast_ref::<CheckFailure>() {
        return f.diagnosis.clone();
    }
    if let Some(d) = e.downcast_ref::<Diagnosis>() {
        return Some(d.clone());
    }
    e.chain().find_map(|c| {
        c.downcast_ref::<CheckFailure>()
            .and_then(|f| f.diagnosis.clone())
            .or_else(|| c.downcast_ref::<Diagnosis>().cloned())
    })
}

/// What to tell the user about a failure: the diagnosis a check put in the
/// chain, else, when an API kept failing past every retry (throttling, outage,
/// no answer), a diagnosis naming that API. Never used to end a wait early: an
/// API error during a wait is transient until the deadline.
pub fn failure_diagnosis(e: &anyhow::Error) -> Option<Diagnosis> {
    diagnosis_of(e)
        .or_else(|| e.chain().find_map(|c| c.downcast_ref::<crate::wait::WaitTimeout>()?.diagnosis.clone()))
        .or_else(|| api_diagnosis(e))
}

/// A diagnosis for an API that kept failing, named with its service and call.
pub fn api_diagnosis(e: &anyhow::Error) -> Option<Diagnosis> {
    use crate::aws::connect::{AwsCallError, AwsUnreachable};
    use crate::kube::failure::{ApiFailure, Cause};
    const AWS_FIX: &str = "AWS throttled the calls or could not serve them past the SDK's retries: look for other clients using the account's request rate and at the AWS Health Dashboard for the region, then run again";
    const KUBE_FIX: &str = "the API server throttled or failed the calls past the retries: check its health (kubectl get --raw '/readyz?verbose') and API Priority and Fairness rejections (apiserver_flowcontrol_rejected_requests_total), then run again";
    for c in e.chain() {
        if let Some(a) = c.downcast_ref::<AwsCallError>().filter(|a| a.is_service_trouble()) {
            return Some(Diagnosis::new(format!("the AWS API kept failing: {a}"), AWS_FIX));
        }
        if let Some(a) = c.downcast_ref::<AwsUnreachable>() {
            return Some(Diagnosis::new(
                a.to_string(),
                "check the network path to the endpoint (proxy, VPC endpoint, AWS_ENDPOINT_URL) and the region",
            ));
        }
        if let Some(a) = c.downcast_ref::<ApiFailure>() {
            return Some(Diagnosis::new(a.to_string(), KUBE_FIX));
        }
        if let Some(k) = c.downcast_ref::<kube::Error>() {
            let trouble = match crate::kube::failure::cause_of(k) {
                Cause::Status { code, .. } => code == 429 || code >= 500,
                _ => true,
            };
            if trouble {
                return Some(Diagnosis::new(
                    format!("the Kubernetes API kept failing: {}", crate::kube::failure::render(e)),
                    KUBE_FIX,
                ));
            }
        }
    }
    None
}

fn interrupted(check: String, start: Instant, last_seen: String) -> CheckFailure {
    CheckFailure {
        check,
        ending: Ending::Interrupted,
        waited: start.elapsed().as_secs_f64(),
        last_seen,
        diagnosis: None,
    }
}

/// Observe `check` until it holds, breaks, or `deadline` passes.
pub async fn until_within<C: Check>(s: &Session, check: &C, deadline: Duration) -> Result<C::Evidence, CheckFailure> {
    let start = Instant::now();
    let end = start + deadline;
    let name = check.name();
    let mut backoff = Backoff::new(WaitOptions::new(deadline).interval);
    let mut last_seen = String::from("nothing yet");
    let mut last_diagnosis = None;
    // When the API itself kept failing up to the deadline, that is the diagnosis.
    let mut last_error: Option<anyhow::Error> = None;
    let progress = crate::progress::Progress::start(name.clone(), deadline);
    loop {
        // One observation may not outlive the deadline; a single one (`now`) gets one call's time.
        let limit = if deadline.is_zero() {
            s.timeouts.api_call
        } else {
            end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
        };
        let observed = tokio::select! {
            o = tokio::time::timeout(limit, check.observe(s)) => o,
            _ = crate::interrupt::interrupted() => return Err(interrupted(name, start, last_seen)),
        };
        match observed {
            Ok(Ok(Observation::Holds(v))) => {
                s.run.convergence.held(check.point(), &name, start.elapsed());
                return Ok(v);
            }
            Ok(Ok(Observation::Pending { seen, diagnosis })) => {
                last_seen = seen;
                last_diagnosis = diagnosis;
                last_error = None;
            }
            Ok(Ok(Observation::Broken { seen, diagnosis })) => {
                let f = CheckFailure {
                    check: name,
                    ending: Ending::Broken,
                    waited: start.elapsed().as_secs_f64(),
                    last_seen: seen,
                    diagnosis: Some(diagnosis),
                };
                s.run.convergence.failed(&f);
                return Err(f);
            }
            Ok(Err(e)) => {
                last_seen = format!("error: {}", crate::kube::failure::render(&e));
                last_error = Some(e);
            }
            Err(_) => last_seen = format!("{last_seen} (the last observation did not answer in time)"),
        }
        progress.seen(&last_seen);
        let now = Instant::now();
        if now >= end {
            let f = CheckFailure {
                check: name,
                ending: Ending::Deadline,
                waited: start.elapsed().as_secs_f64(),
                last_seen,
                diagnosis: last_diagnosis.or_else(|| last_error.as_ref().and_then(api_diagnosis)),
            };
            s.run.convergence.failed(&f);
            return Err(f);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay().min(end - now)) => {}
            _ = crate::interrupt::interrupted() => return Err(interrupted(name, start, last_seen)),
        }
    }
}

/// Observe `check` until it holds or breaks, within its own deadline.
pub async fn until<C: Check>(s: &Session, check: &C) -> Result<C::Evidence, CheckFailure> {
    until_within(s, check, check.deadline(&s.timeouts)).await
}

/// One observation, no waiting: for a state that must already hold.
pub async fn now<C: Check>(s: &Session, check: &C) -> Result<C::Evidence, CheckFailure> {
    until_within(s, check, Duration::ZERO).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_renders_its_diagnosis_once_and_keeps_it_typed() {
        let f = CheckFailure {
            check: "eks-1: remote secret".into(),
            ending: Ending::Broken,
            waited: 0.02,
            last_seen: "no Secret labelled istio/multiCluster=true".into(),
            diagnosis: Some(Diagnosis::new("no remote secret", "create one")),
        };
        let text = f.to_string();
        assert_eq!(text.matches("diagnosis:").count(), 1, "{text}");
        assert!(text.contains("definite"), "{text}");
        let e = anyhow::Error::new(f).context("outer");
        assert_eq!(diagnosis_of(&e), Some(Diagnosis::new("no remote secret", "create one")));
        let e = anyhow::anyhow!("seen").context(Diagnosis::new("cause", "fix")).context("outer");
        assert_eq!(diagnosis_of(&e), Some(Diagnosis::new("cause", "fix")));
        assert_eq!(diagnosis_of(&anyhow::anyhow!("plain")), None);
    }
}
