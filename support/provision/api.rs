//! The API provisioner: runs the stage plan through the AWS APIs (EC2, EKS) and
//! the Kubernetes APIs (server-side apply of fixtures/manifests), exactly as it
//! would against real accounts. It refuses targets that do not allow provisioning.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use futures::future::try_join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::plan::{StagePlan, StageStep};
use super::stages::StageExecutor;
use super::ProvisionRecord;
use crate::aws::{eks, network};
use crate::faults::Fault;
use crate::fixtures::{quoted, Vars};
use crate::kube::apply::Applier;
use crate::kube::rollout::{wait_deployment_available, wait_token};
use crate::mesh::cacerts::{CaCerts, RootCa};
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

/// Tag put on every AWS resource meshspec creates.
pub const OWNER_TAG: &str = "meshspec.io/managed-by";

/// The root of trust of one provisioning and each cluster's intermediate, made
/// once. RSA keys take most of a provisioning's CPU: they are made on a
/// blocking thread from the start of the provisioning, while the clusters are
/// being created, and never on an async worker (which would stall the twin).
#[derive(Default)]
pub(super) struct Trust {
    making: Option<Making>,
    certs: Option<Vec<CaCerts>>,
    pub fingerprint: Option<String>,
}

/// The root's fingerprint, each cluster's cacerts and the root itself, being made.
type Making = tokio::task::JoinHandle<Result<(String, Vec<CaCerts>, std::sync::Arc<RootCa>)>>;

impl Trust {
    pub(super) fn start(session: &Session) -> Trust {
        Trust { making: Some(Trust::make(session)), certs: None, fingerprint: None }
    }

    fn make(session: &Session) -> Making {
        let clusters: Vec<String> = session.topology.clusters.iter().map(|c| c.istio_cluster.clone()).collect();
        let different_roots = session.fault == Some(Fault::DifferentRoots);
        // The user's own root when given (`--mesh-root-ca`), else one made for this deployment.
        let kept = session.mesh_root_ca.clone();
        tokio::task::spawn_blocking(move || {
            let root = match kept {
                Some(root) => root,
                None => std::sync::Arc::new(RootCa::generate()?),
            };
            let fingerprint = root.fingerprint()?;
            let mut certs = Vec::new();
            for (i, c) in clusters.iter().enumerate() {
                certs.push(if i > 0 && different_roots {
                    RootCa::generate()?.intermediate(c)?
                } else {
                    root.intermediate(c)?
                });
            }
            Ok((fingerprint, certs, root))
        })
    }

    /// Each cluster's cacerts, in the topology's order.
    async fn certs(&mut self, session: &Session) -> Result<&[CaCerts]> {
        if self.certs.is_none() {
            let making = self.making.take().unwrap_or_else(|| Trust::make(session));
            let (fingerprint, certs, root) = making.await.context("making the CA keys")??;
            // Kept for the run: a day-2 operation issues new intermediates from it.
            *session.run.root_ca.lock().unwrap_or_else(|p| p.into_inner()) = Some(root);
            self.fingerprint = Some(fingerprint);
            self.certs = Some(certs);
        }
        Ok(self.certs.as_deref().unwrap_or_default())
    }
}

/// Where each cluster's API server is reached from the other cluster, with its CA.
pub(super) type PeerEndpoints = BTreeMap<String, (String, String)>;

/// Install the AWS load balancer controller in every cluster (the plan's step
/// of that name), e.g. after a wrong order left it out.
pub async fn install_load_balancer_controller(session: &Session) -> Result<Vec<String>> {
    apply_everywhere(session, "aws-load-balancer-controller", &[(names::KUBE_SYSTEM, names::LB_CONTROLLER)]).await
}

pub async fn provision(session: &Session) -> Result<ProvisionRecord> {
    if !session.allow_provision {
        bail!(
            "provisioning is not allowed on the {} target (it creates cloud resources); \
             allow it explicitly or provision the deployment beforehand",
            session.kind
        );
    }
    let plan = StagePlan::load(&session.fixtures, &session.plan)?;
    let mut exec = ApiSteps { trust: Trust::start(session) };
    let stages = super::stages::run(session, &plan, &mut exec).await?;
    Ok(ProvisionRecord { by: super::ProvisionedBy::Api, stages, root_fingerprint: exec.trust.fingerprint })
}

