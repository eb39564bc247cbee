//! The twin as several OS processes: each EKS cluster in its own (API
//! server, controllers, istiod, sidecars, gateways), the AWS endpoint in
//! another. What joins them is the host's real network:
//!
//! - `vpc`: the VPC fabric, how a connection from outside a cluster's
//!   process (an NLB node, a health check) reaches one of its pod IPs.
//! - `nlb`: the NLBs' data plane, run by the AWS process: a listener on each
//!   zone address and listener port, forwarding to targets over the fabric.
//! - `aws_host`: the AWS process (`meshspec twin serve-aws`), whose EKS
//!   starts and stops the cluster processes.
//! - `cluster_host`: one cluster process (`meshspec twin serve-cluster`).
//! - `launch`: starting and stopping it all from a run.
//!
//! The NLBs' health checks over the fabric are
//! `programs::health_checker::run_over_fabric`.

pub mod aws_host;
pub mod cluster_host;
pub mod launch;
pub mod nlb;
pub mod vpc;

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

/// The environment variable carrying the AWS access key id to the processes
/// (credentials never go on a command line, where `ps` shows them).
pub const ENV_ACCESS_KEY_ID: &str = "MESHSPEC_TWIN_AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "MESHSPEC_TWIN_AWS_SECRET_ACCESS_KEY";

/// How often a process looks whether its parent is still there.
const PARENT_POLL: Duration = Duration::from_millis(500);

/// Starts something, prints its ready line on stdout, then runs until SIGTERM,
/// SIGINT or the parent's end (an orphan is reparented: its parent pid
/// changes), and stops it. Exit code 0 on a stop, 1 if it failed to start.
pub(crate) async fn serve_until_stopped<T, S, R>(
    start: S,
    ready_line: R,
    stop: impl FnOnce(T) -> BoxFuture<'static, ()>,
) -> i32
where
    S: Future<Output = anyhow::Result<T>>,
    R: FnOnce(&T) -> serde_json::Result<String>,
{
    use tokio::signal::unix::{signal, SignalKind};
    let parent = std::os::unix::process::parent_id();
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("error: cannot install the signal handlers");
            return 1;
        }
    };
    let orphaned = async move {
        loop {
            tokio::time::sleep(PARENT_POLL).await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    };
    tokio::pin!(orphaned);
    let started = tokio::select! {
        s = start => s,
        _ = term.recv() => return 0,
        _ = int.recv() => return 0,
        _ = &mut orphaned => return 0,
    };
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return 1;
        }
    };
    match ready_line(&running) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("error: cannot write the ready line: {e}");
            stop(running).await;
            return 1;
        }
    }
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = &mut orphaned => "the parent process ended",
    };
    tracing::info!("{why}: stopping");
    stop(running).await;
    0
}
