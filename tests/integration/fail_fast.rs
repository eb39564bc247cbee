//! Both sides of every wait: a definite break made through the API ends the
//! check's wait within a second of being observable, though its deadline is
//! long; a routine, transient disturbance that heals (a gateway scaled away and
//! back, istiod restarted) is waited out and is not a failure.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use meshspec::checks::check::{self, Check, Ending};
use meshspec::checks::{provisioning, readiness, sync};
use meshspec::run::Session;

use super::harness::{init, TwinTarget};

/// A tenth of EKS's deadlines: 30 s and more, far beyond what a definite break may take.
const TIMEOUT_SCALE: f64 = 0.1;

async fn deployed() -> (TwinTarget, std::sync::Arc<Session>) {
    init();
    let target = TwinTarget::start(1000.0).await;
    let session = target.session(TIMEOUT_SCALE).await;
    meshspec::twin_up::bring_up(&session).await.expect("the seed deployment comes up");
    (target, session)
}

/// The check fails as a definite break, with a diagnosis, well within a second.
async fn breaks_at_once<C: Check>(session: &Session, c: C, cause: &str) {
    let deadline = c.deadline(&session.timeouts);
    assert!(deadline >= Duration::from_secs(20), "{}: the deadline is only {deadline:?}", c.name());
    let start = Instant::now();
    let failure = match check::until(session, &c).await {
        Ok(_) => panic!("{}: held after the break", c.name()),
        Err(f) => f,
    };
    let took = start.elapsed();
    assert_eq!(failure.ending, Ending::Broken, "{failure}");
    assert!(took < Duration::from_secs(1), "{}: named after {took:?}: {failure}", c.name());
    let d = failure.diagnosis.as_ref().expect("a definite break has a diagnosis");
    assert!(d.cause.contains(cause), "{}: the diagnosis does not name {cause:?}: {d}", c.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definite_breaks_end_the_wait_within_a_second() {
    let (target, session) = deployed().await;
    let c1 = session.topology.clusters[0].clone();
    let c2 = session.topology.clusters[1].clone();
    let client1 = session.kube(&c1.name).await.unwrap();

    // A healthy deployment first: the same checks hold.
    check::until(&session, &sync::RemoteSecretOf(c1.clone())).await.expect("the remote secret holds");
    check::until(&session, &provisioning::IstioGateway::cross_network(c2.clone())).await.expect("the Gateway holds");

    // The remote secret for cluster2 deleted in eks-1.
    let secrets: Api<Secret> = Api::namespaced(client1.clone(), "istio-system");
    let labelled = secrets.list(&ListParams::default().labels("istio/multiCluster=true")).await.unwrap();
    for s in labelled.items {
        secrets.delete(&s.metadata.name.unwrap(), &DeleteParams::default()).await.unwrap();
    }
    breaks_at_once(&session, sync::RemoteSecretOf(c1.clone()), "has no remote secret").await;
    breaks_at_once(&session, sync::RemoteClusterSynced(c1.clone()), "has no remote secret").await;

    // The cross-network Gateway deleted in eks-2.
    let client2 = session.kube(&c2.name).await.unwrap();
    let (ar, _) = meshspec::kube::apply::served_kind(&client2, "networking.istio.io", "Gateway").await.unwrap();
    let gateways: Api<DynamicObject> = Api::namespaced_with(client2, "istio-ingress", &ar);
    gateways.delete("cross-network-gateway", &DeleteParams::default()).await.unwrap();
    breaks_at_once(&session, provisioning::IstioGateway::cross_network(c2.clone()), "is missing").await;

    // cacerts deleted in eks-1: nothing will recreate it.
    secrets.delete("cacerts", &DeleteParams::default()).await.unwrap();
    breaks_at_once(&session, provisioning::Cacerts(c1.clone()), "cacerts is missing").await;
    session.close().await;
    target.twin.shutdown().await;
}

/// Within 10 s, one observation of the check does not hold, and it is not a definite break.
async fn disturbance_seen<C: Check>(session: &Session, c: &C) {
    let start = Instant::now();
    loop {
        match check::now(session, c).await {
            Err(f) => {
                assert_eq!(f.ending, Ending::Deadline, "a transient state taken for a break: {f}");
                return;
            }
            Ok(_) if start.elapsed() > Duration::from_secs(10) => {
                panic!("{}: the disturbance was never seen", c.name())
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

async fn scale(client: &kube::Client, ns: &str, name: &str, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    deployments.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_disturbances_that_heal_are_waited_out() {
    let (target, session) = deployed().await;
    let c1 = session.topology.clusters[0].clone();
    let client1 = session.kube(&c1.name).await.unwrap();

    // The east-west gateway scaled to zero and back, as a node drain or a rollout does:
    // its targets go unhealthy or away, then the new pod's target turns healthy.
    scale(&client1, "istio-ingress", "istio-eastwestgateway", 0).await;
    let hostname = check::until(&session, &readiness::GatewayHostname(c1.clone())).await.unwrap();
    let lb = check::until(&session, &readiness::LoadBalancerOf { cluster: c1.name.clone(), hostname, active: true })
        .await
        .unwrap();
    let tg = check::now(&session, &readiness::ListenerTargetGroup { cluster: c1.name.clone(), lb, port: 15443 })
        .await
        .unwrap();
    let healthy = readiness::TargetsHealthy { cluster: c1.clone(), target_group: tg };
    // The disturbance must be seen, or this test would prove nothing.
    disturbance_seen(&session, &healthy).await;
    let wait = tokio::spawn({
        let session = session.clone();
        async move { check::until(&session, &healthy).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    scale(&client1, "istio-ingress", "istio-eastwestgateway", 1).await;
    let targets = wait.await.unwrap().unwrap_or_else(|f| panic!("a gateway coming back is not a failure: {f}"));
    assert!(!targets.is_empty() && targets.iter().all(|t| t.state == "healthy"), "{targets:?}");

    // istiod restarted (its pod deleted): clusterz does not answer for a while, then the
    // new istiod syncs the peer again.
    let pods: Api<Pod> = Api::namespaced(client1.clone(), "istio-system");
    for p in pods.list(&ListParams::default().labels("app=istiod")).await.unwrap().items {
        pods.delete(&p.metadata.name.unwrap(), &DeleteParams::default()).await.unwrap();
    }
    disturbance_seen(&session, &sync::RemoteClusterSynced(c1.clone())).await;
    let synced = check::until(&session, &sync::RemoteClusterSynced(c1.clone())).await;
    assert!(synced.is_ok(), "an istiod restart is not a failure: {}", synced.unwrap_err());
    let endpoints = check::until(&session, &sync::HelloworldEndpoints(c1.clone())).await;
    assert!(endpoints.is_ok(), "an istiod restart is not a failure: {}", endpoints.unwrap_err());
    session.close().await;
    target.twin.shutdown().await;
}
