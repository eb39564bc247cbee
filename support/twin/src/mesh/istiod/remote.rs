//! A remote cluster of a remote secret, read like istiod reads it: a real
//! Kubernetes client (kube-rs) built from the secret's kubeconfig, with
//! informers (list + watch, kept in reflector stores) on the kinds the
//! registry needs. Only bearer-token kubeconfigs are accepted (istiod refuses
//! exec, auth-provider and client-certificate auth by default).
//!
//! Sync status: `syncing` until every informer has listed once, then
//! `synced`; `timeout` while not synced 30 s (simulated) after the start (bad
//! token, unreachable server: the informers keep retrying and a late sync
//! still turns it `synced`); `closed` once stopped.
//!
//! Source: Istio 1.20.2 pkg/kube/multicluster/secretcontroller.go (statuses,
//! checked closed, timeout, synced, syncing; the log lines), pkg/kube/multicluster/cluster.go
//! (`remote cluster <id> failed to sync after <timeout>`), pkg/cluster/debug.go
//! (clusterz fields `id`, `secretName`, `syncStatus`); PILOT_REMOTE_CLUSTER_TIMEOUT 30s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::task::AbortHandle;

use super::registry::{network_of, ClusterView};
use crate::aws::Clock;
use crate::mesh::log::ProgramLog;

/// How long a remote cluster may take to sync before it is reported `timeout`.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// ... and at least this much wall time: at high time scales 30 s pass
/// before a first list over TLS can answer, or before one slow answer or a
/// retried throttled list (real time, not compressed) comes back, and a
/// healthy remote would flicker through `timeout`.
const MIN_WALL_SYNC_TIMEOUT: Duration = Duration::from_secs(3);

/// Waits out the sync timeout (simulated, with the wall-time floor).
async fn sync_timeout(clock: Clock) {
    tokio::time::sleep(clock.compress(SYNC_TIMEOUT).max(MIN_WALL_SYNC_TIMEOUT)).await;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStatus {
    Syncing,
    Synced,
    Timeout,
    Closed,
}

impl SyncStatus {
    /// As `/debug/clusterz` writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            SyncStatus::Syncing => "syncing",
            SyncStatus::Synced => "synced",
            SyncStatus::Timeout => "timeout",
            SyncStatus::Closed => "closed",
        }
    }
}

