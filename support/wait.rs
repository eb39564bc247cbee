//! One wait utility for every poll in meshspec: a deadline, an interval, and
//! on expiry an error that says what was awaited and what was last seen.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one poll saw.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the string describes the state seen (reported on timeout).
    Pending(String),
}

/// A wait that expired: what was awaited, for how long, and the last state seen.
#[derive(Debug, thiserror::Error)]
#[error("{} after {waited:.1?} waiting for {what}; last seen: {last_seen}", if *.interrupted { "interrupted" } else { "timed out" })]
pub struct WaitTimeout {
    pub what: String,
    pub waited: Duration,
    pub last_seen: String,
    /// The run was interrupted, rather than the deadline passing.
    pub interrupted: bool,
    /// When the last probe was an API that kept failing: the diagnosis naming it.
    pub diagnosis: Option<crate::checks::check::Diagnosis>,
}

#[derive(Clone, Copy, Debug)]
pub struct WaitOptions {
    pub timeout: Duration,
    pub interval: Duration,
}

impl WaitOptions {
    pub fn new(timeout: Duration) -> Self {
        // Poll often enough to see fast changes, rarely enough not to hammer a real API.
        let interval = (timeout / 100).clamp(Duration::from_millis(20), Duration::from_secs(10));
        WaitOptions { timeout, interval }
    }
}

/// The first poll comes quickly and the interval doubles up to a cap: fast
/// changes are seen at once, and a real API is not hammered over minutes.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(5);

    /// Up to `cap` (a wait's [`WaitOptions::interval`]).
    pub fn new(cap: Duration) -> Self {
        Backoff { next: Self::FIRST.min(cap), cap }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d
    }
}

/// Poll `probe` until it is Ready or the deadline passes. Errors from the probe
/// are not fatal: they are the "last seen" state and polling goes on, since
/// transient API errors are expected while things start up.
pub async fn until<T, E, F, Fut>(what: impl Display, opts: WaitOptions, mut probe: F) -> Result<T, WaitTimeout>
where
    E: Into<anyhow::Error>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut last_seen = String::from("nothing yet");
    let mut last_error: Option<anyhow::Error> = None;
    let mut backoff = Backoff::new(opts.interval);
    // Shown on stderr only once the wait has lasted a while.
    let progress = crate::progress::Progress::start(what.to_string(), opts.timeout);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // A single probe must not outlive the deadline either.
        if crate::interrupt::is_interrupted() {
            return Err(WaitTimeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last_seen,
                interrupted: true,
                diagnosis: None,
            });
        }
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
            Ok(Ok(Poll::Ready(v))) => return Ok(v),
            Ok(Ok(Poll::Pending(seen))) => {
                last_seen = seen;
                last_error = None;
            }
            Ok(Err(e)) => {
                let e: anyhow::Error = e.into();
                last_seen = format!("error: {}", crate::kube::failure::render(&e));
                last_error = Some(e);
            }
            Err(_) => last_seen = format!("{last_seen} (the last probe did not answer in time)"),
        }
        progress.seen(&last_seen);
        if Instant::now() >= deadline {
            let diagnosis = last_error.as_ref().and_then(crate::checks::check::api_diagnosis);
            return Err(WaitTimeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last_seen,
                interrupted: false,
                diagnosis,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay().min(deadline.saturating_duration_since(Instant::now()))) => {}
            _ = crate::interrupt::interrupted() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_fast_and_doubles_to_the_waits_interval() {
        let mut b = Backoff::new(WaitOptions::new(Duration::from_secs(30)).interval);
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], Backoff::FIRST);
        assert_eq!(delays[1], Backoff::FIRST * 2);
        assert_eq!(*delays.last().unwrap(), Duration::from_millis(300));
        let mut eks = Backoff::new(WaitOptions::new(Duration::from_secs(25 * 60)).interval);
        assert_eq!((0..20).map(|_| eks.next_delay()).max().unwrap(), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn reports_the_last_state_seen_on_expiry() {
        let mut n = 0;
        let err = until("the answer", WaitOptions::new(Duration::from_millis(100)), || {
            n += 1;
            let seen = format!("attempt {n}");
            async move { Ok::<Poll<()>, anyhow::Error>(Poll::Pending(seen)) }
        })
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("waiting for the answer"), "{msg}");
        assert!(msg.contains("last seen: attempt"), "{msg}");
    }

    #[tokio::test]
    async fn returns_as_soon_as_ready_and_keeps_errors_as_last_seen() {
        let mut n = 0;
        let v = until("three", WaitOptions::new(Duration::from_secs(5)), || {
            n += 1;
            let k = n;
            async move {
                match k {
                    1 => Err(anyhow::anyhow!("connection refused")),
                    2 => Ok(Poll::Pending("two".into())),
                    _ => Ok(Poll::Ready(k)),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn an_api_that_kept_failing_to_the_deadline_is_the_diagnosis() {
        let err = until("the deployment", WaitOptions::new(Duration::from_millis(60)), || async {
            let status = kube::core::Status::failure("Too many requests", "TooManyRequests").with_code(429);
            Err::<Poll<()>, _>(anyhow::Error::new(kube::Error::Api(Box::new(status))).context("get deployment x"))
        })
        .await
        .unwrap_err();
        assert!(err.last_seen.contains("429 TooManyRequests: Too many requests"), "{}", err.last_seen);
        let d = err.diagnosis.expect("a diagnosis");
        assert!(d.cause.contains("the Kubernetes API kept failing: get deployment x"), "{}", d.cause);
        // A state that was only pending has no such diagnosis.
        let pending = until("the deployment", WaitOptions::new(Duration::from_millis(30)), || async {
            Ok::<Poll<()>, anyhow::Error>(Poll::Pending("0/1 ready".into()))
        })
        .await
        .unwrap_err();
        assert!(pending.diagnosis.is_none());
    }

    #[tokio::test]
    async fn a_hanging_probe_is_cut_at_the_deadline() {
        let err = until("a hang", WaitOptions::new(Duration::from_millis(50)), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<Poll<()>, anyhow::Error>(Poll::Pending("never".into()))
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("did not answer in time"));
    }
}
