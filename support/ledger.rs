//! The run ledger: every resource meshspec is about to create, written (and
//! flushed) BEFORE the create call, so that an interrupted run can be reaped
//! (`meshspec reap --run-id ID`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub run_id: String,
    pub target: String,
    pub cluster: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

pub struct Ledger {
    pub run_id: String,
    pub path: PathBuf,
    target: String,
    file: Mutex<std::fs::File>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ledger({})", self.path.display())
    }
}

/// Where ledgers live unless told: beside the reports' default, outside any clone.
pub fn default_dir() -> PathBuf {
    std::env::var_os("MESHSPEC_LEDGER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("meshspec-ledger"))
}

pub fn path_for(dir: &Path, run_id: &str) -> PathBuf {
    dir.join(format!("{run_id}.jsonl"))
}

impl Ledger {
    pub fn create(dir: &Path, target: &str) -> Result<Ledger> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the ledger directory {}", dir.display()))?;
        let run_id = format!("{}-{:08x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), rand::random::<u32>());
        let path = path_for(dir, &run_id);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create the ledger {}", path.display()))?;
        Ok(Ledger { run_id, path, target: target.to_string(), file: Mutex::new(file) })
    }

    /// Record a resource about to be created; durable before this returns.
    pub fn record(&self, cluster: &str, kind: &str, name: &str, tags: Vec<(String, String)>) -> Result<()> {
        let entry = Entry {
            run_id: self.run_id.clone(),
            target: self.target.clone(),
            cluster: cluster.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            tags,
        };
        let mut line = serde_json::to_string(&entry)?;
        line.push('\n');
        let mut f = self.file.lock().expect("ledger lock");
        f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).context("cannot write the ledger")
    }
}

pub fn read(dir: &Path, run_id: &str) -> Result<Vec<Entry>> {
    let path = path_for(dir, run_id);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("no ledger for run {run_id} at {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a broken ledger line: {l}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_durable_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::create(dir.path(), "twin").unwrap();
        ledger.record("eks-1", "VPC", "eks-1-vpc", vec![("k".into(), "v".into())]).unwrap();
        ledger.record("eks-1", "EKS cluster", "eks-1", vec![]).unwrap();
        let entries = read(dir.path(), &ledger.run_id).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].kind.as_str(), entries[1].name.as_str()), ("VPC", "eks-1"));
        assert!(read(dir.path(), "nope").unwrap_err().to_string().contains("no ledger for run nope"));
    }
}
