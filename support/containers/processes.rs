//! The k3s target without Docker: each cluster is a `meshspec k3s serve`
//! process of its own (the stand-in image's entrypoint, run directly), bound
//! to a loopback address of its own in 127.0.0.0/8, so that its API server,
//! ServiceLB ports and gateways are a separate host's, reached only over TCP.
//! Each process carries the run id in its environment (`MESHSPEC_RUN`), the
//! label a reap finds it by, and is written to the ledger before it starts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::k3s::{server_args, ClusterSpec, Started, API_PORT};

/// The environment variable that marks a stand-in process as a run's.
pub const RUN_ENV: &str = "MESHSPEC_RUN";
/// The ledger's kind for a stand-in process.
pub const LEDGER_PROCESS: &str = "k3s process";
/// The ledger's kind for the directory of the stand-ins' kubeconfigs and logs.
pub const LEDGER_FILES: &str = "k3s files";
/// That directory's name starts so (under the temp dir): a reap removes no other.
pub const DIR_PREFIX: &str = "meshspec-k3s-";
/// The line K3s (and the stand-in) prints once the node is synced, which
/// testcontainers-modules' K3s module waits for.
pub const READY_LINE: &str = "Node controller sync successful";

/// The clusters of one run, as local processes.
pub struct ProcessFleet {
    binary: PathBuf,
    run_id: String,
    startup: Duration,
    /// 127.A.B.0/24, picked per run so that runs side by side do not meet.
    base: [u8; 3],
    dir: tempfile::TempDir,
    children: tokio::sync::Mutex<BTreeMap<String, tokio::process::Child>>,
}

impl ProcessFleet {
    pub fn new(binary: &Path, run_id: &str, startup: Duration) -> Result<ProcessFleet> {
        Ok(ProcessFleet {
            binary: binary.to_path_buf(),
            run_id: run_id.to_string(),
            startup,
            base: [127, rand::random_range(1..=254), rand::random_range(1..=254)],
            dir: tempfile::Builder::new()
                .prefix(DIR_PREFIX)
                .tempdir()
                .context("cannot make a directory for K3s' kubeconfigs")?,
            children: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The loopback address of cluster number `index`.
    pub fn address(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], 10 + index as u8)
    }

    /// Starts cluster `index` and waits (at most the startup deadline) for its ready line.
    pub async fn start(
        &self,
        index: usize,
        spec: &ClusterSpec,
        record: &(dyn Fn(&str, &str, &str) -> Result<()> + Sync),
    ) -> Result<Started> {
        let ip = self.address(index);
        // Someone else's server on that address: say so rather than fail obscurely.
        if std::net::TcpListener::bind((ip, API_PORT)).is_err() {
            bail!("{ip}:{API_PORT} is taken: another process listens there");
        }
        let kubeconfig = self.dir.path().join(format!("{}.yaml", spec.cluster));
        let mut args = server_args(spec, ip);
        args.extend([
            format!("--bind-address={ip}"),
            format!("--node-ip={ip}"),
            format!("--write-kubeconfig={}", kubeconfig.display()),
            "--write-kubeconfig-mode=600".into(),
        ]);
        if index == 0 {
            record(&spec.cluster, LEDGER_FILES, &self.dir.path().display().to_string())?;
        }
        record(&spec.cluster, LEDGER_PROCESS, &ip.to_string())?;
        // Its log goes to a file, not a pipe: a stand-in outlives a killed meshspec
        // the same way every time, until a reap ends it.
        let log_path = self.dir.path().join(format!("{}.log", spec.cluster));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        let child = tokio::process::Command::new(&self.binary)
            .args(["k3s", "serve"])
            .args(&args)
            .env(RUN_ENV, &self.run_id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} k3s serve", self.binary.display()))?;
        self.children.lock().await.insert(spec.cluster.clone(), child);
        let deadline = tokio::time::Instant::now() + self.startup;
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(READY_LINE) {
                break;
            }
            let ended =
                self.children.lock().await.get_mut(&spec.cluster).is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            let lines: Vec<&str> = text.lines().collect();
            let last = lines[lines.len().saturating_sub(20)..].join("\n");
            if ended {
                bail!("the stand-in of {} ended before it was ready; its last lines:\n{last}", spec.cluster);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the stand-in of {} printed no {READY_LINE:?} within {}s; its last lines:\n{last}",
                    spec.cluster,
                    self.startup.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let text =
            std::fs::read_to_string(&kubeconfig).with_context(|| format!("{} wrote no kubeconfig", spec.cluster))?;
        let server = format!("https://{ip}:{API_PORT}");
        let (kubeconfig, ca_pem) = super::k3s::for_host(&text, &server)?;
        Ok(Started {
            cluster: spec.cluster.clone(),
            container: format!("process {ip}"),
            kubeconfig,
            shared_ip: ip,
            ca_pem,
        })
    }

    /// Stops every process of the run (SIGTERM, then SIGKILL after 10 s); returns those still running.
    pub async fn stop_all(&self) -> Vec<String> {
        let children = std::mem::take(&mut *self.children.lock().await);
        let mut left = Vec::new();
        for (cluster, mut child) in children {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            if matches!(child.try_wait(), Ok(None)) {
                left.push(cluster);
            }
        }
        left
    }
}

/// The pids of the stand-in processes of a run, found by their environment.
pub fn find(run_id: &str) -> Vec<u32> {
    let marker = format!("{RUN_ENV}={run_id}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        })
        .collect()
}

/// Removes a directory a ledger names as the stand-ins' files, if it is one
/// (under the temp dir, with the stand-ins' prefix).
pub fn remove_files(dir: &Path) {
    let ours = dir.parent() == Some(std::env::temp_dir().as_path())
        && dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(DIR_PREFIX));
    if ours {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Ends the stand-in processes of a run (by its label); returns the pids still alive.
pub async fn stop_run(run_id: &str) -> Vec<u32> {
    for pid in find(run_id) {
        // SAFETY: kill(2); the environment proved the process is this run's stand-in.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let alive = find(run_id);
        if alive.is_empty() || tokio::time::Instant::now() > deadline {
            for pid in &alive {
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_found_by_the_run_in_its_environment_only() {
        let run = format!("test-{}", rand::random::<u32>());
        let mut child = std::process::Command::new("sleep").arg("30").env(RUN_ENV, &run).spawn().unwrap();
        // Right after spawn, /proc/PID/environ can still read empty for a moment
        // (seen once in CI): the child is looked for until a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut found = find(&run);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = find(&run);
        }
        let other = find(&format!("{run}-other"));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        assert!(other.is_empty());
        assert!(find(&run).is_empty());
    }
}
