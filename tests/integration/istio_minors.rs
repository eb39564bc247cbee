//! Every Istio minor meshspec knows the facts of (fixtures/istio/releases.yaml):
//! the twin serves exactly that release's API versions, kubectl sees them, and
//! the run (every scenario but the fresh-twin ones) passes on each, reading and
//! writing Istio resources at a version the cluster serves.

use std::process::Command;
use std::time::Duration;

use super::harness::{run_bounded, text, whole_runs};

/// The topology of fixtures/ with another Istio version.
fn topology_with(dir: &std::path::Path, istio_version: &str) -> std::path::PathBuf {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/topology.yaml")).unwrap();
    let changed = seed.replace("istio_version: \"1.20.2\"", &format!("istio_version: \"{istio_version}\""));
    assert_ne!(seed, changed, "fixtures/topology.yaml pins istio_version 1.20.2");
    let path = dir.join(format!("topology-{istio_version}.yaml"));
    std::fs::write(&path, changed).unwrap();
    path
}

#[test]
fn the_suite_passes_on_every_istio_minor_in_the_table() {
    let _turn = whole_runs();
    let dir = tempfile::tempdir().unwrap();
    for release in meshspec::twin::istio::releases() {
        let reports = dir.path().join(&release.tag);
        let mut run = Command::new(env!("CARGO_BIN_EXE_meshspec"));
        run.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["run", "--tags", "not @twin", "--topology"])
            .arg(topology_with(dir.path(), &release.tag))
            .arg("--report-dir")
            .arg(&reports)
            .arg("--trend")
            .arg(dir.path().join("trend.jsonl"));
        let out = run_bounded(&mut run, Duration::from_secs(240));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "Istio {}:\n{stdout}\n{}", release.tag, text(&out.stderr));
        assert!(stdout.contains(" passed, 0 failed"), "Istio {}: {stdout}", release.tag);
    }
}

#[test]
fn an_unknown_istio_minor_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    run.current_dir(env!("CARGO_MANIFEST_DIR")).args(["run", "--topology"]).arg(topology_with(dir.path(), "1.19.9"));
    let out = run_bounded(&mut run, Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Istio 1.19.9 is not a release meshspec knows") && stderr.contains("1.20, 1.21"),
        "{stderr}"
    );
}
