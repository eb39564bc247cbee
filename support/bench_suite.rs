//! `meshspec bench suite`: the whole suite on the twin, measured once (never
//! asserted): its wall time, how long provisioning took, each fault's time to
//! diagnosis, the convergence points and the peak memory, next to a previous
//! run's figures when given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::checks::check::Ending;
use crate::faults::{self, Fault};
use crate::runner::{self, RunOptions};
use crate::target::{TargetKind, TargetOptions};
use crate::topology::Topology;

/// One fault scenario of the suite's diagnosis feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultFigure {
    pub fault: String,
    /// The scenario from start to end: a fresh twin provisioned with the fault, then every check.
    pub scenario_s: f64,
    /// The first failed check's time to its diagnosis.
    pub first_diagnosis_s: Option<f64>,
    /// The slowest failed check's.
    pub slowest_diagnosis_s: Option<f64>,
    /// Failed checks that waited for their deadline instead of naming a definite break.
    pub deadline_waits: usize,
}

/// `meshspec run --fault NAME` on its own, from start to exit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRun {
    pub fault: String,
    pub wall_s: f64,
    pub failed_scenarios: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteFigures {
    pub measured_at: chrono::DateTime<chrono::Utc>,
    pub suite_wall_s: f64,
    pub passed: usize,
    pub failed: usize,
    /// The run's own deployment, first stage start to last stage end.
    pub provisioning_s: Option<f64>,
    /// Seconds from the start of the deployment to each convergence point.
    pub convergence: BTreeMap<String, f64>,
    pub faults: Vec<FaultFigure>,
    #[serde(default)]
    pub fault_runs: Vec<FaultRun>,
    /// The process's peak resident memory after the suite (VmHWM).
    pub peak_memory_mib: Option<f64>,
}

/// The process's peak resident set so far, from /proc/self/status (Linux).
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn twin() -> TargetOptions {
    TargetOptions::new(TargetKind::Twin, Topology::seed())
}

/// Run the suite once into `report_dir` and measure it; with `each_fault`, also
/// `run --fault NAME` for every fault, one after the other.
pub async fn measure(features: &Path, report_dir: &Path, each_fault: bool) -> Result<SuiteFigures> {
    let mut opts = RunOptions::new(twin());
    opts.features = features.to_path_buf();
    opts.report_dir = report_dir.to_path_buf();
    opts.trend = Some(report_dir.join("trend.jsonl"));
    let summary = runner::run(opts).await?;
    let peak = peak_memory_mib();
    let report = crate::report::model::load(report_dir, Some(features))?;
    let convergence = summary.convergence.clone();
    let mut fault_figures = Vec::new();
    for f in faults::ALL {
        let scenario = report.scenarios().find(|(_, s)| s.name.contains(&format!("\"{}\"", f.name())));
        let Some((_, s)) = scenario else { continue };
        let times: Vec<f64> = convergence
            .diagnosed
            .iter()
            .filter(|d| d.fault.as_deref() == Some(f.name()))
            .map(|d| d.time_to_diagnosis)
            .collect();
        fault_figures.push(FaultFigure {
            fault: f.name().to_string(),
            scenario_s: s.duration_ns as f64 / 1e9,
            first_diagnosis_s: times.iter().copied().reduce(f64::min),
            slowest_diagnosis_s: times.iter().copied().reduce(f64::max),
            deadline_waits: convergence
                .diagnosed
                .iter()
                .filter(|d| d.fault.as_deref() == Some(f.name()) && d.ending == Ending::Deadline)
                .count(),
        });
    }
    let mut fault_runs = Vec::new();
    if each_fault {
        for f in faults::ALL {
            fault_runs.push(fault_run(*f, features).await?);
        }
    }
    Ok(SuiteFigures {
        measured_at: chrono::Utc::now(),
        suite_wall_s: summary.wall_time.as_secs_f64(),
        passed: summary.tally.passed,
        failed: summary.tally.failed + summary.tally.skipped + summary.tally.parse_errors,
        provisioning_s: summary.provisioning.map(|d| d.as_secs_f64()),
        convergence: convergence.by_point().into_iter().collect(),
        faults: fault_figures,
        fault_runs,
        peak_memory_mib: peak,
    })
}

