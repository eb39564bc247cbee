//! Authorization as kube-apiserver does it with `--authorization-mode=RBAC`:
//! the request's attributes (verb, group, resource, subresource, namespace,
//! name; or a non-resource path), the privileged group `system:masters`, and
//! the rules of the ClusterRoles and Roles bound to the user, read from the
//! store. Aggregated ClusterRoles are not evaluated (no aggregation rule is
//! followed).
//!
//! Sources (kubernetes/kubernetes):
//! - plugin/pkg/auth/authorizer/rbac/rbac.go: `RuleAllows`, the "RBAC: allowed
//!   by ..." reason, and a denial's reason (empty, or "RBAC: " and the errors
//!   met while resolving roles);
//! - pkg/apis/rbac/v1/evaluation_helpers.go: how verbs, groups, resources
//!   (`*`, `res/sub`, `*/sub`), resourceNames and nonResourceURLs (`*`, exact,
//!   `prefix*`) match;
//! - pkg/registry/rbac/validation/rule.go: which bindings apply (User, Group,
//!   ServiceAccount with the binding's namespace by default), ClusterRoleBindings
//!   first, then the RoleBindings of the request's namespace, and how a
//!   binding is described;
//! - pkg/kubeapiserver/authorizer/config.go: `system:masters` is allowed
//!   everything before RBAC is asked;
//! - staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go: the verb
//!   of a request (get, list, watch, create, update, patch, delete,
//!   deletecollection; a non-resource request's verb is its lowercased method);
//! - staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
//!   and apimachinery's `NewForbidden`: the 403 Status a denial answers.

use http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::resources::{Resource, RBAC_GROUP};
use crate::route::{ResourcePath, Route};
use crate::store::Store;

pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";

/// Who a request is from (k8s.io/apiserver `user.Info`, without extra).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    /// A cluster administrator: in `system:masters`.
    pub fn admin(name: &str) -> Self {
        Self::new(name, &[MASTERS, AUTHENTICATED])
    }

    /// `system:serviceaccount:NS:NAME` in the groups a service-account token
    /// authenticates with (k8s.io/apiserver pkg/authentication/serviceaccount).
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: String::new(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    pub fn anonymous() -> Self {
        Self::new(ANONYMOUS, &[UNAUTHENTICATED])
    }

    /// The namespace and name of a service account's user name.
    pub fn service_account_parts(name: &str) -> Option<(&str, &str)> {
        let rest = name.strip_prefix("system:serviceaccount:")?;
        let (ns, sa) = rest.split_once(':')?;
        (!ns.is_empty() && !sa.is_empty() && !sa.contains(':')).then_some((ns, sa))
    }
}

/// What is asked (k8s.io/apiserver `authorizer.Attributes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// `None` for a non-resource request; then `path` is what is asked.
    pub resource: Option<ResourceAttributes>,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// The attributes of an HTTP request (requestinfo.go).
    pub fn of_request(method: &Method, path: &str, route: &Route, watch_query: bool) -> Attributes {
        let Route::Resource(p) = route else {
            return Attributes { verb: method.as_str().to_lowercase(), resource: None, path: path.to_string() };
        };
        Attributes {
            verb: resource_verb(method, p, watch_query).to_string(),
            resource: Some(resource_of(p)),
            path: path.into(),
        }
    }

    pub fn resource(verb: &str, r: ResourceAttributes) -> Attributes {
        Attributes { verb: verb.into(), resource: Some(r), path: String::new() }
    }
}

fn resource_of(p: &ResourcePath) -> ResourceAttributes {
    ResourceAttributes {
        group: p.group.clone(),
        version: p.version.clone(),
        resource: p.plural.clone(),
        subresource: p.subresource.clone().unwrap_or_default(),
        namespace: p.namespace.clone().unwrap_or_default(),
        name: p.name.clone().unwrap_or_default(),
    }
}

