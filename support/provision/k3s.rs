//! The k3s provisioner: two K3s clusters in Docker containers stand for the
//! EKS clusters (support/containers/k3s.rs), K3s' own ServiceLB for the AWS
//! load balancer controller, and meshspec applies the rest through the
//! clusters' APIs as on the twin (cacerts from one root, istiod with the
//! seed's values, the gateways, reader tokens, samples and remote secrets,
//! whose server is the peer node's address on the shared network). Teardown
//! removes the run's containers and networks, found by their labels.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use super::api::{self, PeerEndpoints, Trust};
use super::plan::{StagePlan, StageStep};
use super::stages::StageExecutor;
use super::{OwnProvisioner, ProvisionRecord, ProvisionedBy};
use crate::aws::network::Leftover;
use crate::containers::k3s::{self as fleet, ClusterSpec, Fleet, Started};
use crate::containers::standin_image::ImageRef;
use crate::doctor::{Finding, Level};
use crate::run::Session;
use crate::topology::names;

/// The k3s plan unless the user named another.
pub const PLAN: &str = "plans/k3s.yaml";

/// Where the k3s target's clusters run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum K3sRuntime {
    /// Containers of the K3s image, through testcontainers (needs a Docker engine).
    Docker,
    /// `meshspec k3s serve` processes of this binary on loopback addresses (no Docker; the stand-in).
    Processes,
}

/// The clusters a run started, by runtime.
enum Clusters {
    Docker(Fleet),
    Processes(crate::containers::processes::ProcessFleet),
}

/// What the k3s target starts, and where its kubeconfig goes.
pub struct K3sProvisioner {
    pub runtime: K3sRuntime,
    pub image: ImageRef,
    /// The kubeconfig meshspec writes (contexts `k3s-<cluster>`).
    pub kubeconfig: std::path::PathBuf,
    fleet: OnceCell<Clusters>,
    started: tokio::sync::Mutex<Vec<Started>>,
    /// For a reap: the run whose containers, networks and processes go, and
    /// the directories of kubeconfigs its ledger names.
    pub reaping: Option<(String, Vec<PathBuf>)>,
}

impl std::fmt::Debug for K3sProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sProvisioner").field("image", &self.image).field("kubeconfig", &self.kubeconfig).finish()
    }
}

impl K3sProvisioner {
    pub fn new(runtime: K3sRuntime, image: ImageRef, kubeconfig: std::path::PathBuf) -> K3sProvisioner {
        K3sProvisioner {
            runtime,
            image,
            kubeconfig,
            fleet: OnceCell::new(),
            started: tokio::sync::Mutex::new(Vec::new()),
            reaping: None,
        }
    }

    /// Removes what this run started (containers, then networks); logs what stays.
    pub async fn remove_all(&self) {
        match self.fleet.get() {
            Some(Clusters::Docker(f)) => match f.remove_all().await {
                Ok(left) if left.is_empty() => {}
                Ok(left) => eprintln!("[k3s] still there after removal: {left:?}"),
                Err(e) => eprintln!("[k3s] cannot remove the run's containers: {e:#}"),
            },
            Some(Clusters::Processes(f)) => {
                let left = f.stop_all().await;
                if !left.is_empty() {
                    eprintln!("[k3s] stand-in processes still running after SIGKILL: {left:?}");
                }
            }
            None => {}
        }
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

async fn provision(session: &Session, p: &K3sProvisioner) -> Result<ProvisionRecord> {
    let plan = StagePlan::load(&session.fixtures, &session.plan)?;
    let mut exec = K3sSteps { p, trust: Trust::start(session) };
    let stages = super::stages::run(session, &plan, &mut exec).await?;
    Ok(ProvisionRecord { by: ProvisionedBy::K3s, stages, root_fingerprint: exec.trust.fingerprint })
}

/// How the k3s provisioner runs each step: containers (or processes) where
/// the seed has EKS, nothing for the load balancer controller (K3s' ServiceLB
/// is built in), meshspec's own applies for the rest.
struct K3sSteps<'a> {
    p: &'a K3sProvisioner,
    trust: Trust,
}

impl StageExecutor for K3sSteps<'_> {
    fn who(&self) -> &'static str {
        "the k3s provisioner"
    }

    fn plan_file(&self) -> &'static str {
        PLAN
    }

    /// No VPCs (Docker networks stand for them) and no load balancer controller to install.
    fn supports(&self, step: StageStep) -> bool {
        !matches!(step, StageStep::Vpcs | StageStep::LoadBalancerController)
    }

    async fn step(&mut self, session: &Session, step: StageStep) -> Result<Vec<String>> {
        let p = self.p;
        match step {
            StageStep::Clusters => clusters(session, p).await,
            StageStep::Cacerts => api::cacerts(session, &mut self.trust).await,
            StageStep::Istiod => api::apply_everywhere(session, "istiod", &[(names::ISTIO_SYSTEM, "istiod")]).await,
            StageStep::Gateways => gateways(session).await,
            StageStep::ReaderTokens => api::reader_tokens(session).await,
            StageStep::Samples => api::samples(session, &endpoints(p).await).await,
            StageStep::Vpcs | StageStep::LoadBalancerController => {
                bail!("the k3s provisioner has no step {step} (its plan is {PLAN})")
            }
        }
    }
}

