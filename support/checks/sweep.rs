//! Every check of the runbook, once, on one target: what `diagnosis.feature`
//! runs against a deployment with a fault, collecting the diagnoses of the
//! checks that fail.

use serde::Serialize;

use super::{ordering, provisioning, readiness, sync};
use crate::target::Session;
use crate::topology::names;

#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    pub check: String,
    /// None when the check passed, else its failure with the whole chain.
    pub failure: Option<String>,
}

impl CheckOutcome {
    fn of(check: String, r: anyhow::Result<()>) -> Self {
        CheckOutcome { check, failure: r.err().map(|e| format!("{e:#}")) }
    }

    /// The `diagnosis:` lines of a failure.
    pub fn diagnoses(&self) -> Vec<String> {
        self.failure
            .iter()
            .flat_map(|f| f.lines())
            .filter_map(|l| l.find("diagnosis: ").map(|i| l[i..].trim().to_string()))
            .collect()
    }
}

pub async fn run(session: &Session) -> Vec<CheckOutcome> {
    let mut out = Vec::new();
    match session.provisioned.get() {
        Some(Err(e)) => {
            out.push(CheckOutcome { check: "provisioning".into(), failure: Some(e.clone()) });
            return out;
        }
        None => {
            out.push(CheckOutcome { check: "provisioning".into(), failure: Some("not provisioned".into()) });
            return out;
        }
        Some(Ok(_)) => {}
    }
    let clusters = session.topology.clusters.clone();
    let mut roots = Vec::new();
    for c in &clusters {
        let r = provisioning::cacerts(session, c).await.map(|(_, v)| roots.push(v.root_fingerprint));
        out.push(CheckOutcome::of(format!("{}: cacerts", c.name), r));
    }
    let one_root = if roots.len() == clusters.len() && roots.windows(2).any(|p| p[0] != p[1]) {
        Err(anyhow::anyhow!(
            "{}: the cacerts roots differ",
            crate::faults::diagnosis(
                "the clusters' cacerts come from different roots, so they cannot verify each other's workloads",
                "issue both intermediates from one root, replace cacerts and restart istiod, then the workloads"
            )
        ))
    } else {
        Ok(())
    };
    out.push(CheckOutcome::of("one root".into(), one_root));
    for c in &clusters {
        let name = &c.name;
        out.push(CheckOutcome::of(
            format!("{name}: istiod after cacerts"),
            ordering::istiod_after_cacerts(session, c, names::SAMPLE).await.map(|_| ()),
        ));
        out.push(CheckOutcome::of(
            format!("{name}: cross-network Gateway"),
            provisioning::istio_gateway(session, c, names::ISTIO_INGRESS, names::CROSS_NETWORK_GATEWAY)
                .await
                .map(|_| ()),
        ));
        let ready = async {
            let hostname = readiness::gateway_hostname(session, c).await?;
            let lb = readiness::wait_active(session, &hostname).await?;
            let tg = readiness::listener_target_group(session, &lb, names::CROSS_NETWORK_PORT).await?;
            readiness::wait_all_targets_healthy(session, &tg).await?;
            readiness::resolves_per_zone(session, &lb).await?;
            anyhow::Ok(())
        };
        out.push(CheckOutcome::of(format!("{name}: readiness"), ready.await));
        out.push(CheckOutcome::of(format!("{name}: remote secret"), sync::remote_secret(session, c).await.map(|_| ())));
        out.push(CheckOutcome::of(
            format!("{name}: remote cluster synced"),
            sync::remote_cluster_synced(session, c).await.map(|_| ()),
        ));
        out.push(CheckOutcome::of(
            format!("{name}: endpoints"),
            sync::helloworld_endpoints(session, c).await.map(|_| ()),
        ));
    }
    out
}
