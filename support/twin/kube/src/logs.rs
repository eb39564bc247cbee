//! Container logs, kept per pod (by uid) and container, as the kubelet keeps
//! them: each start of a container is a new instance with its own log; the
//! instance before the last restart stays readable (`previous`). Served by
//! `GET pods/<name>/log` with the query parameters of `PodLogOptions`.
//!
//! Sources (kubernetes/kubernetes, master as stored):
//! - pkg/registry/core/pod/strategy.go `LogLocation`: which container, and the
//!   errors for none named or an unknown one; an unscheduled pod has no
//!   location and its log is empty.
//! - pkg/apis/core/validation/validation.go `ValidatePodLogOptions`: the
//!   option errors (422 Invalid on `PodLogOptions`).
//! - pkg/kubelet/kubelet_pods.go `validateContainerLogStatus`: which instance
//!   a request reads, and the errors while a container waits to start or has
//!   no previous instance (the kubelet's 400, passed on by the API server as
//!   BadRequest).
//! - pkg/kubelet/kuberuntime/logs/logs.go: `tailLines` picks the last lines
//!   first, then `sinceSeconds`/`sinceTime` filter them; `timestamps` puts the
//!   time (RFC 3339 with nanoseconds) and a space before each line;
//!   `limitBytes` cuts the output (a line may end cut); `follow` keeps the
//!   stream open for new lines while the container runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use http::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

use crate::error::{ApiError, FieldCause};
use crate::server::{self, Request, Response};

/// Bytes kept per container instance; older lines fall off (the kubelet
/// rotates at `containerLogMaxSize`, 10 MiB by default: the twin keeps less).
pub const KEPT_BYTES: usize = 256 * 1024;
/// How often a follower looks again even without news (the kubelet polls
/// the container's state every few seconds while following).
const FOLLOW_RECHECK: Duration = Duration::from_millis(500);

/// What gives a line its time.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One line as written, with when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub text: String,
    seq: u64,
}

/// One run of a container.
#[derive(Debug, Default)]
struct Instance {
    /// Counts the container's starts: a follower reads one instance only.
    generation: u64,
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    ended: bool,
}

impl Instance {
    fn push(&mut self, time: DateTime<Utc>, text: &str) {
        let line = LogLine { time, text: text.to_owned(), seq: self.next_seq };
        self.next_seq += 1;
        self.bytes += line.text.len() + 1;
        self.lines.push_back(line);
        while self.bytes > KEPT_BYTES {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.text.len() + 1,
                None => break,
            }
        }
    }
}

/// A container's current instance and the one before it.
#[derive(Debug, Default)]
struct ContainerLog {
    current: Option<Instance>,
    previous: Option<Instance>,
    starts: u64,
}

impl ContainerLog {
    fn start(&mut self) {
        self.starts += 1;
        if let Some(old) = self.current.take() {
            self.previous = Some(Instance { ended: true, ..old });
        }
        self.current = Some(Instance { generation: self.starts, ..Instance::default() });
    }

    /// The instance a request reads: the latest for the current log; for
    /// `previous`, the latest that ended (the kubelet's `lastState.terminated`:
    /// while a crashed container waits to restart that is the latest one).
    fn instance(&self, previous: bool) -> Option<&Instance> {
        if !previous {
            return self.current.as_ref();
        }
        match &self.current {
            Some(c) if c.ended => Some(c),
            _ => self.previous.as_ref(),
        }
    }
}

/// Which lines of a container's log, as `PodLogOptions` say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub previous: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
}

/// The logs of every container of a cluster's pods.
pub struct PodLogs {
    pods: Mutex<HashMap<String, HashMap<String, ContainerLog>>>,
    changed: watch::Sender<u64>,
    now: Now,
}

impl Default for PodLogs {
    fn default() -> Self {
        Self::with_clock(Arc::new(Utc::now))
    }
}

impl std::fmt::Debug for PodLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLogs").finish_non_exhaustive()
    }
}

