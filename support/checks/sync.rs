//! Cross-cluster endpoint sync: the remote secret, istiod's view of the remote
//! cluster, and the endpoints the sleep pod's Envoy got for helloworld.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::faults::diagnosis;
use crate::kube::exec::{exec, first_running_pod};
use crate::mesh::envoy::{self, EndpointRow};
use crate::mesh::istiod::{self, ClusterStatus};
use crate::mesh::remote_secret::{self, RemoteSecret};
use crate::target::Session;
use crate::topology::{names, ClusterTopology};
use crate::wait::{self, Poll, WaitOptions};

/// helloworld's Envoy cluster in every sidecar.
pub const HELLOWORLD_CLUSTER: &str = "outbound|5000||helloworld.sample.svc.cluster.local";
pub const HELLOWORLD_PORT: u16 = 5000;

/// A remote secret for the peer, as istiod reads it, whose server answers to its
/// credentials and is the peer cluster itself (the same `kube-system` UID as
/// meshspec's own access to the peer shows).
#[derive(Debug, Serialize)]
pub struct RemoteSecretEvidence {
    #[serde(flatten)]
    pub secret: RemoteSecret,
    /// The kube-system UID the secret's server and credentials reach.
    pub reached_cluster_uid: String,
    /// The peer's kube-system UID, through meshspec's own access to it.
    pub peer_cluster_uid: String,
}

pub async fn remote_secret(session: &Session, c: &ClusterTopology) -> Result<RemoteSecretEvidence> {
    let peer = session.topology.peer_of(c);
    let client = session.kube(&c.name).await?;
    let secret = remote_secret::find(&client, &peer.istio_cluster).await?.with_context(|| {
        format!(
            "{}: {}: no Secret labelled {}=true in {} holds {}",
            diagnosis(
                format!(
                    "istiod in {} has no remote secret for {}, so it never reads that cluster",
                    c.name, peer.istio_cluster
                ),
                format!(
                    "istioctl create-remote-secret --name={} against {} | kubectl apply -f - against {}",
                    peer.istio_cluster, peer.name, c.name
                )
            ),
            c.name,
            remote_secret::LABEL,
            names::ISTIO_SYSTEM,
            peer.istio_cluster
        )
    })?;
    let (parsed, kubeconfig) = remote_secret::parse(&secret, &peer.istio_cluster).with_context(|| c.name.clone())?;
    let reached = remote_secret::server_answers(kubeconfig, &peer.istio_cluster).await?;
    let peer_uid = remote_secret::cluster_uid(&session.kube(&peer.name).await?).await?;
    ensure!(
        reached == peer_uid,
        "{}: {}: {} reaches a cluster whose kube-system UID is {reached}; {}'s is {peer_uid}",
        diagnosis(
            format!(
                "the remote secret for {} in {} points at another cluster's API server",
                peer.istio_cluster, c.name
            ),
            format!("recreate it against {} (istioctl create-remote-secret --name={})", peer.name, peer.istio_cluster)
        ),
        c.name,
        parsed.server,
        peer.name
    );
    Ok(RemoteSecretEvidence { secret: parsed, reached_cluster_uid: reached, peer_cluster_uid: peer_uid })
}

/// Wait until istiod reports the peer cluster `synced` (istiod keeps retrying, so this is a wait).
pub async fn remote_cluster_synced(session: &Session, c: &ClusterTopology) -> Result<Vec<ClusterStatus>> {
    let peer = session.topology.peer_of(c).istio_cluster.clone();
    cluster_synced(session, c).await.with_context(|| {
        diagnosis(
            format!("istiod in {} does not report {peer} synced", c.name),
            "check the remote secret: its data key, the reader token and the API server address",
        )
    })
}

async fn cluster_synced(session: &Session, c: &ClusterTopology) -> Result<Vec<ClusterStatus>> {
    let peer = session.topology.peer_of(c).istio_cluster.clone();
    let client = session.kube(&c.name).await?;
    let api_call = session.timeouts.api_call;
    Ok(wait::until(
        format!("istiod of {} to report {peer} synced", c.name),
        WaitOptions::new(session.timeouts.mesh_sync),
        || async {
            let clusters = istiod::clusterz(&client, api_call).await?;
            Ok::<_, anyhow::Error>(match clusters.iter().find(|s| s.id == peer) {
                Some(s) if s.sync_status == "synced" => Poll::Ready(clusters),
                _ => Poll::Pending(format!("clusterz: {}", serde_json::to_string(&clusters).unwrap_or_default())),
            })
        },
    )
    .await?)
}

