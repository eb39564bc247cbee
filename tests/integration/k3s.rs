//! The k3s target end to end with the stand-in image (`meshspec k3s
//! standin-image`), through the binary and the machine's real Docker engine:
//! a whole run passes and leaves nothing; a failed provisioning, SIGINT, and
//! a killed run followed by `meshspec reap` leave nothing either. "Nothing"
//! is read from the engine by the run's labels.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::harness::{run_bounded, run_id, signal, spawn_lines, text, wait_exit, whole_runs};

const LIMIT: Duration = Duration::from_secs(600);

fn meshspec(ledgers: &Path) -> Command {
    super::harness::meshspec_with_ledgers(ledgers)
}

/// The stand-in image, built (or found) by the CLI as a user would.
fn standin_image() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bounded(meshspec(dir.path()).args(["k3s", "standin-image"]), Duration::from_secs(300));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let image = text(&out.stdout).trim().to_string();
    assert!(image.starts_with("meshspec-k3s-standin:"), "{image}");
    image
}

/// What the engine still holds of a run, by its labels.
fn left_of(run: &str) -> meshspec::containers::Found {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let docker = meshspec::containers::engine().await.expect("the tests need a Docker engine");
        meshspec::containers::find(&docker, run).await.unwrap()
    })
}

fn ledger_kinds(ledgers: &Path, run: &str) -> Vec<String> {
    let text = std::fs::read_to_string(ledgers.join(format!("{run}.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_k3s_target_with_the_standin_image_passes_every_feature_it_can_run_and_leaves_nothing() {
    let _turn = whole_runs();
    let image = standin_image();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let out = run_bounded(
        meshspec(ledgers.path())
            .args(["run", "--target", "k3s", "--k3s-image", &image, "--report-dir"])
            .arg(reports.path()),
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = run_id(&stdout);
    let summary = stdout.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or_default();
    assert!(summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 "), "{summary}");
    // What needs AWS is left out, with the reason.
    let left_out: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not run: ")).collect();
    assert!(!left_out.is_empty() && left_out.iter().all(|l| l.contains("@aws")), "{left_out:#?}");
    // Cross-network traffic answered from both versions in both clusters.
    let cucumber = std::fs::read_to_string(reports.path().join("cucumber.json")).unwrap();
    assert!(cucumber.contains("Requests from eks-1 reach both helloworld versions"));
    // Both networks and both containers were in the ledger before they existed; none is left.
    let kinds = ledger_kinds(ledgers.path(), &run);
    assert_eq!(kinds.iter().filter(|k| *k == "docker container").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "docker network").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "k3s files").count(), 1, "{kinds:?}");
    let left = left_of(&run);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_provisioning_that_fails_after_the_containers_started_removes_them() {
    let _turn = whole_runs();
    let image = standin_image();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    // Stage 2 waits for the AWS load balancer controller, which K3s never has.
    let plan = ledgers.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "stages:\n  - number: 1\n    name: infrastructure\n    summary: the clusters\n    steps: [clusters, cacerts]\n  - number: 2\n    name: control-plane\n    summary: never starts\n    preconditions: [load-balancer-controller-available]\n    steps: [istiod]\n",
    )
    .unwrap();
    let out = run_bounded(
        meshspec(ledgers.path())
            .args([
                "run",
                "--target",
                "k3s",
                "--k3s-image",
                &image,
                "--tags",
                "@sync",
                "--timeout-scale",
                "0.02",
                "--plan",
            ])
            .arg(&plan)
            .arg("--report-dir")
            .arg(reports.path()),
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let run = run_id(&stdout);
    assert!(stdout.contains("load-balancer-controller"), "{stdout}");
    assert!(ledger_kinds(ledgers.path(), &run).iter().any(|k| k == "docker container"), "{stdout}");
    let left = left_of(&run);
    assert!(left.is_empty(), "left behind: {left:?}\n{stdout}\n{stderr}");
}

/// Starts a whole k3s run; its stdout lines come through the channel.
fn start_run(image: &str, ledgers: &Path, reports: &Path) -> (Child, mpsc::Receiver<String>) {
    spawn_lines(meshspec(ledgers).args(["run", "--target", "k3s", "--k3s-image", image, "--report-dir"]).arg(reports))
}

/// The run id, once the run printed it and its first container exists.
fn wait_for_a_container(rx: &mpsc::Receiver<String>) -> String {
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("the run prints its id first");
    let run = run_id(&first);
    let end = Instant::now() + Duration::from_secs(120);
    while left_of(&run).containers.is_empty() {
        assert!(Instant::now() < end, "no container of run {run} within 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    run
}

#[test]
fn sigint_ends_a_k3s_run_and_its_containers_and_networks_go() {
    let _turn = whole_runs();
    let image = standin_image();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, rx) = start_run(&image, ledgers.path(), reports.path());
    let run = wait_for_a_container(&rx);
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(120));
    assert!(!status.success());
    let left = left_of(&run);
    assert!(left.is_empty(), "left behind after SIGINT: {left:?}");
}

#[test]
fn a_killed_k3s_run_is_reaped_from_its_ledger_and_labels() {
    let _turn = whole_runs();
    let image = standin_image();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, rx) = start_run(&image, ledgers.path(), reports.path());
    let run = wait_for_a_container(&rx);
    // SIGKILL: nothing of the run cleans up.
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(30));
    let before = left_of(&run);
    assert!(!before.containers.is_empty() && !before.networks.is_empty(), "{before:?}");
    let out = run_bounded(meshspec(ledgers.path()).args(["reap", "--target", "k3s", "--run-id", &run]), LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("reaped run {run}")), "{stdout}");
    let read = meshspec::ledger::read(ledgers.path(), &run).unwrap();
    let files =
        read.entries.iter().find(|e| e.kind == "k3s files").expect("the kubeconfigs' directory is in the ledger");
    assert!(!Path::new(&files.name).exists(), "{} (K3s' kubeconfigs, client keys) is left", files.name);
    let left = left_of(&run);
    assert!(left.is_empty(), "left behind after reap: {left:?}");
    // Another run's containers are never touched: the labels name the run.
    assert!(!stdout.contains("left:"), "{stdout}");
}

/// The same clusters without Docker: each a `meshspec k3s serve` process of its
/// own on a loopback address, reached only over TCP.
#[test]
fn the_k3s_target_as_processes_passes_the_suite_without_docker_and_leaves_no_process() {
    let _turn = whole_runs();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    // No engine is asked for: a DOCKER_HOST nobody answers at changes nothing.
    let out = run_bounded(
        meshspec(ledgers.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["run", "--target", "k3s", "--k3s-runtime", "processes", "--report-dir"])
            .arg(reports.path()),
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let run = run_id(&stdout);
    let summary = stdout.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or_default();
    assert!(summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 "), "{summary}");
    let kinds = ledger_kinds(ledgers.path(), &run);
    assert_eq!(kinds.iter().filter(|k| *k == "k3s process").count(), 2, "{kinds:?}");
    assert!(meshspec::containers::processes::find(&run).is_empty());
}

#[test]
fn a_killed_run_of_stand_in_processes_is_reaped() {
    let _turn = whole_runs();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, rx) = spawn_lines(
        meshspec(ledgers.path())
            .args(["run", "--target", "k3s", "--k3s-runtime", "processes", "--report-dir"])
            .arg(reports.path()),
    );
    let run = run_id(&rx.recv_timeout(Duration::from_secs(60)).expect("the run prints its id first"));
    let end = Instant::now() + Duration::from_secs(120);
    while meshspec::containers::processes::find(&run).len() < 2 {
        assert!(Instant::now() < end, "the stand-ins of {run} did not start within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(meshspec::containers::processes::find(&run).len(), 2, "SIGKILL leaves the stand-ins running");
    let out = run_bounded(
        meshspec(ledgers.path()).args(["reap", "--target", "k3s", "--k3s-runtime", "processes", "--run-id", &run]),
        LIMIT,
    );
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(meshspec::containers::processes::find(&run).is_empty());
    // Nor the directory of their kubeconfigs (client keys) and logs.
    let read = meshspec::ledger::read(ledgers.path(), &run).unwrap();
    let files = read.entries.iter().find(|e| e.kind == "k3s files").expect("the files' directory is in the ledger");
    assert!(!Path::new(&files.name).exists(), "{} is left", files.name);
}

#[test]
fn without_a_docker_engine_run_and_doctor_say_so_in_one_line() {
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let nobody = "unix:///nonexistent/docker.sock";
    let out = run_bounded(
        meshspec(ledgers.path())
            .env("DOCKER_HOST", nobody)
            .args(["run", "--target", "k3s", "--report-dir"])
            .arg(reports.path()),
        Duration::from_secs(60),
    );
    super::harness::expect_error(&out, &[&format!("no Docker engine answers at {nobody}"), "DOCKER_HOST"]);
    let out = run_bounded(
        meshspec(ledgers.path()).env("DOCKER_HOST", nobody).args(["doctor", "--target", "k3s"]),
        Duration::from_secs(60),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{stdout}");
    assert!(fails[0].starts_with(&format!("FAIL  docker engine: no Docker engine answers at {nobody}")), "{stdout}");
}
