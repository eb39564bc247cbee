//! The twin target: meshspec's embedded twin, started in-process for the run,
//! provisioned through its AWS and Kubernetes APIs, with compressed time.

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;

use super::driver::{terraform_refused, Opened, TargetDriver};
use super::rules::{Env, ProvisionerKind, TargetRequest};
use super::{TargetKind, TargetOptions};
use crate::dns::Dns;
use crate::provision::Provisioner;
use crate::timeouts::Timeouts;
use meshspec_twin::processes::launch::{LaunchOptions, TwinProcesses};
use meshspec_twin::twin::{Twin, TwinConfig};

pub struct TwinTarget;

/// Where the twin runs (`--twin-runtime`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TwinRuntime {
    /// In meshspec's own process: fastest, and the only one faults can reach inside.
    #[default]
    InProcess,
    /// AWS in one process, each EKS cluster in its own on a loopback address of
    /// its own: cross-cluster traffic, AWS calls and EKS tokens cross real TCP.
    Processes,
}

/// A twin started for a run.
pub enum RunningTwin {
    InProcess(Twin),
    Processes(Box<TwinProcesses>),
}

impl RunningTwin {
    pub fn aws_endpoint(&self) -> &str {
        match self {
            RunningTwin::InProcess(t) => t.aws_endpoint(),
            RunningTwin::Processes(p) => p.aws_endpoint(),
        }
    }

    pub fn credentials(&self) -> (String, String) {
        match self {
            RunningTwin::InProcess(t) => t.credentials(),
            RunningTwin::Processes(p) => p.credentials(),
        }
    }

    pub fn region(&self) -> &str {
        match self {
            RunningTwin::InProcess(t) => t.region(),
            RunningTwin::Processes(p) => p.region(),
        }
    }

    pub fn dns_addr(&self) -> std::net::SocketAddr {
        match self {
            RunningTwin::InProcess(t) => t.dns_addr(),
            RunningTwin::Processes(p) => p.dns_addr(),
        }
    }

    /// A static admin token of a cluster: only the in-process twin has them.
    pub fn cluster_admin_token(&self, cluster: &str) -> Option<String> {
        match self {
            RunningTwin::InProcess(t) => t.cluster_admin_token(cluster),
            RunningTwin::Processes(_) => None,
        }
    }

    pub async fn shutdown(self) {
        match self {
            RunningTwin::InProcess(t) => t.shutdown().await,
            RunningTwin::Processes(p) => p.shutdown().await,
        }
    }
}

impl TargetDriver for TwinTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Twin
    }

    fn has_aws(&self) -> bool {
        true
    }

    /// The twin is made for the run: provisioning it needs no consent.
    fn provisions_unasked(&self) -> bool {
        true
    }

    fn in_process(&self) -> bool {
        true
    }

    fn injects_faults(&self) -> bool {
        true
    }

    fn provisioner(&self, choice: ProvisionerKind, _req: &TargetRequest, _env: Env) -> Result<Provisioner> {
        match choice {
            ProvisionerKind::Api => Ok(Provisioner::Api),
            ProvisionerKind::Terraform => terraform_refused(self.kind()),
        }
    }

    fn open<'a>(&'a self, opts: &'a TargetOptions) -> BoxFuture<'a, Result<Opened>> {
        Box::pin(async move {
            let mut cfg = TwinConfig {
                region: opts.topology.region.clone(),
                istio_version: opts.topology.istio_version.clone(),
                kube_fault_rate: opts.api_fault_rate.map_or(0.0, |r| r.kubernetes),
                aws_fault_rate: opts.api_fault_rate.map_or(0.0, |r| r.aws),
                ..TwinConfig::default()
            };
            if let Some(scale) = opts.time_scale {
                if !(scale.is_finite() && scale > 0.0) {
                    bail!("--time-scale must be a positive number, not {scale}");
                }
                cfg.time_scale = scale;
            }
            let timeouts = Timeouts::for_twin(cfg.time_scale);
            let started = match opts.twin_runtime {
                TwinRuntime::InProcess => {
                    RunningTwin::InProcess(Twin::start(cfg).await.context("cannot start the twin")?)
                }
                TwinRuntime::Processes => {
                    let binary = match &opts.meshspec_binary {
                        Some(b) => b.clone(),
                        None => std::env::current_exe().context("cannot find the meshspec binary to run the twin")?,
                    };
                    let launch = LaunchOptions {
                        binary,
                        // The label names this process, so that what it started is found by it.
                        run_id: format!("twin-{}-{:08x}", std::process::id(), rand::random::<u32>()),
                        region: cfg.region,
                        account_id: cfg.account_id,
                        time_scale: cfg.time_scale,
                        istio_version: cfg.istio_version,
                        aws_fault_rate: cfg.aws_fault_rate,
                        kube_fault_rate: cfg.kube_fault_rate,
                        startup: timeouts.api_call.max(std::time::Duration::from_secs(30)),
                    };
                    let p = TwinProcesses::start(launch).await.context("cannot start the twin's processes")?;
                    RunningTwin::Processes(Box::new(p))
                }
            };
            let (id, secret) = started.credentials();
            let mut aws = opts.aws.clone();
            aws.endpoint = Some(started.aws_endpoint().to_string());
            aws.region = Some(started.region().to_string());
            aws.credentials = Some((id, secret));
            let dns = Dns::server(started.dns_addr());
            Ok(Opened { timeouts, dns, aws, twin: Some(started) })
        })
    }
}
