//! Never lose a report: a report directory is one run's at a time, the previous
//! run's reports stay whole until the new ones are, and SIGINT or SIGTERM end a
//! run with valid reports marked interrupted (a second signal exits at once).

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::harness::{run_bounded, signal, spawn_lines, text, wait_exit, whole_runs};

fn meshspec() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("KUBECONFIG").env_remove("MESHSPEC_TREND");
    cmd
}

/// A run of every feature on the twin, its stdout lines sent as they come.
fn start_run(report_dir: &Path) -> (Child, mpsc::Receiver<String>) {
    spawn_lines(meshspec().args(["run", "--report-dir"]).arg(report_dir))
}

/// Lines until one contains `needle` (panics after `limit`).
fn lines_until(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?} within {limit:?}; saw:\n{}", seen.join("\n")),
        }
    }
}

fn assert_reports_parse(dir: &Path) -> serde_json::Value {
    let json = std::fs::read(dir.join("cucumber.json")).unwrap();
    let features: serde_json::Value = serde_json::from_slice(&json).expect("cucumber.json parses");
    assert!(features.as_array().is_some_and(|a| !a.is_empty()), "cucumber.json holds features");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.trim_end().ends_with("</testsuites>"),
        "junit.xml is whole: {}",
        &junit[junit.len().saturating_sub(200)..]
    );
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    run
}

#[test]
fn a_second_run_into_the_same_report_dir_is_refused_and_the_previous_reports_stay_until_replaced() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    let previous = "<testsuites name=\"previous\"></testsuites>";
    std::fs::write(reports.path().join("junit.xml"), previous).unwrap();
    let (mut first, rx) = start_run(reports.path());
    lines_until(&rx, "Feature:", Duration::from_secs(120));
    // While the first runs, the previous reports are there, whole.
    assert_eq!(std::fs::read_to_string(reports.path().join("junit.xml")).unwrap(), previous);
    let second = run_bounded(meshspec().args(["run", "--report-dir"]).arg(reports.path()), Duration::from_secs(60));
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is in use by another meshspec run (pid "), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
    let status = wait_exit(&mut first, Duration::from_secs(300));
    assert!(status.success(), "the first run passes: {status}");
    let run = assert_reports_parse(reports.path());
    assert!(run.get("interrupted").is_none(), "{run}");
    assert_ne!(std::fs::read_to_string(reports.path().join("junit.xml")).unwrap(), previous);
    let trend = std::fs::read_to_string(reports.path().join("trend.jsonl")).unwrap();
    assert_eq!(trend.lines().count(), 1, "one run, one trend line: {trend}");
}

#[test]
fn sigint_and_sigterm_end_a_run_with_whole_reports_marked_interrupted() {
    let _turn = whole_runs();
    for name in ["INT", "TERM"] {
        let reports = tempfile::tempdir().unwrap();
        let (mut child, rx) = start_run(reports.path());
        // Once the first scenario has passed, the run is mid-way.
        lines_until(&rx, "✔", Duration::from_secs(120));
        let sent = Instant::now();
        signal(&child, name);
        let status = wait_exit(&mut child, Duration::from_secs(60));
        let took = sent.elapsed();
        let rest: Vec<String> = rx.try_iter().collect();
        let stdout = rest.join("\n");
        assert_eq!(status.code(), Some(130), "{name}: {stdout}");
        assert!(took < Duration::from_secs(20), "{name}: {took:?} to stop");
        assert!(stdout.lines().any(|l| l.ends_with(" failed") && l.contains(" passed, ")), "{stdout}");
        assert!(stdout.contains("interrupted: the scenarios not started are reported as failed"), "{stdout}");
        let run = assert_reports_parse(reports.path());
        assert_eq!(run["interrupted"], serde_json::json!(true), "{name}");
        let staging: Vec<_> = std::fs::read_dir(reports.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
            .collect();
        assert!(staging.is_empty(), "nothing half-written left: {staging:?}");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, rx) = start_run(reports.path());
    lines_until(&rx, "Feature:", Duration::from_secs(120));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert!(sent.elapsed() < Duration::from_secs(2), "{:?}", sent.elapsed());
}
