//! End to end, with the aws CLI and kubectl only: an EKS cluster from the
//! twin's EKS API, the AWS Load Balancer Controller and the east-west gateway
//! applied with kubectl, and the NLB it makes followed from the Service
//! hostname to healthy targets and DNS, then torn down by deleting the
//! Service. And the same Service without the controller: nothing happens.

mod support;

use std::collections::BTreeSet;

use anyhow::{anyhow, Context, Result};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;
use support::{eventually, ClusterRef, Env};

const CONTROLLER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: aws-load-balancer-controller
  namespace: kube-system
  labels: {app.kubernetes.io/name: aws-load-balancer-controller}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: aws-load-balancer-controller}
  template:
    metadata:
      labels: {app.kubernetes.io/name: aws-load-balancer-controller}
    spec:
      containers:
      - name: aws-load-balancer-controller
        image: public.ecr.aws/eks/aws-load-balancer-controller:v2.7.1
        args: ["--cluster-name=eks-1", "--ingress-class=alb"]
        ports: [{name: webhook-server, containerPort: 9443}]
"#;

const GATEWAY: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: istio-ingress
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-eastwestgateway
  namespace: istio-ingress
spec:
  replicas: 2
  selector:
    matchLabels: {istio: eastwestgateway, app: istio-eastwestgateway}
  template:
    metadata:
      labels: {istio: eastwestgateway, app: istio-eastwestgateway, topology.istio.io/network: network1}
    spec:
      containers:
      - name: istio-proxy
        image: docker.io/istio/proxyv2:1.20.2
        env: [{name: ISTIO_META_REQUESTED_NETWORK_VIEW, value: network1}]
        ports: [{name: http-envoy-prom, containerPort: 15090}]
---
apiVersion: v1
kind: Service
metadata:
  name: istio-eastwestgateway
  namespace: istio-ingress
  labels: {istio: eastwestgateway, app: istio-eastwestgateway, topology.istio.io/network: network1}
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: external
    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip
    service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing
    service.beta.kubernetes.io/aws-load-balancer-attributes: load_balancing.cross_zone.enabled=true
spec:
  type: LoadBalancer
  selector: {istio: eastwestgateway, app: istio-eastwestgateway}
  ports:
  - {name: status-port, port: 15021, targetPort: 15021}
  - {name: tls, port: 15443, targetPort: 15443}
  - {name: tls-istiod, port: 15012, targetPort: 15012}
  - {name: tls-webhook, port: 15017, targetPort: 15017}
"#;

const CROSS_NETWORK_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: cross-network-gateway
  namespace: istio-ingress
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
"#;

