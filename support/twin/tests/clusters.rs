//! A twin cluster behaves like an EKS cluster to kubectl: who may log in
//! (admin token, `aws eks get-token`, service-account token Secrets), and
//! what its controllers and kubelets do with Deployments, pods, Services and
//! namespaces.

mod support;

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use base64::Engine as _;
use serde_json::Value;
use support::{eventually, ClusterRef, Env};

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn names(list: &Value) -> BTreeSet<String> {
    items(list).iter().filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned)).collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eks_token_opens_its_own_cluster_only_and_service_account_tokens_live_with_their_secret() -> Result<()> {
    let env = Env::start().await?;
    let one = env.create_cluster("eks-1", 1).await?;
    let two = env.create_cluster("eks-2", 2).await?;

    let cred = env.aws(&["eks", "get-token", "--cluster-name", "eks-1"]).await?;
    assert_eq!(cred["kind"], "ExecCredential");
    let token = cred["status"]["token"].as_str().context("no token")?;
    assert!(token.starts_with("k8s-aws-v1."));

    let mine = env.write_kubeconfig("eks-1-iam", &one.endpoint, &one.ca_data, token)?;
    let out = env.kubectl(&mine, &["get", "namespace", "default", "-o", "name"]).await?;
    assert_eq!(out.trim(), "namespace/default");

    let theirs = env.write_kubeconfig("eks-2-iam", &two.endpoint, &two.ca_data, token)?;
    let refused = env.kubectl(&theirs, &["get", "namespace", "default", "-o", "name"]).await;
    let err = refused.expect_err("a token for eks-1 must not open eks-2");
    assert!(format!("{err:#}").contains("must be logged in"), "{err:#}");

    let forged = env.write_kubeconfig("eks-1-forged", &one.endpoint, &one.ca_data, &format!("{token}x"))?;
    assert!(env.kubectl(&forged, &["get", "namespace", "default"]).await.is_err(), "a tampered token is refused");

    // A service-account token Secret gets a token that works until the Secret goes.
    env.apply(
        &one.kubeconfig,
        r#"{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "reader-token", "namespace": "default",
                         "annotations": {"kubernetes.io/service-account.name": "default"}}}"#,
    )
    .await?;
    let secret = eventually("the token Secret filled", || async {
        let s = env.kubectl_json(&one.kubeconfig, &["get", "secret", "reader-token", "-n", "default"]).await?;
        Ok(if s["data"]["token"].is_string() { Ok(s) } else { Err(format!("data {}", s["data"])) })
    })
    .await?;
    let decode = |key: &str| -> Result<String> {
        let b64 = secret["data"][key].as_str().with_context(|| format!("no data.{key}"))?;
        Ok(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64)?)?)
    };
    assert_eq!(decode("namespace")?, "default");
    let ca = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&one.ca_data)?)?;
    assert_eq!(decode("ca.crt")?, ca);
    let sa_token = decode("token")?;
    let sa = env.write_kubeconfig("eks-1-sa", &one.endpoint, &one.ca_data, &sa_token)?;
    // Authenticated: discovery is everyone's (system:discovery); namespaces are not
    // the default service account's (RBAC).
    assert!(env.kubectl(&sa, &["get", "--raw", "/api"]).await?.contains("APIVersions"));
    let denied = env.kubectl(&sa, &["get", "namespace", "default"]).await.expect_err("no role grants it");
    assert!(
        format!("{denied:#}")
            .contains(r#"User "system:serviceaccount:default:default" cannot get resource "namespaces""#),
        "{denied:#}"
    );
    let other = env.write_kubeconfig("eks-2-sa", &two.endpoint, &two.ca_data, &sa_token)?;
    assert!(env.kubectl(&other, &["get", "--raw", "/api"]).await.is_err(), "an eks-1 SA token does not open eks-2");

    env.kubectl(&one.kubeconfig, &["delete", "secret", "reader-token", "-n", "default"]).await?;
    eventually("the SA token revoked with its Secret", || async {
        Ok(match env.kubectl(&sa, &["get", "--raw", "/api"]).await {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepted".to_owned()),
        })
    })
    .await?;
    // Deleting an EKS cluster stops its API server.
    env.aws(&["eks", "delete-cluster", "--name", "eks-2"]).await?;
    let api = two.endpoint.trim_start_matches("https://").to_owned();
    eventually("eks-2's API server stopped", || async {
        Ok(match tokio::net::TcpStream::connect(&api).await {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepting connections".to_owned()),
        })
    })
    .await?;
    assert!(env.twin.cluster_admin_token("eks-2").is_none());
    env.kubectl(&one.kubeconfig, &["get", "namespace", "default"]).await?;
    env.twin.shutdown().await;
    Ok(())
}

