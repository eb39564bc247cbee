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

/// The run id format `Ledger::create` writes: a UTC timestamp and 8 hex digits.
const RUN_ID_TIME: &str = "%Y%m%dT%H%M%SZ";

/// Whether `run_id` has the form meshspec writes (e.g. `20261202T113048Z-0a1b2c3d`);
/// anything else (a path, `..`) never names a file.
pub fn parse_run_id(run_id: &str) -> Result<&str, BadRunId> {
    let bad = || BadRunId(run_id.to_string());
    let (time, suffix) = run_id.split_once('-').ok_or_else(bad)?;
    let time_ok = time.len() == 16 && chrono::NaiveDateTime::parse_from_str(time, RUN_ID_TIME).is_ok();
    let suffix_ok = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if time_ok && suffix_ok {
        Ok(run_id)
    } else {
        Err(bad())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a run id meshspec writes (YYYYMMDDTHHMMSSZ-xxxxxxxx, as `run id:` printed it)")]
pub struct BadRunId(pub String);

/// A ledger line that does not parse (a run killed while writing it leaves one cut).
#[derive(Clone, Debug, PartialEq)]
pub struct DamagedLine {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub reason: String,
    /// Whether it is the file's last line (what a write cut short leaves).
    pub last: bool,
}

impl std::fmt::Display for DamagedLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: a damaged ledger line, skipped ({})", self.path.display(), self.line, self.reason)
    }
}

/// What a ledger holds: every complete entry, and the lines that are not.
#[derive(Clone, Debug, Default)]
pub struct Read {
    pub entries: Vec<Entry>,
    pub damaged: Vec<DamagedLine>,
}

impl Ledger {
    pub fn create(dir: &Path, target: &str) -> Result<Ledger> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the ledger directory {}", dir.display()))?;
        let run_id = format!("{}-{:08x}", chrono::Utc::now().format(RUN_ID_TIME), rand::random::<u32>());
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

/// The ledger of `run_id`: its complete entries in order, and its damaged lines
/// by number, so that one cut line never hides the resources before it.
pub fn read(dir: &Path, run_id: &str) -> Result<Read> {
    let run_id = parse_run_id(run_id)?;
    let path = path_for(dir, run_id);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("no ledger for run {run_id} at {}", path.display()))?;
    let mut read = Read::default();
    let count = text.lines().count();
    for (i, l) in text.lines().enumerate() {
        let last = i + 1 == count;
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(l) {
            Ok(e) if e.run_id == run_id => read.entries.push(e),
            Ok(e) => read.damaged.push(DamagedLine {
                path: path.clone(),
                line: i + 1,
                reason: format!("it belongs to run {}", e.run_id),
                last,
            }),
            Err(e) => read.damaged.push(DamagedLine { path: path.clone(), line: i + 1, reason: e.to_string(), last }),
        }
    }
    Ok(read)
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
        let entries = read(dir.path(), &ledger.run_id).unwrap().entries;
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].kind.as_str(), entries[1].name.as_str()), ("VPC", "eks-1"));
        let missing = "20260101T000000Z-00000000";
        assert!(read(dir.path(), missing).unwrap_err().to_string().contains("no ledger for run 2026"));
    }

    #[test]
    fn a_cut_last_line_is_named_and_the_lines_before_it_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::create(dir.path(), "eks").unwrap();
        ledger.record("eks-1", "VPC", "eks-1-vpc", vec![]).unwrap();
        ledger.record("eks-2", "VPC", "eks-2-vpc", vec![]).unwrap();
        // What a run killed in the middle of a write leaves.
        let mut f = std::fs::OpenOptions::new().append(true).open(&ledger.path).unwrap();
        f.write_all(br#"{"run_id":"x","target":"eks","clus"#).unwrap();
        let read = read(dir.path(), &ledger.run_id).unwrap();
        assert_eq!(read.entries.len(), 2);
        assert_eq!(read.damaged.len(), 1);
        assert_eq!((read.damaged[0].line, read.damaged[0].last), (3, true));
        let shown = read.damaged[0].to_string();
        assert!(shown.starts_with(&format!("{}:3: a damaged ledger line", ledger.path.display())), "{shown}");
    }

    #[test]
    fn only_run_ids_of_meshspecs_form_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::create(dir.path(), "eks").unwrap();
        assert!(parse_run_id(&ledger.run_id).is_ok());
        for bad in [
            "../../x",
            "20261202T113048Z-0a1b2c3d/../../etc",
            "x",
            "",
            "20261302T113048Z-0a1b2c3d",
            "20261202T113048Z-0A1B2C3D",
            "20261202T113048Z-0a1b2c3",
        ] {
            let e = read(dir.path(), bad).unwrap_err();
            assert!(e.downcast_ref::<BadRunId>().is_some(), "{bad}: {e:#}");
        }
    }
}
