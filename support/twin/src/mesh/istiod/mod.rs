//! istiod, simulated (reference/istio-multinetwork.md): it runs while a Ready
//! pod with the `pilot` image exists in istio-system, and each start of its
//! container is a fresh istiod (state gone, `cacerts` read again).
//!
//! - At start: the CA (`ca`): plugged-in `cacerts`, else the self-signed root
//!   of `istio-ca-secret` (made on first need); a partial `cacerts` makes the
//!   container exit (CrashLoopBackOff), so the pod never turns Ready.
//! - A plugged-in CA is watched (`reload_cacerts`): a new intermediate of the
//!   same root is taken up without a restart, a new root is refused until the
//!   next start.
//! - While running (`IstiodController`): the root in use goes to ConfigMap
//!   `istio-ca-root-cert` in every namespace; remote secrets
//!   (`istio/multiCluster=true` in istio-system) become remote clusters read
//!   through their API servers (`remote`); gateway hostnames are resolved in
//!   the background (`gateways`).
//! - On demand: each proxy's endpoints (`xds`) and the debug endpoints (`debug`).

pub mod debug;
pub mod gateways;
pub mod registry;
pub mod remote;
pub mod xds;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;

use self::gateways::{gateway_sources, DnsCache, GatewayAddress};
use self::registry::{ClusterView, ISTIO_SYSTEM};
use self::remote::{RemoteCluster, SyncStatus};
use self::xds::{ClusterLoadAssignment, NetworkGateway};
use super::ca::{self, CaBundle};
use super::log::ProgramLog;
use crate::aws::Clock;
use crate::kube::{EventKind, Resource, StoreEvent};
use crate::programs::objects::{self, pod};
use crate::programs::{Cluster, ContainerExit, Reconciler};

pub const MULTICLUSTER_LABEL: &str = "istio/multiCluster";
/// Namespaces istiod leaves alone (no root-cert ConfigMap).
const IGNORED_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "local-path-storage"];
/// How often gateway hostnames are looked at (simulated), and at least how
/// long between two looks (wall), so that extreme time scales do not spin.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);
const MIN_WALL_TICK: Duration = Duration::from_millis(50);
const MIN_WALL_RELOOKUP: Duration = Duration::from_millis(250);

/// Whether an image is istiod's (`docker.io/istio/pilot:1.20.2`).
pub fn is_pilot_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next() == Some("pilot")
}

/// The pilot container of an istiod pod in istio-system.
pub fn pilot_container(p: &Value) -> Option<&Value> {
    if objects::namespace(p) != ISTIO_SYSTEM {
        return None;
    }
    pod::containers(p).iter().find(|c| is_pilot_image(pod::image(c)))
}

fn image_tag(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    match repo.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_owned(),
        _ => "latest".to_owned(),
    }
}

/// One run of istiod: what it read at start and what it built since.
pub struct Instance {
    pub pod_uid: String,
    pub pod_name: String,
    /// `CLUSTER_ID` (istiod's default: `Kubernetes`).
    pub cluster_id: String,
    /// The root of trust it signs under (what `istio-ca-root-cert` carries).
    pub root_pem: String,
    /// Its image tag: the injector's default proxy tag.
    pub tag: String,
    /// The plugged-in CA it signs with (`None`: its self-signed CA).
    signing: Mutex<Option<ca::PluggedCa>>,
    /// The `cacerts` content its watch last handled.
    cacerts_seen: Mutex<Option<ca::PluggedCa>>,
    pub log: ProgramLog,
    ready: AtomicBool,
    /// Whether the remote secrets controller has started (logged once per run).
    secrets_controller: AtomicBool,
    /// The remote cluster count last logged.
    logged_count: AtomicUsize,
    /// Proxies (pod uids) connected to this run, and the connections counted so far.
    connected: Mutex<HashSet<String>>,
    connections: AtomicUsize,
    remotes: Mutex<BTreeMap<String, RemoteCluster>>,
    /// Remote secrets refused (by cluster ID, with the kubeconfig digest), logged once.
    refused: Mutex<HashMap<String, String>>,
    dns: Mutex<DnsCache>,
    resolver: Mutex<Option<AbortHandle>>,
    /// The last views, with what they were read from: istiod's informers do not
    /// copy a cluster for every proxy, and neither does the twin.
    views_cache: Mutex<Option<(String, Arc<Vec<ClusterView>>)>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.resolver).take() {
            task.abort();
        }
    }
}

