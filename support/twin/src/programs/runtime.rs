//! What the programs of one cluster share, and how each one runs: a
//! level-triggered loop that reconciles the whole cluster after every batch
//! of store events it cares about (and on a timer when it also watches
//! something outside the store, such as AWS).

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use super::network::{NodeSubnet, PodNetwork};
use super::objects;
use crate::auth::ClusterAuth;
use crate::aws::{Clock, Delays};
use crate::aws_api::AwsApi;
use crate::kube::selector::{FieldSelector, LabelSelector};
use crate::kube::{ApiError, Resource, Store, StoreEvent};

/// Subnet tag of the private subnets (where nodes and internal NLBs go).
pub const PRIVATE_SUBNET_TAG: &str = "kubernetes.io/role/internal-elb";
/// Subnet tag of the public subnets (internet-facing NLBs).
pub const PUBLIC_SUBNET_TAG: &str = "kubernetes.io/role/elb";

/// One simulated EKS cluster as its programs see it.
pub struct Cluster {
    /// The EKS cluster name (`eks-1`).
    pub eks_name: String,
    pub region: String,
    pub vpc_id: String,
    pub store: Arc<Store>,
    /// AWS as the cluster's programs reach it: the twin's model in this
    /// process, or an AWS endpoint over the wire.
    pub aws: Arc<dyn AwsApi>,
    pub clock: Clock,
    pub delays: Delays,
    pub auth: Arc<ClusterAuth>,
    /// The cluster CA (what `kube-root-ca.crt` and token Secrets carry).
    pub ca_pem: String,
    network: Mutex<Option<PodNetwork>>,
    /// Set when the network was given (a K3s stand-in's node and cluster CIDR)
    /// rather than built from the VPC's subnets.
    fixed_network: std::sync::atomic::AtomicBool,
    hooks: RwLock<Option<Arc<dyn PodHooks>>>,
}

/// What runs on top of Kubernetes (Istio) hooks in at the two points a real
/// cluster lets it: admission of a new pod (a mutating webhook) and the start
/// of a pod's containers (the program in the image starting up).
pub trait PodHooks: Send + Sync + 'static {
    /// The pod as it is to be stored, or why the webhook refuses it.
    fn admit(&self, pod: Value) -> Result<Value, String>;
    /// The named containers of the pod start (all of them at first, a crashed
    /// one on its restart); `Err` says which program exited at once, and why.
    fn start(&self, pod: &Value, containers: &[String]) -> Result<(), ContainerExit>;
}

/// A container whose program exited as it started (the kubelet restarts it
/// with back-off: CrashLoopBackOff).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerExit {
    pub container: String,
    pub exit_code: i32,
    pub message: String,
}

