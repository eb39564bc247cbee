//! Every response the endpoint renders for an operation meshspec, the runbook
//! or the twin's own API uses, checked against the service models botocore
//! ships (see `botocore/mod.rs`): successes and the errors meshspec relies on
//! (not found, duplicates, dependency violations, validation, throttling and
//! unavailability). The requests are signed like aws-sdk-rust's and the raw
//! bodies are what is checked, so nothing a client would smooth over escapes.

mod botocore;
mod common;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use botocore::{botocore, parse_xml, Node, Response};
use common::*;
use meshspec_twin_aws::{
    serve, ApiFaults, AwsConfig, AwsServer, AwsState, Clock, ClusterEndpoint, ClusterSpec, Delays, EksHooks,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// (service, operation): what meshspec's adapters (support/aws, support/provision,
/// support/checks, support/doctor.rs), the runbook (`aws eks describe-cluster`,
/// `update-kubeconfig`, `get-token`, `aws elbv2 describe-load-balancers`,
/// `describe-listeners`, `describe-target-health`) and the integration tests
/// call, and everything else the endpoint implements.
const OPERATIONS: &[(&str, &str)] = &[
    ("ec2", "CreateVpc"),
    ("ec2", "DescribeVpcs"),
    ("ec2", "ModifyVpcAttribute"),
    ("ec2", "DescribeVpcAttribute"),
    ("ec2", "DeleteVpc"),
    ("ec2", "CreateSubnet"),
    ("ec2", "DescribeSubnets"),
    ("ec2", "DeleteSubnet"),
    ("ec2", "CreateSecurityGroup"),
    ("ec2", "DescribeSecurityGroups"),
    ("ec2", "DeleteSecurityGroup"),
    ("ec2", "DescribeNetworkInterfaces"),
    ("ec2", "DeleteNetworkInterface"),
    ("ec2", "CreateTags"),
    ("ec2", "DeleteTags"),
    ("ec2", "DescribeTags"),
    ("ec2", "DescribeAvailabilityZones"),
    ("elbv2", "CreateLoadBalancer"),
    ("elbv2", "DescribeLoadBalancers"),
    ("elbv2", "DeleteLoadBalancer"),
    ("elbv2", "CreateTargetGroup"),
    ("elbv2", "DescribeTargetGroups"),
    ("elbv2", "ModifyTargetGroup"),
    ("elbv2", "DeleteTargetGroup"),
    ("elbv2", "CreateListener"),
    ("elbv2", "DescribeListeners"),
    ("elbv2", "DeleteListener"),
    ("elbv2", "RegisterTargets"),
    ("elbv2", "DeregisterTargets"),
    ("elbv2", "DescribeTargetHealth"),
    ("elbv2", "AddTags"),
    ("elbv2", "RemoveTags"),
    ("elbv2", "DescribeTags"),
    ("elbv2", "DescribeLoadBalancerAttributes"),
    ("elbv2", "ModifyLoadBalancerAttributes"),
    ("elbv2", "DescribeTargetGroupAttributes"),
    ("elbv2", "ModifyTargetGroupAttributes"),
    ("sts", "GetCallerIdentity"),
    ("eks", "CreateCluster"),
    ("eks", "DescribeCluster"),
    ("eks", "ListClusters"),
    ("eks", "DeleteCluster"),
    ("eks", "UpdateClusterVersion"),
];

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBdTCCARugAwIBAgIUTwin\n-----END CERTIFICATE-----\n";

struct FakeKube;

impl EksHooks for FakeKube {
    fn start_cluster(&self, spec: ClusterSpec) -> futures::future::BoxFuture<'static, anyhow::Result<ClusterEndpoint>> {
        // A cluster called "broken" fails to start: its FAILED status and health issue are rendered too.
        Box::pin(async move {
            anyhow::ensure!(spec.name != "broken", "the control plane did not start");
            Ok(ClusterEndpoint { endpoint: "https://127.0.0.1:6443".into(), ca_pem: CA_PEM.into() })
        })
    }

    fn stop_cluster(&self, _name: &str) {}
}

