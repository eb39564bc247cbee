//! Checks of the operations on remote secrets and reader tokens
//! (`mesh::secret_operations`, features/operations.feature): istiod rebuilt
//! its client of the other cluster from a changed remote secret without a
//! restart; istiod ran on without a restart through an operation; a sidecar
//! holds only its own cluster's helloworld endpoints while the other cluster
//! is out of the mesh.
//!
//! What Istio 1.20.2 does, from its source:
//! - pkg/kube/multicluster/secretcontroller.go `addSecret`: a labelled remote
//!   secret whose kubeconfig's SHA-256 changed stops the previous remote
//!   cluster (`prev.Stop()`), logs `Updating cluster` with `cluster=<id>
//!   secret=<ns/name>` and builds a new client and informers from the new
//!   kubeconfig (`createRemoteCluster`): no restart. An identical kubeconfig is
//!   skipped (`skipping update (kubeconfig are identical)`).
//! - the same file, `deleteSecret` -> `deleteCluster`: the secret's clusters
//!   are stopped and their registries removed (pilot/pkg/serviceregistry/kube/
//!   controller/multicluster.go `ClusterDeleted`: `DeleteRegistry`, the
//!   registry's `Cleanup` removes its EDS shard with `RemoveShard`, then a full
//!   push): the other cluster's endpoints and gateway leave every sidecar.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::check::{Check, Diagnosis, Observation};
use super::sync::{self, RemoteClusterSynced, HELLOWORLD_CLUSTER, HELLOWORLD_PORT};
use crate::kube::exec::first_running_pod;
use crate::mesh::envoy::EndpointRow;
use crate::mesh::istiod;
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

/// Which istiod pod runs in a cluster, and how often its containers restarted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IstiodRun {
    pub pod: String,
    pub uid: String,
    pub restarts: i32,
}

pub async fn istiod_run(s: &Session, c: &ClusterTopology) -> Result<IstiodRun> {
    let pod = first_running_pod(&s.kube(&c.name).await?, names::ISTIO_SYSTEM, "app=istiod").await?;
    let restarts = pod
        .status
        .as_ref()
        .and_then(|st| st.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    Ok(IstiodRun {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        restarts,
    })
}

/// The `Updating cluster` lines istiod logged for `peer` (secretcontroller.go
/// `addSecret`: `logger.Infof("%s cluster", action)` with the labels
/// `cluster=<id> secret=<ns/name>`), in the part of its log read.
pub fn updating_lines(log: &str, peer: &str) -> usize {
    log.lines().filter(|l| l.contains("Updating cluster") && sync::remote_cluster_lines(l, peer).len() == 1).count()
}

/// What an operation found before it changed anything: istiod's pod and how
/// many times it had logged rebuilding the other cluster, per cluster.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Before {
    pub istiod: BTreeMap<String, IstiodRun>,
    pub updating_lines: BTreeMap<String, usize>,
}

impl Before {
    pub async fn record(s: &Session) -> Result<Before> {
        let mut before = Before::default();
        for c in &s.topology.clusters {
            before.istiod.insert(c.name.clone(), istiod_run(s, c).await?);
            let peer = &s.topology.peer_of(c).istio_cluster;
            let n = sync::istiod_log(s, c).await.map(|l| updating_lines(&l, peer)).unwrap_or(0);
            before.updating_lines.insert(c.name.clone(), n);
        }
        Ok(before)
    }
}

/// istiod in a cluster still runs in the pod it ran in before, with no
/// container restarted: definite otherwise.
fn same_istiod(c: &ClusterTopology, before: &IstiodRun, now: &IstiodRun) -> Option<Diagnosis> {
    if before.uid != now.uid {
        return Some(Diagnosis::new(
            format!(
                "istiod in {} was replaced during the operation: pod {} before, {} now",
                c.name, before.pod, now.pod
            ),
            "the operation must not need an istiod restart: find who restarted it (kubectl get events -n istio-system)",
        ));
    }
    if now.restarts > before.restarts {
        return Some(Diagnosis::new(
            format!(
                "istiod in {} restarted during the operation ({} container restarts before, {} now)",
                c.name, before.restarts, now.restarts
            ),
            format!("read why: kubectl logs -n istio-system {} -c discovery --previous", now.pod),
        ));
    }
    None
}

/// istiod in every cluster ran on in the pod it ran in before the operation.
pub struct NoIstiodRestart {
    pub before: Before,
}

impl Check for NoIstiodRestart {
    type Evidence = BTreeMap<String, IstiodRun>;

    fn name(&self) -> String {
        "istiod ran on without a restart in every cluster".into()
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.api_call
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Self::Evidence>> {
        let mut now = BTreeMap::new();
        for c in &s.topology.clusters {
            let run = istiod_run(s, c).await?;
            if let Some(before) = self.before.istiod.get(&c.name) {
                if let Some(d) = same_istiod(c, before, &run) {
                    return Ok(Observation::broken(format!("{}: {:?} before, {:?} now", c.name, before, run), d));
                }
            }
            now.insert(c.name.clone(), run);
        }
        Ok(Observation::Holds(now))
    }
}

/// What shows that istiod rebuilt its client of the other cluster.
#[derive(Debug, Serialize)]
pub struct Rebuilt {
    pub istiod: IstiodRun,
    pub updating_lines_before: usize,
    pub updating_lines_now: usize,
    pub clusterz: Vec<istiod::ClusterStatus>,
}

/// istiod in the cluster rebuilt its client of the other cluster from the
/// changed remote secret, in the same pod: it logged one more `Updating
/// cluster` for it than before the operation, and its clusterz reports it
/// `synced`. Definite: istiod restarted, or the other cluster's sync ended
/// for a definite reason (`timeout`, a rejected token). Transient: no new
/// `Updating cluster` line yet, or `syncing`.
pub struct RebuiltRemote {
    pub cluster: ClusterTopology,
    pub before: Before,
    /// The wall time the feature allows (its stated time on the target's clock).
    pub allowed: Duration,
}

impl Check for RebuiltRemote {
    type Evidence = Rebuilt;

