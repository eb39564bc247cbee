//! Never hang: a credential plugin that never returns, an endpoint that accepts
//! and never answers, and one that answers garbage each end within a bound,
//! with the context or endpoint, the URL and the cause named, and nothing left
//! running.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{run_bounded, text};

const LIMIT: Duration = Duration::from_secs(120);

fn meshspec() -> Command {
    let mut cmd = super::bad_input::meshspec();
    cmd.env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-west-2");
    cmd
}

/// A server on 127.0.0.1 that accepts every connection and then, per connection,
/// either says nothing or writes `garbage`; returns its port.
fn stand_in_server(garbage: Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            if let Some(g) = garbage {
                let mut buf = [0u8; 512];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(g);
            }
            held.push(conn);
        }
    });
    port
}

fn kubeconfig(dir: &std::path::Path, server: &str, user: &str) -> std::path::PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: one\n  context:\n    cluster: c\n    user: u\n- name: two\n  context:\n    cluster: c\n    user: u\n\
             users:\n- name: u\n  user:\n{user}current-context: one\n"
        ),
    )
    .unwrap();
    path
}

/// A kubeconfig user whose exec plugin starts a child and never returns; the
/// child writes its pid so the test can see whether it was left running.
fn stuck_plugin(pidfile: &std::path::Path) -> String {
    format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args:\n      - -c\n      - sleep 600 & echo $! >> {}; wait\n",
        pidfile.display()
    )
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn assert_no_plugin_left(pidfile: &std::path::Path) {
    let pids = std::fs::read_to_string(pidfile).unwrap_or_default();
    assert!(!pids.trim().is_empty(), "the plugin never ran");
    for pid in pids.split_whitespace() {
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive(pid)
        });
        assert!(gone, "the plugin's child {pid} was left running");
    }
}

#[test]
fn an_exec_plugin_that_never_returns_is_stopped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("plugin.pids");
    let path = kubeconfig(dir.path(), "https://127.0.0.1:1", &stuck_plugin(&pidfile));
    for args in [
        vec!["run", "--target", "eks", "--context", "eks-1=one"],
        vec!["doctor", "--target", "eks", "--context", "eks-1=one"],
    ] {
        let _ = std::fs::remove_file(&pidfile);
        let reports = tempfile::tempdir().unwrap();
        let mut cmd = meshspec();
        cmd.args(&args).arg("--kubeconfig").arg(&path);
        // Nothing listens for AWS: eks-2, reached through EKS, fails at once.
        cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:1");
        if args[0] == "run" {
            cmd.arg("--report-dir").arg(reports.path());
        }
        let started = Instant::now();
        let out = run_bounded(&mut cmd, LIMIT);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{stdout}{stderr}");
        assert!(started.elapsed() < Duration::from_secs(75), "{args:?} took {:?}", started.elapsed());
        let all = format!("{stdout}{stderr}");
        assert!(
            all.contains("the credential plugin `sh` of context \"one\" gave no credential within 30s"),
            "{args:?}: {all}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_no_plugin_left(&pidfile);
    }
}

#[test]
fn an_api_server_that_never_answers_and_one_that_answers_garbage_are_told_apart() {
    let silent = stand_in_server(None);
    let garbage = stand_in_server(Some(b"SSH-2.0-OpenSSH_9.6\r\n"));
    for (port, cause) in [(silent, "timed out"), (garbage, "the answer is not HTTP")] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("https://127.0.0.1:{port}");
        let path = kubeconfig(dir.path(), &url, "    token: not-a-real-token\n");
        let reports = tempfile::tempdir().unwrap();
        let mut cmd = meshspec();
        cmd.args(["run", "--target", "eks", "--context", "eks-1=one", "--kubeconfig"])
            .arg(&path)
            .arg("--report-dir")
            .arg(reports.path());
        let started = Instant::now();
        let out = run_bounded(&mut cmd, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
        let want = format!("the API server of eks-1 (context \"one\") at {url}/ does not answer: {cause}");
        assert!(stderr.contains(&want), "{want:?} in {stderr}");
    }
}

#[test]
fn an_aws_endpoint_that_never_answers_is_named_within_its_bound_and_doctor_shows_findings_as_they_come() {
    let port = stand_in_server(None);
    let endpoint = format!("http://127.0.0.1:{port}");
    let reports = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = run_bounded(
        meshspec()
            .args(["run", "--target", "eks"])
            .env("AWS_ENDPOINT_URL", &endpoint)
            .arg("--report-dir")
            .arg(reports.path()),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(45), "{:?}", started.elapsed());
    assert!(
        stderr.contains(&format!("the AWS endpoint {endpoint} does not answer ListClusters: timed out")),
        "{stderr}"
    );

    // doctor: its first finding is printed before the AWS check ends.
    let mut child = meshspec()
        .args(["doctor", "--target", "eks"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).unwrap();
    assert!(child.try_wait().unwrap().is_none(), "doctor ended before its slow check");
    assert!(text(&first[..n]).contains("target"), "{}", text(&first[..n]));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(rest.contains(&format!("the AWS endpoint {endpoint} does not answer GetCallerIdentity")), "{rest}");
    assert!(rest.contains("not examined: the AWS endpoint does not answer"), "{rest}");
}

#[test]
fn doctor_with_no_arguments_passes_on_its_default_target() {
    let out = run_bounded(meshspec().arg("doctor"), LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("doctor: ") && stdout.contains(" 0 failed"), "{stdout}");
}
