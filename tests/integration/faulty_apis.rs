//! Faulty APIs are survived or named, never hung on: the twin's Kubernetes and
//! AWS endpoints throttle, fail, slow down, cut connections and end watches
//! early at a rate set per run (`--api-faults`). At 5% the retries of the SDK,
//! kube-rs and meshspec carry the suite; at 30% it still ends within its
//! deadlines; at 100% of one API it fails with a diagnosis naming that API.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{run_bounded, text, whole_runs};

fn run(args: &[&str], reports: &Path, limit: Duration) -> (Option<i32>, String, String, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env_remove("MESHSPEC_TREND").arg("run").args(args);
    cmd.arg("--report-dir").arg(reports);
    let started = Instant::now();
    let out = run_bounded(&mut cmd, limit);
    (out.status.code(), text(&out.stdout), text(&out.stderr), started.elapsed())
}

fn closing(stdout: &str) -> (usize, usize) {
    let line =
        stdout.lines().rev().find(|l| l.contains(" passed, ") && l.ends_with(" failed")).expect("a closing line");
    let n: Vec<usize> = line.split_whitespace().filter_map(|w| w.trim_end_matches(',').parse().ok()).collect();
    (n[0], n[1])
}

fn run_json(reports: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(reports.join("run.json")).expect("run.json")).expect("run.json parses")
}

#[test]
fn at_five_percent_every_scenario_passes() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, _) = run(&["--api-faults", "0.05"], reports.path(), Duration::from_secs(600));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (passed, failed) = closing(&stdout);
    assert!(passed > 0 && failed == 0, "{stdout}");
    assert_eq!(run_json(reports.path())["api_faults"], serde_json::json!({"kubernetes": 0.05, "aws": 0.05}));
}

#[test]
fn at_thirty_percent_the_run_ends_within_its_deadlines_with_whole_reports() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, took) = run(&["--api-faults", "0.3"], reports.path(), Duration::from_secs(900));
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Retries carry most calls; a call that fails past them fails its scenario
    // (with the API's own error in the step's output), never the run's end.
    let (passed, failed) = closing(&stdout);
    match code {
        Some(0) => assert_eq!(failed, 0),
        Some(1) => {
            assert!(failed > 0);
            assert!(!stdout.contains("Status {"), "no Rust Debug in what the user reads: {stdout}");
        }
        other => panic!("exit {other:?}: {stdout}\n{stderr}"),
    }
    assert!(passed + failed > 0);
    run_json(reports.path());
    eprintln!("30% API faults: {passed} passed, {failed} failed in {took:?}");
}

#[test]
fn when_the_kubernetes_api_always_fails_the_run_names_it() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, _) =
        run(&["--api-faults", "kube=1,aws=0", "--tags", "not @diagnosis"], reports.path(), Duration::from_secs(600));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let diagnosis = stdout.lines().find(|l| l.starts_with("diagnosis: ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(diagnosis.contains("the Kubernetes API kept failing"), "{diagnosis}");
    assert!(!diagnosis.contains("Status {"), "no Rust Debug in what the user reads: {diagnosis}");
    let run = run_json(reports.path());
    assert_eq!(run["api_faults"]["kubernetes"], serde_json::json!(1.0));
}

#[test]
fn when_the_aws_api_always_misbehaves_the_run_fails_and_names_it() {
    let _turn = whole_runs();
    let reports = tempfile::tempdir().unwrap();
    // Every AWS request meets a fault; a quarter of them are only slow, so the
    // run may get past its preflight before a call fails past its retries.
    let (code, stdout, stderr, took) =
        run(&["--api-faults", "aws=1", "--tags", "not @diagnosis"], reports.path(), Duration::from_secs(600));
    assert!(!stderr.contains("panicked"), "{stderr}");
    match code {
        Some(2) => assert!(stderr.contains("AWS preflight failed") && stderr.contains("ListClusters"), "{stderr}"),
        Some(1) => {
            let diagnosis = stdout.lines().find(|l| l.starts_with("diagnosis: ")).unwrap_or_else(|| panic!("{stdout}"));
            assert!(
                diagnosis.contains("the AWS API kept failing") || diagnosis.contains("the AWS endpoint"),
                "{diagnosis}"
            );
            run_json(reports.path());
        }
        other => panic!("exit {other:?} after {took:?}: {stdout}\n{stderr}"),
    }
}

#[test]
fn a_rate_out_of_range_or_on_another_target_is_refused() {
    let reports = tempfile::tempdir().unwrap();
    let (code, _, stderr, _) = run(&["--api-faults", "1.5"], reports.path(), Duration::from_secs(60));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not between 0 and 1"), "{stderr}");
    let (code, _, stderr, _) =
        run(&["--target", "eks", "--api-faults", "0.1"], reports.path(), Duration::from_secs(60));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--api-faults needs --target twin"), "{stderr}");
}
