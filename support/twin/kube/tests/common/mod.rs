//! A twin API server started in-process and clients pointed at it: a kubeconfig
//! in a temporary directory and kubectl runs bounded by a timeout.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use meshspec_twin_kube::{ApiServer, ApiServerConfig, Store, TwinCa};

pub const TOKEN: &str = "twin-test-token";
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Twin {
    pub server: ApiServer,
    pub store: Arc<Store>,
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "kubectl failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        &self.stdout
    }
}

/// kube-rs and rustls users in one test binary may enable several crypto providers.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub async fn start() -> Twin {
    start_with(ApiServerConfig::default()).await
}

pub async fn start_with(cfg: ApiServerConfig) -> Twin {
    start_store(Store::new(), cfg).await
}

pub async fn start_store(store: Arc<Store>, cfg: ApiServerConfig) -> Twin {
    start_full(store, cfg, Arc::new(|token: &str| token == TOKEN)).await
}

/// A server whose tokens are who `auth` says they are.
pub async fn start_full(
    store: Arc<Store>,
    cfg: ApiServerConfig,
    auth: Arc<dyn meshspec_twin_kube::Authenticator>,
) -> Twin {
    install_crypto();
    let ca = TwinCa::new("twin-test-ca").expect("ca");
    let server = ApiServer::start(store.clone(), ca.server_config().expect("tls"), auth, cfg).await.expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let twin = Twin { server, store, ca_pem: ca.ca_pem(), dir };
    twin.write_kubeconfig("kubeconfig", TOKEN);
    twin
}

impl Twin {
    /// A kubeconfig (JSON is valid YAML) with the CA, the server and a bearer token.
    pub fn write_kubeconfig(&self, file: &str, token: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "twin",
            "clusters": [{"name": "twin", "cluster": {"server": self.server.url, "certificate-authority-data": ca}}],
            "users": [{"name": "twin", "user": {"token": token}}],
            "contexts": [{"name": "twin", "context": {"cluster": "twin", "user": "twin", "namespace": "default"}}],
        });
        let path = self.dir.path().join(file);
        std::fs::write(&path, config.to_string()).expect("kubeconfig");
        path
    }

    /// A kube-rs client from a kubeconfig written here (as users' tools build theirs).
    pub async fn kube_client(&self, kubeconfig: &str) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.path(kubeconfig)).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path(file);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// A kubectl that keeps running (`-w`, `logs -f`): its stdout as lines;
    /// it is killed when the returned child is dropped.
    pub fn kubectl_stream(
        &self,
        args: &[&str],
    ) -> (tokio::process::Child, tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.path("kubeconfig")).arg("--cache-dir").arg(self.path("cache"));
        cmd.args(args);
        cmd.env("HOME", self.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl");
        let out = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        (child, out)
    }

    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with("kubeconfig", args).await
    }

    pub async fn kubectl_with(&self, kubeconfig: &str, args: &[&str]) -> Output {
        self.run_kubectl(kubeconfig, args, None).await
    }

    /// kubectl with `input` piped to its stdin (closed at the end, as a shell pipe does).
    pub async fn kubectl_input(&self, args: &[&str], input: &[u8]) -> Output {
        self.run_kubectl("kubeconfig", args, Some(input)).await
    }

    async fn run_kubectl(&self, kubeconfig: &str, args: &[&str], input: Option<&[u8]>) -> Output {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.path(kubeconfig)).arg("--cache-dir").arg(self.path("cache")).args(args);
        cmd.env("HOME", self.dir.path()).kill_on_drop(true);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // Written aside (a pipe holds only so much); dropping stdin closes it: kubectl sees EOF.
            let input = input.to_vec();
            tokio::spawn(async move { stdin.write_all(&input).await });
        }
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .expect("kubectl finished in time")
            .expect("kubectl runs");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
