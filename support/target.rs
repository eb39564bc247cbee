//! A target is a set of endpoints, credentials and names (DESIGN.md): the
//! embedded twin, kind clusters, or EKS. A `Target` holds one target's clients
//! for a whole run; what the run did is `crate::run::Run`, and steps and checks
//! see both through `crate::run::Session`. What differs between kinds of
//! target lives in one file per kind (`driver`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tokio::sync::Mutex;

use crate::aws::token::{eks_token, TOKEN_REFRESH, TOKEN_RETRY};
use crate::aws::{AwsAccess, AwsSettings};
use crate::dns::Dns;
use crate::fixtures::Fixtures;
use crate::kube::{client_from_endpoint, client_from_kubeconfig, KubeTimeouts};
use crate::provision::Provisioner;
use crate::timeouts::Timeouts;
use crate::topology::Topology;

pub mod driver;
pub mod eks;
pub mod k3s;
pub mod kind;
pub mod rules;
pub mod twin;

pub use driver::TargetDriver;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// meshspec's embedded twin (default): needs nothing but this binary.
    Twin,
    /// Two local kind clusters (no AWS APIs).
    Kind,
    /// Real EKS clusters and AWS.
    Eks,
    /// Two K3s clusters in Docker containers, or stand-in processes (no AWS APIs).
    K3s,
}

impl TargetKind {
    /// What this kind of target is and how it is handled (see `driver`).
    pub fn driver(self) -> &'static dyn TargetDriver {
        driver::driver(self)
    }
}

/// As `--target` spells it (clap's value names), so a new kind needs no arm here.
impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(v) => f.write_str(v.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TargetOptions {
    pub kind: TargetKind,
    pub topology: Topology,
    pub fixtures: Fixtures,
    /// Whether meshspec may create resources on this target.
    pub allow_provision: bool,
    /// How the target is provisioned when that is allowed.
    pub provisioner: Provisioner,
    pub aws: AwsSettings,
    pub kubeconfig: Option<PathBuf>,
    /// Kube context per EKS cluster name; clusters without one are reached
    /// through EKS DescribeCluster and an in-process token.
    pub contexts: BTreeMap<String, String>,
    /// Twin time compression (simulated seconds per second).
    pub time_scale: Option<f64>,
    pub timeout_scale: f64,
    /// The stage plan provisioning executes (a file of the fixtures).
    pub plan: String,
    /// A misconfiguration the twin is provisioned with.
    pub fault: Option<crate::faults::Fault>,
    /// The twin's APIs meet injected throttling, outages, delays and cut
    /// connections at these rates (`--api-faults`).
    pub api_fault_rate: Option<crate::api_faults::ApiFaultRates>,
    /// Where the run ledger is written (None: no ledger).
    pub ledger_dir: Option<PathBuf>,
    /// Where the twin runs: in this process, or as processes of its own.
    pub twin_runtime: twin::TwinRuntime,
    /// The meshspec binary whose `twin serve-*` commands run the twin's
    /// processes (None: this one; tests name the built binary).
    pub meshspec_binary: Option<PathBuf>,
    /// The mesh's root CA with its key, as its owner keeps it (`--mesh-root-ca`):
    /// provisioning issues the clusters' intermediates from it, and a day-2
    /// operation a new intermediate.
    pub mesh_root_ca: Option<std::sync::Arc<crate::mesh::cacerts::RootCa>>,
}

impl TargetOptions {
    pub fn new(kind: TargetKind, topology: Topology) -> Self {
        TargetOptions {
            kind,
            topology,
            fixtures: Fixtures::embedded(),
            allow_provision: kind.driver().provisions_unasked(),
            provisioner: Provisioner::Api,
            aws: AwsSettings::default(),
            kubeconfig: None,
            contexts: BTreeMap::new(),
            time_scale: None,
            timeout_scale: 1.0,
            plan: kind.driver().default_plan().to_string(),
            fault: None,
            api_fault_rate: None,
            ledger_dir: None,
            twin_runtime: twin::TwinRuntime::InProcess,
            meshspec_binary: None,
            mesh_root_ca: None,
        }
    }
}

/// Kube access to one cluster.
struct ClusterAccess {
    client: kube::Client,
    /// Who and where, for errors: the context or "EKS DescribeCluster", and the URL.
    who: String,
    url: String,
    /// Re-signs the EKS token the client sends, when it was built with one.
    refresher: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for ClusterAccess {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
    }
}

/// What a target is: its kind, topology, fixtures, deadlines, clients and
/// names, and how it may be provisioned. What a run did on it (provision
/// record, evidence, convergence, ledger) is `crate::run::Run`.
pub struct Target {
    pub kind: TargetKind,
    pub topology: Topology,
    pub fixtures: Fixtures,
    pub timeouts: Timeouts,
    pub allow_provision: bool,
    pub provisioner: Provisioner,
    /// The stage plan provisioning executes.
    pub plan: String,
    /// The fault the twin was provisioned with, if any.
    pub fault: Option<crate::faults::Fault>,
    /// The rates of injected API faults the twin runs with, if any.
    pub api_fault_rate: Option<crate::api_faults::ApiFaultRates>,
    /// Where the twin runs (a fresh twin of a scenario runs the same way).
    pub twin_runtime: twin::TwinRuntime,
    pub meshspec_binary: Option<PathBuf>,
    /// The mesh's root CA the user holds (`--mesh-root-ca`), if any.
    pub mesh_root_ca: Option<std::sync::Arc<crate::mesh::cacerts::RootCa>>,
    aws: Option<AwsAccess>,
    pub dns: Dns,
    kubeconfig: Option<PathBuf>,
    contexts: BTreeMap<String, String>,
    clusters: Mutex<BTreeMap<String, ClusterAccess>>,
    twin: Mutex<Option<twin::RunningTwin>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("kind", &self.kind).field("dns", &self.dns).finish_non_exhaustive()
    }
}

