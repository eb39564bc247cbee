//! The mesh inside the twin: istiod in each cluster, sidecar injection, the
//! proxies' endpoints and admin API, the sample apps, curl, and the data
//! plane between them, all by reference/istio-multinetwork.md.
//!
//! [`Mesh`] spans the twin (a request crosses clusters); [`MeshCluster`] is
//! one cluster's part of it, hooked into that cluster where real Kubernetes
//! lets Istio in: pod admission (the injection webhook), container start
//! (istiod's own start-up), exec (what runs in a container) and a reconcile
//! loop (istiod at work).

pub mod apps;
pub mod ca;
pub mod curl;
pub mod dataplane;
pub mod envoy;
pub mod exec;
pub mod identity;
pub mod injection;
pub mod istiod;
pub mod log;
pub mod network;
pub mod programs;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};

use serde_json::Value;
use tokio::task::JoinHandle;

use self::injection::{InjectorValues, INJECTOR_CONFIGMAP};
use self::istiod::registry::ISTIO_SYSTEM;
use self::istiod::xds::{self, ClusterLoadAssignment, ProxyView};
use self::istiod::{debug, Istiod, IstiodController};
use crate::aws::AwsState;
use crate::kube::exec::{ExecOutput, ExecRequest};
use crate::kube::{ApiError, ApiServer, Resource};
use crate::programs::objects;
use crate::programs::{runtime, Cluster, ContainerExit, PodHooks};

/// The message a pod creation gets while the injection webhook is
/// configured but istiod does not answer (failurePolicy: Fail).
pub const WEBHOOK_DOWN: &str = "Internal error occurred: failed calling webhook \"namespace.sidecar-injector.istio.io\": failed to call webhook: Post \"https://istiod.istio-system.svc:443/inject?timeout=10s\": no endpoints available for service \"istiod\"";

/// The mesh across the twin's clusters.
pub struct Mesh {
    /// The twin's DNS server, where istiod resolves gateway hostnames.
    dns: SocketAddr,
    aws: AwsState,
    clusters: RwLock<BTreeMap<String, Arc<MeshCluster>>>,
    /// Set when the clusters of the mesh are not all in this process: which
    /// addresses a sidecar's upstream connection reaches over real TCP.
    real_network: std::sync::OnceLock<network::Reachable>,
}

impl Mesh {
    pub fn new(dns: SocketAddr, aws: AwsState) -> Arc<Mesh> {
        Arc::new(Mesh { dns, aws, clusters: RwLock::new(BTreeMap::new()), real_network: std::sync::OnceLock::new() })
    }

    /// From now on, a sidecar's upstream to an address no pod or NLB of this
    /// process has goes out over real TCP when `reachable` says the node
    /// reaches it (else: Envoy's connect timeout, as before).
    pub fn enable_real_network(&self, reachable: network::Reachable) {
        let _ = self.real_network.set(reachable);
    }

    pub(crate) fn real_network(&self) -> Option<&network::Reachable> {
        self.real_network.get()
    }

    /// Brings the mesh into a new cluster: its pod hooks, its API server's
    /// exec handler and istiod's loop (abort the handles to stop it).
    pub fn attach(self: &Arc<Self>, cluster: Arc<Cluster>, api: &ApiServer) -> Vec<JoinHandle<()>> {
        let mc =
            Arc::new(MeshCluster { cluster: cluster.clone(), istiod: Istiod::default(), mesh: Arc::downgrade(self) });
        cluster.set_pod_hooks(Arc::new(Hooks(Arc::downgrade(&mc))));
        api.set_exec_handler(Arc::new(exec::MeshExec { cluster: Arc::downgrade(&mc) }));
        self.clusters.write().unwrap_or_else(|p| p.into_inner()).insert(cluster.eks_name.clone(), mc.clone());
        vec![runtime::spawn(cluster, IstiodController { mesh_cluster: Arc::downgrade(&mc), dns: self.dns })]
    }

    /// Forgets a stopped cluster (its istiod stops with it).
    pub fn detach(&self, eks_name: &str) {
        self.clusters.write().unwrap_or_else(|p| p.into_inner()).remove(eks_name);
    }

