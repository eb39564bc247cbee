//! istiod's own view, read like an operator reads it: its debug endpoints
//! through `pilot-discovery request` in the istiod pod.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::kube::exec::{exec, first_running_pod};
use crate::topology::names;

/// One entry of `/debug/clusterz` (what `istioctl remote-clusters` prints).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub id: String,
    #[serde(default)]
    pub secret_name: String,
    #[serde(default)]
    pub sync_status: String,
}

/// One resolved gateway of `/debug/networkz`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct NetworkGateway {
    #[serde(rename = "Network")]
    pub network: String,
    #[serde(rename = "Cluster", default)]
    pub cluster: String,
    #[serde(rename = "Addr")]
    pub addr: String,
    #[serde(rename = "Port")]
    pub port: u16,
}

async fn debug(client: &kube::Client, path: &str, timeout: Duration) -> Result<String> {
    let pod = first_running_pod(client, names::ISTIO_SYSTEM, "app=istiod").await?;
    let name = pod.metadata.name.unwrap_or_default();
    let out =
        exec(client, names::ISTIO_SYSTEM, &name, "discovery", &["pilot-discovery", "request", "GET", path], timeout)
            .await?;
    anyhow::ensure!(
        out.exit_code == 0,
        "pilot-discovery request GET {path} exited {}: {}",
        out.exit_code,
        out.stderr.trim()
    );
    Ok(out.stdout)
}

pub async fn clusterz(client: &kube::Client, timeout: Duration) -> Result<Vec<ClusterStatus>> {
    let body = debug(client, "/debug/clusterz", timeout).await?;
    serde_json::from_str(&body).with_context(|| format!("/debug/clusterz is not the expected JSON: {body}"))
}

pub async fn networkz(client: &kube::Client, timeout: Duration) -> Result<Vec<NetworkGateway>> {
    let body = debug(client, "/debug/networkz", timeout).await?;
    serde_json::from_str(&body).with_context(|| format!("/debug/networkz is not the expected JSON: {body}"))
}