impl Cluster {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        eks_name: &str,
        region: &str,
        vpc_id: &str,
        store: Arc<Store>,
        aws: Arc<dyn AwsApi>,
        clock: Clock,
        delays: Delays,
        auth: Arc<ClusterAuth>,
        ca_pem: String,
    ) -> Cluster {
        Cluster {
            eks_name: eks_name.to_owned(),
            region: region.to_owned(),
            vpc_id: vpc_id.to_owned(),
            store,
            aws,
            clock,
            delays,
            auth,
            ca_pem,
            network: Mutex::new(None),
            fixed_network: std::sync::atomic::AtomicBool::new(false),
            hooks: RwLock::new(None),
        }
    }

    /// Installs what admits and starts pods (replacing any earlier hooks).
    pub fn set_pod_hooks(&self, hooks: Arc<dyn PodHooks>) {
        *self.hooks.write().unwrap_or_else(|p| p.into_inner()) = Some(hooks);
    }

    fn pod_hooks(&self) -> Option<Arc<dyn PodHooks>> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A new pod through admission: unchanged without hooks.
    pub fn admit_pod(&self, pod: Value) -> Result<Value, String> {
        match self.pod_hooks() {
            Some(h) => h.admit(pod),
            None => Ok(pod),
        }
    }

    /// Starts the named containers' programs: always fine without hooks.
    pub fn start_pod(&self, pod: &Value, containers: &[String]) -> Result<(), ContainerExit> {
        match self.pod_hooks() {
            Some(h) => h.start(pod, containers),
            None => Ok(()),
        }
    }

    /// The pod network, built from the VPC's subnets on first use (and again
    /// while the VPC has none to offer).
    pub fn network(&self) -> MutexGuard<'_, Option<PodNetwork>> {
        let mut guard = self.network.lock().unwrap_or_else(|p| p.into_inner());
        if self.fixed_network.load(std::sync::atomic::Ordering::Acquire) {
            return guard;
        }
        if guard.as_ref().is_none_or(|n| n.nodes().is_empty()) {
            *guard = Some(PodNetwork::new(&self.region, self.node_subnets()));
        }
        guard
    }

    /// Uses `network` from now on instead of one built from the VPC's subnets
    /// (a cluster whose nodes and pod CIDR are given, as K3s' are).
    pub fn fix_network(&self, network: PodNetwork) {
        let mut guard = self.network.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(network);
        self.fixed_network.store(true, std::sync::atomic::Ordering::Release);
    }

    /// One subnet per AZ for nodes: the private ones (tagged
    /// `kubernetes.io/role/internal-elb`), else any subnet of the VPC that is
    /// not public, else any.
    fn node_subnets(&self) -> Vec<NodeSubnet> {
        // Unanswered, the network is simply built at a later use (as while the VPC has no subnets).
        let mut subnets = self.aws.subnets_of_vpc(&self.vpc_id).unwrap_or_else(|e| {
            tracing::warn!(cluster = %self.eks_name, "listing the subnets of {}: {e}", self.vpc_id);
            Vec::new()
        });
        subnets.sort_by(|a, b| (&a.az, &a.cidr).cmp(&(&b.az, &b.cidr)));
        let tagged =
            |s: &crate::aws::SubnetInfo, key: &str| s.tags.iter().any(|(k, v)| k == key && (v == "1" || v.is_empty()));
        let private: Vec<_> = subnets.iter().filter(|s| tagged(s, PRIVATE_SUBNET_TAG)).collect();
        let not_public: Vec<_> = subnets.iter().filter(|s| !tagged(s, PUBLIC_SUBNET_TAG)).collect();
        let chosen = if !private.is_empty() {
            private
        } else if !not_public.is_empty() {
            not_public
        } else {
            subnets.iter().collect()
        };
        let mut per_az: Vec<NodeSubnet> = Vec::new();
        for s in chosen {
            if per_az.iter().any(|n| n.az == s.az) {
                continue;
            }
            if let Some(n) = NodeSubnet::parse(&s.id, &s.az, &s.cidr) {
                per_az.push(n);
            }
        }
        per_az
    }

    /// Every object of a kind, in all namespaces.
    /// Every object of `r`'s kind, read at the version the cluster stores it (which
    /// versions are served depends on the cluster, e.g. on its Istio release).
    pub fn list(&self, r: &Resource) -> Vec<Value> {
        match self.store.stored(&r.group, &r.plural) {
            Some(stored) => self.store.list(&stored, None, ""),
            None => Vec::new(),
        }
    }

    /// The objects a field selector picks (only those are copied out of the store).
    pub fn list_where(&self, r: &Resource, fields: &str) -> Vec<Value> {
        let (Some(stored), Ok(fields)) =
            (self.store.stored(&r.group, &r.plural), FieldSelector::parse(fields, &r.plural))
        else {
            return Vec::new();
        };
        self.store
            .list_matching(&stored, None, &LabelSelector::default(), &fields)
            .map(|(items, _)| items)
            .unwrap_or_default()
    }

    pub fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Option<Value> {
        self.store.get(r, ns, name)
    }

    /// Creates an object (namespace from its metadata). Failures are logged:
    /// the next reconcile tries again.
    pub fn create(&self, r: &Resource, obj: Value) -> Option<Value> {
        let ns = namespace_of(r, &obj);
        self.logged("create", r, objects::name(&obj).to_owned(), self.store.create(r, ns.as_deref(), obj))
    }

    /// Replaces an object's main part; a stale resourceVersion fails (and the
    /// write that made it stale triggers the next reconcile).
    pub fn update(&self, r: &Resource, obj: Value) -> Option<Value> {
        let ns = namespace_of(r, &obj);
        self.logged("update", r, objects::name(&obj).to_owned(), self.store.update(r, ns.as_deref(), obj))
    }

    /// Sets `.status` to `obj`'s status.
    pub fn set_status(&self, r: &Resource, obj: &Value) -> Option<Value> {
        let ns = namespace_of(r, obj);
        let name = objects::name(obj).to_owned();
        let status = obj.get("status").cloned().unwrap_or(Value::Null);
        self.logged("update status of", r, name.clone(), self.store.update_status(r, ns.as_deref(), &name, status))
    }

    pub fn merge_patch(&self, r: &Resource, ns: Option<&str>, name: &str, patch: Value) -> Option<Value> {
        self.logged("patch", r, name.to_owned(), self.store.merge_patch(r, ns, name, patch))
    }

    pub fn delete(&self, r: &Resource, ns: Option<&str>, name: &str) -> Option<Value> {
        self.logged("delete", r, name.to_owned(), self.store.delete(r, ns, name))
    }

    fn logged(&self, what: &str, r: &Resource, name: String, result: Result<Value, ApiError>) -> Option<Value> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                // Races with users (gone, changed meanwhile) are expected.
                if matches!(e.reason.as_str(), "NotFound" | "AlreadyExists" | "Conflict") {
                    tracing::debug!(cluster = %self.eks_name, "{what} {} {name}: {e}", r.plural);
                } else {
                    tracing::warn!(cluster = %self.eks_name, "{what} {} {name}: {e}", r.plural);
                }
                None
            }
        }
    }
}