impl PodLogs {
    /// Logs whose lines are stamped by `now` (the twin's objects carry wall
    /// time, e.g. creationTimestamp, so the default is wall time too).
    pub fn with_clock(now: Now) -> Self {
        PodLogs { pods: Mutex::new(HashMap::new()), changed: watch::channel(0).0, now }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, ContainerLog>>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The time a line written now gets.
    pub fn now(&self) -> DateTime<Utc> {
        (self.now)()
    }

    /// A container (of pod `uid`) starts: a new, empty log; the last one
    /// becomes the previous instance.
    pub fn start(&self, uid: &str, container: &str) {
        self.lock().entry(uid.to_owned()).or_default().entry(container.to_owned()).or_default().start();
        self.notify();
    }

    /// A container's program ended: followers of its log stop.
    pub fn exit(&self, uid: &str, container: &str) {
        if let Some(c) = self.lock().get_mut(uid).and_then(|p| p.get_mut(container)) {
            if let Some(i) = c.current.as_mut() {
                i.ended = true;
            }
        }
        self.notify();
    }

    /// Appends a line (without its newline) to the container's current log
    /// (a container never started gets one: writing means it runs).
    pub fn write(&self, uid: &str, container: &str, text: &str) {
        let time = self.now();
        self.write_at(uid, container, time, text);
    }

    /// As [`Self::write`], at a given time.
    pub fn write_at(&self, uid: &str, container: &str, time: DateTime<Utc>, text: &str) {
        {
            let mut pods = self.lock();
            let log = pods.entry(uid.to_owned()).or_default().entry(container.to_owned()).or_default();
            if log.current.is_none() {
                log.start();
            }
            if let Some(i) = log.current.as_mut() {
                for line in text.split('\n') {
                    i.push(time, line.trim_end_matches('\r'));
                }
            }
        }
        self.notify();
    }

    /// Forgets the logs of pods for which `keep` is false (pods that are gone).
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let removed = {
            let mut pods = self.lock();
            let before = pods.len();
            pods.retain(|uid, _| keep(uid));
            before != pods.len()
        };
        if removed {
            self.notify();
        }
    }

    /// The texts of a container's current log (for the twin's own use and tests).
    pub fn texts(&self, uid: &str, container: &str) -> Vec<String> {
        self.lock()
            .get(uid)
            .and_then(|p| p.get(container))
            .and_then(|c| c.current.as_ref())
            .map(|i| i.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default()
    }

    /// The selected lines of one instance, rendered, and where a follower
    /// goes on from: (bytes, generation, next seq). `None`: nothing was ever written.
    pub fn read(&self, uid: &str, container: &str, q: &LogQuery) -> Option<(Vec<u8>, u64, u64)> {
        let pods = self.lock();
        let inst = pods.get(uid)?.get(container)?.instance(q.previous)?;
        let start = match q.tail_lines {
            Some(n) => inst.lines.len().saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
            None => 0,
        };
        let mut out = Vec::new();
        for line in inst.lines.iter().skip(start) {
            if q.since.is_some_and(|s| line.time < s) {
                continue;
            }
            render(&mut out, line, q.timestamps);
        }
        if let Some(limit) = q.limit_bytes {
            out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Some((out, inst.generation, inst.next_seq))
    }

    /// New lines of one instance from `seq` on: (bytes, next seq, whether it ended).
    /// `None`: that instance is gone (pod deleted or container restarted twice).
    fn read_from(
        &self,
        uid: &str,
        container: &str,
        generation: u64,
        seq: u64,
        ts: bool,
    ) -> Option<(Vec<u8>, u64, bool)> {
        let pods = self.lock();
        let c = pods.get(uid)?.get(container)?;
        let inst =
            [c.current.as_ref(), c.previous.as_ref()].into_iter().flatten().find(|i| i.generation == generation)?;
        let mut out = Vec::new();
        for line in inst.lines.iter().filter(|l| l.seq >= seq) {
            render(&mut out, line, ts);
        }
        // A newer instance means this one's container has ended.
        let ended = inst.ended || c.current.as_ref().is_some_and(|i| i.generation != generation);
        Some((out, inst.next_seq, ended))
    }

    /// Follows one instance: what `read` returned, then each new line, until
    /// the container ends, its pod goes, `limit` bytes went out, or the
    /// client leaves (the stream is dropped with its connection).
    pub fn follow(
        self: &Arc<Self>,
        uid: String,
        container: String,
        from: (u64, u64),
        timestamps: bool,
        limit: Option<u64>,
    ) -> impl futures::Stream<Item = Bytes> + Send + 'static {
        struct State {
            logs: Arc<PodLogs>,
            rx: watch::Receiver<u64>,
            uid: String,
            container: String,
            generation: u64,
            seq: u64,
            left: Option<u64>,
            ts: bool,
            done: bool,
        }
        let rx = self.changed.subscribe();
        let state = State {
            logs: self.clone(),
            rx,
            uid,
            container,
            generation: from.0,
            seq: from.1,
            left: limit,
            ts: timestamps,
            done: false,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.done || s.left == Some(0) {
                    return None;
                }
                s.rx.borrow_and_update();
                let (mut out, next, ended) = s.logs.read_from(&s.uid, &s.container, s.generation, s.seq, s.ts)?;
                s.seq = next;
                if !out.is_empty() {
                    if let Some(left) = s.left.as_mut() {
                        out.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= out.len() as u64;
                    }
                    s.done = ended;
                    return Some((Bytes::from(out), s));
                }
                if ended {
                    return None;
                }
                if let Ok(Err(_)) = tokio::time::timeout(FOLLOW_RECHECK, s.rx.changed()).await {
                    return None;
                }
            }
        })
    }
}

