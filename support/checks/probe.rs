//! Checks on the traffic probe's timeline (`mesh::probe`): no request failed;
//! failures only inside a window between two marks; both helloworld versions
//! answering every cluster again within a stated time of a mark; both
//! versions answering every cluster at all; and the wait for N answers.
//!
//! A check judges the requests sent up to the instant it was made (the step's
//! instant): a request sent by then and still in flight is waited for, at
//! most its deadline; requests sent later are not its business. A failed
//! request is definite: no wait brings it back.
//!
//! Each rule is a function of a timeline ([`no_failure`], [`failures_only_between`],
//! [`answered_again`], [`every_version_answered`], [`answers`]), so that the
//! unit tests judge built timelines; the `Check` values apply them to a
//! running probe's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::check::{self, Check, Diagnosis, Observation};
use super::sync::HelloworldEndpoints;
use crate::mesh::probe::{At, Mark, Probe, ProbeError, ProbeRequest, ProbeView, Settings, Source, Timeline};
use crate::mesh::traffic::Answer;
use crate::run::Session;
use crate::timeouts::Timeouts;

/// Start a probe from every cluster's sleep pod to `url`, once each sidecar
/// holds both networks' helloworld endpoints: the pod found and awaited as the
/// load-balancing check finds it, so that the probe starts on a converged mesh.
pub async fn start(session: &Session, url: &str) -> Result<Probe> {
    let waits = session.topology.clusters.iter().map(|c| async move {
        let synced = check::until(session, &HelloworldEndpoints(c.clone())).await?;
        let client = session.kube(&c.name).await?;
        Ok::<_, anyhow::Error>(Source { cluster: c.name.clone(), client, pod: synced.pod })
    });
    let sources = futures::future::try_join_all(waits).await?;
    let settings = Settings {
        url: url.to_string(),
        interval: session.timeouts.probe_interval,
        deadline: session.timeouts.api_call,
        time_scale: session.timeouts.time_scale,
    };
    Ok(Probe::start(sources, settings)?)
}

/// Answers of one cluster's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterCounts {
    pub requests: usize,
    pub failed: usize,
    /// helloworld version -> answers.
    pub versions: BTreeMap<String, usize>,
}

/// Answers per source cluster, and per version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProbeCounts {
    pub clusters: BTreeMap<String, ClusterCounts>,
}

impl ProbeCounts {
    fn of<'a>(t: &Timeline, requests: impl Iterator<Item = &'a ProbeRequest>) -> Self {
        let mut clusters: BTreeMap<String, ClusterCounts> =
            t.clusters().map(|c| (c.to_string(), ClusterCounts::default())).collect();
        for r in requests {
            let c = clusters.entry(r.cluster.clone()).or_default();
            c.requests += 1;
            match r.answer.version() {
                Some(v) => *c.versions.entry(v.to_string()).or_default() += 1,
                None => c.failed += 1,
            }
        }
        ProbeCounts { clusters }
    }

    fn summary(&self) -> String {
        self.clusters
            .iter()
            .map(|(c, n)| format!("{c}: {} requests, {} failed, answered by {:?}", n.requests, n.failed, n.versions))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The requests a check made at `as_of` judges: those sent by then.
fn judged(t: &Timeline, as_of: f64) -> impl Iterator<Item = &ProbeRequest> {
    t.requests.iter().filter(move |r| r.sent.s <= as_of)
}

/// A request sent by `as_of` and not answered yet (none once the probe stopped:
/// stopping answers every request).
fn awaited(t: &Timeline, as_of: f64) -> Option<String> {
    t.in_flight
        .iter()
        .find(|f| f.sent.s <= as_of)
        .map(|f| format!("the answer to {}'s request sent at {}", f.cluster, f.sent))
}

/// `sent at 2.500 s (simulated 2500 s), 0.700 s after "new NLB healthy"`.
fn when(t: &Timeline, at: At) -> String {
    let last = t.marks.iter().filter(|m| m.at.s <= at.s).max_by(|a, b| a.at.s.total_cmp(&b.at.s));
    match last {
        Some(m) => format!("{at}, {} after {:?}", span(m.at, at), m.name),
        None if t.marks.is_empty() => at.to_string(),
        None => format!("{at}, before any mark"),
    }
}

/// The time from `a` to `b` on the probe's clocks, as `At` reads.
fn span(a: At, b: At) -> At {
    At { s: b.s - a.s, simulated_s: a.simulated_s.zip(b.simulated_s).map(|(x, y)| y - x) }
}

fn pod_of<'a>(t: &'a Timeline, cluster: &str) -> &'a str {
    t.sources.iter().find(|s| s.cluster == cluster).map(|s| s.pod.as_str()).unwrap_or("the sleep pod")
}

