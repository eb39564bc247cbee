//! The twin as one thing to start and stop: the AWS endpoint, the DNS server
//! for NLB names, the NLB health checker, and (as EKS creates them) one
//! Kubernetes API server per cluster with that cluster's programs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::auth::ClusterAuth;
use crate::aws::{AwsConfig, AwsServer, AwsState, Clock, ClusterEndpoint, ClusterSpec, Delays, EksHooks};
use crate::dns::DnsServer;
use crate::kube::{ApiServer, ApiServerConfig, Store, TwinCa};
use crate::mesh::Mesh;
use crate::programs::{self, health_checker, Cluster};

/// How to run the twin. The default is the seed's account setup, compressed.
#[derive(Clone, Debug)]
pub struct TwinConfig {
    pub region: String,
    pub account_id: String,
    /// Simulated seconds per wall-clock second.
    pub time_scale: f64,
    pub delays: Delays,
    /// The Istio release the clusters run: its API versions are served (fixtures/istio/releases.yaml).
    pub istio_version: String,
    /// The share of Kubernetes API requests that meet an injected throttling,
    /// outage, delay, cut connection or early end of a watch (0: none).
    pub kube_fault_rate: f64,
    /// The share of AWS API requests that meet an injected throttling, outage,
    /// delay or cut connection (0: none).
    pub aws_fault_rate: f64,
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            region: "us-west-2".into(),
            account_id: "123456789012".into(),
            time_scale: Delays::DEFAULT_SCALE,
            delays: Delays::default(),
            // The seed's release (fixtures/topology.yaml).
            istio_version: "1.20.2".into(),
            kube_fault_rate: 0.0,
            aws_fault_rate: 0.0,
        }
    }
}

/// A running twin. Drop or [`Twin::shutdown`] stops all of it.
pub struct Twin {
    shared: Arc<Shared>,
    aws_server: AwsServer,
    dns: Option<DnsServer>,
    health_checker: Option<JoinHandle<()>>,
    credentials: (String, String),
}

/// What the EKS hooks and the health checker share with the `Twin` handle.
struct Shared {
    aws: AwsState,
    ca: TwinCa,
    mesh: Arc<Mesh>,
    clusters: Mutex<BTreeMap<String, RunningCluster>>,
    /// Set by shutdown: no cluster may start after it.
    closed: Mutex<bool>,
    /// The Istio release every cluster runs.
    istio: crate::istio::Release,
    /// What every cluster's API server injects.
    kube_faults: crate::kube::ApiFaults,
}

/// One EKS cluster's control plane and programs.
struct RunningCluster {
    cluster: Arc<Cluster>,
    api: ApiServer,
    programs: Vec<JoinHandle<()>>,
}

impl RunningCluster {
    fn stop(self) -> Vec<JoinHandle<()>> {
        self.api.shutdown();
        for p in &self.programs {
            p.abort();
        }
        self.programs
    }
}

impl Twin {
    /// Starts the AWS endpoint, DNS and the health checker; clusters start
    /// when EKS CreateCluster is called.
    pub async fn start(cfg: TwinConfig) -> anyhow::Result<Twin> {
        let istio = crate::istio::release(&cfg.istio_version).map_err(anyhow::Error::msg)?;
        let credentials = generate_credentials();
        let aws = AwsState::new(AwsConfig {
            region: cfg.region.clone(),
            account_id: cfg.account_id.clone(),
            credentials: vec![credentials.clone()],
            clock: Clock::new(cfg.time_scale),
            delays: cfg.delays.clone(),
            faults: crate::aws::ApiFaults::at_rate(cfg.aws_fault_rate),
            nlb_address_range: None,
        });
        let aws_server = crate::aws::serve(aws.clone()).await.context("starting the AWS endpoint")?;
        let resolver = aws.clone();
        let dns = DnsServer::start(Arc::new(move |name: &str| resolver.resolve(name)))
            .await
            .context("starting the DNS server")?;
        let ca = TwinCa::new("meshspec twin CA").context("creating the twin CA")?;
        let mesh = Mesh::new(dns.addr(), aws.clone());
        let shared = Arc::new(Shared {
            aws: aws.clone(),
            ca,
            mesh,
            clusters: Mutex::new(BTreeMap::new()),
            closed: Mutex::new(false),
            istio,
            kube_faults: crate::kube::ApiFaults::at_rate(cfg.kube_fault_rate),
        });
        aws.set_eks_hooks(Arc::new(Hooks { shared: Arc::downgrade(&shared) }));

        let weak = Arc::downgrade(&shared);
        let health_checker = tokio::spawn(health_checker::run(aws, move || {
            weak.upgrade().map(|s| s.cluster_list()).unwrap_or_default()
        }));
        tracing::info!(aws = %aws_server.url, dns = %dns.addr(), "twin started");
        Ok(Twin { shared, aws_server, dns: Some(dns), health_checker: Some(health_checker), credentials })
    }

