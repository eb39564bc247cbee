//! Steps of features/provisioning.feature.

use anyhow::Context;
use cucumber::gherkin::Step;
use cucumber::then;

use super::{MeshWorld, StepResult};
use crate::checks::provisioning::{self as check, judge};
use crate::topology::names;

fn record(w: &MeshWorld) -> anyhow::Result<&crate::provision::ProvisionRecord> {
    match w.session.run.provisioned.get() {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => bail!("provisioning failed: {e}"),
        None => bail!("the deployment was not provisioned by an earlier step"),
    }
}

/// This run's stages, ordered by when they really started, are the table's, numbers and names; each created
/// something and started after the previous one finished.
#[then("the provisioning stages ran in this order:")]
async fn stages_in_order(w: &mut MeshWorld, step: &Step) -> StepResult {
    let table = step.table.as_ref().context("this step needs a table")?;
    let want: Vec<(String, String)> = table.rows[1..].iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    judge::stages_in_order(record(w)?, &want).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Each cluster's VPC exists with its topology CIDR and the subnets the seed's VPC module cuts.
#[then("each cluster's VPC has its topology CIDR and the seed's subnets")]
async fn vpcs_match(w: &mut MeshWorld) -> StepResult {
    for c in w.clusters() {
        check::vpc(&w.session, &c).await?;
    }
    Ok(())
}

/// Each VPC has N private or public subnets with this tag, one per availability zone of the region.
#[then(expr = "each VPC has {int} {word} subnets tagged {string}")]
async fn subnets_tagged(w: &mut MeshWorld, count: usize, kind: String, tag: String) -> StepResult {
    let (key, value) = tag.split_once('=').context("a tag is written key=value")?;
    ensure!(kind == "private" || kind == "public", "subnets are private or public, not {kind}");
    for c in w.clusters() {
        let tagged = check::subnets_tagged(&w.session, &c, key, value).await?;
        judge::subnets_per_zone(&tagged, count, &w.topology().availability_zones())
            .map_err(|e| anyhow::anyhow!("{}: {kind} subnets tagged {tag}: {e}", c.vpc_name))?;
    }
    Ok(())
}

/// Both EKS clusters are ACTIVE with an endpoint and a CA, running this Kubernetes version (the configuration's).
#[then(expr = "both EKS clusters are ACTIVE with Kubernetes {string}")]
async fn clusters_active(w: &mut MeshWorld, version: String) -> StepResult {
    ensure!(
        version == w.topology().kubernetes_version,
        "the configuration says Kubernetes {}",
        w.topology().kubernetes_version
    );
    for c in w.clusters() {
        check::cluster_active(&w.session, &c, &version).await?;
    }
    Ok(())
}

/// Each cluster's API server answers /version through the session's client (DescribeCluster and an EKS token
/// unless a kube context is configured for it).
#[then("each cluster's Kubernetes API answers with credentials built from DescribeCluster")]
async fn api_answers(w: &mut MeshWorld) -> StepResult {
    for c in w.clusters() {
        check::api_answers(&w.session, &c).await?;
    }
    Ok(())
}

/// In each cluster the namespace carries the label, set to the cluster's network from the topology.
#[then(expr = "in each cluster the namespace {string} has label {string} set to the cluster's network")]
async fn namespace_network(w: &mut MeshWorld, ns: String, key: String) -> StepResult {
    for c in w.clusters() {
        let got = check::namespace_label(&w.session, &c, &ns, &key).await?;
        judge::label_is(&ns, &key, got.as_deref(), &c.network).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// In each cluster the namespace carries the label with this value.
#[then(expr = "in each cluster the namespace {string} has label {string} set to {string}")]
async fn namespace_label(w: &mut MeshWorld, ns: String, key: String, value: String) -> StepResult {
    for c in w.clusters() {
        let got = check::namespace_label(&w.session, &c, &ns, &key).await?;
        judge::label_is(&ns, &key, got.as_deref(), &value).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// Each cluster's istio-system/cacerts has the four keys Istio's plugged-in CA reads.
#[then(expr = "each cluster has the secret {string} in {string} with keys {word}, {word}, {word} and {word}")]
#[allow(clippy::too_many_arguments)] // cucumber passes each capture as its own argument
async fn cacerts_keys(
    w: &mut MeshWorld,
    step: &Step,
    name: String,
    ns: String,
    k1: String,
    k2: String,
    k3: String,
    k4: String,
) -> StepResult {
    ensure!(
        name == names::CACERTS && ns == names::ISTIO_SYSTEM,
        "Istio reads its plugged-in CA from istio-system/cacerts"
    );
    for c in w.clusters() {
        let (keys, _) = w.now(step, &check::Cacerts(c.clone())).await?;
        judge::has_keys(&keys, &[&k1, &k2, &k3, &k4]).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// In each cluster's cacerts the intermediate CA is signed by the root and matches its private key.
#[then("each intermediate CA is signed by the root and matches its private key")]
async fn intermediates_verify(w: &mut MeshWorld, step: &Step) -> StepResult {
    for c in w.clusters() {
        // The check parses and verifies every certificate; a failure names what is wrong.
        w.now(step, &check::Cacerts(c.clone())).await?;
    }
    Ok(())
}

/// Both clusters' cacerts carry the same root certificate (by fingerprint).
#[then("both clusters share one root certificate")]
async fn one_root(w: &mut MeshWorld, step: &Step) -> StepResult {
    w.now(step, &check::OneRoot(w.clusters())).await?;
    Ok(())
}

/// In each cluster the deployment is available.
#[then(expr = "in each cluster the deployment {string} in {string} is available")]
async fn deployment_available(w: &mut MeshWorld, name: String, ns: String) -> StepResult {
    for c in w.clusters() {
        check::deployment_is_available(&w.session, &c, &ns, &name).await?;
    }
    Ok(())
}

/// In each cluster helloworld-<version of the cluster> is available in the namespace.
#[then(expr = "in each cluster the helloworld deployment of the cluster's version is available in {string}")]
async fn helloworld_available(w: &mut MeshWorld, ns: String) -> StepResult {
    for c in w.clusters() {
        check::deployment_is_available(&w.session, &c, &ns, &format!("helloworld-{}", c.sample_version)).await?;
    }
    Ok(())
}

/// In each cluster istiod runs with the topology's mesh ID, the cluster's Istio cluster name and network.
#[then("in each cluster istiod is configured with the mesh ID, its Istio cluster name and its network")]
async fn istiod_configured(w: &mut MeshWorld) -> StepResult {
    for c in w.clusters() {
        let got = check::istiod_settings(&w.session, &c).await?;
        let want = check::IstiodSettings {
            mesh_id: Some(w.topology().mesh_id.clone()),
            cluster_id: Some(c.istio_cluster.clone()),
            network: Some(c.network.clone()),
        };
        judge::istiod_settings(&got, &want).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// In each cluster the east-west gateway's pods carry the network label and ISTIO_META_REQUESTED_NETWORK_VIEW.
#[then("in each cluster the east-west gateway is labelled with its network and asks for its own network view")]
async fn eastwest_network(w: &mut MeshWorld) -> StepResult {
    for c in w.clusters() {
        let d = check::deployment(&w.session, &c, names::ISTIO_INGRESS, names::EASTWEST_GATEWAY).await?;
        judge::eastwest_network(&d, &c.network).map_err(|e| anyhow::anyhow!("{}: {e}", c.name))?;
    }
    Ok(())
}

/// In each cluster the Gateway selects the east-west gateway and has a TLS AUTO_PASSTHROUGH server on the port for the hosts.
#[then(expr = "in each cluster the Gateway {string} in {string} passes TLS through on port {int} for hosts {string}")]
async fn cross_network_gateway(
    w: &mut MeshWorld,
    step: &Step,
    name: String,
    ns: String,
    port: u16,
    hosts: String,
) -> StepResult {
    for c in w.clusters() {
        let gw = w
            .now(step, &check::IstioGateway { cluster: c.clone(), namespace: ns.clone(), gateway: name.clone() })
            .await?;
        judge::passes_tls_through(&gw, port, &hosts).map_err(|e| anyhow::anyhow!("{}: Gateway {name} {e}", c.name))?;
    }
    Ok(())
}
