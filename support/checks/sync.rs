//! Cross-cluster endpoint sync: the remote secret, istiod's view of the remote
//! cluster, and the endpoints the sleep pod's Envoy got for helloworld.

use std::collections::BTreeSet;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

use super::check::{self, Check, Diagnosis, Observation};
use super::readiness;
use crate::kube::exec::first_running_pod;
use crate::mesh::envoy::{self, EndpointRow};
use crate::mesh::istiod::{self, ClusterStatus};
use crate::mesh::remote_secret::{self, Answer, RemoteSecret};
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

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

/// The remote secret for the peer, as istiod reads it, answering as the peer.
///
/// Definite: no remote secret, one istiod would not use (unlabelled, keyed by
/// another cluster ID, several, a refused kubeconfig), credentials the peer's
/// API server rejects (401/403), a server that is another cluster, and a
/// server istiod gave up on (`timeout` in its clusterz). Transient: a server
/// that does not answer yet while istiod still tries.
pub struct RemoteSecretOf(pub ClusterTopology);

impl Check for RemoteSecretOf {
    type Evidence = RemoteSecretEvidence;

    fn name(&self) -> String {
        format!("{}: remote secret for the other cluster", self.0.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<RemoteSecretEvidence>> {
        let c = &self.0;
        let peer = &s.topology.peer_of(c).istio_cluster;
        Ok(match self.observe_secret(s).await? {
            Observation::Holds(v) => Observation::Holds(v),
            Observation::Pending { seen, diagnosis } => {
                Observation::Pending { seen: with_istiod_log(s, c, peer, seen).await, diagnosis }
            }
            Observation::Broken { seen, diagnosis } => {
                Observation::Broken { seen: with_istiod_log(s, c, peer, seen).await, diagnosis }
            }
        })
    }
}

impl RemoteSecretOf {
    /// The observation, without istiod's lines (callers that quote them themselves).
    async fn observe_secret(&self, s: &Session) -> Result<Observation<RemoteSecretEvidence>> {
        let c = &self.0;
        let peer = s.topology.peer_of(c);
        let client = s.kube(&c.name).await?;
        let secret = match remote_secret::find(&client, &peer.istio_cluster).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Ok(Observation::broken(
                    format!(
                        "no Secret labelled {}=true in {} holds {}",
                        remote_secret::LABEL,
                        names::ISTIO_SYSTEM,
                        peer.istio_cluster
                    ),
                    no_remote_secret(c, peer),
                ))
            }
            Err(e) => match check::diagnosis_of(&e) {
                Some(d) => return Ok(Observation::broken(crate::kube::failure::render(&e), d)),
                None => return Err(e),
            },
        };
        let (parsed, kubeconfig) = match remote_secret::parse(&secret, &peer.istio_cluster) {
            Ok(p) => p,
            Err(e) => {
                let d = check::diagnosis_of(&e).unwrap_or_else(|| {
                    Diagnosis::new(
                        format!("istiod cannot use the remote secret for {} in {}", peer.istio_cluster, c.name),
                        format!("recreate it with istioctl create-remote-secret --name={}", peer.istio_cluster),
                    )
                });
                return Ok(Observation::broken(crate::kube::failure::render(&e), d));
            }
        };
        let token = remote_secret::bearer_token(&kubeconfig);
        let (answer, denied) = remote_secret::server_answers_with_access(kubeconfig).await?;
        let reached = match answer {
            Answer::Cluster(uid) => uid,
            Answer::Rejected(status) => {
                let origin = match &token {
                    Some(t) => remote_secret::token_origin(&s.kube(&peer.name).await?, t).await.ok(),
                    None => None,
                };
                return Ok(Observation::broken(
                    format!("{} answers the secret's token with {status}", parsed.server),
                    rejected_token(c, peer, origin),
                ));
            }
            Answer::Unreachable(why) => {
                let seen = format!("{} does not answer: {why}", parsed.server);
                let d = Diagnosis::new(
                    format!("the API server of {} named in the remote secret does not answer", peer.istio_cluster),
                    "check the server address in the remote secret and that istiod's network can reach it",
                );
                // istiod retries until its remote cluster timeout; then it reports `timeout`.
                let status = istiod_status_of(s, c, &peer.istio_cluster).await;
                return Ok(match status.as_deref() {
                    Some("timeout") => Observation::broken(format!("{seen}; istiod reports it timeout"), d),
                    _ => Observation::Pending { seen, diagnosis: Some(d) },
                });
            }
        };
        let peer_uid = remote_secret::cluster_uid(&s.kube(&peer.name).await?).await?;
        if reached != peer_uid {
            return Ok(Observation::broken(
                format!(
                    "{} reaches a cluster whose kube-system UID is {reached}; {}'s is {peer_uid}",
                    parsed.server, peer.name
                ),
                Diagnosis::new(
                    format!(
                        "the remote secret for {} in {} points at another cluster's API server",
                        peer.istio_cluster, c.name
                    ),
                    format!(
                        "recreate it against {} (istioctl create-remote-secret --name={})",
                        peer.name, peer.istio_cluster
                    ),
                ),
            ));
        }
        if let Some(first) = denied.first() {
            let all: Vec<String> = denied.iter().map(|d| format!("{} {}", d.verb, d.resource)).collect();
            return Ok(Observation::broken(
                format!(
                    "{} says the remote secret's credentials may not {}{}",
                    parsed.server,
                    all.join(", "),
                    if first.reason.is_empty() { String::new() } else { format!(" ({})", first.reason) }
                ),
                Diagnosis::new(
                    format!(
                        "the remote secret's service account in {} is not allowed to {} {} cluster-wide, which istiod in {} reads there: its informers never sync",
                        peer.istio_cluster, first.verb, first.resource, c.name
                    ),
                    format!(
                        "grant it back: restore the istio-reader ClusterRole of {} from the istio-discovery chart (helm upgrade istiod), or check its ClusterRoleBinding to istio-reader-service-account",
                        peer.name
                    ),
                ),
            ));
        }
        Ok(Observation::Holds(RemoteSecretEvidence {
            secret: parsed,
            reached_cluster_uid: reached,
            peer_cluster_uid: peer_uid,
        }))
    }
}