    /// Forgets every cluster.
    pub fn detach_all(&self) {
        self.clusters.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A cluster by EKS name.
    pub fn cluster(&self, eks_name: &str) -> Option<Arc<MeshCluster>> {
        self.clusters.read().unwrap_or_else(|p| p.into_inner()).get(eks_name).cloned()
    }

    pub fn clusters(&self) -> Vec<Arc<MeshCluster>> {
        self.clusters.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Runs a command in a container as `kubectl exec` would (the same code
    /// the API servers' exec runs).
    pub async fn exec(&self, eks_name: &str, req: ExecRequest) -> Result<ExecOutput, ApiError> {
        let mc = self.cluster(eks_name).ok_or_else(|| ApiError::not_found("clusters", eks_name))?;
        exec::run(mc, req).await
    }
}

/// One cluster's part of the mesh.
pub struct MeshCluster {
    pub cluster: Arc<Cluster>,
    pub istiod: Istiod,
    mesh: Weak<Mesh>,
}

impl MeshCluster {
    pub fn mesh(&self) -> Option<Arc<Mesh>> {
        self.mesh.upgrade()
    }

    /// Whether the injection webhook is configured: the istiod chart is
    /// installed (an istiod Deployment in istio-system).
    fn webhook_installed(&self) -> bool {
        self.cluster.store.list(&Resource::deployments(), Some(ISTIO_SYSTEM), "").iter().any(|d| {
            let template = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
            let mut as_pod = template;
            as_pod["metadata"]["namespace"] = Value::from(ISTIO_SYSTEM);
            istiod::pilot_container(&as_pod).is_some()
        })
    }

    /// The injection webhook: no webhook, no injection; a webhook without a
    /// running istiod refuses the pod.
    fn admit(&self, p: Value) -> Result<Value, String> {
        let ns = self.cluster.get(&Resource::namespaces(), None, objects::namespace(&p));
        if !injection::wants_injection(ns.as_ref(), &p) || !self.webhook_installed() {
            return Ok(p);
        }
        let Some(istiod) = self.istiod.running() else {
            return Err(WEBHOOK_DOWN.to_owned());
        };
        let cm = self.cluster.get(&Resource::configmaps(), Some(ISTIO_SYSTEM), INJECTOR_CONFIGMAP);
        let values_json = cm.as_ref().and_then(|c| c.pointer("/data/values")).and_then(Value::as_str);
        let mut values = InjectorValues::parse(values_json, &istiod.tag);
        if values.network.is_empty() {
            // The chart's value unset: the network of the cluster, if labelled.
            let namespaces = self.cluster.list(&Resource::namespaces());
            values.network = istiod::registry::network_of(&namespaces);
        }
        Ok(injection::inject(p, &values))
    }

    /// What istiod knows about a proxy: its network and requested view.
    fn proxy_view(&self, p: &Value, cluster_network: &str) -> ProxyView {
        let container = injection::proxy_container_of(p);
        let env = |name: &str| container.and_then(|c| injection::env_value(c, name)).filter(|v| !v.is_empty());
        let network = env("ISTIO_META_NETWORK")
            .or_else(|| objects::labels(p).get(injection::NETWORK_LABEL).cloned())
            .unwrap_or_else(|| cluster_network.to_owned());
        ProxyView {
            network,
            requested_networks: xds::requested_networks(env("ISTIO_META_REQUESTED_NETWORK_VIEW").as_deref()),
        }
    }

    /// The outbound clusters of the proxy in pod `p`: from istiod now, or the
    /// last ones it got while istiod is away (`None`: it never got any).
    pub fn proxy_config(&self, p: &Value) -> Option<Arc<Vec<ClusterLoadAssignment>>> {
        let uid = objects::uid(p);
        injection::proxy_container_of(p)?;
        let Some(instance) = self.istiod.running() else {
            return self.istiod.remembered_config(uid);
        };
        instance.connect(p);
        let views = instance.views(&self.cluster);
        // istiod pushes once it has resolved the gateways it knows: until then
        // a proxy keeps what it had.
        if instance.gateways_pending(&views) {
            if let Some(kept) = self.istiod.remembered_config(uid) {
                return Some(kept);
            }
        }
        let gateways = instance.gateways(&views);
        let services = xds::service_endpoints(&views);
        let proxy = self.proxy_view(p, &views[0].network);
        let config = Arc::new(xds::load_assignments(&proxy, &services, &gateways));
        self.istiod.remember_config(uid, config.clone());
        Some(config)
    }

    /// istiod's debug port, served by the istiod in pod `p`: (status, body);
    /// status 0 when nothing listens.
    pub fn istiod_debug(&self, p: &Value, path: &str) -> (u16, String) {
        let Some(instance) = self.istiod.running().filter(|i| i.pod_uid == objects::uid(p)) else {
            return (0, String::new());
        };
        match path.split('?').next().unwrap_or("") {
            "/debug/clusterz" => (200, debug::clusterz(&instance.cluster_id, &instance.remote_statuses())),
            "/debug/networkz" => {
                let views = instance.views(&self.cluster);
                (200, debug::networkz(&instance.gateways(&views)))
            }
            "/ready" => (200, String::new()),
            _ => (404, "404 page not found\n".to_owned()),
        }
    }

    /// The current log of every container of a pod, in the pod's container order.
    pub fn pod_log(&self, namespace: &str, name: &str) -> Vec<String> {
        let Some(p) = self.cluster.get(&Resource::pods(), Some(namespace), name) else {
            return Vec::new();
        };
        let logs = self.cluster.store.logs();
        objects::pod::containers(&p)
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .flat_map(|c| logs.texts(objects::uid(&p), c))
            .collect()
    }
}

/// The cluster's hooks into the mesh.
struct Hooks(Weak<MeshCluster>);

impl PodHooks for Hooks {
    fn admit(&self, p: Value) -> Result<Value, String> {
        match self.0.upgrade() {
            Some(mc) => mc.admit(p),
            None => Ok(p),
        }
    }

    fn start(&self, p: &Value, containers: &[String]) -> Result<(), ContainerExit> {
        let Some(mc) = self.0.upgrade() else {
            return Ok(());
        };
        programs::write_start_lines(&mc.cluster, p, containers);
        match istiod::pilot_container(p).and_then(|c| c.get("name")).and_then(Value::as_str) {
            Some(pilot) if containers.iter().any(|c| c == pilot) => mc.istiod.start(&mc.cluster, p),
            _ => Ok(()),
        }
    }
}