/// What to do about a failed answer, by what it was.
fn fix_for(t: &Timeline, r: &ProbeRequest) -> String {
    let pod = pod_of(t, &r.cluster);
    let endpoints = format!(
        "meshspec proxy-config endpoint {pod} -n sample --cluster \"outbound|5000||helloworld.sample.svc.cluster.local\""
    );
    match &r.answer {
        // Envoy's router answers 503 "no healthy upstream" when the cluster has no
        // healthy host (source/common/router/router.cc, sendNoHealthyUpstreamResponse).
        Answer::Http { status: 503, body } if body.starts_with("no healthy upstream") => format!(
            "the sidecar of {pod} in {} held no healthy helloworld endpoint then: compare `{endpoints}` with the helloworld pods and the other network's gateway at that time",
            r.cluster
        ),
        // ... and "upstream connect error or disconnect/reset before headers" when
        // the connection to the host it chose failed; the reset reason follows.
        Answer::Http { status: 503, body } if body.starts_with("upstream connect error") => format!(
            "an endpoint the sidecar of {pod} in {} held did not take the connection (the reset reason says how): a gateway address istiod still held, an NLB whose targets were not healthy, a pod IP of the other network, or a peer with another root; look at `{endpoints}` and the east-west gateway's target health at that time",
            r.cluster
        ),
        Answer::Http { status, .. } => format!(
            "something on the path answered {status} instead of helloworld: look at the helloworld pods and the routes for helloworld.sample seen from {}",
            r.cluster
        ),
        Answer::NoHttp { .. } | Answer::CurlStopped { .. } => format!(
            "curl in {pod} got no HTTP answer from its sidecar (curl's error says why): look at the pod's istio-proxy container in {}",
            r.cluster
        ),
        Answer::Exec { .. } => format!(
            "the request was not sent: the exec into {pod} through the API server of {} failed (not a failure of the mesh); check that API server and the pod",
            r.cluster
        ),
        Answer::Hello { .. } => String::new(),
    }
}

/// `eks-1's request sent at 1.234 s, 0.2 s after "x", got HTTP 503: no healthy upstream`.
fn failure_line(t: &Timeline, r: &ProbeRequest) -> String {
    format!("{}'s request sent at {} got {}", r.cluster, when(t, r.sent), r.answer)
}

/// Failed requests as a diagnosis: how many, the first of them (when and
/// what) and what to do about it.
fn failures_diagnosis(t: &Timeline, failed: &[&ProbeRequest], of: usize, context: &str) -> Diagnosis {
    let first = failed[0];
    let mut cause =
        format!("{} of {of} probe requests failed{context}; the first: {}", failed.len(), failure_line(t, first));
    if failed.len() > 1 {
        cause.push_str(&format!("; the last: {}", failure_line(t, failed[failed.len() - 1])));
    }
    Diagnosis::new(cause, fix_for(t, first))
}

/// No request sent by `as_of` failed. Evidence: the answers per cluster and version.
pub fn no_failure(t: &Timeline, as_of: f64) -> Observation<ProbeCounts> {
    let mut failed: Vec<&ProbeRequest> = judged(t, as_of).filter(|r| r.answer.is_error()).collect();
    let counts = ProbeCounts::of(t, judged(t, as_of));
    if !failed.is_empty() {
        failed.sort_by(|a, b| a.sent.s.total_cmp(&b.sent.s));
        let n = judged(t, as_of).count();
        return Observation::broken(counts.summary(), failures_diagnosis(t, &failed, n, ""));
    }
    match awaited(t, as_of) {
        Some(w) => Observation::pending(format!("waiting for {w}; so far {}", counts.summary())),
        None => Observation::Holds(counts),
    }
}

/// Failures inside a window between two marks, and none outside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowEvidence {
    pub from: Mark,
    pub to: Mark,
    /// Failed requests in flight during the window, per cluster.
    pub failed_inside: BTreeMap<String, usize>,
    /// When the first and the last of them were sent.
    pub first_failure: Option<At>,
    pub last_failure: Option<At>,
    pub counts: ProbeCounts,
}

/// Every request sent by `as_of` that failed was in flight at some instant
/// between the marks `from` and `to`: sent at or before `to` and answered at
/// or after `from`. A request already out when the operation began may fail
/// by it, and so may one sent just before the window closed.
pub fn failures_only_between(t: &Timeline, from: &str, to: &str, as_of: f64) -> Observation<WindowEvidence> {
    let (a, b) = match (t.mark(from), t.mark(to)) {
        (Ok(a), Ok(b)) => (a.clone(), b.clone()),
        (Err(e), _) | (_, Err(e)) => {
            let missing = match &e {
                ProbeError::NoMark { name, .. } => name.clone(),
                other => other.to_string(),
            };
            return Observation::broken(
                e.to_string(),
                Diagnosis::new(
                    format!("the window's mark is missing: {e}"),
                    format!("mark it with `When the probe marks \"{missing}\"` before this step"),
                ),
            );
        }
    };
    if b.at.s < a.at.s {
        return Observation::broken(
            format!("{from:?} at {}, {to:?} at {}", a.at, b.at),
            Diagnosis::new(
                format!("the window ends before it begins: {to:?} was marked before {from:?}"),
                "name the earlier mark first",
            ),
        );
    }
    let counts = ProbeCounts::of(t, judged(t, as_of));
    let (mut inside, mut outside): (Vec<&ProbeRequest>, Vec<&ProbeRequest>) =
        judged(t, as_of).filter(|r| r.answer.is_error()).partition(|r| r.answered.s >= a.at.s && r.sent.s <= b.at.s);
    outside.sort_by(|x, y| x.sent.s.total_cmp(&y.sent.s));
    inside.sort_by(|x, y| x.sent.s.total_cmp(&y.sent.s));
    if !outside.is_empty() {
        let n = judged(t, as_of).count();
        let context = format!(" outside the window from {from:?} ({}) to {to:?} ({})", a.at, b.at);
        return Observation::broken(counts.summary(), failures_diagnosis(t, &outside, n, &context));
    }
    if let Some(w) = awaited(t, as_of) {
        return Observation::pending(format!("waiting for {w}; so far {}", counts.summary()));
    }
    let mut failed_inside: BTreeMap<String, usize> = t.clusters().map(|c| (c.to_string(), 0)).collect();
    for r in &inside {
        *failed_inside.entry(r.cluster.clone()).or_default() += 1;
    }
    Observation::Holds(WindowEvidence {
        from: a,
        to: b,
        failed_inside,
        first_failure: inside.first().map(|r| r.sent),
        last_failure: inside.last().map(|r| r.sent),
        counts,
    })
}

