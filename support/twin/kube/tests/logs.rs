//! `kubectl logs` (1.32, a client nobody here wrote) against the twin API
//! server: every flag it turns into a `pods/log` query, and the errors the
//! API server and the kubelet answer (wordings in src/logs.rs, with sources).

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use meshspec_twin_kube::{Resource, Store};
use serde_json::{json, Value};

const NS: &str = "default";

fn running(name: &str) -> Value {
    json!({"name": name, "ready": true, "started": true, "restartCount": 0,
           "state": {"running": {"startedAt": "2026-12-07T01:00:00Z"}}, "lastState": {}})
}

/// A pod bound to a node, with its containers' statuses as the kubelet writes them.
fn pod(store: &Store, name: &str, labels: Value, containers: &[&str], statuses: Vec<Value>) -> String {
    let spec: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": format!("example/{c}")})).collect();
    let created = store
        .create(
            &Resource::pods(),
            Some(NS),
            json!({"metadata": {"name": name, "labels": labels}, "spec": {"containers": spec, "nodeName": "node-1"}}),
        )
        .expect("pod");
    let uid = created["metadata"]["uid"].as_str().expect("uid").to_owned();
    store
        .update_status(&Resource::pods(), Some(NS), name, json!({"phase": "Running", "containerStatuses": statuses}))
        .expect("status");
    uid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_reads_each_flag_from_the_containers_log() {
    let twin = common::start().await;
    let uid = pod(&twin.store, "web", json!({"app": "web"}), &["app", "proxy"], vec![running("app"), running("proxy")]);
    let logs = twin.store.logs();
    let now = Utc::now();
    let old = now - chrono::Duration::hours(2);
    logs.start(&uid, "app");
    logs.write_at(&uid, "app", old, "old line");
    logs.write_at(&uid, "app", now, "line two");
    logs.write_at(&uid, "app", now, "line three");
    logs.write(&uid, "proxy", "proxy line");

    let out = twin.kubectl(&["logs", "web", "-c", "app"]).await;
    assert_eq!(out.ok(), "old line\nline two\nline three\n");
    let out = twin.kubectl(&["logs", "web", "-c", "proxy"]).await;
    assert_eq!(out.ok(), "proxy line\n");
    let out = twin.kubectl(&["logs", "web", "-c", "app", "--tail=1"]).await;
    assert_eq!(out.ok(), "line three\n");
    let out = twin.kubectl(&["logs", "web", "-c", "app", "--since=1h"]).await;
    assert_eq!(out.ok(), "line two\nline three\n");
    let since = (now - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let out = twin.kubectl(&["logs", "web", "-c", "app", &format!("--since-time={since}")]).await;
    assert_eq!(out.ok(), "line two\nline three\n");
    let out = twin.kubectl(&["logs", "web", "-c", "app", "--limit-bytes=12"]).await;
    assert_eq!(out.ok(), "old line\nlin");
    let out = twin.kubectl(&["logs", "web", "-c", "app", "--timestamps", "--tail=1"]).await;
    let stamp = now.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string();
    assert_eq!(out.ok(), format!("{stamp} line three\n"));

    // kubectl resolves a Deployment to a pod by its selector itself.
    twin.store
        .create(
            &Resource::deployments(),
            Some(NS),
            json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "example/app"}]}}}}),
        )
        .expect("deployment");
    let out = twin.kubectl(&["logs", "deploy/web", "-c", "app", "--tail=1"]).await;
    assert_eq!(out.ok(), "line three\n");

    // Without a container the API server refuses a pod of several (kubectl picks one itself).
    let raw = format!("/api/v1/namespaces/{NS}/pods/web/log");
    let out = twin.kubectl(&["get", "--raw", &raw]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("a container name must be specified for pod web, choose one of: [app proxy]"),
        "{}",
        out.stderr
    );
    let out = twin.kubectl(&["get", "--raw", &format!("{raw}?container=nope")]).await;
    assert!(out.stderr.contains("container nope is not valid for pod web"), "{}", out.stderr);
    let out = twin.kubectl(&["get", "--raw", &format!("{raw}?container=app&tailLines=-1")]).await;
    assert!(out.stderr.contains("must be greater than or equal to 0"), "{}", out.stderr);
    let out = twin.kubectl(&["get", "--raw", &format!("{raw}?container=app&sinceSeconds=5&sinceTime={since}")]).await;
    assert!(out.stderr.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"), "{}", out.stderr);

    let out = twin.kubectl(&["logs", "web", "-c", "app", "--previous"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(r#"previous terminated container "app" in pod "web" not found"#), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_reads_the_instance_before_the_restart() {
    let twin = common::start().await;
    let uid = pod(&twin.store, "crashy", json!({}), &["app"], vec![running("app")]);
    let logs = twin.store.logs();
    logs.start(&uid, "app");
    logs.write(&uid, "app", "first run: boom");
    logs.exit(&uid, "app");
    logs.start(&uid, "app");
    logs.write(&uid, "app", "second run");
    let mut status = running("app");
    status["restartCount"] = json!(1);
    status["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "containerID": "containerd://x",
                                               "startedAt": "2026-12-07T01:00:00Z", "finishedAt": "2026-12-07T01:00:01Z"}});
    twin.store
        .update_status(
            &Resource::pods(),
            Some(NS),
            "crashy",
            json!({"phase": "Running", "containerStatuses": [status]}),
        )
        .expect("status");
    assert_eq!(twin.kubectl(&["logs", "crashy"]).await.ok(), "second run\n");
    assert_eq!(twin.kubectl(&["logs", "crashy", "--previous"]).await.ok(), "first run: boom\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_not_yet_running_has_no_log_to_read() {
    let twin = common::start().await;
    let waiting = json!({"name": "app", "ready": false, "started": false, "restartCount": 0,
                         "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}});
    pod(&twin.store, "starting", json!({}), &["app"], vec![waiting]);
    let out = twin.kubectl(&["logs", "starting"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(r#"container "app" in pod "starting" is waiting to start: ContainerCreating"#),
        "{}",
        out.stderr
    );
    // Not even bound to a node: no kubelet to ask, an empty log.
    twin.store
        .create(
            &Resource::pods(),
            Some(NS),
            json!({"metadata": {"name": "unbound"}, "spec": {"containers": [{"name": "app", "image": "x"}]}}),
        )
        .expect("pod");
    assert_eq!(twin.kubectl(&["logs", "unbound"]).await.ok(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_new_lines_until_the_container_ends() {
    let twin = common::start().await;
    let uid = pod(&twin.store, "tailed", json!({}), &["app"], vec![running("app")]);
    let logs = twin.store.logs().clone();
    logs.write_at(&uid, "app", Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap(), "before");
    let (mut child, mut out) = twin.kubectl_stream(&["logs", "-f", "tailed"]);
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = out.next_line().await {
            if line == "before" {
                logs.write(&uid, "app", "while following");
            }
            if line == "while following" {
                logs.write(&uid, "app", "last words");
                logs.exit(&uid, "app");
            }
            seen.push(line);
        }
        seen
    })
    .await
    .expect("kubectl logs -f ended with the container");
    assert_eq!(seen, ["before", "while following", "last words"]);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exit").expect("status");
    assert!(status.success());
}
