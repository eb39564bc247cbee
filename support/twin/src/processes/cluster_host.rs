//! One EKS cluster of the twin as a process of its own (`meshspec twin
//! serve-cluster`), started by the AWS process when EKS CreateCluster is
//! called: its own API server (its own CA, as each EKS cluster has), its
//! controllers, kubelet, istiod, sidecars and gateways, and the AWS Load
//! Balancer Controller, which reaches AWS only over the network, through the
//! endpoint's wire protocols, as the real one does. EKS tokens are verified
//! as aws-iam-authenticator verifies them: by calling the presigned STS URL.
//!
//! Its VPC is reached over the fabric (`vpc`): the NLBs of the AWS process
//! forward to pod IPs through this process's ingress. A sidecar's upstream to
//! a loopback address (an NLB, the other cluster's API server) leaves over
//! real TCP; a pod IP of the other cluster is not routed, so it times out as
//! on EKS between two VPCs without peering.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::auth::ClusterAuth;
use crate::aws::{AwsConfig, AwsState, Clock, Delays};
use crate::aws_api::{AwsApi, RemoteAws, RemoteAwsConfig};
use crate::kube::{ApiServer, Store, TwinCa};
use crate::mesh::Mesh;
use crate::programs::{self, Cluster};

/// What the AWS process tells a cluster process (its command line, and the
/// credentials in its environment).
#[derive(Clone)]
pub struct ClusterHostOptions {
    pub name: String,
    /// The EKS version, e.g. `1.28`.
    pub version: String,
    pub vpc_id: String,
    pub region: String,
    /// The AWS endpoint (`http://HOST:PORT`) and the credentials the node role would give.
    pub aws_endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The DNS server resolving NLB names (the VPC resolver).
    pub dns: SocketAddr,
    /// This cluster's own loopback address: its API server and VPC ingress listen there.
    pub address: Ipv4Addr,
    pub time_scale: f64,
    pub istio_version: String,
    /// The share of Kubernetes API requests that meet an injected fault.
    pub kube_fault_rate: f64,
}

impl std::fmt::Debug for ClusterHostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHostOptions")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("aws_endpoint", &self.aws_endpoint)
            .finish_non_exhaustive()
    }
}

/// The line a cluster process prints on stdout once it serves: what EKS
/// DescribeCluster shows (endpoint, CA) and where its VPC ingress listens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterReady {
    pub endpoint: String,
    pub ca_pem: String,
    pub ingress: SocketAddr,
}

/// A running cluster process's insides.
pub struct ClusterHost {
    pub ready: ClusterReady,
    mesh: Arc<Mesh>,
    name: String,
    api: ApiServer,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterHost {
    pub async fn start(opts: ClusterHostOptions) -> anyhow::Result<ClusterHost> {
        let istio = crate::istio::release(&opts.istio_version).map_err(anyhow::Error::msg)?;
        let clock = Clock::new(opts.time_scale);
        let aws: Arc<dyn AwsApi> = RemoteAws::connect(RemoteAwsConfig {
            endpoint: opts.aws_endpoint.clone(),
            region: opts.region.clone(),
            access_key_id: opts.access_key_id.clone(),
            secret_access_key: opts.secret_access_key.clone(),
            clock,
        })
        .context("connecting to the AWS endpoint")?;
        let store = Store::with_catalog(crate::kube::Catalog::kubernetes(), crate::kube::store::DEFAULT_LOG_CAPACITY);
        for crd in istio.networking_crds() {
            store
                .create(&crate::kube::Resource::customresourcedefinitions(), None, crd)
                .map_err(|e| anyhow::anyhow!("installing Istio's CRDs: {e:?}"))?;
        }
        let auth = Arc::new(ClusterAuth::new(&opts.name, aws.clone()));
        // Each EKS cluster has a CA of its own (DescribeCluster's certificateAuthority).
        let ca = TwinCa::new(&format!("meshspec twin {} CA", opts.name)).context("creating the cluster CA")?;
        let address = opts.address.to_string();
        let tls = ca
            .server_config_for(&[&address, "127.0.0.1", "localhost"])
            .context("issuing the API server certificate")?;
        let mut api_cfg = crate::twin::api_server_config(&opts.version);
        api_cfg.faults = crate::kube::ApiFaults::at_rate(opts.kube_fault_rate);
        let api = ApiServer::start_at(SocketAddr::from((opts.address, 0)), store.clone(), tls, auth.clone(), api_cfg)
            .await
            .with_context(|| format!("starting the API server on {}", opts.address))?;
        let cluster = Arc::new(Cluster::new(
            &opts.name,
            &opts.region,
            &opts.vpc_id,
            store,
            aws,
            clock,
            Delays::default(),
            auth,
            ca.ca_pem(),
        ));
        // The data plane's in-process NLBs: none here (an empty account); NLBs
        // are the AWS process's listeners, reached over TCP.
        let no_nlbs = AwsState::new(AwsConfig { clock, ..AwsConfig::default() });
        let mesh = Mesh::new(opts.dns, no_nlbs);
        // Only loopback is on this host's wire: NLB addresses and the other
        // cluster's API server. Pod IPs of another VPC have no route.
        mesh.enable_real_network(Arc::new(|ip: Ipv4Addr| ip.is_loopback()));
        // The mesh first: its admission hook must be in place before pods are made.
        let mut tasks = mesh.attach(cluster.clone(), &api);
        tasks.extend(programs::start(cluster.clone()));
        let listener = tokio::net::TcpListener::bind((opts.address, 0))
            .await
            .with_context(|| format!("listening for the VPC on {}", opts.address))?;
        let ingress = listener.local_addr()?;
        tasks.push(super::vpc::serve_ingress(listener, mesh.clone(), opts.name.clone(), clock));
        let ready = ClusterReady { endpoint: api.url.clone(), ca_pem: ca.ca_pem(), ingress };
        Ok(ClusterHost { ready, mesh, name: opts.name, api, tasks })
    }

    /// Stops the programs and closes the API server and the ingress.
    pub async fn shutdown(mut self) {
        self.stop();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }

    fn stop(&mut self) {
        self.mesh.detach(&self.name);
        self.api.shutdown();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for ClusterHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `meshspec twin serve-cluster`: runs until SIGTERM/SIGINT or until its
/// parent (the AWS process) is gone; prints [`ClusterReady`] as one JSON line
/// on stdout once it serves. Returns the exit code; errors are one line on stderr.
pub async fn serve(opts: ClusterHostOptions) -> i32 {
    super::serve_until_stopped(
        ClusterHost::start(opts),
        |host: &ClusterHost| serde_json::to_string(&host.ready),
        |h| Box::pin(h.shutdown()),
    )
    .await
}

/// How long a cluster process may take to print its ready line.
pub const STARTUP: Duration = Duration::from_secs(60);
