//! Authorization through the wire: service-account tokens limited by RBAC,
//! the 403s kube-apiserver answers, the review kinds, impersonation, with
//! kube-rs and kubectl 1.32.

mod common;

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use meshspec_twin_kube::authz::UserInfo;
use meshspec_twin_kube::{ApiServerConfig, Store};
use serde_json::json;

const READER: &str = "system:serviceaccount:istio-system:istio-reader-service-account";

struct Tokens;

impl meshspec_twin_kube::Authenticator for Tokens {
    fn authenticate(&self, token: &str) -> Option<UserInfo> {
        match token {
            common::TOKEN => Some(UserInfo::admin("kubernetes-admin")),
            "reader-token" => Some(UserInfo::service_account("istio-system", "istio-reader-service-account")),
            _ => None,
        }
    }
}

async fn twin() -> common::Twin {
    let twin = common::start_full(Store::new(), ApiServerConfig::default(), Arc::new(Tokens)).await;
    twin.write_kubeconfig("reader", "reader-token");
    twin.kubectl(&["create", "namespace", "istio-system"]).await;
    twin
}

/// The reader role of Istio's chart, trimmed to what the test needs, bound to the reader.
async fn grant_reader(twin: &common::Twin, resources: &[&str]) {
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "istio-reader-clusterrole-istio-system"},
         "rules": [{"apiGroups": [""], "resources": resources, "verbs": ["get", "list", "watch"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "istio-reader-clusterrole-istio-system"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "istio-reader-clusterrole-istio-system"},
         "subjects": [{"kind": "ServiceAccount", "name": "istio-reader-service-account", "namespace": "istio-system"}]});
    for (name, doc) in [("role.json", role), ("binding.json", binding)] {
        let file = twin.write(name, &doc.to_string());
        twin.kubectl(&["apply", "-f", file.to_str().unwrap()]).await.ok();
    }
}

#[tokio::test]
async fn a_reader_token_reads_only_what_its_role_allows() {
    let twin = twin().await;
    let reader = twin.kube_client("reader").await;
    let pods: Api<Pod> = Api::all(reader.clone());
    let err = pods.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("not a Status: {err}") };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        format!(
            "pods is forbidden: User \"{READER}\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
        )
    );
    grant_reader(&twin, &["pods", "namespaces"]).await;
    pods.list(&ListParams::default()).await.expect("pods after the grant");
    // Secrets are not in this role; a named get is refused with the name.
    let secrets: Api<Secret> = Api::namespaced(reader, "istio-system");
    let kube::Error::Api(status) = secrets.get("cacerts").await.unwrap_err() else { panic!() };
    assert_eq!(status.code, 403);
    assert!(status.message.starts_with("secrets \"cacerts\" is forbidden:"), "{}", status.message);
    assert!(status.message.ends_with("in the namespace \"istio-system\""), "{}", status.message);
}

#[tokio::test]
async fn reviews_answer_for_oneself_and_for_others() {
    let twin = twin().await;
    grant_reader(&twin, &["pods"]).await;
    let review = |verb: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reader: Api<SelfSubjectAccessReview> = Api::all(twin.kube_client("reader").await);
    let pp = PostParams::default();
    let yes = reader.create(&pp, &review("watch", "pods")).await.unwrap().status.unwrap();
    assert!(yes.allowed);
    assert!(yes.reason.unwrap().contains("ClusterRoleBinding \"istio-reader-clusterrole-istio-system\""));
    assert!(!reader.create(&pp, &review("list", "secrets")).await.unwrap().status.unwrap().allowed);
    // The admin asks about the reader; the reader may not ask about others.
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(READER.into()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("list".into()),
                resource: Some("nodes".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let admin: Api<SubjectAccessReview> = Api::all(twin.kube_client("kubeconfig").await);
    assert!(!admin.create(&pp, &sar).await.unwrap().status.unwrap().allowed);
    let as_reader: Api<SubjectAccessReview> = Api::all(twin.kube_client("reader").await);
    let kube::Error::Api(status) = as_reader.create(&pp, &sar).await.unwrap_err() else { panic!() };
    assert_eq!(status.code, 403);
    // Neither attribute set: 422.
    let empty = SelfSubjectAccessReview::default();
    let kube::Error::Api(status) = reader.create(&pp, &empty).await.unwrap_err() else { panic!() };
    assert_eq!(status.code, 422);
    assert_eq!(
        status.message,
        r#"SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"#
    );
    // A SubjectAccessReview with neither attributes nor subject: both causes.
    let kube::Error::Api(status) = admin.create(&pp, &SubjectAccessReview::default()).await.unwrap_err() else {
        panic!()
    };
    assert!(
        status.message.ends_with(r#"spec.user: Invalid value: "": at least one of user or group must be specified]"#),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn kubectl_auth_can_i_and_whoami_as_the_reader() {
    let twin = twin().await;
    grant_reader(&twin, &["pods"]).await;
    let as_reader = ["--as", READER];
    let run = |args: Vec<&'static str>| {
        let twin = &twin;
        async move { twin.kubectl(&args).await }
    };
    let yes = run([&["auth", "can-i", "list", "pods", "--all-namespaces"][..], &as_reader].concat()).await;
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);
    let no = run([&["auth", "can-i", "list", "secrets", "-n", "istio-system"][..], &as_reader].concat()).await;
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);
    // The admin may do anything.
    assert_eq!(twin.kubectl(&["auth", "can-i", "delete", "nodes"]).await.ok().trim(), "yes");
    // Impersonated reads are refused as the reader's own would be.
    let get = run([&["get", "secrets", "-n", "istio-system"][..], &as_reader].concat()).await;
    assert_ne!(get.code, 0);
    assert!(
        get.stderr.contains(&format!(
            "User \"{READER}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"istio-system\""
        )),
        "{}",
        get.stderr
    );
    let whoami = twin.kubectl_with("reader", &["auth", "whoami", "-o", "json"]).await;
    let who: serde_json::Value = serde_json::from_str(whoami.ok()).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], READER);
    assert!(who["status"]["userInfo"]["groups"]
        .as_array()
        .unwrap()
        .contains(&json!("system:serviceaccounts:istio-system")));
}

#[tokio::test]
async fn anonymous_requests_read_only_public_info() {
    let twin = twin().await;
    // No credentials at all: kube-rs sends no Authorization header.
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &twin.ca_pem);
    let kc = json!({"apiVersion": "v1", "kind": "Config", "current-context": "twin",
        "clusters": [{"name": "twin", "cluster": {"server": twin.server.url, "certificate-authority-data": ca}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [{"name": "twin", "context": {"cluster": "twin", "user": "nobody"}}]});
    twin.write("anonymous", &kc.to_string());
    let client = twin.kube_client("anonymous").await;
    let get = |path: &'static str| {
        let client = client.clone();
        async move { client.request_text(http::Request::get(path).body(Vec::new()).unwrap()).await }
    };
    assert!(get("/version").await.unwrap().contains("gitVersion"));
    let kube::Error::Api(status) = get("/apis").await.unwrap_err() else { panic!() };
    assert_eq!(
        (status.code, status.message.as_str()),
        (403, r#"forbidden: User "system:anonymous" cannot get path "/apis""#)
    );
    let kube::Error::Api(status) = get("/api/v1/namespaces/default/pods").await.unwrap_err() else { panic!() };
    assert_eq!(status.code, 403);
    assert!(
        status.message.starts_with(r#"pods is forbidden: User "system:anonymous" cannot list resource "pods""#),
        "{}",
        status.message
    );
}
