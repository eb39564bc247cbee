//! What a loaded or restarting kube-apiserver answers, injected at a rate set
//! per run, so that clients are shown to survive it or to name it. Each answer
//! is the one the apiserver's own code writes (k8s.io/apiserver, kubernetes
//! and apimachinery, read at their main branches' heads in this session, not at a release tag):
//! - 429, `Retry-After: 1`, plain text "Too many requests, please try again
//!   later." (pkg/server/filters/maxinflight.go `retryAfter = "1"`; the body is
//!   `http.Error`'s, priority-and-fairness.go `tooManyRequests`);
//! - 503 Status `ServiceUnavailable` "apiserver is shutting down", `Retry-After: 1`
//!   (pkg/server/filters/waitgroup.go);
//! - 500 Status `ServerTimeout` with `retryAfterSeconds: 2` and `Retry-After: 2`
//!   when storage does not answer (pkg/storage/errors/storage.go → apimachinery
//!   errors.NewServerTimeout; responsewriters sets the header from the details);
//! - a slow answer, a connection closed before any answer, and a watch that
//!   ends early and cleanly (as one does when the server's watch timeout or a
//!   load balancer cuts it).

use std::time::Duration;

use rand::Rng;

/// The share of requests that meet a fault (0 = none, 1 = every one).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ApiFaults {
    rate: f64,
}

/// One injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    TooManyRequests,
    ShuttingDown,
    StorageTimeout,
    Slow(Duration),
    /// The connection closes before an answer. Only reads meet it: after a
    /// dropped write a client cannot know whether it was done, and neither
    /// client-go (rest/request.go retries GETs only) nor kube-rs retries it.
    Dropped,
    /// A watch that ends, cleanly, after this long.
    WatchEndsEarly(Duration),
}

impl ApiFaults {
    pub fn at_rate(rate: f64) -> Self {
        ApiFaults { rate: rate.clamp(0.0, 1.0) }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The fault this request meets, if any.
    pub fn pick(&self, read: bool, watch: bool) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut rng = rand::rng();
        if !rng.random_bool(self.rate) {
            return None;
        }
        let slow = Fault::Slow(Duration::from_millis(rng.random_range(500..=1500)));
        let mut kinds = vec![Fault::TooManyRequests, Fault::ShuttingDown, slow];
        if watch {
            kinds.push(Fault::WatchEndsEarly(Duration::from_millis(rng.random_range(50..=1000))));
        } else {
            kinds.push(Fault::StorageTimeout);
        }
        if read {
            kinds.push(Fault::Dropped);
        }
        Some(kinds[rng.random_range(0..kinds.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_kept_and_writes_are_never_dropped() {
        assert_eq!(ApiFaults::default().pick(true, false), None);
        let all = ApiFaults::at_rate(1.0);
        let picks: Vec<Fault> = (0..2000).map(|_| all.pick(false, false).unwrap()).collect();
        assert!(!picks.contains(&Fault::Dropped));
        assert!(picks.contains(&Fault::TooManyRequests) && picks.contains(&Fault::StorageTimeout));
        let some = ApiFaults::at_rate(0.3);
        let hit = (0..10_000).filter(|_| some.pick(true, false).is_some()).count();
        assert!((2_500..3_500).contains(&hit), "{hit}");
        assert!((0..500).any(|_| matches!(all.pick(true, true), Some(Fault::WatchEndsEarly(_)))));
    }
}
