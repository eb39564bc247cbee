//! The resource catalog: which kinds this API server serves, under which
//! group/version/plural, with the names, verbs and subresources that discovery
//! announces. One catalog per store; custom resources are registered at run time.

use std::collections::BTreeMap;

/// One served resource at one group version. Equality includes the version:
/// the store normalises every served version to the storage version.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

impl Resource {
    pub fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Resource {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            kind: kind.to_string(),
            namespaced,
        }
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as Status messages and CRD names spell it.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The URL path of the collection (`ns` ignored for cluster-scoped kinds).
    pub fn collection_path(&self, ns: Option<&str>) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match ns {
            Some(ns) if self.namespaced => format!("{prefix}/namespaces/{ns}/{}", self.plural),
            _ => format!("{prefix}/{}", self.plural),
        }
    }

    fn core(plural: &str, kind: &str, namespaced: bool) -> Self {
        Self::new("", "v1", plural, kind, namespaced)
    }

    pub fn pods() -> Self {
        Self::core("pods", "Pod", true)
    }
    pub fn services() -> Self {
        Self::core("services", "Service", true)
    }
    pub fn secrets() -> Self {
        Self::core("secrets", "Secret", true)
    }
    pub fn configmaps() -> Self {
        Self::core("configmaps", "ConfigMap", true)
    }
    pub fn serviceaccounts() -> Self {
        Self::core("serviceaccounts", "ServiceAccount", true)
    }
    pub fn endpoints() -> Self {
        Self::core("endpoints", "Endpoints", true)
    }
    pub fn namespaces() -> Self {
        Self::core("namespaces", "Namespace", false)
    }
    pub fn events() -> Self {
        Self::core("events", "Event", true)
    }
    pub fn nodes() -> Self {
        Self::core("nodes", "Node", false)
    }
    pub fn deployments() -> Self {
        Self::new("apps", "v1", "deployments", "Deployment", true)
    }
    pub fn replicasets() -> Self {
        Self::new("apps", "v1", "replicasets", "ReplicaSet", true)
    }
    pub fn roles() -> Self {
        Self::new(RBAC_GROUP, "v1", "roles", "Role", true)
    }
    pub fn clusterroles() -> Self {
        Self::new(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", false)
    }
    pub fn rolebindings() -> Self {
        Self::new(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", true)
    }
    pub fn clusterrolebindings() -> Self {
        Self::new(RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", false)
    }
    pub fn endpointslices() -> Self {
        Self::new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true)
    }
    pub fn customresourcedefinitions() -> Self {
        Self::new("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false)
    }
    pub fn gateways() -> Self {
        Self::new(ISTIO_NETWORKING, "v1", "gateways", "Gateway", true)
    }
    pub fn virtualservices() -> Self {
        Self::new(ISTIO_NETWORKING, "v1", "virtualservices", "VirtualService", true)
    }
    pub fn destinationrules() -> Self {
        Self::new(ISTIO_NETWORKING, "v1", "destinationrules", "DestinationRule", true)
    }
    pub fn serviceentries() -> Self {
        Self::new(ISTIO_NETWORKING, "v1", "serviceentries", "ServiceEntry", true)
    }
}

const ISTIO_NETWORKING: &str = "networking.istio.io";

/// A subresource as discovery lists it (`pods/exec`, `deployments/scale`).
#[derive(Clone, Debug, PartialEq)]
pub struct Subresource {
    pub name: String,
    /// Kind of the subresource's object; its group/version when it differs from the parent's.
    pub kind: String,
    pub group: Option<String>,
    pub version: Option<String>,
    pub verbs: Vec<String>,
}

impl Subresource {
    fn new(name: &str, kind: &str, verbs: &[&str]) -> Self {
        Subresource { name: name.into(), kind: kind.into(), group: None, version: None, verbs: strings(verbs) }
    }

    fn status(kind: &str) -> Self {
        Self::new("status", kind, &["get", "patch", "update"])
    }

    fn scale() -> Self {
        Subresource {
            group: Some("autoscaling".into()),
            version: Some("v1".into()),
            ..Self::new("scale", "Scale", &["get", "patch", "update"])
        }
    }
}

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// Everything discovery says about one resource at one version.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    pub resource: Resource,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// The version objects are stored (and announced to in-process watchers) at.
    pub storage_version: String,
    /// Built-in kinds accept strategic merge patches; custom resources answer 415.
    pub builtin: bool,
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceInfo {
    /// A resource with all verbs and no subresources.
    pub fn new(resource: Resource, singular: &str, short_names: &[&str]) -> Self {
        let storage_version = resource.version.clone();
        ResourceInfo {
            resource,
            singular: singular.into(),
            short_names: strings(short_names),
            categories: Vec::new(),
            verbs: strings(ALL_VERBS),
            subresources: Vec::new(),
            storage_version,
            builtin: true,
        }
    }

    fn in_all(mut self) -> Self {
        self.categories.push("all".into());
        self
    }

    fn with(mut self, sub: Subresource) -> Self {
        self.subresources.push(sub);
        self
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// The same resource at the version it is stored at.
    pub fn storage_resource(&self) -> Resource {
        Resource { version: self.storage_version.clone(), ..self.resource.clone() }
    }
}

/// The versions a custom resource's CRD lists (each served) and the one it is stored at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdVersions {
    pub served: Vec<String>,
    pub storage: String,
}

impl CrdVersions {
    /// Istio 1.27 and later: v1, v1alpha3 and v1beta1 served, v1 stored
    /// (istio/istio 1.27.9 manifests/charts/base/files/crd-all.gen.yaml).
    pub fn istio_1_27() -> Self {
        CrdVersions { served: strings(&["v1", "v1alpha3", "v1beta1"]), storage: "v1".into() }
    }

    /// The served versions in the order discovery lists them, preferred first:
    /// Kubernetes' version priority (GA, then beta, then alpha; higher numbers first).
    pub fn preferred_first(&self) -> Vec<String> {
        let mut v = self.served.clone();
        v.sort_by_key(|s| std::cmp::Reverse(version_priority(s)));
        v
    }
}

/// Kubernetes' API version priority (k8s.io/apimachinery `version.CompareKubeAwareVersionStrings`):
/// GA above beta above alpha, higher major and minor first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else { return (0, 0, 0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (level, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(m) = tail.strip_prefix("beta") {
        (2, m.parse().unwrap_or(0))
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (1, m.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (level, major, minor)
}

/// Served resources, keyed by group, version and plural.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: BTreeMap<(String, String, String), ResourceInfo>,
    /// Group order for discovery (core first, then as registered).
    group_order: Vec<String>,
}

impl Catalog {
    /// The kinds an EKS cluster with Istio installed serves to meshspec, Istio's
    /// networking kinds as Istio 1.27 and later serve them (v1, v1beta1 and v1alpha3,
    /// stored at v1).
    pub fn builtin() -> Self {
        Self::with_istio_networking(&CrdVersions::istio_1_27())
    }

    /// The same, with Istio's networking kinds served and stored as `istio_networking`
    /// says, as built-in kinds.
    pub fn with_istio_networking(istio_networking: &CrdVersions) -> Self {
        let mut c = Self::kubernetes();
        // Istio serves its networking kinds at every version its CRDs list, from one storage.
        let istio = [
            (Resource::gateways(), "gateway", "gw"),
            (Resource::virtualservices(), "virtualservice", "vs"),
            (Resource::destinationrules(), "destinationrule", "dr"),
            (Resource::serviceentries(), "serviceentry", "se"),
        ];
        for version in istio_networking.preferred_first() {
            for (r, singular, short) in &istio {
                let mut info =
                    ResourceInfo::new(Resource { version: version.clone(), ..r.clone() }, singular, &[short])
                        .with(Subresource::status(&r.kind));
                info.categories = strings(&["istio-io", "networking-istio-io"]);
                info.storage_version = istio_networking.storage.clone();
                info.builtin = false;
                c.register(info);
            }
        }
        c
    }

    /// The kinds of an EKS cluster before anything is installed in it: what
    /// Kubernetes serves itself (CRDs add the rest, e.g. Istio's).
    pub fn kubernetes() -> Self {
        let mut c = Catalog { entries: BTreeMap::new(), group_order: vec![String::new()] };
        let pod_subs = [
            Subresource::new("attach", "PodAttachOptions", &["create", "get"]),
            Subresource::new("exec", "PodExecOptions", &["create", "get"]),
            Subresource::new("log", "Pod", &["get"]),
            Subresource::new("portforward", "PodPortForwardOptions", &["create", "get"]),
            Subresource::status("Pod"),
        ];
        let mut pods = ResourceInfo::new(Resource::pods(), "pod", &["po"]).in_all();
        pods.subresources.extend(pod_subs);
        c.register(pods);
        c.register(
            ResourceInfo::new(Resource::services(), "service", &["svc"]).in_all().with(Subresource::status("Service")),
        );
        c.register(ResourceInfo::new(Resource::secrets(), "secret", &[]));
        c.register(ResourceInfo::new(Resource::configmaps(), "configmap", &["cm"]));
        c.register(ResourceInfo::new(Resource::serviceaccounts(), "serviceaccount", &["sa"]));
        c.register(ResourceInfo::new(Resource::endpoints(), "endpoints", &["ep"]));
        let mut ns = ResourceInfo::new(Resource::namespaces(), "namespace", &["ns"])
            .with(Subresource::new("finalize", "Namespace", &["update"]))
            .with(Subresource::status("Namespace"));
        ns.verbs = strings(&["create", "delete", "get", "list", "patch", "update", "watch"]);
        c.register(ns);
        c.register(ResourceInfo::new(Resource::events(), "event", &["ev"]));
        c.register(ResourceInfo::new(Resource::nodes(), "node", &["no"]).with(Subresource::status("Node")));
        for r in [Resource::deployments(), Resource::replicasets()] {
            let (singular, short) =
                if r.plural == "deployments" { ("deployment", "deploy") } else { ("replicaset", "rs") };
            let kind = r.kind.clone();
            c.register(
                ResourceInfo::new(r, singular, &[short])
                    .in_all()
                    .with(Subresource::scale())
                    .with(Subresource::status(&kind)),
            );
        }
        c.register(ResourceInfo::new(Resource::endpointslices(), "endpointslice", &[]));
        // RBAC, and the review kinds: create-only, answered and never stored
        // (kubectl api-resources on Kubernetes 1.28 lists them so).
        c.register(ResourceInfo::new(Resource::clusterrolebindings(), "clusterrolebinding", &[]));
        c.register(ResourceInfo::new(Resource::clusterroles(), "clusterrole", &[]));
        c.register(ResourceInfo::new(Resource::rolebindings(), "rolebinding", &[]));
        c.register(ResourceInfo::new(Resource::roles(), "role", &[]));
        for (group, plural, kind, namespaced) in [
            (AUTHORIZATION_GROUP, "selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            (AUTHORIZATION_GROUP, "subjectaccessreviews", "SubjectAccessReview", false),
            (AUTHORIZATION_GROUP, "localsubjectaccessreviews", "LocalSubjectAccessReview", true),
            (AUTHENTICATION_GROUP, "selfsubjectreviews", "SelfSubjectReview", false),
        ] {
            let mut info =
                ResourceInfo::new(Resource::new(group, "v1", plural, kind, namespaced), &kind.to_lowercase(), &[]);
            info.verbs = strings(&["create"]);
            c.register(info);
        }
        c.register(
            ResourceInfo::new(Resource::customresourcedefinitions(), "customresourcedefinition", &["crd", "crds"])
                .with(Subresource::status("CustomResourceDefinition")),
        );
        c
    }

    /// Adds or replaces a resource at one version.
    pub fn register(&mut self, info: ResourceInfo) {
        let r = &info.resource;
        if !self.group_order.contains(&r.group) {
            self.group_order.push(r.group.clone());
        }
        self.entries.insert((r.group.clone(), r.version.clone(), r.plural.clone()), info);
    }

    /// Removes a resource at every version; returns whether anything was removed.
    pub fn unregister(&mut self, group: &str, plural: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(g, _, p), _| !(g == group && p == plural));
        if !self.entries.keys().any(|(g, _, _)| g == group) {
            self.group_order.retain(|g| g != group);
        }
        before != self.entries.len()
    }

    /// The resource a kind is stored at, whichever of its versions are served.
    pub fn storage_of(&self, group: &str, plural: &str) -> Option<Resource> {
        self.entries.iter().find(|((g, _, p), _)| g == group && p == plural).map(|(_, info)| info.storage_resource())
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.entries.get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The entry for a resource handed in by a caller (matched on group, version, plural).
    pub fn info(&self, r: &Resource) -> Option<&ResourceInfo> {
        self.lookup(&r.group, &r.version, &r.plural)
    }

    /// Whether any resource is served at this group version.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.entries.keys().any(|(g, v, _)| g == group && v == version)
    }

    /// Groups in discovery order with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.group_order
            .iter()
            .filter_map(|g| {
                let mut versions: Vec<String> = Vec::new();
                for ((eg, v, _), _) in self.entries.iter() {
                    if eg == g && !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
                // Preferred first, by Kubernetes' version priority, not by storage: the
                // CRD discovery controller sorts a group's served versions that way and
                // prefers the first (k8s.io/apiextensions-apiserver,
                // pkg/apiserver/customresource_discovery_controller.go).
                versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                (!versions.is_empty()).then(|| (g.clone(), versions))
            })
            .collect()
    }

    /// Resources served at one group version, in name order.
    pub fn resources_in(&self, group: &str, version: &str) -> Vec<&ResourceInfo> {
        self.entries.iter().filter(|((g, v, _), _)| g == group && v == version).map(|(_, i)| i).collect()
    }

    /// Every resource at its storage version, once.
    pub fn storage_resources(&self) -> Vec<&ResourceInfo> {
        self.entries.values().filter(|i| i.resource.version == i.storage_version).collect()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_kinds_are_served_at_three_versions_stored_at_v1() {
        let c = Catalog::builtin();
        let gw = c.lookup("networking.istio.io", "v1alpha3", "gateways").expect("served");
        assert_eq!(gw.storage_resource(), Resource::gateways());
        assert!(!gw.builtin);
        let groups = c.groups();
        let istio = groups.iter().find(|(g, _)| g == "networking.istio.io").expect("group");
        assert_eq!(istio.1[0], "v1", "preferred version first");
        assert_eq!(istio.1.len(), 3);
        assert_eq!(groups[0].0, "", "core group first");
    }

    #[test]
    fn istio_1_20_serves_no_v1_and_stores_at_v1alpha3() {
        let c = Catalog::with_istio_networking(&CrdVersions {
            served: strings(&["v1alpha3", "v1beta1"]),
            storage: "v1alpha3".into(),
        });
        assert!(c.lookup("networking.istio.io", "v1", "gateways").is_none());
        let gw = c.lookup("networking.istio.io", "v1beta1", "gateways").expect("served");
        assert_eq!(gw.storage_resource().version, "v1alpha3");
        let groups = c.groups();
        let istio = groups.iter().find(|(g, _)| g == "networking.istio.io").expect("group");
        assert_eq!(istio.1, vec!["v1beta1".to_string(), "v1alpha3".to_string()], "beta preferred over alpha");
    }

    #[test]
    fn versions_sort_as_kubernetes_prefers_them() {
        let v = CrdVersions {
            served: strings(&["v1alpha3", "v1beta1", "v1", "v2beta1", "v1alpha10"]),
            storage: "v1".into(),
        };
        assert_eq!(v.preferred_first(), strings(&["v1", "v2beta1", "v1beta1", "v1alpha10", "v1alpha3"]));
    }

    #[test]
    fn paths_and_api_versions() {
        assert_eq!(Resource::pods().collection_path(Some("sample")), "/api/v1/namespaces/sample/pods");
        assert_eq!(Resource::namespaces().collection_path(Some("x")), "/api/v1/namespaces");
        assert_eq!(Resource::deployments().api_version(), "apps/v1");
        assert_eq!(Resource::gateways().qualified_plural(), "gateways.networking.istio.io");
    }

    #[test]
    fn unregister_drops_every_version_and_the_empty_group() {
        let mut c = Catalog::builtin();
        for p in ["gateways", "virtualservices", "destinationrules", "serviceentries"] {
            assert!(c.unregister("networking.istio.io", p));
        }
        assert!(c.lookup("networking.istio.io", "v1", "gateways").is_none());
        assert!(!c.groups().iter().any(|(g, _)| g == "networking.istio.io"));
    }
}
