//! A target meshspec may not provision is only verified: the deployment must
//! already be there. Before any scenario reads it, each cluster's API must
//! answer and hold the mesh's namespace; what else is missing, the checks of
//! the scenarios find and diagnose one by one.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use super::{ProvisionRecord, ProvisionedBy};
use crate::checks::check::Diagnosis;
use crate::run::Session;
use crate::topology::names;

pub async fn verify(session: &Session) -> Result<ProvisionRecord> {
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        client.apiserver_version().await.with_context(|| format!("the API server of {} does not answer", c.name))?;
        let namespaces: Api<Namespace> = Api::all(client);
        if namespaces.get_opt(names::ISTIO_SYSTEM).await?.is_none() {
            return Err(anyhow::anyhow!("{}: no namespace {}", c.name, names::ISTIO_SYSTEM).context(Diagnosis::new(
                format!("the mesh is not deployed in {}", c.name),
                "provision it first (or let meshspec do it: --allow-provision with every cluster of the topology)",
            )));
        }
    }
    Ok(ProvisionRecord { by: ProvisionedBy::Existing, stages: Vec::new(), root_fingerprint: None })
}
