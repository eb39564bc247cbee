use super::*;
use serde_json::json;
use std::time::Duration;

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": name}}, "data": data})
}

fn rv_of(v: &Value) -> u64 {
    object::resource_version(v)
}

#[test]
fn starts_with_the_initial_namespaces_and_kubernetes_service() {
    let s = Store::new();
    let names: Vec<String> =
        s.list(&Resource::namespaces(), None, "").iter().map(|n| object::name(n).to_string()).collect();
    for ns in INITIAL_NAMESPACES {
        assert!(names.contains(&ns.to_string()), "{ns} in {names:?}");
    }
    let svc = s.get(&Resource::services(), Some("default"), "kubernetes").expect("kubernetes service");
    assert_eq!(svc["spec"]["clusterIP"], "10.100.0.1");
    assert!(s.get(&Resource::serviceaccounts(), Some("kube-system"), "default").is_some());
}

#[test]
fn create_fills_server_metadata_and_bumps_the_global_counter() {
    let s = Store::new();
    let before = s.resource_version();
    let a = s.create(&Resource::configmaps(), Some("default"), cm("a", json!({"k": "v"}))).expect("created");
    assert_eq!(rv_of(&a), before + 1);
    let meta = &a["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["uid"].as_str().map(str::len), Some(36));
    assert!(meta["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let b = s
        .create(&Resource::secrets(), Some("default"), json!({"metadata": {"name": "b"}, "stringData": {"t": "x"}}))
        .expect("created");
    assert_eq!(rv_of(&b), before + 2, "one counter across kinds");
    assert_eq!(b["kind"], "Secret");
    assert_eq!(b["data"]["t"], "eA==");
    assert!(b.get("stringData").is_none());
    let e = s.create(&Resource::configmaps(), Some("default"), cm("a", json!({}))).expect_err("duplicate");
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
}

#[test]
fn generate_name_and_missing_names() {
    let s = Store::new();
    let o = s
        .create(&Resource::configmaps(), Some("default"), json!({"metadata": {"generateName": "x-"}}))
        .expect("created");
    let name = object::name(&o);
    assert!(name.starts_with("x-") && name.len() == 7, "{name}");
    let e = s.create(&Resource::configmaps(), Some("default"), json!({"metadata": {}})).expect_err("no name");
    assert_eq!(e.code, 422);
    assert_eq!(e.to_status()["details"]["causes"][0]["field"], "metadata.name");
}

#[test]
fn namespaced_objects_need_an_existing_active_namespace() {
    let s = Store::new();
    let e = s.create(&Resource::configmaps(), Some("sample"), cm("a", json!({}))).expect_err("no namespace");
    assert_eq!((e.code, e.reason.as_str(), e.message.as_str()), (404, "NotFound", "namespaces \"sample\" not found"));
    let e = s
        .create(&Resource::configmaps(), Some("default"), json!({"metadata": {"name": "a", "namespace": "other"}}))
        .expect_err("mismatch");
    assert_eq!(e.code, 400);
    let e = s
        .create(&Resource::configmaps(), Some("default"), json!({"kind": "Secret", "metadata": {"name": "a"}}))
        .expect_err("kind");
    assert_eq!(e.code, 400);
}

#[test]
fn update_keeps_status_checks_resource_version_and_skips_no_ops() {
    let s = Store::new();
    let dep = json!({"metadata": {"name": "sleep"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleep"}},
        "template": {"metadata": {"labels": {"app": "sleep"}}, "spec": {"containers": [{"name": "sleep", "image": "curl"}]}}}, "status": {"replicas": 7}});
    let created = s.create(&Resource::deployments(), Some("default"), dep).expect("created");
    assert_eq!(created["status"], json!({}), "status is the controller's");
    let with_status =
        s.update_status(&Resource::deployments(), Some("default"), "sleep", json!({"replicas": 1})).expect("status");
    assert_eq!(with_status["status"]["replicas"], 1);
    assert_eq!(with_status["metadata"]["generation"], 1, "status writes keep generation");

    let mut next = with_status.clone();
    next["spec"]["replicas"] = json!(3);
    next["status"] = json!({"replicas": 99});
    let updated = s.update(&Resource::deployments(), Some("default"), next.clone()).expect("update");
    assert_eq!(updated["status"]["replicas"], 1, "main writes ignore .status");
    assert_eq!(updated["metadata"]["generation"], 2);
    assert!(rv_of(&updated) > rv_of(&with_status));

    let e = s.update(&Resource::deployments(), Some("default"), next).expect_err("stale");
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));

    let mut rx = s.subscribe();
    let same = s.update(&Resource::deployments(), Some("default"), updated.clone()).expect("no-op");
    assert_eq!(rv_of(&same), rv_of(&updated), "a no-op write keeps the resourceVersion");
    assert!(rx.try_recv().is_err(), "and sends no event");

    let patched = s
        .merge_patch(
            &Resource::deployments(),
            Some("default"),
            "sleep",
            json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 5}}),
        )
        .expect("patch");
    assert_eq!(patched["metadata"]["labels"]["x"], "y");
    assert_eq!(patched["status"]["replicas"], 1);
    assert_eq!(patched["metadata"]["generation"], 2, "metadata changes keep generation");
    let ev = rx.try_recv().expect("event");
    assert_eq!((ev.kind, ev.resource), (EventKind::Modified, Resource::deployments()));
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let s = Store::new();
    let r = Resource::services();
    let svc = json!({"metadata": {"name": "gw", "finalizers": ["service.k8s.aws/resources"]}, "spec": {"type": "LoadBalancer", "ports": [{"port": 15443}]}});
    s.create(&r, Some("default"), svc).expect("created");
    let mut rx = s.subscribe();
    let deleting = s.delete(&r, Some("default"), "gw").expect("delete");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(rx.try_recv().expect("event").kind, EventKind::Modified);
    assert!(s.get(&r, Some("default"), "gw").is_some(), "still there");
    let again = s.delete(&r, Some("default"), "gw").expect("delete again");
    assert_eq!(rv_of(&again), rv_of(&deleting), "a second delete changes nothing");

    let e = s
        .merge_patch(&r, Some("default"), "gw", json!({"metadata": {"finalizers": ["a", "b"]}}))
        .expect_err("no new finalizers");
    assert_eq!(e.code, 422);
    let gone =
        s.merge_patch(&r, Some("default"), "gw", json!({"metadata": {"finalizers": null}})).expect("finalizer removed");
    assert!(s.get(&r, Some("default"), "gw").is_none());
    let ev = rx.try_recv().expect("event");
    assert_eq!(ev.kind, EventKind::Deleted);
    assert_eq!(rv_of(&ev.object), rv_of(&gone));
    assert_eq!(s.delete(&r, Some("default"), "gw").expect_err("gone").code, 404);
}

