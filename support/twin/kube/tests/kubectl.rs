//! kubectl 1.32 (a client nobody here wrote) against the twin API server: the
//! commands meshspec's runbook and its users run.

mod common;

use std::time::Duration;

use meshspec_twin_kube::{Part, Resource};
use serde_json::{json, Value};

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: sample
  labels:
    istio-injection: enabled
---
apiVersion: v1
kind: Secret
metadata:
  name: reader-token
  namespace: sample
stringData:
  token: s3cr3t
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: sample
data:
  mode: fast
---
apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: sample
  labels:
    app: helloworld
spec:
  selector:
    app: helloworld
  ports:
  - name: http
    port: 5000
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep
  namespace: sample
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sleep
  template:
    metadata:
      labels:
        app: sleep
    spec:
      containers:
      - name: sleep
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
        env:
        - name: A
          value: "1"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
  namespace: sample
spec:
  selector:
    istio: eastwestgateway
  servers:
  - port:
      number: 15443
      name: tls
      protocol: TLS
    tls:
      mode: AUTO_PASSTHROUGH
    hosts:
    - "*.local"
"#;

fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reports_the_cluster_and_namespaces_list() {
    let twin = common::start().await;
    let v: Value = serde_json::from_str(twin.kubectl(&["version", "-o", "json"]).await.ok()).expect("json");
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.28.15-eks-7f9249a");
    assert_eq!(v["clientVersion"]["gitVersion"], "v1.32.4-dispatcher", "kubectl 1.32 was dispatched");
    let out = twin.kubectl(&["get", "ns"]).await;
    let rows = lines(out.ok());
    assert!(rows[0].starts_with("NAME") && rows[0].contains("STATUS") && rows[0].contains("AGE"), "{rows:?}");
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(rows.iter().any(|r| r.starts_with(ns) && r.contains("Active")), "{ns} in {rows:?}");
    }
    let out = twin.kubectl(&["get", "ns", "default", "-o", "jsonpath={.status.phase}"]).await;
    assert_eq!(out.ok(), "Active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_changed_and_unchanged_keeps_what_others_added() {
    let twin = common::start().await;
    let file = twin.write("sample.yaml", MANIFESTS);
    let file = file.to_str().expect("utf-8 path");
    let out = twin.kubectl(&["apply", "-f", file]).await;
    assert_eq!(
        lines(out.ok()),
        vec![
            "namespace/sample created",
            "secret/reader-token created",
            "configmap/settings created",
            "service/helloworld created",
            "deployment.apps/sleep created",
            "gateway.networking.istio.io/cross-network-gateway created",
        ]
    );
    let secret = twin.store.get(&Resource::secrets(), Some("sample"), "reader-token").expect("secret");
    assert_eq!(secret["data"]["token"], "czNjcjN0", "stringData folded into data");
    assert!(secret.get("stringData").is_none());
    assert!(secret["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    let gw = twin.store.get(&Resource::gateways(), Some("sample"), "cross-network-gateway").expect("gateway");
    assert_eq!(gw["spec"]["servers"][0]["tls"]["mode"], "AUTO_PASSTHROUGH");

    // Others write too: an injector adds a sidecar, a controller reports status.
    let dep = Resource::deployments();
    twin.store
        .modify(&dep, Some("sample"), "sleep", Part::Main, |d| {
            let mut d = d.clone();
            d["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .expect("containers")
                .push(json!({"name": "istio-proxy", "image": "istio/proxyv2:1.20.0"}));
            Ok(d)
        })
        .expect("sidecar added");
    twin.store
        .update_status(&dep, Some("sample"), "sleep", json!({"replicas": 1, "readyReplicas": 1}))
        .expect("status");

    let changed = MANIFESTS
        .replace("image: curlimages/curl", "image: curlimages/curl:8.5.0")
        .replace("          value: \"1\"", "          value: \"1\"\n        - name: B\n          value: \"2\"")
        .replace("  mode: fast", "  mode: slow")
        .replace("      number: 15443", "      number: 15444");
    let file2 = twin.write("changed.yaml", &changed);
    let out = twin.kubectl(&["apply", "-f", file2.to_str().expect("utf-8")]).await;
    assert_eq!(
        lines(out.ok()),
        vec![
            "namespace/sample unchanged",
            // As against a real server: the last-applied stringData never shows in
            // the live object (it is folded into data), so kubectl always patches it.
            "secret/reader-token configured",
            "configmap/settings configured",
            "service/helloworld unchanged",
            "deployment.apps/sleep configured",
            "gateway.networking.istio.io/cross-network-gateway configured",
        ]
    );
    let d = twin.store.get(&dep, Some("sample"), "sleep").expect("deployment");
    let containers = d["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 2, "strategic merge kept the injected sidecar: {containers:?}");
    assert_eq!(containers[0]["image"], "curlimages/curl:8.5.0");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]));
    assert_eq!(containers[1]["name"], "istio-proxy");
    assert_eq!(d["status"]["readyReplicas"], 1, "apply does not touch status");
    assert_eq!(d["metadata"]["generation"], 3);
    let cm = twin.store.get(&Resource::configmaps(), Some("sample"), "settings").expect("configmap");
    assert_eq!(cm["data"]["mode"], "slow");
    let gw = twin.store.get(&Resource::gateways(), Some("sample"), "cross-network-gateway").expect("gateway");
    assert_eq!(gw["spec"]["servers"][0]["port"]["number"], 15444);

    let rv = twin.store.resource_version();
    let out = twin.kubectl(&["apply", "-f", file2.to_str().expect("utf-8")]).await;
    // kubectl still patches the secret (stringData) and the deployment (a
    // `$setElementOrder` for the container list the sidecar made longer); the
    // server finds nothing to change in either.
    let patched = |l: &&str| l.starts_with("secret/") || l.starts_with("deployment.apps/");
    assert!(lines(out.ok()).iter().filter(|l| !patched(l)).all(|l| l.ends_with(" unchanged")), "{}", out.stdout);
    assert_eq!(twin.store.resource_version(), rv, "an unchanged apply writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_creates_and_updates() {
    let twin = common::start().await;
    let cm = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: default\ndata:\n  mode: {mode}\n"
        )
    };
    let f = twin.write("ssa.yaml", &cm("one"));
    let out = twin.kubectl(&["apply", "--server-side", "-f", f.to_str().expect("utf-8")]).await;
    assert_eq!(out.ok().trim(), "configmap/ssa serverside-applied");
    let f = twin.write("ssa.yaml", &cm("two"));
    let out = twin.kubectl(&["apply", "--server-side", "-f", f.to_str().expect("utf-8")]).await;
    assert_eq!(out.ok().trim(), "configmap/ssa serverside-applied");
    let got = twin.store.get(&Resource::configmaps(), Some("default"), "ssa").expect("configmap");
    assert_eq!(got["data"]["mode"], "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_into_a_missing_namespace_fails_like_a_real_server() {
    let twin = common::start().await;
    let f = twin
        .write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nope\ndata:\n  a: b\n");
    let out = twin.kubectl(&["apply", "-f", f.to_str().expect("utf-8")]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Error from server (NotFound)") && out.stderr.contains("namespaces \"nope\" not found"),
        "{}",
        out.stderr
    );
}

