//! The object store behind one API server: objects as JSON, one global
//! resourceVersion counter bumped on every write (deletes included), and an
//! event log that watches replay from. The twin's controllers use it directly,
//! in-process; the HTTP layer uses the same operations, so both see one truth.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::defaults::{self, Allocator};
use crate::error::{ApiError, FieldCause};
use crate::object::{self, content, finalizers, is_deleting, meta_str, metadata_mut, now_timestamp};
use crate::patch;
use crate::resources::{Catalog, Resource, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::validate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    /// The watch event `type` on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// A change, as in-process subscribers see it. `resource` is always the storage
/// version (e.g. `Resource::gateways()` whatever version the client wrote with).
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub kind: EventKind,
    pub resource: Resource,
    /// Shared: every subscriber (each program of the twin) receives its own clone of the event.
    pub object: Arc<Value>,
}

/// One event of the watch log. `old` is the previous state of a modified or
/// deleted object, so that selector-filtered watches can tell when an object
/// starts or stops matching.
#[derive(Debug)]
pub struct LogEntry {
    pub rv: u64,
    pub kind: EventKind,
    pub resource: Resource,
    pub old: Option<Value>,
    /// Shared with the event every subscriber gets.
    pub object: Arc<Value>,
}

/// Which part of an object a write may change: main writes keep `.status`,
/// status writes change only `.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents (by ownerReferences) are deleted after the owner.
    #[default]
    Background,
    /// Treated as Background: the owner is not held back for its dependents.
    Foreground,
    /// Dependents lose their ownerReference and stay.
    Orphan,
}

/// What DELETE's body and query may say.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic ADDED for every current object, then live events (resourceVersion unset or "0").
    Now,
    /// Events after this resourceVersion, replayed from the log.
    After(u64),
}

/// The backlog a watch replays before live events, and its live feed.
pub struct WatchFeed {
    pub initial: Vec<Arc<LogEntry>>,
    pub live: broadcast::Receiver<Arc<LogEntry>>,
    /// The store's resourceVersion when the feed was taken: everything up to it is in `initial`.
    pub rv: u64,
}

/// Namespaces every cluster starts with; the first three cannot be deleted.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
pub const DEFAULT_LOG_CAPACITY: usize = 10_000;
const CHANNEL_CAPACITY: usize = 4096;
/// How long a deleted namespace stays Terminating before its content goes (a
/// real namespace controller takes seconds; `kubectl delete -f` of a namespace
/// and its objects relies on the objects still being there right after).
const DEFAULT_NAMESPACE_CLEANUP_DELAY: Duration = Duration::from_millis(500);

/// (group, plural): where the objects of every served version live.
type KindKey = (String, String);
/// (namespace or "" for cluster-scoped, name).
type ObjKey = (String, String);

struct State {
    rv: u64,
    catalog: Catalog,
    /// Kinds the catalog starts with; deleting a CRD never unregisters these.
    builtin_kinds: HashSet<KindKey>,
    objects: HashMap<KindKey, BTreeMap<ObjKey, Value>>,
    log: VecDeque<Arc<LogEntry>>,
    log_capacity: usize,
    /// Events up to this resourceVersion have left the log.
    compacted: u64,
    alloc: Allocator,
    /// Namespaces marked Terminating whose content is still to be deleted.
    terminating: Vec<String>,
    public: broadcast::Sender<StoreEvent>,
    internal: broadcast::Sender<Arc<LogEntry>>,
}

/// Thread-safe object store of one simulated cluster.
pub struct Store {
    state: Mutex<State>,
    /// For the namespace controller's delayed work.
    me: Weak<Store>,
    namespace_cleanup_delay: Mutex<Duration>,
    /// The containers' logs (`pods/log`), kept beside the pods.
    logs: Arc<crate::logs::PodLogs>,
}

fn kind_key(r: &Resource) -> KindKey {
    (r.group.clone(), r.plural.clone())
}

/// An object as a reader at `r`'s version sees it.
fn present(mut obj: Value, r: &Resource) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(r.api_version()));
    }
    obj
}

impl Store {
    /// The containers' logs of this cluster's pods.
    pub fn logs(&self) -> &Arc<crate::logs::PodLogs> {
        &self.logs
    }

    /// A store with the built-in catalog, the four initial namespaces and the
    /// `kubernetes` Service in `default`.
    pub fn new() -> Arc<Store> {
        Self::with_log_capacity(DEFAULT_LOG_CAPACITY)
    }