/// `GET pods/<name>/log` for `pod` (found by the caller).
pub(crate) fn serve(store: &crate::Store, pod: &Value, name: &str, req: &Request) -> Result<Response, ApiError> {
    let mut opts = LogOptions::parse(req, name)?;
    let container = choose_container(pod, name, opts.container.as_deref())?;
    // strategy.go LogLocation: no node yet, no location: an empty log.
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Ok(server::text(StatusCode::OK, ""));
    }
    kubelet_check(pod, name, &container, opts.query.previous)?;
    let logs = store.logs();
    if let Some(secs) = opts.since_seconds {
        // kubelet: since = now - sinceSeconds, on the clock the lines are stamped with.
        opts.query.since = Some(logs.now() - chrono::Duration::seconds(secs.min(i64::from(u32::MAX))));
    }
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some((bytes, generation, seq)) = logs.read(&uid, &container, &opts.query) else {
        return Ok(server::text(StatusCode::OK, ""));
    };
    if !opts.follow || opts.query.previous {
        return Ok(server::respond(
            StatusCode::OK,
            "text/plain",
            server::stream_body(futures::stream::iter([Bytes::from(bytes)])),
        ));
    }
    let left = opts.query.limit_bytes.map(|l| l.saturating_sub(bytes.len() as u64));
    let head = futures::stream::iter((!bytes.is_empty()).then(|| Bytes::from(bytes)));
    let tail = logs.follow(uid, container, (generation, seq), opts.query.timestamps, left);
    Ok(server::respond(StatusCode::OK, "text/plain", server::stream_body(head.chain(tail))))
}

/// `PodLogOptions` from the query.
struct LogOptions {
    container: Option<String>,
    follow: bool,
    since_seconds: Option<i64>,
    query: LogQuery,
}

impl LogOptions {
    fn parse(req: &Request, name: &str) -> Result<Self, ApiError> {
        // A value that is not a number: the query parameter conversion fails
        // with a 400 (the wording here is the twin's own).
        let int = |key: &str| -> Result<Option<i64>, ApiError> {
            match req.query(key) {
                None | Some("") => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("{key}: strconv.ParseInt: parsing {v:?}: invalid syntax"))
                }),
            }
        };
        let tail = int("tailLines")?;
        let since_seconds = int("sinceSeconds")?;
        let limit = int("limitBytes")?;
        let since_time = match req.query("sinceTime") {
            None | Some("") => None,
            Some(v) => Some(
                DateTime::parse_from_rfc3339(v)
                    .map_err(|_| ApiError::bad_request(format!("sinceTime: {v:?} is not an RFC 3339 time")))?
                    .with_timezone(&Utc),
            ),
        };
        // validation.go ValidatePodLogOptions.
        let invalid = |field: &str, value: i64, why: &str| FieldCause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {why}"),
            field: field.into(),
        };
        let mut causes = Vec::new();
        if let Some(t) = tail.filter(|t| *t < 0) {
            causes.push(invalid("tailLines", t, "must be greater than or equal to 0"));
        }
        if let Some(l) = limit.filter(|l| *l < 1) {
            causes.push(invalid("limitBytes", l, "must be greater than 0"));
        }
        match (since_seconds, since_time) {
            (Some(_), Some(_)) => causes.push(FieldCause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
                field: String::new(),
            }),
            (Some(s), None) if s < 1 => causes.push(invalid("sinceSeconds", s, "must be greater than 0")),
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("PodLogOptions", name, causes));
        }
        Ok(LogOptions {
            since_seconds,
            container: req.query("container").filter(|c| !c.is_empty()).map(String::from),
            follow: req.flag("follow"),
            query: LogQuery {
                previous: req.flag("previous"),
                tail_lines: tail.map(|t| t as u64),
                since: since_time,
                timestamps: req.flag("timestamps"),
                limit_bytes: limit.map(|l| l as u64),
            },
        })
    }
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(String::from).collect())
        .unwrap_or_default()
}

/// strategy.go LogLocation: the one container, or the one named (init containers count).
fn choose_container(pod: &Value, name: &str, wanted: Option<&str>) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    match wanted {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
            _ => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                if !init.is_empty() {
                    msg.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                Err(ApiError::bad_request(msg))
            }
        },
    }
}

