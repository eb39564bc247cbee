//! Nothing is left behind: runs that provision through the AWS and Kubernetes
//! APIs of a twin served by `meshspec twin up --bare` are interrupted at
//! several points (SIGINT and SIGTERM); `meshspec reap --run-id` then removes
//! what each left, and the aws CLI finds nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{run_bounded, text, TwinUp};

fn with_env(cmd: &mut Command, bare: &TwinUp, home: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(&bare.env);
}

fn ledger_lines(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path()).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

fn aws(bare: &TwinUp, home: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("aws");
    with_env(&mut cmd, bare, home);
    let out = run_bounded(cmd.args(args), Duration::from_secs(60));
    assert!(out.status.success(), "aws {args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// When to interrupt a run, judged from its ledger so far.
type Point<'a> = (&'a str, &'a dyn Fn(&[String]) -> bool);

#[test]
fn reaping_an_interrupted_run_leaves_nothing() {
    let home = tempfile::tempdir().unwrap();
    let bare = TwinUp::bare();
    // Interruption points: while the VPCs are made, once a cluster is being
    // created, and once Kubernetes objects are being applied.
    let points: [Point; 3] = [
        ("INT", &|l| l.iter().any(|e| e.contains("\"subnet\""))),
        ("TERM", &|l| l.iter().any(|e| e.contains("\"EKS cluster\""))),
        ("INT", &|l| l.iter().filter(|e| e.contains("app.kubernetes.io/managed-by")).count() >= 5),
    ];
    for (signal, reached) in points {
        let ledgers = tempfile::tempdir().unwrap();
        let reports = tempfile::tempdir().unwrap();
        let mut run = Command::new(env!("CARGO_BIN_EXE_meshspec"));
        with_env(&mut run, &bare, home.path());
        let mut child = run
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "run",
                "--target",
                "eks",
                "--provisioner",
                "api",
                "--allow-provision",
                "eks-1,eks-2",
                "--ledger-dir",
            ])
            .arg(ledgers.path())
            .arg("--report-dir")
            .arg(reports.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !reached(&ledger_lines(ledgers.path())) {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before the interruption point");
            assert!(start.elapsed() < Duration::from_secs(60), "the run never reached the interruption point");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().unwrap().success());
        let _ = child.wait();
        let entries = ledger_lines(ledgers.path());
        let run_id =
            serde_json::from_str::<serde_json::Value>(&entries[0]).unwrap()["run_id"].as_str().unwrap().to_string();

        let mut reap = Command::new(env!("CARGO_BIN_EXE_meshspec"));
        with_env(&mut reap, &bare, home.path());
        reap.args(["reap", "--target", "eks", "--run-id", &run_id, "--ledger-dir"]).arg(ledgers.path());
        let out = run_bounded(&mut reap, Duration::from_secs(180));
        assert!(out.status.success(), "reap after {signal}: {}{}", text(&out.stdout), text(&out.stderr));

        assert_eq!(
            aws(&bare, home.path(), &["eks", "list-clusters"])["clusters"],
            serde_json::json!([]),
            "after {signal}"
        );
        assert_eq!(aws(&bare, home.path(), &["ec2", "describe-vpcs"])["Vpcs"], serde_json::json!([]), "after {signal}");
        assert_eq!(
            aws(&bare, home.path(), &["elbv2", "describe-load-balancers"])["LoadBalancers"],
            serde_json::json!([])
        );
        assert_eq!(
            aws(&bare, home.path(), &["ec2", "describe-network-interfaces"])["NetworkInterfaces"],
            serde_json::json!([])
        );
    }
}