/// When a cluster was answered by every version again after a mark.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterRecovery {
    /// From the mark to the answer that completed the set of versions.
    pub after: At,
    /// Requests sent after the mark until then, and how many of them failed.
    pub requests: usize,
    pub failed: usize,
}

/// How long every cluster took to be answered by both versions again.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recovery {
    pub mark: Mark,
    pub versions: Vec<String>,
    /// The duration the feature states, and the wall time it is given on the target.
    pub stated_s: f64,
    pub allowed_s: f64,
    pub clusters: BTreeMap<String, ClusterRecovery>,
    /// The slowest cluster's time.
    pub after: At,
}

/// Every cluster's requests sent after `mark` were answered by every one of
/// `versions` within `allowed` (wall time; the answer's arrival counts) of the
/// mark. Pending while that may still happen; definite once `allowed` passed
/// (at `now`) or the probe stopped.
pub fn answered_again(
    t: &Timeline,
    mark: &str,
    versions: &[String],
    stated: Duration,
    allowed: Duration,
    now: At,
) -> Observation<Recovery> {
    let m = match t.mark(mark) {
        Ok(m) => m.clone(),
        Err(e) => {
            return Observation::broken(
                e.to_string(),
                Diagnosis::new(
                    format!("the mark is missing: {e}"),
                    format!("mark it with `When the probe marks \"{mark}\"` before this step"),
                ),
            )
        }
    };
    let want: BTreeSet<&str> = versions.iter().map(String::as_str).collect();
    let mut clusters = BTreeMap::new();
    let mut missing = Vec::new();
    for c in t.clusters() {
        let mut after: Vec<&ProbeRequest> =
            t.requests.iter().filter(|r| r.cluster == c && r.sent.s >= m.at.s).collect();
        after.sort_by(|a, b| a.answered.s.total_cmp(&b.answered.s));
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut done = None;
        for (i, r) in after.iter().enumerate() {
            if let Some(v) = r.answer.version().filter(|v| want.contains(v)) {
                seen.insert(v);
            }
            if seen.len() == want.len() {
                done = Some((i + 1, r.answered));
                break;
            }
        }
        match done {
            Some((n, at)) => {
                let failed = after[..n].iter().filter(|r| r.answer.is_error()).count();
                clusters.insert(c.to_string(), ClusterRecovery { after: span(m.at, at), requests: n, failed });
            }
            None => missing.push((c, after, seen)),
        }
    }
    let allowed_s = allowed.as_secs_f64();
    let stated_text = format!("{stated:?}");
    let allowance = if (allowed_s - stated.as_secs_f64()).abs() < 1e-9 {
        stated_text.clone()
    } else {
        format!("{allowed_s:.3} s, the stated {stated_text} on this target's clock")
    };
    if missing.is_empty() {
        let slowest = clusters
            .values()
            .map(|c| c.after)
            .max_by(|a, b| a.s.total_cmp(&b.s))
            .unwrap_or(At { s: 0.0, simulated_s: None });
        let recovery = Recovery {
            mark: m.clone(),
            versions: versions.to_vec(),
            stated_s: stated.as_secs_f64(),
            allowed_s,
            clusters,
            after: slowest,
        };
        if slowest.s <= allowed_s {
            return Observation::Holds(recovery);
        }
        return Observation::broken(
            format!("answered by {versions:?} again {slowest} after {mark:?}"),
            Diagnosis::new(
                format!(
                    "every cluster was answered by {versions:?} again only {slowest} after {mark:?}, later than the {allowance} allowed"
                ),
                "find what kept the other network away that long on the probe's timeline (the failures and the marks), or state the time the operation really takes",
            ),
        );
    }
    let elapsed = now.s - m.at.s;
    let seen = missing
        .iter()
        .map(|(c, after, seen)| format!("{c}: {} requests since {mark:?}, answered by {seen:?}", after.len()))
        .collect::<Vec<_>>()
        .join("; ");
    if elapsed <= allowed_s && t.stopped.is_none() {
        return Observation::pending(seen);
    }
    let (c, after, got) = &missing[0];
    let absent: Vec<&str> = want.difference(got).copied().collect();
    let last_failure = after.iter().rev().find(|r| r.answer.is_error());
    let ended = if t.stopped.is_some() && elapsed <= allowed_s { " before the probe stopped" } else { "" };
    let mut cause = format!(
        "{absent:?} did not answer {c}'s probe in the {} after {mark:?}{ended} (allowed: {allowance}): {} requests, {} failed",
        span(m.at, now),
        after.len(),
        after.iter().filter(|r| r.answer.is_error()).count()
    );
    let fix = match last_failure {
        Some(r) => {
            cause.push_str(&format!("; the last failure: {}", failure_line(t, r)));
            fix_for(t, r)
        }
        None => format!(
            "every request was answered, by {got:?} only: the sidecar of {} held no endpoint of the other version; look at its endpoints (meshspec proxy-config endpoint) and istiod's view of the other cluster (clusterz)",
            pod_of(t, c)
        ),
    };
    Observation::broken(seen, Diagnosis::new(cause, fix))
}