/// kubelet_pods.go validateContainerLogStatus, on the pod's status.
fn kubelet_check(pod: &Value, name: &str, container: &str, previous: bool) -> Result<(), ApiError> {
    let status = ["containerStatuses", "initContainerStatuses"].iter().find_map(|list| {
        pod.pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(container)))
    });
    let Some(s) = status else {
        return Err(ApiError::bad_request(format!("container {container:?} in pod {name:?} is not available")));
    };
    let last_terminated = s.pointer("/lastState/terminated").is_some_and(Value::is_object);
    let state = |k: &str| s.pointer(&format!("/state/{k}")).is_some_and(Value::is_object);
    if previous {
        if !last_terminated {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )));
        }
        return Ok(());
    }
    if state("running") || state("terminated") || last_terminated {
        return Ok(());
    }
    let reason = s.pointer("/state/waiting/reason").and_then(Value::as_str).unwrap_or_default();
    let why = match reason {
        "ErrImagePull" => "image can't be pulled".to_owned(),
        "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
        other => other.to_owned(),
    };
    Err(ApiError::bad_request(format!("container {container:?} in pod {name:?} is waiting to start: {why}")))
}

/// kubelet's `--timestamps` format: RFC 3339 with nine fractional digits.
fn render(out: &mut Vec<u8>, line: &LogLine, timestamps: bool) {
    if timestamps {
        out.extend_from_slice(line.time.format("%Y-%m-%dT%H:%M:%S%.9fZ ").to_string().as_bytes());
    }
    out.extend_from_slice(line.text.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, s).unwrap()
    }

    fn text(logs: &PodLogs, q: &LogQuery) -> String {
        String::from_utf8(logs.read("u", "c", q).map(|r| r.0).unwrap_or_default()).unwrap()
    }

    #[test]
    fn tail_then_since_then_limit() {
        let logs = PodLogs::default();
        logs.start("u", "c");
        for (s, t) in [(1, "one"), (2, "two"), (3, "three"), (4, "four")] {
            logs.write_at("u", "c", at(s), t);
        }
        assert_eq!(text(&logs, &LogQuery::default()), "one\ntwo\nthree\nfour\n");
        assert_eq!(text(&logs, &LogQuery { tail_lines: Some(2), ..Default::default() }), "three\nfour\n");
        assert_eq!(text(&logs, &LogQuery { tail_lines: Some(0), ..Default::default() }), "");
        // The tail is taken first: the last three lines, then those since 0:03.
        let q = LogQuery { tail_lines: Some(3), since: Some(at(3)), ..Default::default() };
        assert_eq!(text(&logs, &q), "three\nfour\n");
        assert_eq!(text(&logs, &LogQuery { limit_bytes: Some(6), ..Default::default() }), "one\ntw");
        let q = LogQuery { timestamps: true, tail_lines: Some(1), ..Default::default() };
        assert_eq!(text(&logs, &q), "2026-12-07T01:00:04.000000000Z four\n");
    }

    #[test]
    fn previous_is_the_last_instance_that_ended() {
        let logs = PodLogs::default();
        logs.write("u", "c", "first run");
        let prev = LogQuery { previous: true, ..Default::default() };
        assert_eq!(text(&logs, &prev), "", "a running first instance has no previous one");
        logs.exit("u", "c");
        // Crashed, waiting to restart: both read the crashed instance.
        assert_eq!(text(&logs, &prev), "first run\n");
        assert_eq!(text(&logs, &LogQuery::default()), "first run\n");
        logs.start("u", "c");
        logs.write("u", "c", "second run");
        assert_eq!(text(&logs, &prev), "first run\n");
        assert_eq!(text(&logs, &LogQuery::default()), "second run\n");
        logs.retain(|_| false);
        assert!(logs.read("u", "c", &LogQuery::default()).is_none());
    }

    #[test]
    fn an_instance_keeps_a_bounded_size() {
        let logs = PodLogs::default();
        let line = "x".repeat(1023);
        for _ in 0..(KEPT_BYTES / 1024 + 10) {
            logs.write("u", "c", &line);
        }
        let (bytes, _, _) = logs.read("u", "c", &LogQuery::default()).unwrap();
        assert!(bytes.len() <= KEPT_BYTES && bytes.len() > KEPT_BYTES - 2048, "{}", bytes.len());
    }

    #[tokio::test]
    async fn a_follower_gets_new_lines_and_stops_when_the_container_ends() {
        use futures::StreamExt;
        let logs = Arc::new(PodLogs::default());
        logs.write("u", "c", "before");
        let (_, generation, seq) = logs.read("u", "c", &LogQuery::default()).unwrap();
        let mut stream = Box::pin(logs.follow("u".into(), "c".into(), (generation, seq), false, None));
        let writer = logs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.write("u", "c", "after");
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.exit("u", "c");
        });
        let mut got = Vec::new();
        let run = async {
            while let Some(b) = stream.next().await {
                got.extend_from_slice(&b);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), run).await.expect("the stream ends with the container");
        assert_eq!(String::from_utf8(got).unwrap(), "after\n");
    }
}
