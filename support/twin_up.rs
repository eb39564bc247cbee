//! `meshspec twin up`: provision the seed deployment on the twin and wait until
//! both east-west gateways are ready, with the same code the features use.

use anyhow::Result;

use crate::checks::readiness;
use crate::provision::api::provision;
use crate::target::Session;
use crate::topology::names;

pub async fn bring_up(session: &Session) -> Result<()> {
    let record = provision(session).await?;
    let _ = session.provisioned.set(Ok(record));
    for c in &session.topology.clusters {
        let hostname = readiness::gateway_hostname(session, c).await?;
        let lb = readiness::wait_active(session, &hostname).await?;
        let tg = readiness::listener_target_group(session, &lb, names::CROSS_NETWORK_PORT).await?;
        readiness::wait_all_targets_healthy(session, &tg).await?;
    }
    Ok(())
}
