//! One twin cluster standing in for K3s at K3s' interface, so that a
//! container image can run it in place of rancher/k3s: `k3s server` flags
//! (`flags`), the kube API server on `--bind-address`:`--https-listen-port`
//! over TLS with K3s' SANs and client-certificate authentication, the admin
//! kubeconfig K3s writes (`kubeconfig`), the node as K3s registers it
//! (`node`), ServiceLB with real listeners (`servicelb`), K3s-shaped log
//! lines ending with the one testcontainers waits for, and a clean stop on
//! SIGTERM/SIGINT. Inside: the twin's controllers, kubelet and mesh, as in
//! an EKS cluster of the twin.
//!
//! Public API the k3s target relies on: [`serve`] (the CLI), [`StandIn`]
//! (in-process: start, kubeconfig path, API URL, shutdown), [`READY_LINE`].

pub mod flags;
pub mod forward;
pub mod kubeconfig;
pub mod node;
pub mod passthrough;
pub mod servicelb;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

pub use flags::ServerFlags;
pub use node::K3S_VERSION;

use crate::auth::ClusterAuth;
use crate::aws::{AwsConfig, AwsState, Clock, Delays};
use crate::kube::{ApiServer, ApiServerConfig, Store, TwinCa};
use crate::mesh::Mesh;
use crate::programs::network::{Node, NodeSubnet, PodNetwork};
use crate::programs::{deployments, endpoints, kubelet, namespaces, replicasets, runtime, tokens, Cluster};

/// What testcontainers' K3s module waits for on stderr: flannel's kube subnet
/// manager, embedded in k3s, once its node informer has synced
/// (flannel-io/flannel pkg/subnet/kube/kube.go, "Node controller sync successful").
pub const READY_LINE: &str = "Node controller sync successful";

/// How to run a stand-in besides its flags.
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// Simulated seconds per wall-clock second (the twin's compression).
    pub time_scale: f64,
    /// The Istio release whose CRDs the API serves.
    pub istio_version: String,
}

impl Default for StandInOptions {
    fn default() -> Self {
        StandInOptions { time_scale: Delays::DEFAULT_SCALE, istio_version: "1.20.2".into() }
    }
}

/// A running stand-in. [`StandIn::shutdown`] (or drop) stops it.
pub struct StandIn {
    /// `https://<bind address or 127.0.0.1>:<port>`, as in the kubeconfig.
    pub server_url: String,
    /// Where the API server listens.
    pub addr: SocketAddr,
    pub kubeconfig_path: PathBuf,
    /// The kubeconfig's text (also written to `kubeconfig_path`).
    pub kubeconfig: String,
    pub node: Arc<node::K3sNode>,
    /// Connections accepted by ServiceLB's listeners, per Service port
    /// (`namespace/name:port`): evidence that traffic came over the network.
    pub node_port_connections: Arc<forward::ConnectionLog>,
    cluster: Arc<Cluster>,
    mesh: Arc<Mesh>,
    api: ApiServer,
    programs: Vec<JoinHandle<()>>,
}

