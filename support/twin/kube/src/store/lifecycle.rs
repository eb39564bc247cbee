//! The life cycle around writes: what a control plane's controllers do after
//! a create (default service accounts, CRD registration) and everything about
//! deletion (finalizers, garbage collection by ownerReferences, namespace
//! termination, CRD removal).

use serde_json::{json, Value};

use super::{kind_key, DeleteOptions, EventKind, ObjKey, Part, Propagation, State, PROTECTED_NAMESPACES};
use crate::crd;
use crate::error::ApiError;
use crate::object::{self, finalizers, is_deleting, meta_str, metadata_mut, now_timestamp};
use crate::resources::{Resource, ResourceInfo};

impl State {
    /// What controllers of a real control plane do right after a create.
    pub(super) fn after_create(&mut self, r: &Resource, obj: &Value) {
        if *r == Resource::namespaces() {
            // The service account controller gives every namespace a `default` account.
            if let Ok(info) = self.info(&Resource::serviceaccounts()) {
                let _ = self.create(&info, Some(object::name(obj)), json!({"metadata": {"name": "default"}}));
            }
        }
        if *r == Resource::customresourcedefinitions() {
            self.register_crd(obj);
        }
    }

    pub(super) fn register_crd(&mut self, crd_obj: &Value) {
        for info in crd::resource_infos(crd_obj) {
            let key = kind_key(&info.resource);
            if self.builtin_kinds.contains(&key) {
                // A CRD for a kind the catalog already serves only adds versions.
                if self.catalog.info(&info.resource).is_some() {
                    continue;
                }
                let storage = self
                    .catalog
                    .storage_resources()
                    .into_iter()
                    .find(|i| kind_key(&i.resource) == key)
                    .map(|i| i.storage_version.clone());
                let mut info = info;
                if let Some(storage) = storage {
                    info.storage_version = storage;
                }
                self.catalog.register(info);
            } else {
                self.catalog.register(info);
            }
        }
    }

