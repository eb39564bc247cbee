//! The kind provisioner: two kind clusters stand for the EKS clusters, MetalLB
//! for the AWS load balancer controller, Helm installs Istio with the seed's
//! values, and meshspec applies the rest itself (cacerts, reader tokens, the
//! sample apps and the remote secrets, whose server is the other cluster's
//! node address on the kind network). The plan is plans/kind.yaml, stage by
//! stage, with the same preconditions as everywhere. Teardown deletes only the
//! kind clusters meshspec can prove it made (its ledger, or the label its
//! kind config puts on their nodes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::api::{self, PeerEndpoints, Trust};
use super::plan::{StagePlan, StageStep};
use super::stages::StageExecutor;
use super::{ProvisionRecord, ProvisionedBy};
use crate::aws::network::Leftover;
use crate::fixtures::Vars;
use crate::kube::apply::Applier;
use crate::run::Session;
use crate::tools::helm::{self, Release};
use crate::tools::process::{self, Invocation, Output};
use crate::tools::{docker, kind};
use crate::topology::{names, ClusterTopology, KindCluster};

/// The ledger's name for a kind cluster a run created.
pub const LEDGER_KIND: &str = "kind cluster";
/// The node label of the kind config: meshspec's proof that it made a cluster.
pub const OWNER_LABEL: &str = "meshspec.io/managed-by=meshspec";

#[derive(Clone, Debug)]
pub struct KindProvisioner {
    /// The kubeconfig kind writes the clusters' contexts (`kind-<name>`) into.
    pub kubeconfig: PathBuf,
    /// Clusters a ledger says meshspec created (a reap may delete them unlabelled).
    pub created_per_ledger: BTreeSet<String>,
}

/// The kind plan unless the user named another.
pub const PLAN: &str = "plans/kind.yaml";

/// Run a tool, its lines shown under `[label]`.
async fn tool(session: &Session, program: &str, args: Vec<String>, label: String) -> Result<Output> {
    let inv = Invocation::new(program, args, label.clone()).deadline(session.timeouts.tool);
    process::run(&inv, |_, line| eprintln!("[{label}] {line}")).await
}

fn kind_of(session: &Session, c: &ClusterTopology) -> KindCluster {
    session.topology.kind_cluster(c)
}

pub async fn provision(session: &Session, p: &KindProvisioner) -> Result<ProvisionRecord> {
    let plan = StagePlan::load(&session.fixtures, &session.plan)?;
    // Kind configs and Helm values (no credential in any) live as long as the provisioning.
    let work = tempfile::tempdir().context("cannot make a directory for kind configs and Helm values")?;
    let mut exec = KindSteps { p, work: work.path(), trust: Trust::start(session) };
    let stages = super::stages::run(session, &plan, &mut exec).await?;
    Ok(ProvisionRecord { by: ProvisionedBy::Kind, stages, root_fingerprint: exec.trust.fingerprint })
}

/// How the kind provisioner runs each step: kind and Helm where the seed uses
/// Terraform's modules, meshspec's own applies for the rest.
struct KindSteps<'a> {
    p: &'a KindProvisioner,
    work: &'a Path,
    trust: Trust,
}

impl StageExecutor for KindSteps<'_> {
    fn who(&self) -> &'static str {
        "the kind provisioner"
    }

    fn plan_file(&self) -> &'static str {
        PLAN
    }

    /// No VPCs: kind's clusters share Docker's kind network.
    fn supports(&self, step: StageStep) -> bool {
        step != StageStep::Vpcs
    }

    async fn step(&mut self, session: &Session, step: StageStep) -> Result<Vec<String>> {
        let (p, work) = (self.p, self.work);
        match step {
            StageStep::Clusters => create_clusters(session, p, work).await,
            StageStep::Cacerts => api::cacerts(session, &mut self.trust).await,
            StageStep::LoadBalancerController => metallb(session, p).await,
            StageStep::Istiod => istio_control_plane(session, p, work).await,
            StageStep::Gateways => gateways(session, p, work).await,
            StageStep::ReaderTokens => api::reader_tokens(session).await,
            StageStep::Samples => api::samples(session, &endpoints(session).await?).await,
            StageStep::Vpcs => bail!("the kind provisioner has no step vpcs (its plan is {PLAN})"),
        }
    }
}

