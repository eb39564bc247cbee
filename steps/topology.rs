//! Background steps: the topology the feature describes must be the one
//! configured (fixtures/topology.yaml or --topology), and the deployment exists.

use cucumber::gherkin::Step;
use cucumber::given;

use super::{MeshWorld, StepResult};
use crate::provision::{deploy, ProvisionedBy};

/// The feature's topology table must match the configuration, column by column.
#[given("the mesh topology:")]
async fn the_mesh_topology(w: &mut MeshWorld, step: &Step) -> StepResult {
    let Some(table) = step.table.as_ref() else { bail!("this step needs a table") };
    let header = &table.rows[0];
    let rows = &table.rows[1..];
    ensure!(
        rows.len() == w.topology().clusters.len(),
        "the feature names {} clusters, the configuration {}",
        rows.len(),
        w.topology().clusters.len()
    );
    for row in rows {
        let get = |col: &str| header.iter().position(|h| h == col).map(|i| row[i].as_str());
        let name = get("cluster").ok_or_else(|| anyhow::anyhow!("the table needs a 'cluster' column"))?;
        let c = w.topology().cluster(name)?.clone();
        for (col, configured) in [
            ("istio cluster", &c.istio_cluster),
            ("network", &c.network),
            ("vpc", &c.vpc_name),
            ("vpc cidr", &c.vpc_cidr),
            ("helloworld", &c.sample_version),
        ] {
            if let Some(said) = get(col) {
                ensure!(
                    said == configured,
                    "cluster {name}: the feature says {col} {said:?}, the configuration {configured:?}"
                );
            }
        }
    }
    Ok(())
}

/// The feature's mesh ID and region are the configuration's.
#[given(expr = "the mesh ID is {string} in region {string}")]
async fn mesh_id_and_region(w: &mut MeshWorld, mesh: String, region: String) -> StepResult {
    ensure!(w.topology().mesh_id == mesh, "the configuration's mesh ID is {:?}", w.topology().mesh_id);
    ensure!(w.topology().region == region, "the configuration's region is {:?}", w.topology().region);
    Ok(())
}

/// Provision once per run (every scenario after the first sees the same
/// record); a target meshspec may not provision must already hold the deployment.
#[given("the deployment is provisioned in stages on the target")]
pub(super) async fn provisioned(w: &mut MeshWorld, step: &Step) -> StepResult {
    let session = w.session.clone();
    let mut here = false;
    let outcome = session
        .run
        .provisioned
        .get_or_init(|| {
            here = true;
            async { deploy(&session).await.map_err(|e| crate::provision::ProvisionFailure::of(&e)) }
        })
        .await;
    let record = match outcome {
        Ok(r) => r,
        Err(f) => {
            if let Some(d) = &f.diagnosis {
                w.attach(step, super::DIAGNOSIS_EVIDENCE, d);
            }
            bail!("provisioning failed: {f}");
        }
    };
    // The stage timeline goes with the step that provisioned, once per run.
    if here {
        w.attach(step, "provisioning stages", record);
    }
    ensure!(record.by == ProvisionedBy::Existing || !record.stages.is_empty(), "provisioning recorded no stage");
    Ok(())
}