/// How the API provisioner runs each step: everything through the AWS and Kubernetes APIs.
struct ApiSteps {
    trust: Trust,
}

impl StageExecutor for ApiSteps {
    fn who(&self) -> &'static str {
        "the API provisioner"
    }

    fn plan_file(&self) -> &'static str {
        super::plan::DEFAULT_PLAN
    }

    fn supports(&self, _: StageStep) -> bool {
        true
    }

    async fn step(&mut self, session: &Session, step: StageStep) -> Result<Vec<String>> {
        match step {
            StageStep::Vpcs => vpcs(session).await,
            StageStep::Clusters => clusters(session).await,
            StageStep::Cacerts => cacerts(session, &mut self.trust).await,
            StageStep::LoadBalancerController => install_load_balancer_controller(session).await,
            StageStep::Istiod => apply_everywhere(session, "istiod", &[(names::ISTIO_SYSTEM, "istiod")]).await,
            StageStep::Gateways => gateways(session).await,
            StageStep::ReaderTokens => reader_tokens(session).await,
            StageStep::Samples => samples(session, &eks_endpoints(session).await?).await,
        }
    }
}

pub(super) fn vars_for(session: &Session, c: &ClusterTopology) -> Vars {
    let t = &session.topology;
    let mut v = Vars::new();
    v.insert("CLUSTER_NAME", c.name.clone());
    v.insert("ISTIO_CLUSTER", c.istio_cluster.clone());
    v.insert("NETWORK", c.network.clone());
    v.insert("MESH_ID", t.mesh_id.clone());
    v.insert("ISTIO_VERSION", t.istio_version.clone());
    v.insert("SAMPLE_VERSION", c.sample_version.clone());
    v
}

fn owner_tags(c: &ClusterTopology, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("Name".to_string(), name.to_string()),
        (OWNER_TAG.to_string(), names::MANAGED_BY.to_string()),
        ("meshspec.io/cluster".to_string(), c.name.clone()),
    ])
}

/// Stage 1: one VPC per cluster with the seed's private and public subnets.
async fn vpcs(session: &Session) -> Result<Vec<String>> {
    let aws = session.aws()?;
    let azs = session.topology.availability_zones();
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        let existing = network::vpcs_named(aws, &c.vpc_name).await?;
        let vpc = match existing.into_iter().next() {
            Some(v) => {
                ensure!(
                    v.cidr == c.vpc_cidr,
                    "VPC {} exists with CIDR {}, the topology says {}",
                    c.vpc_name,
                    v.cidr,
                    c.vpc_cidr
                );
                ensure!(
                    v.tags.get(OWNER_TAG).map(String::as_str) == Some(names::MANAGED_BY),
                    "VPC {} ({}) exists but meshspec did not create it; refusing to touch it",
                    c.vpc_name,
                    v.id
                );
                v
            }
            None => {
                let tags = owner_tags(c, &c.vpc_name);
                session.record(&c.name, "VPC", &c.vpc_name, tags.clone().into_iter().collect())?;
                let v = network::create_vpc(aws, &c.vpc_cidr, &tags).await?;
                created.push(format!("VPC {} {} ({})", c.vpc_name, v.cidr, v.id));
                v
            }
        };
        let have: Vec<String> = network::subnets_of(aws, &vpc.id).await?.into_iter().map(|s| s.cidr).collect();
        for s in c.subnet_plan()? {
            if have.contains(&s.cidr) {
                continue;
            }
            let az = &azs[s.az_index];
            let kind = if s.public { "public" } else { "private" };
            let mut tags = owner_tags(c, &format!("{}-{kind}-{az}", c.vpc_name));
            let (k, v) = s.role_tag();
            tags.insert(k.to_string(), v.to_string());
            tags.insert(format!("kubernetes.io/cluster/{}", c.name), "shared".into());
            session.record(&c.name, "subnet", &s.cidr, tags.clone().into_iter().collect())?;
            let id = network::create_subnet(aws, &vpc.id, &s.cidr, az, &tags).await?;
            created.push(format!("subnet {} {kind} in {az} ({id})", s.cidr));
        }
        if session.fault == Some(Fault::NlbHostnameUnresolvable) && c.name == session.topology.clusters[0].name {
            network::set_dns_support(aws, &vpc.id, false).await?;
            created.push(format!("VPC {} with enableDnsSupport=false (fault)", c.vpc_name));
        }
    }
    Ok(created)
}

