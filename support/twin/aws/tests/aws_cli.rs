//! The aws CLI v1 (an implementation nobody here wrote) against the endpoint:
//! request encoding, signatures, envelopes, pagination and error codes as a
//! real client sees them.

mod common;

use common::*;
use meshspec_twin_aws::{ClusterEndpoint, ClusterSpec, Delays, EksHooks, NewLoadBalancer, NewTargetGroup};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_network_lifecycle_and_dependency_violation() {
    let (state, server) = start(1000.0, Delays::default()).await;
    let url = server.url.as_str();

    let vpc = aws(
        url,
        &[
            "ec2",
            "create-vpc",
            "--cidr-block",
            "10.1.0.0/16",
            "--tag-specifications",
            "ResourceType=vpc,Tags=[{Key=Name,Value=eks-1-vpc}]",
        ],
    )
    .await
    .json();
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_string();
    assert_eq!(vpc["Vpc"]["State"], "pending");
    assert_eq!(vpc["Vpc"]["Tags"][0]["Value"], "eks-1-vpc");
    state.create_vpc("10.2.0.0/16", tags(&[("Name", "eks-2-vpc")])).unwrap();

    for (cidr, az) in [("10.1.48.0/24", "us-west-2a"), ("10.1.49.0/24", "us-west-2b")] {
        let spec = "ResourceType=subnet,Tags=[{Key=kubernetes.io/role/elb,Value=1}]";
        let subnet = aws(
            url,
            &[
                "ec2",
                "create-subnet",
                "--vpc-id",
                &vpc_id,
                "--cidr-block",
                cidr,
                "--availability-zone",
                az,
                "--tag-specifications",
                spec,
            ],
        )
        .await
        .json();
        assert_eq!(subnet["Subnet"]["AvailabilityZone"], az);
        assert_eq!(subnet["Subnet"]["AvailableIpAddressCount"], 251);
    }

    // Filters with tags and wildcards, as the CLI encodes them (Filter.N.Value.M).
    std::thread::sleep(Duration::from_millis(10)); // 2 simulated seconds: the VPC is available
    let vpcs = aws(
        url,
        &["ec2", "describe-vpcs", "--filters", "Name=tag:Name,Values=eks-1-*,other", "Name=state,Values=available"],
    )
    .await
    .json();
    let found: Vec<&str> = vpcs["Vpcs"].as_array().unwrap().iter().filter_map(|v| v["VpcId"].as_str()).collect();
    assert_eq!(found, vec![vpc_id.as_str()]);

    let subnets = aws(
        url,
        &[
            "ec2",
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={vpc_id}"),
            "Name=tag:kubernetes.io/role/elb,Values=1",
        ],
    )
    .await
    .json();
    let subnets = subnets["Subnets"].as_array().unwrap().clone();
    assert_eq!(subnets.len(), 2);
    assert_eq!(subnets[1]["AvailabilityZoneId"], "usw2-az2");
    let subnet_ids: Vec<String> = subnets.iter().map(|s| s["SubnetId"].as_str().unwrap().to_string()).collect();

    // An NLB in those subnets leaves requester-managed ENIs behind in the VPC.
    let lb = state
        .create_load_balancer(NewLoadBalancer {
            name: "istio-eastwestgateway".into(),
            scheme: "internet-facing".into(),
            subnet_ids: subnet_ids.clone(),
            ..Default::default()
        })
        .unwrap();
    let enis = aws(
        url,
        &["ec2", "describe-network-interfaces", "--filters", "Name=description,Values=ELB net/istio-eastwestgateway/*"],
    )
    .await
    .json();
    let enis = enis["NetworkInterfaces"].as_array().unwrap().clone();
    assert_eq!(enis.len(), 2);
    assert!(enis.iter().all(|e| e["InterfaceType"] == "network_load_balancer" && e["RequesterManaged"] == true));
    assert!(enis.iter().all(|e| e["Association"]["PublicIp"].is_string()));

    let refused = aws(url, &["ec2", "delete-vpc", "--vpc-id", &vpc_id]).await;
    assert_eq!(refused.code, 255, "{}", refused.stdout);
    assert!(refused.stderr.contains("(DependencyViolation)"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!("The vpc '{vpc_id}' has dependencies and cannot be deleted.")),
        "{}",
        refused.stderr
    );

    state.delete_load_balancer(&lb.arn).unwrap();
    for id in &subnet_ids {
        aws(url, &["ec2", "delete-subnet", "--subnet-id", id]).await.json_or_empty();
    }
    let deleted = aws(url, &["ec2", "delete-vpc", "--vpc-id", &vpc_id]).await;
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let gone = aws(url, &["ec2", "describe-vpcs", "--vpc-ids", &vpc_id]).await;
    assert_eq!(gone.code, 255);
    assert!(gone.stderr.contains("(InvalidVpcID.NotFound)"), "{}", gone.stderr);
}

