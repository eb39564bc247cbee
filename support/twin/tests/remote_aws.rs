//! `RemoteAws`: a cluster's AWS calls over the wire. The load balancer
//! controller's whole life cycle of an NLB goes through it to the twin's AWS
//! endpoint, each step checked against the model the endpoint serves; EKS
//! tokens presigned as `aws eks get-token` makes them are checked through it
//! as aws-iam-authenticator checks them; and the same operations run against
//! moto, a second AWS implementation, so that what the adapter speaks is
//! AWS's protocol and not only the twin's.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use meshspec_twin::auth::ClusterAuth;
use meshspec_twin::aws::{serve, AwsConfig, AwsServer, AwsState, Clock, NewLoadBalancer, NewTargetGroup};
use meshspec_twin::aws_api::{AwsApi, RemoteAws, RemoteAwsConfig};
use meshspec_twin::kube::Authenticator;

const AKID: &str = "AKIAREMOTEAWSTEST001";
/// Contains `/` and `+` like real secrets do.
const SECRET: &str = "rem0te/Aws+Secret0123456789abcdefghijklm";
const REGION: &str = "us-west-2";
const CLUSTER: &str = "eks-1";
const STACK: &str = "istio-ingress/istio-eastwestgateway";

/// The twin's AWS endpoint on a runtime of its own, so that the test thread
/// calls RemoteAws from outside any runtime, as a reconcile pass blocks.
struct TwinEndpoint {
    state: AwsState,
    server: Option<AwsServer>,
    runtime: tokio::runtime::Runtime,
}

impl TwinEndpoint {
    fn start() -> TwinEndpoint {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        let state = AwsState::new(AwsConfig {
            credentials: vec![(AKID.to_owned(), SECRET.to_owned())],
            clock: Clock::new(1000.0),
            ..AwsConfig::default()
        });
        let server = runtime.block_on(serve(state.clone())).expect("serving the twin's AWS endpoint");
        TwinEndpoint { state, server: Some(server), runtime }
    }

    fn url(&self) -> String {
        self.server.as_ref().map(|s| s.url.clone()).unwrap_or_default()
    }

    fn remote(&self) -> Arc<RemoteAws> {
        connect(&self.url(), AKID, SECRET)
    }
}

impl Drop for TwinEndpoint {
    fn drop(&mut self) {
        // The server's task goes before the runtime it runs on.
        let _enter = self.runtime.enter();
        self.server.take();
    }
}

fn connect(endpoint: &str, key: &str, secret: &str) -> Arc<RemoteAws> {
    RemoteAws::connect(RemoteAwsConfig {
        endpoint: endpoint.to_owned(),
        region: REGION.to_owned(),
        access_key_id: key.to_owned(),
        secret_access_key: secret.to_owned(),
        clock: Clock::new(1000.0),
    })
    .expect("RemoteAws connects")
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    items.into_iter().collect::<BTreeSet<T>>().into_iter().collect()
}

/// What one run of the life cycle made, for the caller's own checks.
#[derive(Debug, Default)]
struct Made {
    frontend_sg: String,
    backend_sg: String,
    lb_arn: String,
    tg_arn: String,
}