/// Each cluster's requests sent by `as_of` were answered by every one of `versions`.
pub fn every_version_answered(t: &Timeline, versions: &[String], as_of: f64) -> Observation<ProbeCounts> {
    let counts = ProbeCounts::of(t, judged(t, as_of));
    let silent: Vec<String> = counts
        .clusters
        .iter()
        .flat_map(|(c, n)| {
            versions.iter().filter(|v| !n.versions.contains_key(*v)).map(move |v| format!("{v} never answered {c}"))
        })
        .collect();
    if silent.is_empty() {
        return Observation::Holds(counts);
    }
    Observation::broken(
        counts.summary(),
        Diagnosis::new(
            format!("{}: {}", silent.join(", "), counts.summary()),
            "a cluster answered only by its own version holds no endpoint of the other network: look at its sleep pod's endpoints (meshspec proxy-config endpoint) and istiod's view of the other cluster (clusterz)",
        ),
    )
}

/// One cluster's answers while the other cluster was out of its istiod's view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalOnlyEvidence {
    pub cluster: String,
    pub version: String,
    pub from: Mark,
    pub to: Mark,
    /// Requests sent at or after `from` and answered by `to`: all answered by `version`.
    pub requests: usize,
}

/// Every request of `cluster` wholly inside the window (sent at or after the
/// mark `from`, answered at or before `to`) was answered by `version`, and
/// none failed. Requests in flight at either edge are not judged here (the
/// no-failure check judges every request). Definite either way: the window
/// is closed once both marks exist; a window with no whole request in it
/// judged nothing and fails.
pub fn only_version_between(
    t: &Timeline,
    cluster: &str,
    version: &str,
    from: &str,
    to: &str,
) -> Observation<LocalOnlyEvidence> {
    let (a, b) = match (t.mark(from), t.mark(to)) {
        (Ok(a), Ok(b)) => (a.clone(), b.clone()),
        (Err(e), _) | (_, Err(e)) => {
            let missing = match &e {
                ProbeError::NoMark { name, .. } => name.clone(),
                other => other.to_string(),
            };
            return Observation::broken(
                e.to_string(),
                Diagnosis::new(
                    format!("the window's mark is missing: {e}"),
                    format!("mark it with `When the probe marks \"{missing}\"` before this step"),
                ),
            );
        }
    };
    let mut inside: Vec<&ProbeRequest> =
        t.requests.iter().filter(|r| r.cluster == cluster && r.sent.s >= a.at.s && r.answered.s <= b.at.s).collect();
    inside.sort_by(|x, y| x.sent.s.total_cmp(&y.sent.s));
    let seen = format!("{} requests of {cluster} between {from:?} ({}) and {to:?} ({})", inside.len(), a.at, b.at);
    if inside.is_empty() {
        return Observation::broken(
            seen,
            Diagnosis::new(
                format!("no request of {cluster} was sent and answered between {from:?} and {to:?}: nothing to judge"),
                "leave the probe time between the marks (`When the probe has N answers from every cluster since \"MARK\"`)",
            ),
        );
    }
    if let Some(r) = inside.iter().find(|r| r.answer.is_error()) {
        let n = inside.iter().filter(|r| r.answer.is_error()).count();
        return Observation::broken(
            seen,
            Diagnosis::new(
                format!(
                    "{n} of {} requests of {cluster} failed between {from:?} and {to:?}; the first: {}",
                    inside.len(),
                    failure_line(t, r)
                ),
                fix_for(t, r),
            ),
        );
    }
    if let Some(r) = inside.iter().find(|r| r.answer.version() != Some(version)) {
        let others: BTreeSet<&str> =
            inside.iter().filter_map(|r| r.answer.version()).filter(|v| *v != version).collect();
        return Observation::broken(
            seen,
            Diagnosis::new(
                format!(
                    "{cluster}'s probe was answered by {others:?} between {from:?} and {to:?}, not only by its own {version}; the first: {}",
                    failure_line(t, r)
                ),
                format!(
                    "the sidecar of {} still held the other cluster's endpoints: istiod there still reads the other cluster (is its remote secret really gone? kubectl get secrets -n istio-system -l istio/multiCluster=true; clusterz)",
                    pod_of(t, cluster)
                ),
            ),
        );
    }
    Observation::Holds(LocalOnlyEvidence {
        cluster: cluster.to_string(),
        version: version.to_string(),
        from: a,
        to: b,
        requests: inside.len(),
    })
}

/// Each cluster's sleep pod has had `n` requests answered (or failed) that
/// were sent after the mark `since`.
pub fn answers_since(t: &Timeline, n: usize, since: &str) -> Observation<ProbeCounts> {
    let m = match t.mark(since) {
        Ok(m) => m.at.s,
        Err(e) => {
            return Observation::broken(
                e.to_string(),
                Diagnosis::new(
                    format!("the mark is missing: {e}"),
                    format!("mark it with `When the probe marks \"{since}\"` before this step"),
                ),
            )
        }
    };
    let mut after = t.clone();
    after.requests.retain(|r| r.sent.s >= m);
    answers(&after, n)
}