    fn name(&self) -> String {
        format!("{}: istiod rebuilt its client of the other cluster without a restart", self.cluster.name)
    }

    fn deadline(&self, _: &Timeouts) -> Duration {
        self.allowed
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Rebuilt>> {
        let c = &self.cluster;
        let peer = s.topology.peer_of(c).istio_cluster.clone();
        let run = istiod_run(s, c).await?;
        if let Some(before) = self.before.istiod.get(&c.name) {
            if let Some(d) = same_istiod(c, before, &run) {
                return Ok(Observation::broken(format!("{before:?} before, {run:?} now"), d));
            }
        }
        let before_lines = self.before.updating_lines.get(&c.name).copied().unwrap_or(0);
        let now_lines = updating_lines(&sync::istiod_log(s, c).await?, &peer);
        let synced = match RemoteClusterSynced(c.clone()).observe(s).await? {
            Observation::Holds(clusterz) => Some(clusterz),
            Observation::Broken { seen, diagnosis } => return Ok(Observation::broken(seen, diagnosis)),
            Observation::Pending { .. } => None,
        };
        match synced {
            Some(clusterz) if now_lines > before_lines => Ok(Observation::Holds(Rebuilt {
                istiod: run,
                updating_lines_before: before_lines,
                updating_lines_now: now_lines,
                clusterz,
            })),
            synced => Ok(Observation::Pending {
                seen: format!(
                    "istiod {}: {now_lines} `Updating cluster` lines for {peer} (before the operation: {before_lines}); {peer} {}",
                    run.pod,
                    if synced.is_some() { "synced" } else { "not synced yet" }
                ),
                diagnosis: Some(Diagnosis::new(
                    format!("istiod in {} has not rebuilt its client of {peer} from the changed remote secret", c.name),
                    "check that the remote secret is labelled istio/multiCluster=true and its kubeconfig changed (an identical one is skipped), and read istiod's log for `Updating cluster`",
                )),
            }),
        }
    }
}

/// A sidecar's helloworld endpoints: its own cluster's pods only.
#[derive(Debug, Serialize)]
pub struct LocalOnly {
    pub cluster: String,
    pub pod: String,
    pub rows: Vec<EndpointRow>,
}

/// The sleep pod's Envoy in the cluster holds, for helloworld, exactly the
/// local helloworld pod IPs on 5000, all HEALTHY, and nothing else (no other
/// network's gateway): what a sidecar holds once istiod dropped the other
/// cluster. Transient until then (istiod pushes over time).
pub struct LocalEndpointsOnly(pub ClusterTopology);

impl Check for LocalEndpointsOnly {
    type Evidence = LocalOnly;

    fn name(&self) -> String {
        format!("{}: the sleep pod's endpoints for helloworld are its own cluster's only", self.0.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<LocalOnly>> {
        let c = &self.0;
        let pod = sync::sleep_pod(s, c).await?;
        let local = sync::helloworld_pod_ips(s, c).await?;
        let rows: Vec<EndpointRow> = sync::sidecar_endpoints(s, c, names::SAMPLE, &pod)
            .await?
            .into_iter()
            .filter(|r| r.cluster == HELLOWORLD_CLUSTER)
            .collect();
        let want: std::collections::BTreeSet<String> =
            local.iter().map(|ip| format!("{ip}:{HELLOWORLD_PORT}")).collect();
        let got: std::collections::BTreeSet<String> = rows.iter().map(EndpointRow::endpoint).collect();
        let healthy = rows.iter().all(|r| r.status == "HEALTHY");
        if got == want && healthy && !want.is_empty() {
            return Ok(Observation::Holds(LocalOnly { cluster: c.name.clone(), pod, rows }));
        }
        Ok(Observation::Pending {
            seen: format!("pod {pod}: endpoints {got:?}, expected only the local {want:?}"),
            diagnosis: Some(Diagnosis::new(
                format!("the sidecar of {pod} in {} still holds endpoints other than its own cluster's", c.name),
                "istiod drops the other cluster when its remote secret is deleted: check that it is gone (kubectl get secrets -n istio-system -l istio/multiCluster=true) and istiod's clusterz",
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updating_lines_are_counted_for_the_peer_only() {
        let log = "2026-01-01T00:00:00Z\tinfo\tUpdating cluster\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2\n\
                   2026-01-01T00:00:01Z\tinfo\tAdding cluster\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2\n\
                   2026-01-01T00:00:02Z\tinfo\tUpdating cluster\tcluster=cluster3 secret=istio-system/istio-remote-secret-cluster3\n\
                   2026-01-01T00:00:03Z\tinfo\tUpdating cluster\tcluster=cluster2 secret=istio-system/x\n";
        assert_eq!(updating_lines(log, "cluster2"), 2);
        assert_eq!(updating_lines(log, "cluster4"), 0);
    }

    #[test]
    fn a_replaced_or_restarted_istiod_is_named() {
        let c = crate::topology::Topology::seed().clusters[0].clone();
        let run = |uid: &str, restarts| IstiodRun { pod: format!("istiod-{uid}"), uid: uid.into(), restarts };
        assert!(same_istiod(&c, &run("a", 0), &run("a", 0)).is_none());
        assert!(same_istiod(&c, &run("a", 0), &run("b", 0)).unwrap().cause.contains("was replaced"));
        assert!(same_istiod(&c, &run("a", 0), &run("a", 1)).unwrap().cause.contains("restarted"));
    }
}