/// The peer rejects the remote secret's token: why, by where the token came from.
fn rejected_token(
    c: &ClusterTopology,
    peer: &ClusterTopology,
    origin: Option<remote_secret::TokenOrigin>,
) -> Diagnosis {
    use remote_secret::TokenOrigin;
    let why = match origin {
        Some(TokenOrigin::Revoked { secret }) => format!(
            ": it is a stale token, revoked: the token of the Secret {secret} in {}, which was deleted (the remote secret in {} was updated with the old token, or not updated before the old token was revoked)",
            peer.name, c.name
        ),
        Some(TokenOrigin::NotHeld { secret }) => format!(
            ": it is not the token the Secret {secret} in {} holds (altered or stale)",
            peer.name
        ),
        Some(TokenOrigin::Held { secret }) => format!(
            " although the Secret {secret} in {} holds it (its service account may be gone)",
            peer.name
        ),
        Some(TokenOrigin::Unknown) | None => String::new(),
    };
    Diagnosis::new(
        format!("the API server of {} rejects the remote secret's token{why}", peer.istio_cluster),
        format!(
            "recreate the remote secret in {} from a current istio-reader-service-account token of {} (istioctl create-remote-secret --name={} | kubectl apply -f -)",
            c.name, peer.name, peer.istio_cluster
        ),
    )
}

fn no_remote_secret(c: &ClusterTopology, peer: &ClusterTopology) -> Diagnosis {
    Diagnosis::new(
        format!("istiod in {} has no remote secret for {}, so it never reads that cluster", c.name, peer.istio_cluster),
        format!(
            "istioctl create-remote-secret --name={} against {} | kubectl apply -f - against {}",
            peer.istio_cluster, peer.name, c.name
        ),
    )
}

/// istiod's sync status for a remote cluster, if it lists it.
async fn istiod_status_of(s: &Session, c: &ClusterTopology, remote: &str) -> Option<String> {
    let client = s.kube(&c.name).await.ok()?;
    let clusters = istiod::clusterz(&client, s.timeouts.api_call).await.ok()?;
    clusters.into_iter().find(|x| x.id == remote).map(|x| x.sync_status)
}

/// istiod's /debug/clusterz reports the peer `synced`.
///
/// Definite: `timeout` (istiod gave up after its remote cluster timeout),
/// `closed`, no remote secret istiod would use, or istiod scaled to zero.
/// Transient: `syncing`, or
/// not listed yet while a usable remote secret exists.
pub struct RemoteClusterSynced(pub ClusterTopology);