/// Each cluster's sleep pod has had `n` requests answered (or failed).
pub fn answers(t: &Timeline, n: usize) -> Observation<ProbeCounts> {
    let counts = ProbeCounts::of(t, t.requests.iter());
    let short: Vec<String> = counts
        .clusters
        .iter()
        .filter(|(_, c)| c.requests < n)
        .map(|(name, c)| format!("{name}: {} of {n}", c.requests))
        .collect();
    if short.is_empty() {
        return Observation::Holds(counts);
    }
    match &t.stopped {
        Some(s) => Observation::broken(
            short.join(", "),
            Diagnosis::new(
                format!("the probe was stopped ({} at {}) before {n} answers: {}", s.by, s.at, short.join(", ")),
                "wait for the answers while the probe runs",
            ),
        ),
        None => Observation::pending(short.join(", ")),
    }
}

/// The margin a check on a running probe gives its last request to come back.
fn in_flight_deadline(p: &ProbeView) -> Duration {
    p.settings().deadline + p.settings().interval + Duration::from_secs(1)
}

/// No probe request sent before this check was made failed.
pub struct NoFailedRequest {
    pub probe: ProbeView,
    pub as_of: At,
}

impl NoFailedRequest {
    pub fn new(probe: ProbeView) -> Self {
        let as_of = probe.now();
        NoFailedRequest { probe, as_of }
    }
}

impl Check for NoFailedRequest {
    type Evidence = ProbeCounts;

    fn name(&self) -> String {
        format!("the traffic probe: no request failed up to {}", self.as_of)
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        in_flight_deadline(&self.probe)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<ProbeCounts>> {
        Ok(no_failure(&self.probe.snapshot(), self.as_of.s))
    }
}

/// Probe requests failed only while the window between two marks was open.
pub struct FailuresOnlyBetween {
    pub probe: ProbeView,
    pub from: String,
    pub to: String,
    pub as_of: At,
}

impl FailuresOnlyBetween {
    pub fn new(probe: ProbeView, from: &str, to: &str) -> Self {
        let as_of = probe.now();
        FailuresOnlyBetween { probe, from: from.to_string(), to: to.to_string(), as_of }
    }
}

impl Check for FailuresOnlyBetween {
    type Evidence = WindowEvidence;

    fn name(&self) -> String {
        format!("the traffic probe: failures only between {:?} and {:?}", self.from, self.to)
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        in_flight_deadline(&self.probe)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<WindowEvidence>> {
        Ok(failures_only_between(&self.probe.snapshot(), &self.from, &self.to, self.as_of.s))
    }
}

/// Both versions answer every cluster's probe again within a stated time of a mark.
pub struct AnsweredAgain {
    pub probe: ProbeView,
    pub mark: String,
    pub versions: Vec<String>,
    /// As the feature states it, and as the target's clock gives it (wall time).
    pub stated: Duration,
    pub allowed: Duration,
}

impl AnsweredAgain {
    pub fn new(probe: ProbeView, mark: &str, versions: Vec<String>, stated: Duration, t: &Timeouts) -> Self {
        AnsweredAgain { probe, mark: mark.to_string(), versions, stated, allowed: t.stated(stated) }
    }
}

impl Check for AnsweredAgain {
    type Evidence = Recovery;

    fn name(&self) -> String {
        format!(
            "the traffic probe: {:?} answer every cluster again within {:?} of {:?}",
            self.versions, self.stated, self.mark
        )
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        // Counted from the mark, which is behind: the observation turns definite
        // once the allowance has passed, well within this.
        self.allowed + in_flight_deadline(&self.probe)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<Recovery>> {
        let now = self.probe.now();
        Ok(answered_again(&self.probe.snapshot(), &self.mark, &self.versions, self.stated, self.allowed, now))
    }
}

/// Every version answered every cluster's probe, up to this check's instant.
pub struct EveryVersionAnswered {
    pub probe: ProbeView,
    pub versions: Vec<String>,
    pub as_of: At,
}

impl EveryVersionAnswered {
    pub fn new(probe: ProbeView, versions: Vec<String>) -> Self {
        let as_of = probe.now();
        EveryVersionAnswered { probe, versions, as_of }
    }
}

impl Check for EveryVersionAnswered {
    type Evidence = ProbeCounts;

    fn name(&self) -> String {
        format!("the traffic probe: {:?} answered every cluster", self.versions)
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        in_flight_deadline(&self.probe)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<ProbeCounts>> {
        Ok(every_version_answered(&self.probe.snapshot(), &self.versions, self.as_of.s))
    }
}

/// The probe has `n` answers from every cluster (sent after a mark, if one is named).
pub struct Answers {
    pub probe: ProbeView,
    pub n: usize,
    pub since: Option<String>,
}

impl Check for Answers {
    type Evidence = ProbeCounts;

    fn name(&self) -> String {
        format!("the traffic probe: {} answers from every cluster", self.n)
    }

