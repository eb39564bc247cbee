//! Two K3s clusters in containers, started with testcontainers-modules' K3s
//! module unchanged: each on a network of its own, both joined to one shared
//! network that plays the internet between the east-west gateways. Every
//! network and container is labelled with the run and written to the ledger
//! before it is made.
//!
//! K3s' own flags (k3s pkg/cli/cmds/server.go, v1.28.8+k3s1) do the rest:
//! `--node-external-ip` is the node's address on the shared network, which
//! ServiceLB gives LoadBalancer Services (the gateways) as their ingress, and
//! `--tls-san` puts it into the API server's certificate, so the peer's
//! istiod can reach the API there; `--cluster-cidr` and `--service-cidr` keep
//! the two clusters' networks apart; traefik is disabled because the ingress
//! gateway needs ports 80 and 443 of ServiceLB.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testcontainers::bollard::models::{EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig};
use testcontainers::bollard::models::{NetworkConnectRequest, NetworkCreateRequest};
use testcontainers::bollard::Docker;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};

use super::standin_image::ImageRef;
use super::{labels, name, LEDGER_CONTAINER, LEDGER_NETWORK};

/// The image the k3s target runs unless told: testcontainers-modules' pin.
pub const DEFAULT_IMAGE: &str = "rancher/k3s:v1.28.8-k3s1";

/// K3s' API port inside the container.
pub const API_PORT: u16 = 6443;

/// One cluster to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The topology's cluster name.
    pub cluster: String,
    pub pod_cidr: String,
    pub service_cidr: String,
}

/// A started cluster, as the rest of meshspec reaches it.
#[derive(Clone)]
pub struct Started {
    pub cluster: String,
    pub container: String,
    /// K3s' kubeconfig, its server rewritten to the API's port on this host.
    pub kubeconfig: String,
    /// The node's address on the shared network: its API and its gateways there.
    pub shared_ip: Ipv4Addr,
    /// The CA of the API server's certificate (PEM), from the kubeconfig.
    pub ca_pem: String,
}

/// Without the kubeconfig: it holds the admin's client key.
impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("cluster", &self.cluster)
            .field("container", &self.container)
            .field("shared_ip", &self.shared_ip)
            .finish_non_exhaustive()
    }
}

impl Started {
    /// The API server as the peer cluster reaches it.
    pub fn peer_url(&self) -> String {
        format!("https://{}:{API_PORT}", self.shared_ip)
    }
}

/// What a run has started in the engine; `remove_all` (or `super::remove_run`
/// by label) takes it away.
pub struct Fleet {
    docker: Docker,
    run_id: String,
    image: ImageRef,
    startup: Duration,
    /// Where each container's /etc/rancher/k3s is mounted.
    conf: tempfile::TempDir,
    shared: tokio::sync::OnceCell<(String, SharedSubnet)>,
    containers: tokio::sync::Mutex<BTreeMap<String, ContainerAsync<K3s>>>,
}

/// The shared network's /24 and the next address to hand out.
#[derive(Clone, Copy, Debug)]
struct SharedSubnet {
    base: [u8; 3],
}

impl SharedSubnet {
    fn cidr(&self) -> String {
        format!("{}.{}.{}.0/24", self.base[0], self.base[1], self.base[2])
    }
    /// .1 is the bridge's gateway; clusters get .10, .11, ...
    fn address(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], 10 + index as u8)
    }
}