impl Check for RemoteClusterSynced {
    type Evidence = Vec<ClusterStatus>;

    fn name(&self) -> String {
        format!("{}: istiod reports {} synced", self.0.name, self_peer(&self.0))
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Vec<ClusterStatus>>> {
        let c = &self.0;
        let peer = s.topology.peer_of(c).clone();
        let observed = match self.observe_clusterz(s, c, &peer).await {
            Ok(o) => o,
            // No istiod pod to ask: definite if none is coming.
            Err(e) => match super::ordering::istiod_scaled_to_zero(s, c).await {
                Some(down) => return Ok(Observation::broken(crate::kube::failure::render(&e), down)),
                None => return Err(e),
            },
        };
        // Not synced: what istiod itself logged about remote clusters and the peer.
        Ok(match observed {
            Observation::Holds(v) => Observation::Holds(v),
            // No istiod at all, and none coming: its clusterz will never answer.
            Observation::Pending { seen, .. }
                if let Some(down) = super::ordering::istiod_scaled_to_zero(s, c).await =>
            {
                Observation::broken(seen, down)
            }
            Observation::Pending { seen, diagnosis } => {
                Observation::Pending { seen: with_istiod_log(s, c, &peer.istio_cluster, seen).await, diagnosis }
            }
            Observation::Broken { seen, diagnosis } => {
                Observation::Broken { seen: with_istiod_log(s, c, &peer.istio_cluster, seen).await, diagnosis }
            }
        })
    }
}

impl RemoteClusterSynced {
    async fn observe_clusterz(
        &self,
        s: &Session,
        c: &ClusterTopology,
        peer: &ClusterTopology,
    ) -> Result<Observation<Vec<ClusterStatus>>> {
        let client = s.kube(&c.name).await?;
        let clusters = istiod::clusterz(&client, s.timeouts.api_call).await?;
        let seen = format!("clusterz: {}", serde_json::to_string(&clusters).unwrap_or_default());
        let not_synced = Diagnosis::new(
            format!("istiod in {} does not report {} synced", c.name, peer.istio_cluster),
            "check the remote secret: its data key, the reader token and the API server address",
        );
        match clusters.iter().find(|x| x.id == peer.istio_cluster).map(|x| x.sync_status.as_str()) {
            Some("synced") => return Ok(Observation::Holds(clusters)),
            Some("timeout" | "closed") => {
                // The secret's own check names why, when it can.
                let d = match RemoteSecretOf(c.clone()).observe_secret(s).await {
                    Ok(Observation::Broken { diagnosis, .. }) => diagnosis,
                    _ => not_synced,
                };
                return Ok(Observation::broken(seen, d));
            }
            Some(_) => {}
            None => {
                if let Ok(Observation::Broken { seen: why, diagnosis }) =
                    RemoteSecretOf(c.clone()).observe_secret(s).await
                {
                    return Ok(Observation::broken(format!("{seen}; {why}"), diagnosis));
                }
            }
        }
        Ok(Observation::Pending { seen, diagnosis: Some(not_synced) })
    }
}

/// How many of istiod's lines a failure quotes (the last ones), and how far
/// back in its log they are looked for.
const QUOTED_LINES: usize = 12;
const LOG_TAIL: i64 = 500;

/// istiod's log, read with `pods/log` as an operator reads it
/// (`kubectl logs -l app=istiod -n istio-system -c discovery --tail=500`).
pub(crate) async fn istiod_log(s: &Session, c: &ClusterTopology) -> Result<String> {
    let client = s.kube(&c.name).await?;
    let pod = first_running_pod(&client, names::ISTIO_SYSTEM, "app=istiod").await?;
    let name = pod.metadata.name.unwrap_or_default();
    let params = LogParams { container: Some("discovery".into()), tail_lines: Some(LOG_TAIL), ..LogParams::default() };
    let api: Api<Pod> = Api::namespaced(client, names::ISTIO_SYSTEM);
    let text = tokio::time::timeout(s.timeouts.api_call, api.logs(&name, &params))
        .await
        .with_context(|| format!("the log of {name} did not come within {:?}", s.timeouts.api_call))??;
    Ok(text)
}

/// The lines of istiod's log about remote clusters and `peer`, by the messages
/// Istio 1.20.2 writes for them: pkg/kube/multicluster/secretcontroller.go
/// (labelled `cluster=<id>`, `Deleting cluster_id=<id>`, `Number of remote
/// clusters`), cluster.go (`remote cluster <id> failed to sync`),
/// pkg/kube/controllers/queue.go (`controller=multicluster secret`), and
/// client-go's reflector (tools/cache/reflector.go: `failed to list`, `Failed
/// to watch`; they do not name the cluster, which client-go does not know).
pub fn remote_cluster_lines(log: &str, peer: &str) -> Vec<String> {
    let about = |l: &str| {
        l.contains(&format!("cluster={peer} "))
            || l.ends_with(&format!("cluster={peer}"))
            || l.contains(&format!("cluster_id={peer} "))
            || l.contains(&format!("remote cluster {peer} "))
            || l.contains("Number of remote clusters")
            || l.contains("controller=multicluster secret")
            || (l.contains("tools/cache/reflector.go")
                && (l.contains("failed to list") || l.contains("Failed to watch")))
    };
    let lines: Vec<String> = log.lines().filter(|l| about(l)).map(String::from).collect();
    let skip = lines.len().saturating_sub(QUOTED_LINES);
    lines.into_iter().skip(skip).collect()
}

/// `seen` and the istiod lines that say why (or that istiod's log says nothing of it).
async fn with_istiod_log(s: &Session, c: &ClusterTopology, peer: &str, seen: String) -> String {
    match istiod_log(s, c).await {
        Ok(log) => {
            let lines = remote_cluster_lines(&log, peer);
            if lines.is_empty() {
                format!("{seen}; istiod's log has no line about remote clusters")
            } else {
                format!("{seen}; istiod's log:\n  {}", lines.join("\n  "))
            }
        }
        Err(e) => format!("{seen}; istiod's log could not be read: {}", crate::kube::failure::render(&e)),
    }
}

fn self_peer(c: &ClusterTopology) -> String {
    format!("the other cluster of {}", c.name)
}

/// The endpoint table of a pod's sidecar, read with pilot-agent in `istio-proxy`.
pub async fn sidecar_endpoints(
    session: &Session,
    c: &ClusterTopology,
    namespace: &str,
    pod: &str,
) -> Result<Vec<EndpointRow>> {
    let client = session.kube(&c.name).await?;
    let body =
        envoy::pilot_agent_get(&client, namespace, pod, "clusters?format=json", session.timeouts.api_call).await?;
    envoy::endpoint_rows(&body)
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
    /// How many addresses the peer's gateway must have: an NLB has one per zone
    /// of its subnets (the seed's three public subnets: at least two); K3s'
    /// ServiceLB one per node serving the Service, MetalLB one per Service.
    pub min_gateway_addresses: usize,
    pub remote_pod_ips: BTreeSet<String>,
}

/// Local helloworld pod IPs on 5000 plus EXACTLY the peer NLB's IPs on 15443, all
/// HEALTHY, and no remote pod IP.
///
/// Definite: what keeps istiod from ever knowing the peer's gateway (no
/// gateway Service, no network label, no load balancer controller, a VPC
/// without DNS resolution). Transient: anything else (istiod pushes over
/// time, names take minutes to resolve, pods restart).
pub struct HelloworldEndpoints(pub ClusterTopology);

impl Check for HelloworldEndpoints {
    type Evidence = EndpointEvidence;