    /// `n` paces twice over, and never less than istiod's sync deadline: a
    /// loaded machine slows the execs down, and nothing is lost by waiting.
    fn deadline(&self, t: &Timeouts) -> Duration {
        (self.probe.settings().interval * 2).saturating_mul(self.n as u32).max(t.mesh_sync)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<ProbeCounts>> {
        Ok(match &self.since {
            Some(mark) => answers_since(&self.probe.snapshot(), self.n, mark),
            None => answers(&self.probe.snapshot(), self.n),
        })
    }
}

/// Only one version answered a cluster's probe between two marks, without a failure.
pub struct OnlyVersionBetween {
    pub probe: ProbeView,
    pub cluster: String,
    pub version: String,
    pub from: String,
    pub to: String,
}

impl Check for OnlyVersionBetween {
    type Evidence = LocalOnlyEvidence;

    fn name(&self) -> String {
        format!(
            "the traffic probe: only {} answered {} between {:?} and {:?}",
            self.version, self.cluster, self.from, self.to
        )
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        in_flight_deadline(&self.probe)
    }

    async fn observe(&self, _: &Session) -> Result<Observation<LocalOnlyEvidence>> {
        Ok(only_version_between(&self.probe.snapshot(), &self.cluster, &self.version, &self.from, &self.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::probe::{InFlight, SourcePod, Stopped};

    fn at(s: f64) -> At {
        At { s, simulated_s: Some(s * 1000.0) }
    }

    fn hello(v: &str) -> Answer {
        Answer::Hello { version: v.into(), instance: format!("helloworld-{v}-0") }
    }

    fn unavailable() -> Answer {
        Answer::Http { status: 503, body: "no healthy upstream".into() }
    }

    fn req(cluster: &str, sent: f64, answer: Answer) -> ProbeRequest {
        ProbeRequest { cluster: cluster.into(), sent: at(sent), answered: at(sent + 0.01), answer }
    }

    /// Two clusters, each answered by v1 and v2 in turn every 0.1 s from 0 to 2 s,
    /// marks "gateway deleted" at 0.5 s and "new NLB healthy" at 1.0 s.
    fn timeline(requests: Vec<ProbeRequest>) -> Timeline {
        Timeline {
            url: "helloworld.sample:5000/hello".into(),
            started_at: chrono::Utc::now(),
            interval_s: 0.1,
            deadline_s: 10.0,
            time_scale: Some(1000.0),
            sources: ["eks-1", "eks-2"]
                .iter()
                .map(|c| SourcePod { cluster: c.to_string(), pod: format!("sleep-{c}") })
                .collect(),
            requests,
            marks: vec![
                Mark { name: "gateway deleted".into(), at: at(0.5) },
                Mark { name: "new NLB healthy".into(), at: at(1.0) },
            ],
            in_flight: vec![],
            stopped: None,
        }
    }

    /// Every 0.1 s from each cluster, alternating versions; `fail(cluster, s)` picks failures.
    fn traffic(fail: impl Fn(&str, f64) -> bool) -> Vec<ProbeRequest> {
        let mut out = Vec::new();
        for i in 0..20 {
            let s = i as f64 * 0.1;
            for c in ["eks-1", "eks-2"] {
                let answer = if fail(c, s) { unavailable() } else { hello(if i % 2 == 0 { "v1" } else { "v2" }) };
                out.push(req(c, s, answer));
            }
        }
        out
    }

    fn versions() -> Vec<String> {
        vec!["v1".into(), "v2".into()]
    }

    fn diagnosis<T>(o: Observation<T>) -> Diagnosis {
        match o {
            Observation::Broken { diagnosis, .. } => diagnosis,
            Observation::Holds(_) => panic!("held"),
            Observation::Pending { seen, .. } => panic!("pending: {seen}"),
        }
    }

    #[test]
    fn a_clean_timeline_has_no_failure_and_counts_per_cluster_and_version() {
        let t = timeline(traffic(|_, _| false));
        let Observation::Holds(counts) = no_failure(&t, 10.0) else { panic!("no failure expected") };
        assert_eq!(
            counts.clusters["eks-1"],
            ClusterCounts { requests: 20, failed: 0, versions: [("v1".into(), 10), ("v2".into(), 10)].into() }
        );
        assert_eq!(counts.clusters.len(), 2);
        assert!(matches!(every_version_answered(&t, &versions(), 10.0), Observation::Holds(_)));
    }

    #[test]
    fn a_failure_is_named_with_when_and_what() {
        let t = timeline(traffic(|c, s| c == "eks-2" && (0.7..0.75).contains(&s)));
        let d = diagnosis(no_failure(&t, 10.0));
        assert!(d.cause.starts_with("1 of 40 probe requests failed"), "{}", d.cause);
        assert!(
            d.cause.contains(r#"eks-2's request sent at 0.700 s (simulated 700 s), 0.200 s (simulated 200 s) after "gateway deleted" got HTTP 503: no healthy upstream"#),
            "{}",
            d.cause
        );
        assert!(d.fix.contains("sleep-eks-2") && d.fix.contains("no healthy helloworld endpoint"), "{}", d.fix);
        // A check made before the failure was sent does not judge it.
        assert!(matches!(no_failure(&t, 0.65), Observation::Holds(_)));
    }

    #[test]
    fn a_request_still_in_flight_is_awaited_and_a_later_one_is_not() {
        let mut t = timeline(traffic(|_, _| false));
        t.in_flight = vec![InFlight { cluster: "eks-1".into(), sent: at(2.0) }];
        assert!(matches!(no_failure(&t, 2.5), Observation::Pending { .. }));
        assert!(matches!(no_failure(&t, 1.95), Observation::Holds(_)));
        // A failure already seen is definite, whatever is still out.
        t.requests.push(req("eks-2", 1.95, unavailable()));
        assert!(matches!(no_failure(&t, 2.5), Observation::Broken { .. }));
    }

    #[test]
    fn failures_inside_the_window_pass_and_one_outside_fails_with_a_diagnosis() {
        let window = |fail: &dyn Fn(&str, f64) -> bool| {
            let t = timeline(traffic(fail));
            failures_only_between(&t, "gateway deleted", "new NLB healthy", 10.0)
        };
        // Cross-network failures while the gateway was gone: inside.
        let Observation::Holds(e) = window(&|_, s| (0.5..=1.0).contains(&s)) else { panic!("inside the window") };
        assert_eq!(e.failed_inside, [("eks-1".to_string(), 6), ("eks-2".to_string(), 6)].into());
        assert_eq!((e.first_failure.unwrap().s, e.last_failure.unwrap().s), (0.5, 1.0));
        // A request answered before the window opened may not fail; one sent just
        // before it opened and answered inside it may fail by it.
        assert!(matches!(window(&|c, s| c == "eks-1" && (0.35..0.45).contains(&s)), Observation::Broken { .. }));
        let t = timeline(vec![ProbeRequest {
            cluster: "eks-1".into(),
            sent: at(0.45),
            answered: at(0.55),
            answer: unavailable(),
        }]);
        assert!(matches!(failures_only_between(&t, "gateway deleted", "new NLB healthy", 10.0), Observation::Holds(_)));
        // One failure after the window closed: named, with its distance to the mark.
        let d = diagnosis(window(&|c, s| {
            (c == "eks-1" && (0.6..0.65).contains(&s)) || (c == "eks-2" && (1.3..1.35).contains(&s))
        }));
        assert!(d.cause.starts_with(r#"1 of 40 probe requests failed outside the window from "gateway deleted" (0.500 s (simulated 500 s)) to "new NLB healthy" (1.000 s (simulated 1000 s))"#), "{}", d.cause);
        assert!(d.cause.contains(r#"eks-2's request sent at 1.300 s (simulated 1300 s), 0.300 s (simulated 300 s) after "new NLB healthy" got HTTP 503: no healthy upstream"#), "{}", d.cause);
        // And one before it opened.
        let d = diagnosis(window(&|c, s| c == "eks-1" && (0.2..0.25).contains(&s)));
        assert!(
            d.cause.contains(r#"eks-1's request sent at 0.200 s (simulated 200 s), before any mark"#),
            "{}",
            d.cause
        );
    }

    #[test]
    fn a_window_needs_both_marks_in_order() {
        let t = timeline(traffic(|_, _| false));
        let d = diagnosis(failures_only_between(&t, "gateway deleted", "gateway recreated", 10.0));
        assert!(
            d.cause.contains(r#"no mark named "gateway recreated""#) && d.cause.contains("gateway deleted"),
            "{}",
            d.cause
        );
        assert!(d.fix.contains(r#"When the probe marks "gateway recreated""#), "{}", d.fix);
        let d = diagnosis(failures_only_between(&t, "new NLB healthy", "gateway deleted", 10.0));
        assert!(d.cause.contains("ends before it begins"), "{}", d.cause);
    }

    #[test]
    fn recovery_is_timed_from_the_mark_to_the_answer_that_completes_both_versions() {
        // Every request fails from 0.5 s to 1.2 s; afterwards v1 then v2 answer again.
        let t = timeline(traffic(|_, s| (0.5..1.25).contains(&s)));
        let stated = Duration::from_secs(600);
        let o = answered_again(&t, "new NLB healthy", &versions(), stated, Duration::from_secs(1), at(2.0));
        let Observation::Holds(r) = o else { panic!("recovered") };
        // The first answers sent after 1.0 s: v2 at 1.3 and v1 at 1.4, answered 0.01 s later.
        let after = r.clusters["eks-1"].after;
        assert!((after.s - 0.41).abs() < 1e-9, "{after:?}");
        assert!((after.simulated_s.unwrap() - 410.0).abs() < 1e-6, "{after:?}");
        assert_eq!((r.clusters["eks-1"].requests, r.clusters["eks-1"].failed), (5, 3));
        assert!((r.after.s - 0.41).abs() < 1e-9);
        // Allowed less than that: definite, with the time it took.
        let o = answered_again(&t, "new NLB healthy", &versions(), stated, Duration::from_millis(300), at(2.0));
        let d = diagnosis(o);
        assert!(d.cause.contains("again only 0.410 s (simulated 410 s) after \"new NLB healthy\""), "{}", d.cause);
    }

    #[test]
    fn a_cluster_never_answered_by_both_versions_waits_then_fails_with_the_last_failure() {
        // eks-2 is answered by v2 only after 1.0 s, with failures in between.
        let t = timeline(traffic(|c, s| c == "eks-2" && s >= 1.0 && ((s * 10.0).round() as i64) % 2 == 0));
        let versions = versions();
        let again = |now: f64, allowed_ms: u64| {
            answered_again(
                &t,
                "new NLB healthy",
                &versions,
                Duration::from_secs(300),
                Duration::from_millis(allowed_ms),
                at(now),
            )
        };
        // Still within the allowance: waiting may help.
        assert!(matches!(again(1.5, 5000), Observation::Pending { .. }));
        let d = diagnosis(again(2.0, 800));
        assert!(d.cause.starts_with(r#"["v1"] did not answer eks-2's probe in the 1.000 s (simulated 1000 s) after "new NLB healthy" (allowed: 0.800 s, the stated 300s on this target's clock): 10 requests, 5 failed"#), "{}", d.cause);
        assert!(d.cause.contains("the last failure: eks-2's request sent at 1.800 s"), "{}", d.cause);
        assert!(d.fix.contains("no healthy helloworld endpoint"), "{}", d.fix);
        // A stopped probe will not see it happen.
        let mut stopped = t.clone();
        stopped.stopped = Some(Stopped { at: at(2.0), by: "scenario end".into() });
        assert!(matches!(
            answered_again(
                &stopped,
                "new NLB healthy",
                &versions,
                Duration::from_secs(300),
                Duration::from_secs(5),
                at(2.0)
            ),
            Observation::Broken { .. }
        ));
        // Answered only by the local version, without failures: the other network is not known.
        let local = timeline(
            traffic(|_, _| false)
                .into_iter()
                .filter(|r| r.cluster == "eks-1" || r.answer.version() == Some("v2"))
                .collect(),
        );
        let d = diagnosis(every_version_answered(&local, &versions, 10.0));
        assert!(d.cause.starts_with("v1 never answered eks-2"), "{}", d.cause);
    }

    #[test]
    fn the_wait_for_answers_counts_every_cluster_and_ends_when_the_probe_stops() {
        let mut t = timeline(traffic(|_, _| false));
        assert!(matches!(answers(&t, 20), Observation::Holds(_)));
        let Observation::Pending { seen, .. } = answers(&t, 21) else { panic!("pending") };
        assert_eq!(seen, "eks-1: 20 of 21, eks-2: 20 of 21");
        t.stopped = Some(Stopped { at: at(2.0), by: "a step".into() });
        assert!(diagnosis(answers(&t, 21)).cause.contains("stopped"));
    }

    /// eks-1 answered by its own v1 only between 0.5 s and 1.0 s (v2 left its
    /// view), alternating versions elsewhere.
    fn local_window(other: impl Fn(f64) -> Answer) -> Timeline {
        let mut requests = traffic(|_, _| false);
        for r in requests.iter_mut().filter(|r| r.cluster == "eks-1" && (0.5..0.99).contains(&r.sent.s)) {
            r.answer = if r.sent.s > 0.75 && r.sent.s < 0.85 { other(r.sent.s) } else { hello("v1") };
        }
        timeline(requests)
    }

    #[test]
    fn only_the_local_version_inside_the_window_holds_and_edges_are_not_judged() {
        let t = local_window(|_| hello("v1"));
        let Observation::Holds(e) = only_version_between(&t, "eks-1", "v1", "gateway deleted", "new NLB healthy")
        else {
            panic!("only v1 inside")
        };
        // Sent at 0.5 .. 0.9 (answered 0.01 s later); the one sent at 1.0 is answered after the mark.
        assert_eq!(e.requests, 5);
        // eks-2 kept both versions: the same window fails for it, naming v2.
        let d = diagnosis(only_version_between(&t, "eks-2", "v2", "gateway deleted", "new NLB healthy"));
        assert!(d.cause.contains(r#"answered by {"v1"}"#), "{}", d.cause);
    }

    #[test]
    fn the_other_version_or_a_failure_inside_the_window_is_named() {
        let t = local_window(|_| hello("v2"));
        let d = diagnosis(only_version_between(&t, "eks-1", "v1", "gateway deleted", "new NLB healthy"));
        assert!(d.cause.contains(r#"answered by {"v2"}"#) && d.cause.contains("0.800 s"), "{}", d.cause);
        assert!(d.fix.contains("sleep-eks-1") && d.fix.contains("remote secret"), "{}", d.fix);
        let t = local_window(|_| unavailable());
        let d = diagnosis(only_version_between(&t, "eks-1", "v1", "gateway deleted", "new NLB healthy"));
        assert!(d.cause.starts_with("1 of 5 requests of eks-1 failed"), "{}", d.cause);
    }

    #[test]
    fn a_missing_mark_or_an_empty_window_is_definite() {
        let t = local_window(|_| hello("v1"));
        let d = diagnosis(only_version_between(&t, "eks-1", "v1", "gateway deleted", "rejoined"));
        assert!(d.cause.contains("missing") && d.fix.contains("rejoined"), "{}", d.cause);
        let mut t = t;
        t.marks.push(Mark { name: "right after".into(), at: at(0.505) });
        let d = diagnosis(only_version_between(&t, "eks-1", "v1", "gateway deleted", "right after"));
        assert!(d.cause.contains("nothing to judge"), "{}", d.cause);
    }

    #[test]
    fn answers_since_a_mark_count_only_later_requests() {
        let t = timeline(traffic(|_, _| false));
        // 20 requests per cluster every 0.1 s; 10 sent at or after 1.0 s.
        assert!(matches!(answers_since(&t, 10, "new NLB healthy"), Observation::Holds(_)));
        let Observation::Pending { seen, .. } = answers_since(&t, 11, "new NLB healthy") else { panic!("pending") };
        assert_eq!(seen, "eks-1: 10 of 11, eks-2: 10 of 11");
        assert!(diagnosis(answers_since(&t, 1, "no such mark")).cause.contains("missing"));
    }
}
