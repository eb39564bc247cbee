//! Every Istio minor meshspec knows the facts of (fixtures/istio/releases.yaml):
//! the twin serves exactly that release's API versions, kubectl sees them, and
//! the run (every scenario but the fresh-twin ones) passes on each, reading and
//! writing Istio resources at a version the cluster serves.

use std::process::Command;
use std::time::Duration;

use super::harness::{run_bounded, text, whole_runs, TwinUp};

/// The topology of fixtures/ with another Istio version.
fn topology_with(dir: &std::path::Path, istio_version: &str) -> std::path::PathBuf {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/topology.yaml")).unwrap();
    let changed = seed.replace("istio_version: \"1.20.2\"", &format!("istio_version: \"{istio_version}\""));
    assert!(seed.contains("istio_version: \"1.20.2\""), "fixtures/topology.yaml pins istio_version 1.20.2");
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

#[test]
fn twin_up_runs_the_istio_release_of_its_topology() {
    let dir = tempfile::tempdir().unwrap();
    for (version, preferred, v1_served) in [("1.20.2", "v1beta1", false), ("1.27.9", "v1", true)] {
        let topology = topology_with(dir.path(), version);
        let up = TwinUp::with_args(&["--topology", topology.to_str().unwrap()]);
        let ctx = up.env["CTX_CLUSTER1"].clone();
        let group: serde_json::Value =
            serde_json::from_str(&up.kubectl(&["--context", &ctx, "get", "--raw", "/apis/networking.istio.io"]))
                .unwrap();
        assert_eq!(group["preferredVersion"]["version"], preferred, "Istio {version}: {group}");
        let served: Vec<&str> =
            group["versions"].as_array().unwrap().iter().filter_map(|v| v["version"].as_str()).collect();
        assert_eq!(served.contains(&"v1"), v1_served, "Istio {version}: {served:?}");
        // The seed's Gateway is there, at whatever version the release stores it.
        let gw = up.kubectl(&[
            "--context",
            &ctx,
            "get",
            "gateways.networking.istio.io",
            "-n",
            "istio-ingress",
            "-o",
            "name",
        ]);
        assert_eq!(gw.trim(), "gateway.networking.istio.io/cross-network-gateway", "Istio {version}");
    }
}
