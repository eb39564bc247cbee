//! The Docker engine, as the k3s target and the stand-in image use it:
//! whether one answers, the labels that prove meshspec made a container or
//! network, and removing what a run made (at its end, on failure, on Ctrl-C,
//! and by `meshspec reap`). Containers are started through testcontainers;
//! the networks are made here, labelled, because testcontainers makes its
//! own unlabelled.

pub mod k3s;
pub mod processes;
pub mod standin_image;

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use testcontainers::bollard::Docker;

/// Every container and network meshspec makes carries this label...
pub const MANAGED_BY_LABEL: &str = "meshspec.io/managed-by";
pub const MANAGED_BY: &str = "meshspec";
/// ... and the run that made it, so that a reap removes one run's and no other's.
pub const RUN_LABEL: &str = "meshspec.io/run";
/// The topology cluster a container stands for.
pub const CLUSTER_LABEL: &str = "meshspec.io/cluster";

/// An image labelled `meshspec.io/privileged=false` runs unprivileged; K3s itself needs privileges.
pub const PRIVILEGED_LABEL: &str = "meshspec.io/privileged";

/// The ledger's kinds for what the k3s target makes.
pub const LEDGER_CONTAINER: &str = "docker container";
pub const LEDGER_NETWORK: &str = "docker network";

/// How long the engine may take to answer a ping before it counts as absent.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no container can be started.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no Docker engine answers at {host} ({reason}): start one (e.g. `sudo systemctl start docker`, or Docker Desktop) or set DOCKER_HOST to one that runs"
    )]
    NotAnswering { host: String, reason: String },
}

/// Where the engine is looked for: DOCKER_HOST, else the local socket.
pub fn engine_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// A client of the engine DOCKER_HOST names (else the local socket), once it answered a ping.
pub async fn engine() -> Result<Docker, EngineError> {
    engine_at(&engine_host()).await
}

/// A client of the engine at `host` (`unix://PATH`, `tcp://` or `http://HOST:PORT`), once it answered a ping.
pub async fn engine_at(host: &str) -> Result<Docker, EngineError> {
    let fail = |reason: String| EngineError::NotAnswering { host: host.to_string(), reason };
    let version = testcontainers::bollard::API_DEFAULT_VERSION;
    let docker = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, 30, version)
    } else if let Some(rest) = host.strip_prefix("tcp://") {
        Docker::connect_with_http(&format!("http://{rest}"), 30, version)
    } else if host.starts_with("http://") {
        Docker::connect_with_http(host, 30, version)
    } else {
        return Err(fail("not a unix://, tcp:// or http:// address".into()));
    }
    .map_err(|e| fail(one_line(&e.to_string())))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(fail(one_line(&e.to_string()))),
        Err(_) => Err(fail(format!("no answer to a ping within {}s", PING_TIMEOUT.as_secs()))),
    }
}

/// The engine's version, for doctor.
pub async fn engine_version(docker: &Docker) -> Option<String> {
    docker.version().await.ok().and_then(|v| v.version)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The labels of everything one run makes.
pub fn labels(run_id: &str, cluster: Option<&str>) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
    ]);
    if let Some(c) = cluster {
        l.insert(CLUSTER_LABEL.to_string(), c.to_string());
    }
    l
}

/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; a run id already fits.
pub fn name(run_id: &str, part: &str) -> String {
    let part: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
    format!("meshspec-{run_id}-{part}").to_ascii_lowercase()
}

/// What a run left in the engine, as found by its labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// (id, name)
    pub containers: Vec<(String, String)>,
    /// (id, name)
    pub networks: Vec<(String, String)>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty()
    }
}

fn label_filter(run_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{MANAGED_BY_LABEL}={MANAGED_BY}"), format!("{RUN_LABEL}={run_id}")],
    )])
}

/// The containers (running or not) and networks carrying a run's labels.
pub async fn find(docker: &Docker, run_id: &str) -> Result<Found, testcontainers::bollard::errors::Error> {
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&label_filter(run_id)).build()))
        .await?
        .into_iter()
        .map(|c| {
            let name = c.names.and_then(|n| n.first().cloned()).unwrap_or_default();
            (c.id.unwrap_or_default(), name.trim_start_matches('/').to_string())
        })
        .collect();
    let networks = docker
        .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&label_filter(run_id)).build()))
        .await?
        .into_iter()
        .map(|n| (n.id.unwrap_or_default(), n.name.unwrap_or_default()))
        .collect();
    Ok(Found { containers, networks })
}

/// Removes every container, then every network, of a run (only those its
/// labels prove it made); returns what is still there afterwards.
pub async fn remove_run(docker: &Docker, run_id: &str) -> anyhow::Result<Found> {
    let found = find(docker, run_id).await?;
    for (id, name) in &found.containers {
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match docker.remove_container(id, Some(opts)).await {
            Ok(()) => tracing::info!(container = %name, "removed"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::warn!(container = %name, error = %e, "cannot remove"),
        }
    }
    for (id, name) in &found.networks {
        match docker.remove_network(id).await {
            Ok(()) => tracing::info!(network = %name, "removed"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => tracing::warn!(network = %name, error = %e, "cannot remove"),
        }
    }
    Ok(find(docker, run_id).await?)
}

fn is_not_found(e: &testcontainers::bollard::errors::Error) -> bool {
    matches!(e, testcontainers::bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_docker_names_and_carry_the_run() {
        assert_eq!(name("20261207T050000Z-0a1b2c3d", "cluster1"), "meshspec-20261207t050000z-0a1b2c3d-cluster1");
        assert_eq!(name("r", "a b/c"), "meshspec-r-a-b-c");
    }

    #[test]
    fn labels_name_meshspec_the_run_and_the_cluster() {
        let l = labels("run", Some("cluster2"));
        assert_eq!(l[MANAGED_BY_LABEL], "meshspec");
        assert_eq!(l[RUN_LABEL], "run");
        assert_eq!(l[CLUSTER_LABEL], "cluster2");
        assert!(!labels("run", None).contains_key(CLUSTER_LABEL));
    }

    #[tokio::test]
    async fn an_engine_that_is_not_there_is_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/docker.sock", dir.path().display());
        let text = engine_at(&host).await.unwrap_err().to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with(&format!("no Docker engine answers at {host} (")), "{text}");
        assert!(text.contains("DOCKER_HOST"), "{text}");
        let text = engine_at("ssh://somewhere").await.unwrap_err().to_string();
        assert!(text.contains("not a unix://, tcp:// or http:// address"), "{text}");
    }
}