/// Starts nothing; hands out a fixed endpoint and remembers stops.
struct FakeKube {
    stopped: Mutex<Vec<String>>,
}

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtwin\n-----END CERTIFICATE-----\n";

impl EksHooks for FakeKube {
    fn start_cluster(&self, spec: ClusterSpec) -> futures::future::BoxFuture<'static, anyhow::Result<ClusterEndpoint>> {
        Box::pin(async move {
            anyhow::ensure!(spec.vpc_cidr == "10.1.0.0/16", "unexpected VPC CIDR {}", spec.vpc_cidr);
            if spec.name == "broken" {
                anyhow::bail!("no control plane for you");
            }
            Ok(ClusterEndpoint { endpoint: "https://127.0.0.1:6443".into(), ca_pem: CA_PEM.into() })
        })
    }

    fn stop_cluster(&self, name: &str) {
        self.stopped.lock().unwrap().push(name.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eks_clusters_tokens_and_caller_identity() {
    let delays = Delays {
        cluster_create: Duration::from_secs(600),
        cluster_delete: Duration::from_secs(300),
        ..Delays::default()
    };
    // 600 simulated seconds take 0.3 s.
    let (state, server) = start(2000.0, delays).await;
    let url = server.url.as_str();
    let hooks = Arc::new(FakeKube { stopped: Mutex::new(Vec::new()) });
    state.set_eks_hooks(hooks.clone());
    let (_, subnets) = network(&state);
    let vpc_config = format!("subnetIds={},{}", subnets[0], subnets[1]);

    let created = aws(
        url,
        &[
            "eks",
            "create-cluster",
            "--name",
            "eks-1",
            "--role-arn",
            "arn:aws:iam::123456789012:role/eks",
            "--resources-vpc-config",
            &vpc_config,
            "--kubernetes-version",
            "1.28",
        ],
    )
    .await
    .json();
    assert_eq!(created["cluster"]["status"], "CREATING");
    assert!(created["cluster"].get("endpoint").is_none(), "no endpoint before ACTIVE");
    assert!(
        created["cluster"]["createdAt"].is_f64(),
        "createdAt is an epoch number on the wire (CLI v1 prints it as sent)"
    );
    let sg = created["cluster"]["resourcesVpcConfig"]["clusterSecurityGroupId"].as_str().unwrap().to_string();
    assert_eq!(state.security_groups_tagged("aws:eks:cluster-name", "eks-1"), vec![sg.clone()]);
    assert_eq!(state.security_groups_tagged("kubernetes.io/cluster/eks-1", "owned"), vec![sg]);

    let dup = aws(
        url,
        &[
            "eks",
            "create-cluster",
            "--name",
            "eks-1",
            "--role-arn",
            "arn:aws:iam::123456789012:role/eks",
            "--resources-vpc-config",
            &vpc_config,
        ],
    )
    .await;
    assert!(dup.stderr.contains("(ResourceInUseException)"), "{}", dup.stderr);
    aws(
        url,
        &[
            "eks",
            "create-cluster",
            "--name",
            "broken",
            "--role-arn",
            "arn:aws:iam::123456789012:role/eks",
            "--resources-vpc-config",
            &vpc_config,
        ],
    )
    .await
    .json();

    for _ in 0..100 {
        if state.cluster("eks-1").is_some_and(|c| c.status == "ACTIVE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let described = aws(url, &["eks", "describe-cluster", "--name", "eks-1"]).await.json();
    let cluster = &described["cluster"];
    assert_eq!(cluster["status"], "ACTIVE");
    assert_eq!(cluster["endpoint"], "https://127.0.0.1:6443");
    assert_eq!(cluster["arn"], "arn:aws:eks:us-west-2:123456789012:cluster/eks-1");
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificateAuthority"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), CA_PEM);
    assert_eq!(state.cluster("broken").unwrap().status, "FAILED");

    // Two clusters, one per page: the CLI follows nextToken.
    let listed = aws(url, &["eks", "list-clusters", "--page-size", "1"]).await.json();
    assert_eq!(strs(&listed["clusters"]), vec!["eks-1", "broken"]);

    // `aws eks get-token` presigns GetCallerIdentity for this endpoint.
    let token = aws(url, &["eks", "get-token", "--cluster-name", "eks-1"]).await.json();
    let token = token["status"]["token"].as_str().unwrap();
    let encoded = token.strip_prefix("k8s-aws-v1.").expect("token prefix");
    let presigned_url =
        String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
    assert!(presigned_url.starts_with(&format!("{url}/?")), "{presigned_url}");
    let identity = state.verify_presigned_sts(&presigned_url, "eks-1").expect("a fresh token verifies");
    assert_eq!(identity.arn, "arn:aws:iam::123456789012:user/meshspec");
    assert!(state.verify_presigned_sts(&presigned_url, "eks-2").is_err(), "the token is bound to its cluster");

    let me = aws(url, &["sts", "get-caller-identity"]).await.json();
    assert_eq!(me["Account"], "123456789012");
    assert_eq!(me["Arn"], "arn:aws:iam::123456789012:user/meshspec");

    let missing = aws(url, &["eks", "describe-cluster", "--name", "nope"]).await;
    assert_eq!(missing.code, 255);
    assert!(
        missing.stderr.contains("(ResourceNotFoundException)")
            && missing.stderr.contains("No cluster found for name: nope."),
        "{}",
        missing.stderr
    );

    let deleting = aws(url, &["eks", "delete-cluster", "--name", "eks-1"]).await.json();
    assert_eq!(deleting["cluster"]["status"], "DELETING");
    assert_eq!(*hooks.stopped.lock().unwrap(), vec!["eks-1".to_string()]);
    tokio::time::sleep(Duration::from_millis(200)).await; // 300 simulated seconds take 0.15 s
    assert!(state.cluster("eks-1").is_none());
    assert!(state.security_groups_tagged("aws:eks:cluster-name", "eks-1").is_empty(), "the cluster group goes with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elbv2_load_balancers_listeners_targets_and_tags() {
    let delays = Delays { nlb_provision: Duration::ZERO, target_registration: Duration::ZERO, ..Delays::default() };
    let (state, server) = start(1000.0, delays).await;
    let url = server.url.as_str();
    let (vpc, subnets) = network(&state);

    let lb = state
        .create_load_balancer(NewLoadBalancer {
            name: "gw".into(),
            scheme: "internet-facing".into(),
            subnet_ids: subnets.clone(),
            security_group_ids: vec![],
            tags: tags(&[
                ("elbv2.k8s.aws/cluster", "eks-1"),
                ("service.k8s.aws/stack", "istio-ingress/istio-eastwestgateway"),
            ]),
        })
        .unwrap();
    let tg = state
        .create_target_group(NewTargetGroup {
            name: "k8s-gw-15443".into(),
            port: 15443,
            vpc_id: vpc.clone(),
            tags: tags(&[("elbv2.k8s.aws/cluster", "eks-1")]),
            ..Default::default()
        })
        .unwrap();
    state.create_listener(&lb.arn, 15443, &tg, vec![]).unwrap();
    state.register_targets(&tg, &[("10.1.48.10".into(), 15443), ("10.1.49.11".into(), 15443)]).unwrap();
    for _ in 0..3 {
        state.record_health_check(&tg, "10.1.48.10", 15443, true);
    }
    // 400 more NLBs, so that the default page (400) is not enough.
    for i in 0..400 {
        state
            .create_load_balancer(NewLoadBalancer {
                name: format!("nlb-{i}"),
                scheme: "internal".into(),
                subnet_ids: vec![subnets[i % 3].clone()],
                ..Default::default()
            })
            .unwrap();
    }

    let all = aws(url, &["elbv2", "describe-load-balancers"]).await.json();
    let all = all["LoadBalancers"].as_array().unwrap().clone();
    assert_eq!(all.len(), 401, "the CLI follows NextMarker");
    let first = &all[0];
    assert_eq!(first["LoadBalancerArn"], lb.arn.as_str());
    assert_eq!(first["DNSName"], lb.dns_name.as_str());
    assert_eq!(first["Type"], "network");
    assert_eq!(first["State"]["Code"], "active");
    assert_eq!(first["CanonicalHostedZoneId"], "Z18D5FSROUN65G");
    let zones = first["AvailabilityZones"].as_array().unwrap();
    assert_eq!(zones.len(), 3);
    // No Elastic IPs were given: AWS leaves LoadBalancerAddresses empty, and the
    // nodes' public addresses are on the NLB's network interfaces.
    assert!(zones.iter().all(|z| z["LoadBalancerAddresses"].as_array().is_none_or(|a| a.is_empty())), "{zones:?}");
    let id = lb.arn.split_once(":loadbalancer/").unwrap().1;
    let enis =
        aws(url, &["ec2", "describe-network-interfaces", "--filters", &format!("Name=description,Values=ELB {id}")])
            .await
            .json();
    let mut addresses: Vec<String> = enis["NetworkInterfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Association"]["PublicIp"].as_str().unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = lb.zones.iter().map(|z| z.2.to_string()).collect();
    addresses.sort();
    expected.sort();
    assert_eq!(addresses, expected);

    // Explicit pages (the CLI stops after one when --page-size is given):
    // a NextMarker while more follow, a new one each time, none at the end.
    let mut seen = Vec::new();
    let mut markers: Vec<String> = Vec::new();
    loop {
        let mut args = vec!["elbv2", "describe-load-balancers", "--page-size", "150"];
        if let Some(marker) = markers.last() {
            args.extend(["--marker", marker.as_str()]);
        }
        let page = aws(url, &args).await.json();
        seen.extend(
            page["LoadBalancers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|lb| lb["LoadBalancerName"].as_str().unwrap().to_string()),
        );
        match page["NextMarker"].as_str() {
            Some(marker) => {
                assert!(!markers.iter().any(|m| m == marker), "a repeated marker");
                markers.push(marker.to_string());
            }
            None => break,
        }
        assert!(markers.len() < 5, "pagination does not end");
    }
    assert_eq!(markers.len(), 2);
    let names: Vec<&str> = all.iter().map(|lb| lb["LoadBalancerName"].as_str().unwrap()).collect();
    assert_eq!(seen, names, "pages cover every NLB once, in order");

    let by_name = aws(url, &["elbv2", "describe-load-balancers", "--names", "gw"]).await.json();
    assert_eq!(by_name["LoadBalancers"][0]["LoadBalancerName"], "gw");
    assert!(by_name.get("NextMarker").is_none());

    let listeners = aws(url, &["elbv2", "describe-listeners", "--load-balancer-arn", &lb.arn]).await.json();
    let listener = &listeners["Listeners"][0];
    assert_eq!((listener["Port"].as_u64(), listener["Protocol"].as_str()), (Some(15443), Some("TCP")));
    assert_eq!(listener["DefaultActions"][0]["TargetGroupArn"], tg.as_str());

    let groups = aws(url, &["elbv2", "describe-target-groups", "--load-balancer-arn", &lb.arn]).await.json();
    let group = &groups["TargetGroups"][0];
    assert_eq!(group["TargetGroupName"], "k8s-gw-15443");
    assert_eq!(group["TargetType"], "ip");
    assert_eq!(group["HealthCheckPort"], "traffic-port");
    assert_eq!(strs(&group["LoadBalancerArns"]), vec![lb.arn.clone()]);

    let health = aws(url, &["elbv2", "describe-target-health", "--target-group-arn", &tg]).await.json();
    let health = health["TargetHealthDescriptions"].as_array().unwrap().clone();
    assert_eq!(health.len(), 2);
    assert_eq!(health[0]["Target"]["Id"], "10.1.48.10");
    assert_eq!(health[0]["Target"]["AvailabilityZone"], "us-west-2a");
    assert_eq!(health[0]["TargetHealth"], serde_json::json!({ "State": "healthy" }));
    assert_eq!(health[1]["TargetHealth"]["State"], "initial");
    assert_eq!(health[1]["TargetHealth"]["Reason"], "Elb.InitialHealthChecking");
    let filtered = aws(
        url,
        &["elbv2", "describe-target-health", "--target-group-arn", &tg, "--targets", "Id=10.1.50.9,Port=15443"],
    )
    .await
    .json();
    assert_eq!(filtered["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"], "Target.NotRegistered");

    // DNS: only the zone with a healthy target answers.
    assert_eq!(state.resolve(&lb.dns_name.to_uppercase()), Some(vec![lb.zones[0].2]));

    let described = aws(url, &["elbv2", "describe-tags", "--resource-arns", &lb.arn, &tg]).await.json();
    let descriptions = described["TagDescriptions"].as_array().unwrap();
    assert_eq!(descriptions.len(), 2);
    assert_eq!(descriptions[0]["ResourceArn"], lb.arn.as_str());
    assert!(descriptions[0]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Key"] == "elbv2.k8s.aws/cluster" && t["Value"] == "eks-1"));

    let missing = aws(url, &["elbv2", "describe-load-balancers", "--names", "nope"]).await;
    assert_eq!(missing.code, 255);
    assert!(missing.stderr.contains("(LoadBalancerNotFound)"), "{}", missing.stderr);
    let in_use = aws(url, &["elbv2", "delete-target-group", "--target-group-arn", &tg]).await;
    assert!(in_use.stderr.contains("(ResourceInUse)"), "{}", in_use.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_get_each_services_error() {
    let (_state, server) = start(1000.0, Delays::default()).await;
    let url = server.url.as_str();
    let cases: [(&str, &str, &[&str], &str); 5] = [
        ("AKIAUNKNOWN000000000", SECRET, &["ec2", "describe-vpcs"], "(AuthFailure)"),
        (AKID, "wrong-secret", &["ec2", "describe-vpcs"], "(AuthFailure)"),
        (AKID, "wrong-secret", &["elbv2", "describe-load-balancers"], "(SignatureDoesNotMatch)"),
        ("AKIAUNKNOWN000000000", SECRET, &["eks", "list-clusters"], "(UnrecognizedClientException)"),
        ("AKIAUNKNOWN000000000", SECRET, &["sts", "get-caller-identity"], "(InvalidClientTokenId)"),
    ];
    let runs = cases.iter().map(|(key, secret, args, _)| aws_as(url, key, secret, args));
    let outputs = futures::future::join_all(runs).await;
    for ((_, _, args, code), out) in cases.iter().zip(outputs) {
        assert_eq!(out.code, 255, "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(code), "{args:?}: expected {code} in {}", out.stderr);
    }
}