async fn existing_clusters(session: &Session) -> Result<BTreeSet<String>> {
    let out = tool(session, "kind", kind::list_args(), "kind get clusters".into()).await?;
    Ok(kind::cluster_names(&out.stdout).into_iter().collect())
}

/// Stage 1: the two clusters, each with its own subnets, then their APIs answering.
async fn create_clusters(session: &Session, p: &KindProvisioner, work: &Path) -> Result<Vec<String>> {
    let existing = existing_clusters(session).await?;
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        let k = kind_of(session, c);
        if existing.contains(&k.name) {
            bail!(
                "a kind cluster {:?} exists already and this run did not create it: delete it (kind delete cluster --name {}) or name other kind clusters in the topology",
                k.name,
                k.name
            );
        }
        let mut vars = Vars::new();
        vars.insert("KIND_NAME", k.name.clone());
        vars.insert("POD_SUBNET", k.pod_subnet.clone());
        vars.insert("SERVICE_SUBNET", k.service_subnet.clone());
        let config = work.join(format!("kind-{}.yaml", k.name));
        std::fs::write(&config, crate::fixtures::render(&session.fixtures.read("kind/cluster.yaml")?, &vars)?)?;
        session.record(
            &c.name,
            LEDGER_KIND,
            &k.name,
            vec![("subnets".into(), format!("{} {}", k.pod_subnet, k.service_subnet))],
        )?;
        tool(session, "kind", kind::create_args(&k.name, &config, &p.kubeconfig), format!("kind create {}", k.name))
            .await?;
        created.push(format!("kind cluster {} (pods {}, services {})", k.name, k.pod_subnet, k.service_subnet));
    }
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        client.apiserver_version().await.with_context(|| format!("the API server of {} does not answer", c.name))?;
    }
    Ok(created)
}

async fn helm_install(
    session: &Session,
    p: &KindProvisioner,
    c: &ClusterTopology,
    release: &Release,
) -> Result<String> {
    let k = kind_of(session, c);
    let args = release.install_args(&p.kubeconfig, &kind::context(&k.name), session.timeouts.tool);
    tool(session, "helm", args, format!("helm {} {}", release.name, k.name)).await?;
    Ok(format!(
        "{}: helm release {}/{} ({} {})",
        c.name, release.namespace, release.name, release.chart, release.version
    ))
}

/// A Helm values file from fixtures/kind/values, rendered for one cluster.
fn values(session: &Session, c: &ClusterTopology, work: &Path, name: &str) -> Result<PathBuf> {
    let text = session.fixtures.read(&format!("kind/values/{name}.yaml"))?;
    let path = work.join(format!("{}-{name}.yaml", kind_of(session, c).name));
    std::fs::write(&path, crate::fixtures::render(&text, &api::vars_for(session, c))?)?;
    Ok(path)
}

/// Stage 1: MetalLB, with a share of the kind network's addresses per cluster.
async fn metallb(session: &Session, p: &KindProvisioner) -> Result<Vec<String>> {
    let net = tool(session, "docker", docker::network_args(), "docker network inspect kind".into()).await?;
    let subnet = docker::parse_ipv4_subnet(&net.stdout)?;
    let mut created = Vec::new();
    for (i, c) in session.topology.clusters.iter().enumerate() {
        let release = Release::new(
            "metallb",
            "metallb",
            helm::METALLB_REPO,
            helm::METALLB_VERSION,
            super::preconditions::METALLB_NAMESPACE,
        );
        created.push(helm_install(session, p, c, &release).await?);
        let mut vars = Vars::new();
        vars.insert("POOL", docker::metallb_pool(&subnet, i)?);
        let docs = crate::fixtures::parse_documents(&crate::fixtures::render(
            &session.fixtures.read("kind/metallb-pool.yaml")?,
            &vars,
        )?)?;
        let applier = Applier::new(session.kube(&c.name).await?);
        created.extend(applier.apply_all(docs).await?.into_iter().map(|a| format!("{}: {a}", c.name)));
    }
    Ok(created)
}