    fn name(&self) -> String {
        format!("{}: the sleep pod's endpoints for helloworld", self.0.name)
    }

    fn point(&self) -> Option<&'static str> {
        Some("remote_endpoints")
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<EndpointEvidence>> {
        let c = &self.0;
        let peer = s.topology.peer_of(c).clone();
        let pod = sleep_pod(s, c).await?;
        let remote_pod_ips = helloworld_pod_ips(s, &peer).await?;
        let expected_local = helloworld_pod_ips(s, c).await?;
        let expected_gateways = match peer_gateway_ips(s, c).await {
            Ok(ips) => ips,
            Err(e) => return Ok(self.not_yet(s, crate::kube::failure::render(&e), None).await),
        };
        let rows: Vec<EndpointRow> = sidecar_endpoints(s, c, names::SAMPLE, &pod)
            .await?
            .into_iter()
            .filter(|r| r.cluster == HELLOWORLD_CLUSTER)
            .collect();
        let want: BTreeSet<String> = expected_local
            .iter()
            .map(|ip| format!("{ip}:{HELLOWORLD_PORT}"))
            .chain(expected_gateways.iter().map(|ip| format!("{ip}:{}", names::CROSS_NETWORK_PORT)))
            .collect();
        let got: BTreeSet<String> = rows.iter().map(EndpointRow::endpoint).collect();
        let leaked: Vec<&String> = rows.iter().map(|r| &r.address).filter(|a| remote_pod_ips.contains(*a)).collect();
        let unhealthy: Vec<String> =
            rows.iter().filter(|r| r.status != "HEALTHY").map(|r| format!("{} {}", r.endpoint(), r.status)).collect();
        if got == want && leaked.is_empty() && unhealthy.is_empty() && !expected_local.is_empty() {
            use readiness::LoadBalancerImplementation as Lb;
            let min_gateway_addresses = match readiness::load_balancer_implementation(s, &peer).await? {
                Lb::ServiceLb | Lb::MetalLb => 1,
                _ => 2,
            };
            return Ok(Observation::Holds(EndpointEvidence {
                cluster: c.name.clone(),
                pod,
                rows,
                expected_local,
                expected_gateways,
                min_gateway_addresses,
                remote_pod_ips,
            }));
        }
        let seen = format!(
            "pod {pod}: endpoints {got:?}, expected {want:?}; remote pod IPs present: {leaked:?}; not HEALTHY: {unhealthy:?}"
        );
        let stale = stale_gateway_diagnosis(c, &peer, &pod, &rows, &expected_gateways);
        Ok(self.not_yet(s, seen, stale).await)
    }
}

/// The sidecar holds addresses on the cross-network port that the peer's
/// gateway hostname no longer resolves to: addresses istiod still holds
/// (after a gateway's NLB was replaced). Istio 1.20.2 pilot/pkg/model/network.go
/// `resolveAndCache`: istiod keeps a hostname's addresses until the answer's
/// TTL, at least 30 s (`MinGatewayTTL`), runs out, and pushes when they change.
pub fn stale_gateway_diagnosis(
    c: &ClusterTopology,
    peer: &ClusterTopology,
    pod: &str,
    rows: &[EndpointRow],
    current: &BTreeSet<String>,
) -> Option<Diagnosis> {
    let stale: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.port == u32::from(names::CROSS_NETWORK_PORT) && !current.contains(&r.address))
        .map(EndpointRow::endpoint)
        .collect();
    if stale.is_empty() {
        return None;
    }
    Some(Diagnosis::new(
        format!(
            "the sidecar of {pod} in {} still holds gateway addresses {stale:?} that {}'s east-west gateway no longer resolves to (now {current:?}): istiod in {} holds the addresses of a load balancer that was replaced",
            c.name, peer.name, c.name
        ),
        format!(
            "istiod looks a gateway hostname up again when its DNS answer's TTL (at least 30 s) runs out; if the old addresses stay, check that the east-west gateway Service of {} names the new NLB in its status and read istiod's view (pilot-discovery request GET /debug/networkz), then restart istiod in {}",
            peer.name, c.name
        ),
    ))
}

