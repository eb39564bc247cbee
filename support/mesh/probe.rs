//! The traffic probe: requests from each cluster's sleep pod through its
//! sidecar, sent as the load-balancing check sends them
//! ([`traffic::curl_once`]), one at a time per cluster at a steady pace, for
//! as long as an operation on the mesh lasts. Every answer goes on one
//! timeline with the marks the scenario sets ("gateway deleted"), which the
//! checks of `checks::probe` read and the report draws.
//!
//! It never holds a scenario up: each request has a deadline, and stopping
//! waits for the requests in flight at most that long.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::traffic::{self, Answer};
use crate::topology::names;

/// An instant of the probe: seconds since it started, by the wall clock and,
/// where the target compresses time (the twin), by the target's clock.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct At {
    pub s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_s: Option<f64>,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3} s", self.s)?;
        if let Some(sim) = self.simulated_s {
            write!(f, " (simulated {sim:.0} s)")?;
        }
        Ok(())
    }
}

/// One request and what it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The cluster whose sleep pod sent it.
    pub cluster: String,
    pub sent: At,
    pub answered: At,
    pub answer: Answer,
}

/// A named instant a scenario set ("gateway deleted").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub name: String,
    pub at: At,
}

/// A request sent and not answered yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub cluster: String,
    pub sent: At,
}

/// Where requests come from: a cluster's sleep pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePod {
    pub cluster: String,
    pub pod: String,
}

/// How the probe ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    pub at: At,
    /// Who stopped it: a step, or the end of its scenario.
    pub by: String,
}

/// Everything the probe saw, in the order answers came.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub url: String,
    /// When the probe started, by the wall clock.
    pub started_at: DateTime<Utc>,
    /// The pace and the deadline of each request, in wall seconds.
    pub interval_s: f64,
    pub deadline_s: f64,
    /// Simulated seconds per wall second, where the target compresses time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_scale: Option<f64>,
    pub sources: Vec<SourcePod>,
    pub requests: Vec<ProbeRequest>,
    pub marks: Vec<Mark>,
    /// Requests still out when this timeline was taken (none once stopped).
    #[serde(default)]
    pub in_flight: Vec<InFlight>,
    #[serde(default)]
    pub stopped: Option<Stopped>,
}

impl Timeline {
    pub fn mark(&self, name: &str) -> Result<&Mark, ProbeError> {
        self.marks.iter().find(|m| m.name == name).ok_or_else(|| ProbeError::NoMark {
            name: name.to_string(),
            marks: self.marks.iter().map(|m| m.name.clone()).collect(),
        })
    }

    /// The clusters requests come from, in the order the probe was given them.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.cluster.as_str())
    }
}

/// What the probe refuses, typed; rendered once by `Display`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("the probe has no mark named {name:?} (its marks: {marks:?})")]
    NoMark { name: String, marks: Vec<String> },
    #[error("the probe already has a mark named {0:?}: each mark names one instant")]
    DuplicateMark(String),
    #[error("the probe was given no cluster to send from")]
    NoSource,
}

/// A cluster's sleep pod and a client of its API server, to exec curl in it.
#[derive(Clone)]
pub struct Source {
    pub cluster: String,
    pub client: kube::Client,
    pub pod: String,
}

/// How the probe sends.
#[derive(Clone, Debug)]
pub struct Settings {
    pub url: String,
    /// One request per cluster per interval; a slower answer delays the next.
    pub interval: Duration,
    /// The most one request may take, exec included.
    pub deadline: Duration,
    /// Simulated seconds per wall second, where the target compresses time.
    pub time_scale: Option<f64>,
}

struct State {
    requests: Vec<ProbeRequest>,
    marks: Vec<Mark>,
    in_flight: Vec<InFlight>,
    stopped: Option<Stopped>,
}

/// What the sending tasks and the readers share.
struct Shared {
    origin: Instant,
    started_at: DateTime<Utc>,
    settings: Settings,
    sources: Vec<SourcePod>,
    state: Mutex<State>,
}