/// This host's name, as k3s takes it for the node name (os.Hostname, lower case).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node IP without `--node-ip`: k3s takes the default route's interface
/// address; the stand-in takes the bind address if one is given, else what
/// the hostname resolves to (a container's address in Docker), else loopback.
fn default_node_ip(f: &ServerFlags, host: &str) -> Ipv4Addr {
    if let Some(IpAddr::V4(ip)) = f.bind_address.filter(|a| !a.is_unspecified()) {
        return ip;
    }
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| {
            addrs.find_map(|a| match a.ip() {
                IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
                _ => None,
            })
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

/// The API server certificate's names (k3s pkg/cli/server/server.go and
/// pkg/daemons/control/deps/deps.go genServerCerts): the in-cluster
/// `kubernetes` names, then `--tls-san`, 127.0.0.1, ::1, localhost, the node
/// name, the node IPs, the advertise address and the API server's service IP
/// (the service CIDR's first address).
pub fn api_sans(f: &ServerFlags, node_name: &str, node_ips: &[Ipv4Addr], advertise: Option<Ipv4Addr>) -> Vec<String> {
    let mut names: Vec<String> =
        ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    names.extend(f.tls_san.iter().cloned());
    names.extend(["127.0.0.1", "::1", "localhost", node_name].map(str::to_owned));
    names.extend(node_ips.iter().map(Ipv4Addr::to_string));
    names.extend(advertise.map(|a| a.to_string()));
    names.push(f.service_cidr.at(1).to_string());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// A logrus text line as k3s prints to a non-terminal stderr.
fn log_info(msg: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    eprintln!("time=\"{now}\" level=info msg=\"{}\"", msg.replace('"', "\\\""));
}

/// A klog line (flannel's format, embedded in k3s' output).
fn log_klog(file_line: &str, msg: &str) {
    let now = chrono::Utc::now().format("%m%d %H:%M:%S%.6f");
    eprintln!("I{now}   {:>5} {file_line}] {msg}", std::process::id());
}

impl StandIn {
    /// Starts the cluster: API server, node, controllers, mesh, ServiceLB; writes the kubeconfig.
    pub async fn start(f: ServerFlags, opts: StandInOptions) -> anyhow::Result<StandIn> {
        let istio = crate::istio::release(&opts.istio_version).map_err(anyhow::Error::msg)?;
        let host = hostname();
        let node_name = f.node_name.clone().unwrap_or_else(|| host.clone());
        let internal_ip = f.node_ip.first().copied().unwrap_or_else(|| default_node_ip(&f, &host));
        let external_ip = f.node_external_ip.first().copied();
        // k3s: advertise-address, else node-external-ip, else node-ip.
        let advertise = f.advertise_address.or(external_ip).or(Some(internal_ip));
        let mut node_ips = vec![internal_ip];
        node_ips.extend(f.node_ip.iter().skip(1));
        // kube-controller-manager's node IPAM: the first node gets the first /24 of the cluster CIDR.
        let pod_cidr = flags::Cidr { network: f.cluster_cidr.network, prefix: f.cluster_cidr.prefix.max(24) };
        let node = Arc::new(node::K3sNode {
            name: node_name.clone(),
            internal_ip,
            external_ip,
            pod_cidr: pod_cidr.to_string(),
        });

        // Two CAs as k3s has them (deps.go: k3s-server-ca signs serving
        // certificates, k3s-client-ca client ones).
        let unix = chrono::Utc::now().timestamp();
        let server_ca = TwinCa::new(&format!("k3s-server-ca@{unix}")).context("creating the server CA")?;
        let client_ca = TwinCa::new(&format!("k3s-client-ca@{unix}")).context("creating the client CA")?;
        let sans = api_sans(&f, &node_name, &node_ips, advertise);
        let san_refs: Vec<&str> = sans.iter().map(String::as_str).collect();
        let tls = server_ca
            .server_config_with_client_ca(&san_refs, &client_ca)
            .context("issuing the API server certificate")?;
        let admin = client_ca
            .issue_client_cert("system:admin", Some(crate::kube::authz::MASTERS))
            .context("issuing the admin certificate")?;

        let bind_ip = f.bind_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let bind = SocketAddr::new(bind_ip, f.https_listen_port);
        // The kubeconfig's server: the bind address, else loopback (server.go writeKubeConfig).
        let server_host = match f.bind_address.filter(|a| !a.is_unspecified()) {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            Some(a) => a.to_string(),
            None => "127.0.0.1".into(),
        };

        // The twin's programs are written against an AWS account (EKS tokens,
        // NLBs, VPC DNS). A K3s node has none: a private, empty AwsState makes
        // every such question answer "nothing there", and nothing serves it.
        let clock = Clock::new(opts.time_scale);
        let aws = AwsState::new(AwsConfig { clock, ..AwsConfig::default() });
        let store = Store::with_service_range(
            crate::kube::Catalog::kubernetes(),
            crate::kube::store::DEFAULT_LOG_CAPACITY,
            f.service_cidr.network,
            f.service_cidr.prefix,
        );
        for crd in istio.networking_crds() {
            store
                .create(&crate::kube::Resource::customresourcedefinitions(), None, crd)
                .map_err(|e| anyhow::anyhow!("installing Istio's CRDs: {e:?}"))?;
        }
        let auth = Arc::new(ClusterAuth::new(&node_name, crate::aws_api::in_process(&aws)));
        let mut api_cfg = ApiServerConfig::eks(28);
        // /version as k3s answers it; `minor` stays the twin's choice for the
        // kubectl dispatcher (see ApiServerConfig::version_minor).
        api_cfg.git_version = K3S_VERSION.into();
        let api = ApiServer::start_at(bind, store.clone(), tls, auth.clone(), api_cfg)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        let server_url = format!("https://{server_host}:{}", api.addr.port());
        let client_chain = TwinCa::bundle(&[&admin.cert_pem, &client_ca.ca_pem()]);
        let kubeconfig = kubeconfig::render(&server_url, &server_ca.ca_pem(), &client_chain, &admin.key_pem);
        let kubeconfig_path = f.write_kubeconfig.clone().unwrap_or_else(|| PathBuf::from(kubeconfig::DEFAULT_PATH));
        let mode = f.write_kubeconfig_mode.unwrap_or(kubeconfig::DEFAULT_MODE);
        kubeconfig::write(&kubeconfig_path, &kubeconfig, mode)
            .with_context(|| format!("writing the kubeconfig {}", kubeconfig_path.display()))?;

        let vpc_id = format!("k3s-{node_name}");
        let cluster = Arc::new(Cluster::new(
            &node_name,
            "",
            &vpc_id,
            store,
            crate::aws_api::in_process(&aws),
            clock,
            Delays::default(),
            auth,
            server_ca.ca_pem(),
        ));
        let subnet = NodeSubnet::parse(&node_name, "", &pod_cidr.to_string())
            .with_context(|| format!("the node's pod CIDR {pod_cidr}"))?;
        cluster.fix_network(PodNetwork::with_nodes(vec![Node { name: node_name.clone(), ip: internal_ip, subnet }]));

        // No DNS server: gateways on K3s are addresses, never names to resolve.
        let mesh = Mesh::new(SocketAddr::from(([127, 0, 0, 1], 9)), aws);
        // The clusters of this mesh are other processes: a sidecar's upstream to an
        // address of the node's own networks leaves over TCP. The cluster's pod and
        // service networks are overlays: never on the wire, and neither are other
        // clusters' (no route to them: a remote pod IP times out as on EKS).
        // The routes are read at each connection: a container is joined to
        // further networks after it started (the k3s target's shared network).
        let (pods, services) = (f.cluster_cidr, f.service_cidr);
        mesh.enable_real_network(Arc::new(move |ip| {
            !pods.contains(ip)
                && !services.contains(ip)
                && crate::mesh::network::in_networks(&crate::mesh::network::directly_connected(), ip)
        }));
        let mut programs = mesh.attach(cluster.clone(), &api);
        programs.extend([
            runtime::spawn(cluster.clone(), node::NodeRegistrar(node.clone())),
            runtime::spawn(cluster.clone(), namespaces::NamespaceController),
            runtime::spawn(cluster.clone(), tokens::TokenController),
            runtime::spawn(cluster.clone(), deployments::DeploymentController),
            runtime::spawn(cluster.clone(), replicasets::ReplicaSetController::default()),
            runtime::spawn(cluster.clone(), kubelet::Kubelet::new()),
            runtime::spawn(cluster.clone(), endpoints::EndpointsController),
        ]);
        let node_port_connections = Arc::new(forward::ConnectionLog::default());
        if !f.disables("servicelb") {
            // svclb's hostPorts take every address of the node: 0.0.0.0, unless
            // --bind-address pins this node to an address (several stand-ins
            // sharing one host's loopback), then the node's own addresses.
            let listen_on = match f.bind_address.filter(|a| !a.is_unspecified()) {
                Some(_) => {
                    let mut ips = vec![internal_ip];
                    ips.extend(external_ip.filter(|e| *e != internal_ip));
                    ips
                }
                None => vec![Ipv4Addr::UNSPECIFIED],
            };
            let fwd = Arc::new(forward::NodeForward::new(&mesh, &node_name, clock, node_port_connections.clone()));
            programs.push(runtime::spawn(cluster.clone(), servicelb::ServiceLb::new(&node_name, listen_on, fwd)));
        }
        Ok(StandIn {
            server_url,
            addr: api.addr,
            kubeconfig_path,
            kubeconfig,
            node,
            node_port_connections,
            cluster,
            mesh,
            api,
            programs,
        })
    }

    /// The mesh in this cluster (e.g. to exec in a pod without the API).
    pub fn mesh(&self) -> &Arc<Mesh> {
        &self.mesh
    }

    /// Waits until the API server accepts connections and the node is registered.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let connect_to = match self.addr.ip() {
            ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], self.addr.port())),
            _ => self.addr,
        };
        loop {
            let api = tokio::net::TcpStream::connect(connect_to).await.is_ok();
            let node = self.cluster.get(&crate::kube::Resource::nodes(), None, &self.node.name).is_some();
            if api && node {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("not ready after {within:?}: API server answering: {api}, node registered: {node}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the programs and closes every listener (API server, ServiceLB ports).
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        self.mesh.detach(&self.cluster.eks_name);
        self.api.shutdown();
        let programs = std::mem::take(&mut self.programs);
        for p in &programs {
            p.abort();
        }
        for p in programs {
            // Aborting the ServiceLB task drops its listeners.
            let _ = p.await;
        }
        let addr = self.addr;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let probe = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        while tokio::net::TcpStream::connect(probe).await.is_ok() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.mesh.detach(&self.cluster.eks_name);
        self.api.shutdown();
        for p in &self.programs {
            p.abort();
        }
    }
}

/// `meshspec k3s serve server [FLAGS]`: runs until SIGTERM or SIGINT, then
/// exits 0. `args` starts with the k3s subcommand (`server`). Returns the
/// process exit code; errors are one line on stderr.
pub async fn serve(args: Vec<String>) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let Some((sub, rest)) = args.split_first() else {
        eprintln!("error: missing the k3s subcommand (only `server` is supported)");
        return 1;
    };
    if sub != "server" {
        eprintln!("error: unsupported k3s subcommand {sub:?} (only `server` is supported)");
        return 1;
    }
    let flags = match flags::parse(rest, |k| std::env::var(k).ok()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // Installed before anything starts, so a signal during start-up is not lost.
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("error: cannot install the signal handlers");
            return 1;
        }
    };
    log_info(&format!("Starting k3s {K3S_VERSION} (meshspec twin stand-in)"));
    let standin = tokio::select! {
        s = StandIn::start(flags.clone(), StandInOptions::default()) => s,
        _ = term.recv() => return 0,
        _ = int.recv() => return 0,
    };
    let standin = match standin {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            return 1;
        }
    };
    log_info(&format!(
        "Running kube-apiserver --advertise-port={} --bind-address={} --secure-port={} --service-cluster-ip-range={}",
        flags.https_listen_port,
        standin.addr.ip(),
        standin.addr.port(),
        flags.service_cidr
    ));
    log_info(&format!("Wrote kubeconfig {}", standin.kubeconfig_path.display()));
    let ready = tokio::select! {
        r = standin.wait_ready(Duration::from_secs(60)) => r,
        _ = term.recv() => { standin.shutdown().await; return 0; }
        _ = int.recv() => { standin.shutdown().await; return 0; }
    };
    if let Err(e) = ready {
        eprintln!("error: {e}");
        standin.shutdown().await;
        return 1;
    }
    log_info("k3s is up and running");
    log_klog("kube.go:139", "Waiting 10m0s for node controller to sync");
    log_klog("kube.go:146", READY_LINE);
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log_info(&format!("Received {which}, shutting down"));
    standin.shutdown().await;
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_certificate_carries_k3s_sans() {
        let f = flags::parse(
            &["--tls-san".into(), "k3s.example".into(), "--service-cidr".into(), "10.45.0.0/16".into()],
            |_| None,
        )
        .expect("flags");
        let sans = api_sans(&f, "node-a", &[Ipv4Addr::new(127, 0, 0, 2)], Some(Ipv4Addr::new(172, 18, 0, 2)));
        for want in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "k3s.example",
            "127.0.0.1",
            "::1",
            "localhost",
            "node-a",
            "127.0.0.2",
            "172.18.0.2",
            "10.45.0.1",
        ] {
            assert!(sans.iter().any(|s| s == want), "{want} missing from {sans:?}");
        }
        assert_eq!(sans.len(), sans.iter().collect::<std::collections::HashSet<_>>().len(), "no duplicates");
    }
}
