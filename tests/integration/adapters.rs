//! meshspec's own adapters (kube-rs, aws-sdk) against the twin, seen only
//! through its endpoints: provisioning, the Kubernetes verbs kube-rs uses, and
//! the readiness lookup, including its failure report and pagination.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use meshspec::aws::nlb;
use meshspec::checks::{check, readiness};
use meshspec::provision::api::provision;
use meshspec::topology::names;
use meshspec::twin::aws::{NewLoadBalancer, NewTargetGroup};
use serde_json::json;

use super::harness::{init, TwinTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_kube_rs_verbs_and_readiness_on_the_twin() {
    init();
    let target = TwinTarget::start(1000.0).await;
    let session = target.session(1.0).await;
    let record = provision(&session).await.expect("provisioning succeeds");
    assert_eq!(
        record.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["infrastructure", "control-plane", "workloads"]
    );

    let client = session.kube("eks-1").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A watch started before the create sees it.
    let mut events = watcher(cms.clone(), watcher::Config::default().labels("meshspec-test=watch")).boxed();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "probe", "labels": {"meshspec-test": "watch"}},
        "data": {"a": "1"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.next().await {
            match ev.unwrap() {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o)
                    if o.metadata.name.as_deref() == Some("probe") =>
                {
                    return true
                }
                _ => {}
            }
        }
        false
    })
    .await
    .expect("the watch delivers the created object in time");
    assert!(seen);

    let listed = cms.list(&ListParams::default().labels("meshspec-test=watch")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(cms.list(&ListParams::default().labels("meshspec-test=other")).await.unwrap().items.is_empty());

    // A second create is a 409 AlreadyExists.
    match cms.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.reason, "AlreadyExists"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    // Merge patch keeps siblings; server-side apply sets its fields.
    cms.patch("probe", &PatchParams::default(), &Patch::Merge(json!({"data": {"b": "2"}}))).await.unwrap();
    let applied = cms
        .patch(
            "probe",
            &PatchParams::apply("meshspec-test").force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}, "data": {"c": "3"}}),
            ),
        )
        .await
        .unwrap();
    let data = applied.data.unwrap();
    assert_eq!(
        (data.get("a"), data.get("b"), data.get("c")),
        (Some(&"1".into()), Some(&"2".into()), Some(&"3".into()))
    );

    // Finalizers hold a delete until they are removed.
    cms.patch(
        "probe",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["meshspec.io/test"]}})),
    )
    .await
    .unwrap();
    cms.delete("probe", &DeleteParams::default()).await.unwrap();
    let held = cms.get("probe").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch("probe", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert!(cms.get_opt("probe").await.unwrap().is_none());

    // The status subresource changes only status.
    let svcs: Api<Service> = Api::namespaced(client.clone(), names::SAMPLE);
    let patched = svcs
        .patch_status(
            "sleep",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}, "spec": {"ports": []}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().ports.unwrap().len(), 1, "a status write must not touch spec");
    assert_eq!(patched.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0].ip.as_deref(), Some("192.0.2.7"));

    // Discovery sees the core, apps and Istio groups.
    let discovery = kube::Discovery::new(client.clone()).run().await.expect("discovery runs");
    assert!(discovery.has_group("apps") && discovery.has_group("networking.istio.io"));

    // The readiness lookup end to end, for both clusters.
    for c in &session.topology.clusters {
        let hostname = check::until(&session, &readiness::GatewayHostname(c.clone())).await.unwrap();
        let cluster = c.name.clone();
        let lb =
            check::until(&session, &readiness::LoadBalancerOf { cluster: cluster.clone(), hostname, active: true })
                .await
                .unwrap();
        assert_eq!((lb.kind.as_str(), lb.scheme.as_str(), lb.state.as_str()), ("network", "internet-facing", "active"));
        let listener = |port| readiness::ListenerTargetGroup { cluster: cluster.clone(), lb: lb.clone(), port };
        let tg = check::now(&session, &listener(15443)).await.unwrap();
        let targets =
            check::until(&session, &readiness::TargetsHealthy { cluster: c.clone(), target_group: tg }).await.unwrap();
        assert!(!targets.is_empty() && targets.iter().all(|t| t.state == "healthy" && t.port == 15443));
        let ips = check::until(&session, &readiness::ResolvesPerZone { cluster: cluster.clone(), lb: lb.clone() })
            .await
            .unwrap();
        assert_eq!(ips.len(), 3);
        // The listener on 15012 has nothing behind it listening: its targets do not become healthy.
        let tg_istiod = check::now(&session, &listener(15012)).await.unwrap();
        let health = nlb::target_health(session.aws().unwrap(), &tg_istiod).await.unwrap();
        assert!(health.iter().all(|t| t.state != "healthy"), "{health:?}");
    }
    session.close().await;
    target.twin.shutdown().await;
}

