//! kube-rs 5 (the client meshspec itself uses) against the twin API server.

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::discovery::Discovery;
use kube::runtime::{wait::await_condition, watcher, WatchStreamExt};
use kube::ResourceExt;
use meshspec_twin_kube::{ApiServerConfig, Resource, Store};
use serde_json::json;

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "demo"}}, "data": data}))
        .expect("configmap")
}

fn api_status(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_and_errors() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms.create(&PostParams::default(), &cm("one", json!({"a": "1"}))).await.expect("create");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let got = cms.get("one").await.expect("get");
    assert_eq!(got.data.as_ref().expect("data")["a"], "1");
    let listed = cms.list(&ListParams::default().labels("app=demo")).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some_and(|rv| !rv.is_empty()));
    let status = api_status(cms.create(&PostParams::default(), &cm("one", json!({}))).await.expect_err("duplicate"));
    assert!(status.is_already_exists(), "{status:?}");
    let status = api_status(cms.get("missing").await.expect_err("missing"));
    assert!(status.is_not_found() && status.code == 404);
    let mut stale = got.clone();
    stale.metadata.resource_version = Some("1".into());
    let status = api_status(cms.replace("one", &PostParams::default(), &stale).await.expect_err("stale"));
    assert!(status.is_conflict());
    let elsewhere: Api<ConfigMap> = Api::namespaced(client, "nope");
    let status =
        api_status(elsewhere.create(&PostParams::default(), &cm("x", json!({}))).await.expect_err("no namespace"));
    assert!(status.is_not_found(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_apply_and_merge() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts"}, "stringData": {"root-cert.pem": "ROOT"}});
    let ssa = PatchParams::apply("meshspec").force();
    let s = secrets.patch("cacerts", &ssa, &Patch::Apply(&applied)).await.expect("apply creates");
    assert_eq!(s.data.expect("data")["root-cert.pem"].0, b"ROOT");
    let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts", "labels": {"x": "y"}}, "stringData": {"ca-cert.pem": "CA"}});
    let s = secrets.patch("cacerts", &ssa, &Patch::Apply(&applied)).await.expect("apply updates");
    assert_eq!(s.labels()["x"], "y");
    assert_eq!(s.data.as_ref().map(|d| d.len()), Some(2), "apply merged the keys");
    let s = secrets
        .patch("cacerts", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": null}}})))
        .await
        .expect("merge");
    assert!(!s.labels().contains_key("x"));
    let status = api_status(
        secrets.patch("cacerts", &PatchParams::default(), &Patch::Apply(&applied)).await.expect_err("no field manager"),
    );
    assert!(status.is_invalid() && status.code == 422, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_and_finalizers() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let svc: Service =
        serde_json::from_value(json!({"metadata": {"name": "eastwest", "finalizers": ["service.k8s.aws/resources"]},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "tls", "port": 15443}]}}))
        .expect("service");
    svcs.create(&PostParams::default(), &svc).await.expect("create");
    let mut current = svcs.get_status("eastwest").await.expect("status");
    current.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"hostname": "k8s-eastwest.elb.amazonaws.com"}]}}))
            .expect("status"),
    );
    let updated = svcs.replace_status("eastwest", &PostParams::default(), &current).await.expect("replace_status");
    let hostname = updated
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .and_then(|i| i.into_iter().next())
        .and_then(|i| i.hostname);
    assert_eq!(hostname.as_deref(), Some("k8s-eastwest.elb.amazonaws.com"));

    let deleting = svcs.delete("eastwest", &DeleteParams::default()).await.expect("delete");
    let held = deleting.left().expect("still there while finalizers remain");
    assert!(held.metadata.deletion_timestamp.is_some());
    svcs.patch("eastwest", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("release");
    let status = api_status(svcs.get("eastwest").await.expect_err("gone"));
    assert!(status.is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_and_await_condition_returns() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("existing", json!({}))).await.expect("create");
    let mut stream = watcher(cms.clone(), watcher::Config::default().labels("app=demo")).applied_objects().boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("object");
    assert_eq!(first.name_any(), "existing");
    cms.create(&PostParams::default(), &cm("later", json!({"k": "v"}))).await.expect("create");
    let next = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("in time")
        .expect("ok")
        .expect("object");
    assert_eq!(next.name_any(), "later");

    let store = twin.store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = store.merge_patch(&Resource::configmaps(), Some("default"), "later", json!({"data": {"ready": "yes"}}));
    });
    let ready = |c: Option<&ConfigMap>| c.and_then(|c| c.data.as_ref()).is_some_and(|d| d.contains_key("ready"));
    let done = tokio::time::timeout(Duration::from_secs(10), await_condition(cms, "later", ready))
        .await
        .expect("in time")
        .expect("ok");
    assert!(done.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_from_an_expired_version_gets_410() {
    let twin = common::start_store(Store::with_log_capacity(2), ApiServerConfig::default()).await;
    let client = twin.kube_client("kubeconfig").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = cms.create(&PostParams::default(), &cm("a", json!({}))).await.expect("create");
    for n in ["b", "c", "d"] {
        cms.create(&PostParams::default(), &cm(n, json!({}))).await.expect("create");
    }
    let rv = first.resource_version().expect("rv");
    let mut events = cms.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch").boxed();
    match tokio::time::timeout(Duration::from_secs(10), events.try_next()).await.expect("in time").expect("ok") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_workloads_and_istio() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let discovery = Discovery::new(client.clone()).run().await.expect("discovery");
    let has = |group: &str, kind: &str| {
        discovery.groups().any(|g| g.name() == group && g.recommended_resources().iter().any(|(ar, _)| ar.kind == kind))
    };
    assert!(has("apps", "Deployment"));
    assert!(has("networking.istio.io", "Gateway"));
    assert!(has("", "Pod"));
    let istio = discovery.groups().find(|g| g.name() == "networking.istio.io").expect("istio");
    assert_eq!(istio.preferred_version_or_latest(), "v1");
    let aggregated = Discovery::new(client).run_aggregated().await.expect("aggregated discovery");
    assert!(aggregated.groups().any(|g| g.name() == "apps"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_scale_and_namespaces_terminate() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "sample"}})).expect("ns"))
        .await
        .expect("ns");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "sample");
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "sleep"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "sleep"}},
        "template": {"metadata": {"labels": {"app": "sleep"}}, "spec": {"containers": [{"name": "sleep", "image": "curlimages/curl"}]}}}})).expect("deployment");
    deps.create(&PostParams::default(), &d).await.expect("create");
    let scale = deps
        .patch_scale("sleep", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .expect("scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(deps.get("sleep").await.expect("get").spec.and_then(|s| s.replicas), Some(3));
    let ns = nss.delete("sample", &DeleteParams::default()).await.expect("delete ns");
    let ns = ns.left().expect("the namespace object");
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    // The namespace controller empties it shortly after, then it is gone.
    let uid = ns.metadata.uid.clone().unwrap_or_default();
    let gone = await_condition(nss.clone(), "sample", kube::runtime::conditions::is_deleted(&uid));
    tokio::time::timeout(Duration::from_secs(10), gone).await.expect("in time").expect("ok");
    assert!(api_status(deps.get("sleep").await.expect_err("emptied")).is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_gets_401() {
    let twin = common::start().await;
    twin.write_kubeconfig("bad", "wrong");
    let client = twin.kube_client("bad").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let status = api_status(cms.list(&ListParams::default()).await.expect_err("refused"));
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_gets_initial_objects_then_changes() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &cm("initial", json!({}))).await.expect("create");
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(cms.clone(), config).boxed();
    let mut names = Vec::new();
    let deadline = Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout(deadline, events.try_next()).await.expect("in time").expect("ok").expect("event");
        match ev {
            watcher::Event::InitApply(c) => names.push(c.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names, vec!["initial"]);
    cms.create(&PostParams::default(), &cm("after", json!({}))).await.expect("create");
    let ev = tokio::time::timeout(deadline, events.try_next()).await.expect("in time").expect("ok").expect("event");
    assert!(matches!(ev, watcher::Event::Apply(c) if c.name_any() == "after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_port() {
    let twin = common::start().await;
    let addr = twin.server.addr;
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    twin.server.shutdown();
    let mut closed = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "nothing listens after shutdown");
}