/// Stage 1: the EKS clusters in the private subnets, created together, then ACTIVE.
async fn clusters(session: &Session) -> Result<Vec<String>> {
    let aws = session.aws()?;
    let t = &session.topology;
    let account = crate::aws::connect::account_id(aws).await?;
    let mut created = Vec::new();
    for c in &t.clusters {
        if eks::describe(aws, &c.name).await?.is_some() {
            continue;
        }
        let vpc = network::vpcs_named(aws, &c.vpc_name)
            .await?
            .into_iter()
            .next()
            .with_context(|| format!("VPC {} does not exist (stage 1 creates it first)", c.vpc_name))?;
        let private: Vec<String> = network::subnets_of(aws, &vpc.id)
            .await?
            .into_iter()
            .filter(|s| s.tags.contains_key("kubernetes.io/role/internal-elb"))
            .map(|s| s.id)
            .collect();
        ensure!(!private.is_empty(), "VPC {} has no private subnets", c.vpc_name);
        let role = format!("arn:aws:iam::{account}:role/{}-cluster", c.name);
        let tags: HashMap<String, String> = owner_tags(c, &c.name).into_iter().collect();
        session.record(&c.name, "EKS cluster", &c.name, tags.clone().into_iter().collect())?;
        let cluster = eks::create(
            aws,
            eks::NewCluster {
                name: &c.name,
                version: &t.kubernetes_version,
                role_arn: &role,
                subnet_ids: &private,
                tags,
            },
        )
        .await?;
        created.push(format!("EKS cluster {} ({})", c.name, cluster.arn));
    }
    let opts = Timeouts::wait(session.timeouts.cluster_active);
    let started = std::time::Instant::now();
    try_join_all(t.clusters.iter().map(|c| async move {
        let cluster = eks::wait_active(aws, &c.name, opts).await?;
        let check = format!("{}: EKS cluster ACTIVE", c.name);
        session.run.convergence.held(Some("eks_active"), &check, started.elapsed());
        anyhow::Ok(cluster)
    }))
    .await?;
    for c in &t.clusters {
        let client = session.kube(&c.name).await?;
        let version = client
            .apiserver_version()
            .await
            .with_context(|| format!("the API server of {} does not answer", c.name))?;
        tracing::info!(cluster = %c.name, version = %version.git_version, "cluster reachable");
    }
    Ok(created)
}

/// Stage 1: istio-system labelled with the network, and `cacerts` from one root.
pub(super) async fn cacerts(session: &Session, trust: &mut Trust) -> Result<Vec<String>> {
    let all = trust.certs(session).await?.to_vec();
    let mut created = Vec::new();
    for (c, certs) in session.topology.clusters.iter().zip(all) {
        let mut vars = vars_for(session, c);
        vars.insert("CA_CERT_PEM", quoted(&certs.ca_cert_pem));
        vars.insert("CA_KEY_PEM", quoted(&certs.ca_key_pem));
        vars.insert("ROOT_CERT_PEM", quoted(&certs.root_cert_pem));
        vars.insert("CERT_CHAIN_PEM", quoted(&certs.cert_chain_pem));
        let docs = session.fixtures.manifest("cacerts", &vars)?;
        let applier = Applier::new(session.kube(&c.name).await?);
        record_docs(session, &c.name, &docs)?;
        created.extend(applier.apply_all(docs).await?.into_iter().map(|a| format!("{}: {a}", c.name)));
    }
    Ok(created)
}

/// Apply one manifest in every cluster, then wait for the named deployments.
pub(super) async fn apply_everywhere(
    session: &Session,
    manifest: &str,
    rollouts: &[(&str, &str)],
) -> Result<Vec<String>> {
    apply_everywhere_edited(session, manifest, rollouts, &|_| {}).await
}