/// The endpoint, and what was checked against the models.
struct Twin {
    state: AwsState,
    server: AwsServer,
    problems: Mutex<Vec<String>>,
    covered: Mutex<BTreeSet<(String, String)>>,
    errors_seen: Mutex<BTreeSet<(String, String, String)>>,
}

impl Twin {
    async fn start(faults: ApiFaults) -> Twin {
        let state = AwsState::new(AwsConfig {
            credentials: vec![(AKID.to_string(), SECRET.to_string())],
            clock: Clock::new(1000.0),
            delays: Delays::default(),
            faults,
            ..AwsConfig::default()
        });
        state.set_eks_hooks(Arc::new(FakeKube));
        let server = serve(state.clone()).await.expect("serve");
        Twin {
            state,
            server,
            problems: Mutex::new(Vec::new()),
            covered: Mutex::new(BTreeSet::new()),
            errors_seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// One signed request; None when the connection was closed without an answer.
    async fn send(&self, signing_name: &str, method: &str, path: &str, body: &str, json: bool) -> Option<Response> {
        let addr = self.server.addr.to_string();
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", addr.as_str())
            .header("x-amz-user-agent", "aws-sdk-rust/1.3.9 ua/2.1 api/test/1.0 os/linux lang/rust/1.95.0");
        if json {
            builder = builder.header("accept", "application/json");
        }
        if !body.is_empty() {
            let kind = if signing_name == "eks" { "application/json" } else { "application/x-www-form-urlencoded" };
            builder = builder.header("content-type", kind).header("content-length", body.len().to_string());
        }
        let mut request = builder.body(body.as_bytes().to_vec()).unwrap();
        let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name(signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers: Vec<(&str, &str)> =
            request.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
        let signable = SignableRequest::new(
            method,
            request.uri().to_string(),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);

        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (name, value) in request.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        head.push_str("connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(request.body()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let raw = String::from_utf8(raw).expect("UTF-8 answer");
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok())?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Response { status, headers, body: body.to_string() })
    }

    /// Validates `r` as `service`'s `op` and records what it found.
    fn check(&self, service: &str, op: &str, r: &Response) {
        let problems = botocore().check(service, op, r);
        if problems.is_empty() {
            self.covered.lock().unwrap().insert((service.to_string(), op.to_string()));
        }
        self.problems.lock().unwrap().extend(problems.into_iter().map(|p| format!("{p}\n    body: {}", r.body)));
    }

    /// A query-protocol call (EC2, ELBv2, STS) that must succeed.
    async fn ok(&self, service: &str, query: &str) -> Node {
        let (op, r) = self.query(service, query).await;
        assert_eq!(r.status, 200, "{service} {op} failed: {}", r.body);
        self.check(service, &op, &r);
        parse_xml(&r.body).expect("XML")
    }

    /// A query-protocol call that must fail with `code`.
    async fn fails(&self, service: &str, query: &str, code: &str) {
        let (op, r) = self.query(service, query).await;
        assert!(r.status >= 400, "{service} {op} should fail with {code}: {}", r.body);
        assert!(r.body.contains(&format!("<Code>{code}</Code>")), "{service} {op}: expected {code}, got {}", r.body);
        self.errors_seen.lock().unwrap().insert((service.into(), op.clone(), code.into()));
        self.check(service, &op, &r);
    }

    async fn query(&self, service: &str, query: &str) -> (String, Response) {
        let version = match service {
            "ec2" => "2016-11-15",
            "elbv2" => "2015-12-01",
            _ => "2011-06-15",
        };
        let signing = if service == "elbv2" { "elasticloadbalancing" } else { service };
        let op = query.split('&').next().and_then(|a| a.strip_prefix("Action=")).expect("Action first").to_string();
        let body = format!("{query}&Version={version}");
        let r = self.send(signing, "POST", "/", &body, false).await.expect("an answer");
        (op, r)
    }

    /// An EKS call; checks it and returns (status, JSON body).
    async fn eks(&self, op: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let r = self.send("eks", method, path, body, false).await.expect("an answer");
        self.check("eks", op, &r);
        if r.status >= 400 {
            let code = r.header("x-amzn-errortype").unwrap_or_default().to_string();
            self.errors_seen.lock().unwrap().insert(("eks".into(), op.into(), code));
        }
        (r.status, serde_json::from_str(&r.body).unwrap_or_default())
    }

    fn report(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

/// The text of the first element called `name` below `node`.
fn text(node: &Node, name: &str) -> String {
    fn find<'a>(n: &'a Node, name: &str) -> Option<&'a Node> {
        n.children.iter().find_map(|c| if c.name == name { Some(c) } else { find(c, name) })
    }
    find(node, name).map(|n| n.text.clone()).unwrap_or_else(|| panic!("no <{name}> in the answer"))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_botocore_models_it() {
    let b = botocore();
    eprintln!(
        "botocore {}: {}",
        b.version,
        b.services.values().map(|s| s.path.as_str()).collect::<Vec<_>>().join(", ")
    );
    let t = Twin::start(ApiFaults::default()).await;

    // EC2: the network meshspec provisions and inspects.
    let vpc = t.ok("ec2", "Action=CreateVpc&CidrBlock=10.1.0.0%2F16&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=eks-1-vpc").await;
    let vpc_id = text(&vpc, "vpcId");
    t.ok("ec2", &format!("Action=ModifyVpcAttribute&VpcId={vpc_id}&EnableDnsHostnames.Value=true")).await;
    for attribute in ["enableDnsSupport", "enableDnsHostnames"] {
        t.ok("ec2", &format!("Action=DescribeVpcAttribute&VpcId={vpc_id}&Attribute={attribute}")).await;
    }
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
        let s = t
            .ok("ec2", &format!("Action=CreateSubnet&VpcId={vpc_id}&CidrBlock=10.1.{}.0%2F24&AvailabilityZone={az}&TagSpecification.1.ResourceType=subnet&TagSpecification.1.Tag.1.Key=kubernetes.io%2Frole%2Felb&TagSpecification.1.Tag.1.Value=1", 48 + i))
            .await;
        subnets.push(text(&s, "subnetId"));
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // the VPC turns available
    t.ok("ec2", "Action=DescribeVpcs&Filter.1.Name=tag%3AName&Filter.1.Value.1=eks-1-*").await;
    t.ok("ec2", &format!("Action=DescribeVpcs&VpcId.1={vpc_id}")).await;
    t.ok("ec2", "Action=DescribeVpcs&MaxResults=5").await;
    t.ok("ec2", &format!("Action=DescribeSubnets&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}&MaxResults=5")).await;
    let sg = t
        .ok("ec2", &format!("Action=CreateSecurityGroup&GroupName=nodes&GroupDescription=nodes&VpcId={vpc_id}&TagSpecification.1.ResourceType=security-group&TagSpecification.1.Tag.1.Key=owner&TagSpecification.1.Tag.1.Value=meshspec"))
        .await;
    let sg_id = text(&sg, "groupId");
    t.ok("ec2", &format!("Action=DescribeSecurityGroups&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}")).await;
    t.ok(
        "ec2",
        &format!("Action=CreateTags&ResourceId.1={vpc_id}&ResourceId.2={}&Tag.1.Key=team&Tag.1.Value=mesh", subnets[0]),
    )
    .await;
    t.ok("ec2", "Action=DescribeTags&Filter.1.Name=key&Filter.1.Value.1=team").await;
    t.ok("ec2", &format!("Action=DeleteTags&ResourceId.1={}&Tag.1.Key=team", subnets[0])).await;
    t.ok("ec2", "Action=DescribeAvailabilityZones").await;
    t.fails("ec2", "Action=DescribeVpcs&VpcId.1=vpc-0123456789abcdef0", "InvalidVpcID.NotFound").await;
    t.fails("ec2", "Action=DescribeSubnets&SubnetId.1=subnet-0123456789abcdef0", "InvalidSubnetID.NotFound").await;
    t.fails(
        "ec2",
        &format!("Action=CreateSecurityGroup&GroupName=nodes&GroupDescription=d&VpcId={vpc_id}"),
        "InvalidGroup.Duplicate",
    )
    .await;
    t.fails("ec2", &format!("Action=DeleteVpc&VpcId={vpc_id}"), "DependencyViolation").await;
    t.fails("ec2", "Action=CreateVpc", "MissingParameter").await;

    // ELBv2: the east-west gateway's NLB as the load balancer controller
    // makes it, and what readiness and destroy read.
    let subnet_members: String =
        subnets.iter().enumerate().map(|(i, s)| format!("&Subnets.member.{}={s}", i + 1)).collect();
    let lb = t
        .ok("elbv2", &format!("Action=CreateLoadBalancer&Name=eastwest&Type=network&Scheme=internet-facing{subnet_members}&SecurityGroups.member.1={sg_id}&Tags.member.1.Key=elbv2.k8s.aws%2Fcluster&Tags.member.1.Value=eks-1"))
        .await;
    let lb_arn = text(&lb, "LoadBalancerArn");
    t.ok("elbv2", "Action=DescribeLoadBalancers").await;
    t.ok("elbv2", "Action=DescribeLoadBalancers&Names.member.1=eastwest&PageSize=1").await;
    t.ok("ec2", &format!("Action=DescribeNetworkInterfaces&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}")).await;
    let tg = t
        .ok("elbv2", &format!("Action=CreateTargetGroup&Name=k8s-istio-eastwest&Protocol=TCP&Port=15443&VpcId={vpc_id}&TargetType=ip&Tags.member.1.Key=owner&Tags.member.1.Value=meshspec"))
        .await;
    let tg_arn = text(&tg, "TargetGroupArn");
    let listener = t
        .ok("elbv2", &format!("Action=CreateListener&LoadBalancerArn={}&Protocol=TCP&Port=15443&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn={}", enc(&lb_arn), enc(&tg_arn)))
        .await;
    let listener_arn = text(&listener, "ListenerArn");
    t.ok("elbv2", &format!("Action=DescribeListeners&LoadBalancerArn={}", enc(&lb_arn))).await;
    t.ok("elbv2", &format!("Action=DescribeTargetGroups&LoadBalancerArn={}", enc(&lb_arn))).await;
    t.ok("elbv2", "Action=DescribeTargetGroups").await;
    t.ok("elbv2", &format!("Action=RegisterTargets&TargetGroupArn={}&Targets.member.1.Id=10.1.48.10&Targets.member.1.Port=15443&Targets.member.2.Id=10.1.49.10&Targets.member.2.Port=15443", enc(&tg_arn)))
        .await;
    // Every health state the twin renders: registering, then healthy and
    // unhealthy from health checks, and a target that is not registered.
    t.ok("elbv2", &format!("Action=DescribeTargetHealth&TargetGroupArn={}", enc(&tg_arn))).await;
    for _ in 0..5 {
        t.state.record_health_check(&tg_arn, "10.1.48.10", 15443, true);
        t.state.record_health_check(&tg_arn, "10.1.49.10", 15443, false);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.ok("elbv2", &format!("Action=DescribeTargetHealth&TargetGroupArn={}", enc(&tg_arn))).await;
    t.ok(
        "elbv2",
        &format!(
            "Action=DescribeTargetHealth&TargetGroupArn={}&Targets.member.1.Id=10.1.50.99&Targets.member.1.Port=15443",
            enc(&tg_arn)
        ),
    )
    .await;
    t.ok(
        "elbv2",
        &format!(
            "Action=AddTags&ResourceArns.member.1={}&Tags.member.1.Key=team&Tags.member.1.Value=mesh",
            enc(&lb_arn)
        ),
    )
    .await;
    t.ok(
        "elbv2",
        &format!("Action=DescribeTags&ResourceArns.member.1={}&ResourceArns.member.2={}", enc(&lb_arn), enc(&tg_arn)),
    )
    .await;
    t.ok("elbv2", &format!("Action=RemoveTags&ResourceArns.member.1={}&TagKeys.member.1=team", enc(&lb_arn))).await;
    t.ok("elbv2", &format!("Action=DescribeLoadBalancerAttributes&LoadBalancerArn={}", enc(&lb_arn))).await;
    t.ok("elbv2", &format!("Action=ModifyLoadBalancerAttributes&LoadBalancerArn={}&Attributes.member.1.Key=load_balancing.cross_zone.enabled&Attributes.member.1.Value=true", enc(&lb_arn)))
        .await;
    t.ok("elbv2", &format!("Action=ModifyTargetGroup&TargetGroupArn={}&HealthCheckPort=15021", enc(&tg_arn))).await;
    t.ok("elbv2", &format!("Action=ModifyTargetGroup&TargetGroupArn={}&HealthCheckPort=traffic-port", enc(&tg_arn)))
        .await;
    t.ok("elbv2", &format!("Action=DescribeTargetGroupAttributes&TargetGroupArn={}", enc(&tg_arn))).await;
    t.ok("elbv2", &format!("Action=ModifyTargetGroupAttributes&TargetGroupArn={}&Attributes.member.1.Key=deregistration_delay.timeout_seconds&Attributes.member.1.Value=10", enc(&tg_arn)))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the NLB turns active
    t.ok("elbv2", &format!("Action=DescribeLoadBalancers&LoadBalancerArns.member.1={}", enc(&lb_arn))).await;

    t.fails("elbv2", "Action=DescribeLoadBalancers&Names.member.1=nope", "LoadBalancerNotFound").await;
    let unknown_tg = "arn%3Aaws%3Aelasticloadbalancing%3Aus-west-2%3A123456789012%3Atargetgroup%2Fx%2F0123456789abcdef";
    t.fails("elbv2", &format!("Action=DescribeTargetHealth&TargetGroupArn={unknown_tg}"), "TargetGroupNotFound").await;
    t.fails(
        "elbv2",
        &format!("Action=ModifyTargetGroup&TargetGroupArn={unknown_tg}&HealthCheckPort=80"),
        "TargetGroupNotFound",
    )
    .await;
    let unknown_lb =
        "arn%3Aaws%3Aelasticloadbalancing%3Aus-west-2%3A123456789012%3Aloadbalancer%2Fnet%2Fx%2F0123456789abcdef";
    t.fails("elbv2", &format!("Action=DescribeListeners&LoadBalancerArn={unknown_lb}"), "LoadBalancerNotFound").await;
    t.fails("elbv2", &format!("Action=DescribeTargetGroups&LoadBalancerArn={unknown_lb}"), "LoadBalancerNotFound")
        .await;
    t.fails(
        "elbv2",
        &format!("Action=CreateLoadBalancer&Name=eastwest&Type=network&Subnets.member.1={}", subnets[0]),
        "DuplicateLoadBalancerName",
    )
    .await;
    t.fails(
        "elbv2",
        &format!(
            "Action=CreateTargetGroup&Name=k8s-istio-eastwest&Protocol=TCP&Port=15021&VpcId={vpc_id}&TargetType=ip"
        ),
        "DuplicateTargetGroupName",
    )
    .await;
    // The same listener again is idempotent; another target group on its port is not.
    let other = t
        .ok("elbv2", &format!("Action=CreateTargetGroup&Name=k8s-istio-status&Protocol=TCP&Port=15021&VpcId={vpc_id}&TargetType=ip&HealthCheckPort=15021"))
        .await;
    let other_arn = text(&other, "TargetGroupArn");
    t.fails("elbv2", &format!("Action=CreateListener&LoadBalancerArn={}&Protocol=TCP&Port=15443&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn={}", enc(&lb_arn), enc(&other_arn)), "DuplicateListener")
        .await;
    t.fails("elbv2", &format!("Action=DeleteTargetGroup&TargetGroupArn={}", enc(&tg_arn)), "ResourceInUse").await;
    t.fails("elbv2", "Action=DescribeTargetHealth", "ValidationError").await;
    t.fails(
        "elbv2",
        "Action=CreateLoadBalancer&Name=other&Type=network&Subnets.member.1=subnet-0123456789abcdef0",
        "SubnetNotFound",
    )
    .await;
    t.fails(
        "elbv2",
        &format!(
            "Action=CreateLoadBalancer&Name=other&Type=network&Subnets.member.1={}&Subnets.member.2={}",
            subnets[0], subnets[0]
        ),
        "InvalidConfigurationRequest",
    )
    .await;
    t.fails("elbv2", &format!("Action=CreateLoadBalancer&Name=other&Type=network&Subnets.member.1={}&Tags.member.1.Key=a&Tags.member.2.Key=a", subnets[0]), "DuplicateTagKeys")
        .await;
    t.fails(
        "elbv2",
        &format!(
            "Action=RegisterTargets&TargetGroupArn={}&Targets.member.1.Id=not-an-ip&Targets.member.1.Port=15443",
            enc(&tg_arn)
        ),
        "InvalidTarget",
    )
    .await;
    t.fails(
        "elbv2",
        &format!("Action=RegisterTargets&TargetGroupArn={unknown_tg}&Targets.member.1.Id=10.1.48.11"),
        "TargetGroupNotFound",
    )
    .await;
    t.fails("elbv2", &format!("Action=CreateListener&LoadBalancerArn={}&Protocol=UDP&Port=53&DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn={}", enc(&lb_arn), enc(&other_arn)), "IncompatibleProtocols")
        .await;
    t.fails("elbv2", &format!("Action=DescribeTags&ResourceArns.member.1={unknown_lb}"), "LoadBalancerNotFound").await;
    t.fails("elbv2", &format!("Action=DescribeTags&ResourceArns.member.1={unknown_tg}"), "TargetGroupNotFound").await;
    t.fails(
        "elbv2",
        &format!("Action=DeleteListener&ListenerArn={}", enc(&listener_arn.replace("/net/", "/net/x"))),
        "ListenerNotFound",
    )
    .await;
    t.fails(
        "elbv2",
        &format!("Action=DescribeTargetGroupAttributes&TargetGroupArn={unknown_tg}"),
        "TargetGroupNotFound",
    )
    .await;
    t.fails(
        "elbv2",
        &format!("Action=DescribeLoadBalancerAttributes&LoadBalancerArn={unknown_lb}"),
        "LoadBalancerNotFound",
    )
    .await;
    t.ok("elbv2", &format!("Action=ModifyLoadBalancerAttributes&LoadBalancerArn={}&Attributes.member.1.Key=deletion_protection.enabled&Attributes.member.1.Value=true", enc(&lb_arn)))
        .await;
    t.fails("elbv2", &format!("Action=DeleteLoadBalancer&LoadBalancerArn={}", enc(&lb_arn)), "OperationNotPermitted")
        .await;
    t.ok("elbv2", &format!("Action=ModifyLoadBalancerAttributes&LoadBalancerArn={}&Attributes.member.1.Key=deletion_protection.enabled&Attributes.member.1.Value=false", enc(&lb_arn)))
        .await;
    t.fails("ec2", &format!("Action=CreateSubnet&VpcId={vpc_id}&CidrBlock=10.1.48.0%2F25"), "InvalidSubnet.Conflict")
        .await;
    t.fails("ec2", &format!("Action=DeleteSecurityGroup&GroupId={sg_id}"), "DependencyViolation").await;
    t.fails(
        "ec2",
        "Action=CreateTags&ResourceId.1=vpc-0123456789abcdef0&Tag.1.Key=a&Tag.1.Value=b",
        "InvalidVpcID.NotFound",
    )
    .await;
    t.fails("ec2", "Action=DescribeSecurityGroups&GroupId.1=sg-0123456789abcdef0", "InvalidGroup.NotFound").await;
    t.fails("ec2", &format!("Action=DeleteSubnet&SubnetId={}", subnets[0]), "DependencyViolation").await;

    // STS, signed (XML) and as aws-iam-authenticator asks for it (JSON).
    t.ok("sts", "Action=GetCallerIdentity").await;
    let json = t.send("sts", "POST", "/", "Action=GetCallerIdentity&Version=2011-06-15", true).await.unwrap();
    assert_eq!(json.status, 200, "{}", json.body);
    t.problems.lock().unwrap().extend(b.check_query_json("sts", "GetCallerIdentity", &json));

    // EKS: the clusters, as meshspec and `aws eks update-kubeconfig` read them.
    let create = |name: &str| {
        serde_json::json!({
            "name": name,
            "roleArn": "arn:aws:iam::123456789012:role/eks-cluster",
            "version": "1.32",
            "resourcesVpcConfig": { "subnetIds": subnets, "securityGroupIds": [sg_id] },
            "tags": { "owner": "meshspec" },
        })
        .to_string()
    };
    let (status, created) = t.eks("CreateCluster", "POST", "/clusters", &create("eks-1")).await;
    assert_eq!(status, 200, "{created}");
    t.eks("DeleteCluster", "DELETE", "/clusters/eks-1", "").await; // still CREATING: ResourceInUseException
    t.eks("CreateCluster", "POST", "/clusters", &create("eks-1")).await; // ResourceInUseException
    t.eks("CreateCluster", "POST", "/clusters", r#"{"name":"eks-2"}"#).await; // InvalidParameterException
    t.eks("CreateCluster", "POST", "/clusters", "not json").await;
    t.eks("DescribeCluster", "GET", "/clusters/eks-1", "").await;
    t.eks("DescribeCluster", "GET", "/clusters/eks-9", "").await; // ResourceNotFoundException
    t.eks("ListClusters", "GET", "/clusters?maxResults=1", "").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, described) = t.eks("DescribeCluster", "GET", "/clusters/eks-1", "").await;
        if described["cluster"]["status"] == "ACTIVE" {
            break;
        }
        assert!(Instant::now() < deadline, "eks-1 never became ACTIVE: {described}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = t.eks("CreateCluster", "POST", "/clusters", &create("broken")).await;
    assert_eq!(status, 200);
    let failed_by = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, described) = t.eks("DescribeCluster", "GET", "/clusters/broken", "").await;
        if described["cluster"]["status"] == "FAILED" {
            break;
        }
        assert!(Instant::now() < failed_by, "broken never became FAILED: {described}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.eks("ListClusters", "GET", "/clusters", "").await;
    let (status, update) =
        t.eks("UpdateClusterVersion", "POST", "/clusters/eks-1/updates", r#"{"version":"1.33"}"#).await;
    assert_eq!(status, 200, "{update}");
    t.eks("UpdateClusterVersion", "POST", "/clusters/eks-1/updates", r#"{"version":"1.34"}"#).await; // UPDATING: ResourceInUseException
    t.eks("DescribeCluster", "GET", "/clusters/eks-1", "").await; // UPDATING
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, deleted) = t.eks("DeleteCluster", "DELETE", "/clusters/eks-1", "").await;
    assert_eq!(status, 200, "{deleted}");
    t.eks("DeleteCluster", "DELETE", "/clusters/eks-9", "").await; // ResourceNotFoundException

    // Destroy, in the order meshspec destroys.
    t.ok(
        "elbv2",
        &format!(
            "Action=DeregisterTargets&TargetGroupArn={}&Targets.member.1.Id=10.1.48.10&Targets.member.1.Port=15443",
            enc(&tg_arn)
        ),
    )
    .await;
    t.ok("elbv2", &format!("Action=DescribeTargetHealth&TargetGroupArn={}", enc(&tg_arn))).await; // draining
    t.ok("elbv2", &format!("Action=DeleteListener&ListenerArn={}", enc(&listener_arn))).await;
    t.ok("elbv2", &format!("Action=DeleteTargetGroup&TargetGroupArn={}", enc(&tg_arn))).await;
    t.ok("elbv2", &format!("Action=DeleteTargetGroup&TargetGroupArn={}", enc(&other_arn))).await;
    t.ok("elbv2", &format!("Action=DeleteLoadBalancer&LoadBalancerArn={}", enc(&lb_arn))).await;
    let enis = t.ok("ec2", "Action=DescribeNetworkInterfaces").await;
    if let Some(eni) = enis.children.iter().find(|c| c.name == "networkInterfaceSet").and_then(|s| s.children.first()) {
        let eni_id = text(eni, "networkInterfaceId");
        t.fails(
            "ec2",
            &format!("Action=DeleteNetworkInterface&NetworkInterfaceId={eni_id}"),
            "InvalidNetworkInterface.InUse",
        )
        .await;
    }
    let (status, deleted) = t.eks("DeleteCluster", "DELETE", "/clusters/broken", "").await;
    assert_eq!(status, 200, "{deleted}");
    let cluster_gone = Instant::now() + Duration::from_secs(10);
    while t.state.cluster("eks-1").is_some() || t.state.cluster("broken").is_some() {
        assert!(Instant::now() < cluster_gone, "eks-1 was never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.ok("ec2", &format!("Action=DeleteSecurityGroup&GroupId={sg_id}")).await;
    for s in &subnets {
        t.ok("ec2", &format!("Action=DeleteSubnet&SubnetId={s}")).await;
    }
    let leftover =
        t.ok("ec2", &format!("Action=DescribeSecurityGroups&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc_id}")).await;
    for group in leftover.children.iter().filter(|c| c.name == "securityGroupInfo").flat_map(|s| &s.children) {
        if text(group, "groupName") != "default" {
            t.ok("ec2", &format!("Action=DeleteSecurityGroup&GroupId={}", text(group, "groupId"))).await;
        }
    }
    t.ok("ec2", &format!("Action=DeleteVpc&VpcId={vpc_id}")).await;

    let problems = t.report();
    assert!(
        problems.is_empty(),
        "{} disagreement(s) with botocore {}'s models:\n{}",
        problems.len(),
        b.version,
        problems.join("\n")
    );
    let covered = t.covered.lock().unwrap().clone();
    let missing: Vec<&(&str, &str)> =
        OPERATIONS.iter().filter(|(s, o)| !covered.contains(&(s.to_string(), o.to_string()))).collect();
    assert!(missing.is_empty(), "operations never validated: {missing:?}");
    let errors = t.errors_seen.lock().unwrap().clone();
    for expected in [
        ("eks", "DescribeCluster", "ResourceNotFoundException"),
        ("eks", "CreateCluster", "ResourceInUseException"),
        ("eks", "DeleteCluster", "ResourceInUseException"),
        ("eks", "CreateCluster", "InvalidParameterException"),
        ("eks", "UpdateClusterVersion", "ResourceInUseException"),
    ] {
        let e = (expected.0.to_string(), expected.1.to_string(), expected.2.to_string());
        assert!(errors.contains(&e), "never saw {expected:?}; saw {errors:?}");
    }
}

/// Throttling and unavailability as faults.rs injects them, per protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_api_faults_answer_as_botocore_models_them() {
    let t = Twin::start(ApiFaults::at_rate(1.0)).await;
    // (service, operation, method, path, body, the codes injected for it)
    type Call<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a [&'a str]);
    let calls: &[Call] = &[
        (
            "ec2",
            "DescribeVpcs",
            "POST",
            "/",
            "Action=DescribeVpcs&Version=2016-11-15",
            &["RequestLimitExceeded", "Unavailable"],
        ),
        (
            "elbv2",
            "DescribeLoadBalancers",
            "POST",
            "/",
            "Action=DescribeLoadBalancers&Version=2015-12-01",
            &["Throttling", "ServiceUnavailable"],
        ),
        (
            "sts",
            "GetCallerIdentity",
            "POST",
            "/",
            "Action=GetCallerIdentity&Version=2011-06-15",
            &["Throttling", "ServiceUnavailable"],
        ),
        (
            "eks",
            "DescribeCluster",
            "GET",
            "/clusters/eks-1",
            "",
            &["ThrottlingException", "ServiceUnavailableException"],
        ),
        ("eks", "ListClusters", "GET", "/clusters", "", &["ThrottlingException", "ServiceUnavailableException"]),
    ];
    for (service, op, method, path, body, codes) in calls {
        let signing = if *service == "elbv2" { "elasticloadbalancing" } else { service };
        let mut seen = BTreeSet::new();
        for _ in 0..60 {
            // A dropped connection has no answer; a slow one answers as usual.
            let Some(r) = t.send(signing, method, path, body, false).await else { continue };
            t.check(service, op, &r);
            let code = codes
                .iter()
                .find(|c| r.body.contains(&format!("<Code>{c}</Code>")) || r.header("x-amzn-errortype") == Some(**c));
            if let Some(code) = code {
                seen.insert(code.to_string());
            }
            if seen.len() == codes.len() {
                break;
            }
        }
        let want: BTreeSet<String> = codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(seen, want, "{service} {op}: the injected errors");
    }
    let problems = t.report();
    assert!(problems.is_empty(), "{} disagreement(s):\n{}", problems.len(), problems.join("\n"));
}