/// The informers' caches of one remote cluster.
#[derive(Clone)]
struct Caches {
    namespaces: Store<Namespace>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

#[derive(Default)]
struct Flags {
    synced: AtomicBool,
    timed_out: AtomicBool,
    closed: AtomicBool,
}

/// One remote cluster and its informers.
pub struct RemoteCluster {
    pub id: String,
    /// `istio-system/<secret name>`.
    pub secret: String,
    /// A digest of the kubeconfig (not the kubeconfig: it holds a token), to notice changes.
    fingerprint: String,
    flags: Arc<Flags>,
    caches: Caches,
    task: Option<AbortHandle>,
}

/// The kubeconfig's digest, to compare secrets without keeping their tokens.
pub fn fingerprint(kubeconfig: &str) -> String {
    hex::encode(Sha256::digest(kubeconfig.as_bytes()))
}

/// Parses a remote secret's kubeconfig and refuses auth methods istiod refuses.
/// istiod uses the kubeconfig's `current-context` and nothing else (Istio 1.20.2
/// pkg/kube/multicluster/secretcontroller.go: `clientcmd.NewDefaultClientConfig`
/// without overrides); without one client-go has no cluster to talk to. istiod
/// also accepts inline client certificates (which a K3s stand-in's API server
/// verifies; an EKS cluster of the twin, like EKS, trusts no client CA and
/// leaves such a client anonymous) and the `oidc` auth provider, which the
/// twin's API servers do not take, so the twin refuses it (stricter).
pub fn parse_kubeconfig(text: &str) -> Result<Kubeconfig, String> {
    let kc = Kubeconfig::from_yaml(text).map_err(|e| format!("kubeconfig cannot be loaded: {e}"))?;
    let context_name =
        kc.current_context.clone().filter(|c| !c.is_empty()).ok_or("kubeconfig is not valid: no current-context")?;
    let context = kc
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("context {context_name:?} not found in kubeconfig"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| format!("cluster {:?} not found in kubeconfig", context.cluster))?;
    if cluster.server.as_deref().is_none_or(str::is_empty) {
        return Err("kubeconfig is not valid: no server found for cluster".into());
    }
    let user = context.user.as_deref().unwrap_or("");
    if let Some(auth) = kc.auth_infos.iter().find(|a| a.name == user).and_then(|a| a.auth_info.as_ref()) {
        // Istio 1.20.2 pkg/kube/multicluster/secretcontroller.go, sanitizeKubeConfig.
        if auth.exec.is_some() {
            return Err("kubeconfig is not allowed: exec is not allowed".into());
        }
        if let Some(p) = &auth.auth_provider {
            return Err(format!("kubeconfig is not allowed: auth provider {} is not allowed", p.name));
        }
        if auth.client_certificate.is_some() {
            return Err("kubeconfig is not allowed: clientCertificate is not allowed".into());
        }
        if auth.client_key.is_some() {
            return Err("kubeconfig is not allowed: clientKey is not allowed".into());
        }
        if auth.token_file.is_some() {
            return Err("kubeconfig is not allowed: tokenFile is not allowed".into());
        }
    }
    Ok(kc)
}

impl RemoteCluster {
    /// Starts the informers of a remote cluster (in the background); `Err`
    /// when the kubeconfig is refused, and the cluster is not added.
    pub fn start(id: &str, secret: &str, kubeconfig: &str, clock: Clock, log: ProgramLog) -> Result<Self, String> {
        let kc = parse_kubeconfig(kubeconfig)?;
        let flags = Arc::new(Flags::default());
        let (namespaces, w_ns) = reflector::store();
        let (services, w_svc) = reflector::store();
        let (endpoint_slices, w_ep) = reflector::store();
        let (pods, w_pod) = reflector::store();
        let (nodes, w_node) = reflector::store();
        let caches = Caches { namespaces, services, endpoint_slices, pods, nodes };
        let task = tokio::spawn({
            let (flags, caches, id) = (flags.clone(), caches.clone(), id.to_owned());
            let secret_label = secret.to_owned();
            async move {
                let config = match kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await {
                    Ok(mut c) => {
                        c.connect_timeout = Some(Duration::from_secs(5));
                        // client-go's reflector retries a failed list or watch after its
                        // backoff (below, compressed like every simulated delay); kube-rs'
                        // own retry would wait the server's Retry-After in wall time.
                        c.default_retry = false;
                        c
                    }
                    Err(e) => {
                        log.error(&format!("Adding cluster: create remote cluster failed: failed to create kube clients: {e}\tcluster={id} secret={secret_label}"));
                        return wait_for_timeout(&flags, clock, &log, &id).await;
                    }
                };
                let client = match kube::Client::try_from(config) {
                    Ok(c) => c,
                    Err(e) => {
                        log.error(&format!("Adding cluster: create remote cluster failed: failed to create kube clients: {e}\tcluster={id} secret={secret_label}"));
                        return wait_for_timeout(&flags, clock, &log, &id).await;
                    }
                };
                let mut informers = tokio::task::JoinSet::new();
                let l = || log.clone();
                informers.spawn(inform(Api::<Namespace>::all(client.clone()), w_ns, id.clone(), clock, l()));
                informers.spawn(inform(Api::<Service>::all(client.clone()), w_svc, id.clone(), clock, l()));
                // Istio 1.20.2 reads a remote cluster's endpoints from EndpointSlices
                // (pilot/pkg/serviceregistry/kube/controller/endpointslice.go), so a reader
                // role without them fails its sync as on EKS. The twin has no EndpointSlice
                // controller: the endpoints are computed from the pods and Services read here
                // (as the EndpointSlice controller would compute them).
                informers.spawn(inform(Api::<EndpointSlice>::all(client.clone()), w_ep, id.clone(), clock, l()));
                informers.spawn(inform(Api::<Pod>::all(client.clone()), w_pod, id.clone(), clock, l()));
                informers.spawn(inform(Api::<Node>::all(client), w_node, id.clone(), clock, l()));
                let all_synced = async {
                    let _ = caches.namespaces.wait_until_ready().await;
                    let _ = caches.services.wait_until_ready().await;
                    let _ = caches.endpoint_slices.wait_until_ready().await;
                    let _ = caches.pods.wait_until_ready().await;
                    let _ = caches.nodes.wait_until_ready().await;
                };
                tokio::pin!(all_synced);
                tokio::select! {
                    () = &mut all_synced => {}
                    () = sync_timeout(clock) => {
                        flags.timed_out.store(true, Ordering::SeqCst);
                        // Istio 1.20.2 pkg/kube/multicluster/cluster.go.
                        log.error(&format!("remote cluster {id} failed to sync after {}s", SYNC_TIMEOUT.as_secs()));
                        all_synced.await;
                    }
                }
                flags.synced.store(true, Ordering::SeqCst);
                // The informers run on; the set is dropped (and they abort) with this task.
                while informers.join_next().await.is_some() {}
            }
        });
        Ok(RemoteCluster {
            id: id.to_owned(),
            secret: secret.to_owned(),
            fingerprint: fingerprint(kubeconfig),
            flags,
            caches,
            task: Some(task.abort_handle()),
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn status(&self) -> SyncStatus {
        if self.flags.closed.load(Ordering::SeqCst) {
            SyncStatus::Closed
        } else if self.flags.synced.load(Ordering::SeqCst) {
            SyncStatus::Synced
        } else if self.flags.timed_out.load(Ordering::SeqCst) {
            SyncStatus::Timeout
        } else {
            SyncStatus::Syncing
        }
    }

    /// Stops the informers; the cluster's objects are no longer used.
    pub fn close(&mut self) {
        self.flags.closed.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// The Services the informer holds, once synced (what gateway discovery needs).
    pub fn services_view(&self) -> Option<ClusterView> {
        if self.status() != SyncStatus::Synced {
            return None;
        }
        let to_value = |o: &Arc<Service>| serde_json::to_value(o.as_ref()).ok();
        Some(ClusterView {
            id: self.id.clone(),
            services: self.caches.services.state().iter().filter_map(to_value).collect(),
            ..ClusterView::default()
        })
    }

    /// What identifies the Services the informer holds now (cluster, sync status,
    /// each Service's uid and resourceVersion): unchanged, so is [`Self::services_view`].
    pub fn services_fingerprint(&self) -> String {
        format!("{}:{}:{}", self.id, self.status().as_str(), versions(&self.caches.services))
    }

    /// The same for everything the informers hold: unchanged, so is [`Self::view`].
    pub fn contents_fingerprint(&self) -> String {
        let c = &self.caches;
        format!(
            "{}:{}:{};{};{};{};{}",
            self.id,
            self.status().as_str(),
            versions(&c.namespaces),
            versions(&c.services),
            versions(&c.endpoint_slices),
            versions(&c.pods),
            versions(&c.nodes)
        )
    }

    /// What the informers hold, once synced.
    pub fn view(&self) -> Option<ClusterView> {
        if self.status() != SyncStatus::Synced {
            return None;
        }
        fn values<K>(store: &Store<K>) -> Vec<Value>
        where
            K: k8s_openapi::serde::Serialize + kube::Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store.state().iter().filter_map(|o| serde_json::to_value(o.as_ref()).ok()).collect()
        }
        let namespaces = values(&self.caches.namespaces);
        let services = values(&self.caches.services);
        let pods = values(&self.caches.pods);
        let endpoints = services
            .iter()
            .filter_map(|svc| {
                let subsets = crate::programs::endpoints::subsets(svc, &pods)?;
                Some(serde_json::json!({
                    "metadata": {"name": crate::programs::objects::name(svc), "namespace": crate::programs::objects::namespace(svc)},
                    "subsets": subsets,
                }))
            })
            .collect();
        Some(ClusterView {
            id: self.id.clone(),
            network: network_of(&namespaces),
            services,
            endpoints,
            pods,
            nodes: values(&self.caches.nodes),
        })
    }
}

/// Each object's uid and resourceVersion, sorted.
fn versions<K>(store: &Store<K>) -> String
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let mut parts: Vec<String> = store
        .state()
        .iter()
        .map(|o| {
            let m = o.meta();
            format!("{}@{}", m.uid.as_deref().unwrap_or(""), m.resource_version.as_deref().unwrap_or(""))
        })
        .collect();
    parts.sort();
    parts.join(",")
}

impl Drop for RemoteCluster {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// No client could be built: the cluster can only time out.
async fn wait_for_timeout(flags: &Flags, clock: Clock, log: &ProgramLog, id: &str) {
    sync_timeout(clock).await;
    flags.timed_out.store(true, Ordering::SeqCst);
    log.error(&format!("remote cluster {id} failed to sync after {}s", SYNC_TIMEOUT.as_secs()));
}

/// One informer: list, then watch, into the store; errors (401, connection
/// refused) are retried with back-off for as long as the cluster is known.
/// client-go's reflector backoff (800 ms doubling to 30 s, as kube-runtime's
/// DefaultBackoff copies it), in simulated time.
struct ReflectorBackoff {
    clock: Clock,
    next: Duration,
}

impl ReflectorBackoff {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(30);
}

impl Iterator for ReflectorBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(self.clock.compress(d).max(Duration::from_millis(5)))
    }
}

impl kube::runtime::utils::Backoff for ReflectorBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Where client-go's reflector says it runs (`r.name`): client-go v0.28.3 (what
/// Istio 1.20.2's go.mod pins) tools/cache/reflector.go names a reflector after
/// its call site, which for informers is its own line 229 (the module path
/// holds `@v0.28.3`, so the internal-package filter does not skip it).
const REFLECTOR: &str = "k8s.io/client-go@v0.28.3/tools/cache/reflector.go:229";

/// What client-go's reflector logs for a failed list, as istiod writes it (klog
/// goes to Istio's `klog` scope, Istio 1.20.2 pkg/log/klog.go): the warning of
/// `list` (reflector.go:535) and the error `Run` hands to HandleError (reflector.go:147).
pub fn reflector_lines(kind: &str, error: &str) -> [(&'static str, String); 2] {
    [
        ("warn", format!("{REFLECTOR}: failed to list *v1.{kind}: {error}")),
        ("error", format!("{REFLECTOR}: Failed to watch *v1.{kind}: failed to list *v1.{kind}: {error}")),
    ]
}

/// The text client-go gives a failed request: an API error is its Status
/// message (`Unauthorized`, `pods is forbidden: ...`); other failures are
/// kube-rs' words (client-go's differ, e.g. `dial tcp ...: connect: connection refused`).
fn client_error_text(e: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s)) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn inform<K>(api: Api<K>, writer: reflector::store::Writer<K>, cluster: String, clock: Clock, log: ProgramLog)
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let backoff = ReflectorBackoff { clock, next: ReflectorBackoff::FIRST };
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).backoff(backoff));
    futures::pin_mut!(stream);
    let mut last_error = String::new();
    while let Some(event) = stream.next().await {
        if let Err(e) = event {
            // The error says what failed (401, refused), never the token. The
            // reflector logs every retry; the twin logs a failure when it changes,
            // so that the retries (fast at high time scales) do not push the
            // life-cycle lines out of the bounded log.
            let text = client_error_text(&e);
            if text != last_error {
                let kind = K::kind(&K::DynamicType::default()).to_string();
                tracing::debug!(%cluster, %kind, "remote informer: {text}");
                for (level, line) in reflector_lines(&kind, &text) {
                    log.scoped(level, "klog", &line);
                }
                last_error = text;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str) -> String {
        format!(
            r#"apiVersion: v1
kind: Config
current-context: cluster2
clusters:
- name: cluster2
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Zm9v
contexts:
- name: cluster2
  context: {{cluster: cluster2, user: cluster2}}
users:
- name: cluster2
  user:
{user}
"#
        )
    }

    #[test]
    fn token_and_inline_certificate_kubeconfigs_are_accepted() {
        assert!(parse_kubeconfig(&kubeconfig("    token: abc")).is_ok());
        let exec = kubeconfig("    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}");
        assert!(parse_kubeconfig(&exec).unwrap_err().contains("exec"));
        let cert = kubeconfig("    client-certificate-data: Zm9v\n    client-key-data: Zm9v");
        assert!(parse_kubeconfig(&cert).is_ok(), "istiod's sanitizer lets inline certificates through");
        let provider = kubeconfig("    auth-provider: {name: gcp}");
        assert!(parse_kubeconfig(&provider).unwrap_err().contains("auth provider gcp is not allowed"));
        assert!(parse_kubeconfig("not: [a kubeconfig").is_err());
        assert!(parse_kubeconfig("apiVersion: v1\nkind: Config\n").unwrap_err().contains("no current-context"));
        // The only context is not taken without current-context: istiod does not either.
        let no_current = kubeconfig("    token: abc").replace("current-context: cluster2\n", "");
        assert!(parse_kubeconfig(&no_current).unwrap_err().contains("no current-context"));
    }

    #[test]
    fn statuses_read_as_clusterz_writes_them() {
        let names: Vec<&str> = [SyncStatus::Syncing, SyncStatus::Synced, SyncStatus::Timeout, SyncStatus::Closed]
            .iter()
            .map(SyncStatus::as_str)
            .collect();
        assert_eq!(names, ["syncing", "synced", "timeout", "closed"]);
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
