//! What a simulated program prints: lines written into its container's log
//! (the cluster's `PodLogs`, served by `kubectl logs`), also sent to tracing.
//!
//! Istio's programs (istiod, pilot-agent) write Istio's console format
//! (Istio 1.20.2 pkg/log/config.go: `formatDate`, UTC with microseconds;
//! the console encoder's tab-separated time, level, scope (left out for the
//! default scope) and message; pkg/log/scope.go: labels after a tab as
//! `key=value` separated by spaces).

use std::sync::Arc;

use crate::kube::PodLogs;

/// One container's log, as its program writes it.
#[derive(Clone)]
pub struct ProgramLog {
    logs: Arc<PodLogs>,
    pod_uid: String,
    container: String,
}

impl std::fmt::Debug for ProgramLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProgramLog({}/{})", self.pod_uid, self.container)
    }
}

impl ProgramLog {
    pub fn new(logs: Arc<PodLogs>, pod_uid: &str, container: &str) -> ProgramLog {
        ProgramLog { logs, pod_uid: pod_uid.to_owned(), container: container.to_owned() }
    }

    /// An Istio `info` line of the default scope.
    pub fn info(&self, msg: &str) {
        tracing::info!("{msg}");
        self.istio("info", None, msg);
    }

    pub fn warn(&self, msg: &str) {
        tracing::warn!("{msg}");
        self.istio("warn", None, msg);
    }

    pub fn error(&self, msg: &str) {
        tracing::warn!("{msg}");
        self.istio("error", None, msg);
    }

    /// An Istio line of a named scope (`ads`, `controllers`, ...).
    pub fn scoped(&self, level: &str, scope: &str, msg: &str) {
        tracing::info!("{scope}: {msg}");
        self.istio(level, Some(scope), msg);
    }

    fn istio(&self, level: &str, scope: Option<&str>, msg: &str) {
        let now = self.logs.now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let line = match scope {
            Some(scope) => format!("{now}\t{level}\t{scope}\t{msg}"),
            None => format!("{now}\t{level}\t{msg}"),
        };
        self.logs.write(&self.pod_uid, &self.container, &line);
    }

    /// A line exactly as given (programs with their own formats).
    pub fn raw(&self, line: &str) {
        tracing::debug!("{line}");
        self.logs.write(&self.pod_uid, &self.container, line);
    }

    /// The lines of the container's current log.
    pub fn lines(&self) -> Vec<String> {
        self.logs.texts(&self.pod_uid, &self.container)
    }

    /// Whether any line contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.lines().iter().any(|l| l.contains(text))
    }
}