/// The controller's operations on one Service's NLB, in the controller's
/// order, each result checked through the API itself; `model` is the twin's
/// state behind the endpoint, when there is one, and is checked too.
fn life_cycle(aws: &dyn AwsApi, vpc: &str, subnet_ids: &[String], model: Option<&AwsState>) -> Made {
    let mut made = Made::default();

    // Subnet discovery and the VPC's DNS support.
    let subnets = aws.subnets_of_vpc(vpc).expect("DescribeSubnets");
    assert_eq!(sorted(subnets.iter().map(|s| s.id.clone())), sorted(subnet_ids.iter().cloned()));
    assert!(subnets.iter().all(|s| s.vpc_id == vpc && !s.az.is_empty() && s.cidr.contains('/')), "{subnets:?}");
    assert!(subnets.iter().all(|s| s.tags.contains(&("kubernetes.io/role/elb".to_owned(), "1".to_owned()))));
    if let Some(m) = model {
        let mut want = m.subnets_of_vpc(vpc);
        let mut got = subnets.clone();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        got.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(got, want, "the subnets as the model has them");
    }
    assert!(aws.vpc_dns_support(vpc).expect("DescribeVpcAttribute"), "DNS support is on by default");
    assert!(aws.subnets_of_vpc("vpc-0123456789abcdef0").expect("no subnets is no error").is_empty());

    // The security groups, found again by their tags.
    let cluster_tag = ("elbv2.k8s.aws/cluster", CLUSTER);
    made.frontend_sg = aws
        .create_security_group(
            vpc,
            "k8s-istioing-istioeas-1a2b3c4d5e",
            "[k8s] Managed SecurityGroup for LoadBalancer",
            tags(&[
                cluster_tag,
                ("service.k8s.aws/stack", STACK),
                ("service.k8s.aws/resource", "ManagedLBSecurityGroup"),
            ]),
        )
        .expect("CreateSecurityGroup (frontend)");
    made.backend_sg = aws
        .create_security_group(
            vpc,
            "k8s-traffic-eks1-0f1e2d3c4b",
            "[k8s] Shared Backend SecurityGroup for LoadBalancer",
            tags(&[cluster_tag, ("elbv2.k8s.aws/resource", "backend-sg")]),
        )
        .expect("CreateSecurityGroup (backend)");
    assert!(made.frontend_sg.starts_with("sg-") && made.backend_sg.starts_with("sg-"));
    let both = sorted([made.frontend_sg.clone(), made.backend_sg.clone()]);
    assert_eq!(sorted(aws.security_groups_tagged(cluster_tag.0, CLUSTER).unwrap()), both);
    assert_eq!(aws.security_groups_tagged("service.k8s.aws/stack", STACK).unwrap(), [made.frontend_sg.clone()]);
    assert!(aws.security_groups_tagged("service.k8s.aws/stack", "other/svc").unwrap().is_empty());
    if let Some(m) = model {
        assert_eq!(sorted(m.security_groups_tagged(cluster_tag.0, CLUSTER)), both);
    }
    let duplicate = aws.create_security_group(vpc, "k8s-traffic-eks1-0f1e2d3c4b", "again", Vec::new()).unwrap_err();
    assert_eq!(duplicate.code, "InvalidGroup.Duplicate", "{duplicate}");

    // The NLB.
    let lb_tags = tags(&[cluster_tag, ("service.k8s.aws/stack", STACK), ("service.k8s.aws/resource", "LoadBalancer")]);
    let lb = aws
        .create_load_balancer(NewLoadBalancer {
            name: "k8s-istioing-istioeas-1a2b3c4d5e".into(),
            scheme: "internet-facing".into(),
            subnet_ids: subnet_ids.to_vec(),
            security_group_ids: vec![made.frontend_sg.clone(), made.backend_sg.clone()],
            tags: lb_tags.clone(),
        })
        .expect("CreateLoadBalancer");
    made.lb_arn = lb.arn.clone();
    assert_eq!(lb.name, "k8s-istioing-istioeas-1a2b3c4d5e");
    assert_eq!((lb.scheme.as_str(), lb.vpc_id.as_str()), ("internet-facing", vpc));
    assert!(lb.arn.starts_with("arn:aws:elasticloadbalancing:us-west-2:"), "{}", lb.arn);
    assert!(!lb.dns_name.is_empty());
    assert_eq!(sorted(lb.zones.iter().map(|z| z.1.clone())), sorted(subnet_ids.iter().cloned()));
    assert_eq!(sorted(lb.tags.clone()), sorted(lb_tags.clone()));
    let found =
        aws.load_balancers_tagged("service.k8s.aws/stack", STACK).expect("DescribeLoadBalancers + DescribeTags");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((&found[0].arn, &found[0].dns_name), (&lb.arn, &lb.dns_name));
    assert_eq!(sorted(found[0].tags.clone()), sorted(lb_tags.clone()), "the tags DescribeTags gives");
    assert_eq!(sorted(found[0].security_group_ids.clone()), both);
    assert!(aws.load_balancers_tagged("service.k8s.aws/stack", "other/svc").unwrap().is_empty());
    if let Some(m) = model {
        let held = m.load_balancer(&lb.arn).expect("the model holds the NLB");
        assert_eq!((&held.name, &held.dns_name, &held.scheme), (&lb.name, &lb.dns_name, &lb.scheme));
        assert_eq!(held.tags, found[0].tags);
        let zones =
            |z: &[(String, String, std::net::Ipv4Addr)]| sorted(z.iter().map(|(az, s, _)| (az.clone(), s.clone())));
        assert_eq!(zones(&found[0].zones), zones(&held.zones));
    }
    if model.is_some() {
        // The name is taken with other settings (moto differs: it makes a second NLB).
        let other_scheme = NewLoadBalancer {
            name: lb.name.clone(),
            scheme: "internal".into(),
            subnet_ids: subnet_ids.to_vec(),
            ..Default::default()
        };
        let duplicate = aws.create_load_balancer(other_scheme).unwrap_err();
        assert_eq!((duplicate.code.as_str(), duplicate.status), ("DuplicateLoadBalancerName", 400), "{duplicate}");
    }

    aws.modify_load_balancer_attributes(&lb.arn, &tags(&[("load_balancing.cross_zone.enabled", "true")]))
        .expect("ModifyLoadBalancerAttributes");

    // The target group and its listener.
    let tg_tags =
        tags(&[cluster_tag, ("service.k8s.aws/stack", STACK), ("service.k8s.aws/resource", &format!("{STACK}:15443"))]);
    made.tg_arn = aws
        .create_target_group(NewTargetGroup {
            name: "k8s-istioing-istioeas-0f1e2d3c4b".into(),
            port: 15443,
            vpc_id: vpc.to_owned(),
            health_check_port: None,
            tags: tg_tags.clone(),
        })
        .expect("CreateTargetGroup");
    assert!(made.tg_arn.contains(":targetgroup/k8s-istioing-istioeas-0f1e2d3c4b/"), "{}", made.tg_arn);
    assert!(aws.target_groups_of(&lb.arn).unwrap().is_empty(), "no listener forwards to it yet");
    let listener = aws.create_listener(&lb.arn, 15443, &made.tg_arn, tg_tags.clone()).expect("CreateListener");
    assert!(listener.contains(":listener/"), "{listener}");
    let groups = aws.target_groups_of(&lb.arn).expect("DescribeTargetGroups + DescribeTags");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let tg = &groups[0];
    assert_eq!(
        (tg.arn.as_str(), tg.name.as_str(), tg.port),
        (made.tg_arn.as_str(), "k8s-istioing-istioeas-0f1e2d3c4b", 15443)
    );
    assert_eq!((tg.protocol.as_str(), tg.target_type.as_str(), tg.vpc_id.as_str()), ("TCP", "ip", vpc));
    assert_eq!(tg.health_check_port, None, "traffic-port");
    assert_eq!(tg.load_balancer_arns, std::slice::from_ref(&lb.arn));
    assert_eq!(sorted(tg.tags.clone()), sorted(tg_tags.clone()));
    if let Some(m) = model {
        assert_eq!(groups, m.target_groups_of(&lb.arn), "the target groups as the model has them");
    }
    if model.is_some() {
        // The same listener again is the same listener (CreateListener is idempotent,
        // ELBv2 API reference). moto differs: it adds a second one on the port.
        assert_eq!(aws.create_listener(&lb.arn, 15443, &made.tg_arn, tg_tags.clone()), Ok(listener.clone()));
    }

    // The health-check port, modified in place and back.
    aws.set_health_check_port(&made.tg_arn, Some(15021)).expect("ModifyTargetGroup");
    assert_eq!(aws.target_groups_of(&lb.arn).unwrap()[0].health_check_port, Some(15021));
    if let Some(m) = model {
        assert_eq!(m.target_group(&made.tg_arn).unwrap().health_check_port, Some(15021));
    }
    aws.set_health_check_port(&made.tg_arn, None).expect("ModifyTargetGroup");
    assert_eq!(aws.target_groups_of(&lb.arn).unwrap()[0].health_check_port, None);

    // Targets in, one out.
    let pods = [("10.1.48.10".to_owned(), 15443), ("10.1.49.10".to_owned(), 15443)];
    aws.register_targets(&made.tg_arn, &pods).expect("RegisterTargets");
    assert_eq!(sorted(aws.registered_targets(&made.tg_arn).expect("DescribeTargetHealth")), sorted(pods.clone()));
    aws.deregister_targets(&made.tg_arn, &pods[..1]).expect("DeregisterTargets");
    assert_eq!(aws.registered_targets(&made.tg_arn).unwrap(), [pods[1].clone()], "a draining target is not registered");
    if let Some(m) = model {
        assert_eq!(m.registered_targets(&made.tg_arn), [pods[1].clone()]);
    }

    // AWS's own errors, with their codes.
    let in_use = aws.delete_target_group(&made.tg_arn).unwrap_err();
    assert_eq!(in_use.code, "ResourceInUse", "{in_use}");
    let unknown_tg = made.tg_arn.replace("k8s-istioing-istioeas-0f1e2d3c4b", "k8s-nothing-here-0000000000");
    let missing = aws.registered_targets(&unknown_tg).unwrap_err();
    assert_eq!(missing.code, "TargetGroupNotFound", "{missing}");
    assert_eq!(aws.set_health_check_port(&unknown_tg, Some(80)).unwrap_err().code, "TargetGroupNotFound");
    let unknown_lb = lb.arn.replace("k8s-istioing-istioeas-1a2b3c4d5e", "k8s-nothing-here-0000000000");
    assert_eq!(aws.target_groups_of(&unknown_lb).unwrap_err().code, "LoadBalancerNotFound");
    let gone_sg = aws.delete_security_group("sg-0123456789abcdef0").unwrap_err();
    assert_eq!(gone_sg.code, "InvalidGroup.NotFound", "{gone_sg}");

    // Teardown in the controller's order: the NLB (its listeners go with it),
    // then its target groups, then the security groups.
    aws.delete_load_balancer(&lb.arn).expect("DeleteLoadBalancer");
    assert!(aws.load_balancers_tagged("service.k8s.aws/stack", STACK).unwrap().is_empty());
    aws.delete_target_group(&made.tg_arn).expect("DeleteTargetGroup");
    aws.delete_security_group(&made.frontend_sg).expect("DeleteSecurityGroup (frontend)");
    aws.delete_security_group(&made.backend_sg).expect("DeleteSecurityGroup (backend)");
    assert!(aws.security_groups_tagged(cluster_tag.0, CLUSTER).unwrap().is_empty());
    if let Some(m) = model {
        assert!(m.load_balancer(&lb.arn).is_none() && m.target_group(&made.tg_arn).is_none());
        assert!(m.security_groups_tagged(cluster_tag.0, CLUSTER).is_empty());
    }
    made
}