/// Stage 1: the engine, then each cluster's network and container, joined to
/// the shared network; the kubeconfig; both APIs answering.
async fn clusters(session: &Session, p: &K3sProvisioner) -> Result<Vec<String>> {
    let ledger =
        session.run.ledger.as_ref().context("the k3s target needs a run ledger (its run id labels the containers)")?;
    let fleet = p
        .fleet
        .get_or_try_init(|| async {
            Ok::<_, anyhow::Error>(match p.runtime {
                K3sRuntime::Docker => {
                    let docker = crate::containers::engine().await?;
                    Clusters::Docker(Fleet::new(docker, &ledger.run_id, p.image.clone(), session.timeouts.tool)?)
                }
                K3sRuntime::Processes => {
                    let me = std::env::current_exe().context("cannot find this binary to run the stand-ins")?;
                    Clusters::Processes(crate::containers::processes::ProcessFleet::new(
                        &me,
                        &ledger.run_id,
                        session.timeouts.tool,
                    )?)
                }
            })
        })
        .await?;
    let record = |cluster: &str, kind: &str, name: &str| {
        let labels = vec![(crate::containers::RUN_LABEL.to_string(), ledger.run_id.clone())];
        session.record(
            if cluster.is_empty() { &session.topology.clusters[0].name } else { cluster },
            kind,
            name,
            labels,
        )
    };
    let mut created = Vec::new();
    let mut started = Vec::new();
    for (i, c) in session.topology.clusters.iter().enumerate() {
        let k = session.topology.kind_cluster(c);
        let spec = ClusterSpec {
            cluster: c.name.clone(),
            pod_cidr: k.pod_subnet.clone(),
            service_cidr: k.service_subnet.clone(),
        };
        let s = match fleet {
            Clusters::Docker(f) => f.start(i, &spec, &record).await?,
            Clusters::Processes(f) => f.start(i, &spec, &record).await?,
        };
        let what = match p.runtime {
            K3sRuntime::Docker => p.image.to_string(),
            K3sRuntime::Processes => "the stand-in".to_string(),
        };
        created.push(format!(
            "K3s {} in {} ({what}; pods {}, services {}; shared network address {})",
            c.name, s.container, spec.pod_cidr, spec.service_cidr, s.shared_ip
        ));
        started.push(s);
    }
    fleet::write_kubeconfig(&p.kubeconfig, &started)?;
    *p.started.lock().await = started;
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        client.apiserver_version().await.with_context(|| format!("the API server of {} does not answer", c.name))?;
    }
    Ok(created)
}

/// Stage 3: the gateways, with the ingress gateway's Service leaving the status
/// port to the east-west gateway: ServiceLB serves every LoadBalancer port on
/// the node's one address (svclb pods take host ports, k3s
/// pkg/cloudprovider/servicelb.go), so two Services cannot both have 15021,
/// and whichever came second would get no address at all.
async fn gateways(session: &Session) -> Result<Vec<String>> {
    let without_status_port = |docs: &mut Vec<serde_json::Value>| {
        for d in docs.iter_mut().filter(|d| d["kind"] == "Service" && d["metadata"]["name"] == names::INGRESS_GATEWAY) {
            if let Some(ports) = d["spec"]["ports"].as_array_mut() {
                ports.retain(|p| p["port"] != 15021);
            }
        }
    };
    let mut created = api::apply_everywhere_edited(session, "ingress-gateway", &[], &without_status_port).await?;
    created.extend(
        api::apply_everywhere(
            session,
            "eastwest-gateway",
            &[(names::ISTIO_INGRESS, names::INGRESS_GATEWAY), (names::ISTIO_INGRESS, names::EASTWEST_GATEWAY)],
        )
        .await?,
    );
    Ok(created)
}

