//! Two K3s stand-ins in one test process sharing nothing but TCP: each its
//! own API server (on 127.0.0.x:6443, client-certificate kubeconfigs they
//! wrote), node, pod and service networks, istiod and sidecars. The seed's
//! mesh is installed through their APIs with kubectl (cacerts from one root,
//! remote secrets naming the peer's address and its reader token), then
//! cross-network calls go over real TCP to the peer's east-west gateway
//! node port (15443) and pass through by SNI; and fail as Envoy says when
//! the Gateway does not pass the SNI through, when the roots differ, and
//! when the mesh hands out a remote pod IP.

#[allow(dead_code)]
mod mesh {
    pub mod seed;
}
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use meshspec_twin::kube::exec::ExecRequest;
use meshspec_twin::mesh::dataplane::{
    CERTIFICATE_VERIFY_FAILED_BODY, CONNECTION_TERMINATION_BODY, CONNECT_TIMEOUT_BODY,
};
use meshspec_twin::standin::{flags, StandIn, StandInOptions};
use serde_json::Value;

use mesh::seed::{count, remote_kubeconfig, render, Root, ISTIO_VERSION};
use support::eventually;

/// One stand-in and the kubeconfig it wrote.
struct K3s {
    standin: StandIn,
    name: String,
    ip: String,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    istio: &'static str,
    network: &'static str,
    version: &'static str,
}

async fn start(dir: &Path, name: &str, ip: &str, cluster_cidr: &str, service_cidr: &str) -> Result<StandIn> {
    let kubeconfig = dir.join(format!("{name}.yaml"));
    let args: Vec<String> = [
        "--snapshotter=native",
        "--bind-address",
        ip,
        "--node-ip",
        ip,
        "--node-name",
        name,
        "--cluster-cidr",
        cluster_cidr,
        "--service-cidr",
        service_cidr,
        "--disable",
        "traefik",
        "--write-kubeconfig",
        kubeconfig.to_str().context("path")?,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let f = flags::parse(&args, |_| None).map_err(|e| anyhow!(e))?;
    let s = StandIn::start(f, StandInOptions::default()).await?;
    s.wait_ready(Duration::from_secs(30)).await?;
    Ok(s)
}

impl K3s {
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        support::kubectl_at(&self.kubeconfig, self.cache.path(), self.cache.path(), args, stdin).await
    }

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all, None).await?)?)
    }

    async fn apply(&self, manifest: &str) -> Result<()> {
        self.kubectl(&["apply", "-f", "-"], Some(manifest)).await.map(|_| ())
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLUSTER_NAME", self.name.clone()),
            ("NETWORK", self.network.to_owned()),
            ("ISTIO_VERSION", ISTIO_VERSION.to_owned()),
            ("MESH_ID", "mesh1".to_owned()),
            ("ISTIO_CLUSTER", self.istio.to_owned()),
            ("SAMPLE_VERSION", self.version.to_owned()),
        ]
    }

    /// The server CA as the kubeconfig carries it (base64).
    fn ca_data(&self) -> Result<String> {
        let kc: serde_yaml::Value = serde_yaml::from_str(&self.standin.kubeconfig)?;
        kc["clusters"][0]["cluster"]["certificate-authority-data"].as_str().map(str::to_owned).context("no CA data")
    }

    async fn ready_pod(&self, ns: &str, selector: &str) -> Result<Value> {
        eventually(&format!("a Ready pod {selector} in {}/{ns}", self.name), || async {
            let pods = self.json(&["get", "pods", "-n", ns, "-l", selector]).await?;
            let items = pods["items"].as_array().cloned().unwrap_or_default();
            let ready = |p: &&Value| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            };
            Ok(items.iter().find(ready).cloned().ok_or_else(|| format!("{} pods, none Ready", items.len())))
        })
        .await
    }

    /// `n` curls from the sleep pod to helloworld (or `url`): stdout, or the error.
    async fn curls(&self, sleep: &str, url: &str, n: usize) -> Result<BTreeMap<String, usize>> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let req = ExecRequest {
                namespace: "sample".into(),
                pod: sleep.to_owned(),
                container: Some("sleep".into()),
                command: ["curl", "-sS", url].iter().map(|s| s.to_string()).collect(),
                stdin: false,
                tty: false,
            };
            let out = self.standin.mesh().exec(&self.name, req).await.map_err(|e| anyhow!("exec: {e}"))?;
            let text = if out.exit_code == 0 {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                format!("exit {}: {}", out.exit_code, String::from_utf8_lossy(&out.stderr))
            };
            *seen.entry(text).or_default() += 1;
        }
        Ok(seen)
    }

    fn eastwest_connections(&self) -> u64 {
        self.standin.node_port_connections.count("istio-ingress", "istio-eastwestgateway", 15443)
    }
}