const HELLOWORLD: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: sample
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: sample
  labels: {app: helloworld, service: helloworld}
spec:
  selector: {app: helloworld}
  ports:
  - {name: http, port: 5000, targetPort: http}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld-v1
  namespace: sample
  labels: {app: helloworld, version: v1}
spec:
  replicas: 2
  selector:
    matchLabels: {app: helloworld, version: v1}
  template:
    metadata:
      labels: {app: helloworld, version: v1}
    spec:
      containers:
      - name: helloworld
        image: docker.io/istio/examples-helloworld-v1
        ports: [{name: http, containerPort: 5000}]
"#;

async fn pods(env: &Env, c: &ClusterRef) -> Result<Value> {
    env.kubectl_json(&c.kubeconfig, &["get", "pods", "-n", "sample", "-l", "app=helloworld"]).await
}

/// Waits until the Deployment reports `n` ready and up-to-date replicas and
/// exactly `n` running pods exist; returns the pods.
async fn converged(env: &Env, c: &ClusterRef, n: u64) -> Result<Vec<Value>> {
    eventually(&format!("{n} ready helloworld replicas"), || async {
        let d = env.kubectl_json(&c.kubeconfig, &["get", "deploy", "helloworld-v1", "-n", "sample"]).await?;
        let p = items(&pods(env, c).await?);
        let s = &d["status"];
        let done = s["readyReplicas"] == n
            && s["availableReplicas"] == n
            && s["updatedReplicas"] == n
            && s["replicas"] == n
            && s["observedGeneration"] == d["metadata"]["generation"]
            && p.len() as u64 == n
            && p.iter().all(is_ready);
        Ok(if done { Ok(p) } else { Err(format!("status {s}, {} pods", p.len())) })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_pods_and_endpoints_behave_like_a_cluster() -> Result<()> {
    let env = Env::start().await?;
    let c = env.create_cluster("eks-1", 1).await?;
    env.apply(&c.kubeconfig, HELLOWORLD).await?;

    // Every namespace gets the default account and the cluster CA.
    let ca = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&c.ca_data)?)?;
    let cm = eventually("kube-root-ca.crt in sample", || async {
        Ok(match env.kubectl_json(&c.kubeconfig, &["get", "configmap", "kube-root-ca.crt", "-n", "sample"]).await {
            Ok(cm) => Ok(cm),
            Err(e) => Err(format!("{e:#}")),
        })
    })
    .await?;
    assert_eq!(cm["data"]["ca.crt"], ca.as_str());
    env.kubectl(&c.kubeconfig, &["get", "serviceaccount", "default", "-n", "sample"]).await?;

    let first = converged(&env, &c, 2).await?;
    let deploy = env.kubectl_json(&c.kubeconfig, &["get", "deploy", "helloworld-v1", "-n", "sample"]).await?;
    let available =
        deploy["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Available").cloned();
    assert_eq!(available.as_ref().map(|c| &c["status"]), Some(&Value::from("True")), "{deploy}");

    let node_re = |n: &str| {
        n.strip_prefix("ip-10-1-").and_then(|r| r.strip_suffix(".us-west-2.compute.internal")).is_some_and(|mid| {
            let parts: Vec<&str> = mid.split('-').collect();
            parts.len() == 2 && parts.iter().all(|p| p.parse::<u8>().is_ok())
        })
    };
    let mut ips = BTreeSet::new();
    for p in &first {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        let hash = p["metadata"]["labels"]["pod-template-hash"].as_str().context("pod-template-hash")?;
        assert_eq!(hash.len(), 10);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
        let suffix =
            name.strip_prefix(&format!("helloworld-v1-{hash}-")).with_context(|| format!("pod name {name}"))?;
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(p["metadata"]["labels"]["app"], "helloworld");
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], format!("helloworld-v1-{hash}"));
        assert!(node_re(p["spec"]["nodeName"].as_str().unwrap_or_default()), "node {}", p["spec"]["nodeName"]);
        let ip: std::net::Ipv4Addr = p["status"]["podIP"].as_str().context("podIP")?.parse()?;
        let o = ip.octets();
        assert!(o[0] == 10 && o[1] == 1 && o[2] < 48, "{ip} is in a private subnet of 10.1.0.0/16");
        assert!(ips.insert(ip), "IPs are unique");
        assert_eq!(p["status"]["phase"], "Running");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!((cs["ready"].as_bool(), cs["started"].as_bool()), (Some(true), Some(true)), "{cs}");
        assert!(cs["state"]["running"]["startedAt"].is_string());
        assert!(p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "ContainersReady" && c["status"] == "True"));
    }

    // The Service's Endpoints list the ready pods on the resolved named port.
    let endpoint_ips = || async {
        let ep = env.kubectl_json(&c.kubeconfig, &["get", "endpoints", "helloworld", "-n", "sample"]).await?;
        let subset = &ep["subsets"][0];
        anyhow::ensure!(ep["subsets"].as_array().is_none_or(|s| s.len() <= 1), "one subset: {ep}");
        if !subset.is_null() {
            assert_eq!(subset["ports"], serde_json::json!([{"name": "http", "port": 5000, "protocol": "TCP"}]));
        }
        let ips: BTreeSet<std::net::Ipv4Addr> = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str()?.parse().ok())
            .collect();
        Ok::<_, anyhow::Error>(ips)
    };
    let want = ips.clone();
    eventually("Endpoints of the two pods", || async {
        let got = endpoint_ips().await?;
        Ok(if got == want { Ok(()) } else { Err(format!("{got:?}")) })
    })
    .await?;

    // Scale up, then delete a pod: the Deployment keeps three.
    env.kubectl(&c.kubeconfig, &["scale", "deploy", "helloworld-v1", "-n", "sample", "--replicas=3"]).await?;
    let three = converged(&env, &c, 3).await?;
    let victim = three[0]["metadata"]["name"].as_str().context("name")?.to_owned();
    env.kubectl(&c.kubeconfig, &["delete", "pod", &victim, "-n", "sample"]).await?;
    let replaced = eventually("the deleted pod replaced", || async {
        let p = items(&pods(&env, &c).await?);
        let gone = !p.iter().any(|p| p["metadata"]["name"] == victim.as_str());
        Ok(if gone && p.len() == 3 && p.iter().all(is_ready) { Ok(p) } else { Err(format!("{} pods", p.len())) })
    })
    .await?;
    let want: BTreeSet<std::net::Ipv4Addr> =
        replaced.iter().filter_map(|p| p["status"]["podIP"].as_str()?.parse().ok()).collect();
    eventually("Endpoints follow the replacement", || async {
        let got = endpoint_ips().await?;
        Ok(if got == want { Ok(()) } else { Err(format!("{got:?} != {want:?}")) })
    })
    .await?;

    // A new pod template replaces every pod.
    let before = names(&pods(&env, &c).await?);
    env.apply(
        &c.kubeconfig,
        &HELLOWORLD.replace("replicas: 2", "replicas: 3").replace(
            "        ports: [{name: http, containerPort: 5000}]",
            "        ports: [{name: http, containerPort: 5000}]\n        env: [{name: SERVICE_VERSION, value: v1b}]",
        ),
    )
    .await?;
    let after = eventually("every pod of the old template replaced", || async {
        let p = pods(&env, &c).await?;
        let now = names(&p);
        let ready = items(&p).iter().all(is_ready);
        Ok(if now.len() == 3 && now.is_disjoint(&before) && ready { Ok(p) } else { Err(format!("{now:?}")) })
    })
    .await?;
    assert!(items(&after).iter().all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "v1b"));
    converged(&env, &c, 3).await?;

    // Deleting the Deployment takes its pods along.
    env.kubectl(&c.kubeconfig, &["delete", "deploy", "helloworld-v1", "-n", "sample"]).await?;
    eventually("no helloworld pod left", || async {
        let n = items(&pods(&env, &c).await?).len();
        Ok(if n == 0 { Ok(()) } else { Err(format!("{n} pods")) })
    })
    .await?;
    eventually("empty Endpoints", || async {
        let got = endpoint_ips().await?;
        Ok(if got.is_empty() { Ok(()) } else { Err(format!("{got:?}")) })
    })
    .await?;
    env.twin.shutdown().await;
    Ok(())
}