fn resource_verb(method: &Method, p: &ResourcePath, watch_query: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if p.watch || (watch_query && p.subresource.is_none()) => "watch",
        Method::GET | Method::HEAD if p.name.is_none() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if p.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// The answer, with RBAC's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Whether `user` may do what `attrs` asks, in this store's RBAC objects.
pub fn authorize(store: &Store, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision { allowed: true, reason: String::new() };
    }
    let namespace = attrs.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default();
    let mut errors = Vec::new();
    for binding in store.list(&Resource::clusterrolebindings(), None, "") {
        let Some(subject) = applies_to(user, &binding, "") else { continue };
        match role_rules(store, &binding, "") {
            Ok(rules) => {
                if rules.iter().any(|r| rule_allows(attrs, r)) {
                    let reason = format!(
                        "RBAC: allowed by ClusterRoleBinding {:?} of {} {:?} to {}",
                        name_of(&binding),
                        str_at(&binding, "/roleRef/kind"),
                        str_at(&binding, "/roleRef/name"),
                        describe_subject(&subject, "")
                    );
                    return Decision { allowed: true, reason };
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if !namespace.is_empty() {
        for binding in store.list(&Resource::rolebindings(), Some(namespace), "") {
            let Some(subject) = applies_to(user, &binding, namespace) else { continue };
            match role_rules(store, &binding, namespace) {
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(attrs, r)) {
                        let reason = format!(
                            "RBAC: allowed by RoleBinding {:?} of {} {:?} to {}",
                            format!("{}/{namespace}", name_of(&binding)),
                            str_at(&binding, "/roleRef/kind"),
                            str_at(&binding, "/roleRef/name"),
                            describe_subject(&subject, namespace)
                        );
                        return Decision { allowed: true, reason };
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    // utilerrors.NewAggregate: one error alone, several in brackets.
    let reason = match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    };
    Decision { allowed: false, reason }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

/// The first subject of `binding` that is `user`.
fn applies_to(user: &UserInfo, binding: &Value, namespace: &str) -> Option<Value> {
    let subjects = binding.get("subjects")?.as_array()?;
    subjects
        .iter()
        .find(|s| match str_at(s, "/kind") {
            "User" => user.name == str_at(s, "/name"),
            "Group" => user.groups.iter().any(|g| g == str_at(s, "/name")),
            "ServiceAccount" => {
                let ns = match str_at(s, "/namespace") {
                    "" => namespace,
                    ns => ns,
                };
                !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{}", str_at(s, "/name"))
            }
            _ => false,
        })
        .cloned()
}

fn describe_subject(s: &Value, binding_namespace: &str) -> String {
    let (kind, name) = (str_at(s, "/kind"), str_at(s, "/name"));
    match kind {
        "ServiceAccount" => {
            let ns = match str_at(s, "/namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            format!("{kind} {:?}", format!("{name}/{ns}"))
        }
        _ => format!("{kind} {name:?}"),
    }
}

/// The rules of the role a binding refers to; a missing role is an error
/// that goes into the denial's reason, as the listers' NotFound does.
fn role_rules(store: &Store, binding: &Value, namespace: &str) -> Result<Vec<Value>, String> {
    let name = str_at(binding, "/roleRef/name");
    let role = match str_at(binding, "/roleRef/kind") {
        "Role" => store
            .get(&Resource::roles(), Some(namespace), name)
            .ok_or_else(|| format!("role.{RBAC_GROUP} {name:?} not found"))?,
        "ClusterRole" => store
            .get(&Resource::clusterroles(), None, name)
            .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} {name:?} not found"))?,
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    Ok(role.get("rules").and_then(Value::as_array).cloned().unwrap_or_default())
}

fn strings<'a>(rule: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    rule.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// rbac.go `RuleAllows` with the matchers of evaluation_helpers.go.
pub fn rule_allows(attrs: &Attributes, rule: &Value) -> bool {
    let verb = strings(rule, "verbs").any(|v| v == "*" || v == attrs.verb);
    if !verb {
        return false;
    }
    match &attrs.resource {
        Some(r) => {
            let combined =
                if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
            let group = strings(rule, "apiGroups").any(|g| g == "*" || g == r.group);
            let resource = strings(rule, "resources").any(|res| {
                res == "*"
                    || res == combined
                    || (!r.subresource.is_empty()
                        && res.len() == r.subresource.len() + 2
                        && res.starts_with("*/")
                        && res.ends_with(r.subresource.as_str()))
            });
            let mut names = strings(rule, "resourceNames").peekable();
            let name = names.peek().is_none() || names.any(|n| n == r.name);
            group && resource && name
        }
        None => strings(rule, "nonResourceURLs").any(|u| {
            u == "*" || u == attrs.path || (u.ends_with('*') && attrs.path.starts_with(u.trim_end_matches('*')))
        }),
    }
}

/// The 403 a denial answers (responsewriters.Forbidden, apierrors.NewForbidden).
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let msg = match &attrs.resource {
        None => format!("User {:?} cannot {} path {:?}", user.name, attrs.verb, attrs.path),
        Some(r) => {
            let resource =
                if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
            if r.namespace.is_empty() {
                format!(
                    "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
                    user.name, attrs.verb, resource, r.group
                )
            } else {
                format!(
                    "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
                    user.name, attrs.verb, resource, r.group, r.namespace
                )
            }
        }
    };
    let msg = if reason.is_empty() { msg } else { format!("{msg}: {reason}") };
    let (group, resource, name) = match &attrs.resource {
        Some(r) => (r.group.as_str(), r.resource.as_str(), r.name.as_str()),
        None => ("", "", ""),
    };
    let qualified = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {name:?} is forbidden: {msg}")
    };
    let mut e = ApiError::forbidden(message);
    if !qualified.is_empty() {
        let mut details = json!({"kind": resource});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        e.details = Some(details);
    }
    e
}

/// The ClusterRoles and ClusterRoleBindings kube-apiserver makes at start
/// (its `rbac/bootstrap-roles` post-start hook) that matter here: cluster-admin
/// for `system:masters`, discovery and public info for everyone, and the
/// self-reviews (kubernetes/kubernetes
/// plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/cluster-roles.yaml
/// and cluster-role-bindings.yaml).
pub fn bootstrap_policy() -> Vec<(Resource, Value)> {
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let role = |name: &str, rules: Value| {
        (
            Resource::clusterroles(),
            json!({"metadata": {"name": name, "labels": labels, "annotations": annotations}, "rules": rules}),
        )
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> =
            groups.iter().map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g})).collect();
        (
            Resource::clusterrolebindings(),
            json!({"metadata": {"name": name, "labels": labels, "annotations": annotations},
                   "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                   "subjects": subjects}),
        )
    };
    vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                    "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        role(
            "system:basic-user",
            json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                   {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
        ),
        binding("cluster-admin", &[MASTERS]),
        binding("system:discovery", &[AUTHENTICATED]),
        binding("system:public-info-viewer", &[AUTHENTICATED, UNAUTHENTICATED]),
        binding("system:basic-user", &[AUTHENTICATED]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(
            verb,
            ResourceAttributes {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: name.into(),
            },
        )
    }

    #[test]
    fn rules_match_as_kubernetes_matches_them() {
        let rule = json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]});
        assert!(rule_allows(&attrs("list", "", "pods", "", "a", ""), &rule));
        assert!(!rule_allows(&attrs("watch", "", "pods", "", "a", ""), &rule));
        assert!(!rule_allows(&attrs("get", "apps", "pods", "", "a", ""), &rule));
        // A subresource is not its resource, but */status matches every status.
        assert!(!rule_allows(&attrs("get", "", "pods", "log", "a", "p"), &rule));
        assert!(rule_allows(&attrs("get", "", "services", "status", "a", "s"), &rule));
        let named = json!({"apiGroups": ["*"], "resources": ["secrets"], "resourceNames": ["x"], "verbs": ["*"]});
        assert!(rule_allows(&attrs("get", "", "secrets", "", "a", "x"), &named));
        assert!(!rule_allows(&attrs("get", "", "secrets", "", "a", "y"), &named));
        // resourceNames never match a collection.
        assert!(!rule_allows(&attrs("list", "", "secrets", "", "a", ""), &named));
        let urls = json!({"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]});
        let path = |p: &str| Attributes { verb: "get".into(), resource: None, path: p.into() };
        assert!(rule_allows(&path("/apis/apps/v1"), &urls));
        assert!(rule_allows(&path("/version"), &urls));
        assert!(!rule_allows(&path("/version/x"), &urls));
        assert!(!rule_allows(&path("/metrics"), &urls));
    }

    fn store_with(objects: Vec<(Resource, Value)>) -> std::sync::Arc<Store> {
        let store = Store::new();
        for ns in ["a", "b", "istio-system"] {
            store.create(&Resource::namespaces(), None, json!({"metadata": {"name": ns}})).unwrap();
        }
        for (r, obj) in objects {
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            store.create(&r, ns.as_deref(), obj).unwrap();
        }
        store
    }

    #[test]
    fn bindings_grant_what_their_role_says_to_whom_they_name() {
        let store = store_with(vec![
            (
                Resource::clusterroles(),
                json!({"metadata": {"name": "reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
            ),
            (
                Resource::clusterrolebindings(),
                json!({"metadata": {"name": "reader"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "r", "namespace": "istio-system"}]}),
            ),
            (
                Resource::roles(),
                json!({"metadata": {"name": "cm", "namespace": "a"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
            ),
            (
                Resource::rolebindings(),
                json!({"metadata": {"name": "cm", "namespace": "a"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "cm"},
                "subjects": [{"kind": "ServiceAccount", "name": "r"}]}),
            ),
        ]);
        let reader = UserInfo::service_account("istio-system", "r");
        let d = authorize(&store, &reader, &attrs("list", "", "pods", "", "", ""));
        assert!(d.allowed);
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by ClusterRoleBinding "reader" of ClusterRole "reader" to ServiceAccount "r/istio-system""#
        );
        assert!(!authorize(&store, &reader, &attrs("list", "", "secrets", "", "", "")).allowed);
        // The RoleBinding's subject has no namespace: it means the binding's own, `a`.
        assert!(!authorize(&store, &reader, &attrs("get", "", "configmaps", "", "a", "x")).allowed);
        let local = UserInfo::service_account("a", "r");
        assert!(authorize(&store, &local, &attrs("get", "", "configmaps", "", "a", "x")).allowed);
        assert!(!authorize(&store, &local, &attrs("get", "", "configmaps", "", "b", "x")).allowed);
        // Masters need no binding.
        assert!(authorize(&store, &UserInfo::admin("admin"), &attrs("delete", "", "nodes", "", "", "n")).allowed);
        // Discovery is everyone's who is authenticated; /version is everyone's.
        let path = |p: &str| Attributes { verb: "get".into(), resource: None, path: p.into() };
        assert!(authorize(&store, &reader, &path("/apis")).allowed);
        assert!(!authorize(&store, &UserInfo::anonymous(), &path("/apis")).allowed);
        assert!(authorize(&store, &UserInfo::anonymous(), &path("/version")).allowed);
    }

    #[test]
    fn a_missing_role_is_the_reason_of_the_denial() {
        let store = store_with(vec![(
            Resource::clusterrolebindings(),
            json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "gone"},
            "subjects": [{"kind": "User", "name": "u"}]}),
        )]);
        let d = authorize(&store, &UserInfo::new("u", &[AUTHENTICATED]), &attrs("list", "", "pods", "", "", ""));
        assert!(!d.allowed);
        assert_eq!(d.reason, r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#);
    }

    #[test]
    fn denials_read_as_kube_apiserver_writes_them() {
        let u = UserInfo::service_account("istio-system", "istio-reader-service-account");
        let e = forbidden(&u, &attrs("list", "", "pods", "", "", ""), "");
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "system:serviceaccount:istio-system:istio-reader-service-account" cannot list resource "pods" in API group "" at the cluster scope"#
        );
        let e = forbidden(&u, &attrs("get", "apps", "deployments", "scale", "ns", "d"), "");
        assert_eq!(
            e.message,
            r#"deployments.apps "d" is forbidden: User "system:serviceaccount:istio-system:istio-reader-service-account" cannot get resource "deployments/scale" in API group "apps" in the namespace "ns""#
        );
        let path = Attributes { verb: "get".into(), resource: None, path: "/metrics".into() };
        assert_eq!(
            forbidden(&UserInfo::anonymous(), &path, "").message,
            r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
        );
        assert_eq!(e.code, 403);
    }

    #[test]
    fn service_account_names_split() {
        assert_eq!(UserInfo::service_account_parts("system:serviceaccount:a:b"), Some(("a", "b")));
        assert_eq!(UserInfo::service_account_parts("system:serviceaccount:a"), None);
        assert_eq!(UserInfo::service_account_parts("alice"), None);
    }
}
