//! The trend file: one JSON line per run, appended, for nightly jobs to plot
//! per-scenario durations and outcomes over time. Default
//! `<report dir>/trend.jsonl`; `MESHSPEC_TREND` or `--trend FILE` move it
//! (e.g. to a cache that survives the CI workspace).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Outcome, Report};

pub const ENV: &str = "MESHSPEC_TREND";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioPoint {
    pub feature: String,
    pub scenario: String,
    pub concern: Option<String>,
    /// passed, failed or skipped (left out for the target).
    pub outcome: String,
    pub duration_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendLine {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub target: String,
    pub fault: Option<String>,
    pub tags: Option<String>,
    pub outcome: String,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub scenarios: Vec<ScenarioPoint>,
    /// Seconds from the start of the deployment to each convergence point (the last cluster's).
    #[serde(default)]
    pub convergence: std::collections::BTreeMap<String, f64>,
    /// Seconds each failed check took to name its cause.
    #[serde(default)]
    pub time_to_diagnosis: Vec<DiagnosisPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiagnosisPoint {
    pub check: String,
    pub seconds: f64,
    pub cause: Option<String>,
}

/// The run as one trend line. Scenarios filtered out by the tag expression
/// were not asked for and are not in it; those left out for the target are,
/// as skipped.
pub fn line(report: &Report) -> TrendLine {
    let m = &report.meta;
    let filtered =
        |why: &Option<String>| why.as_deref().is_some_and(|w| w.starts_with("filtered out by the tag expression"));
    let scenarios: Vec<ScenarioPoint> = report
        .scenarios()
        .filter(|(_, s)| !filtered(&s.not_run))
        .map(|(f, s)| ScenarioPoint {
            feature: f.name.clone(),
            scenario: s.name.clone(),
            concern: f.concern.clone(),
            outcome: s.outcome.as_str().to_string(),
            duration_s: (s.duration_ns as f64 / 1e6).round() / 1e3,
        })
        .collect();
    let count = |o: Outcome| scenarios.iter().filter(|s| s.outcome == o.as_str()).count();
    TrendLine {
        started_at: m.started_at,
        finished_at: m.finished_at,
        target: m.target.clone(),
        fault: m.fault.clone(),
        tags: m.tags.clone(),
        outcome: report.outcome().as_str().to_string(),
        passed: count(Outcome::Passed),
        failed: count(Outcome::Failed),
        skipped: count(Outcome::Skipped),
        scenarios,
        convergence: m.convergence.by_point().into_iter().map(|(p, at)| (p, (at * 1e3).round() / 1e3)).collect(),
        time_to_diagnosis: m
            .convergence
            .diagnosed
            .iter()
            .map(|d| DiagnosisPoint {
                check: d.check.clone(),
                seconds: (d.time_to_diagnosis * 1e3).round() / 1e3,
                cause: d.cause.clone(),
            })
            .collect(),
    }
}

/// Where the trend goes: the explicit path, else $MESHSPEC_TREND, else the report dir's trend.jsonl.
pub fn path(explicit: Option<&Path>, report_dir: &Path) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| report_dir.join("trend.jsonl"))
}

/// Append one line with a single write in append mode, so that earlier lines
/// are never rewritten. A previous writer that died mid-line left no newline:
/// this line then starts on a new one, and the broken line stays one broken line.
pub fn append(path: &Path, line: &TrendLine) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open the trend file {}", path.display()))?;
    let mut text = serde_json::to_string(line)?;
    text.push('\n');
    let len = f.metadata()?.len();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.insert(0, '\n');
        }
    }
    f.write_all(text.as_bytes()).with_context(|| format!("cannot append to {}", path.display()))
}

/// Every well-formed line of a trend file (broken lines are skipped).
pub fn read(path: &Path) -> Result<Vec<TrendLine>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(target: &str) -> TrendLine {
        TrendLine {
            started_at: None,
            finished_at: None,
            target: target.into(),
            fault: None,
            tags: None,
            outcome: "passed".into(),
            passed: 1,
            failed: 0,
            skipped: 0,
            scenarios: vec![ScenarioPoint {
                feature: "F".into(),
                scenario: "S".into(),
                concern: Some("sync".into()),
                outcome: "passed".into(),
                duration_s: 1.5,
            }],
            convergence: [("nlb_active".to_string(), 0.8)].into(),
            time_to_diagnosis: vec![],
        }
    }

    #[test]
    fn each_append_adds_one_whole_line_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nested/trend.jsonl");
        append(&p, &sample("twin")).unwrap();
        append(&p, &sample("eks")).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        let lines = read(&p).unwrap();
        assert_eq!(lines.iter().map(|l| l.target.as_str()).collect::<Vec<_>>(), ["twin", "eks"]);
    }

    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trend.jsonl");
        append(&p, &sample("first")).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"started_at\":nu").unwrap();
        append(&p, &sample("third")).unwrap();
        let lines = read(&p).unwrap();
        assert_eq!(lines.iter().map(|l| l.target.as_str()).collect::<Vec<_>>(), ["first", "third"]);
    }

    #[test]
    fn the_explicit_path_wins_over_the_default() {
        assert_eq!(path(Some(Path::new("/x/t.jsonl")), Path::new("r")), PathBuf::from("/x/t.jsonl"));
    }
}
