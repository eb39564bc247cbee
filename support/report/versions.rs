//! What the run ran against: per cluster, the Kubernetes version its API
//! server reports, the EKS version and platform version from DescribeCluster
//! (targets with AWS), and the image tags of the Istio deployments. Read at
//! the end of a run through the session; every part is best effort and says
//! why when it cannot be read.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde::{Deserialize, Serialize};

use crate::run::Session;
use crate::topology::names;

/// One fact: its value, or why it could not be read. Written as one string,
/// the value or `unavailable: <why>`, which reads well in JSON and YAML alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Value(String),
    Unavailable(String),
}

const UNAVAILABLE: &str = "unavailable: ";

impl Serialize for Seen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix(UNAVAILABLE) {
            Some(why) => Seen::Unavailable(why.to_string()),
            None => Seen::Value(s),
        })
    }
}

impl Seen {
    fn of<E: std::fmt::Display>(r: Result<String, E>) -> Seen {
        match r {
            Ok(v) => Seen::Value(v),
            Err(e) => Seen::Unavailable(super::redact::redact_text(&e.to_string())),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Seen::Value(v) => v.clone(),
            Seen::Unavailable(why) => format!("{UNAVAILABLE}{why}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterVersions {
    pub cluster: String,
    /// The API server's gitVersion (`/version`).
    pub kubernetes: Seen,
    pub eks_version: Seen,
    pub eks_platform_version: Seen,
    /// Image tag per Istio deployment, by `namespace/name`.
    pub istio: BTreeMap<String, Seen>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// This meshspec's version.
    pub meshspec: String,
    pub clusters: Vec<ClusterVersions>,
}

/// The Istio deployments whose images say which Istio runs.
pub const ISTIO_DEPLOYMENTS: &[(&str, &str)] = &[
    (names::ISTIO_SYSTEM, "istiod"),
    (names::ISTIO_INGRESS, names::INGRESS_GATEWAY),
    (names::ISTIO_INGRESS, names::EASTWEST_GATEWAY),
];

/// The tag of an image reference (`hub/name:tag`, `name@sha256:...`).
pub fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag.to_string(),
        None => "latest (no tag)".to_string(),
    }
}

async fn bounded<T>(limit: Duration, f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {limit:?}")))
}

async fn cluster_versions(session: &Session, cluster: &str) -> ClusterVersions {
    let limit = session.timeouts.api_call;
    let client = bounded(limit, session.kube(cluster)).await.map_err(|e| format!("{e:#}"));
    let kubernetes = match &client {
        Ok(c) => Seen::of(
            bounded(limit, async { Ok(c.apiserver_version().await?.git_version) }).await.map_err(|e| format!("{e:#}")),
        ),
        Err(e) => Seen::Unavailable(e.clone()),
    };
    let (eks_version, eks_platform_version) = match session.aws() {
        Err(e) => (Seen::Unavailable(format!("{e:#}")), Seen::Unavailable(format!("{e:#}"))),
        Ok(aws) => match bounded(limit, crate::aws::eks::describe(aws, cluster)).await {
            Ok(Some(d)) => {
                (Seen::Value(d.version), Seen::of(d.platform_version.ok_or("DescribeCluster gave no platformVersion")))
            }
            Ok(None) => {
                let why = format!("EKS has no cluster {cluster}");
                (Seen::Unavailable(why.clone()), Seen::Unavailable(why))
            }
            Err(e) => (Seen::Unavailable(format!("{e:#}")), Seen::Unavailable(format!("{e:#}"))),
        },
    };
    let mut istio = BTreeMap::new();
    for (ns, name) in ISTIO_DEPLOYMENTS {
        let seen = match &client {
            Err(e) => Seen::Unavailable(e.clone()),
            Ok(c) => {
                let got = bounded(limit, async {
                    let d = Api::<Deployment>::namespaced(c.clone(), ns).get_opt(name).await?;
                    let d = d.ok_or_else(|| anyhow::anyhow!("no deployment {ns}/{name}"))?;
                    let image = d
                        .spec
                        .and_then(|s| s.template.spec)
                        .and_then(|s| s.containers.into_iter().next())
                        .and_then(|c| c.image)
                        .ok_or_else(|| anyhow::anyhow!("{ns}/{name} has no container image"))?;
                    Ok(image_tag(&image))
                })
                .await;
                Seen::of(got.map_err(|e| format!("{e:#}")))
            }
        };
        istio.insert(format!("{ns}/{name}"), seen);
    }
    ClusterVersions { cluster: cluster.to_string(), kubernetes, eks_version, eks_platform_version, istio }
}

/// Every cluster of the session's topology.
pub async fn collect(session: &Session) -> Versions {
    let mut clusters = Vec::new();
    for c in &session.topology.clusters {
        clusters.push(cluster_versions(session, &c.name).await);
    }
    Versions { meshspec: env!("CARGO_PKG_VERSION").to_string(), clusters }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("docker.io/istio/pilot:1.20.2"), "1.20.2");
        assert_eq!(image_tag("localhost:5000/istio/proxyv2:1.21.0-distroless"), "1.21.0-distroless");
        assert_eq!(image_tag("istio/pilot@sha256:abc"), "sha256:abc");
        assert_eq!(image_tag("localhost:5000/pilot"), "latest (no tag)");
    }

    #[test]
    fn facts_serialize_as_value_or_reason_and_back() {
        let facts = vec![Seen::Value("v1.28".into()), Seen::Unavailable("the kind target has no AWS APIs".into())];
        let v = serde_json::to_value(&facts).unwrap();
        assert_eq!(v, serde_json::json!(["v1.28", "unavailable: the kind target has no AWS APIs"]));
        assert_eq!(serde_json::from_value::<Vec<Seen>>(v).unwrap(), facts);
    }
}
