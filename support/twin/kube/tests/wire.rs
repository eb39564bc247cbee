//! Wire details that clients branch on, checked on raw HTTP answers.

mod common;

use http_body_util::BodyExt;
use meshspec_twin_kube::Resource;
use serde_json::{json, Value};

async fn call(
    client: &kube::Client,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Value) {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(kube::client::Body::from(body.as_bytes().to_vec())).expect("request");
    let resp = client.send(req).await.expect("sent");
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_see_only_public_paths() {
    let twin = common::start().await;
    twin.write_kubeconfig("anonymous", "");
    // A kubeconfig user with an empty token sends no Authorization header.
    let client = twin.kube_client("anonymous").await;
    let (status, _, v) = call(&client, "GET", "/version", &[], "").await;
    assert_eq!((status, v["minor"].as_str()), (200, Some("32")));
    let (status, _, v) = call(&client, "GET", "/api/v1/namespaces", &[], "").await;
    assert_eq!((status, v["reason"].as_str()), (403, Some("Forbidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects_with_exact_reasons() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let (status, ct, v) = call(&client, "GET", "/api/v1/namespaces/default/secrets/nope", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(ct, "application/json");
    assert_eq!(
        v,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"secrets \"nope\" not found",
               "reason":"NotFound","details":{"name":"nope","kind":"secrets"},"code":404})
    );
    let (status, _, v) = call(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps?",
        &[("content-type", "application/vnd.kubernetes.protobuf")],
        "x",
    )
    .await;
    // Protobuf is read for built-in kinds: a body without the `k8s\0` prefix is a 400.
    assert_eq!((status, v["reason"].as_str()), (400, Some("BadRequest")));
    assert!(v["message"].as_str().is_some_and(|m| m.contains("expected prefix [107 56 115 0]")), "{v}");
    let (status, _, v) =
        call(&client, "POST", "/api/v1/namespaces/default/configmaps?", &[("content-type", "text/plain")], "x").await;
    assert_eq!((status, v["reason"].as_str()), (415, Some("UnsupportedMediaType")));
    let (status, _, v) = call(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!((status, v["reason"].as_str()), (400, Some("BadRequest")));
    let (status, _, _) = call(&client, "GET", "/openapi/v2", &[], "").await;
    assert_eq!(status, 404);
    let (status, _, v) = call(&client, "GET", "/apis/nope.example.com/v1/things", &[], "").await;
    assert_eq!((status, v["reason"].as_str()), (404, Some("NotFound")));

    let gw = json!({"metadata": {"name": "gw"}, "spec": {"selector": {"istio": "eastwestgateway"}}});
    twin.store.create(&Resource::gateways(), Some("default"), gw).expect("gateway");
    let path = "/apis/networking.istio.io/v1/namespaces/default/gateways/gw";
    let strategic = [("content-type", "application/strategic-merge-patch+json")];
    let (status, _, _) = call(&client, "PATCH", path, &strategic, r#"{"spec":{}}"#).await;
    assert_eq!(status, 415, "custom resources take no strategic merge patches");
    let merge = [("content-type", "application/merge-patch+json")];
    let (status, _, v) = call(&client, "PATCH", path, &merge, r#"{"spec":{"selector":{"istio":"x"}}}"#).await;
    assert_eq!((status, v["spec"]["selector"]["istio"].as_str()), (200, Some("x")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_only_when_asked_and_lists_carry_a_resource_version() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let (status, _, v) = call(&client, "GET", "/api/v1/namespaces?&limit=500", &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(v["kind"], "NamespaceList");
    assert_eq!(v["apiVersion"], "v1");
    assert!(v["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()));
    let accept = [("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")];
    let (_, _, t) = call(&client, "GET", "/api/v1/namespaces", &accept, "").await;
    assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
    assert_eq!(t["rows"].as_array().map(Vec::len), Some(4));
    let (_, ct, d) = call(
        &client,
        "GET",
        "/apis",
        &[("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")],
        "",
    )
    .await;
    assert_eq!(ct, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(d["kind"], "APIGroupDiscoveryList");
    let (_, ct, d) = call(&client, "GET", "/apis", &[], "").await;
    assert_eq!((ct.as_str(), d["kind"].as_str()), ("application/json", Some("APIGroupList")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_lines_with_selectors_and_bookmarks() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let rv = twin.store.resource_version();
    let store = twin.store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for name in ["other", "wanted"] {
            store
                .create(&Resource::configmaps(), Some("default"), json!({"metadata": {"name": name}}))
                .expect("create");
        }
    });
    let uri = format!("/api/v1/namespaces/default/configmaps?&watch=true&timeoutSeconds=3&allowWatchBookmarks=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dwanted");
    let req = http::Request::get(uri).body(kube::client::Body::from(Vec::new())).expect("request");
    let resp = client.send(req).await.expect("watch");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("stream ends at timeoutSeconds").to_bytes();
    let events: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("one JSON object per line"))
        .collect();
    let added: Vec<&Value> = events.iter().filter(|e| e["type"] == "ADDED").collect();
    assert_eq!(added.len(), 1, "{events:?}");
    assert_eq!(added[0]["object"]["metadata"]["name"], "wanted");
    let bookmark = events.iter().find(|e| e["type"] == "BOOKMARK").expect("a bookmark within 3 s");
    assert_eq!(
        (bookmark["object"]["kind"].as_str(), bookmark["object"]["apiVersion"].as_str()),
        (Some("ConfigMap"), Some("v1"))
    );
}

/// Built-in kinds are answered in protobuf (`k8s\0` + runtime.Unknown) to a
/// client that ranks it first, objects and lists alike; Tables and JSON-first
/// clients (kube-rs sends no Accept) still get JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_answers_for_clients_that_prefer_it() {
    use meshspec_twin_kube::protobuf;
    let twin = common::start().await;
    let cm = json!({"metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"k": "v"}});
    twin.store.create(&Resource::configmaps(), Some("default"), cm).expect("configmap");
    let client = twin.kube_client("kubeconfig").await;
    let raw = |uri: &'static str, accept: &'static str| {
        let client = client.clone();
        async move {
            let req = http::Request::get(uri).header("accept", accept).body(kube::client::Body::empty()).expect("req");
            let resp = client.send(req).await.expect("sent");
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            (ct, resp.into_body().collect().await.expect("body").to_bytes().to_vec())
        }
    };
    let pb = "application/vnd.kubernetes.protobuf,application/json";
    let (ct, bytes) = raw("/api/v1/namespaces/default/configmaps/c", pb).await;
    assert_eq!(ct, "application/vnd.kubernetes.protobuf");
    assert_eq!(&bytes[..4], b"k8s\0");
    let obj = protobuf::decode(&bytes, ("v1", "ConfigMap")).expect("decodes").object;
    assert_eq!((obj["kind"].as_str(), obj["data"]["k"].as_str()), (Some("ConfigMap"), Some("v")), "{obj}");
    assert!(obj["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{obj}");
    let (ct, bytes) = raw("/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx", pb).await;
    assert_eq!(ct, "application/vnd.kubernetes.protobuf");
    let list = protobuf::decode(&bytes, ("v1", "ConfigMapList")).expect("decodes").object;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"][0]["metadata"]["name"], "c", "{list}");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()), "{list}");
    let (ct, bytes) = raw("/api/v1/namespaces/default/configmaps/c", "application/json").await;
    assert_eq!(ct, "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&bytes).expect("json")["data"]["k"], "v");
    let (ct, _) =
        raw("/api/v1/namespaces/default/configmaps", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            .await;
    assert_eq!(ct, "application/json");
}
