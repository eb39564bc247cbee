//! The twin as processes (`--twin-runtime processes`): the AWS endpoint in
//! one process, each EKS cluster in its own on a loopback address of its own.
//! The whole suite passes through the binary, every scenario included (the
//! `@aws` ones and each fault's fresh twin), and no process of the twin
//! outlives the run, even when meshspec is killed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{run_bounded, signal, spawn_lines, text, wait_exit, whole_runs};

const LIMIT: Duration = Duration::from_secs(900);

fn meshspec(ledgers: &Path) -> Command {
    super::harness::meshspec_with_ledgers(ledgers)
}

/// The pids of the twin's processes a meshspec process started: they carry
/// `MESHSPEC_RUN=twin-<its pid>-...` in their environment.
fn twin_processes_of(meshspec_pid: u32) -> Vec<(u32, String)> {
    let marker = format!("{}=twin-{meshspec_pid}-", meshspec_twin::processes::launch::RUN_ENV);
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|kv| kv.starts_with(marker.as_bytes()))
        })
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

#[test]
fn the_twin_as_processes_passes_the_whole_suite_and_leaves_no_process() {
    let _turn = whole_runs();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, rx) = spawn_lines(
        meshspec(ledgers.path())
            .args(["run", "--target", "twin", "--twin-runtime", "processes", "--report-dir"])
            .arg(reports.path()),
    );
    // While it runs: the AWS process and, once EKS made them, one process per cluster.
    let pid = child.id();
    let end = Instant::now() + Duration::from_secs(120);
    let mut seen = twin_processes_of(pid);
    while seen.iter().filter(|(_, c)| c.contains("twin serve-cluster")).count() < 2 {
        assert!(Instant::now() < end, "no two cluster processes within 120 s; saw {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
        seen = twin_processes_of(pid);
    }
    assert_eq!(seen.iter().filter(|(_, c)| c.contains("twin serve-aws")).count(), 1, "{seen:?}");
    let status = wait_exit(&mut child, LIMIT);
    let stdout: Vec<String> = rx.iter().collect();
    let stdout = stdout.join("\n");
    assert!(status.success(), "{stdout}");
    let summary = stdout.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or_default();
    assert!(summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 "), "{summary}");
    // Nothing left out: the AWS scenarios run too.
    assert!(!stdout.contains("not run: "), "{stdout}");
    assert!(twin_processes_of(pid).is_empty(), "{:?}", twin_processes_of(pid));
}

#[test]
fn a_killed_run_takes_the_twin_processes_with_it() {
    let _turn = whole_runs();
    let ledgers = tempfile::tempdir().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let (mut child, _rx) = spawn_lines(
        meshspec(ledgers.path())
            .args(["run", "--target", "twin", "--twin-runtime", "processes", "--report-dir"])
            .arg(reports.path()),
    );
    let pid = child.id();
    let end = Instant::now() + Duration::from_secs(120);
    while twin_processes_of(pid).len() < 3 {
        assert!(Instant::now() < end, "the twin's processes did not start within 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&child, "KILL");
    wait_exit(&mut child, Duration::from_secs(30));
    // Orphans notice their parent is gone and stop (the AWS process stops its clusters first).
    let end = Instant::now() + Duration::from_secs(30);
    while !twin_processes_of(pid).is_empty() {
        assert!(Instant::now() < end, "left running 30 s after SIGKILL: {:?}", twin_processes_of(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twin_runtime_is_refused_on_another_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bounded(
        meshspec(dir.path()).args(["doctor", "--target", "kind", "--twin-runtime", "processes"]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--twin-runtime is for the twin target, not kind"), "{}", text(&out.stderr));
}

/// Between the processes, a pod IP of the other cluster is not routed (two
/// VPCs without peering): curl from the sleep pod to it times out, while the
/// same workload is reached by name through the east-west gateway's NLB.
#[test]
fn a_remote_pod_ip_is_not_routed_between_the_clusters_processes() {
    use meshspec::mesh::traffic::{curl_once, Answer, Source};
    use meshspec::target::{twin::TwinRuntime, TargetKind, TargetOptions};
    let _turn = whole_runs();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut opts = TargetOptions::new(TargetKind::Twin, meshspec::topology::Topology::seed());
        opts.twin_runtime = TwinRuntime::Processes;
        opts.meshspec_binary = Some(env!("CARGO_BIN_EXE_meshspec").into());
        let session = meshspec::run::Session::open(opts).await.expect("the twin's processes start");
        let outcome = async {
            meshspec::provision::api::provision(&session).await?;
            let (one, two) = (session.kube("eks-1").await?, session.kube("eks-2").await?);
            let pods = |c: kube::Client| kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c, "sample");
            let lp = |l: &str| kube::api::ListParams::default().labels(l);
            let sleep = pods(one.clone()).list(&lp("app=sleep")).await?.items.remove(0);
            let remote = pods(two).list(&lp("app=helloworld")).await?.items.remove(0);
            let remote_ip = remote.status.and_then(|s| s.pod_ip).unwrap_or_default();
            let sleep_name = sleep.metadata.name.unwrap_or_default();
            let from = Source { client: &one, namespace: "sample", pod: &sleep_name, container: "sleep" };
            let direct = curl_once(&from, &format!("{remote_ip}:5000/hello"), Duration::from_secs(120)).await;
            // By name, through the gateway: v2 (the remote version) answers within a few tries.
            let mut v2 = false;
            for _ in 0..40 {
                if curl_once(&from, "helloworld.sample:5000/hello", Duration::from_secs(60)).await.version()
                    == Some("v2")
                {
                    v2 = true;
                    break;
                }
            }
            anyhow::Ok((remote_ip, direct, v2))
        }
        .await;
        session.close().await;
        let (remote_ip, direct, v2) = outcome.expect("provisioned and probed");
        assert!(
            matches!(&direct, Answer::NoHttp { curl } if curl.contains("(28)")),
            "{remote_ip}:5000 from the other cluster: {direct:?}"
        );
        assert!(v2, "the remote version never answered through the gateway");
    });
}
