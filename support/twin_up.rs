//! `meshspec twin up`: provision the seed deployment on the twin and wait until
//! both east-west gateways are ready and each sidecar holds the other network's
//! gateway, with the same checks the features use.

use anyhow::Result;

use crate::checks::readiness;
use crate::provision::api::provision;
use crate::run::Session;

pub async fn bring_up(session: &Session) -> Result<()> {
    let record = provision(session).await?;
    let _ = session.run.provisioned.set(Ok(record));
    for c in &session.topology.clusters {
        readiness::gateway_ready(session, c).await?;
    }
    // Ready means converged: each sleep pod's sidecar holds the other network's gateway.
    for c in &session.topology.clusters {
        crate::checks::check::until(session, &crate::checks::sync::HelloworldEndpoints(c.clone())).await?;
    }
    Ok(())
}