    /// `http://127.0.0.1:PORT`
    pub fn aws_endpoint(&self) -> &str {
        &self.aws_server.url
    }

    /// The access key id and secret the AWS endpoint accepts (new per start).
    pub fn credentials(&self) -> (String, String) {
        self.credentials.clone()
    }

    pub fn region(&self) -> &str {
        &self.shared.aws.config().region
    }

    pub fn account_id(&self) -> &str {
        &self.shared.aws.config().account_id
    }

    /// The DNS server (UDP and TCP) resolving NLB names.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.as_ref().map(DnsServer::addr).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The static admin bearer token of a running cluster (by EKS name).
    pub fn cluster_admin_token(&self, eks_cluster: &str) -> Option<String> {
        self.shared.lock_clusters().get(eks_cluster).map(|c| c.cluster.auth.admin_token().to_owned())
    }

    pub fn aws_state(&self) -> &AwsState {
        &self.shared.aws
    }

    /// The mesh in the clusters (istiod, proxies, apps), e.g. to run a
    /// command in a container without going through an API server.
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.shared.mesh
    }

    /// Stops every server and task and waits for the programs to end.
    pub async fn shutdown(mut self) {
        let mut listening: Vec<SocketAddr> = self.shared.lock_clusters().values().map(|c| c.api.addr).collect();
        listening.push(self.aws_server.addr);
        let mut tasks = self.shared.close();
        tasks.extend(self.health_checker.take());
        self.aws_server.shutdown();
        if let Some(dns) = self.dns.take() {
            dns.shutdown().await;
        }
        for task in tasks {
            task.abort();
            // Ends as cancelled; waiting makes sure it no longer runs.
            let _ = task.await;
        }
        // The servers' tasks were aborted but end on their next poll: wait
        // until their ports are closed, so that "stopped" means stopped.
        for addr in listening {
            wait_closed(addr).await;
        }
        tracing::info!("twin stopped");
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        // Servers abort when dropped; the tasks must be told.
        for task in self.shared.close().into_iter().chain(self.health_checker.take()) {
            task.abort();
        }
    }
}

impl EksHooks for Twin {
    fn start_cluster(&self, spec: ClusterSpec) -> BoxFuture<'static, anyhow::Result<ClusterEndpoint>> {
        let shared = self.shared.clone();
        Box::pin(async move { shared.start_cluster(spec).await })
    }

    fn stop_cluster(&self, name: &str) {
        self.shared.stop_cluster(name);
    }
}

/// The hooks AWS holds: a weak reference, so the twin's state does not keep
/// itself alive through AWS.
struct Hooks {
    shared: Weak<Shared>,
}

impl EksHooks for Hooks {
    fn start_cluster(&self, spec: ClusterSpec) -> BoxFuture<'static, anyhow::Result<ClusterEndpoint>> {
        let shared = self.shared.upgrade();
        Box::pin(async move {
            match shared {
                Some(shared) => shared.start_cluster(spec).await,
                None => anyhow::bail!("the twin is shut down"),
            }
        })
    }

    fn stop_cluster(&self, name: &str) {
        if let Some(shared) = self.shared.upgrade() {
            shared.stop_cluster(name);
        }
    }
}