async fn fault_run(fault: Fault, features: &Path) -> Result<FaultRun> {
    let dir = tempfile::tempdir()?;
    let mut target = twin();
    target.fault = Some(fault);
    let mut opts = RunOptions::new(target);
    opts.features = features.to_path_buf();
    opts.report_dir = dir.path().to_path_buf();
    opts.trend = Some(dir.path().join("trend.jsonl"));
    let start = Instant::now();
    let summary = runner::run(opts).await.with_context(|| format!("run --fault {}", fault.name()))?;
    Ok(FaultRun {
        fault: fault.name().to_string(),
        wall_s: start.elapsed().as_secs_f64(),
        failed_scenarios: summary.tally.failed,
    })
}

pub fn read_baseline(path: &PathBuf) -> Result<SuiteFigures> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the baseline {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a `meshspec bench suite --json` file", path.display()))
}

/// The figures as a table, each next to the baseline's when there is one.
pub fn render(now: &SuiteFigures, base: Option<&SuiteFigures>) -> String {
    let mut rows: Vec<(String, Option<f64>, Option<f64>, &str)> = vec![
        ("suite wall time".into(), Some(now.suite_wall_s), base.map(|b| b.suite_wall_s), "s"),
        ("provisioning (the run's deployment)".into(), now.provisioning_s, base.and_then(|b| b.provisioning_s), "s"),
        ("peak memory".into(), now.peak_memory_mib, base.and_then(|b| b.peak_memory_mib), "MiB"),
    ];
    for (point, label) in crate::report::convergence::POINTS {
        let Some(at) = now.convergence.get(*point) else { continue };
        rows.push((
            format!("converged: {label}"),
            Some(*at),
            base.and_then(|b| b.convergence.get(*point).copied()),
            "s",
        ));
    }
    for f in &now.faults {
        let was = base.and_then(|b| b.faults.iter().find(|x| x.fault == f.fault));
        rows.push((format!("fault {}: scenario", f.fault), Some(f.scenario_s), was.map(|w| w.scenario_s), "s"));
        rows.push((
            format!("fault {}: slowest diagnosis ({} at a deadline)", f.fault, f.deadline_waits),
            f.slowest_diagnosis_s,
            was.and_then(|w| w.slowest_diagnosis_s),
            "s",
        ));
    }
    for r in &now.fault_runs {
        let was = base.and_then(|b| b.fault_runs.iter().find(|x| x.fault == r.fault));
        rows.push((format!("run --fault {}", r.fault), Some(r.wall_s), was.map(|w| w.wall_s), "s"));
    }
    let mut out = format!("{:<70} {:>10} {:>10}\n", "figure", "now", if base.is_some() { "baseline" } else { "" });
    let cell = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2} {unit}")).unwrap_or_else(|| "-".into());
    for (label, v, b, unit) in rows {
        let b = if base.is_some() { cell(b, unit) } else { String::new() };
        out.push_str(&format!("{label:<70} {:>10} {b:>10}\n", cell(v, unit)));
    }
    out.push_str(&format!("scenarios: {} passed, {} failed\n", now.passed, now.failed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(wall: f64) -> SuiteFigures {
        SuiteFigures {
            measured_at: chrono::Utc::now(),
            suite_wall_s: wall,
            passed: 36,
            failed: 0,
            provisioning_s: Some(1.2),
            convergence: [("nlb_active".to_string(), 0.9)].into(),
            faults: vec![FaultFigure {
                fault: "bad-reader-token".into(),
                scenario_s: 3.0,
                first_diagnosis_s: Some(0.01),
                slowest_diagnosis_s: Some(0.5),
                deadline_waits: 0,
            }],
            fault_runs: vec![],
            peak_memory_mib: Some(200.0),
        }
    }

    #[test]
    fn figures_print_next_to_the_baseline_and_read_back() {
        let now = figures(9.5);
        let base = figures(36.0);
        let table = render(&now, Some(&base));
        let wall = table.lines().find(|l| l.starts_with("suite wall time")).unwrap();
        assert!(wall.contains("9.50 s") && wall.contains("36.00 s"), "{wall}");
        assert!(table.contains("converged: NLB active"), "{table}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(&path, serde_json::to_vec(&base).unwrap()).unwrap();
        assert_eq!(read_baseline(&path).unwrap(), base);
        std::fs::write(&path, b"{}").unwrap();
        assert!(read_baseline(&path).is_err());
    }
}
