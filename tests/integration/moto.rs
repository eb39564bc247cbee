//! moto as a second, independent AWS implementation: the readiness lookup of
//! the AWS adapter must work against it too. moto's quirks (network NLB ARNs
//! say `app/`, targets are always healthy) are tolerated, never relied on.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, TargetDescription, TargetTypeEnum,
};
use meshspec::aws::{network, nlb, AwsAccess, AwsSettings};

use super::harness::{free_port, init};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> (Moto, String) {
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server is installed (.ci/run installs it)");
    let moto = Moto(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_lookup_works_against_moto() {
    init();
    let (_moto, endpoint) = start_moto();
    let aws = AwsAccess::connect(&AwsSettings {
        region: Some("us-west-2".into()),
        endpoint: Some(endpoint),
        credentials: Some(("testing".into(), "testing".into())),
        api_timeout: Some(Duration::from_secs(20)),
    })
    .await
    .unwrap();

    let vpc = network::create_vpc(&aws, "10.1.0.0/16", &[("Name".to_string(), "eks-1-vpc".to_string())].into())
        .await
        .unwrap();
    let mut subnets = Vec::new();
    for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
        let tags = [("kubernetes.io/role/elb".to_string(), "1".to_string())].into();
        subnets.push(network::create_subnet(&aws, &vpc.id, &format!("10.1.{}.0/24", 48 + i), az, &tags).await.unwrap());
    }
    assert_eq!(network::vpcs_named(&aws, "eks-1-vpc").await.unwrap().len(), 1);
    assert_eq!(network::subnets_of(&aws, &vpc.id).await.unwrap().len(), 3);

    let created = aws
        .elbv2
        .create_load_balancer()
        .name("k8s-istioing-istioeas-1a2b3c4d5e")
        .r#type(LoadBalancerTypeEnum::Network)
        .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets.clone()))
        .send()
        .await
        .unwrap();
    let lb = &created.load_balancers()[0];
    let dns_name = lb.dns_name().unwrap().to_string();
    let tg = aws
        .elbv2
        .create_target_group()
        .name("k8s-istioing-istioeas-0f1e2d3c4b")
        .protocol(ProtocolEnum::Tcp)
        .port(15443)
        .vpc_id(&vpc.id)
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_string();
    aws.elbv2
        .create_listener()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .protocol(ProtocolEnum::Tcp)
        .port(15443)
        .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
        .send()
        .await
        .unwrap();
    let ips = ["10.1.0.10", "10.1.16.11"];
    let mut register = aws.elbv2.register_targets().target_group_arn(&tg_arn);
    for ip in ips {
        register = register.targets(TargetDescription::builder().id(ip).port(15443).build());
    }
    register.send().await.unwrap();

    // The lookup the readiness feature makes, on moto.
    let found = nlb::find_by_dns_name(&aws, &dns_name).await.unwrap().expect("the NLB is found by DNS name");
    assert_eq!(found.dns_name, dns_name);
    assert_eq!(found.kind, "network");
    assert_eq!(found.scheme, "internet-facing");
    let listeners = nlb::listeners(&aws, &found.arn).await.unwrap();
    let listener = listeners.iter().find(|l| l.port == 15443).expect("the 15443 listener");
    assert_eq!(listener.target_group_arns, vec![tg_arn.clone()]);
    let health = nlb::target_health(&aws, &tg_arn).await.unwrap();
    let mut ids: Vec<_> = health.iter().map(|t| t.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ips);
    assert!(health.iter().all(|t| !t.state.is_empty()), "{health:?}");
    assert!(nlb::find_by_dns_name(&aws, "nope.elb.us-west-2.amazonaws.com").await.unwrap().is_none());
}