/// Two stand-ins on `ips` with disjoint networks, the seed's mesh installed.
async fn provision(dir: &Path, ips: [&str; 2], different_roots: bool) -> Result<[K3s; 2]> {
    let specs = [
        ("k3s-1", "10.42.0.0/16", "10.43.0.0/16", "cluster1", "network1", "v1"),
        ("k3s-2", "10.44.0.0/16", "10.45.0.0/16", "cluster2", "network2", "v2"),
    ];
    let mut out = Vec::new();
    for (i, (name, pods, services, istio, network, version)) in specs.into_iter().enumerate() {
        let standin = start(dir, name, ips[i], pods, services).await?;
        out.push(K3s {
            kubeconfig: standin.kubeconfig_path.clone(),
            standin,
            name: name.into(),
            ip: ips[i].into(),
            cache: tempfile::tempdir()?,
            istio,
            network,
            version,
        });
    }
    let [one, two]: [K3s; 2] = out.try_into().map_err(|_| anyhow!("two clusters"))?;
    let clusters = [one, two];
    let shared = Root::new()?;
    for c in &clusters {
        let own;
        let root = if different_roots {
            own = Root::new()?;
            &own
        } else {
            &shared
        };
        let ca = root.cacerts()?;
        let mut v = c.vars();
        v.extend([
            ("CA_CERT_PEM", ca.ca_cert_pem),
            ("CA_KEY_PEM", ca.ca_key_pem),
            ("ROOT_CERT_PEM", ca.root_pem),
            ("CERT_CHAIN_PEM", ca.chain_pem),
        ]);
        c.apply(&render("cacerts.yaml", &v)?).await?;
    }
    for c in &clusters {
        c.apply(&render("istiod.yaml", &c.vars())?).await?;
    }
    for c in &clusters {
        // No ingress gateway: its status port (15021) is the east-west gateway's too,
        // and ServiceLB serves a port once per node (see the test below).
        c.apply(r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-ingress"}}"#).await?;
        for file in ["eastwest-gateway.yaml", "reader-token.yaml", "samples.yaml"] {
            c.apply(&render(file, &c.vars())?).await?;
        }
    }
    let mut tokens = Vec::new();
    for c in &clusters {
        tokens.push(
            eventually(&format!("the reader token of {}", c.name), || async {
                let s = c
                    .json(&[
                        "get",
                        "secret",
                        "istio-reader-service-account-istio-remote-secret-token",
                        "-n",
                        "istio-system",
                    ])
                    .await?;
                Ok(match s["data"]["token"].as_str() {
                    Some(t) => Ok(String::from_utf8(STANDARD.decode(t)?)?),
                    None => Err(format!("data {}", s["data"])),
                })
            })
            .await?,
        );
    }
    for (i, c) in clusters.iter().enumerate() {
        let peer = &clusters[1 - i];
        let server = format!("https://{}:6443", peer.ip);
        let kubeconfig = remote_kubeconfig(peer.istio, &server, &peer.ca_data()?, &tokens[1 - i]);
        let mut v = c.vars();
        v.extend([
            ("REMOTE_CLUSTER", peer.istio.to_owned()),
            ("REMOTE_SECRET_KEY", peer.istio.to_owned()),
            ("REMOTE_KUBECONFIG", kubeconfig),
        ]);
        c.apply(&render("remote-secret.yaml", &v)?).await?;
    }
    Ok(clusters)
}

/// Curls until both versions answer (istiod's remote view and the gateway
/// address take a moment); returns the last batch.
async fn both_versions(c: &K3s, sleep: &str) -> Result<BTreeMap<String, usize>> {
    eventually("both helloworld versions through cluster1's sleep", || async {
        let seen = c.curls(sleep, "helloworld.sample:5000/hello", 20).await?;
        let (v1, v2) = (count(&seen, "Hello version: v1"), count(&seen, "Hello version: v2"));
        Ok(if v1 > 0 && v2 > 0 && v1 + v2 == 20 { Ok(seen) } else { Err(format!("{seen:?}")) })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_standins_answer_across_a_real_network_and_fail_as_envoy_says() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let [one, two] = provision(dir.path(), ["127.0.0.2", "127.0.0.3"], false).await?;
    // The kubeconfigs are K3s': client certificates, the bind address as server.
    let kc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&one.kubeconfig)?)?;
    assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://127.0.0.2:6443");
    assert!(kc["users"][0]["user"]["client-certificate-data"].is_string());
    // ServiceLB gave the east-west gateway the node's address.
    eventually("the east-west gateway's ingress", || async {
        let svc = two.json(&["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
        let ingress = svc.pointer("/status/loadBalancer/ingress").cloned().unwrap_or(Value::Null);
        Ok(if ingress == serde_json::json!([{"ip": "127.0.0.3"}]) { Ok(()) } else { Err(ingress.to_string()) })
    })
    .await?;
    // A second LoadBalancer wanting a port the node already serves (15021)
    // gets no address, as its svclb pod would stay Pending on K3s.
    two.apply(&render("ingress-gateway.yaml", &two.vars())?).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ingress_gw = two.json(&["get", "svc", "istio-ingressgateway", "-n", "istio-ingress"]).await?;
    assert!(ingress_gw.pointer("/status/loadBalancer/ingress").is_none(), "{ingress_gw}");
    // Disjoint pod networks.
    let local = one.ready_pod("sample", "app=helloworld").await?;
    let remote = two.ready_pod("sample", "app=helloworld").await?;
    let remote_ip = remote["status"]["podIP"].as_str().unwrap_or_default().to_owned();
    assert!(local["status"]["podIP"].as_str().unwrap_or_default().starts_with("10.42."), "{local}");
    assert!(remote_ip.starts_with("10.44."), "{remote_ip}");
    // Cluster IPs from each --service-cidr, the API server's the first address.
    let kubernetes = one.json(&["get", "svc", "kubernetes", "-n", "default"]).await?;
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.43.0.1");
    let ew = two.json(&["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
    assert!(ew["spec"]["clusterIP"].as_str().unwrap_or_default().starts_with("10.45."), "{}", ew["spec"]);

    let sleep = one.ready_pod("sample", "app=sleep").await?;
    let sleep = sleep["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let before = two.eastwest_connections();
    let seen = both_versions(&one, &sleep).await?;
    let v2 = count(&seen, "Hello version: v2") as u64;
    let crossed = two.eastwest_connections() - before;
    assert!(crossed >= v2, "each v2 answer crossed a TCP connection to 127.0.0.3:15443: {crossed} < {v2}");
    assert_eq!(one.eastwest_connections(), 0, "nothing went to cluster1's gateway: {seen:?}");

    // A remote pod IP directly: no route to it from this node.
    let direct = one.curls(&sleep, &format!("{remote_ip}:5000/hello"), 1).await?;
    assert!(direct.keys().all(|k| k.starts_with("exit 28")), "{direct:?}");

    // The mesh hands out the remote pod IP (the gateway Service loses its
    // network label): Envoy's connect timeout, nothing leaves over TCP.
    two.kubectl(&["label", "svc", "istio-eastwestgateway", "-n", "istio-ingress", "topology.istio.io/network-"], None)
        .await?;
    let crossed_before = two.eastwest_connections();
    let seen = eventually("remote pod IPs time out", || async {
        let seen = one.curls(&sleep, "helloworld.sample:5000/hello", 20).await?;
        let timeouts = seen.get(CONNECT_TIMEOUT_BODY).copied().unwrap_or(0);
        Ok(if timeouts > 0 && count(&seen, "Hello version: v2") == 0 { Ok(seen) } else { Err(format!("{seen:?}")) })
    })
    .await?;
    assert_eq!(
        count(&seen, "Hello version: v1") + seen.get(CONNECT_TIMEOUT_BODY).copied().unwrap_or(0),
        20,
        "{seen:?}"
    );
    let _ = crossed_before;
    two.kubectl(
        &["label", "svc", "istio-eastwestgateway", "-n", "istio-ingress", "topology.istio.io/network=network2"],
        None,
    )
    .await?;
    both_versions(&one, &sleep).await?;

    // The Gateway no longer passes helloworld's SNI through: the gateway closes.
    let patch = r#"{"spec":{"servers":[{"port":{"number":15443,"name":"tls","protocol":"TLS"},"tls":{"mode":"AUTO_PASSTHROUGH"},"hosts":["*.example.com"]}]}}"#;
    two.kubectl(
        &[
            "patch",
            "gateways.networking.istio.io",
            "cross-network-gateway",
            "-n",
            "istio-ingress",
            "--type",
            "merge",
            "-p",
            patch,
        ],
        None,
    )
    .await?;
    let seen = eventually("connection termination across networks", || async {
        let seen = one.curls(&sleep, "helloworld.sample:5000/hello", 20).await?;
        let terminated = seen.get(CONNECTION_TERMINATION_BODY).copied().unwrap_or(0);
        Ok(if terminated > 0 && count(&seen, "Hello version: v2") == 0 { Ok(seen) } else { Err(format!("{seen:?}")) })
    })
    .await?;
    assert_eq!(
        count(&seen, "Hello version: v1") + seen.get(CONNECTION_TERMINATION_BODY).copied().unwrap_or(0),
        20,
        "{seen:?}"
    );
    one.standin.shutdown().await;
    two.standin.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standins_with_different_roots_fail_certificate_verification() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let [one, two] = provision(dir.path(), ["127.0.0.5", "127.0.0.6"], true).await?;
    let sleep = one.ready_pod("sample", "app=sleep").await?;
    let sleep = sleep["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let seen = eventually("certificate failures across networks", || async {
        let seen = one.curls(&sleep, "helloworld.sample:5000/hello", 20).await?;
        let failed = seen.get(CERTIFICATE_VERIFY_FAILED_BODY).copied().unwrap_or(0);
        // Once the remote view has converged: only local answers and TLS failures.
        let settled = failed + count(&seen, "Hello version: v1") == 20;
        Ok(if failed > 0 && settled { Ok(seen) } else { Err(format!("{seen:?}")) })
    })
    .await?;
    let (v1, failed) =
        (count(&seen, "Hello version: v1"), seen.get(CERTIFICATE_VERIFY_FAILED_BODY).copied().unwrap_or(0));
    assert_eq!(v1 + failed, 20, "local calls work, cross-network ones fail TLS: {seen:?}");
    assert!(two.eastwest_connections() > 0, "the failing handshakes did reach the peer's gateway");
    one.standin.shutdown().await;
    two.standin.shutdown().await;
    Ok(())
}
