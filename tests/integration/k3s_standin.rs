//! `meshspec k3s serve server ...` as a process, the way the stand-in image
//! runs it: K3s flags in, the kubeconfig file and the ready line out, a
//! client certificate that lists nodes, and exit 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

const READY: &str = "Node controller sync successful";

fn meshspec() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.env_remove("KUBECONFIG").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

#[test]
fn an_unknown_k3s_flag_is_refused_in_one_line() {
    let out = meshspec().args(["k3s", "serve", "server", "--no-such-flag", "x"]).output().expect("run meshspec");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit: {:?}", out.status);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("flag provided but not defined: -no-such-flag"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Starts `meshspec k3s serve server` with `extra` flags on 127.0.0.4 and
/// waits (60 s at most) for the ready line; returns the child and stderr so far.
fn serve_until_ready(kubeconfig_path: &std::path::Path, extra: &[&str]) -> (std::process::Child, Vec<String>) {
    let mut child = meshspec()
        .args([
            "k3s",
            "serve",
            "server",
            "--snapshotter=native",
            "--bind-address",
            "127.0.0.4",
            "--node-ip",
            "127.0.0.4",
            "--node-name",
            "k3s-it",
            "--disable",
            "traefik",
        ])
        .args(extra)
        .arg("--write-kubeconfig")
        .arg(kubeconfig_path)
        .env("K3S_KUBECONFIG_MODE", "644")
        .spawn()
        .expect("start meshspec k3s serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|l| l.contains(READY)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("no ready line within 60 s; stderr so far:\n{}", seen.join("\n"));
            }
        }
    }
    (child, seen)
}

/// Sends `signal` and expects a clean exit 0 within 15 s, the port closed.
fn stop_with(mut child: std::process::Child, signal: i32, port: u16) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 15 s after signal {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit after signal {signal}");
    assert!(std::net::TcpStream::connect(("127.0.0.4", port)).is_err(), "port {port} is closed");
}

#[test]
fn the_standin_stops_on_sigint_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let (child, _) = serve_until_ready(&dir.path().join("k3s.yaml"), &["--https-listen-port", "6444"]);
    assert!(std::net::TcpStream::connect("127.0.0.4:6444").is_ok(), "--https-listen-port honoured");
    stop_with(child, libc::SIGINT, 6444);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standin_serves_k3s_interface_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig_path = dir.path().join("k3s.yaml");
    let (child, seen) = serve_until_ready(&kubeconfig_path, &[]);
    assert!(seen.iter().any(|l| l.contains("Wrote kubeconfig")), "{seen:?}");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&kubeconfig_path).expect("kubeconfig written").permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "K3S_KUBECONFIG_MODE honoured");
    let kc = Kubeconfig::read_from(&kubeconfig_path).expect("kubeconfig parses");
    assert_eq!(kc.current_context.as_deref(), Some("default"));
    let server = kc.clusters[0].cluster.as_ref().and_then(|c| c.server.clone());
    assert_eq!(server.as_deref(), Some("https://127.0.0.4:6443"));
    let user = kc.auth_infos[0].auth_info.as_ref().expect("user");
    assert!(user.client_certificate_data.is_some() && user.token.is_none(), "a client certificate, no token");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(version.git_version, "v1.28.8+k3s1");
    let nodes =
        Api::<Node>::all(client.clone()).list(&ListParams::default()).await.expect("list nodes as system:admin");
    assert_eq!(nodes.items.len(), 1);
    let node = &nodes.items[0];
    assert_eq!(node.metadata.name.as_deref(), Some("k3s-it"));
    let addresses = node.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.4"), "{addresses:?}");

    // SIGTERM: a prompt, clean exit 0, the port closed.
    stop_with(child, libc::SIGTERM, 6443);
}