#[test]
fn watch_replays_from_a_resource_version_and_expires_old_ones() {
    let s = Store::with_log_capacity(3);
    let r = Resource::configmaps();
    let first = s.create(&r, Some("default"), cm("a", json!({}))).expect("a");
    let from = rv_of(&first);
    s.create(&r, Some("default"), cm("b", json!({}))).expect("b");
    s.delete(&r, Some("default"), "a").expect("delete a");
    let feed = s.watch(&r, WatchStart::After(from)).expect("replay");
    let kinds: Vec<(EventKind, String)> =
        feed.initial.iter().map(|e| (e.kind, object::name(&e.object).to_string())).collect();
    assert_eq!(kinds, vec![(EventKind::Added, "b".to_string()), (EventKind::Deleted, "a".to_string())]);

    let now = s.watch(&r, WatchStart::Now).expect("now");
    assert_eq!(now.initial.len(), 1, "synthetic ADDED for current objects only");

    for n in ["c", "d", "e"] {
        s.create(&r, Some("default"), cm(n, json!({}))).expect("create");
    }
    let e = s.watch(&r, WatchStart::After(from)).err().expect("expired");
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert!(e.message.starts_with(&format!("too old resource version: {from} (")), "{}", e.message);
}

#[tokio::test]
async fn watch_feed_delivers_live_events_without_gaps() {
    let s = Store::new();
    let r = Resource::configmaps();
    let mut feed = s.watch(&r, WatchStart::After(s.resource_version())).expect("watch");
    s.create(&r, Some("default"), cm("live", json!({}))).expect("create");
    let e = feed.live.recv().await.expect("event");
    assert_eq!((e.kind, object::name(&e.object)), (EventKind::Added, "live"));
}

#[test]
fn deleting_a_namespace_deletes_its_objects_then_itself() {
    let s = Store::new();
    s.create(&Resource::namespaces(), None, json!({"metadata": {"name": "sample"}})).expect("ns");
    s.create(&Resource::configmaps(), Some("sample"), cm("a", json!({}))).expect("cm");
    s.create(&Resource::secrets(), Some("sample"), json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}))
        .expect("secret");
    let mut rx = s.subscribe();
    let ns = s.delete(&Resource::namespaces(), None, "sample").expect("delete ns");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(s.get(&Resource::configmaps(), Some("sample"), "a").is_none());
    assert!(s.get(&Resource::namespaces(), None, "sample").is_some(), "held by the secret's finalizer");
    let e = s.create(&Resource::configmaps(), Some("sample"), cm("b", json!({}))).expect_err("terminating");
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    s.merge_patch(&Resource::secrets(), Some("sample"), "held", json!({"metadata": {"finalizers": []}}))
        .expect("release");
    assert!(s.get(&Resource::namespaces(), None, "sample").is_none(), "gone once empty");
    let mut seen = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        seen.push((ev.kind, ev.resource.plural.clone()));
    }
    assert_eq!(seen.first(), Some(&(EventKind::Modified, "namespaces".to_string())));
    assert_eq!(seen.last(), Some(&(EventKind::Deleted, "namespaces".to_string())));
    let e = s.delete(&Resource::namespaces(), None, "default").expect_err("protected");
    assert_eq!(e.code, 403);
}