/// Each cluster's API as the peer reaches it: the node's shared-network address, K3s' CA.
async fn endpoints(p: &K3sProvisioner) -> PeerEndpoints {
    p.started.lock().await.iter().map(|s| (s.cluster.clone(), (s.peer_url(), s.ca_pem.clone()))).collect()
}

/// Removes the run's containers, networks or processes (or, for a reap, the
/// reaped run's); returns what is still there.
async fn teardown(session: &Session, p: &K3sProvisioner) -> Result<Vec<Leftover>> {
    anyhow::ensure!(session.allow_provision, "teardown is not allowed on the {} target", session.kind);
    if let Some((run, files)) = &p.reaping {
        // The stand-ins first: while they run, they write their logs there.
        let left = remove_run(p.runtime, run).await;
        for dir in files {
            crate::containers::processes::remove_files(dir);
        }
        return left;
    }
    let Some(ledger) = &session.run.ledger else { return Ok(Vec::new()) };
    p.remove_all().await;
    remove_run(p.runtime, &ledger.run_id).await
}

/// Removes what a run of the k3s target left, found by its labels (containers
/// and networks) or its environment (processes); returns what is still there.
pub async fn remove_run(runtime: K3sRuntime, run_id: &str) -> Result<Vec<Leftover>> {
    match runtime {
        K3sRuntime::Docker => {
            let docker = crate::containers::engine().await?;
            Ok(leftovers(crate::containers::remove_run(&docker, run_id).await?))
        }
        K3sRuntime::Processes => Ok(crate::containers::processes::stop_run(run_id)
            .await
            .into_iter()
            .map(|pid| Leftover { kind: "k3s process".into(), id: pid.to_string(), detail: "still running".into() })
            .collect()),
    }
}

pub fn leftovers(left: crate::containers::Found) -> Vec<Leftover> {
    let mut out: Vec<Leftover> = left
        .containers
        .into_iter()
        .map(|(id, name)| Leftover { kind: "docker container".into(), id: name, detail: format!("id {id}") })
        .collect();
    out.extend(left.networks.into_iter().map(|(id, name)| Leftover {
        kind: "docker network".into(),
        id: name,
        detail: format!("id {id}"),
    }));
    out
}

impl OwnProvisioner for K3sProvisioner {
    /// Its stages plug in cacerts made by the API provisioner's trust.
    fn makes_ca(&self) -> bool {
        true
    }

    fn kubeconfig(&self) -> Option<PathBuf> {
        Some(self.kubeconfig.clone())
    }

    /// Said at once, in one line, rather than when the first container starts.
    fn preflight(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.runtime == K3sRuntime::Docker {
                crate::containers::engine().await?;
            }
            Ok(())
        })
    }

    fn deploy<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<ProvisionRecord>> {
        Box::pin(provision(session, self))
    }

    fn teardown<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<Vec<Leftover>>> {
        Box::pin(teardown(session, self))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.remove_all())
    }

    /// The engine and the image; the clusters are the run's own, nothing else to examine.
    fn doctor(&self) -> BoxFuture<'_, Vec<Finding>> {
        Box::pin(async move {
            let finding = |level, check: &str, detail: String| Finding { level, check: check.to_string(), detail };
            if self.runtime == K3sRuntime::Processes {
                let detail = "stand-in processes of this binary on loopback addresses (no Docker needed)".to_string();
                return vec![finding(Level::Ok, "k3s runtime", detail)];
            }
            let docker = match crate::containers::engine().await {
                Ok(d) => d,
                Err(e) => return vec![finding(Level::Fail, "docker engine", e.to_string())],
            };
            let version = crate::containers::engine_version(&docker).await.unwrap_or_else(|| "?".into());
            let host = crate::containers::engine_host();
            let mut out = vec![finding(
                Level::Ok,
                "docker engine",
                format!("{version} answers at {host} (for the K3s containers)"),
            )];
            out.push(if docker.inspect_image(&self.image.to_string()).await.is_ok() {
                finding(Level::Ok, "k3s image", format!("{} is on this machine", self.image))
            } else {
                finding(
                    Level::Warn,
                    "k3s image",
                    format!(
                        "{} is not on this machine: the run pulls it from its registry (`meshspec k3s standin-image` builds a local stand-in)",
                        self.image
                    ),
                )
            });
            out
        })
    }
}
