//! What a simulated program prints, kept per pod (istiod's lines are what the
//! reference quotes, e.g. `Use local CA certificate`), also sent to tracing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Lines kept per program; older ones fall off.
const KEPT: usize = 1000;

/// A program's log, in istio's format: `<RFC 3339 time>\t<level>\t<message>`.
#[derive(Clone, Debug, Default)]
pub struct ProgramLog {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl ProgramLog {
    pub fn info(&self, msg: &str) {
        tracing::info!("{msg}");
        self.push("info", msg);
    }

    pub fn warn(&self, msg: &str) {
        tracing::warn!("{msg}");
        self.push("warn", msg);
    }

    pub fn error(&self, msg: &str) {
        tracing::warn!("{msg}");
        self.push("error", msg);
    }

    fn push(&self, level: &str, msg: &str) {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT {
            lines.pop_front();
        }
        lines.push_back(format!("{now}\t{level}\t{msg}"));
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Whether any line contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|l| l.contains(text))
    }
}