impl Shared {
    fn lock_clusters(&self) -> MutexGuard<'_, BTreeMap<String, RunningCluster>> {
        self.clusters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_closed(&self) -> bool {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cluster_list(&self) -> Vec<Arc<Cluster>> {
        self.lock_clusters().values().map(|c| c.cluster.clone()).collect()
    }

    async fn start_cluster(&self, spec: ClusterSpec) -> anyhow::Result<ClusterEndpoint> {
        if self.is_closed() {
            anyhow::bail!("the twin is shut down");
        }
        let store = Store::with_catalog(crate::kube::Catalog::kubernetes(), crate::kube::store::DEFAULT_LOG_CAPACITY);
        // Istio's CRDs, as its base chart installs them: they decide which versions are served.
        for crd in self.istio.networking_crds() {
            store
                .create(&crate::kube::Resource::customresourcedefinitions(), None, crd)
                .map_err(|e| anyhow::anyhow!("installing Istio's CRDs: {e:?}"))?;
        }
        // The cluster's programs reach AWS in this process.
        let aws = crate::aws_api::in_process(&self.aws);
        let auth = Arc::new(ClusterAuth::new(&spec.name, aws.clone()));
        let tls = self.ca.server_config().context("issuing the API server certificate")?;
        let mut api_cfg = api_server_config(&spec.version);
        api_cfg.faults = self.kube_faults;
        let api = ApiServer::start(store.clone(), tls, auth.clone(), api_cfg)
            .await
            .with_context(|| format!("starting the API server of {}", spec.name))?;
        let cfg = self.aws.config();
        let cluster = Arc::new(Cluster::new(
            &spec.name,
            &cfg.region,
            &spec.vpc_id,
            store,
            aws,
            cfg.clock,
            cfg.delays.clone(),
            auth,
            self.ca.ca_pem(),
        ));
        let endpoint = ClusterEndpoint { endpoint: api.url.clone(), ca_pem: self.ca.ca_pem() };
        // The mesh first: its admission hook must be in place before pods are made.
        let mut cluster_programs = self.mesh.attach(cluster.clone(), &api);
        cluster_programs.extend(programs::start(cluster.clone()));
        let running = RunningCluster { programs: cluster_programs, cluster, api };

        let mut clusters = self.lock_clusters();
        // Checked under the lock that shutdown takes, so no cluster outlives it.
        if self.is_closed() {
            self.mesh.detach(&spec.name);
            drop(running.stop());
            anyhow::bail!("the twin is shut down");
        }
        if let Some(old) = clusters.insert(spec.name.clone(), running) {
            drop(old.stop());
        }
        tracing::info!(cluster = %spec.name, endpoint = %endpoint.endpoint, "cluster API server started");
        Ok(endpoint)
    }

    fn stop_cluster(&self, name: &str) {
        self.mesh.detach(name);
        if let Some(c) = self.lock_clusters().remove(name) {
            drop(c.stop());
            tracing::info!(cluster = %name, "cluster API server stopped");
        }
    }

    /// Stops every cluster and refuses new ones; returns the aborted tasks.
    fn close(&self) -> Vec<JoinHandle<()>> {
        let mut clusters = self.lock_clusters();
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.mesh.detach_all();
        std::mem::take(&mut *clusters).into_values().flat_map(RunningCluster::stop).collect()
    }
}

/// Waits (at most a few seconds) until nothing accepts connections at `addr`.
async fn wait_closed(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(%addr, "a twin server still listens after shutdown");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `/version` for an EKS version like `1.28`.
pub(crate) fn api_server_config(version: &str) -> ApiServerConfig {
    let minor = version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(28);
    ApiServerConfig::eks(minor)
}

/// An access key pair shaped like IAM's: `AKIA` + 16 base32 characters, and
/// a 40-character secret.
pub(crate) fn generate_credentials() -> (String, String) {
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |chars: &[u8], n: usize| -> String {
        (0..n).map(|_| char::from(chars[rand::random_range(0..chars.len())])).collect()
    };
    (format!("AKIA{}", pick(ID_CHARS, 16)), pick(SECRET_CHARS, 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_look_like_iam_keys_and_differ_per_start() {
        let (id, secret) = generate_credentials();
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
        assert_eq!(secret.len(), 40);
        assert_ne!(generate_credentials(), (id, secret));
    }

    #[test]
    fn the_api_server_reports_the_eks_version() {
        assert_eq!(api_server_config("1.28").git_version, "v1.28.15-eks-7f9249a");
        assert_eq!(api_server_config("1.30").git_version, "v1.30.15-eks-7f9249a");
        assert_eq!(api_server_config("bogus").git_version, "v1.28.15-eks-7f9249a");
    }
}
