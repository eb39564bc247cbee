//! The AWS side of the twin as a process of its own (`meshspec twin
//! serve-aws`): the AWS endpoint, the DNS server answering for NLB names, the
//! NLBs' listeners and health checks (on loopback addresses, over the
//! clusters' VPC ingresses), and EKS, whose CreateCluster starts a cluster
//! process and whose DeleteCluster stops it.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinHandle;

use super::cluster_host::{ClusterReady, STARTUP};
use super::{ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY};
use crate::aws::{AwsConfig, AwsServer, AwsState, Clock, ClusterEndpoint, ClusterSpec, Delays, EksHooks};
use crate::dns::DnsServer;

/// How the AWS process runs.
#[derive(Clone)]
pub struct AwsHostOptions {
    pub region: String,
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub time_scale: f64,
    pub istio_version: String,
    pub aws_fault_rate: f64,
    pub kube_fault_rate: f64,
    /// 127.A.B: cluster N listens on 127.A.B.(10+N); NLB addresses come from 127.A.(B+1).0/24.
    pub base: [u8; 3],
    /// The program and arguments that start a cluster process (`meshspec twin serve-cluster`).
    pub cluster_command: Vec<String>,
    /// Where the cluster processes' logs go.
    pub log_dir: PathBuf,
}

impl std::fmt::Debug for AwsHostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsHostOptions").field("region", &self.region).field("base", &self.base).finish_non_exhaustive()
    }
}

impl AwsHostOptions {
    /// The loopback address of cluster number `index` (0, 1, ...).
    pub fn cluster_address(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], 10u8.saturating_add(index))
    }

    /// The /24 the NLBs' addresses come from.
    pub fn nlb_network(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2].wrapping_add(1), 0)
    }
}

/// What the AWS process prints once it serves (no secrets: its parent chose them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsReady {
    pub aws_endpoint: String,
    pub dns: SocketAddr,
}

/// The running AWS process's insides.
pub struct AwsHost {
    pub ready: AwsReady,
    aws_server: AwsServer,
    dns: DnsServer,
    nlbs: super::nlb::NlbDataPlane,
    health: JoinHandle<()>,
    clusters: Arc<ClusterProcesses>,
}

impl AwsHost {
    pub async fn start(opts: AwsHostOptions) -> anyhow::Result<AwsHost> {
        let clock = Clock::new(opts.time_scale);
        let aws = AwsState::new(AwsConfig {
            region: opts.region.clone(),
            account_id: opts.account_id.clone(),
            credentials: vec![(opts.access_key_id.clone(), opts.secret_access_key.clone())],
            clock,
            delays: Delays::default(),
            faults: crate::aws::ApiFaults::at_rate(opts.aws_fault_rate),
            nlb_address_range: Some(
                crate::aws::Cidr::parse(&format!("{}/24", opts.nlb_network())).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            ),
        });
        let aws_server = crate::aws::serve(aws.clone()).await.context("starting the AWS endpoint")?;
        let resolver = aws.clone();
        let dns = DnsServer::start(Arc::new(move |name: &str| resolver.resolve(name)))
            .await
            .context("starting the DNS server")?;
        let clusters = Arc::new(ClusterProcesses {
            opts: opts.clone(),
            aws_endpoint: aws_server.url.clone(),
            dns: dns.addr(),
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            ingress: RwLock::new(HashMap::new()),
            next: Mutex::new(0),
        });
        aws.set_eks_hooks(Arc::new(Hooks(Arc::downgrade(&clusters))));
        let ingress_of: super::vpc::IngressOf = {
            let c = Arc::downgrade(&clusters);
            Arc::new(move |vpc: &str| c.upgrade().and_then(|c| c.ingress_of(vpc)))
        };
        let nlbs = super::nlb::NlbDataPlane::start(aws.clone(), ingress_of.clone());
        let health = tokio::spawn(crate::programs::health_checker::run_over_fabric(aws.clone(), ingress_of));
        let ready = AwsReady { aws_endpoint: aws_server.url.clone(), dns: dns.addr() };
        Ok(AwsHost { ready, aws_server, dns, nlbs, health, clusters })
    }

    /// Stops the cluster processes, then every server of this one.
    pub async fn shutdown(self) {
        self.clusters.stop_all().await;
        self.health.abort();
        self.nlbs.shutdown().await;
        self.aws_server.shutdown();
        self.dns.shutdown().await;
    }
}

/// `meshspec twin serve-aws`: runs until SIGTERM/SIGINT or its parent's end;
/// prints [`AwsReady`] as one JSON line on stdout once it serves.
pub async fn serve(opts: AwsHostOptions) -> i32 {
    super::serve_until_stopped(
        AwsHost::start(opts),
        |h: &AwsHost| serde_json::to_string(&h.ready),
        |h| Box::pin(h.shutdown()),
    )
    .await
}