    /// As [`Store::new`], keeping only the last `capacity` events for watches
    /// (older resourceVersions answer 410 Expired).
    pub fn with_log_capacity(capacity: usize) -> Arc<Store> {
        Self::with_catalog(Catalog::builtin(), capacity)
    }

    /// A store serving `catalog` (e.g. the Istio release's versions), keeping the
    /// last `capacity` events for watches.
    pub fn with_catalog(catalog: Catalog, capacity: usize) -> Arc<Store> {
        Self::with_allocator(catalog, capacity, Allocator::default())
    }

    /// As [`Store::with_catalog`], with Service cluster IPs from `network/prefix`
    /// (e.g. K3s' `--service-cidr`, 10.43.0.0/16 by default).
    pub fn with_service_range(
        catalog: Catalog,
        capacity: usize,
        network: std::net::Ipv4Addr,
        prefix: u8,
    ) -> Arc<Store> {
        Self::with_allocator(catalog, capacity, Allocator::for_range(network, prefix))
    }

    fn with_allocator(catalog: Catalog, capacity: usize, alloc: Allocator) -> Arc<Store> {
        let builtin_kinds = catalog.storage_resources().iter().map(|i| kind_key(&i.resource)).collect();
        let state = State {
            rv: 0,
            catalog,
            builtin_kinds,
            objects: HashMap::new(),
            log: VecDeque::new(),
            log_capacity: capacity.max(1),
            compacted: 0,
            alloc,
            terminating: Vec::new(),
            public: broadcast::channel(CHANNEL_CAPACITY).0,
            internal: broadcast::channel(CHANNEL_CAPACITY).0,
        };
        let store = Arc::new_cyclic(|me| Store {
            state: Mutex::new(state),
            me: me.clone(),
            namespace_cleanup_delay: Mutex::new(DEFAULT_NAMESPACE_CLEANUP_DELAY),
            logs: Arc::new(crate::logs::PodLogs::default()),
        });
        {
            let mut st = store.lock();
            for ns in INITIAL_NAMESPACES {
                let info = st.info(&Resource::namespaces()).expect("built-in kind");
                let _ = st.create(&info, None, json!({"metadata": {"name": ns}}));
            }
            let info = st.info(&Resource::services()).expect("built-in kind");
            let kubernetes = json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}});
            let _ = st.create(&info, Some("default"), kubernetes);
            for (r, obj) in crate::authz::bootstrap_policy() {
                if let Ok(info) = st.info(&r) {
                    let _ = st.create(&info, None, obj);
                }
            }
        }
        store
    }

    /// Sets how long deleted namespaces stay Terminating before being emptied
    /// (zero: at once, within the delete).
    pub fn set_namespace_cleanup_delay(&self, delay: Duration) {
        *self.namespace_cleanup_delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Unlocks, then starts the namespace controller's work for namespaces the
    /// operation marked Terminating: later on the runtime, or now without one.
    fn release(&self, mut st: MutexGuard<'_, State>) {
        let names = std::mem::take(&mut st.terminating);
        drop(st);
        if names.is_empty() {
            return;
        }
        let delay = *self.namespace_cleanup_delay.lock().unwrap_or_else(|p| p.into_inner());
        match (tokio::runtime::Handle::try_current(), self.me.upgrade()) {
            (Ok(runtime), Some(store)) if !delay.is_zero() => {
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    store.finish_namespaces(names);
                });
            }
            _ => self.finish_namespaces(names),
        }
    }

    fn finish_namespaces(&self, names: Vec<String>) {
        let mut st = self.lock();
        for ns in names {
            st.empty_namespace(&ns);
            st.maybe_finalize_namespace(&ns);
        }
        self.release(st);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave half an object behind
        // (objects are replaced whole), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// A snapshot of the served resources.
    pub fn catalog(&self) -> Catalog {
        self.lock().catalog.clone()
    }

    /// Serves one more resource (a generic, schemaless store for it).
    pub fn register(&self, info: ResourceInfo) {
        self.lock().catalog.register(info);
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.lock().catalog.lookup(group, version, plural).cloned()
    }

    /// The resource a kind is stored at, whichever versions are served (programs
    /// read kinds by name; which versions exist is the cluster's business).
    pub fn stored(&self, group: &str, plural: &str) -> Option<Resource> {
        self.lock().catalog.storage_of(group, plural)
    }

    pub fn get(&self, r: &Resource, ns: Option<&str>, name: &str) -> Option<Value> {
        let st = self.lock();
        let info = st.info(r).ok()?;
        st.get(&info, ns, name).cloned().map(|o| present(o, r))
    }

    /// Objects of `r` (in `ns`, or all namespaces when `None`) matching a label
    /// selector in query syntax; an unparsable selector matches nothing.
    pub fn list(&self, r: &Resource, ns: Option<&str>, label_selector: &str) -> Vec<Value> {
        let Ok(labels) = LabelSelector::parse(label_selector) else {
            return Vec::new();
        };
        self.list_matching(r, ns, &labels, &FieldSelector::default()).map(|(items, _)| items).unwrap_or_default()
    }

    /// Matching objects and the resourceVersion the list is consistent with.
    pub fn list_matching(
        &self,
        r: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        let st = self.lock();
        let info = st.info(r)?;
        let items = st
            .kind(&info)
            .map(|objs| {
                objs.iter()
                    .filter(|((o_ns, _), _)| !info.resource.namespaced || ns.is_none_or(|n| n == o_ns))
                    .map(|(_, o)| o)
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| present(o.clone(), r))
                    .collect()
            })
            .unwrap_or_default();
        Ok((items, st.rv))
    }

    pub fn create(&self, r: &Resource, ns: Option<&str>, obj: Value) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.info(r)?;
        st.create(&info, ns, obj).map(|o| present(o, r))
    }

    /// Replaces an object (named by `obj`); `.status` is kept from the stored object.
    /// A `metadata.resourceVersion` in `obj` must be current (409 Conflict otherwise).
    pub fn update(&self, r: &Resource, ns: Option<&str>, obj: Value) -> Result<Value, ApiError> {
        let name = object::name(&obj).to_string();
        self.replace(r, ns, &name, obj, Part::Main)
    }

    /// Replaces the part `part` of the object `name` with that of `obj`.
    pub fn replace(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        self.modify(r, ns, name, part, |_| Ok(obj))
    }

    /// Sets `.status` only (what a controller reports).
    pub fn update_status(&self, r: &Resource, ns: Option<&str>, name: &str, status: Value) -> Result<Value, ApiError> {
        self.modify(r, ns, name, Part::Status, |current| {
            let mut next = current.clone();
            if let Some(map) = next.as_object_mut() {
                map.insert("status".into(), status);
                if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("resourceVersion");
                }
            }
            Ok(next)
        })
    }

    /// RFC 7386 merge patch of metadata and spec (`.status` in the patch is ignored).
    pub fn merge_patch(&self, r: &Resource, ns: Option<&str>, name: &str, patch: Value) -> Result<Value, ApiError> {
        self.modify(r, ns, name, Part::Main, |current| Ok(patch::merge_patch(current, &patch)))
    }

    /// Read-modify-write under the store lock: `f` gets the current object and
    /// returns the next one, which is committed like a PUT of `part`.
    pub fn modify(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.info(r)?;
        let old = st
            .get(&info, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&info.resource.qualified_plural(), name))?;
        let next = f(&present(old.clone(), r))?;
        st.commit(&info, ns, name, old, next, part).map(|o| present(o, r))
    }

    /// Server-side apply: creates the object when missing (`true` in the answer),
    /// else deep-merges the applied configuration into it.
    pub fn apply(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        part: Part,
        applied: Value,
    ) -> Result<(Value, bool), ApiError> {
        let mut st = self.lock();
        let info = st.info(r)?;
        if !applied.is_object() {
            return Err(ApiError::bad_request("the applied configuration must be an object"));
        }
        let body_name = object::name(&applied);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        match st.get(&info, ns, name).cloned() {
            None if part == Part::Main => {
                let mut obj = applied;
                metadata_mut(&mut obj).insert("name".into(), json!(name));
                st.create(&info, ns, obj).map(|o| (present(o, r), true))
            }
            None => Err(ApiError::not_found(&info.resource.qualified_plural(), name)),
            Some(old) => {
                let next = patch::apply_patch(&present(old.clone(), r), &applied, &info.resource.kind)?;
                st.commit(&info, ns, name, old, next, part).map(|o| (present(o, r), false))
            }
        }
    }

    /// Deletes an object, finalizer-aware: with finalizers it only gets a
    /// `deletionTimestamp` (MODIFIED) and is removed once they are all gone.
    pub fn delete(&self, r: &Resource, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.delete_with(r, ns, name, &DeleteOptions::default())
    }

    pub fn delete_with(
        &self,
        r: &Resource,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut st = self.lock();
        let info = st.info(r)?;
        let result = st.delete(&info, ns, name, opts).map(|o| present(o, r));
        self.release(st);
        result
    }

    /// Every ADDED/MODIFIED/DELETED, for in-process controllers.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.lock().public.subscribe()
    }

    /// Starts a watch on one kind; filtering by namespace and selectors is the caller's.
    pub fn watch(&self, r: &Resource, start: WatchStart) -> Result<WatchFeed, ApiError> {
        let st = self.lock();
        let info = st.info(r)?;
        let key = kind_key(&info.resource);
        // Subscribing under the lock: no write can fall between backlog and feed.
        let live = st.internal.subscribe();
        let initial = match start {
            WatchStart::Now => st
                .kind(&info)
                .map(|objs| {
                    objs.values()
                        .map(|o| {
                            Arc::new(LogEntry {
                                rv: object::resource_version(o),
                                kind: EventKind::Added,
                                resource: info.storage_resource(),
                                old: None,
                                object: Arc::new(o.clone()),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchStart::After(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::expired(rv, st.compacted + 1));
                }
                st.log.iter().filter(|e| e.rv > rv && kind_key(&e.resource) == key).cloned().collect()
            }
        };
        Ok(WatchFeed { initial, live, rv: st.rv })
    }
}

impl State {
    /// The catalog entry of a served resource, at the version the caller used.
    fn info(&self, r: &Resource) -> Result<ResourceInfo, ApiError> {
        self.catalog.info(r).cloned().ok_or_else(ApiError::no_route)
    }

    fn kind(&self, info: &ResourceInfo) -> Option<&BTreeMap<ObjKey, Value>> {
        self.objects.get(&kind_key(&info.resource))
    }

    fn obj_key(info: &ResourceInfo, ns: Option<&str>, name: &str) -> ObjKey {
        let ns = if info.resource.namespaced { ns.unwrap_or_default() } else { "" };
        (ns.to_string(), name.to_string())
    }

    fn get(&self, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Option<&Value> {
        self.kind(info)?.get(&Self::obj_key(info, ns, name))
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(&mut self, rv: u64, kind: EventKind, resource: Resource, old: Option<Value>, object: Value) {
        let object = Arc::new(object);
        let entry = Arc::new(LogEntry { rv, kind, resource: resource.clone(), old, object: object.clone() });
        self.log.push_back(entry.clone());
        while self.log.len() > self.log_capacity {
            if let Some(gone) = self.log.pop_front() {
                self.compacted = gone.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.internal.send(entry);
        let _ = self.public.send(StoreEvent { kind, resource, object });
    }

    fn namespace_object(&self, ns: &str) -> Option<&Value> {
        self.objects.get(&kind_key(&Resource::namespaces())).and_then(|m| m.get(&(String::new(), ns.to_string())))
    }

    /// Body apiVersion/kind, when present, must be the resource's.
    fn check_type(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        let r = &info.resource;
        if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
            if !kind.is_empty() && kind != r.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({})",
                    r.kind
                )));
            }
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if !av.is_empty() && group != r.group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    r.api_version()
                )));
            }
        }
        Ok(())
    }

    fn create(&mut self, info: &ResourceInfo, ns: Option<&str>, mut obj: Value) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        Self::check_type(info, &obj)?;
        let r = info.storage_resource();
        let plural = r.qualified_plural();
        let namespace = if r.namespaced {
            let body_ns = object::namespace(&obj).filter(|s| !s.is_empty()).map(String::from);
            match (ns, body_ns) {
                (Some(url), Some(body)) if url != body => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(url), _) => Some(url.to_string()),
                (None, Some(body)) => Some(body),
                (None, None) => return Err(ApiError::bad_request("a namespace is required for namespaced objects")),
            }
        } else {
            None
        };
        let mut name = object::name(&obj).to_string();
        if name.is_empty() {
            let Some(prefix) = meta_str(&obj, "generateName").filter(|p| !p.is_empty()).map(String::from) else {
                return Err(ApiError::invalid(
                    &r.kind,
                    "",
                    vec![FieldCause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            };
            name = (0..16)
                .map(|_| format!("{prefix}{}", object::random_suffix(5)))
                .find(|candidate| self.get(info, namespace.as_deref(), candidate).is_none())
                .ok_or_else(|| ApiError::already_exists(&plural, &prefix))?;
        }
        if let Some(ns) = &namespace {
            match self.namespace_object(ns) {
                None => return Err(ApiError::not_found("namespaces", ns)),
                Some(n) if is_deleting(n) => {
                    return Err(ApiError::forbidden(format!("{plural} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated")));
                }
                Some(_) => {}
            }
        }
        {
            let meta = metadata_mut(&mut obj);
            meta.insert("name".into(), json!(name));
            match &namespace {
                Some(ns) => meta.insert("namespace".into(), json!(ns)),
                None => meta.remove("namespace"),
            };
            meta.insert("uid".into(), json!(object::new_uid()));
            meta.insert("creationTimestamp".into(), json!(now_timestamp()));
            meta.insert("generation".into(), json!(1));
            for gone in
                ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"]
            {
                meta.remove(gone);
            }
        }
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(r.api_version()));
            map.insert("kind".into(), json!(r.kind));
            // The status of a kind with a status subresource belongs to its controller.
            if info.has_subresource("status") {
                match defaults::initial_status(&r.kind) {
                    Some(status) => map.insert("status".into(), status),
                    None => map.remove("status"),
                };
            }
        }
        defaults::apply(&r.kind, &mut obj, None, &mut self.alloc)?;
        validate::validate(&r.kind, &obj)?;
        let key = Self::obj_key(info, namespace.as_deref(), &name);
        if self.kind(info).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(&plural, &name));
        }
        let rv = self.next_rv();
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects.entry(kind_key(&r)).or_default().insert(key, obj.clone());
        self.emit(rv, EventKind::Added, r.clone(), None, obj.clone());
        self.after_create(&r, &obj);
        Ok(obj)
    }

    /// Commits the next state of an existing object (PUT, PATCH, status writes).
    fn commit(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        old: Value,
        next: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        let r = info.storage_resource();
        let plural = r.qualified_plural();
        if !next.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        Self::check_type(info, &next)?;
        let body_name = object::name(&next);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if r.namespaced {
            if let Some(body_ns) = object::namespace(&next).filter(|s| !s.is_empty()) {
                if Some(body_ns) != object::namespace(&old) {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        if let Some(want) = meta_str(&next, "resourceVersion").filter(|s| !s.is_empty()) {
            if want != meta_str(&old, "resourceVersion").unwrap_or_default() {
                return Err(ApiError::conflict(&plural, name));
            }
        }
        let mut new = match part {
            Part::Status => {
                let mut new = old.clone();
                if let Some(map) = new.as_object_mut() {
                    match next.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                new
            }
            Part::Main => {
                let mut new = next;
                if let Some(map) = new.as_object_mut() {
                    if info.has_subresource("status") {
                        match old.get("status") {
                            Some(status) => map.insert("status".into(), status.clone()),
                            None => map.remove("status"),
                        };
                    }
                    map.insert("apiVersion".into(), json!(r.api_version()));
                    map.insert("kind".into(), json!(r.kind));
                }
                let meta = metadata_mut(&mut new);
                for kept in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "resourceVersion",
                ] {
                    match old.get("metadata").and_then(|m| m.get(kept)) {
                        Some(v) => meta.insert(kept.into(), v.clone()),
                        None => meta.remove(kept),
                    };
                }
                meta.remove("managedFields");
                meta.remove("selfLink");
                defaults::apply(&r.kind, &mut new, Some(&old), &mut self.alloc)?;
                validate::validate(&r.kind, &new)?;
                new
            }
        };
        if is_deleting(&old) {
            let before = finalizers(&old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &r.kind,
                    name,
                    vec![FieldCause::invalid(
                        "metadata.finalizers",
                        &finalizers(&new).join(","),
                        "no new finalizers can be added if the object is being deleted",
                    )],
                ));
            }
        }
        if content(&new) != content(&old) {
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == old {
            // Nothing changed: no new resourceVersion, no event (controllers rely on this).
            return Ok(old);
        }
        let key = Self::obj_key(info, ns, name);
        if is_deleting(&new) && finalizers(&new).is_empty() {
            if r == Resource::namespaces() {
                self.store_modified(&r, key, old, new.clone());
                self.maybe_finalize_namespace(name);
                return Ok(self.get(info, ns, name).cloned().unwrap_or(new));
            }
            self.objects.entry(kind_key(&r)).or_default().insert(key.clone(), new);
            return Ok(self.remove(&r, &key, Propagation::Background, Some(old)));
        }
        let new = self.store_modified(&r, key, old, new);
        if r == Resource::customresourcedefinitions() {
            self.register_crd(&new);
        }
        Ok(new)
    }

    fn store_modified(&mut self, r: &Resource, key: ObjKey, old: Value, mut new: Value) -> Value {
        let rv = self.next_rv();
        metadata_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects.entry(kind_key(r)).or_default().insert(key, new.clone());
        self.emit(rv, EventKind::Modified, r.clone(), Some(old), new.clone());
        new
    }
}

mod lifecycle;
#[cfg(test)]
mod tests;
