//! How long the mesh took to converge, point by point, and how long each
//! failed check took to name its cause: recorded by the wait of every check
//! and by provisioning, reported on the page and in the trend.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::checks::check::{CheckFailure, Ending};

/// The points users follow, in the order a deployment reaches them.
pub const POINTS: &[(&str, &str)] = &[
    ("eks_active", "EKS cluster ACTIVE"),
    ("nlb_active", "NLB active"),
    ("targets_healthy", "every NLB target healthy"),
    ("hostname_resolving", "NLB hostname resolving"),
    ("remote_endpoints", "remote endpoints in the sidecar"),
    ("first_cross_network_request", "first cross-network request answered"),
];

/// Seconds to the millisecond: what is recorded reads back from JSON as written.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3).round() / 1e3
}

pub fn point_label(point: &str) -> &str {
    POINTS.iter().find(|(p, _)| *p == point).map(|(_, l)| *l).unwrap_or(point)
}

/// A point first seen holding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reached {
    pub point: String,
    /// The check (or provisioning step) that saw it, naming the cluster.
    pub check: String,
    /// Seconds from the start of the run's deployment (the session) to the moment it was seen.
    pub at: f64,
    /// Seconds the check waited for it.
    pub waited: f64,
}

/// A failed check and the time it took to name its cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosed {
    pub check: String,
    pub ending: Ending,
    /// Seconds from the start of the check's wait to its failure.
    pub time_to_diagnosis: f64,
    pub cause: Option<String>,
    /// The fault of the separate deployment the check ran against, if any.
    #[serde(default)]
    pub fault: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    pub reached: Vec<Reached>,
    pub diagnosed: Vec<Diagnosed>,
}

impl Convergence {
    /// The latest time each point was reached (over clusters), in `POINTS` order:
    /// when the whole deployment got there.
    pub fn by_point(&self) -> Vec<(String, f64)> {
        POINTS
            .iter()
            .filter_map(|(p, _)| {
                self.reached
                    .iter()
                    .filter(|r| r.point == *p)
                    .map(|r| r.at)
                    .reduce(f64::max)
                    .map(|at| (p.to_string(), at))
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct ConvergenceStore {
    started: Instant,
    inner: Mutex<Convergence>,
}

impl Default for ConvergenceStore {
    fn default() -> Self {
        ConvergenceStore { started: Instant::now(), inner: Mutex::default() }
    }
}

impl ConvergenceStore {
    /// A check held after waiting `waited`; the first time per check marks its point.
    pub fn held(&self, point: Option<&str>, check: &str, waited: Duration) {
        let Some(point) = point else { return };
        let mut c = self.inner.lock().expect("convergence lock");
        if c.reached.iter().any(|r| r.point == point && r.check == check) {
            return;
        }
        c.reached.push(Reached {
            point: point.to_string(),
            check: check.to_string(),
            at: ms(self.started.elapsed()),
            waited: ms(waited),
        });
    }

    pub fn failed(&self, f: &CheckFailure) {
        self.inner.lock().expect("convergence lock").diagnosed.push(Diagnosed {
            check: f.check.clone(),
            ending: f.ending,
            time_to_diagnosis: (f.waited * 1e3).round() / 1e3,
            cause: f.diagnosis.as_ref().map(|d| d.cause.clone()),
            fault: None,
        });
    }

    /// Merge the diagnoses a separate deployment recorded, labelled with its fault
    /// (its convergence points run on its own clock and stay with it).
    pub fn absorb(&self, other: &ConvergenceStore, fault: Option<&str>) {
        let theirs = other.snapshot();
        let mut c = self.inner.lock().expect("convergence lock");
        c.diagnosed.extend(theirs.diagnosed.into_iter().map(|mut d| {
            d.fault = d.fault.or(fault.map(str::to_string));
            d
        }));
    }

    pub fn snapshot(&self) -> Convergence {
        self.inner.lock().expect("convergence lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_marked_once_per_check_and_the_deployment_reaches_it_with_its_last_cluster() {
        let s = ConvergenceStore::default();
        s.held(Some("nlb_active"), "eks-1: NLB active", Duration::from_millis(10));
        s.held(Some("nlb_active"), "eks-1: NLB active", Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(5));
        s.held(Some("nlb_active"), "eks-2: NLB active", Duration::from_millis(10));
        s.held(None, "eks-2: cacerts", Duration::ZERO);
        let c = s.snapshot();
        assert_eq!(c.reached.len(), 2);
        let by = c.by_point();
        assert_eq!(by.len(), 1);
        assert_eq!(by[0].1, c.reached[1].at);
        assert!(c.reached[1].at > c.reached[0].at);
    }
}