/// The endpoint table of a pod's sidecar, read with pilot-agent in `istio-proxy`.
pub async fn sidecar_endpoints(
    session: &Session,
    c: &ClusterTopology,
    namespace: &str,
    pod: &str,
) -> Result<Vec<EndpointRow>> {
    let client = session.kube(&c.name).await?;
    let out = exec(
        &client,
        namespace,
        pod,
        "istio-proxy",
        &["pilot-agent", "request", "GET", "clusters?format=json"],
        session.timeouts.api_call,
    )
    .await?;
    ensure!(out.exit_code == 0, "pilot-agent exited {} in {namespace}/{pod}: {}", out.exit_code, out.stderr.trim());
    envoy::endpoint_rows(&out.stdout)
}

pub async fn sleep_pod(session: &Session, c: &ClusterTopology) -> Result<String> {
    let pod = first_running_pod(&session.kube(&c.name).await?, names::SAMPLE, "app=sleep").await?;
    Ok(pod.metadata.name.unwrap_or_default())
}

/// The Ready helloworld pod IPs of a cluster.
pub async fn helloworld_pod_ips(session: &Session, c: &ClusterTopology) -> Result<BTreeSet<String>> {
    let pods: Api<Pod> = Api::namespaced(session.kube(&c.name).await?, names::SAMPLE);
    Ok(pods
        .list(&ListParams::default().labels("app=helloworld"))
        .await?
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.status.and_then(|s| s.pod_ip))
        .collect())
}

/// The public addresses the peer's east-west gateway NLB hostname resolves to.
pub async fn peer_gateway_ips(session: &Session, c: &ClusterTopology) -> Result<BTreeSet<String>> {
    let peer = session.topology.peer_of(c);
    let svcs: Api<Service> = Api::namespaced(session.kube(&peer.name).await?, names::ISTIO_INGRESS);
    let svc = svcs
        .get(names::EASTWEST_GATEWAY)
        .await
        .with_context(|| format!("{}: the east-west gateway Service", peer.name))?;
    let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
    let mut ips = BTreeSet::new();
    for i in ingress {
        if let Some(ip) = i.ip {
            ips.insert(ip);
        } else if let Some(host) = i.hostname {
            ips.extend(session.dns.ipv4(&host).await?.into_iter().map(|ip| ip.to_string()));
        }
    }
    ensure!(!ips.is_empty(), "{}: the east-west gateway has no resolvable address", peer.name);
    Ok(ips)
}

/// What the sleep pod's Envoy holds for helloworld, compared with what it must hold.
#[derive(Debug, Serialize)]
pub struct EndpointEvidence {
    pub cluster: String,
    pub pod: String,
    pub rows: Vec<EndpointRow>,
    pub expected_local: BTreeSet<String>,
    pub expected_gateways: BTreeSet<String>,
    pub remote_pod_ips: BTreeSet<String>,
}

/// Local helloworld pod IPs on 5000 plus EXACTLY the peer NLB's IPs on 15443, all
/// HEALTHY, and no remote pod IP. Waits, since istiod pushes endpoints over time.
pub async fn helloworld_endpoints(session: &Session, c: &ClusterTopology) -> Result<EndpointEvidence> {
    match sidecar_holds_both_networks(session, c).await {
        Ok(e) => Ok(e),
        Err(e) => {
            let why = gateway_diagnosis(session, c).await;
            Err(e.context(why))
        }
    }
}