/// A Gateway as the seed's chart writes it, at a given version.
fn gateway_at(version: &str) -> String {
    format!(
        r#"{{"apiVersion": "networking.istio.io/{version}", "kind": "Gateway",
            "metadata": {{"name": "cross-network-gateway", "namespace": "default"}},
            "spec": {{"selector": {{"istio": "eastwestgateway"}},
                     "servers": [{{"port": {{"number": 15443, "name": "tls", "protocol": "TLS"}},
                                  "tls": {{"mode": "AUTO_PASSTHROUGH"}}, "hosts": ["*.local"]}}]}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_exactly_the_istio_api_versions_of_its_release() -> Result<()> {
    // Istio 1.20: v1alpha3 (storage) and v1beta1; v1 arrives in 1.22 (fixtures/istio/releases.yaml).
    let env =
        Env::start_with(meshspec_twin::TwinConfig { istio_version: "1.20.2".into(), ..Default::default() }).await?;
    let c = env.create_cluster("eks-1", 1).await?;
    let group: Value =
        serde_json::from_str(&env.kubectl(&c.kubeconfig, &["get", "--raw", "/apis/networking.istio.io"]).await?)?;
    let versions: Vec<&str> =
        group["versions"].as_array().into_iter().flatten().filter_map(|v| v["version"].as_str()).collect();
    assert_eq!(versions, ["v1beta1", "v1alpha3"], "{group}");
    assert_eq!(group["preferredVersion"]["version"], "v1beta1");
    let refused = env.apply(&c.kubeconfig, &gateway_at("v1")).await.expect_err("v1 is not served by Istio 1.20");
    assert!(
        format!("{refused:#}").contains("no matches for kind \"Gateway\" in version \"networking.istio.io/v1\""),
        "{refused:#}"
    );
    env.apply(&c.kubeconfig, &gateway_at("v1alpha3")).await?;
    let read = env
        .kubectl_json(
            &c.kubeconfig,
            &["get", "gateways.v1beta1.networking.istio.io", "cross-network-gateway", "-n", "default"],
        )
        .await?;
    assert_eq!(read["apiVersion"], "networking.istio.io/v1beta1", "read at the version asked for");
    assert_eq!(read["spec"]["servers"][0]["tls"]["mode"], "AUTO_PASSTHROUGH");

    // Istio 1.27 and later: v1 too, and stored at v1.
    let newer =
        Env::start_with(meshspec_twin::TwinConfig { istio_version: "1.30.3".into(), ..Default::default() }).await?;
    let c = newer.create_cluster("eks-1", 1).await?;
    let group: Value =
        serde_json::from_str(&newer.kubectl(&c.kubeconfig, &["get", "--raw", "/apis/networking.istio.io"]).await?)?;
    assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");
    newer.apply(&c.kubeconfig, &gateway_at("v1")).await?;
    Ok(())
}