    pub(super) fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let r = info.storage_resource();
        let plural = r.qualified_plural();
        let old = self.get(info, ns, name).cloned().ok_or_else(|| ApiError::not_found(&plural, name))?;
        if let Some(uid) = &opts.precondition_uid {
            let have = meta_str(&old, "uid").unwrap_or_default();
            if uid != have {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {plural} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {have}")));
            }
        }
        if let Some(rv) = &opts.precondition_resource_version {
            let have = meta_str(&old, "resourceVersion").unwrap_or_default();
            if rv != have {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {plural} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}")));
            }
        }
        if r == Resource::namespaces() && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if is_deleting(&old) {
            return Ok(old);
        }
        let key = Self::obj_key(info, ns, name);
        let mut marked = old.clone();
        {
            let meta = metadata_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now_timestamp()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if r == Resource::namespaces() {
            if let Some(status) = marked.get_mut("status").and_then(Value::as_object_mut) {
                status.insert("phase".into(), json!("Terminating"));
            }
            let terminating = self.store_modified(&r, key, old, marked);
            // The namespace controller empties it a moment later (see Store::release).
            self.terminating.push(name.to_string());
            return Ok(terminating);
        }
        if !finalizers(&old).is_empty() {
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
            metadata_mut(&mut marked).insert("generation".into(), json!(generation));
            return Ok(self.store_modified(&r, key, old, marked));
        }
        Ok(self.remove(&r, &key, opts.propagation, None))
    }

    /// Removes an object for good: DELETED event, then garbage collection of its
    /// dependents and, for the last object of a terminating namespace, the namespace.
    pub(super) fn remove(&mut self, r: &Resource, key: &ObjKey, propagation: Propagation, old: Option<Value>) -> Value {
        let Some(mut obj) = self.objects.get_mut(&kind_key(r)).and_then(|m| m.remove(key)) else {
            return old.unwrap_or(Value::Null);
        };
        let previous = old.unwrap_or_else(|| obj.clone());
        let rv = self.next_rv();
        metadata_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.emit(rv, EventKind::Deleted, r.clone(), Some(previous), obj.clone());
        if let Some(uid) = meta_str(&obj, "uid").map(String::from) {
            self.collect_dependents(r, &key.0, &uid, propagation);
        }
        if *r == Resource::customresourcedefinitions() {
            self.unregister_crd(&obj);
        }
        if r.namespaced {
            self.maybe_finalize_namespace(&key.0);
        }
        obj
    }

    /// Deletes (or orphans) the objects whose ownerReferences name `uid`.
    pub(super) fn collect_dependents(&mut self, owner: &Resource, owner_ns: &str, uid: &str, propagation: Propagation) {
        let mut dependents = Vec::new();
        for (kk, objs) in &self.objects {
            for (ok, o) in objs {
                let same_scope = !owner.namespaced || ok.0 == owner_ns;
                if same_scope && object::owner_uids(o).iter().any(|u| u == uid) {
                    dependents.push((kk.clone(), ok.clone()));
                }
            }
        }
        for ((group, plural), (ns, name)) in dependents {
            let Some(info) = self
                .catalog
                .storage_resources()
                .into_iter()
                .find(|i| i.resource.group == group && i.resource.plural == plural)
                .cloned()
            else {
                continue;
            };
            let ns = (!ns.is_empty()).then_some(ns);
            if propagation == Propagation::Orphan {
                let Some(old) = self.get(&info, ns.as_deref(), &name).cloned() else {
                    continue;
                };
                let mut next = old.clone();
                if let Some(refs) = next.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                }
                let _ = self.commit(&info, ns.as_deref(), &name, old, next, Part::Main);
            } else {
                let _ = self.delete(&info, ns.as_deref(), &name, &DeleteOptions::default());
            }
        }
    }

    /// Deleting a namespace deletes everything in it (finalizers still apply).
    pub(super) fn empty_namespace(&mut self, ns: &str) {
        let mut victims = Vec::new();
        for info in self.catalog.storage_resources() {
            if !info.resource.namespaced {
                continue;
            }
            if let Some(objs) = self.objects.get(&kind_key(&info.resource)) {
                victims
                    .extend(objs.keys().filter(|(o_ns, _)| o_ns == ns).map(|(_, name)| (info.clone(), name.clone())));
            }
        }
        for (info, name) in victims {
            let _ = self.delete(&info, Some(ns), &name, &DeleteOptions::default());
        }
    }

    /// A terminating namespace goes away once it is empty and has no finalizers left.
    pub(super) fn maybe_finalize_namespace(&mut self, ns: &str) {
        let Some(nso) = self.namespace_object(ns) else {
            return;
        };
        if !is_deleting(nso) || !finalizers(nso).is_empty() {
            return;
        }
        let occupied = self.objects.iter().any(|((g, p), objs)| {
            let namespaced = self
                .catalog
                .storage_resources()
                .iter()
                .any(|i| &i.resource.group == g && &i.resource.plural == p && i.resource.namespaced);
            namespaced && objs.keys().any(|(o_ns, _)| o_ns == ns)
        });
        if !occupied {
            let key = (String::new(), ns.to_string());
            self.remove(&Resource::namespaces(), &key, Propagation::Background, None);
        }
    }

    /// A deleted CRD takes its custom objects with it (built-in kinds stay served).
    pub(super) fn unregister_crd(&mut self, crd_obj: &Value) {
        for info in crd::resource_infos(crd_obj) {
            let key = kind_key(&info.resource);
            if self.builtin_kinds.contains(&key) {
                continue;
            }
            let storage = Resource { version: info.storage_version.clone(), ..info.resource.clone() };
            let keys: Vec<ObjKey> = self.objects.get(&key).map(|m| m.keys().cloned().collect()).unwrap_or_default();
            for k in keys {
                self.remove(&storage, &k, Propagation::Background, None);
            }
            self.catalog.unregister(&info.resource.group, &info.resource.plural);
        }
    }
}