/// The seed's readiness and load-balancing commands, with pods a controller made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_jsonpath_selectors_and_tables() {
    let twin = common::start().await;
    let f = twin.write("sample.yaml", MANIFESTS);
    twin.kubectl(&["apply", "-f", f.to_str().expect("utf-8")]).await.ok();
    for (name, app) in [("sleep-5d8b9c7d4-x2x7k", "sleep"), ("helloworld-v1-867747c89-7vzwl", "helloworld")] {
        let pod = json!({"metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": app, "image": "img"}]}});
        twin.store.create(&Resource::pods(), Some("sample"), pod).expect("pod");
        twin.store
            .update_status(&Resource::pods(), Some("sample"), name, json!({"phase": "Running", "podIP": "10.1.8.162", "containerStatuses": [{"name": app, "ready": true, "restartCount": 0}]}))
            .expect("status");
    }
    let out = twin.kubectl(&["get", "svc", "helloworld", "-n", "sample", "-o", "jsonpath={.spec.ports[*].port}"]).await;
    assert_eq!(out.ok(), "5000");
    let out = twin
        .kubectl(&["get", "pod", "-l", "app=sleep", "-n", "sample", "-o", "jsonpath={.items[0].metadata.name}"])
        .await;
    assert_eq!(out.ok(), "sleep-5d8b9c7d4-x2x7k");
    let out = twin.kubectl(&["get", "pods", "-n", "sample"]).await;
    let rows = lines(out.ok());
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let sleep: Vec<&str> =
        rows.iter().find(|r| r.starts_with("sleep-")).expect("sleep row").split_whitespace().collect();
    assert_eq!(&sleep[..4], &["sleep-5d8b9c7d4-x2x7k", "1/1", "Running", "0"]);
    let out = twin.kubectl(&["get", "svc", "-n", "sample", "-o", "wide"]).await;
    let rows = lines(out.ok());
    assert!(rows[0].contains("CLUSTER-IP") && rows[0].contains("SELECTOR"), "{rows:?}");
    assert!(rows[1].contains("5000/TCP") && rows[1].contains("app=helloworld"), "{rows:?}");
    let out = twin.kubectl(&["get", "gw", "-n", "sample", "-o", "name"]).await;
    assert_eq!(out.ok().trim(), "gateway.networking.istio.io/cross-network-gateway");
    let out = twin.kubectl(&["get", "pod", "nope", "-n", "sample"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Error from server (NotFound): pods \"nope\" not found"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_delete_by_selector_and_scale() {
    let twin = common::start().await;
    let f = twin.write("sample.yaml", MANIFESTS);
    twin.kubectl(&["apply", "-f", f.to_str().expect("utf-8")]).await.ok();

    twin.kubectl(&["label", "svc", "helloworld", "-n", "sample", "tier=web"]).await.ok();
    let svc = twin.store.get(&Resource::services(), Some("sample"), "helloworld").expect("svc");
    assert_eq!(svc["metadata"]["labels"]["tier"], "web");
    let out = twin.kubectl(&["label", "svc", "helloworld", "-n", "sample", "tier-"]).await;
    assert_eq!(out.ok().trim(), "service/helloworld unlabeled");
    let svc = twin.store.get(&Resource::services(), Some("sample"), "helloworld").expect("svc");
    assert!(svc["metadata"]["labels"].get("tier").is_none());
    assert_eq!(svc["metadata"]["labels"]["app"], "helloworld");

    for n in ["a", "b"] {
        twin.store
            .create(&Resource::secrets(), Some("sample"), json!({"metadata": {"name": n, "labels": {"k": "v"}}}))
            .expect("secret");
    }
    let out = twin.kubectl(&["delete", "secret", "-l", "k=v", "-n", "sample"]).await;
    assert_eq!(lines(out.ok()), vec!["secret \"a\" deleted", "secret \"b\" deleted"]);
    assert!(twin.store.list(&Resource::secrets(), Some("sample"), "k=v").is_empty());
    assert!(twin.store.get(&Resource::secrets(), Some("sample"), "reader-token").is_some(), "unselected secret kept");

    let out = twin.kubectl(&["scale", "deploy", "sleep", "-n", "sample", "--replicas=0"]).await;
    assert_eq!(out.ok().trim(), "deployment.apps/sleep scaled");
    let d = twin.store.get(&Resource::deployments(), Some("sample"), "sleep").expect("deployment");
    assert_eq!(d["spec"]["replicas"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers_and_namespaces_empty_out() {
    let twin = common::start().await;
    let f = twin.write("sample.yaml", MANIFESTS);
    twin.kubectl(&["apply", "-f", f.to_str().expect("utf-8")]).await.ok();
    // A load balancer controller's finalizer, released a moment after the delete.
    let svc = Resource::services();
    twin.store
        .merge_patch(
            &svc,
            Some("sample"),
            "helloworld",
            json!({"metadata": {"finalizers": ["service.k8s.aws/resources"]}}),
        )
        .expect("finalizer");
    let store = twin.store.clone();
    let releaser = tokio::spawn(async move {
        let mut events = store.subscribe();
        loop {
            let ev = events.recv().await.expect("events");
            if ev.resource == Resource::services() && ev.object["metadata"]["deletionTimestamp"].is_string() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                store
                    .merge_patch(
                        &Resource::services(),
                        Some("sample"),
                        "helloworld",
                        json!({"metadata": {"finalizers": null}}),
                    )
                    .expect("release");
                return;
            }
        }
    });
    let out = twin.kubectl(&["delete", "svc", "helloworld", "-n", "sample"]).await;
    assert_eq!(out.ok().trim(), "service \"helloworld\" deleted");
    releaser.await.expect("released");
    assert!(twin.store.get(&svc, Some("sample"), "helloworld").is_none());

    // Deleting by manifest: the namespace first, then what is in it (still
    // there while the namespace terminates), and kubectl waits for all of it.
    // (The Service went above: --ignore-not-found, as a real server answers 404 too.)
    let out = twin.kubectl(&["delete", "--ignore-not-found", "-f", f.to_str().expect("utf-8")]).await;
    let deleted = lines(out.ok());
    assert_eq!(deleted[0], "namespace \"sample\" deleted");
    assert!(deleted.contains(&"deployment.apps \"sleep\" deleted"), "{deleted:?}");
    assert!(twin.store.get(&Resource::namespaces(), None, "sample").is_none());
    assert!(twin.store.list(&Resource::deployments(), Some("sample"), "").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_delivers_events() {
    let twin = common::start().await;
    twin.store
        .create(&Resource::configmaps(), Some("default"), json!({"metadata": {"name": "before"}}))
        .expect("create");
    let (mut child, mut out) =
        twin.kubectl_stream(&["get", "configmaps", "-n", "default", "-w", "--request-timeout=20s"]);
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut created = false;
        let mut seen = Vec::new();
        while let Ok(Some(line)) = out.next_line().await {
            seen.push(line.clone());
            // The first line is the header: the list is done and the watch follows.
            if !created {
                twin.store
                    .create(
                        &Resource::configmaps(),
                        Some("default"),
                        json!({"metadata": {"name": "watched"}, "data": {"a": "1"}}),
                    )
                    .expect("create");
                created = true;
            }
            if line.starts_with("watched") {
                return seen;
            }
        }
        seen
    })
    .await
    .expect("the watch delivered the event in time");
    let _ = child.kill().await;
    let row: Vec<&str> = seen.last().expect("a line").split_whitespace().collect();
    assert_eq!(&row[..2], &["watched", "1"], "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_everyday_commands() {
    let twin = common::start().await;
    let f = twin.write("sample.yaml", MANIFESTS);
    let f = f.to_str().expect("utf-8");
    let out = twin.kubectl(&["create", "-f", f]).await;
    assert_eq!(lines(out.ok()).len(), 6);
    let out = twin.kubectl(&["create", "-f", f]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Error from server (AlreadyExists)"), "{}", out.stderr);
    let patch = r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#;
    let out = twin.kubectl(&["patch", "deploy", "sleep", "-n", "sample", "--type=json", "-p", patch]).await;
    assert_eq!(out.ok().trim(), "deployment.apps/sleep patched");
    let out = twin
        .kubectl(&["get", "deploy", "sleep", "-n", "sample", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"])
        .await;
    assert_eq!(out.ok(), "2 2");
    let out = twin.kubectl(&["replace", "-f", f]).await;
    assert!(out.ok().contains("deployment.apps/sleep replaced"));
    let out = twin.kubectl(&["get", "all", "-n", "sample", "-o", "name"]).await;
    assert_eq!(lines(out.ok()), vec!["service/helloworld", "deployment.apps/sleep"]);
    let out = twin.kubectl(&["describe", "deploy", "sleep", "-n", "sample"]).await;
    assert!(out.ok().contains("Selector:               app=sleep"), "{}", out.stdout);
    let out = twin.kubectl(&["api-resources", "--api-group=networking.istio.io", "-o", "name"]).await;
    assert_eq!(
        lines(out.ok()),
        vec![
            "destinationrules.networking.istio.io",
            "gateways.networking.istio.io",
            "serviceentries.networking.istio.io",
            "virtualservices.networking.istio.io",
        ]
    );
    let out =
        twin.kubectl(&["wait", "--for=jsonpath={.status.phase}=Active", "namespace/sample", "--timeout=10s"]).await;
    assert_eq!(out.ok().trim(), "namespace/sample condition met");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused() {
    let twin = common::start().await;
    twin.write_kubeconfig("bad", "wrong-token");
    let out = twin.kubectl_with("bad", &["get", "pods"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("You must be logged in to the server"), "{}", out.stderr);
}

/// `kubectl create <kind>` subcommands send protobuf (typed clients): the twin
/// reads it and answers in it, and the objects are what a real server stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_subcommands_speak_protobuf() {
    let twin = common::start().await;
    let out = twin.kubectl(&["create", "namespace", "demo", "-v=8"]).await;
    assert_eq!(lines(out.ok()), vec!["namespace/demo created"]);
    // kubectl's own log: it sent protobuf and read a protobuf answer.
    let sent_type = out.stderr.lines().find(|l| l.contains("Content-Type:")).unwrap_or_default().to_string();
    assert!(sent_type.contains("application/vnd.kubernetes.protobuf"), "{sent_type}\n{}", out.stderr);
    let answer_type = out.stderr.lines().rfind(|l| l.contains("Content-Type:")).unwrap_or_default().to_string();
    assert!(answer_type.contains("application/vnd.kubernetes.protobuf"), "{answer_type}\n{}", out.stderr);

    // Binary file contents travel as bytes and come back as base64.
    let key: Vec<u8> = (0u8..=255).rev().collect();
    let key_path = twin.path("key.bin");
    std::fs::write(&key_path, &key).expect("key file");
    let conf = twin.write("app.conf", "listen 8080\nmode = fast\n");
    let from_key = format!("--from-file=key={}", key_path.to_str().expect("utf-8"));
    let from_conf = format!("--from-file=app.conf={}", conf.to_str().expect("utf-8"));
    let cert = rcgen::generate_simple_self_signed(vec!["demo.local".to_string()]).expect("cert");
    let crt = twin.write("tls.crt", &cert.cert.pem());
    let tls_key = twin.write("tls.key", &cert.signing_key.serialize_pem());
    let (crt, tls_key) = (crt.to_str().expect("utf-8"), tls_key.to_str().expect("utf-8"));
    let commands: Vec<(Vec<&str>, &str)> = vec![
        (vec!["secret", "generic", "creds", "--from-literal=user=admin", &from_key], "secret/creds created"),
        (vec!["secret", "tls", "web-tls", "--cert", crt, "--key", tls_key], "secret/web-tls created"),
        (vec!["configmap", "settings", "--from-literal=mode=fast", &from_conf], "configmap/settings created"),
        (vec!["deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80"], "deployment.apps/web created"),
        (vec!["serviceaccount", "robot"], "serviceaccount/robot created"),
        (vec!["service", "clusterip", "web", "--tcp=80:8080"], "service/web created"),
        (vec!["service", "loadbalancer", "edge", "--tcp=443:8443"], "service/edge created"),
    ];
    for (args, said) in commands {
        let mut full = vec!["create"];
        full.extend(args);
        full.extend(["-n", "demo"]);
        let out = twin.kubectl(&full).await;
        assert_eq!(lines(out.ok()), vec![said], "{full:?}");
    }

    let get = |kind: &'static str, name: &'static str| {
        let twin = &twin;
        async move {
            let out = twin.kubectl(&["get", kind, name, "-n", "demo", "-o", "json"]).await;
            serde_json::from_str::<Value>(out.ok()).expect("json")
        }
    };
    let ns = {
        let out = twin.kubectl(&["get", "namespace", "demo", "-o", "json"]).await;
        serde_json::from_str::<Value>(out.ok()).expect("json")
    };
    assert_eq!((ns["kind"].as_str(), ns["status"]["phase"].as_str()), (Some("Namespace"), Some("Active")));
    assert!(ns["metadata"]["creationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{ns}");
    // Go value fields left empty by the client are not written (`omitempty`).
    assert!(ns["metadata"].get("generateName").is_none() && ns["metadata"].get("selfLink").is_none(), "{ns}");

    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let creds = get("secret", "creds").await;
    assert_eq!(creds["type"], "Opaque");
    assert_eq!(creds["data"], json!({"user": b64(b"admin"), "key": b64(&key)}));
    let tls = get("secret", "web-tls").await;
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert_eq!(tls["data"]["tls.crt"], b64(cert.cert.pem().as_bytes()));
    let cm = get("configmap", "settings").await;
    assert_eq!(cm["data"], json!({"mode": "fast", "app.conf": "listen 8080\nmode = fast\n"}));

    let deploy = get("deployment", "web").await;
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["spec"]["selector"], json!({"matchLabels": {"app": "web"}}));
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!((container["name"].as_str(), container["image"].as_str()), (Some("nginx"), Some("nginx:1.27")));
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert!(deploy["spec"].get("minReadySeconds").is_none(), "{deploy}");
    assert_eq!(deploy["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}));

    let sa = get("serviceaccount", "robot").await;
    assert_eq!(sa["metadata"]["namespace"], "demo");
    let svc = get("service", "web").await;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
    // An IntOrString: the target port is the number 8080, not "8080".
    assert_eq!(svc["spec"]["ports"][0], json!({"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}));
    let lb = get("service", "edge").await;
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(lb["spec"]["ports"][0]["targetPort"], 8443);

    // Typed delete sends DeleteOptions; get of a missing object reads a Status.
    let out = twin.kubectl(&["delete", "configmap", "settings", "-n", "demo"]).await;
    assert_eq!(out.ok().trim(), "configmap \"settings\" deleted");
    let out = twin.kubectl(&["create", "configmap", "settings", "-n", "nope", "--from-literal=a=b"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("namespaces \"nope\" not found"), "{}", out.stderr);
}
