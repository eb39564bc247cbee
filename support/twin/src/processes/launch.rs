//! Starting the twin as processes from a run: the AWS process (which starts
//! the cluster processes as EKS creates them), labelled with the run id in
//! its environment, its logs in a directory of its own, and a stop that
//! leaves nothing behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::AsyncBufReadExt;

use super::aws_host::AwsReady;
use super::{ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY};

/// The environment variable that labels a run's processes (a reap finds them by it).
pub const RUN_ENV: &str = "MESHSPEC_RUN";
/// The logs directory's name starts so (under the temp dir).
pub const DIR_PREFIX: &str = "meshspec-twin-";
/// When set, the processes' logs are kept in a new directory under this one
/// (to read after the run), instead of removed with the twin.
pub const KEEP_LOGS_ENV: &str = "MESHSPEC_TWIN_KEEP_LOGS";

#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// The meshspec binary (its `twin serve-aws` and `twin serve-cluster`).
    pub binary: PathBuf,
    pub run_id: String,
    pub region: String,
    pub account_id: String,
    pub time_scale: f64,
    pub istio_version: String,
    pub aws_fault_rate: f64,
    pub kube_fault_rate: f64,
    /// How long the AWS process may take to print its ready line.
    pub startup: Duration,
}

/// The running processes of one twin.
pub struct TwinProcesses {
    child: tokio::process::Child,
    ready: AwsReady,
    region: String,
    account_id: String,
    credentials: (String, String),
    dir: tempfile::TempDir,
    /// Held so that the process never writes into a closed pipe.
    _stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl TwinProcesses {
    pub async fn start(opts: LaunchOptions) -> anyhow::Result<TwinProcesses> {
        let mut dir = match std::env::var_os(KEEP_LOGS_ENV) {
            Some(parent) => tempfile::Builder::new().prefix(DIR_PREFIX).tempdir_in(parent),
            None => tempfile::Builder::new().prefix(DIR_PREFIX).tempdir(),
        }
        .context("cannot make a directory for the twin's logs")?;
        if std::env::var_os(KEEP_LOGS_ENV).is_some() {
            dir.disable_cleanup(true);
        }
        let credentials = crate::twin::generate_credentials();
        // 127.A.B for the clusters and 127.A.(B+1) for the NLBs: per run, so
        // that runs side by side do not meet.
        let base = [127, rand::random_range(1..=254), rand::random_range(0..=126) * 2];
        let log_path = dir.path().join("aws.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        let mut child = tokio::process::Command::new(&opts.binary)
            .args(["twin", "serve-aws", "--region", &opts.region, "--account-id", &opts.account_id])
            .args(["--time-scale", &opts.time_scale.to_string(), "--istio-version", &opts.istio_version])
            .args(["--aws-fault-rate", &opts.aws_fault_rate.to_string()])
            .args(["--kube-fault-rate", &opts.kube_fault_rate.to_string()])
            .args(["--base", &format!("{}.{}.{}.0", base[0], base[1], base[2])])
            .arg("--log-dir")
            .arg(dir.path())
            .env(RUN_ENV, &opts.run_id)
            .env(ENV_ACCESS_KEY_ID, &credentials.0)
            .env(ENV_SECRET_ACCESS_KEY, &credentials.1)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} twin serve-aws", opts.binary.display()))?;
        let stdout = child.stdout.take().context("the AWS process has no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(opts.startup, async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(r) = serde_json::from_str::<AwsReady>(&line) {
                    return Ok(Some(r));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let ready = match ready {
            Ok(Ok(Some(r))) => r,
            outcome => {
                let _ = child.kill().await;
                let why = match outcome {
                    Err(_) => format!("printed no ready line within {}s", opts.startup.as_secs()),
                    Ok(Err(e)) => format!("could not be read: {e}"),
                    Ok(Ok(_)) => "ended before it was ready".into(),
                };
                bail!("the twin's AWS process {why}; its last lines:\n{}", last_lines(&log_path, 10));
            }
        };
        Ok(TwinProcesses {
            child,
            ready,
            region: opts.region,
            account_id: opts.account_id,
            credentials,
            dir,
            _stdout: lines,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn aws_endpoint(&self) -> &str {
        &self.ready.aws_endpoint
    }

    pub fn credentials(&self) -> (String, String) {
        self.credentials.clone()
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.ready.dns
    }

    /// Where the processes' logs are (aws.log, CLUSTER.log).
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGTERM to the AWS process, which stops its clusters first; SIGKILL
    /// after 30 s. The logs directory goes with it.
    pub async fn shutdown(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.is_err() {
            tracing::warn!("the twin's AWS process did not end within 30 s of SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
    }
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