/// The same, the manifest edited first for the target (e.g. the k3s target's ports).
pub(super) async fn apply_everywhere_edited(
    session: &Session,
    manifest: &str,
    rollouts: &[(&str, &str)],
    edit: &(dyn Fn(&mut Vec<serde_json::Value>) + Sync),
) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        let mut docs = session.fixtures.manifest(manifest, &vars_for(session, c))?;
        edit(&mut docs);
        misconfigure(session, &mut docs);
        record_docs(session, &c.name, &docs)?;
        created.extend(Applier::new(client).apply_all(docs).await?.into_iter().map(|a| format!("{}: {a}", c.name)));
    }
    wait_rollouts(session, rollouts).await?;
    Ok(created)
}

async fn wait_rollouts(session: &Session, rollouts: &[(&str, &str)]) -> Result<()> {
    let opts = Timeouts::wait(session.timeouts.rollout);
    let mut waits = Vec::new();
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        for (ns, name) in rollouts {
            let client = client.clone();
            waits.push(async move { wait_deployment_available(&client, ns, name, opts).await });
        }
    }
    try_join_all(waits).await?;
    Ok(())
}

/// Record every object of a manifest in the ledger before applying it.
fn record_docs(session: &Session, cluster: &str, docs: &[serde_json::Value]) -> Result<()> {
    for d in docs {
        let ns = d["metadata"]["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
        let name = format!("{ns}{}", d["metadata"]["name"].as_str().unwrap_or_default());
        let label = vec![(names::MANAGED_BY_LABEL.to_string(), names::MANAGED_BY.to_string())];
        session.record(cluster, d["kind"].as_str().unwrap_or_default(), &name, label)?;
    }
    Ok(())
}

/// The fault's change to rendered manifests, if it has one.
fn misconfigure(session: &Session, docs: &mut Vec<serde_json::Value>) {
    let is = |d: &serde_json::Value, kind: &str, name: &str| d["kind"] == kind && d["metadata"]["name"] == name;
    match session.fault {
        Some(Fault::GatewayWithoutNetworkLabel) => {
            for d in docs.iter_mut().filter(|d| is(d, "Service", names::EASTWEST_GATEWAY)) {
                if let Some(labels) = d["metadata"]["labels"].as_object_mut() {
                    labels.remove(names::NETWORK_LABEL);
                }
            }
        }
        Some(Fault::GatewayWithoutAddress) => {
            for d in docs.iter_mut().filter(|d| is(d, "Service", names::EASTWEST_GATEWAY)) {
                if let Some(a) = d["metadata"]["annotations"].as_object_mut() {
                    a.remove("service.beta.kubernetes.io/aws-load-balancer-type");
                }
            }
        }
        Some(Fault::CrossNetworkGatewayMissing) => docs.retain(|d| !is(d, "Gateway", names::CROSS_NETWORK_GATEWAY)),
        Some(Fault::ReaderRoleWithoutPods) => {
            // Someone trimmed the chart's reader role: every rule loses `pods`.
            for d in docs.iter_mut().filter(|d| is(d, "ClusterRole", names::READER_CLUSTER_ROLE)) {
                for rule in d["rules"].as_array_mut().into_iter().flatten() {
                    if let Some(resources) = rule["resources"].as_array_mut() {
                        resources.retain(|r| r != "pods");
                    }
                }
            }
        }
        Some(Fault::NlbTargetsUnhealthy) => {
            // Health checks on port 80, where the east-west gateway listens on nothing
            // (e.g. a value copied from an ingress gateway's Service).
            for d in docs.iter_mut().filter(|d| is(d, "Service", names::EASTWEST_GATEWAY)) {
                if let Some(a) = d["metadata"]["annotations"].as_object_mut() {
                    a.insert("service.beta.kubernetes.io/aws-load-balancer-healthcheck-port".into(), "80".into());
                }
            }
        }
        _ => {}
    }
}

/// Stage 3: the ingress and east-west gateways.
pub(super) async fn gateways(session: &Session) -> Result<Vec<String>> {
    let mut created = apply_everywhere(session, "ingress-gateway", &[]).await?;
    created.extend(
        apply_everywhere(
            session,
            "eastwest-gateway",
            &[(names::ISTIO_INGRESS, names::INGRESS_GATEWAY), (names::ISTIO_INGRESS, names::EASTWEST_GATEWAY)],
        )
        .await?,
    );
    Ok(created)
}

/// Stage 3: the reader service account and its token secret.
pub(super) async fn reader_tokens(session: &Session) -> Result<Vec<String>> {
    let created = apply_everywhere(session, "reader-token", &[]).await?;
    let opts = Timeouts::wait(session.timeouts.rollout);
    for c in &session.topology.clusters {
        wait_token(&session.kube(&c.name).await?, names::ISTIO_SYSTEM, names::READER_TOKEN_SECRET, opts).await?;
    }
    Ok(created)
}

/// Each cluster's EKS endpoint and CA, which the other cluster's istiod reaches.
pub(super) async fn eks_endpoints(session: &Session) -> Result<PeerEndpoints> {
    let aws = session.aws()?;
    let mut out = PeerEndpoints::new();
    for c in &session.topology.clusters {
        let d = eks::describe(aws, &c.name).await?.with_context(|| format!("EKS has no cluster {}", c.name))?;
        let server = d.endpoint.with_context(|| format!("EKS cluster {} has no endpoint", c.name))?;
        let ca = d.ca_pem.with_context(|| format!("EKS cluster {} has no CA", c.name))?;
        out.insert(c.name.clone(), (server, ca));
    }
    Ok(out)
}

/// The kubeconfig `istioctl create-remote-secret` would write for `peer`.
async fn remote_kubeconfig(session: &Session, peer: &ClusterTopology, endpoints: &PeerEndpoints) -> Result<String> {
    let (server, ca) =
        endpoints.get(&peer.name).cloned().with_context(|| format!("no API endpoint known for {}", peer.name))?;
    let secrets: Api<Secret> = Api::namespaced(session.kube(&peer.name).await?, names::ISTIO_SYSTEM);
    let secret = secrets.get(names::READER_TOKEN_SECRET).await.context("the peer's reader token secret")?;
    let token =
        secret.data.and_then(|d| d.get("token").cloned()).context("the peer's reader token secret has no token")?;
    let mut token = String::from_utf8(token.0).context("the reader token is not text")?;
    let mut server = server;
    match session.fault {
        Some(Fault::BadReaderToken) => token = format!("{}x", &token[..token.len().saturating_sub(1)]),
        Some(Fault::RemoteApiUnreachable) => {
            // A port nothing listens on: bind one, note it, let it go.
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            server = format!("https://127.0.0.1:{port}");
        }
        _ => {}
    }
    let name = &peer.istio_cluster;
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca),
            "server": server}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
        "users": [{"name": name, "user": {"token": token}}],
    });
    serde_yaml::to_string(&kubeconfig).context("cannot write the remote kubeconfig")
}