impl Fleet {
    pub fn new(docker: Docker, run_id: &str, image: ImageRef, startup: Duration) -> Result<Fleet> {
        Ok(Fleet {
            docker,
            run_id: run_id.to_string(),
            image,
            startup,
            conf: tempfile::Builder::new()
                .prefix("meshspec-k3s-")
                .tempdir()
                .context("cannot make a directory for K3s' kubeconfigs")?,
            shared: tokio::sync::OnceCell::new(),
            containers: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// Whether the image is run privileged: yes, unless it carries
    /// `meshspec.io/privileged=false` (an image not on this machine yet is
    /// K3s as pulled: privileged).
    async fn privileged(&self) -> bool {
        let labels = self.docker.inspect_image(&self.image.to_string()).await.ok().and_then(|i| i.config?.labels);
        labels.and_then(|l| l.get(super::PRIVILEGED_LABEL).cloned()).as_deref() != Some("false")
    }

    /// The shared network, made on first use in a /24 no other network of the engine has.
    async fn shared(
        &self,
        record: &(dyn Fn(&str, &str, &str) -> Result<()> + Sync),
    ) -> Result<&(String, SharedSubnet)> {
        self.shared
            .get_or_try_init(|| async {
                let name = name(&self.run_id, "shared");
                let taken = taken_subnets(&self.docker).await?;
                record("", LEDGER_NETWORK, &name)?;
                // Another run may take the same free /24 at the same moment: the
                // engine refuses the second ("overlaps"), which then tries the next.
                let mut made = None;
                for subnet in (0..=255u8).map(|n| SharedSubnet { base: [172, 30, n] }) {
                    if taken.iter().any(|t| overlaps(t, &subnet.cidr())) {
                        continue;
                    }
                    match self.try_create_network(&name, None, Some(subnet.cidr())).await {
                        Ok(()) => {
                            made = Some(subnet);
                            break;
                        }
                        // libnetwork's IPAM: "Pool overlaps with other one on this address space".
                        Err(testcontainers::bollard::errors::Error::DockerResponseServerError { message, .. })
                            if message.contains("overlaps") =>
                        {
                            continue
                        }
                        Err(e) => {
                            return Err(
                                anyhow::Error::new(e).context(format!("cannot create the Docker network {name}"))
                            )
                        }
                    }
                }
                let subnet = made.context("no free /24 in 172.30.0.0/16 for the shared network")?;
                Ok::<_, anyhow::Error>((name, subnet))
            })
            .await
    }

    async fn create_network(&self, name: &str, cluster: Option<&str>, subnet: Option<String>) -> Result<()> {
        self.try_create_network(name, cluster, subnet)
            .await
            .with_context(|| format!("cannot create the Docker network {name}"))
    }

    async fn try_create_network(
        &self,
        name: &str,
        cluster: Option<&str>,
        subnet: Option<String>,
    ) -> Result<(), testcontainers::bollard::errors::Error> {
        let ipam = subnet.map(|s| Ipam {
            config: Some(vec![IpamConfig { subnet: Some(s), ..Default::default() }]),
            ..Default::default()
        });
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                labels: Some(labels(&self.run_id, cluster)),
                ipam,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Starts cluster number `index` (0-based) of the topology: its network, its
    /// container (waiting for K3s' ready line), then joins it to the shared network.
    /// `record(cluster, kind, name)` writes the ledger line before each create.
    pub async fn start(
        &self,
        index: usize,
        spec: &ClusterSpec,
        record: &(dyn Fn(&str, &str, &str) -> Result<()> + Sync),
    ) -> Result<Started> {
        if index == 0 {
            // The kubeconfigs K3s writes there hold client keys: a reap removes the directory.
            record(&spec.cluster, super::processes::LEDGER_FILES, &self.conf.path().display().to_string())?;
        }
        let (shared_name, subnet) = self.shared(record).await?.clone();
        let shared_ip = subnet.address(index);
        let own = name(&self.run_id, &spec.cluster);
        record(&spec.cluster, LEDGER_NETWORK, &own)?;
        self.create_network(&own, Some(&spec.cluster), None).await?;

        let conf_dir = self.conf.path().join(&spec.cluster);
        std::fs::create_dir_all(&conf_dir).with_context(|| format!("cannot make {}", conf_dir.display()))?;
        let container_name = own.clone();
        record(&spec.cluster, LEDGER_CONTAINER, &container_name)?;
        let mut request = K3s::default()
            .with_conf_mount(&conf_dir)
            .with_name(&self.image.name)
            .with_tag(&self.image.tag)
            .with_container_name(&container_name)
            .with_network(&own)
            // As the module's own tests run it: K3s runs containerd and iptables
            // inside. An image may declare it needs no privileges (the stand-in does).
            .with_privileged(self.privileged().await)
            .with_userns_mode("host")
            .with_cmd(server_args(spec, shared_ip))
            .with_startup_timeout(self.startup);
        for (k, v) in labels(&self.run_id, Some(&spec.cluster)) {
            request = request.with_label(k, v);
        }
        let container = request.start().await.map_err(|e| start_error(&self.image, &spec.cluster, e))?;
        let started = async {
            self.docker
                .connect_network(
                    &shared_name,
                    NetworkConnectRequest {
                        container: container.id().to_string(),
                        endpoint_config: Some(EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some(shared_ip.to_string()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    },
                )
                .await
                .with_context(|| format!("cannot join {container_name} to the shared network {shared_name}"))?;
            let port = container
                .get_host_port_ipv4(KUBE_SECURE_PORT)
                .await
                .with_context(|| format!("{container_name} publishes no port for K3s' API ({API_PORT})"))?;
            let text = container
                .image()
                .read_kube_config()
                .with_context(|| format!("K3s in {container_name} wrote no kubeconfig"))?;
            let (kubeconfig, ca_pem) = for_host(&text, &format!("https://127.0.0.1:{port}"))?;
            Ok::<_, anyhow::Error>(Started {
                cluster: spec.cluster.clone(),
                container: container_name.clone(),
                kubeconfig,
                shared_ip,
                ca_pem,
            })
        }
        .await;
        // Kept even when joining failed, so that removal finds it by name too.
        self.containers.lock().await.insert(spec.cluster.clone(), container);
        started
    }

    /// Removes this run's containers, then its networks (by their labels, so
    /// also what a failed start left); returns what is still there.
    pub async fn remove_all(&self) -> Result<super::Found> {
        let containers = std::mem::take(&mut *self.containers.lock().await);
        for (_, c) in containers {
            // testcontainers' own removal; the label sweep below catches a failure.
            let _ = c.rm().await;
        }
        super::remove_run(&self.docker, &self.run_id).await
    }
}

/// K3s' server flags for one cluster (k3s pkg/cli/cmds/server.go).
pub fn server_args(spec: &ClusterSpec, shared_ip: Ipv4Addr) -> Vec<String> {
    vec![
        "server".into(),
        // The module's own command, kept.
        "--snapshotter=native".into(),
        format!("--node-name={}", spec.cluster),
        format!("--node-external-ip={shared_ip}"),
        format!("--tls-san={shared_ip}"),
        format!("--cluster-cidr={}", spec.pod_cidr),
        format!("--service-cidr={}", spec.service_cidr),
        "--disable=traefik".into(),
    ]
}

/// Names the image and the engine's own error when a container cannot start:
/// a pull refused by a registry is said as such, not as a timeout.
fn start_error(image: &ImageRef, cluster: &str, e: testcontainers::TestcontainersError) -> anyhow::Error {
    use testcontainers::core::error::ClientError;
    match &e {
        testcontainers::TestcontainersError::Client(ClientError::PullImage { descriptor, err }) => anyhow::anyhow!(
            "cannot start {cluster}: the image {descriptor} is not on this machine and cannot be pulled: {err} (build one with `meshspec k3s standin-image`, or pass --k3s-image with a local image)"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot start {cluster} from {image}")),
    }
}

/// K3s' kubeconfig with its server set to `server` (K3s writes
/// https://127.0.0.1:6443, the container's own view), and its CA.
pub fn for_host(text: &str, server: &str) -> Result<(String, String)> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).context("K3s' kubeconfig is not YAML")?;
    let clusters =
        doc.get_mut("clusters").and_then(|c| c.as_sequence_mut()).context("K3s' kubeconfig has no clusters")?;
    let mut ca = None;
    for c in clusters.iter_mut() {
        let Some(cluster) = c.get_mut("cluster").and_then(|c| c.as_mapping_mut()) else { continue };
        cluster.insert("server".into(), server.into());
        if let Some(data) = cluster.get("certificate-authority-data").and_then(|v| v.as_str()) {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .context("K3s' kubeconfig has a CA that is not base64")?;
            ca = Some(String::from_utf8(pem).context("K3s' kubeconfig has a CA that is not PEM")?);
        }
    }
    let Some(ca) = ca else { bail!("K3s' kubeconfig names no certificate-authority-data") };
    Ok((serde_yaml::to_string(&doc)?, ca))
}

/// The subnets of every network the engine has.
async fn taken_subnets(docker: &Docker) -> Result<Vec<String>> {
    let networks = docker.list_networks(None).await.context("cannot list Docker networks")?;
    Ok(networks
        .into_iter()
        .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
        .filter_map(|c| c.subnet)
        .collect())
}

/// Whether two IPv4 CIDRs share an address (anything unparsable counts as overlapping).
fn overlaps(a: &str, b: &str) -> bool {
    let parse = |c: &str| -> Option<(u32, u32)> {
        let (ip, len) = c.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Some((u32::from(ip) & mask, mask))
    };
    match (parse(a), parse(b)) {
        (Some((na, ma)), Some((nb, mb))) => {
            let m = ma & mb;
            na & m == nb & m
        }
        // IPv6 subnets never overlap an IPv4 one.
        _ => !(a.contains(':') || b.contains(':')),
    }
}

/// The kubeconfig of every started cluster, merged, contexts named after the
/// topology's clusters, written to `path`.
pub fn write_kubeconfig(path: &Path, started: &[Started]) -> Result<PathBuf> {
    let mut clusters = Vec::new();
    let mut users = Vec::new();
    let mut contexts = Vec::new();
    for s in started {
        let doc: serde_yaml::Value = serde_yaml::from_str(&s.kubeconfig)?;
        let first = |key: &str, field: &str| -> Result<serde_yaml::Value> {
            doc.get(key)
                .and_then(|v| v.as_sequence())
                .and_then(|v| v.first())
                .and_then(|v| v.get(field))
                .cloned()
                .with_context(|| format!("K3s' kubeconfig of {} has no {key}[0].{field}", s.cluster))
        };
        let name = context(&s.cluster);
        clusters.push(serde_yaml::to_value(serde_json::json!({"name": name}))?);
        if let Some(m) = clusters.last_mut().and_then(|v| v.as_mapping_mut()) {
            m.insert("cluster".into(), first("clusters", "cluster")?);
        }
        users.push(serde_yaml::to_value(serde_json::json!({"name": name}))?);
        if let Some(m) = users.last_mut().and_then(|v| v.as_mapping_mut()) {
            m.insert("user".into(), first("users", "user")?);
        }
        contexts
            .push(serde_yaml::to_value(serde_json::json!({"name": name, "context": {"cluster": name, "user": name}}))?);
    }
    let doc = serde_json::json!({"apiVersion": "v1", "kind": "Config", "preferences": {}});
    let mut doc: serde_yaml::Value = serde_yaml::to_value(doc)?;
    if let Some(m) = doc.as_mapping_mut() {
        m.insert("clusters".into(), clusters.into());
        m.insert("users".into(), users.into());
        m.insert("contexts".into(), contexts.into());
        if let Some(first) = started.first() {
            m.insert("current-context".into(), context(&first.cluster).into());
        }
    }
    // The kubeconfig holds client keys: readable by its owner only.
    crate::tools::write_private(path, &serde_yaml::to_string(&doc)?)?;
    Ok(path.to_path_buf())
}

/// The kube context of a topology cluster on the k3s target.
pub fn context(cluster: &str) -> String {
    format!("k3s-{cluster}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_YAML: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn the_kubeconfig_points_at_the_published_port_and_gives_the_ca() {
        let (text, ca) = for_host(K3S_YAML, "https://127.0.0.1:32768").unwrap();
        assert!(text.contains("server: https://127.0.0.1:32768"), "{text}");
        assert!(!text.contains(":6443"), "{text}");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        assert!(for_host("clusters: []", "https://x").is_err());
        assert!(for_host("{", "https://x").is_err());
    }

    #[test]
    fn merged_kubeconfigs_name_a_context_per_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let started: Vec<Started> = ["cluster1", "cluster2"]
            .iter()
            .enumerate()
            .map(|(i, c)| Started {
                cluster: c.to_string(),
                container: format!("c{i}"),
                kubeconfig: for_host(K3S_YAML, &format!("https://127.0.0.1:{}", 40000 + i)).unwrap().0,
                shared_ip: Ipv4Addr::new(172, 30, 0, 10 + i as u8),
                ca_pem: String::new(),
            })
            .collect();
        let path = write_kubeconfig(&dir.path().join("kubeconfig"), &started).unwrap();
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["k3s-cluster1", "k3s-cluster2"]);
        let servers: Vec<String> =
            kc.clusters.iter().map(|c| c.cluster.as_ref().unwrap().server.clone().unwrap()).collect();
        assert_eq!(servers, ["https://127.0.0.1:40000", "https://127.0.0.1:40001"]);
        assert_eq!(kc.auth_infos.len(), 2);
        assert_eq!(started[1].peer_url(), "https://172.30.0.11:6443");
    }

    #[test]
    fn a_started_cluster_never_prints_its_client_key() {
        let s = Started {
            cluster: "eks-1".into(),
            container: "c".into(),
            kubeconfig: for_host(K3S_YAML, "https://127.0.0.1:1").unwrap().0,
            shared_ip: Ipv4Addr::new(172, 30, 0, 10),
            ca_pem: String::new(),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("a2V5") && !shown.contains("client-key"), "{shown}");
        assert!(shown.contains("eks-1"), "{shown}");
    }

    #[test]
    fn the_server_flags_put_the_shared_address_into_servicelb_and_the_certificate() {
        let spec = ClusterSpec {
            cluster: "cluster1".into(),
            pod_cidr: "10.0.0.0/16".into(),
            service_cidr: "10.101.0.0/16".into(),
        };
        let args = server_args(&spec, Ipv4Addr::new(172, 30, 0, 10));
        assert_eq!(args[0], "server");
        for want in [
            "--node-external-ip=172.30.0.10",
            "--tls-san=172.30.0.10",
            "--cluster-cidr=10.0.0.0/16",
            "--service-cidr=10.101.0.0/16",
            "--disable=traefik",
            "--snapshotter=native",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
    }

    #[test]
    fn subnets_overlap_as_cidr_arithmetic_says() {
        assert!(overlaps("172.30.0.0/24", "172.30.0.0/24"));
        assert!(overlaps("172.16.0.0/12", "172.30.5.0/24"));
        assert!(!overlaps("172.17.0.0/16", "172.30.0.0/24"));
        assert!(!overlaps("fd00::/64", "172.30.0.0/24"));
        assert!(overlaps("garbage", "172.30.0.0/24"));
    }
}