/// The twin's side of a target: where its servers listen and the credentials it issued.
#[derive(Clone)]
pub struct TwinEndpoints {
    pub aws_endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub dns: std::net::SocketAddr,
}

impl Target {
    /// Open a target. For the twin this starts it in-process.
    pub async fn open(mut opts: TargetOptions) -> Result<Target> {
        opts.topology.validate()?;
        let driver = opts.kind.driver();
        if let Some(f) = opts.fault {
            if !driver.injects_faults() {
                bail!("faults are injected into the twin only; --fault {} needs --target twin", f.name());
            }
            if let Some(plan) = f.plan() {
                opts.plan = plan.to_string();
            }
        }
        if opts.api_fault_rate.is_some() && !driver.injects_faults() {
            bail!("API faults are injected by the twin only; --api-faults needs --target twin");
        }
        if let Provisioner::Own(p) = &opts.provisioner {
            p.preflight().await?;
        }
        let driver::Opened { timeouts, dns, aws: mut aws_settings, twin } = driver.open(&opts).await?;
        if aws_settings.region.is_none() {
            aws_settings.region = Some(opts.topology.region.clone());
        }
        let aws = if driver.has_aws() {
            aws_settings.api_timeout = Some(timeouts.api_call);
            Some(AwsAccess::connect(&aws_settings).await?)
        } else {
            None
        };
        Ok(Target {
            kind: opts.kind,
            topology: opts.topology,
            fixtures: opts.fixtures,
            timeouts: timeouts.scaled(opts.timeout_scale),
            allow_provision: opts.allow_provision,
            provisioner: opts.provisioner,
            plan: opts.plan,
            fault: opts.fault,
            api_fault_rate: opts.api_fault_rate,
            twin_runtime: opts.twin_runtime,
            meshspec_binary: opts.meshspec_binary,
            mesh_root_ca: opts.mesh_root_ca,
            aws,
            dns,
            kubeconfig: opts.kubeconfig,
            contexts: opts.contexts,
            clusters: Mutex::new(BTreeMap::new()),
            twin: Mutex::new(twin),
        })
    }

    /// The AWS clients; an error on targets without AWS APIs.
    pub fn aws(&self) -> Result<&AwsAccess> {
        self.aws.as_ref().with_context(|| format!("the {} target has no AWS APIs", self.kind))
    }

    /// Where the in-process twin listens (None on other targets).
    pub async fn twin_endpoints(&self) -> Option<TwinEndpoints> {
        let twin = self.twin.lock().await;
        twin.as_ref().map(|t| {
            let (id, secret) = t.credentials();
            TwinEndpoints {
                aws_endpoint: t.aws_endpoint().to_string(),
                region: t.region().to_string(),
                access_key_id: id,
                secret_access_key: secret,
                dns: t.dns_addr(),
            }
        })
    }

    /// A static admin token of a twin cluster, for kubeconfigs written by `twin up`.
    pub async fn twin_admin_token(&self, cluster: &str) -> Option<String> {
        self.twin.lock().await.as_ref().and_then(|t| t.cluster_admin_token(cluster))
    }