#[test]
fn owner_references_are_garbage_collected() {
    let s = Store::new();
    let owner = s.create(&Resource::configmaps(), Some("default"), cm("owner", json!({}))).expect("owner");
    let uid = owner["metadata"]["uid"].clone();
    for n in ["d1", "d2"] {
        s.create(&Resource::secrets(), Some("default"), json!({"metadata": {"name": n, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}})).expect("dependent");
    }
    let opts = DeleteOptions { propagation: Propagation::Orphan, ..Default::default() };
    s.create(&Resource::configmaps(), Some("default"), cm("owner2", json!({}))).expect("owner2");
    s.delete(&Resource::configmaps(), Some("default"), "owner").expect("delete");
    assert!(s.get(&Resource::secrets(), Some("default"), "d1").is_none());
    assert!(s.get(&Resource::secrets(), Some("default"), "d2").is_none());

    let owner2 = s.get(&Resource::configmaps(), Some("default"), "owner2").expect("owner2");
    s.create(
        &Resource::secrets(),
        Some("default"),
        json!({"metadata": {"name": "kept", "ownerReferences": [{"uid": owner2["metadata"]["uid"]}]}}),
    )
    .expect("dependent");
    s.delete_with(&Resource::configmaps(), Some("default"), "owner2", &opts).expect("delete orphaning");
    let kept = s.get(&Resource::secrets(), Some("default"), "kept").expect("orphaned, not deleted");
    assert_eq!(kept["metadata"]["ownerReferences"], json!([]));
}

#[test]
fn istio_versions_share_one_storage() {
    let s = Store::new();
    let v1alpha3 = Resource { version: "v1alpha3".into(), ..Resource::gateways() };
    let mut rx = s.subscribe();
    let gw = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "Gateway", "metadata": {"name": "cross-network-gateway"},
        "spec": {"selector": {"istio": "eastwestgateway"}}});
    let created = s.create(&v1alpha3, Some("default"), gw).expect("created");
    assert_eq!(created["apiVersion"], "networking.istio.io/v1alpha3");
    let ev = rx.try_recv().expect("event");
    assert_eq!(ev.resource, Resource::gateways(), "in-process events use the storage version");
    assert_eq!(ev.object["apiVersion"], "networking.istio.io/v1");
    let read = s.get(&Resource::gateways(), Some("default"), "cross-network-gateway").expect("readable at v1");
    assert_eq!(read["apiVersion"], "networking.istio.io/v1");
}

#[test]
fn crds_register_and_unregister_kinds() {
    let s = Store::new();
    let widgets = Resource::new("example.com", "v1", "widgets", "Widget", true);
    assert_eq!(
        s.create(&widgets, Some("default"), json!({"metadata": {"name": "w"}})).expect_err("not served").code,
        404
    );
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true, "storage": true}]}});
    s.create(&Resource::customresourcedefinitions(), None, crd).expect("crd");
    s.create(&widgets, Some("default"), json!({"metadata": {"name": "w"}, "spec": {"size": 1}})).expect("served now");
    s.delete(&Resource::customresourcedefinitions(), None, "widgets.example.com").expect("delete crd");
    assert!(s.lookup("example.com", "v1", "widgets").is_none());
    assert!(s.get(&widgets, Some("default"), "w").is_none());
}

#[test]
fn apply_creates_then_merges() {
    let s = Store::new();
    let r = Resource::configmaps();
    let (created, was_created) =
        s.apply(&r, Some("default"), "cfg", Part::Main, cm("cfg", json!({"a": "1"}))).expect("create");
    assert!(was_created);
    assert_eq!(created["data"]["a"], "1");
    let (merged, was_created) = s
        .apply(
            &r,
            Some("default"),
            "cfg",
            Part::Main,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"b": "2"}}),
        )
        .expect("merge");
    assert!(!was_created);
    assert_eq!(merged["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(merged["metadata"]["labels"]["app"], "cfg");
}

#[tokio::test]
async fn namespace_content_goes_after_a_delay_on_a_runtime() {
    let s = Store::new();
    s.set_namespace_cleanup_delay(Duration::from_millis(100));
    s.create(&Resource::namespaces(), None, json!({"metadata": {"name": "sample"}})).expect("ns");
    s.create(&Resource::configmaps(), Some("sample"), cm("a", json!({}))).expect("cm");
    let ns = s.delete(&Resource::namespaces(), None, "sample").expect("delete ns");
    assert_eq!(ns["status"]["phase"], "Terminating");
    // Right after the delete the content is still there (kubectl delete -f deletes it next).
    s.delete(&Resource::configmaps(), Some("sample"), "a").expect("still deletable");
    assert!(s.get(&Resource::namespaces(), None, "sample").is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.get(&Resource::namespaces(), None, "sample").is_none(), "gone after the delay");
}