/// The remote cluster is synced and every gateway hostname among its
/// Services has been looked up. (A cluster not synced has no view: it is left
/// out here rather than asked again, as it may turn synced in between.)
fn gateway_names_tried(remote: &RemoteCluster, dns: &DnsCache) -> bool {
    let Some(view) = remote.services_view() else {
        return false;
    };
    gateway_sources(std::slice::from_ref(&view)).iter().all(|s| match &s.address {
        GatewayAddress::Hostname(h) => dns.tried(h),
        GatewayAddress::Ip(_) => true,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Instance {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The plugged-in CA this run signs with now (`None`: its self-signed CA).
    pub fn signing(&self) -> Option<ca::PluggedCa> {
        lock(&self.signing).clone()
    }

    /// `(cluster id, secret, status)` of every remote cluster, sorted by id.
    pub fn remote_statuses(&self) -> Vec<(String, String, SyncStatus)> {
        lock(&self.remotes).values().map(|r| (r.id.clone(), r.secret.clone(), r.status())).collect()
    }

    /// Every cluster istiod has synced: its own, then the remotes (read again
    /// only when one of them changed).
    ///
    /// A remote cluster whose gateway hostnames istiod has not looked up yet is
    /// left out until it has: Istio resolves a gateway's hostname in the reload
    /// that learns the gateway from the cluster's Services, synchronously
    /// (Istio 1.20.2 pilot/pkg/model/network.go `reload` ->
    /// `resolveHostnameGateways` -> `NameCache.Resolve`), before the debounced
    /// push that carries the cluster's endpoints; the twin resolves in a task
    /// of its own, and without this a cluster added again (a remote secret
    /// re-applied or updated) would reach sidecars as pod IPs of another
    /// network for a moment, which Istio does not do.
    pub fn views(&self, own: &Cluster) -> Arc<Vec<ClusterView>> {
        let remotes = lock(&self.remotes);
        let ready: Vec<&RemoteCluster> = {
            let dns = lock(&self.dns);
            remotes.values().filter(|r| gateway_names_tried(r, &dns)).collect()
        };
        let fingerprints: Vec<String> = ready.iter().map(|r| r.contents_fingerprint()).collect();
        let key = format!("{}|{}", own.store.resource_version(), fingerprints.join("|"));
        if let Some((k, views)) = lock(&self.views_cache).as_ref() {
            if *k == key {
                return views.clone();
            }
        }
        let mut views = vec![ClusterView::from_store(&self.cluster_id, own)];
        views.extend(ready.iter().filter_map(|r| r.view()));
        drop(remotes);
        let views = Arc::new(views);
        *lock(&self.views_cache) = Some((key, views.clone()));
        views
    }

    /// What the service views depend on: unchanged, they are the same.
    fn service_views_key(&self, own: &Cluster) -> String {
        let remotes: Vec<String> = lock(&self.remotes).values().map(RemoteCluster::services_fingerprint).collect();
        format!("{}|{}", own.store.resource_version(), remotes.join("|"))
    }

    /// Every known cluster's Services only (for gateway discovery).
    fn service_views(&self, own: &Cluster) -> Vec<ClusterView> {
        let own = ClusterView {
            id: self.cluster_id.clone(),
            services: own.list(&Resource::services()),
            ..ClusterView::default()
        };
        let mut views = vec![own];
        views.extend(lock(&self.remotes).values().filter_map(RemoteCluster::services_view));
        views
    }

    /// A proxy gets its config from this run: its first time is a new ADS
    /// connection, logged as Istio 1.20.2 pilot/pkg/xds/ads.go does (scope
    /// `ads`; the connection ID is the proxy ID `<pod>.<namespace>` and a
    /// counter, `connectionID`).
    pub fn connect(&self, p: &Value) {
        if lock(&self.connected).insert(objects::uid(p).to_owned()) {
            let n = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
            let id = format!("{}.{}-{n}", objects::name(p), objects::namespace(p));
            self.log.scoped("info", "ads", &format!("ADS: new connection for node:{id}"));
        }
    }

    /// The network gateways known now.
    pub fn gateways(&self, views: &[ClusterView]) -> Vec<NetworkGateway> {
        lock(&self.dns).gateways(&gateway_sources(views))
    }

    /// Whether a gateway hostname is still to be looked up for the first time
    /// (the twin resolves in the background; istiod resolves before it pushes).
    pub fn gateways_pending(&self, views: &[ClusterView]) -> bool {
        lock(&self.dns).never_looked_up(&gateway_sources(views))
    }
}

/// istiod of one cluster across its restarts.
#[derive(Default)]
pub struct Istiod {
    current: Mutex<Option<Arc<Instance>>>,
    /// The root the last run used: workloads keep trusting it while istiod is away.
    last_root: Mutex<Option<String>>,
    /// The plugged-in CA the last run signed with, likewise.
    last_signing: Mutex<Option<ca::PluggedCa>>,
    /// The last endpoints each proxy got (by pod uid): Envoy keeps its config
    /// while istiod is away.
    configs: Mutex<HashMap<String, Arc<Vec<ClusterLoadAssignment>>>>,
}

impl Istiod {
    /// The running (started and Ready) istiod.
    pub fn running(&self) -> Option<Arc<Instance>> {
        lock(&self.current).clone().filter(|i| i.is_ready())
    }

    /// The istiod started last, Ready or not yet.
    pub fn current(&self) -> Option<Arc<Instance>> {
        lock(&self.current).clone()
    }

    pub fn last_root(&self) -> Option<String> {
        lock(&self.last_root).clone()
    }

    /// The root this cluster's workloads trust: the running istiod's, else
    /// the last run's (certificates outlive istiod).
    pub fn trust_root(&self) -> Option<String> {
        self.running().map(|i| i.root_pem.clone()).or_else(|| self.last_root())
    }

    /// The plugged-in CA workloads get certificates from: the running
    /// istiod's, else the last run's; `None` for a self-signed CA.
    pub fn signing(&self) -> Option<ca::PluggedCa> {
        match self.running() {
            Some(i) => i.signing(),
            None => lock(&self.last_signing).clone(),
        }
    }

    pub fn remember_config(&self, pod_uid: &str, config: Arc<Vec<ClusterLoadAssignment>>) {
        lock(&self.configs).insert(pod_uid.to_owned(), config);
    }

    pub fn remembered_config(&self, pod_uid: &str) -> Option<Arc<Vec<ClusterLoadAssignment>>> {
        lock(&self.configs).get(pod_uid).cloned()
    }

    /// istiod's container starts in `p`: the CA is chosen now, once.
    pub fn start(&self, cluster: &Cluster, p: &Value) -> Result<(), ContainerExit> {
        let Some(container) = pilot_container(p) else {
            return Ok(());
        };
        let container_name = container.get("name").and_then(Value::as_str).unwrap_or("discovery").to_owned();
        let log = ProgramLog::new(cluster.store.logs().clone(), objects::uid(p), &container_name);
        // Istio 1.20.2 pilot/pkg/bootstrap/mesh.go (the pilot-discovery flag's default path).
        log.info("initializing mesh configuration ./etc/istio/config/mesh");
        let exit = |message: String| {
            log.error(&message);
            ContainerExit { container: container_name.clone(), exit_code: 1, message }
        };
        let cacerts = cluster.get(&Resource::secrets(), Some(ISTIO_SYSTEM), ca::CACERTS);
        let signing = ca::plugged_ca(cacerts.as_ref());
        let root_pem = match ca::read_cacerts(cacerts.as_ref()) {
            CaBundle::Plugged { root_pem } => {
                log.info(ca::LOG_LOCAL_CA);
                // Istio 1.20.2 pilot/pkg/bootstrap/istio_ca.go addCACertsFileWatcher
                // (ROOT_CA_DIR defaults to ./etc/cacerts).
                log.info("Added cacerts files watcher at ./etc/cacerts");
                root_pem
            }
            CaBundle::Absent => {
                log.info(ca::LOG_SELF_SIGNED);
                self_signed_root(cluster).map_err(|e| exit(format!("failed to create discovery service: {e}")))?
            }
            CaBundle::Incomplete { present } => {
                return Err(exit(format!(
                    "failed to create discovery service: failed to create CA: {} (found {})",
                    ca::LOG_INCOMPLETE,
                    present.join(", ")
                )));
            }
            CaBundle::Invalid(why) => {
                return Err(exit(format!("failed to create discovery service: failed to create CA: {why}")));
            }
        };
        // Istio 1.20.2 pilot/pkg/bootstrap/server.go Start.
        log.info("starting discovery service");
        let cluster_id = super::injection::env_value(container, "CLUSTER_ID")
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "Kubernetes".to_owned());
        let instance = Arc::new(Instance {
            pod_uid: objects::uid(p).to_owned(),
            pod_name: objects::name(p).to_owned(),
            cluster_id,
            root_pem: root_pem.clone(),
            tag: image_tag(pod::image(container)),
            signing: Mutex::new(signing.clone()),
            cacerts_seen: Mutex::new(signing.clone()),
            log,
            ready: AtomicBool::new(false),
            secrets_controller: AtomicBool::new(false),
            logged_count: AtomicUsize::new(0),
            connected: Mutex::new(HashSet::new()),
            connections: AtomicUsize::new(0),
            remotes: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(HashMap::new()),
            dns: Mutex::new(DnsCache::default()),
            resolver: Mutex::new(None),
            views_cache: Mutex::new(None),
        });
        // A new run: the previous one (if any) stops, with its remote clusters.
        *lock(&self.current) = Some(instance);
        *lock(&self.last_root) = Some(root_pem);
        *lock(&self.last_signing) = signing;
        Ok(())
    }

    fn stop(&self) {
        if let Some(old) = lock(&self.current).take() {
            for remote in lock(&old.remotes).values_mut() {
                remote.close();
            }
        }
    }
}

/// The self-signed root of `istio-ca-secret`, made (and stored) on first need.
fn self_signed_root(cluster: &Cluster) -> Result<String, String> {
    let existing = cluster.get(&Resource::secrets(), Some(ISTIO_SYSTEM), ca::SELF_SIGNED_SECRET);
    if let Some(root) = ca::self_signed_root(existing.as_ref()) {
        return Ok(root);
    }
    let (cert, key) = ca::generate_self_signed()?;
    let secret = ca::self_signed_secret(ISTIO_SYSTEM, &cert, &key);
    match cluster.store.create(&Resource::secrets(), Some(ISTIO_SYSTEM), secret) {
        Ok(_) => Ok(cert),
        // Someone was first: use theirs.
        Err(e) if e.reason == "AlreadyExists" => {
            let theirs = cluster.get(&Resource::secrets(), Some(ISTIO_SYSTEM), ca::SELF_SIGNED_SECRET);
            ca::self_signed_root(theirs.as_ref()).ok_or_else(|| "istio-ca-secret holds no CA certificate".to_owned())
        }
        Err(e) => Err(format!("failed to write istio-ca-secret: {e}")),
    }
}

/// What istiod does while it runs, as a reconcile loop of its cluster.
pub struct IstiodController {
    pub mesh_cluster: Weak<super::MeshCluster>,
    pub dns: SocketAddr,
}

impl Reconciler for IstiodController {
    fn name(&self) -> &'static str {
        "istiod"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        let ns = objects::namespace(&event.object);
        match event.resource.plural.as_str() {
            "namespaces" => event.kind == EventKind::Added,
            "configmaps" => objects::name(&event.object) == ca::ROOT_CERT_CONFIGMAP,
            "secrets" | "pods" => ns == ISTIO_SYSTEM || event.resource.plural == "pods",
            _ => false,
        }
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let Some(mc) = self.mesh_cluster.upgrade() else {
            return;
        };
        let istiod = &mc.istiod;
        // Proxies that are gone need no remembered config.
        let pods = cluster.list(&Resource::pods());
        let uids: HashSet<&str> = pods.iter().map(objects::uid).collect();
        lock(&istiod.configs).retain(|uid, _| uids.contains(uid.as_str()));

        let Some(instance) = istiod.current() else {
            return;
        };
        let own_pod = pods.iter().find(|p| objects::uid(p) == instance.pod_uid);
        let Some(own_pod) = own_pod else {
            // Its pod is gone: so is this istiod.
            instance.log.info(&format!("istiod pod {} gone: stopping", instance.pod_name));
            istiod.stop();
            return;
        };
        let serving = pod::is_serving(own_pod);
        instance.ready.store(serving, Ordering::SeqCst);
        if !serving {
            return;
        }
        write_root_certs(cluster, &instance.root_pem);
        reload_cacerts(cluster, istiod, &instance);
        if !instance.secrets_controller.swap(true, Ordering::SeqCst) {
            // Istio 1.20.2 pkg/kube/multicluster/secretcontroller.go Run, and
            // pkg/kube/controllers/queue.go Run (scope `controllers`).
            instance.log.info("Starting multicluster remote secrets controller");
            instance.log.scoped("info", "controllers", "starting\tcontroller=multicluster secret");
        }
        sync_remote_secrets(cluster, &instance);
        let mut resolver = lock(&instance.resolver);
        if resolver.is_none() {
            let task = tokio::spawn(resolve_gateways(
                Arc::downgrade(&instance),
                Arc::downgrade(cluster),
                self.dns,
                cluster.clock,
            ));
            *resolver = Some(task.abort_handle());
        }
    }
}

/// istiod's watch of its plugged-in CA (Istio 1.20.2
/// pilot/pkg/bootstrap/istio_ca.go: `createIstioCA` starts `initCACertsWatcher`
/// only for a plugged-in CA; on a write to /etc/cacerts `handleEvent` takes up
/// the new files when `root-cert.pem` is unchanged, byte for byte, and refuses
/// a new root while `ISTIO_MULTIROOT_MESH` is off, its default in
/// pilot/pkg/features/pilot.go). Not modelled: the kubelet's delay in updating
/// a mounted Secret (up to its sync period plus its cache's TTL, about a minute).
fn reload_cacerts(cluster: &Cluster, istiod: &Istiod, instance: &Instance) {
    let Some(current) = instance.signing() else {
        return;
    };
    let Some(new) = ca::plugged_ca(cluster.get(&Resource::secrets(), Some(ISTIO_SYSTEM), ca::CACERTS).as_ref()) else {
        return;
    };
    {
        let mut seen = lock(&instance.cacerts_seen);
        if seen.as_ref() == Some(&new) {
            return;
        }
        *seen = Some(new.clone());
    }
    if new == current {
        return;
    }
    let log = &instance.log;
    log.info("Update Istiod cacerts");
    if new.root != current.root {
        log.warn("Multi root is disabled, updating new ROOT-CA not supported");
        return;
    }
    *lock(&instance.signing) = Some(new.clone());
    *lock(&istiod.last_signing) = Some(new);
    log.info("Istiod has detected the newly added intermediate CA and updated its key and certs accordingly");
}

/// `istio-ca-root-cert` with the root in use, in every namespace.
fn write_root_certs(cluster: &Cluster, root_pem: &str) {
    for ns in cluster.list(&Resource::namespaces()) {
        let name = objects::name(&ns);
        if objects::is_terminating(&ns) || IGNORED_NAMESPACES.contains(&name) {
            continue;
        }
        let want = ca::root_cert_configmap(name, root_pem);
        match cluster.get(&Resource::configmaps(), Some(name), ca::ROOT_CERT_CONFIGMAP) {
            None => {
                cluster.create(&Resource::configmaps(), want);
            }
            Some(mut cm) if cm.get("data") != want.get("data") => {
                cm["data"] = want["data"].clone();
                cluster.update(&Resource::configmaps(), cm);
            }
            Some(_) => {}
        }
    }
}

/// Remote clusters follow the remote secrets: one per data key other than
/// istiod's own cluster ID (the first secret wins a duplicate ID).
fn sync_remote_secrets(cluster: &Cluster, instance: &Instance) {
    let mut secrets =
        cluster.store.list(&Resource::secrets(), Some(ISTIO_SYSTEM), &format!("{MULTICLUSTER_LABEL}=true"));
    secrets.retain(|s| !objects::is_terminating(s));
    secrets.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    let mut desired: BTreeMap<String, (String, String)> = BTreeMap::new();
    for s in &secrets {
        let keys: Vec<String> =
            s.get("data").and_then(Value::as_object).map(|d| d.keys().cloned().collect()).unwrap_or_default();
        for key in keys {
            if key == instance.cluster_id {
                continue;
            }
            let Some(kubeconfig) = ca::secret_text(s, &key) else {
                continue;
            };
            desired.entry(key).or_insert((format!("{ISTIO_SYSTEM}/{}", objects::name(s)), kubeconfig));
        }
    }

    let mut remotes = lock(&instance.remotes);
    let mut refused = lock(&instance.refused);
    let log = &instance.log;
    // Istio 1.20.2 pkg/kube/multicluster/secretcontroller.go: the cluster count
    // after each change, and a cluster's lines labelled with it and its secret
    // (pkg/log/scope.go WithLabels: the message, a tab, `key=value`s).
    let live = |remotes: &BTreeMap<String, RemoteCluster>| {
        remotes.values().filter(|r| r.status() != SyncStatus::Closed).count()
    };
    for (id, remote) in remotes.iter_mut() {
        if !desired.contains_key(id) && remote.status() != SyncStatus::Closed {
            log.info(&format!("processing secret event for secret {}", remote.secret));
            log.info(&format!("Deleting cluster_id={id} configured by secret={}", remote.secret));
            remote.close();
        }
    }
    let count = live(&remotes);
    if count != instance.logged_count.swap(count, Ordering::SeqCst) {
        log.info(&format!("Number of remote clusters: {count}"));
    }
    refused.retain(|id, _| desired.contains_key(id));
    for (id, (secret, kubeconfig)) in desired {
        let digest = remote::fingerprint(&kubeconfig);
        let current = remotes.get(&id);
        if current.is_some_and(|r| r.status() != SyncStatus::Closed && r.fingerprint() == digest && r.secret == secret)
        {
            continue;
        }
        if refused.get(&id) == Some(&digest) {
            continue;
        }
        let action = if current.is_some_and(|r| r.status() != SyncStatus::Closed) { "Updating" } else { "Adding" };
        let labels = format!("cluster={id} secret={secret}");
        log.info(&format!("processing secret event for secret {secret}"));
        log.info(&format!("{action} cluster\t{labels}"));
        match RemoteCluster::start(&id, &secret, &kubeconfig, cluster.clock, log.clone()) {
            Ok(remote) => {
                log.info(&format!("finished callback for cluster and starting to sync\t{labels}"));
                refused.remove(&id);
                if let Some(mut old) = remotes.insert(id, remote) {
                    old.close();
                }
            }
            Err(why) => {
                log.error(&format!("{action} cluster: create remote cluster failed: {why}\t{labels}"));
                if let Some(mut old) = remotes.remove(&id) {
                    old.close();
                }
                refused.insert(id, digest);
                // pkg/kube/controllers/queue.go: the secret's error, not retried
                // (the multicluster queue has no retries), in scope `controllers`.
                log.scoped(
                    "error",
                    "controllers",
                    &format!("error handling {secret}, and retry budget exceeded: error adding secret {secret}: {why}\tcontroller=multicluster secret"),
                );
            }
        }
        let count = live(&remotes);
        instance.logged_count.store(count, Ordering::SeqCst);
        log.info(&format!("Number of remote clusters: {count}"));
    }
}

/// Looks up gateway hostnames when they are due, for as long as the run lasts.
async fn resolve_gateways(instance: Weak<Instance>, cluster: Weak<Cluster>, dns: SocketAddr, clock: Clock) {
    let tick = clock.compress(RESOLVE_EVERY).max(MIN_WALL_TICK);
    // The sources are read again only when a Service changed; a name is looked up
    // again at its TTL (simulated) but not more often than MIN_WALL_RELOOKUP (wall):
    // at high time scales a TTL passes every tick, and the lookups would be most of
    // an idle twin's work. A name not looked up yet is looked up at once.
    let mut cached: Option<(String, Vec<gateways::GatewaySource>)> = None;
    let mut looked_up: HashMap<String, std::time::Instant> = HashMap::new();
    // The VPC's DNS support as AWS last told it: an AWS API that does not answer
    // leaves the VPC's resolver as it was.
    let mut vpc_resolves = true;
    loop {
        let (Some(inst), Some(own)) = (instance.upgrade(), cluster.upgrade()) else {
            return;
        };
        let key = inst.service_views_key(&own);
        let sources = match &cached {
            Some((k, sources)) if *k == key => sources.clone(),
            _ => {
                let sources = gateway_sources(&inst.service_views(&own));
                cached = Some((key, sources.clone()));
                sources
            }
        };
        let due: Vec<String> = lock(&inst.dns)
            .due(&sources, clock.now())
            .into_iter()
            .filter(|h| looked_up.get(h).is_none_or(|t| t.elapsed() >= MIN_WALL_RELOOKUP))
            .collect();
        for h in &due {
            looked_up.insert(h.clone(), std::time::Instant::now());
        }
        looked_up.retain(|h, _| sources.iter().any(|s| s.address == GatewayAddress::Hostname(h.clone())));
        // istiod resolves through the cluster's DNS, which forwards names outside the
        // cluster to the VPC's Amazon-provided server; with the VPC's enableDnsSupport
        // off that server does not answer (botocore ec2 ModifyVpcAttributeRequest docs).
        if !due.is_empty() {
            // A call to AWS blocks: not on this task's thread.
            let (aws, vpc_id) = (own.aws.clone(), own.vpc_id.clone());
            match tokio::task::spawn_blocking(move || aws.vpc_dns_support(&vpc_id)).await {
                Ok(Ok(supported)) => vpc_resolves = supported,
                Ok(Err(e)) => tracing::debug!("reading the DNS support of {}: {e}", own.vpc_id),
                Err(e) => tracing::debug!("reading the DNS support of {}: {e}", own.vpc_id),
            }
        }
        for host in due {
            let answer = if !vpc_resolves {
                tracing::debug!("looking up {host}: the VPC's DNS resolution is disabled");
                None
            } else {
                match gateways::lookup_a(dns, &host).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!("looking up {host}: {e}");
                        None
                    }
                }
            };
            if answer.is_none() {
                let n = sources.iter().filter(|s| s.address == GatewayAddress::Hostname(host.clone())).count();
                inst.log.warn(&format!("could not resolve hostname {host:?} for {n} gateways"));
            }
            lock(&inst.dns).record(&host, answer, clock.now());
        }
        lock(&inst.dns).retain(&sources);
        drop((inst, own));
        tokio::time::sleep(tick).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pilot_images_are_recognised_by_repository_name() {
        assert!(is_pilot_image("docker.io/istio/pilot:1.20.2"));
        assert!(is_pilot_image("gcr.io/istio-release/pilot@sha256:abc"));
        assert!(!is_pilot_image("docker.io/istio/proxyv2:1.20.2"));
        assert!(!is_pilot_image("example.com/pilot-light:1"));
        assert_eq!(image_tag("docker.io/istio/pilot:1.20.2"), "1.20.2");
        assert_eq!(image_tag("localhost:5000/pilot"), "latest");
    }
}