/// Stage 2: istio-base and istiod with the seed's values.
async fn istio_control_plane(session: &Session, p: &KindProvisioner, work: &Path) -> Result<Vec<String>> {
    let version = &session.topology.istio_version;
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        let base = Release::new("istio-base", "base", helm::ISTIO_REPO, version, names::ISTIO_SYSTEM);
        created.push(helm_install(session, p, c, &base).await?);
        let mut istiod = Release::new("istiod", "istiod", helm::ISTIO_REPO, version, names::ISTIO_SYSTEM);
        istiod.values = Some(values(session, c, work, "istiod")?);
        created.push(helm_install(session, p, c, &istiod).await?);
    }
    Ok(created)
}

/// Stage 3: the ingress and east-west gateways (the gateway chart twice).
async fn gateways(session: &Session, p: &KindProvisioner, work: &Path) -> Result<Vec<String>> {
    let version = &session.topology.istio_version;
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        for (name, values_name) in
            [(names::INGRESS_GATEWAY, "ingress-gateway"), (names::EASTWEST_GATEWAY, "eastwest-gateway")]
        {
            let mut r = Release::new(name, "gateway", helm::ISTIO_REPO, version, names::ISTIO_INGRESS);
            r.values = Some(values(session, c, work, values_name)?);
            created.push(helm_install(session, p, c, &r).await?);
        }
    }
    Ok(created)
}

/// Each cluster's API server as the other cluster reaches it: the internal
/// kubeconfig's port and CA, at the control-plane node's kind network address.
async fn endpoints(session: &Session) -> Result<PeerEndpoints> {
    let mut out = PeerEndpoints::new();
    for c in &session.topology.clusters {
        let k = kind_of(session, c);
        let text =
            tool(session, "kind", kind::internal_kubeconfig_args(&k.name), format!("kind get kubeconfig {}", k.name))
                .await?
                .stdout
                .join("\n");
        let internal = kind::parse_internal_kubeconfig(&text)?;
        let node = kind::control_plane_container(&k.name);
        let addr = tool(session, "docker", docker::node_address_args(&node), format!("docker inspect {node}")).await?;
        let ip = docker::parse_address(&addr.stdout)?;
        let port = internal.server.port_or_known_default().unwrap_or(6443);
        out.insert(c.name.clone(), (format!("https://{ip}:{port}"), internal.ca_pem));
    }
    Ok(out)
}

/// Whether a cluster's nodes carry the label meshspec's kind config sets.
async fn labelled(session: &Session, c: &ClusterTopology) -> Result<bool> {
    let nodes: Api<Node> = Api::all(session.kube(&c.name).await?);
    let labelled = nodes.list(&ListParams::default().labels(OWNER_LABEL)).await?;
    Ok(!labelled.items.is_empty())
}

/// Delete the kind clusters meshspec made; returns those still there.
pub async fn teardown(session: &Session, p: &KindProvisioner) -> Result<Vec<Leftover>> {
    anyhow::ensure!(session.allow_provision, "teardown is not allowed on the {} target", session.kind);
    let existing = existing_clusters(session).await?;
    for c in &session.topology.clusters {
        let k = kind_of(session, c);
        if !existing.contains(&k.name) {
            eprintln!("[kind delete {}] not there", k.name);
            continue;
        }
        let proven = p.created_per_ledger.contains(&k.name) || labelled(session, c).await.unwrap_or(false);
        if !proven {
            bail!(
                "the kind cluster {:?} exists, but meshspec cannot prove it made it (no ledger entry, no node labelled {OWNER_LABEL}): not deleting it",
                k.name
            );
        }
        tool(session, "kind", kind::delete_args(&k.name, &p.kubeconfig), format!("kind delete {}", k.name)).await?;
    }
    let names: Vec<String> = session.topology.clusters.iter().map(|c| kind_of(session, c).name).collect();
    Ok(existing_clusters(session)
        .await?
        .into_iter()
        .filter(|n| names.contains(n))
        .map(|n| Leftover { kind: "kind cluster".into(), id: n, detail: "still listed by kind get clusters".into() })
        .collect())
}