/// Subnets for hand-made load balancers, made through the adapter.
async fn subnets(session: &meshspec::run::Session) -> (String, Vec<String>) {
    use meshspec::aws::network;
    let aws = session.aws().unwrap();
    let vpc =
        network::create_vpc(aws, "10.9.0.0/16", &[("Name".to_string(), "probe".to_string())].into()).await.unwrap();
    let mut ids = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
        let tags = [("kubernetes.io/role/elb".to_string(), "1".to_string())].into();
        // /18 subnets: each NLB takes one address per subnet for its ENI.
        ids.push(network::create_subnet(aws, &vpc.id, &format!("10.9.{}.0/18", i * 64), az, &tags).await.unwrap());
    }
    (vpc.id, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_target_wait_names_every_target_with_state_and_reason() {
    init();
    let target = TwinTarget::start(1000.0).await;
    // Deadlines a hundred times shorter than on EKS: the targets cannot turn healthy in time.
    let session = target.session(0.0005).await;
    let (vpc, subnet_ids) = subnets(&session).await;
    let state = target.twin.aws_state();
    let lb = state
        .create_load_balancer(NewLoadBalancer {
            name: "k8s-probe-probe-0123456789".into(),
            scheme: "internet-facing".into(),
            subnet_ids,
            security_group_ids: vec![],
            tags: vec![],
        })
        .unwrap();
    let tg = state
        .create_target_group(NewTargetGroup {
            name: "k8s-probe-probe-9876543210".into(),
            port: 15443,
            vpc_id: vpc,
            ..Default::default()
        })
        .unwrap();
    state.create_listener(&lb.arn, 15443, &tg, vec![]).unwrap();
    let ips = ["10.9.0.10", "10.9.64.11", "10.9.128.12"];
    state.register_targets(&tg, &ips.iter().map(|ip| (ip.to_string(), 15443)).collect::<Vec<_>>()).unwrap();

    let c = session.topology.clusters[0].clone();
    let err = check::until(&session, &readiness::TargetsHealthy { cluster: c, target_group: tg }).await.unwrap_err();
    // Targets in `initial` or failing on the traffic port are transient: the wait runs to its deadline.
    assert_eq!(err.ending, check::Ending::Deadline, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("timed out"), "{msg}");
    for ip in ips {
        let line = msg.split("; ").find(|part| part.contains(ip)).unwrap_or_else(|| panic!("{ip} missing from: {msg}"));
        assert!(line.contains("15443") && (line.contains("initial") || line.contains("unhealthy")), "{line}");
        assert!(line.contains("[Elb.") || line.contains("[Target."), "no reason for {ip}: {line}");
    }
    session.close().await;
    target.twin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_lookup_follows_every_page() {
    init();
    let target = TwinTarget::start(1000.0).await;
    let session = target.session(1.0).await;
    let (_, subnet_ids) = subnets(&session).await;
    let state = target.twin.aws_state();
    let mut last = None;
    for i in 0..450 {
        last = Some(
            state
                .create_load_balancer(NewLoadBalancer {
                    name: format!("k8s-page-lb{i:03}-0123456789"),
                    scheme: "internal".into(),
                    subnet_ids: subnet_ids.clone(),
                    security_group_ids: vec![],
                    tags: vec![],
                })
                .unwrap(),
        );
    }
    let last = last.unwrap();
    let all = nlb::all(session.aws().unwrap()).await.unwrap();
    assert_eq!(all.len(), 450, "every page is read");
    let found = nlb::find_by_dns_name(session.aws().unwrap(), &last.dns_name.to_uppercase())
        .await
        .unwrap()
        .expect("found on the second page");
    assert_eq!(found.arn, last.arn);
    assert!(nlb::find_by_dns_name(session.aws().unwrap(), "nope.elb.us-west-2.amazonaws.com").await.unwrap().is_none());
    session.close().await;
    target.twin.shutdown().await;
}