impl HelloworldEndpoints {
    /// Not as it must be: definite when the target shows why istiod cannot know the peer's gateway.
    async fn not_yet(&self, s: &Session, seen: String, stale: Option<Diagnosis>) -> Observation<EndpointEvidence> {
        // No istiod to push: what the sidecar holds now is what it keeps.
        if let Some(down) = super::ordering::istiod_scaled_to_zero(s, &self.0).await {
            return Observation::broken(seen, stale.unwrap_or(down));
        }
        // istiod that will never read the peer never gets its endpoints.
        if let Ok(Observation::Broken { seen: why, diagnosis }) = RemoteClusterSynced(self.0.clone()).observe(s).await {
            return Observation::broken(format!("{seen}; {why}"), diagnosis);
        }
        let (diagnosis, definite) = gateway_diagnosis(s, &self.0).await;
        if definite {
            Observation::broken(seen, diagnosis)
        } else {
            // Stale addresses go when istiod looks the name up again: transient, and the likelier cause.
            Observation::Pending { seen, diagnosis: Some(stale.unwrap_or(diagnosis)) }
        }
    }
}

/// Why the other network's gateway is unknown to istiod, as far as the target
/// shows it, and whether that is definite.
async fn gateway_diagnosis(s: &Session, c: &ClusterTopology) -> (Diagnosis, bool) {
    let peer = s.topology.peer_of(c);
    let svc = readiness::gateway_service(s, peer).await.ok().flatten();
    let Some(svc) = svc else {
        return (
            Diagnosis::new(
                format!("{} has no east-west gateway Service", peer.name),
                "install the east-west gateway (stage 3)",
            ),
            true,
        );
    };
    let labelled = svc.metadata.labels.as_ref().and_then(|l| l.get(names::NETWORK_LABEL)).is_some();
    if !labelled {
        return (
            Diagnosis::new(
                format!("the east-west gateway Service of {} lacks {}, so istiod does not know it as a gateway and hands out remote pod IPs", peer.name, names::NETWORK_LABEL),
                format!("label the Service {}={}", names::NETWORK_LABEL, peer.network),
            ),
            true,
        );
    }
    match readiness::hostname_of(&svc) {
        None => match readiness::GatewayHostname(peer.clone()).observe(s).await {
            Ok(Observation::Broken { diagnosis, .. }) => (diagnosis, true),
            _ => (
                Diagnosis::new(
                    format!("the east-west gateway of {} has no load balancer address", peer.name),
                    "run the AWS load balancer controller and annotate the Service service.beta.kubernetes.io/aws-load-balancer-type: external",
                ),
                false,
            ),
        },
        Some(h) if vpc_dns_disabled(s, c).await => (
            Diagnosis::new(
                format!(
                    "the hostname {h} of {}'s gateway does not resolve in {}'s VPC {}: its DNS resolution is off (enableDnsSupport=false), so istiod there has no address for that gateway",
                    peer.name, c.name, c.vpc_name
                ),
                format!("aws ec2 modify-vpc-attribute --vpc-id <id of {}> --enable-dns-support", c.vpc_name),
            ),
            true,
        ),
        Some(h) if s.dns.ipv4(&h).await.map(|ips| ips.is_empty()).unwrap_or(true) => (
            Diagnosis::new(
                format!("the hostname {h} of {}'s gateway does not resolve, so istiod has no gateway address", peer.name),
                "fix name resolution for the NLB hostname",
            ),
            false,
        ),
        Some(_) => (
            Diagnosis::new(
                format!("the sidecar in {} does not hold what istiod should have pushed", c.name),
                "read istiod's view: pilot-discovery request GET /debug/networkz and /debug/clusterz",
            ),
            false,
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

impl EndpointEvidence {
    /// Local pods and the other network's gateway, one address per zone at least two.
    pub fn crosses_networks(&self) -> Result<(), String> {
        if self.expected_local.is_empty() {
            return Err(format!("{} has no Running helloworld pod", self.cluster));
        }
        if self.expected_gateways.len() < self.min_gateway_addresses {
            return Err(format!(
                "the other network's gateway resolves to {:?}, fewer than the {} addresses its load balancer has",
                self.expected_gateways, self.min_gateway_addresses
            ));
        }
        Ok(())
    }

    /// No endpoint is a helloworld pod IP of the other cluster (there must be some to compare with).
    pub fn no_remote_pod_ip(&self) -> Result<(), String> {
        if self.remote_pod_ips.is_empty() {
            return Err("the other cluster has no helloworld pod to compare with".into());
        }
        let leaked: Vec<&EndpointRow> = self.rows.iter().filter(|r| self.remote_pod_ips.contains(&r.address)).collect();
        if leaked.is_empty() {
            Ok(())
        } else {
            Err(format!("remote pod IPs are in the endpoints: {leaked:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quoted_istiod_lines_are_those_about_remote_clusters_and_the_peer() {
        let log = "\
2026-12-07T01:00:00.000001Z\tinfo\tinitializing mesh configuration ./etc/istio/config/mesh
2026-12-07T01:00:01.000001Z\tinfo\tAdding cluster\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2
2026-12-07T01:00:01.000002Z\tinfo\tfinished callback for cluster and starting to sync\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2
2026-12-07T01:00:01.000003Z\tinfo\tNumber of remote clusters: 1
2026-12-07T01:00:01.000004Z\tinfo\tAdding cluster\tcluster=cluster20 secret=istio-system/other
2026-12-07T01:00:02.000001Z\terror\tklog\tk8s.io/client-go@v0.28.3/tools/cache/reflector.go:229: Failed to watch *v1.Pod: failed to list *v1.Pod: Unauthorized
2026-12-07T01:00:03.000001Z\tinfo\tads\tADS: new connection for node:sleep-1.sample-1
2026-12-07T01:00:31.000001Z\terror\tremote cluster cluster2 failed to sync after 30s
";
        let lines = remote_cluster_lines(log, "cluster2");
        let messages: Vec<&str> = lines.iter().map(|l| l.split_once('\t').map_or("", |(_, m)| m)).collect();
        assert_eq!(
            messages,
            [
                "info\tAdding cluster\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2",
                "info\tfinished callback for cluster and starting to sync\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2",
                "info\tNumber of remote clusters: 1",
                "error\tklog\tk8s.io/client-go@v0.28.3/tools/cache/reflector.go:229: Failed to watch *v1.Pod: failed to list *v1.Pod: Unauthorized",
                "error\tremote cluster cluster2 failed to sync after 30s",
            ]
        );
        // Only the last lines are quoted.
        let many: String = (0..40).map(|i| format!("t\tinfo\tNumber of remote clusters: {i}\n")).collect();
        let quoted = remote_cluster_lines(&many, "cluster2");
        assert_eq!(quoted.len(), QUOTED_LINES);
        assert!(quoted.last().is_some_and(|l| l.ends_with("clusters: 39")));
    }

    #[test]
    fn a_rejected_token_is_named_by_where_it_came_from() {
        use crate::mesh::remote_secret::TokenOrigin;
        let t = crate::topology::Topology::seed();
        let (c, peer) = (&t.clusters[0], &t.clusters[1]);
        let secret = "istio-system/istio-reader-service-account-istio-remote-secret-token".to_string();
        let revoked = rejected_token(c, peer, Some(TokenOrigin::Revoked { secret: secret.clone() }));
        // The diagnosis feature's bad-reader-token row names this prefix.
        assert!(
            revoked.cause.starts_with("the API server of cluster2 rejects the remote secret's token"),
            "{}",
            revoked.cause
        );
        assert!(
            revoked.cause.contains("a stale token, revoked") && revoked.cause.contains(&secret),
            "{}",
            revoked.cause
        );
        assert!(revoked.fix.contains("istioctl create-remote-secret --name=cluster2"), "{}", revoked.fix);
        let altered = rejected_token(c, peer, Some(TokenOrigin::NotHeld { secret }));
        assert!(
            altered.cause.contains("not the token the Secret") && !altered.cause.contains("revoked"),
            "{}",
            altered.cause
        );
        assert_eq!(rejected_token(c, peer, None).cause, "the API server of cluster2 rejects the remote secret's token");
    }

    #[test]
    fn gateway_addresses_istiod_still_holds_are_named_with_the_current_ones() {
        let topology = crate::topology::Topology::seed();
        let (c, peer) = (&topology.clusters[0], &topology.clusters[1]);
        let row = |address: &str, port: u32| EndpointRow {
            address: address.into(),
            port,
            status: "HEALTHY".into(),
            outlier_failed: false,
            cluster: HELLOWORLD_CLUSTER.into(),
            weight: 1,
            zone: None,
        };
        let current: BTreeSet<String> = ["52.0.0.1".to_string(), "52.0.0.2".to_string()].into();
        let fresh = [row("10.1.0.5", 5000), row("52.0.0.1", 15443), row("52.0.0.2", 15443)];
        assert!(stale_gateway_diagnosis(c, peer, "sleep-1", &fresh, &current).is_none());
        let held = [row("10.1.0.5", 5000), row("44.0.0.9", 15443), row("52.0.0.1", 15443)];
        let d = stale_gateway_diagnosis(c, peer, "sleep-1", &held, &current).expect("a stale address");
        assert!(d.cause.contains("44.0.0.9:15443") && d.cause.contains("52.0.0.2"), "{}", d.cause);
        assert!(!d.cause.contains("10.1.0.5"), "a local pod is not a gateway address");
        assert!(d.fix.contains("/debug/networkz") && d.fix.contains("restart istiod"), "{}", d.fix);
    }
}