/// Why the other network's gateway is unknown to istiod, as far as the target shows it.
async fn gateway_diagnosis(session: &Session, c: &ClusterTopology) -> String {
    let peer = session.topology.peer_of(c);
    let svc = match session.kube(&peer.name).await {
        Ok(client) => Api::<Service>::namespaced(client, names::ISTIO_INGRESS)
            .get_opt(names::EASTWEST_GATEWAY)
            .await
            .ok()
            .flatten(),
        Err(_) => None,
    };
    let Some(svc) = svc else {
        return diagnosis(
            format!("{} has no east-west gateway Service", peer.name),
            "install the east-west gateway (stage 3)",
        );
    };
    let labelled = svc.metadata.labels.as_ref().and_then(|l| l.get(names::NETWORK_LABEL)).is_some();
    if !labelled {
        return diagnosis(
            format!("the east-west gateway Service of {} lacks {}, so istiod does not know it as a gateway and hands out remote pod IPs", peer.name, names::NETWORK_LABEL),
            format!("label the Service {}={}", names::NETWORK_LABEL, peer.network),
        );
    }
    let hostname = svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .and_then(|i| i.first().and_then(|i| i.hostname.clone()));
    match hostname {
        None => diagnosis(
            format!("the east-west gateway of {} has no load balancer address", peer.name),
            "run the AWS load balancer controller and annotate the Service service.beta.kubernetes.io/aws-load-balancer-type: external",
        ),
        Some(h) if session.dns.ipv4(&h).await.map(|ips| ips.is_empty()).unwrap_or(true) => diagnosis(
            format!("the hostname {h} of {}'s gateway does not resolve, so istiod has no gateway address", peer.name),
            "fix name resolution for the NLB hostname",
        ),
        Some(h) if vpc_dns_disabled(session, c).await => diagnosis(
            format!(
                "the hostname {h} of {}'s gateway does not resolve in {}'s VPC {}: its DNS resolution is off (enableDnsSupport=false), so istiod there has no address for that gateway",
                peer.name, c.name, c.vpc_name
            ),
            format!("aws ec2 modify-vpc-attribute --vpc-id <id of {}> --enable-dns-support", c.vpc_name),
        ),
        Some(_) => diagnosis(
            format!("the sidecar in {} does not hold what istiod should have pushed", c.name),
            "read istiod's view: pilot-discovery request GET /debug/networkz and /debug/clusterz",
        ),
    }
}

/// Whether the cluster's VPC has DNS resolution turned off (false when that cannot be read:
/// no AWS on this target, or no such VPC).
async fn vpc_dns_disabled(session: &Session, c: &ClusterTopology) -> bool {
    let Ok(aws) = session.aws() else { return false };
    let Ok(vpcs) = crate::aws::network::vpcs_named(aws, &c.vpc_name).await else { return false };
    for vpc in vpcs {
        if let Ok(false) = crate::aws::network::dns_support(aws, &vpc.id).await {
            return true;
        }
    }
    false
}

async fn sidecar_holds_both_networks(session: &Session, c: &ClusterTopology) -> Result<EndpointEvidence> {
    let peer = session.topology.peer_of(c).clone();
    let pod = sleep_pod(session, c).await?;
    let remote_pod_ips = helloworld_pod_ips(session, &peer).await?;
    wait::until(
        format!("the sidecar of {}/{} to hold helloworld's local and cross-network endpoints", c.name, pod),
        WaitOptions::new(session.timeouts.mesh_sync),
        || async {
            let expected_local = helloworld_pod_ips(session, c).await?;
            let expected_gateways = peer_gateway_ips(session, c).await?;
            let rows: Vec<EndpointRow> =
                sidecar_endpoints(session, c, names::SAMPLE, &pod).await?.into_iter().filter(|r| r.cluster == HELLOWORLD_CLUSTER).collect();
            let want: BTreeSet<String> = expected_local
                .iter()
                .map(|ip| format!("{ip}:{HELLOWORLD_PORT}"))
                .chain(expected_gateways.iter().map(|ip| format!("{ip}:{}", names::CROSS_NETWORK_PORT)))
                .collect();
            let got: BTreeSet<String> = rows.iter().map(EndpointRow::endpoint).collect();
            let leaked: Vec<&String> = rows.iter().map(|r| &r.address).filter(|a| remote_pod_ips.contains(*a)).collect();
            let unhealthy: Vec<String> = rows.iter().filter(|r| r.status != "HEALTHY").map(|r| format!("{} {}", r.endpoint(), r.status)).collect();
            Ok::<_, anyhow::Error>(if got == want && leaked.is_empty() && unhealthy.is_empty() {
                Poll::Ready(EndpointEvidence {
                    cluster: c.name.clone(),
                    pod: pod.clone(),
                    rows,
                    expected_local,
                    expected_gateways,
                    remote_pod_ips: remote_pod_ips.clone(),
                })
            } else {
                Poll::Pending(format!(
                    "endpoints {got:?}, expected {want:?}; remote pod IPs present: {leaked:?}; not HEALTHY: {unhealthy:?}"
                ))
            })
        },
    )
    .await
    .map_err(Into::into)
}
