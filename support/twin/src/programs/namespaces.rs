//! What every namespace gets from the control plane: the ServiceAccount
//! `default` and the ConfigMap `kube-root-ca.crt` holding the cluster CA
//! (kept equal to it if someone edits it).

use std::sync::Arc;

use serde_json::{json, Value};

use super::objects;
use super::runtime::{Cluster, Reconciler};
use crate::kube::{EventKind, Resource, StoreEvent};

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

pub struct NamespaceController;

impl Reconciler for NamespaceController {
    fn name(&self) -> &'static str {
        "namespaces"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        match event.resource.plural.as_str() {
            "namespaces" => event.kind == EventKind::Added,
            "serviceaccounts" => event.kind == EventKind::Deleted && objects::name(&event.object) == "default",
            "configmaps" => objects::name(&event.object) == ROOT_CA_CONFIGMAP,
            _ => false,
        }
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        for ns in cluster.list(&Resource::namespaces()) {
            if objects::is_terminating(&ns) {
                continue;
            }
            let ns = objects::name(&ns);
            if cluster.get(&Resource::serviceaccounts(), Some(ns), "default").is_none() {
                cluster.create(
                    &Resource::serviceaccounts(),
                    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
                );
            }
            let want = json!({"ca.crt": cluster.ca_pem});
            match cluster.get(&Resource::configmaps(), Some(ns), ROOT_CA_CONFIGMAP) {
                None => {
                    cluster.create(
                        &Resource::configmaps(),
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns,
                                            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                               "data": want}),
                    );
                }
                Some(cm) if cm.get("data") != Some(&want) => {
                    let mut cm: Value = cm;
                    cm["data"] = want;
                    cluster.update(&Resource::configmaps(), cm);
                }
                Some(_) => {}
            }
        }
    }
}