/// The EKS clusters' processes.
struct ClusterProcesses {
    opts: AwsHostOptions,
    aws_endpoint: String,
    dns: SocketAddr,
    running: tokio::sync::Mutex<BTreeMap<String, RunningCluster>>,
    /// VPC id -> that cluster's VPC ingress.
    ingress: RwLock<HashMap<String, SocketAddr>>,
    next: Mutex<u8>,
}

struct RunningCluster {
    child: tokio::process::Child,
    vpc_id: String,
    /// Held so that the child never writes into a closed pipe.
    _stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl ClusterProcesses {
    fn ingress_of(&self, vpc: &str) -> Option<SocketAddr> {
        self.ingress.read().unwrap_or_else(|p| p.into_inner()).get(vpc).copied()
    }

    async fn start(&self, spec: ClusterSpec) -> anyhow::Result<ClusterEndpoint> {
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let i = *next;
            *next = next.checked_add(1).context("too many clusters")?;
            i
        };
        let address = self.opts.cluster_address(index);
        let Some((program, prefix)) = self.opts.cluster_command.split_first() else {
            bail!("no command to start a cluster process with");
        };
        let log_path = self.opts.log_dir.join(format!("{}.log", spec.name));
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        let o = &self.opts;
        let mut child = tokio::process::Command::new(program)
            .args(prefix)
            .args(["--name", &spec.name, "--version", &spec.version, "--vpc-id", &spec.vpc_id])
            .args(["--region", &o.region, "--aws-endpoint", &self.aws_endpoint])
            .args(["--dns", &self.dns.to_string(), "--address", &address.to_string()])
            .args(["--time-scale", &o.time_scale.to_string(), "--istio-version", &o.istio_version])
            .args(["--kube-fault-rate", &o.kube_fault_rate.to_string()])
            .env(ENV_ACCESS_KEY_ID, &o.access_key_id)
            .env(ENV_SECRET_ACCESS_KEY, &o.secret_access_key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the process of cluster {}", spec.name))?;
        let stdout = child.stdout.take().context("the cluster process has no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(STARTUP, async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(ready) = serde_json::from_str::<ClusterReady>(&line) {
                    return Ok(Some(ready));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let ready = match ready {
            Ok(Ok(Some(r))) => r,
            outcome => {
                let _ = child.kill().await;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
                let why = match outcome {
                    Err(_) => format!("printed no ready line within {}s", STARTUP.as_secs()),
                    Ok(Err(e)) => format!("could not be read: {e}"),
                    Ok(Ok(_)) => "ended before it was ready".into(),
                };
                bail!("the process of cluster {} {why}; its last lines:\n{}", spec.name, tail.join("\n"));
            }
        };
        self.ingress.write().unwrap_or_else(|p| p.into_inner()).insert(spec.vpc_id.clone(), ready.ingress);
        let old = self
            .running
            .lock()
            .await
            .insert(spec.name.clone(), RunningCluster { child, vpc_id: spec.vpc_id.clone(), _stdout: lines });
        if let Some(old) = old {
            stop(old).await;
        }
        tracing::info!(cluster = %spec.name, endpoint = %ready.endpoint, "cluster process started");
        Ok(ClusterEndpoint { endpoint: ready.endpoint, ca_pem: ready.ca_pem })
    }

    async fn stop(&self, name: &str) {
        let Some(c) = self.running.lock().await.remove(name) else { return };
        self.ingress.write().unwrap_or_else(|p| p.into_inner()).remove(&c.vpc_id);
        stop(c).await;
        tracing::info!(cluster = %name, "cluster process stopped");
    }

    async fn stop_all(&self) {
        let all = std::mem::take(&mut *self.running.lock().await);
        self.ingress.write().unwrap_or_else(|p| p.into_inner()).clear();
        futures::future::join_all(all.into_values().map(stop)).await;
    }
}

/// SIGTERM, then SIGKILL if it has not ended within 10 s.
async fn stop(mut c: RunningCluster) {
    if let Some(pid) = c.child.id() {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(10), c.child.wait()).await.is_err() {
        let _ = c.child.kill().await;
    }
}

/// The hooks EKS holds: weak, so AWS does not keep the processes' owner alive.
struct Hooks(std::sync::Weak<ClusterProcesses>);

impl EksHooks for Hooks {
    fn start_cluster(&self, spec: ClusterSpec) -> BoxFuture<'static, anyhow::Result<ClusterEndpoint>> {
        let clusters = self.0.upgrade();
        Box::pin(async move {
            match clusters {
                Some(c) => c.start(spec).await,
                None => bail!("the twin is shut down"),
            }
        })
    }

    fn stop_cluster(&self, name: &str) {
        if let Some(c) = self.0.upgrade() {
            let name = name.to_owned();
            tokio::spawn(async move { c.stop(&name).await });
        }
    }
}
