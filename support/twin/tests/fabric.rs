//! The network between the twin's processes, over real TCP: one cluster of
//! the twin (a K3s stand-in: API server, kubelet, mesh) serves its VPC
//! ingress; an AwsState with NLB addresses from a loopback range stands for
//! the AWS process, with the NLB data plane and the health checker over the
//! fabric. Clients connect to the NLB's addresses as they would to AWS.

#[allow(dead_code)]
mod mesh {
    pub mod seed;
}
mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use meshspec_twin::aws::{AwsConfig, AwsState, Clock, Delays, NewLoadBalancer, NewTargetGroup};
use meshspec_twin::mesh::identity::WorkloadCa;
use meshspec_twin::processes::nlb::NlbDataPlane;
use meshspec_twin::processes::vpc::{self, FabricError, IngressOf};
use meshspec_twin::programs::health_checker;
use meshspec_twin::standin::{flags, StandIn, StandInOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mesh::seed::{render, Root, ISTIO_VERSION};
use support::eventually;

/// The SNI a sidecar sends for helloworld's port 5000 (Istio's outbound cluster name).
const HELLOWORLD_SNI: &str = "outbound_.5000_._.helloworld.sample.svc.cluster.local";

/// Where the samples' cross-network Gateway and the east-west gateway live.
const ISTIO_INGRESS_NAMESPACE: &str =
    r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-ingress"}}"#;

/// One cluster of the twin in this process, and the kubeconfig it wrote.
struct Cluster {
    standin: StandIn,
    name: String,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Cluster {
    async fn start(dir: &Path, name: &str, ip: &str) -> Result<Cluster> {
        let kubeconfig = dir.join(format!("{name}.yaml"));
        let args: Vec<String> = [
            "--bind-address",
            ip,
            "--node-ip",
            ip,
            "--node-name",
            name,
            // The NLB reaches the pods through the fabric, not through node ports.
            "--disable",
            "servicelb",
            "--write-kubeconfig",
            kubeconfig.to_str().context("path")?,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = flags::parse(&args, |_| None).map_err(|e| anyhow!(e))?;
        let standin = StandIn::start(f, StandInOptions::default()).await?;
        standin.wait_ready(Duration::from_secs(30)).await?;
        Ok(Cluster { standin, name: name.into(), kubeconfig, cache: tempfile::tempdir()? })
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CLUSTER_NAME", self.name.clone()),
            ("NETWORK", "network1".to_owned()),
            ("ISTIO_VERSION", ISTIO_VERSION.to_owned()),
            ("MESH_ID", "mesh1".to_owned()),
            ("ISTIO_CLUSTER", "cluster1".to_owned()),
            ("SAMPLE_VERSION", "v1".to_owned()),
        ]
    }

    async fn apply(&self, manifest: &str) -> Result<()> {
        support::kubectl_at(
            &self.kubeconfig,
            self.cache.path(),
            self.cache.path(),
            &["apply", "-f", "-"],
            Some(manifest),
        )
        .await
        .map(|_| ())
    }

    async fn apply_fixture(&self, file: &str, extra: &[(&'static str, String)]) -> Result<()> {
        let mut v = self.vars();
        v.extend(extra.iter().cloned());
        self.apply(&render(file, &v)?).await
    }

    /// The IP of a Ready pod matching `selector` in `ns`.
    async fn ready_pod_ip(&self, ns: &str, selector: &str) -> Result<Ipv4Addr> {
        eventually(&format!("a Ready pod {selector} in {ns}"), || async {
            let out = support::kubectl_at(
                &self.kubeconfig,
                self.cache.path(),
                self.cache.path(),
                &["get", "pods", "-n", ns, "-l", selector, "-o", "json"],
                None,
            )
            .await?;
            let pods: Value = serde_json::from_str(&out)?;
            let ready = pods["items"].as_array().into_iter().flatten().find(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            Ok(match ready.and_then(|p| p["status"]["podIP"].as_str()?.parse().ok()) {
                Some(ip) => Ok(ip),
                None => Err(format!("pods: {}", pods["items"].as_array().map_or(0, Vec::len))),
            })
        })
        .await
    }
}

/// The AWS side: NLB nodes on `range`, every delay but the health checks' at zero.
fn aws_with_range(range: &str) -> Result<(AwsState, String, Vec<String>)> {
    let delays = Delays { nlb_provision: Duration::ZERO, target_registration: Duration::ZERO, ..Delays::default() };
    let aws = AwsState::new(AwsConfig {
        clock: Clock::new(Delays::DEFAULT_SCALE),
        delays,
        nlb_address_range: Some(range.parse().map_err(|e| anyhow!("{range}: {e}"))?),
        ..AwsConfig::default()
    });
    let vpc = aws.create_vpc("10.1.0.0/16", vec![])?;
    let subnets = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, z)| aws.create_subnet(&vpc, &format!("10.1.{}.0/24", 48 + i), &format!("us-west-2{z}"), vec![]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((aws, vpc, subnets))
}

/// An internet-facing NLB whose listener on `port` forwards to a new target
/// group holding `targets`; returns (NLB ARN, DNS name, target group ARN).
fn nlb(
    aws: &AwsState,
    vpc: &str,
    subnets: &[String],
    name: &str,
    port: u16,
    targets: &[(Ipv4Addr, u16)],
) -> Result<(String, String, String)> {
    let lb = aws.create_load_balancer(NewLoadBalancer {
        name: name.into(),
        scheme: "internet-facing".into(),
        subnet_ids: subnets.to_vec(),
        ..Default::default()
    })?;
    let tg_port = targets.first().map_or(port, |t| t.1);
    let tg = aws.create_target_group(NewTargetGroup {
        name: format!("{name}-{tg_port}"),
        port: tg_port,
        vpc_id: vpc.into(),
        ..Default::default()
    })?;
    aws.create_listener(&lb.arn, port, &tg, vec![])?;
    let targets: Vec<(String, u16)> = targets.iter().map(|(ip, p)| (ip.to_string(), *p)).collect();
    aws.register_targets(&tg, &targets)?;
    Ok((lb.arn, lb.dns_name, tg))
}

/// The health of the target group's only target, as DescribeTargetHealth shows it.
fn health(aws: &AwsState, lb: &str) -> String {
    aws.network_load_balancer(lb)
        .and_then(|n| Some(n.listeners.first()?.forward.first()?.targets.first()?.state.to_owned()))
        .unwrap_or_else(|| "no target".into())
}

async fn wait_health(aws: &AwsState, lb: &str, want: &str) -> Result<()> {
    eventually(&format!("the target of {lb} {want}"), || async {
        let now = health(aws, lb);
        Ok(if now == want { Ok(()) } else { Err(now) })
    })
    .await
}

/// A plain HTTP GET over a fresh connection: the raw response.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: helloworld.sample:5000\r\n\r\n").as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The status line of the answer to a CONNECT sent by hand to the ingress,
/// and the connection after the answer's head.
async fn raw_connect(ingress: SocketAddr, target: SocketAddrV4) -> Result<(String, TcpStream)> {
    let mut conn = TcpStream::connect(ingress).await?;
    conn.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut byte)).await??;
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    Ok((text.lines().next().unwrap_or_default().to_owned(), conn))
}

/// Whether the peer closes the connection (within a few seconds) without sending more.
async fn closes(mut conn: TcpStream) -> bool {
    let mut rest = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(5), conn.read(&mut rest)).await, Ok(Ok(0)))
}

async fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// The ingress of the cluster's process, on an ephemeral loopback port.
async fn ingress(c: &Cluster, vpc: &str) -> Result<(SocketAddr, tokio::task::JoinHandle<()>, IngressOf)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task =
        vpc::serve_ingress(listener, c.standin.mesh().clone(), c.name.clone(), Clock::new(Delays::DEFAULT_SCALE));
    let vpc = vpc.to_owned();
    let ingress_of: IngressOf = Arc::new(move |v: &str| (v == vpc).then_some(addr));
    Ok((addr, task, ingress_of))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_nlb_reaches_a_pod_of_another_process_over_the_fabric() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), "fabric-http", "127.0.0.21").await?;
    // The samples without istiod: no sidecars, helloworld serves 5000 itself.
    cluster.apply(ISTIO_INGRESS_NAMESPACE).await?;
    cluster.apply_fixture("samples.yaml", &[]).await?;
    let pod = cluster.ready_pod_ip("sample", "app=helloworld").await?;

    let (aws, vpc_id, subnets) = aws_with_range("127.77.21.0/24")?;
    let (addr, ingress_task, ingress_of) = ingress(&cluster, &vpc_id).await?;
    let (lb, dns, _) = nlb(&aws, &vpc_id, &subnets, "hello", 8080, &[(pod, 5000)])?;
    // Registered where helloworld does not listen.
    let (closed_lb, _, _) = nlb(&aws, &vpc_id, &subnets, "closed", 8081, &[(pod, 5001)])?;
    let checker = tokio::spawn(health_checker::run_over_fabric(aws.clone(), ingress_of.clone()));
    let plane = NlbDataPlane::start(aws.clone(), ingress_of.clone());

    wait_health(&aws, &lb, "healthy").await?;
    // DNS answers the NLB's zone addresses from the range: one per zone.
    let zones = aws.resolve(&dns).context("the NLB's name resolves")?;
    assert_eq!(zones.len(), 2, "{zones:?}");
    assert!(zones.iter().all(|ip| ip.octets()[..3] == [127, 77, 21]), "{zones:?}");
    for ip in &zones {
        let at = SocketAddr::from((*ip, 8080));
        let answer = eventually(&format!("helloworld through {at}"), || async {
            Ok(match http_get(at, "/hello").await {
                Ok(text) if text.starts_with("HTTP/1.1 200") => Ok(text),
                Ok(text) => Err(text),
                Err(e) => Err(e.to_string()),
            })
        })
        .await?;
        assert!(answer.contains("Hello version: v1, instance: helloworld-v1-"), "{answer}");
    }

    // Nothing listens on 5001: the checks fail, the target turns unhealthy,
    // and the pod refuses a CONNECT there.
    wait_health(&aws, &closed_lb, "unhealthy").await?;
    let (status, conn) = raw_connect(addr, SocketAddrV4::new(pod, 5001)).await?;
    assert!(status.starts_with("HTTP/1.1 502"), "{status}");
    assert!(closes(conn).await, "the ingress closes after a 502");
    assert!(matches!(
        vpc::connect(addr, SocketAddrV4::new(pod, 5001), Duration::from_secs(5)).await,
        Err(FabricError::Refused)
    ));
    // On the port it listens on: a tunnel, in which the pod answers HTTP.
    let (status, mut conn) = raw_connect(addr, SocketAddrV4::new(pod, 5000)).await?;
    assert_eq!(status, "HTTP/1.1 200 OK");
    conn.write_all(b"GET /health HTTP/1.1\r\nhost: helloworld.sample:5000\r\n\r\n").await?;
    let mut health = String::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut health)).await??;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // No pod has this IP: nobody would answer the SYN.
    let nobody = SocketAddrV4::new(Ipv4Addr::new(10, 42, 200, 200), 5000);
    assert!(raw_connect(addr, nobody).await?.0.starts_with("HTTP/1.1 504"));
    assert!(matches!(vpc::connect(addr, nobody, Duration::from_secs(5)).await, Err(FabricError::TimedOut)));
    // The only target is unhealthy: the NLB fails open to it, and its refusal
    // resets the client's connection.
    let closed_zone = aws.network_load_balancer(&closed_lb).context("closed NLB")?.lb.zones[0].2;
    let answer = http_get(SocketAddr::from((closed_zone, 8081)), "/hello").await;
    assert!(matches!(&answer, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset), "a reset, not {answer:?}");

    // Deleting the NLB closes its listeners; the other NLB's stay.
    aws.delete_load_balancer(&lb)?;
    for ip in &zones {
        let at = SocketAddr::from((*ip, 8080));
        eventually(&format!("{at} closed"), || async {
            Ok(if refused(at).await { Ok(()) } else { Err("still accepting".to_owned()) })
        })
        .await?;
    }
    let listening = plane.listening();
    assert_eq!(listening.len(), 2, "the closed NLB's two zones: {listening:?}");
    assert!(listening.iter().all(|a| a.port() == 8081));

    // Shutdown leaves no listener behind.
    plane.shutdown().await;
    for a in listening {
        assert!(refused(SocketAddr::V4(a)).await, "{a} still listens after shutdown");
    }
    checker.abort();
    ingress_task.abort();
    let _ = ingress_task.await;
    assert!(refused(addr).await, "the ingress stops with its task");
    cluster.standin.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_through_the_nlb_reaches_the_gateway_passthrough_and_the_sidecar() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(dir.path(), "fabric-tls", "127.0.0.22").await?;
    let ca = Root::new()?.cacerts()?;
    cluster
        .apply_fixture(
            "cacerts.yaml",
            &[
                ("CA_CERT_PEM", ca.ca_cert_pem),
                ("CA_KEY_PEM", ca.ca_key_pem),
                ("ROOT_CERT_PEM", ca.root_pem),
                ("CERT_CHAIN_PEM", ca.chain_pem),
            ],
        )
        .await?;
    cluster.apply_fixture("istiod.yaml", &[]).await?;
    cluster.apply(ISTIO_INGRESS_NAMESPACE).await?;
    cluster.apply_fixture("eastwest-gateway.yaml", &[]).await?;
    cluster.apply_fixture("samples.yaml", &[]).await?;
    let gateway = cluster.ready_pod_ip("istio-ingress", "istio=eastwestgateway").await?;
    let hello = cluster.ready_pod_ip("sample", "app=helloworld").await?;

    let (aws, vpc_id, subnets) = aws_with_range("127.77.22.0/24")?;
    let (addr, ingress_task, ingress_of) = ingress(&cluster, &vpc_id).await?;
    let (lb, _, _) = nlb(&aws, &vpc_id, &subnets, "eastwest", 15443, &[(gateway, 15443)])?;
    let checker = tokio::spawn(health_checker::run_over_fabric(aws.clone(), ingress_of.clone()));
    let plane = NlbDataPlane::start(aws.clone(), ingress_of);
    // 15443 opens once the cross-network Gateway selects the gateway pod.
    wait_health(&aws, &lb, "healthy").await?;

    // A peer's sidecar: a workload certificate under the same root.
    let mesh_cluster = cluster.standin.mesh().cluster(&cluster.name).context("the cluster in its mesh")?;
    let workload_ca = WorkloadCa::in_use(&mesh_cluster).context("cacerts in place, read by istiod")?;
    let config = || -> Result<_> {
        let me = workload_ca.issue("spiffe://cluster.local/ns/sample/sa/sleep").context("a leaf")?;
        workload_ca.client_config(me).context("a client config")
    };
    let zone = aws.network_load_balancer(&lb).context("the NLB")?.lb.zones[0].2;
    let nlb_addr = SocketAddr::from((zone, 15443));
    let answer = eventually("helloworld through the NLB and the gateway's passthrough", || async {
        Ok(match mtls_get(nlb_addr, HELLOWORLD_SNI, config()?).await {
            Ok(text) if text.starts_with("HTTP/1.1 200") => Ok(text),
            Ok(text) => Err(text),
            Err(e) => Err(e.to_string()),
        })
    })
    .await?;
    assert!(answer.contains("Hello version: v1"), "{answer}");

    // An SNI the Gateway does not pass through: the gateway closes the connection.
    let other = mtls_get(nlb_addr, "outbound_.5000_._.nothing.example.com", config()?).await;
    assert!(other.is_err(), "no answer for a foreign SNI: {other:?}");

    // Straight to the pod through the fabric: its sidecar terminates the mTLS.
    let tunnel = vpc::connect(addr, SocketAddrV4::new(hello, 5000), Duration::from_secs(5)).await?;
    let direct = mtls_over(tunnel, HELLOWORLD_SNI, config()?).await?;
    assert!(direct.starts_with("HTTP/1.1 200") && direct.contains("Hello version: v1"), "{direct}");

    plane.shutdown().await;
    assert!(refused(nlb_addr).await);
    checker.abort();
    ingress_task.abort();
    cluster.standin.shutdown().await;
    Ok(())
}

/// mTLS with `sni` to `addr`, then `GET /hello`: the raw response.
async fn mtls_get(addr: SocketAddr, sni: &str, config: Arc<rustls::ClientConfig>) -> Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    mtls_over(tcp, sni, config).await
}

async fn mtls_over(tcp: TcpStream, sni: &str, config: Arc<rustls::ClientConfig>) -> Result<String> {
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned())?;
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
        tls.write_all(b"GET /hello HTTP/1.1\r\nhost: helloworld.sample:5000\r\n\r\n").await?;
        tls.flush().await?;
        let mut out = Vec::new();
        // The sidecar closes after its answer; a close without close_notify still ends the read.
        match tls.read_to_end(&mut out).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
            Err(e) => return Err(anyhow::Error::from(e)),
        }
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| anyhow!("no answer in 10 s"))?
}