    /// A kube client for an EKS cluster of the topology: from its kubeconfig
    /// context when one is configured, else from DescribeCluster (endpoint + CA)
    /// and an EKS token made in-process, rebuilt before the token expires.
    pub async fn kube(&self, cluster: &str) -> Result<kube::Client> {
        let cluster = self.topology.cluster(cluster)?.name.clone();
        let mut clusters = self.clusters.lock().await;
        if let Some(access) = clusters.get(&cluster) {
            return Ok(access.client.clone());
        }
        let t = KubeTimeouts {
            connect: std::time::Duration::from_secs(5),
            read: self.timeouts.api_call,
            plugin: self.timeouts.credential_plugin,
        };
        let access = if let Some(context) = self.contexts.get(&cluster) {
            let a = client_from_kubeconfig(self.kubeconfig.as_deref(), context, t).await?;
            ClusterAccess { client: a.client, who: format!("{cluster} ({})", a.who), url: a.url, refresher: None }
        } else {
            let aws = self
                .aws()
                .with_context(|| format!("no kube context given for {cluster}, and it cannot be found through EKS"))?;
            let described = crate::aws::eks::describe(aws, &cluster)
                .await?
                .with_context(|| format!("EKS has no cluster {cluster}"))?;
            let (Some(endpoint), Some(ca)) = (&described.endpoint, &described.ca_pem) else {
                bail!("EKS cluster {cluster} has no endpoint yet (status {})", described.status);
            };
            let bearer = crate::kube::bearer::BearerSlot::new(eks_token(aws, &cluster).await?.token);
            let client = client_from_endpoint(endpoint, ca, &bearer, t)?;
            let (aws, name) = (aws.clone(), cluster.clone());
            let refresher = bearer.refresh_with(TOKEN_REFRESH, TOKEN_RETRY, move || {
                let (aws, name) = (aws.clone(), name.clone());
                async move { Ok(eks_token(&aws, &name).await?.token) }
            });
            let who = format!("{cluster} (EKS DescribeCluster)");
            ClusterAccess { client, who, url: endpoint.clone(), refresher: Some(refresher) }
        };
        let client = access.client.clone();
        clusters.insert(cluster, access);
        Ok(client)
    }

    /// Fail before any scenario runs when the target cannot be used: AWS must
    /// accept the credentials, and on targets meshspec may not provision, every
    /// cluster must answer (through its kube context, else through EKS). The
    /// clusters a run provisions are reached once they exist.
    pub async fn preflight(&self) -> Result<()> {
        if !self.allow_provision {
            for cluster in self.contexts.keys() {
                self.api_answers(cluster).await?;
            }
        }
        if let Some(aws) = &self.aws {
            aws.preflight().await?;
        }
        if !self.allow_provision {
            for c in self.topology.clusters.iter().filter(|c| !self.contexts.contains_key(&c.name)) {
                self.api_answers(&c.name).await?;
            }
        }
        Ok(())
    }

    async fn api_answers(&self, cluster: &str) -> Result<()> {
        let client = self.kube(cluster).await?;
        match client.apiserver_version().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let (who, url) = self.kube_endpoint(cluster).await.unwrap_or_else(|| (cluster.to_string(), "?".into()));
                Err(crate::kube::failure::ApiFailure::of(who, url, &e).into())
            }
        }
    }

    /// Whether the cluster is reached through a kube context (else through EKS).
    pub fn has_context(&self, cluster: &str) -> bool {
        self.contexts.contains_key(cluster)
    }

    /// Who and where a cluster's client calls, for naming a failure.
    pub async fn kube_endpoint(&self, cluster: &str) -> Option<(String, String)> {
        self.clusters.lock().await.get(cluster).map(|a| (a.who.clone(), a.url.clone()))
    }

    /// Whether the target has the AWS APIs.
    pub fn has_aws(&self) -> bool {
        self.kind.driver().has_aws()
    }

    /// Whether the target lives in this process and ends with it.
    pub fn in_process(&self) -> bool {
        self.kind.driver().in_process()
    }

    /// Stop what opening the target started (the in-process twin).
    pub async fn close(&self) {
        if let Provisioner::Own(p) = &self.provisioner {
            p.close().await;
        }
        if let Some(twin) = self.twin.lock().await.take() {
            twin.shutdown().await;
        }
    }
}
