//! Steps of features/operations.feature: where a day-2 operation may be done.
//! The operations themselves are grouped with their domain (secrets, CA,
//! gateways); the traffic probe's steps are in `probe`.

use anyhow::anyhow;
use cucumber::gherkin::Step;
use cucumber::given;

use super::{MeshWorld, StepResult};
use crate::target::TargetKind;

/// On the twin a fresh twin of the scenario's own, provisioned with the seed's
/// stages; elsewhere the run's own deployment, which the capability rule for
/// `@disruptive` allows only where this run provisions it (a staging deployment).
#[given("a deployment this scenario may disrupt")]
async fn disruptable(w: &mut MeshWorld, step: &Step) -> StepResult {
    if w.session.kind == TargetKind::Twin {
        let opts = w.fresh_twin();
        w.use_separate(opts).await?.map_err(|e| anyhow!("provisioning failed: {e}"))?;
        Ok(())
    } else {
        super::topology::provisioned(w, step).await
    }
}