impl Shared {
    fn at(&self, instant: Instant) -> At {
        let s = instant.saturating_duration_since(self.origin).as_secs_f64();
        At { s, simulated_s: self.settings.time_scale.map(|k| s * k) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking sender leaves whole entries only: the timeline stays readable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Timeline {
        let st = self.state();
        Timeline {
            url: self.settings.url.clone(),
            started_at: self.started_at,
            interval_s: self.settings.interval.as_secs_f64(),
            deadline_s: self.settings.deadline.as_secs_f64(),
            time_scale: self.settings.time_scale,
            sources: self.sources.clone(),
            requests: st.requests.clone(),
            marks: st.marks.clone(),
            in_flight: st.in_flight.clone(),
            stopped: st.stopped.clone(),
        }
    }
}

/// A reader of a running probe's timeline (the checks hold one).
#[derive(Clone)]
pub struct ProbeView(Arc<Shared>);

impl ProbeView {
    /// The timeline as it is now: what was answered, what is in flight.
    pub fn snapshot(&self) -> Timeline {
        self.0.snapshot()
    }

    /// This instant, on the probe's clocks.
    pub fn now(&self) -> At {
        self.0.at(Instant::now())
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }
}

/// A running probe. Dropped without [`Probe::stop`], its senders are aborted.
pub struct Probe {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    senders: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("url", &self.shared.settings.url).field("sources", &self.shared.sources).finish()
    }
}

impl Probe {
    /// Start sending from every source, at once and then at the settings' pace.
    pub fn start(sources: Vec<Source>, settings: Settings) -> Result<Probe, ProbeError> {
        if sources.is_empty() {
            return Err(ProbeError::NoSource);
        }
        let shared = Arc::new(Shared {
            origin: Instant::now(),
            started_at: Utc::now(),
            sources: sources.iter().map(|s| SourcePod { cluster: s.cluster.clone(), pod: s.pod.clone() }).collect(),
            settings,
            state: Mutex::new(State { requests: Vec::new(), marks: Vec::new(), in_flight: Vec::new(), stopped: None }),
        });
        let (stop, stopped) = watch::channel(false);
        let senders = sources.into_iter().map(|s| tokio::spawn(send(shared.clone(), s, stopped.clone()))).collect();
        Ok(Probe { shared, stop, senders })
    }

    pub fn view(&self) -> ProbeView {
        ProbeView(self.shared.clone())
    }

    /// Name this instant on the timeline.
    pub fn mark(&self, name: &str) -> Result<Mark, ProbeError> {
        let at = self.shared.at(Instant::now());
        let mut st = self.shared.state();
        if st.marks.iter().any(|m| m.name == name) {
            return Err(ProbeError::DuplicateMark(name.to_string()));
        }
        let mark = Mark { name: name.to_string(), at };
        st.marks.push(mark.clone());
        Ok(mark)
    }

