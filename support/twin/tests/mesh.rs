//! The mesh inside the twin, end to end: the seed deployment provisioned with
//! the aws CLI and kubectl from fixtures/manifests, then checked the way the
//! seed's runbook checks it (injected pods, the shared root, istiod's
//! clusterz, the sleep proxy's Envoy endpoints, curls across networks), and
//! with the faults the runbook's troubleshooting names: a bad reader token,
//! different roots, a gateway Service without its network label, and
//! istiod's CA choices at start.

mod mesh {
    pub mod seed;
}
mod support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mesh::seed::{
    self, clusterz, count, curls, exec, gateway_nlb_ips, helloworld_hosts, name, ready_pod, status_of, Faults,
};
use serde_json::Value;
use support::{eventually, ClusterRef, Env};

const CERTIFICATE_VERIFY_FAILED: &str = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";
const CONNECTION_TIMEOUT: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout";

fn pod_ip(p: &Value) -> String {
    p["status"]["podIP"].as_str().unwrap_or_default().to_owned()
}

fn container_names(p: &Value) -> Vec<String> {
    p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

async fn secret_text(env: &Env, c: &ClusterRef, ns: &str, secret: &str, key: &str) -> Result<String> {
    let s = env.kubectl_json(&c.kubeconfig, &["get", "secret", secret, "-n", ns]).await?;
    let b64 = s["data"][key].as_str().with_context(|| format!("no {key} in {secret}"))?;
    Ok(String::from_utf8(STANDARD.decode(b64)?)?)
}

async fn root_cert_configmap(env: &Env, c: &ClusterRef, ns: &str) -> Result<String> {
    eventually(&format!("istio-ca-root-cert in {}/{ns}", c.name), || async {
        Ok(match env.kubectl_json(&c.kubeconfig, &["get", "configmap", "istio-ca-root-cert", "-n", ns]).await {
            Ok(cm) => Ok(cm["data"]["root-cert.pem"].as_str().unwrap_or_default().to_owned()),
            Err(e) => Err(format!("{e:#}")),
        })
    })
    .await
}

/// Waits until the sleep proxy's helloworld hosts are exactly `want`.
async fn hosts_become(
    env: &Env,
    c: &ClusterRef,
    sleep: &str,
    want: &BTreeMap<(String, u64), u64>,
) -> Result<BTreeMap<(String, u64), u64>> {
    eventually(&format!("the helloworld endpoints of {sleep}"), || async {
        let got = helloworld_hosts(env, c, sleep).await?;
        Ok(if &got == want { Ok(got) } else { Err(format!("{got:?}, want {want:?}")) })
    })
    .await
}

/// The seed's expectation: the local pod on 5000 (weight 3) and each of the
/// remote NLB's IPs on 15443 (weight 1).
fn seed_hosts(local_pod: &str, remote_nlb: &BTreeSet<String>) -> BTreeMap<(String, u64), u64> {
    let mut want = BTreeMap::from([((local_pod.to_owned(), 5000), 3)]);
    want.extend(remote_nlb.iter().map(|ip| ((ip.clone(), 15443), 1)));
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_deployment_makes_one_mesh_across_both_networks() -> Result<()> {
    let env = Env::start().await?;
    let clusters = seed::provision(&env, &Faults::default()).await?;
    let (one, two) = (&clusters[0], &clusters[1]);

    // Injected pods: the app, then istio-proxy; the network label and env.
    let mut sleeps = Vec::new();
    let mut helloworlds = Vec::new();
    for (s, c) in seed::SEED.iter().zip(&clusters) {
        for app in ["sleep", "helloworld"] {
            let p = ready_pod(&env, c, "sample", &format!("app={app}")).await?;
            assert_eq!(container_names(&p), [app, "istio-proxy"], "{}", name(&p));
            let proxy = &p["spec"]["containers"][1];
            assert_eq!(proxy["image"], format!("docker.io/istio/proxyv2:{}", seed::ISTIO_VERSION));
            assert_eq!(proxy["ports"][0]["containerPort"], 15090);
            assert_eq!(proxy["ports"][0]["name"], "http-envoy-prom");
            assert_eq!(p["metadata"]["labels"]["topology.istio.io/network"], s.network);
            let env_network = proxy["env"].as_array().into_iter().flatten().find(|e| e["name"] == "ISTIO_META_NETWORK");
            assert_eq!(env_network.map(|e| &e["value"]), Some(&Value::from(s.network)));
            if app == "sleep" {
                sleeps.push(name(&p));
            } else {
                helloworlds.push(pod_ip(&p));
            }
        }
        // Gateways are not injected.
        let gw = ready_pod(&env, c, "istio-ingress", "app=istio-eastwestgateway").await?;
        assert_eq!(container_names(&gw), ["istio-proxy"]);
    }

    // One root: cacerts' root-cert.pem is what istio-ca-root-cert carries, in both clusters.
    let mut roots = BTreeSet::new();
    for c in &clusters {
        let plugged = secret_text(&env, c, "istio-system", "cacerts", "root-cert.pem").await?;
        assert_eq!(root_cert_configmap(&env, c, "sample").await?, plugged, "{}", c.name);
        assert_eq!(root_cert_configmap(&env, c, "istio-ingress").await?, plugged, "{}", c.name);
        roots.insert(plugged);
    }
    assert_eq!(roots.len(), 1, "one root shared by both clusters");
    let istiod = ready_pod(&env, one, "istio-system", "app=istiod").await?;
    let log = env.twin.mesh().cluster("eks-1").context("eks-1 in the mesh")?.pod_log("istio-system", &name(&istiod));
    assert!(log.iter().any(|l| l.ends_with("Use local CA certificate")), "{log:?}");

    // istiod reads the other cluster: clusterz synced both ways.
    for (i, c) in clusters.iter().enumerate() {
        let (own, other) = (seed::SEED[i].istio, seed::SEED[1 - i].istio);
        let z = eventually(&format!("clusterz of {} synced", c.name), || async {
            let z = clusterz(&env, c).await?;
            Ok(if status_of(&z, other).as_deref() == Some("synced") { Ok(z) } else { Err(z.to_string()) })
        })
        .await?;
        let want = format!(
            r#"[{{"id":"{own}","secretName":"","syncStatus":"synced"}},{{"id":"{other}","secretName":"istio-system/istio-remote-secret-{other}","syncStatus":"synced"}}]"#
        );
        assert_eq!(z, serde_json::from_str::<Value>(&want)?);
    }

    // The sleep proxies' endpoints: the local pod and the remote NLB's IPs.
    let nlb = [gateway_nlb_ips(&env, one).await?, gateway_nlb_ips(&env, two).await?];
    assert_eq!((nlb[0].len(), nlb[1].len()), (3, 3), "one public IP per AZ: {nlb:?}");
    hosts_become(&env, one, &sleeps[0], &seed_hosts(&helloworlds[0], &nlb[1])).await?;
    hosts_become(&env, two, &sleeps[1], &seed_hosts(&helloworlds[1], &nlb[0])).await?;
    let istiod_pod = name(&istiod);
    let networkz = exec(
        &env,
        one,
        "istio-system",
        &istiod_pod,
        "discovery",
        &["pilot-discovery", "request", "GET", "/debug/networkz"],
    )
    .await?;
    let networkz: Value = serde_json::from_slice(&networkz.stdout)?;
    let network2: BTreeSet<String> = networkz
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["Network"] == "network2" && g["Cluster"] == "cluster2" && g["Port"] == 15443)
        .filter_map(|g| g["Addr"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(network2, nlb[1], "{networkz}");

    // 100 curls from cluster 1 reach both versions, about half each (weights 3 : 1+1+1).
    let seen = curls(&env, one, &sleeps[0], 100).await?;
    let (v1, v2) = (
        count(&seen, "Hello version: v1, instance: helloworld-v1-"),
        count(&seen, "Hello version: v2, instance: helloworld-v2-"),
    );
    assert_eq!(v1 + v2, 100, "only helloworld answers: {seen:?}");
    assert!((30..=70).contains(&v1), "v1 {v1} of 100 is far from the expected 50: {seen:?}");
    // And the other way round.
    let seen = curls(&env, two, &sleeps[1], 20).await?;
    assert!(count(&seen, "Hello version: v1") > 0 && count(&seen, "Hello version: v2") > 0, "{seen:?}");

    // The same through the API server, with kubectl exec.
    let mut versions = BTreeSet::new();
    for _ in 0..8 {
        let out = env
            .kubectl(
                &one.kubeconfig,
                &[
                    "exec",
                    "-n",
                    "sample",
                    &sleeps[0],
                    "-c",
                    "sleep",
                    "--",
                    "curl",
                    "-sS",
                    "helloworld.sample:5000/hello",
                ],
            )
            .await?;
        assert!(out.starts_with("Hello version: v"), "{out}");
        versions.insert(out[..17].to_owned());
    }
    assert!(!versions.is_empty());
    let admin = env
        .kubectl(
            &one.kubeconfig,
            &[
                "exec",
                "-n",
                "sample",
                &sleeps[0],
                "-c",
                "istio-proxy",
                "--",
                "pilot-agent",
                "request",
                "GET",
                "clusters?format=json",
            ],
        )
        .await?;
    let admin: Value = serde_json::from_str(&admin)?;
    assert_eq!(seed::hosts_of(&admin, seed::HELLOWORLD_CLUSTER), seed_hosts(&helloworlds[0], &nlb[1]));
    let z = env
        .kubectl(
            &one.kubeconfig,
            &["exec", "-n", "istio-system", &istiod_pod, "--", "pilot-discovery", "request", "GET", "/debug/clusterz"],
        )
        .await?;
    assert_eq!(status_of(&serde_json::from_str(&z)?, "cluster2").as_deref(), Some("synced"));

    // The proxy's own traffic bypasses the sidecar: kube-proxy, local endpoints only.
    for _ in 0..10 {
        let out =
            exec(&env, one, "sample", &sleeps[0], "istio-proxy", &["curl", "-sS", "helloworld.sample:5000/hello"])
                .await?;
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("Hello version: v1, "), "{out:?}");
    }
    // Names resolve through the local cluster's DNS only.
    let out = exec(
        &env,
        one,
        "sample",
        &sleeps[0],
        "sleep",
        &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "nowhere.sample:5000/hello"],
    )
    .await?;
    assert_eq!(
        (out.exit_code, String::from_utf8_lossy(&out.stderr).as_ref()),
        (6, "curl: (6) Could not resolve host: nowhere.sample\n")
    );
    // Without its remote secret, istiod closes the remote cluster and its endpoints go.
    env.kubectl(&one.kubeconfig, &["delete", "secret", "istio-remote-secret-cluster2", "-n", "istio-system"]).await?;
    eventually("cluster2 closed in cluster1's clusterz", || async {
        let z = clusterz(&env, one).await?;
        Ok(if status_of(&z, "cluster2").as_deref() == Some("closed") { Ok(()) } else { Err(z.to_string()) })
    })
    .await?;
    hosts_become(&env, one, &sleeps[0], &BTreeMap::from([((helloworlds[0].clone(), 5000), 3)])).await?;
    env.twin.shutdown().await;
    Ok(())
}

/// istiod 1.20 reads a remote cluster's EndpointSlices, not its Endpoints: a
/// reader role without `endpoints` still syncs, one without `endpointslices`
/// does not (pilot/pkg/serviceregistry/kube/controller/endpointslice.go).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_role_decides_what_istiod_reads_in_the_remote_cluster() -> Result<()> {
    for (resource, want) in [("endpoints", "synced"), ("endpointslices", "timeout")] {
        let env = Env::start().await?;
        let faults = Faults { reader_role_without: Some((1, resource)), ..Faults::default() };
        let clusters = seed::provision(&env, &faults).await?;
        let one = &clusters[0];
        eventually(&format!("cluster2 {want} in cluster1's clusterz without {resource}"), || async {
            let z = clusterz(&env, one).await?;
            Ok(if status_of(&z, "cluster2").as_deref() == Some(want) { Ok(()) } else { Err(z.to_string()) })
        })
        .await?;
        if want == "timeout" {
            let log = env.kubectl(&one.kubeconfig, &["logs", "deploy/istiod", "-n", "istio-system"]).await?;
            assert!(log.contains("Failed to watch *v1.EndpointSlice"), "{log}");
        }
        env.twin.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reader_token_times_out_and_leaves_only_local_endpoints() -> Result<()> {
    let env = Env::start().await?;
    let clusters = seed::provision(&env, &Faults { bad_token_in: Some(0), ..Faults::default() }).await?;
    let (one, two) = (&clusters[0], &clusters[1]);
    eventually("cluster2 timed out in cluster1's clusterz", || async {
        let z = clusterz(&env, one).await?;
        Ok(if status_of(&z, "cluster2").as_deref() == Some("timeout") { Ok(()) } else { Err(z.to_string()) })
    })
    .await?;
    eventually("cluster1 synced in cluster2's clusterz", || async {
        let z = clusterz(&env, two).await?;
        Ok(if status_of(&z, "cluster1").as_deref() == Some("synced") { Ok(()) } else { Err(z.to_string()) })
    })
    .await?;

    let sleep = name(&ready_pod(&env, one, "sample", "app=sleep").await?);
    let local = pod_ip(&ready_pod(&env, one, "sample", "app=helloworld").await?);
    // Only cluster1's own gateway is known (weights scale by its 3 IPs).
    hosts_become(&env, one, &sleep, &BTreeMap::from([((local, 5000), 3)])).await?;
    let seen = curls(&env, one, &sleep, 20).await?;
    assert_eq!(count(&seen, "Hello version: v1"), 20, "{seen:?}");

    // What an operator reads: istiod's log, through kubectl, tells the remote
    // cluster's life cycle and the peer's 401 as client-go's reflector logs it.
    let secret = "secret=istio-system/istio-remote-secret-cluster2";
    let log = env.kubectl(&one.kubeconfig, &["logs", "deploy/istiod", "-n", "istio-system"]).await?;
    for want in [
        "info\tStarting multicluster remote secrets controller".to_owned(),
        format!("info\tAdding cluster\tcluster=cluster2 {secret}"),
        format!("info\tfinished callback for cluster and starting to sync\tcluster=cluster2 {secret}"),
        "info\tNumber of remote clusters: 1".to_owned(),
        "error\tklog\tk8s.io/client-go@v0.28.3/tools/cache/reflector.go:229: Failed to watch *v1.Pod: failed to list *v1.Pod: Unauthorized".to_owned(),
        "error\tremote cluster cluster2 failed to sync after 30s".to_owned(),
    ] {
        assert!(log.lines().any(|l| l.ends_with(&want)), "no line ending {want:?} in:\n{log}");
    }
    let connected = format!("info\tads\tADS: new connection for node:{sleep}.sample-");
    assert!(log.contains(&connected), "no {connected:?} in:\n{log}");

    // The other programs' start: pilot-agent in a sidecar and in the gateway, gunicorn in helloworld.
    let sleep_ip = pod_ip(&ready_pod(&env, one, "sample", "app=sleep").await?);
    let proxy = env.kubectl(&one.kubeconfig, &["logs", &sleep, "-n", "sample", "-c", "istio-proxy"]).await?;
    for want in [
        "info\tVersion 1.20.2-5f5d657c72d30a97cae97938de3a6831583e9f15-Clean".to_owned(),
        format!("info\tProxy role\tips=[{sleep_ip}] type=sidecar id={sleep}.sample domain=sample.svc.cluster.local"),
        "info\txdsproxy\tInitializing with upstream address \"istiod.istio-system.svc:15012\" and cluster \"cluster1\""
            .to_owned(),
    ] {
        assert!(proxy.lines().any(|l| l.ends_with(&want)), "no line ending {want:?} in:\n{proxy}");
    }
    let gateway =
        env.kubectl(&one.kubeconfig, &["logs", "deploy/istio-eastwestgateway", "-n", "istio-ingress"]).await?;
    assert!(gateway.contains(" type=router id=istio-eastwestgateway-"), "{gateway}");
    let hello =
        env.kubectl(&one.kubeconfig, &["logs", "deploy/helloworld-v1", "-n", "sample", "-c", "helloworld"]).await?;
    assert!(hello.lines().any(|l| l.ends_with("[1] [INFO] Listening at: http://[::]:5000 (1)")), "{hello}");

    // A remote secret istiod refuses (an exec kubeconfig): the failure and the queue's error.
    let bad = seed::remote_kubeconfig("cluster3", "https://127.0.0.1:1", &one.ca_data, "t")
        .replace("    token: t", "    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}");
    let manifest = seed::render(
        "remote-secret.yaml",
        &[("REMOTE_CLUSTER", "cluster3".into()), ("REMOTE_SECRET_KEY", "cluster3".into()), ("REMOTE_KUBECONFIG", bad)],
    )?;
    env.apply(&one.kubeconfig, &manifest).await?;
    let refused = "Adding cluster: create remote cluster failed: kubeconfig is not allowed: exec is not allowed\tcluster=cluster3 secret=istio-system/istio-remote-secret-cluster3";
    let queue = "error\tcontrollers\terror handling istio-system/istio-remote-secret-cluster3, and retry budget exceeded: error adding secret istio-system/istio-remote-secret-cluster3: kubeconfig is not allowed: exec is not allowed\tcontroller=multicluster secret";
    eventually("istiod logged the refused remote secret", || async {
        let log = env.kubectl(&one.kubeconfig, &["logs", "deploy/istiod", "-n", "istio-system", "--tail=20"]).await?;
        Ok(if log.contains(refused) && log.contains(queue) { Ok(()) } else { Err(log) })
    })
    .await?;

    // The controllers' Events, as `kubectl get events` and `kubectl events` show them.
    let events = env.kubectl_json(&one.kubeconfig, &["get", "events", "-n", "sample", "-o", "json"]).await?;
    let reasons: BTreeSet<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (e["reason"].as_str().unwrap_or_default().to_owned(), e["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let sleep_pod = ready_pod(&env, one, "sample", "app=sleep").await?;
    let node = sleep_pod["spec"]["nodeName"].as_str().unwrap_or_default();
    let rs = sleep.rsplit_once('-').map(|x| x.0).unwrap_or_default();
    for want in [
        ("Scheduled".to_owned(), format!("Successfully assigned sample/{sleep} to {node}")),
        ("Pulling".to_owned(), "Pulling image \"curlimages/curl\"".to_owned()),
        ("Created".to_owned(), "Created container istio-proxy".to_owned()),
        ("Started".to_owned(), "Started container sleep".to_owned()),
        ("SuccessfulCreate".to_owned(), format!("Created pod: {sleep}")),
        ("ScalingReplicaSet".to_owned(), format!("Scaled up replica set {rs} to 1 from 0")),
    ] {
        assert!(reasons.contains(&want), "no event {want:?} in {reasons:?}");
    }
    let table = env.kubectl(&one.kubeconfig, &["events", "-n", "sample", "--for", &format!("pod/{sleep}")]).await?;
    assert!(table.contains("Scheduled") && table.contains("Started container sleep"), "{table}");
    env.twin.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_roots_fail_cross_network_calls_while_local_ones_work() -> Result<()> {
    let env = Env::start().await?;
    let clusters = seed::provision(&env, &Faults { different_roots: true, ..Faults::default() }).await?;
    let (one, two) = (&clusters[0], &clusters[1]);
    let roots = [root_cert_configmap(&env, one, "sample").await?, root_cert_configmap(&env, two, "sample").await?];
    assert_ne!(roots[0], roots[1]);

    // Discovery does not care about trust: the endpoints look healthy.
    let sleep = name(&ready_pod(&env, one, "sample", "app=sleep").await?);
    let local = pod_ip(&ready_pod(&env, one, "sample", "app=helloworld").await?);
    hosts_become(&env, one, &sleep, &seed_hosts(&local, &gateway_nlb_ips(&env, two).await?)).await?;

    let seen = curls(&env, one, &sleep, 60).await?;
    let (v1, failed) = (count(&seen, "Hello version: v1"), seen.get(CERTIFICATE_VERIFY_FAILED).copied().unwrap_or(0));
    assert_eq!(v1 + failed, 60, "{seen:?}");
    assert!(v1 > 0 && failed > 0, "local calls work, cross-network ones fail TLS: {seen:?}");
    env.twin.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_service_without_network_label_sends_remote_pod_ips_that_time_out() -> Result<()> {
    let env = Env::start().await?;
    let clusters = seed::provision(&env, &Faults::default()).await?;
    let (one, two) = (&clusters[0], &clusters[1]);
    let sleep = name(&ready_pod(&env, one, "sample", "app=sleep").await?);
    let local = pod_ip(&ready_pod(&env, one, "sample", "app=helloworld").await?);
    let remote = pod_ip(&ready_pod(&env, two, "sample", "app=helloworld").await?);
    hosts_become(&env, one, &sleep, &seed_hosts(&local, &gateway_nlb_ips(&env, two).await?)).await?;

    env.kubectl(
        &two.kubeconfig,
        &["label", "svc", "istio-eastwestgateway", "-n", "istio-ingress", "topology.istio.io/network-"],
    )
    .await?;
    // network2 has no gateway now: its pod goes as is (scaled like the local one).
    hosts_become(&env, one, &sleep, &BTreeMap::from([((local, 5000), 3), ((remote, 5000), 3)])).await?;
    let seen = curls(&env, one, &sleep, 40).await?;
    let (v1, timeouts) = (count(&seen, "Hello version: v1"), seen.get(CONNECTION_TIMEOUT).copied().unwrap_or(0));
    assert_eq!(v1 + timeouts, 40, "{seen:?}");
    assert!(v1 > 0 && timeouts > 0, "{seen:?}");
    // curl gives up first when its limit is shorter than Envoy's 10 s connect timeout.
    let mut exits = BTreeSet::new();
    for _ in 0..20 {
        let out = exec(
            &env,
            one,
            "sample",
            &sleep,
            "sleep",
            &["curl", "-sS", "--max-time", "2", "helloworld.sample:5000/hello"],
        )
        .await?;
        exits.insert(out.exit_code);
    }
    assert_eq!(exits, BTreeSet::from([0, 28]));
    env.twin.shutdown().await;
    Ok(())
}

const ISTIO_SYSTEM: &str = r#"{"apiVersion": "v1", "kind": "Namespace",
  "metadata": {"name": "istio-system", "labels": {"topology.istio.io/network": "network1"}}}"#;

const PARTIAL_CACERTS: &str = r#"{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
  "metadata": {"name": "cacerts", "namespace": "istio-system"},
  "stringData": {"root-cert.pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istiod_reads_cacerts_only_when_it_starts() -> Result<()> {
    let env = Env::start().await?;
    let c = env.create_cluster("eks-1", 1).await?;
    let mesh_cluster = env.twin.mesh().cluster("eks-1").context("eks-1 in the mesh")?;
    let vars = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![
            ("NETWORK", "network1".to_owned()),
            ("ISTIO_VERSION", seed::ISTIO_VERSION.to_owned()),
            ("MESH_ID", "mesh1".to_owned()),
            ("ISTIO_CLUSTER", "cluster1".to_owned()),
            ("SAMPLE_VERSION", "v1".to_owned()),
        ];
        v.extend(extra);
        v
    };
    let log_of = |pod: &str| mesh_cluster.pod_log("istio-system", pod);

    // No cacerts: a self-signed root, kept in istio-ca-secret.
    env.apply(&c.kubeconfig, ISTIO_SYSTEM).await?;
    env.apply(&c.kubeconfig, r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-ingress"}}"#)
        .await?;
    env.apply(&c.kubeconfig, &seed::render("istiod.yaml", &vars(vec![]))?).await?;
    let first = name(&ready_pod(&env, &c, "istio-system", "app=istiod").await?);
    assert!(log_of(&first).iter().any(|l| l.ends_with("Use self-signed certificate as the CA certificate")));
    let self_signed = secret_text(&env, &c, "istio-system", "istio-ca-secret", "ca-cert.pem").await?;
    assert_eq!(root_cert_configmap(&env, &c, "default").await?, self_signed);

    // cacerts created afterwards changes nothing until istiod restarts.
    let ca = seed::Root::new()?.cacerts()?;
    let plugged = ca.root_pem.clone();
    let cacerts = seed::render(
        "cacerts.yaml",
        &vars(vec![
            ("CA_CERT_PEM", ca.ca_cert_pem),
            ("CA_KEY_PEM", ca.ca_key_pem),
            ("ROOT_CERT_PEM", ca.root_pem),
            ("CERT_CHAIN_PEM", ca.chain_pem),
        ]),
    )?;
    env.apply(&c.kubeconfig, &cacerts).await?;
    env.apply(&c.kubeconfig, &seed::render("samples.yaml", &vars(vec![]))?).await?;
    ready_pod(&env, &c, "sample", "app=sleep").await?;
    assert_eq!(root_cert_configmap(&env, &c, "sample").await?, self_signed, "still the self-signed root");

    env.kubectl(&c.kubeconfig, &["delete", "pod", &first, "-n", "istio-system"]).await?;
    let second = eventually("a new istiod Ready", || async {
        let p = ready_pod(&env, &c, "istio-system", "app=istiod").await?;
        Ok(if name(&p) != first { Ok(name(&p)) } else { Err("the old one".to_owned()) })
    })
    .await?;
    assert!(log_of(&second).iter().any(|l| l.ends_with("Use local CA certificate")), "{:?}", log_of(&second));
    eventually("the plugged-in root in sample", || async {
        let now = root_cert_configmap(&env, &c, "sample").await?;
        Ok(if now == plugged { Ok(()) } else { Err("the old root".to_owned()) })
    })
    .await?;

    // A partial bundle: the new istiod crashes, and injected pods cannot be made.
    env.kubectl(&c.kubeconfig, &["delete", "secret", "cacerts", "-n", "istio-system"]).await?;
    env.apply(&c.kubeconfig, PARTIAL_CACERTS).await?;
    env.kubectl(&c.kubeconfig, &["delete", "pod", &second, "-n", "istio-system"]).await?;
    let crashing = eventually("istiod in CrashLoopBackOff", || async {
        let pods = env.kubectl_json(&c.kubeconfig, &["get", "pods", "-n", "istio-system", "-l", "app=istiod"]).await?;
        let p = pods["items"].as_array().into_iter().flatten().find(|p| name(p) != second).cloned();
        Ok(match p {
            Some(p) if p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff" => Ok(p),
            Some(p) => Err(p["status"].to_string()),
            None => Err("no new pod".into()),
        })
    })
    .await?;
    assert!(log_of(&name(&crashing)).iter().any(|l| l.contains("incomplete signing CA bundle detected")));
    // What the operator reads: the crashed run's log, and its BackOff event.
    let crashed = name(&crashing);
    let previous = env.kubectl(&c.kubeconfig, &["logs", &crashed, "-n", "istio-system", "--previous"]).await?;
    assert!(previous.contains("\terror\tfailed to create discovery service: failed to create CA"), "{previous}");
    let events = env
        .kubectl_json(
            &c.kubeconfig,
            &[
                "get",
                "events",
                "-n",
                "istio-system",
                "--field-selector",
                &format!("involvedObject.name={crashed},reason=BackOff"),
                "-o",
                "json",
            ],
        )
        .await?;
    let message = events["items"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("Back-off restarting failed container discovery in pod {crashed}_istio-system(")),
        "{events}"
    );
    assert_eq!(events["items"][0]["source"]["component"], "kubelet", "{events}");
    env.kubectl(&c.kubeconfig, &["delete", "pod", "-n", "sample", "-l", "app=sleep"]).await?;
    let refused = eventually("the sleep ReplicaSet refused by the webhook", || async {
        let rs = env.kubectl_json(&c.kubeconfig, &["get", "replicasets", "-n", "sample", "-l", "app=sleep"]).await?;
        let cond = rs["items"][0]["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned();
        Ok(cond.ok_or_else(|| rs["items"][0]["status"].to_string()))
    })
    .await?;
    assert!(refused["message"].as_str().unwrap_or_default().contains("sidecar-injector.istio.io"), "{refused}");

    // Fixed: the next restart of the container starts istiod, and the pod is made, injected.
    env.kubectl(&c.kubeconfig, &["delete", "secret", "cacerts", "-n", "istio-system"]).await?;
    env.apply(&c.kubeconfig, &cacerts).await?;
    let sleep = ready_pod(&env, &c, "sample", "app=sleep").await?;
    assert_eq!(container_names(&sleep), ["sleep", "istio-proxy"]);
    let istiod = ready_pod(&env, &c, "istio-system", "app=istiod").await?;
    assert_eq!(name(&istiod), name(&crashing), "the same pod, restarted");
    assert!(istiod["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1));
    env.twin.shutdown().await;
    Ok(())
}

/// Istio 1.20.2 pilot/pkg/bootstrap/istio_ca.go: a plugged-in CA is watched
/// (initCACertsWatcher); handleEvent takes up a new intermediate of the same
/// root while istiod runs and refuses a new root (ISTIO_MULTIROOT_MESH off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_istiod_takes_up_a_new_intermediate_of_its_root_and_refuses_a_new_root() -> Result<()> {
    let env = Env::start().await?;
    let c = env.create_cluster("eks-1", 1).await?;
    let mesh_cluster = env.twin.mesh().cluster("eks-1").context("eks-1 in the mesh")?;
    let vars = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![
            ("NETWORK", "network1".to_owned()),
            ("ISTIO_VERSION", seed::ISTIO_VERSION.to_owned()),
            ("MESH_ID", "mesh1".to_owned()),
            ("ISTIO_CLUSTER", "cluster1".to_owned()),
            ("SAMPLE_VERSION", "v1".to_owned()),
        ];
        v.extend(extra);
        v
    };
    let cacerts = |ca: seed::CaCerts| {
        seed::render(
            "cacerts.yaml",
            &vars(vec![
                ("CA_CERT_PEM", ca.ca_cert_pem),
                ("CA_KEY_PEM", ca.ca_key_pem),
                ("ROOT_CERT_PEM", ca.root_pem),
                ("CERT_CHAIN_PEM", ca.chain_pem),
            ]),
        )
    };
    let log_of = |pod: &str| mesh_cluster.pod_log("istio-system", pod);
    let signing_cert = || mesh_cluster.istiod.signing().map(|p| p.ca_cert).unwrap_or_default();

    env.apply(&c.kubeconfig, ISTIO_SYSTEM).await?;
    let root = seed::Root::new()?;
    let first = root.cacerts()?;
    let (first_cert, plugged_root) = (first.ca_cert_pem.clone(), first.root_pem.clone());
    env.apply(&c.kubeconfig, &cacerts(first)?).await?;
    env.apply(&c.kubeconfig, &seed::render("istiod.yaml", &vars(vec![]))?).await?;
    let istiod = name(&ready_pod(&env, &c, "istio-system", "app=istiod").await?);
    assert!(log_of(&istiod).iter().any(|l| l.ends_with("Added cacerts files watcher at ./etc/cacerts")));
    assert_eq!(signing_cert(), first_cert);

    // A new intermediate of the same root: taken up, no restart.
    let second = root.cacerts()?;
    let second_cert = second.ca_cert_pem.clone();
    assert_ne!(second_cert, first_cert);
    env.apply(&c.kubeconfig, &cacerts(second)?).await?;
    eventually("istiod to take up the new intermediate", || async {
        Ok(if signing_cert() == second_cert { Ok(()) } else { Err(format!("{:?}", log_of(&istiod))) })
    })
    .await?;
    assert!(log_of(&istiod).iter().any(|l| l
        .ends_with("Istiod has detected the newly added intermediate CA and updated its key and certs accordingly")));

    // A new root: refused while it runs; the same istiod keeps signing with the second intermediate.
    env.apply(&c.kubeconfig, &cacerts(seed::Root::new()?.cacerts()?)?).await?;
    eventually("istiod to refuse the new root", || async {
        let refused =
            log_of(&istiod).iter().any(|l| l.ends_with("Multi root is disabled, updating new ROOT-CA not supported"));
        Ok(if refused { Ok(()) } else { Err(format!("{:?}", log_of(&istiod))) })
    })
    .await?;
    assert_eq!(signing_cert(), second_cert);
    assert_eq!(mesh_cluster.istiod.trust_root(), Some(plugged_root));
    assert_eq!(name(&ready_pod(&env, &c, "istio-system", "app=istiod").await?), istiod, "no restart");
    env.twin.shutdown().await;
    Ok(())
}