/// Stage 3: the sample namespace, apps, cross-network Gateway and the remote secret.
pub(super) async fn samples(session: &Session, endpoints: &PeerEndpoints) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for c in &session.topology.clusters {
        let peer = session.topology.peer_of(c);
        let client = session.kube(&c.name).await?;
        let applier = Applier::new(client);
        let mut vars = vars_for(session, c);
        vars.insert("REMOTE_CLUSTER", peer.istio_cluster.clone());
        let key = if session.fault == Some(Fault::RemoteSecretWrongKey) { &peer.name } else { &peer.istio_cluster };
        vars.insert("REMOTE_SECRET_KEY", key.clone());
        vars.insert("REMOTE_KUBECONFIG", quoted(&remote_kubeconfig(session, peer, endpoints).await?));
        let mut docs = session.fixtures.manifest("samples", &vars)?;
        if session.fault != Some(Fault::RemoteSecretMissing) {
            docs.extend(session.fixtures.manifest("remote-secret", &vars)?);
        }
        misconfigure(session, &mut docs);
        record_docs(session, &c.name, &docs)?;
        created.extend(applier.apply_all(docs).await?.into_iter().map(|a| format!("{}: {a}", c.name)));
    }
    let opts = Timeouts::wait(session.timeouts.rollout);
    let mut waits = Vec::new();
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        for name in [format!("helloworld-{}", c.sample_version), "sleep".to_string()] {
            let client = client.clone();
            waits.push(async move { wait_deployment_available(&client, names::SAMPLE, &name, opts).await });
        }
    }
    try_join_all(waits).await?;
    Ok(created)
}