    /// Stop sending; the requests in flight get at most one request deadline
    /// to be answered, then count as unanswered. Returns the whole timeline.
    pub async fn stop(mut self, by: &str) -> Timeline {
        let at = self.shared.at(Instant::now());
        let _ = self.stop.send(true);
        let senders = std::mem::take(&mut self.senders);
        let aborts: Vec<_> = senders.iter().map(JoinHandle::abort_handle).collect();
        // Each request's exec has the deadline already; the margin covers the
        // scheduling of a loaded machine, and the abort anything beyond.
        let grace = self.shared.settings.deadline + Duration::from_secs(1);
        if tokio::time::timeout(grace, futures::future::join_all(senders)).await.is_err() {
            aborts.iter().for_each(|a| a.abort());
        }
        let now = self.shared.at(Instant::now());
        let deadline = self.shared.settings.deadline;
        {
            let mut st = self.shared.state();
            for f in std::mem::take(&mut st.in_flight) {
                st.requests.push(ProbeRequest {
                    cluster: f.cluster,
                    sent: f.sent,
                    answered: now,
                    answer: Answer::Exec { error: format!("no answer within {deadline:?}: the probe stopped") },
                });
            }
            st.stopped = Some(Stopped { at, by: by.to_string() });
        }
        self.shared.snapshot()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for s in &self.senders {
            s.abort();
        }
    }
}

/// One cluster's sender: a request, its answer, the next at the next tick.
async fn send(shared: Arc<Shared>, source: Source, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(shared.settings.interval.max(Duration::from_millis(1)));
    // A slow answer delays the next request instead of bunching the ones it missed.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let from =
        traffic::Source { client: &source.client, namespace: names::SAMPLE, pod: &source.pod, container: "sleep" };
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = ticks.tick() => {}
        }
        let sent = shared.at(Instant::now());
        shared.state().in_flight.push(InFlight { cluster: source.cluster.clone(), sent });
        let answer = traffic::curl_once(&from, &shared.settings.url, shared.settings.deadline).await;
        let answered = shared.at(Instant::now());
        let mut st = shared.state();
        st.in_flight.retain(|f| !(f.cluster == source.cluster && f.sent == sent));
        st.requests.push(ProbeRequest { cluster: source.cluster.clone(), sent, answered, answer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_read_with_the_target_clock_when_there_is_one() {
        assert_eq!(At { s: 1.5, simulated_s: None }.to_string(), "1.500 s");
        assert_eq!(At { s: 1.5, simulated_s: Some(1500.0) }.to_string(), "1.500 s (simulated 1500 s)");
    }

    #[test]
    fn a_missing_mark_names_the_marks_there_are() {
        let t = Timeline {
            url: "helloworld.sample:5000/hello".into(),
            started_at: Utc::now(),
            interval_s: 0.05,
            deadline_s: 10.0,
            time_scale: None,
            sources: vec![],
            requests: vec![],
            marks: vec![Mark { name: "gateway deleted".into(), at: At { s: 1.0, simulated_s: None } }],
            in_flight: vec![],
            stopped: None,
        };
        assert_eq!(t.mark("gateway deleted").unwrap().at.s, 1.0);
        assert_eq!(
            t.mark("new NLB healthy").unwrap_err().to_string(),
            r#"the probe has no mark named "new NLB healthy" (its marks: ["gateway deleted"])"#
        );
    }

    /// A kube client of an API server at `url` that is no API server.
    fn client(url: &str) -> kube::Client {
        crate::install_crypto_provider();
        kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    fn settings(interval_ms: u64, deadline_ms: u64) -> Settings {
        Settings {
            url: "helloworld.sample:5000/hello".into(),
            interval: Duration::from_millis(interval_ms),
            deadline: Duration::from_millis(deadline_ms),
            time_scale: Some(1000.0),
        }
    }

    #[tokio::test]
    async fn a_request_that_never_answers_meets_its_deadline_and_stopping_waits_at_most_that_long() {
        // Takes connections and never answers: each exec hangs until its deadline.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                open.push(socket);
            }
        });
        let source = Source { cluster: "eks-1".into(), client: client(&url), pod: "sleep-0".into() };
        let probe = Probe::start(vec![source], settings(10, 300)).unwrap();
        tokio::time::sleep(Duration::from_millis(450)).await;
        probe.mark("stopping").unwrap();
        assert_eq!(probe.mark("stopping").unwrap_err(), ProbeError::DuplicateMark("stopping".into()));
        let view = probe.view();
        let running = view.snapshot();
        assert_eq!(running.in_flight.len(), 1, "one request at a time: {running:?}");
        let asked = Instant::now();
        let t = probe.stop("a test").await;
        let waited = asked.elapsed();
        assert!(waited <= Duration::from_millis(300 + 1000), "stopping waited {waited:?}");
        assert!(t.in_flight.is_empty() && t.stopped.as_ref().unwrap().by == "a test", "{t:?}");
        // The first request met its deadline; the one out at the stop was answered or cut.
        assert!(t.requests.len() >= 2, "{t:?}");
        let first = &t.requests[0];
        assert!(
            matches!(&first.answer, Answer::Exec { error } if error.contains("did not finish within")),
            "{first:?}"
        );
        let took = first.answered.s - first.sent.s;
        assert!((0.3..1.3).contains(&took), "the deadline is 300 ms: {took}");
        assert!((first.sent.simulated_s.unwrap() - first.sent.s * 1000.0).abs() < 1e-6);
        assert_eq!(t.marks[0].name, "stopping");
        held.abort();
    }

    #[tokio::test]
    async fn requests_go_one_at_a_time_per_cluster_at_the_pace() {
        // Nothing listens: every exec fails at once, so only the pace spaces them.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let sources = ["eks-1", "eks-2"]
            .iter()
            .map(|c| Source { cluster: c.to_string(), client: client(&url), pod: format!("sleep-{c}") })
            .collect();
        let started = Instant::now();
        let probe = Probe::start(sources, settings(40, 1000)).unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let t = probe.stop("a test").await;
        let ran = started.elapsed().as_secs_f64();
        for c in ["eks-1", "eks-2"] {
            let mine: Vec<&ProbeRequest> = t.requests.iter().filter(|r| r.cluster == c).collect();
            // At most one per interval (and the first at once); a loaded machine may send fewer.
            assert!(mine.len() >= 3 && mine.len() as f64 <= ran / 0.04 + 1.0, "{c}: {} in {ran} s", mine.len());
            for pair in mine.windows(2) {
                assert!(pair[1].sent.s >= pair[0].answered.s, "one at a time: {pair:?}");
                assert!(pair[1].sent.s - pair[0].sent.s >= 0.035, "at the pace: {pair:?}");
            }
            assert!(mine.iter().all(|r| matches!(r.answer, Answer::Exec { .. })), "{mine:?}");
        }
        assert_eq!(t.sources.iter().map(|s| s.pod.as_str()).collect::<Vec<_>>(), ["sleep-eks-1", "sleep-eks-2"]);
        assert!(Probe::start(vec![], settings(40, 1000)).is_err());
    }
}
