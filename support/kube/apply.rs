//! Server-side apply of manifests (any kind), with the resource found by
//! discovery like kubectl does, and meshspec's ownership label on everything.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use crate::topology::names;

/// Kinds whose CRDs give every served version one schema and no conversion
/// webhook, so an object written for one version is the same object at any
/// other (istio/istio crd-all.gen.yaml at 1.20.2 and 1.26.8: each CRD's
/// `versions[].schema` identical, `conversion` unset; not so for WorkloadGroup at
/// 1.20.2, which is left out). A manifest of such a kind is applied at a version
/// the cluster serves when its own is not (e.g. `networking.istio.io/v1` on Istio
/// 1.20, which serves v1alpha3 and v1beta1).
pub const ONE_SCHEMA_KINDS: &[(&str, &str)] = &[
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "VirtualService"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "Sidecar"),
    ("networking.istio.io", "WorkloadEntry"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "PeerAuthentication"),
    ("security.istio.io", "RequestAuthentication"),
];

/// The preferred version at which the cluster serves `kind` of `group`, by discovery.
pub async fn served_kind(client: &kube::Client, group: &str, kind: &str) -> Result<(ApiResource, ApiCapabilities)> {
    let g = discovery::group(client, group).await.with_context(|| format!("the API server does not serve {group}"))?;
    g.recommended_kind(kind).with_context(|| {
        format!("the API server serves {group} at {:?} but not the kind {kind}", g.versions().collect::<Vec<_>>())
    })
}

/// The field manager of everything meshspec applies.
pub const FIELD_MANAGER: &str = "meshspec";

pub struct Applier {
    client: kube::Client,
    resources: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

/// What one apply touched, for reports and the ledger.
#[derive(Clone, Debug)]
pub struct Applied {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

impl Applier {
    pub fn new(client: kube::Client) -> Self {
        Applier { client, resources: Mutex::new(HashMap::new()) }
    }

    async fn resource(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, ApiCapabilities)> {
        if let Some(r) = self.resources.lock().expect("resource cache").get(gvk) {
            return Ok(r.clone());
        }
        let found = match discovery::pinned_kind(&self.client, gvk).await {
            Ok(found) => found,
            Err(e) if ONE_SCHEMA_KINDS.contains(&(gvk.group.as_str(), gvk.kind.as_str())) => {
                served_kind(&self.client, &gvk.group, &gvk.kind).await.with_context(|| {
                    format!("the API server does not serve {}/{} {}: {e}", gvk.group, gvk.version, gvk.kind)
                })?
            }
            Err(e) => {
                // Only a 404 means "not served"; anything else is discovery failing.
                let not_served = matches!(&e, kube::Error::Api(s) if s.code == 404);
                let what = format!("{}/{} {}", gvk.group, gvk.version, gvk.kind);
                let context = if not_served {
                    format!("the API server does not serve {what}")
                } else {
                    format!("cannot look up {what} by discovery")
                };
                return Err(anyhow::Error::new(e).context(context));
            }
        };
        self.resources.lock().expect("resource cache").insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// The API a manifest's object lives behind (found by discovery), and its identity.
    /// The manifest's apiVersion becomes the one the object is written at.
    async fn api_for(&self, doc: &mut Value) -> Result<(Api<DynamicObject>, Applied)> {
        let api_version = doc["apiVersion"].as_str().context("a manifest without apiVersion")?;
        let kind = doc["kind"].as_str().context("a manifest without kind")?.to_string();
        let name = doc["metadata"]["name"].as_str().context("a manifest without metadata.name")?.to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let (ar, caps) = self.resource(&GroupVersionKind::gvk(group, version, &kind)).await?;
        doc["apiVersion"] = Value::String(ar.api_version.clone());
        let namespace = match caps.scope {
            Scope::Namespaced => Some(doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string()),
            Scope::Cluster => None,
        };
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        Ok((api, Applied { kind, namespace, name }))
    }

    /// Apply one object (a JSON manifest) with server-side apply.
    pub async fn apply(&self, mut doc: Value) -> Result<Applied> {
        let (api, applied) = self.api_for(&mut doc).await?;
        let labels = doc["metadata"]
            .as_object_mut()
            .context("metadata is not an object")?
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        labels[names::MANAGED_BY_LABEL] = Value::String(names::MANAGED_BY.into());
        api.patch(&applied.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&doc))
            .await
            .with_context(|| format!("server-side apply of {applied} failed"))?;
        Ok(applied)
    }

    /// Delete the live object a manifest names, but only if meshspec's label on
    /// it proves meshspec applied it. Ok(None) when it is already gone.
    pub async fn delete_owned(&self, doc: &Value) -> Result<Option<Applied>> {
        let (api, applied) = self.api_for(&mut doc.clone()).await?;
        let name = applied.name.clone();
        let Some(live) = api.get_opt(&name).await? else { return Ok(None) };
        let owned = live.metadata.labels.as_ref().and_then(|l| l.get(names::MANAGED_BY_LABEL)).map(String::as_str)
            == Some(names::MANAGED_BY);
        anyhow::ensure!(
            owned,
            "{applied} exists but meshspec did not create it (no {}={} label); not deleting it",
            names::MANAGED_BY_LABEL,
            names::MANAGED_BY
        );
        api.delete(&name, &kube::api::DeleteParams::background())
            .await
            .with_context(|| format!("cannot delete {applied}"))?;
        Ok(Some(applied))
    }

    pub async fn apply_all(&self, docs: Vec<Value>) -> Result<Vec<Applied>> {
        let mut done = Vec::with_capacity(docs.len());
        for doc in docs {
            done.push(self.apply(doc).await?);
        }
        Ok(done)
    }
}