async fn service_hostname(env: &Env, c: &ClusterRef) -> Result<std::result::Result<String, String>> {
    let svc = env.kubectl_json(&c.kubeconfig, &["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
    Ok(match svc.pointer("/status/loadBalancer/ingress/0/hostname").and_then(Value::as_str) {
        Some(h) => Ok(h.to_owned()),
        None => Err(format!("status {}", svc["status"])),
    })
}

async fn load_balancer_with_dns(env: &Env, dns: &str) -> Result<Option<Value>> {
    let lbs = env.aws(&["elbv2", "describe-load-balancers"]).await?;
    Ok(lbs["LoadBalancers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|lb| lb["DNSName"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(dns)))
        .cloned())
}

/// The target group the NLB's listener on `port` forwards to.
async fn target_group_of_listener(env: &Env, lb_arn: &str, port: u64) -> Result<String> {
    let listeners = env.aws(&["elbv2", "describe-listeners", "--load-balancer-arn", lb_arn]).await?;
    let listener = listeners["Listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["Port"].as_u64() == Some(port))
        .ok_or_else(|| anyhow!("no listener on {port}: {listeners}"))?;
    assert_eq!(listener["Protocol"], "TCP");
    listener["DefaultActions"][0]["TargetGroupArn"].as_str().map(str::to_owned).context("no target group")
}

async fn target_states(env: &Env, tg_arn: &str) -> Result<Vec<(String, String)>> {
    let health = env.aws(&["elbv2", "describe-target-health", "--target-group-arn", tg_arn]).await?;
    Ok(health["TargetHealthDescriptions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["Target"]["Id"].as_str().unwrap_or_default().to_owned(),
                d["TargetHealth"]["State"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_east_west_gateway_service_becomes_a_healthy_internet_facing_nlb_and_goes_away_with_it() -> Result<()> {
    let env = Env::start().await?;
    let c = env.create_cluster("eks-1", 1).await?;

    env.apply(&c.kubeconfig, CONTROLLER).await?;
    eventually("the load balancer controller Ready", || async {
        let pods = env
            .kubectl_json(
                &c.kubeconfig,
                &["get", "pods", "-n", "kube-system", "-l", "app.kubernetes.io/name=aws-load-balancer-controller"],
            )
            .await?;
        let ready = pods["items"].as_array().into_iter().flatten().any(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        Ok(if ready {
            Ok(())
        } else {
            Err(format!("{} pods, none Ready", pods["items"].as_array().map_or(0, Vec::len)))
        })
    })
    .await?;

    env.apply(&c.kubeconfig, GATEWAY).await?;

    // Service hostname -> the NLB, as the seed's readiness script follows it.
    let hostname = eventually("a hostname in the Service status", || service_hostname(&env, &c)).await?;
    assert_eq!(hostname, hostname.to_lowercase());
    assert!(hostname.ends_with(".elb.us-west-2.amazonaws.com"), "{hostname}");
    let svc = env.kubectl_json(&c.kubeconfig, &["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
    assert_eq!(svc["metadata"]["finalizers"], serde_json::json!(["service.k8s.aws/resources"]));

    let lb = eventually("the NLB active", || async {
        Ok(match load_balancer_with_dns(&env, &hostname).await? {
            Some(lb) if lb["State"]["Code"] == "active" => Ok(lb),
            Some(lb) => Err(format!("state {}", lb["State"])),
            None => Err("no NLB with that DNS name".into()),
        })
    })
    .await?;
    assert_eq!(lb["Type"], "network");
    assert_eq!(lb["Scheme"], "internet-facing");
    assert_eq!(lb["VpcId"], c.vpc_id.as_str());
    let name = lb["LoadBalancerName"].as_str().unwrap_or_default();
    assert!(name.starts_with("k8s-istioing-istioeas-"), "{name}");
    let lb_arn = lb["LoadBalancerArn"].as_str().context("arn")?.to_owned();

    let tags = env.aws(&["elbv2", "describe-tags", "--resource-arns", &lb_arn]).await?;
    let tags: BTreeSet<(String, String)> = tags["TagDescriptions"][0]["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["Key"].as_str().unwrap_or_default().to_owned(), t["Value"].as_str().unwrap_or_default().to_owned()))
        .collect();
    for want in [
        ("elbv2.k8s.aws/cluster", "eks-1"),
        ("service.k8s.aws/stack", "istio-ingress/istio-eastwestgateway"),
        ("service.k8s.aws/resource", "LoadBalancer"),
    ] {
        assert!(tags.contains(&(want.0.to_owned(), want.1.to_owned())), "tag {want:?} missing from {tags:?}");
    }

    let attributes = env.aws(&["elbv2", "describe-load-balancer-attributes", "--load-balancer-arn", &lb_arn]).await?;
    let cross_zone = attributes["Attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["Key"] == "load_balancing.cross_zone.enabled")
        .map(|a| a["Value"].clone());
    assert_eq!(cross_zone, Some(Value::from("true")), "{attributes}");

    let listeners = env.aws(&["elbv2", "describe-listeners", "--load-balancer-arn", &lb_arn]).await?;
    let ports: BTreeSet<u64> =
        listeners["Listeners"].as_array().into_iter().flatten().filter_map(|l| l["Port"].as_u64()).collect();
    assert_eq!(ports, BTreeSet::from([15012, 15017, 15021, 15443]));

    // Listener 15443 -> target group -> every target healthy; 15012 has no listener behind it.
    let pod_ips: BTreeSet<String> = env
        .kubectl_json(&c.kubeconfig, &["get", "pods", "-n", "istio-ingress", "-l", "istio=eastwestgateway"])
        .await?["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(pod_ips.len(), 2, "two gateway pods with IPs: {pod_ips:?}");
    let tls_tg = target_group_of_listener(&env, &lb_arn, 15443).await?;
    // Without a Gateway server on 15443 the gateway pods do not listen there.
    eventually("every 15443 target unhealthy before the Gateway", || async {
        let states = target_states(&env, &tls_tg).await?;
        let unhealthy = states.len() == 2 && states.iter().all(|(_, s)| s == "unhealthy");
        Ok(if unhealthy { Ok(()) } else { Err(format!("{states:?}")) })
    })
    .await?;
    env.apply(&c.kubeconfig, CROSS_NETWORK_GATEWAY).await?;
    let healthy = eventually("every 15443 target healthy", || async {
        let states = target_states(&env, &tls_tg).await?;
        let ips: BTreeSet<String> = states.iter().map(|(ip, _)| ip.clone()).collect();
        Ok(if ips == pod_ips && states.iter().all(|(_, s)| s == "healthy") {
            Ok(states)
        } else {
            Err(format!("{states:?}"))
        })
    })
    .await?;
    assert_eq!(healthy.len(), 2);
    let istiod_tg = target_group_of_listener(&env, &lb_arn, 15012).await?;
    eventually("every 15012 target unhealthy", || async {
        let states = target_states(&env, &istiod_tg).await?;
        Ok(if states.len() == 2 && states.iter().all(|(_, s)| s == "unhealthy") {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        })
    })
    .await?;
    let status_tg = target_group_of_listener(&env, &lb_arn, 15021).await?;
    eventually("every 15021 target healthy", || async {
        let states = target_states(&env, &status_tg).await?;
        Ok(if states.len() == 2 && states.iter().all(|(_, s)| s == "healthy") {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        })
    })
    .await?;

    // DNS: one address per AZ, the NLB's own (on its network interfaces: without
    // Elastic IPs, LoadBalancerAddresses stays empty as on AWS).
    assert!(lb["AvailabilityZones"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|z| z["LoadBalancerAddresses"].as_array().is_none_or(|a| a.is_empty())));
    let lb_ips = support::nlb_node_ips(&env, lb["LoadBalancerArn"].as_str().unwrap_or_default()).await?;
    assert_eq!(lb_ips.len(), 3, "one public IP per AZ: {lb}");
    let answer = support::dns_query(env.dns_addr(), &format!("{hostname}."), RecordType::A).await?;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    let dns_ips: BTreeSet<String> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(dns_ips, lb_ips);
    assert!(answer.answers().iter().all(|r| r.ttl() == 60));
    let aaaa = support::dns_query(env.dns_addr(), &format!("{hostname}."), RecordType::AAAA).await?;
    assert_eq!((aaaa.response_code(), aaaa.answers().len()), (ResponseCode::NoError, 0));
    let unknown = support::dns_query(
        env.dns_addr(),
        "k8s-nope-nope-0000000000-0000000000000000.elb.us-west-2.amazonaws.com.",
        RecordType::A,
    )
    .await?;
    assert_eq!(unknown.response_code(), ResponseCode::NXDomain);

    // A restarted controller finds its NLB by tags instead of making another.
    let selector = "app.kubernetes.io/name=aws-load-balancer-controller";
    let old_controller =
        env.kubectl(&c.kubeconfig, &["get", "pods", "-n", "kube-system", "-l", selector, "-o", "name"]).await?;
    env.kubectl(&c.kubeconfig, &["delete", "pods", "-n", "kube-system", "-l", selector]).await?;
    eventually("a new controller pod Ready", || async {
        let pods = env.kubectl_json(&c.kubeconfig, &["get", "pods", "-n", "kube-system", "-l", selector]).await?;
        let fresh = pods["items"].as_array().into_iter().flatten().any(|p| {
            let name = format!("pod/{}", p["metadata"]["name"].as_str().unwrap_or_default());
            name != old_controller.trim() && p["status"]["phase"] == "Running"
        });
        Ok(if fresh { Ok(()) } else { Err(format!("{}", pods["items"])) })
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let lbs = env.aws(&["elbv2", "describe-load-balancers"]).await?;
    let arns: Vec<&str> =
        lbs["LoadBalancers"].as_array().into_iter().flatten().filter_map(|lb| lb["LoadBalancerArn"].as_str()).collect();
    assert_eq!(arns, [lb_arn.as_str()], "still the one NLB");
    let tgs = env.aws(&["elbv2", "describe-target-groups"]).await?;
    assert_eq!(tgs["TargetGroups"].as_array().map(Vec::len), Some(4), "one target group per port");

    // A gateway pod replaced: its target goes, the new one comes and turns healthy.
    let old_ip = pod_ips.iter().next().cloned().context("a pod IP")?;
    let pods =
        env.kubectl_json(&c.kubeconfig, &["get", "pods", "-n", "istio-ingress", "-l", "istio=eastwestgateway"]).await?;
    let victim = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["status"]["podIP"] == old_ip.as_str())
        .and_then(|p| p["metadata"]["name"].as_str())
        .context("the pod with the first IP")?
        .to_owned();
    env.kubectl(&c.kubeconfig, &["delete", "pod", &victim, "-n", "istio-ingress"]).await?;
    eventually("targets follow the replaced pod", || async {
        let states = target_states(&env, &tls_tg).await?;
        let ok = states.len() == 2
            && !states.iter().any(|(ip, _)| *ip == old_ip)
            && states.iter().all(|(_, s)| s == "healthy");
        Ok(if ok { Ok(()) } else { Err(format!("{states:?}")) })
    })
    .await?;

    // Deleting the Service deletes the NLB, its target groups and security
    // groups, and only then lets the Service go.
    env.kubectl(&c.kubeconfig, &["delete", "svc", "istio-eastwestgateway", "-n", "istio-ingress", "--timeout=30s"])
        .await?;
    let left = env.kubectl(&c.kubeconfig, &["get", "svc", "-n", "istio-ingress", "-o", "name"]).await?;
    assert_eq!(left.trim(), "", "no Service left");
    assert!(load_balancer_with_dns(&env, &hostname).await?.is_none(), "the NLB is gone");
    let tgs = env.aws(&["elbv2", "describe-target-groups"]).await?;
    assert_eq!(tgs["TargetGroups"], serde_json::json!([]), "no target group left");
    let sgs = env
        .aws(&["ec2", "describe-security-groups", "--filters", "Name=tag:elbv2.k8s.aws/cluster,Values=eks-1"])
        .await?;
    assert_eq!(sgs["SecurityGroups"], serde_json::json!([]), "no controller security group left");
    let gone = support::dns_query(env.dns_addr(), &format!("{hostname}."), RecordType::A).await?;
    assert_eq!(gone.response_code(), ResponseCode::NXDomain);

    let api = c.endpoint.trim_start_matches("https://").to_owned();
    let aws = env.twin.aws_endpoint().trim_start_matches("http://").to_owned();
    env.twin.shutdown().await;
    for addr in [api, aws] {
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "{addr} still accepts connections after shutdown"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_controller_a_load_balancer_service_stays_pending() -> Result<()> {
    let env = Env::start().await?;
    let c = env.create_cluster("eks-1", 1).await?;
    env.apply(&c.kubeconfig, GATEWAY).await?;
    env.apply(&c.kubeconfig, CROSS_NETWORK_GATEWAY).await?;

    // The gateway pods run (so the controller would have had targets)...
    eventually("two Ready gateway pods", || async {
        let d =
            env.kubectl_json(&c.kubeconfig, &["get", "deploy", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
        Ok(if d["status"]["readyReplicas"] == 2 { Ok(()) } else { Err(format!("status {}", d["status"])) })
    })
    .await?;
    // ...and for a good while of simulated time (2 s = over an hour) nothing happens.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let svc = env.kubectl_json(&c.kubeconfig, &["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
    assert_eq!(svc["status"]["loadBalancer"], serde_json::json!({}), "no ingress: EXTERNAL-IP <pending>");
    assert!(svc["metadata"].get("finalizers").is_none(), "no finalizer: {}", svc["metadata"]);
    let lbs = env.aws(&["elbv2", "describe-load-balancers"]).await?;
    assert_eq!(lbs["LoadBalancers"], serde_json::json!([]));

    // The controller arriving later picks the Service up, as the real one
    // does when it starts.
    env.apply(&c.kubeconfig, CONTROLLER).await?;
    eventually("a hostname once the controller runs", || service_hostname(&env, &c)).await?;

    // Its Event on the Service and its log line, as an operator reads them.
    let events = |ns: &'static str| {
        let env = &env;
        let kubeconfig = c.kubeconfig.clone();
        async move {
            let list = env.kubectl_json(&kubeconfig, &["get", "events", "-n", ns, "-o", "json"]).await?;
            let rows: Vec<(String, String, String, String)> = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let s = |p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
                    (s("/involvedObject/name"), s("/type"), s("/reason"), s("/message"))
                })
                .collect();
            anyhow::Ok(rows)
        }
    };
    let ok = (
        "istio-eastwestgateway".to_owned(),
        "Normal".to_owned(),
        "SuccessfullyReconciled".to_owned(),
        "Successfully reconciled".to_owned(),
    );
    eventually("the controller's SuccessfullyReconciled event", || async {
        let rows = events("istio-ingress").await?;
        Ok(if rows.contains(&ok) { Ok(()) } else { Err(format!("{rows:?}")) })
    })
    .await?;
    let log = env.kubectl(&c.kubeconfig, &["logs", "deploy/aws-load-balancer-controller", "-n", "kube-system"]).await?;
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &Value| l["msg"] == "successfully deployed model")
        .with_context(|| format!("no success line in {log}"))?;
    assert_eq!(
        (line["level"].as_str(), line["logger"].as_str()),
        (Some("info"), Some("controllers.service")),
        "{line}"
    );
    assert_eq!(line["service"], serde_json::json!({"name": "istio-eastwestgateway", "namespace": "istio-ingress"}));

    // No public subnet left for an internet-facing NLB: the build fails, as an Event and a log line.
    let subnets = env
        .aws(&[
            "ec2",
            "describe-subnets",
            "--filters",
            &format!("Name=vpc-id,Values={}", c.vpc_id),
            "Name=tag-key,Values=kubernetes.io/role/elb",
        ])
        .await?;
    for s in subnets["Subnets"].as_array().into_iter().flatten() {
        let id = s["SubnetId"].as_str().context("SubnetId")?;
        env.aws(&["ec2", "delete-tags", "--resources", id, "--tags", "Key=kubernetes.io/role/elb"]).await?;
    }
    let second = GATEWAY
        .split("---")
        .nth(2)
        .context("the gateway Service")?
        .replace("name: istio-eastwestgateway\n  namespace", "name: second-gateway\n  namespace");
    env.apply(&c.kubeconfig, &second).await?;
    let failed = (
        "second-gateway".to_owned(),
        "Warning".to_owned(),
        "FailedBuildModel".to_owned(),
        "Failed build model due to unable to resolve at least one subnet (0 match VPC and tags: [kubernetes.io/role/elb])".to_owned(),
    );
    eventually("the controller's FailedBuildModel event", || async {
        let rows = events("istio-ingress").await?;
        Ok(if rows.contains(&failed) { Ok(()) } else { Err(format!("{rows:?}")) })
    })
    .await?;
    let log = env
        .kubectl(&c.kubeconfig, &["logs", "deploy/aws-load-balancer-controller", "-n", "kube-system", "--tail=5"])
        .await?;
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &Value| l["msg"] == "Reconciler error" && l["name"] == "second-gateway")
        .with_context(|| format!("no error line in {log}"))?;
    assert_eq!(
        line["error"], "unable to resolve at least one subnet (0 match VPC and tags: [kubernetes.io/role/elb])",
        "{line}"
    );
    assert_eq!(
        (line["name"].as_str(), line["controller"].as_str()),
        (Some("second-gateway"), Some("service")),
        "{line}"
    );
    env.twin.shutdown().await;
    Ok(())
}