/// A VPC with three public subnets, one per AZ, in the twin's model.
fn seed_twin(state: &AwsState) -> (String, Vec<String>) {
    let vpc = state.create_vpc("10.1.0.0/16", tags(&[("Name", "eks-1-vpc")])).expect("CreateVpc");
    let subnets = ["us-west-2a", "us-west-2b", "us-west-2c"]
        .iter()
        .enumerate()
        .map(|(i, az)| {
            let cidr = format!("10.1.{}.0/24", 48 + i);
            state.create_subnet(&vpc, &cidr, az, tags(&[("kubernetes.io/role/elb", "1")])).expect("CreateSubnet")
        })
        .collect();
    (vpc, subnets)
}

#[test]
fn the_load_balancer_life_cycle_through_the_twins_endpoint() {
    let twin = TwinEndpoint::start();
    let (vpc, subnets) = seed_twin(&twin.state);
    let remote = twin.remote();
    let made = life_cycle(remote.as_ref(), &vpc, &subnets, Some(&twin.state));
    assert!(!made.lb_arn.is_empty());

    // The model through the same trait, in this process, answers the same way.
    let in_process = meshspec_twin::aws_api::in_process(&twin.state);
    life_cycle(in_process.as_ref(), &vpc, &subnets, Some(&twin.state));

    // DNS support off, as ModifyVpcAttribute sets it, reads back over the wire.
    twin.runtime.block_on(async {
        let ec2 = sdk_ec2(&twin.url(), AKID, SECRET);
        ec2.modify_vpc_attribute()
            .vpc_id(&vpc)
            .enable_dns_support(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .expect("ModifyVpcAttribute");
    });
    assert!(!remote.vpc_dns_support(&vpc).unwrap());
    let unknown = remote.vpc_dns_support("vpc-0123456789abcdef0").unwrap_err();
    assert_eq!(unknown.code, "InvalidVpcID.NotFound", "{unknown}");
}

#[test]
fn calls_work_from_inside_a_current_thread_runtime() {
    let twin = TwinEndpoint::start();
    let (vpc, _) = seed_twin(&twin.state);
    let remote = twin.remote();
    // A reconcile pass is synchronous code on a runtime's thread; the SDK runs
    // on RemoteAws' own thread, so even a single-threaded runtime is no obstacle.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let subnets = runtime.block_on(async { remote.subnets_of_vpc(&vpc) }).expect("DescribeSubnets");
    assert_eq!(subnets.len(), 3);
    let many: Vec<_> = (0..4)
        .map(|_| {
            let (remote, vpc) = (remote.clone(), vpc.clone());
            std::thread::spawn(move || remote.subnets_of_vpc(&vpc).map(|s| s.len()))
        })
        .collect();
    for t in many {
        assert_eq!(t.join().unwrap(), Ok(3), "concurrent callers");
    }
}

#[test]
fn wrong_credentials_and_settings_are_refused() {
    let twin = TwinEndpoint::start();
    let (vpc, _) = seed_twin(&twin.state);
    // Each service's own refusal (EC2 says AuthFailure to everything).
    let stranger = connect(&twin.url(), "AKIAUNKNOWN000000000", SECRET);
    let refused = stranger.load_balancers_tagged("k", "v").unwrap_err();
    assert_eq!((refused.code.as_str(), refused.status), ("InvalidClientTokenId", 403), "{refused}");
    let refused = stranger.subnets_of_vpc(&vpc).unwrap_err();
    assert_eq!((refused.code.as_str(), refused.status), ("AuthFailure", 401), "{refused}");
    let wrong_secret = connect(&twin.url(), AKID, "not-the-secret");
    assert_eq!(wrong_secret.load_balancers_tagged("k", "v").unwrap_err().code, "SignatureDoesNotMatch");

    let cfg = |endpoint: &str| RemoteAwsConfig {
        endpoint: endpoint.to_owned(),
        region: REGION.to_owned(),
        access_key_id: AKID.to_owned(),
        secret_access_key: SECRET.to_owned(),
        clock: Clock::default(),
    };
    assert!(RemoteAws::connect(cfg("127.0.0.1:4566")).is_err(), "no scheme");
    assert!(RemoteAws::connect(cfg("ftp://127.0.0.1:4566")).is_err());
    assert!(
        RemoteAws::connect(RemoteAwsConfig { secret_access_key: String::new(), ..cfg("http://127.0.0.1:1") }).is_err()
    );

    // The secret never shows in debug output.
    let remote = twin.remote();
    let shown = format!("{remote:?} {:?}", cfg("http://127.0.0.1:1"));
    assert!(shown.contains(AKID) && !shown.contains(SECRET), "{shown}");
}

/// A presigned GetCallerIdentity URL as `aws eks get-token` makes it
/// (support/aws/token.rs in the root crate): 60 s expiry, the cluster name
/// signed in `x-k8s-aws-id`.
fn presign(endpoint: &str, cluster: &str, key: &str, secret: &str) -> String {
    let identity: Identity = Credentials::new(key, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("sts")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15");
    let signable =
        SignableRequest::new("GET", url.clone(), [("x-k8s-aws-id", cluster)].into_iter(), SignableBody::Bytes(b""))
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().uri(url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

fn token(url: &str) -> String {
    format!("k8s-aws-v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url))
}

#[test]
fn eks_tokens_are_verified_through_the_endpoints_sts() {
    let twin = TwinEndpoint::start();
    let remote = twin.remote();
    let url = presign(&twin.url(), CLUSTER, AKID, SECRET);

    let identity = remote.verify_presigned_sts(&url, CLUSTER).expect("a valid token");
    assert_eq!(identity.arn, "arn:aws:iam::123456789012:user/meshspec");
    assert_eq!(identity.account, "123456789012");
    assert_eq!(identity, twin.state.verify_presigned_sts(&url, CLUSTER).unwrap(), "as the model says");

    // Through the API server's authenticator, as a cluster in its own process checks it.
    let auth = ClusterAuth::new(CLUSTER, remote.clone());
    assert_eq!(auth.authenticate(&token(&url)).map(|u| u.name), Some(identity.arn.clone()));

    // Bound to its cluster: STS refuses the signature for another name.
    let other = remote.verify_presigned_sts(&url, "eks-2").unwrap_err();
    assert!(other.contains("got 403") && other.contains("SignatureDoesNotMatch"), "{other}");
    assert!(ClusterAuth::new("eks-2", remote.clone()).authenticate(&token(&url)).is_none());
    // Tampered: another signature, an extra parameter, another action.
    let signature_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &url[signature_at..=signature_at] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..signature_at], &url[signature_at + 1..]);
    assert!(remote.verify_presigned_sts(&tampered, CLUSTER).unwrap_err().contains("got 403"));
    assert!(auth.authenticate(&token(&tampered)).is_none());
    assert!(remote.verify_presigned_sts(&format!("{url}&Foo=bar"), CLUSTER).unwrap_err().contains("non-allowlisted"));
    let action = remote.verify_presigned_sts(&url.replace("GetCallerIdentity", "AssumeRole"), CLUSTER).unwrap_err();
    assert!(action.contains("GetCallerIdentity"), "{action}");
    // Signed by a key the endpoint does not know.
    let unknown = remote.verify_presigned_sts(&presign(&twin.url(), CLUSTER, "AKIAUNKNOWN000000000", SECRET), CLUSTER);
    assert!(unknown.unwrap_err().contains("InvalidClientTokenId"));
    // Pointing elsewhere than this endpoint's STS: refused before any call.
    for elsewhere in ["https://sts.us-west-2.amazonaws.com", "http://127.0.0.1:1", "http://localhost:1"] {
        let refused = remote.verify_presigned_sts(&presign(elsewhere, CLUSTER, AKID, SECRET), CLUSTER).unwrap_err();
        assert!(refused.contains("unexpected STS endpoint"), "{elsewhere}: {refused}");
    }
    // No error tells the URL (a bearer credential).
    assert!(!other.contains("X-Amz-Signature"), "{other}");
}

fn sdk_ec2(endpoint: &str, key: &str, secret: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .build(),
    )
}

/// moto_server on a free port, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn start_moto() -> Option<Moto> {
    if !on_path("moto_server") {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

#[test]
fn the_same_operations_work_against_moto() {
    let Some(moto) = start_moto() else {
        eprintln!("skipped: moto_server is not on PATH");
        return;
    };
    // moto takes any access key pair.
    let (key, secret) = ("testing", "testing");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (vpc, subnets) = runtime.block_on(async {
        let ec2 = sdk_ec2(&moto.url, key, secret);
        let vpc = ec2.create_vpc().cidr_block("10.1.0.0/16").send().await.expect("CreateVpc");
        let vpc = vpc.vpc().and_then(|v| v.vpc_id()).expect("a VPC id").to_owned();
        let mut subnets = Vec::new();
        for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.1.{}.0/24", 48 + i))
                .availability_zone(*az)
                .send()
                .await
                .expect("CreateSubnet");
            let id = subnet.subnet().and_then(|s| s.subnet_id()).expect("a subnet id").to_owned();
            ec2.create_tags()
                .resources(&id)
                .tags(aws_sdk_ec2::types::Tag::builder().key("kubernetes.io/role/elb").value("1").build())
                .send()
                .await
                .expect("CreateTags");
            subnets.push(id);
        }
        (vpc, subnets)
    });
    let remote = connect(&moto.url, key, secret);
    life_cycle(remote.as_ref(), &vpc, &subnets, None);
}