fn namespace_of(r: &Resource, obj: &Value) -> Option<String> {
    r.namespaced.then(|| objects::namespace(obj).to_owned())
}

/// A kube-apiserver style timestamp of now.
pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One program: reconciles the whole cluster towards what its objects say.
/// A pass must be idempotent: writes that change nothing emit no event, so a
/// converged program goes quiet.
pub trait Reconciler: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Whether a store event may change what this program would do.
    fn interested(&self, event: &StoreEvent) -> bool;

    /// Also reconcile this often (wall time), for state outside the store.
    fn resync(&self) -> Option<Duration> {
        None
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>);
}

/// Runs a program until its task is aborted: one pass at start, then one per
/// batch of interesting events (and per resync period).
pub fn spawn(cluster: Arc<Cluster>, mut program: impl Reconciler) -> JoinHandle<()> {
    // Subscribe before the first pass so no change between them is missed.
    let mut events = cluster.store.subscribe();
    tokio::spawn(async move {
        loop {
            run_pass(&cluster, &mut program);
            let woke = match program.resync() {
                Some(period) => {
                    tokio::time::timeout(period, next_interesting(&mut events, &program)).await.unwrap_or(true)
                }
                None => next_interesting(&mut events, &program).await,
            };
            if !woke {
                return;
            }
            // Let the writer finish its burst, then take the batch in one pass.
            tokio::task::yield_now().await;
            loop {
                match events.try_recv() {
                    Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
            }
        }
    })
}

/// Waits for an event the program cares about; `false` when the store is gone.
async fn next_interesting(
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    program: &impl Reconciler,
) -> bool {
    loop {
        match events.recv().await {
            Ok(ev) if program.interested(&ev) => return true,
            Ok(_) => continue,
            // Missed events: reconcile, as any of them may have mattered.
            Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
    }
}

fn run_pass(cluster: &Arc<Cluster>, program: &mut impl Reconciler) {
    // A bug in one pass must not stop the program for good.
    let pass = crate::aws_api::allowing_others(cluster.aws.as_ref(), || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.reconcile(cluster)))
    });
    if pass.is_err() {
        tracing::error!(cluster = %cluster.eks_name, program = program.name(), "reconcile pass panicked");
    }
}
