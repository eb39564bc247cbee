//! East-west gateway readiness: Service hostname -> NLB by DNSName (all pages)
//! -> listener 15443 -> target group -> EVERY target healthy, within deadlines.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};

use crate::aws::nlb::{self, LoadBalancer, TargetHealth};
use crate::faults::diagnosis;
use crate::kube::rollout::wait_load_balancer_hostname;
use crate::target::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};
use crate::wait::{self, Poll};

pub async fn gateway_hostname(session: &Session, c: &ClusterTopology) -> Result<String> {
    gateway_hostname_within(session, c, session.timeouts.load_balancer_hostname).await
}

/// The same, with a deadline of the caller's choosing.
pub async fn gateway_hostname_within(
    session: &Session,
    c: &ClusterTopology,
    deadline: std::time::Duration,
) -> Result<String> {
    let client = session.kube(&c.name).await?;
    match wait_load_balancer_hostname(&client, names::ISTIO_INGRESS, names::EASTWEST_GATEWAY, Timeouts::wait(deadline))
        .await
    {
        Ok(h) => Ok(h),
        Err(e) => {
            let why = no_address_diagnosis(session, c).await;
            Err(e.context(format!("{}: the east-west gateway has no load balancer address", c.name)).context(why))
        }
    }
}

const ANN_LB_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";

/// Why a gateway Service has no address, as far as the cluster shows it: no
/// running load balancer controller, or a Service it does not claim (it
/// claims `type: external` or `nlb-ip`, aws-load-balancer-controller
/// pkg/service/service_utils.go).
pub async fn no_address_diagnosis(session: &Session, c: &ClusterTopology) -> String {
    const CAUSE: &str = "the east-west gateway Service has no load balancer address (EXTERNAL-IP <pending>)";
    // The AWS load balancer controller, or MetalLB on kind: the precondition of the gateways' stage.
    if let Err(e) = crate::provision::preconditions::holds_in(session, c, "load-balancer-available").await {
        return diagnosis(
            format!("{CAUSE}: the AWS load balancer controller is not running ({e:#})"),
            "install the AWS load balancer controller (stage 2, with istiod) and wait until it is available",
        );
    }
    let annotated = match session.kube(&c.name).await {
        Ok(client) => kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(client, names::ISTIO_INGRESS)
            .get_opt(names::EASTWEST_GATEWAY)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.metadata.annotations)
            .and_then(|a| a.get(ANN_LB_TYPE).cloned()),
        Err(_) => None,
    };
    match annotated.as_deref() {
        Some("external") | Some("nlb-ip") => diagnosis(
            format!("{CAUSE}, although the controller runs and the Service is annotated {ANN_LB_TYPE}: {}", annotated.unwrap_or_default()),
            "read the controller's events on the Service (kubectl describe svc istio-eastwestgateway -n istio-ingress) and its log",
        ),
        _ => diagnosis(
            format!("{CAUSE}: the Service lacks the annotation {ANN_LB_TYPE}: external, so the load balancer controller leaves it alone"),
            format!("annotate the Service {ANN_LB_TYPE}: external (with nlb-target-type ip and scheme internet-facing)"),
        ),
    }
}

/// The Service's hostname as it is now, without waiting.
pub async fn gateway_hostname_now(session: &Session, c: &ClusterTopology) -> Result<String> {
    let svcs: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(session.kube(&c.name).await?, names::ISTIO_INGRESS);
    let svc = svcs.get(names::EASTWEST_GATEWAY).await?;
    svc.status
        .and_then(|s| s.load_balancer)
        .and_then(|l| l.ingress)
        .and_then(|i| i.first().and_then(|i| i.hostname.clone()))
        .context("the east-west gateway Service has no load balancer hostname")
}

/// The load balancer with this DNS name, among every page of DescribeLoadBalancers.
pub async fn find_load_balancer(session: &Session, hostname: &str) -> Result<LoadBalancer> {
    let aws = session.aws()?;
    Ok(wait::until(
        format!("a load balancer with DNSName {hostname}"),
        Timeouts::wait(session.timeouts.nlb_active),
        || async {
            Ok::<_, anyhow::Error>(match nlb::find_by_dns_name(aws, hostname).await? {
                Some(lb) => Poll::Ready(lb),
                None => Poll::Pending("no load balancer has that DNSName".into()),
            })
        },
    )
    .await?)
}

/// Wait for the NLB to leave `provisioning`, then expect it to be `active`.
pub async fn wait_active(session: &Session, hostname: &str) -> Result<LoadBalancer> {
    let aws = session.aws()?;
    let lb = wait::until(
        format!("load balancer {hostname} to be active"),
        Timeouts::wait(session.timeouts.nlb_active),
        || async {
            Ok::<_, anyhow::Error>(match nlb::find_by_dns_name(aws, hostname).await? {
                Some(lb) if lb.state != "provisioning" => Poll::Ready(lb),
                Some(lb) => Poll::Pending(format!("state {}", lb.state)),
                None => Poll::Pending("gone".into()),
            })
        },
    )
    .await?;
    Ok(lb)
}

/// The target groups behind the listener on `port`.
pub async fn listener_target_group(session: &Session, lb: &LoadBalancer, port: u16) -> Result<String> {
    let listeners = nlb::listeners(session.aws()?, &lb.arn).await?;
    let listener = listeners.iter().find(|l| l.port == port).with_context(|| {
        format!(
            "load balancer {} has no listener on {port} (listeners: {})",
            lb.name,
            listeners.iter().map(|l| format!("{}/{}", l.port, l.protocol)).collect::<Vec<_>>().join(", ")
        )
    })?;
    ensure!(
        !listener.target_group_arns.is_empty(),
        "the listener on {port} of {} does not forward to a target group",
        lb.name
    );
    Ok(listener.target_group_arns[0].clone())
}

fn describe_targets(targets: &[TargetHealth]) -> String {
    if targets.is_empty() {
        return "no target registered".into();
    }
    targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join("; ")
}

/// Wait until the target group has targets and EVERY one is healthy. On expiry
/// the error lists each target with its state and reason, and says where the
/// health checks go.
pub async fn wait_all_targets_healthy(session: &Session, tg_arn: &str) -> Result<Vec<TargetHealth>> {
    match all_targets_healthy(session, tg_arn).await {
        Ok(t) => Ok(t),
        Err(e) => {
            let port =
                nlb::health_check_port(session.aws()?, tg_arn).await.unwrap_or_else(|e| format!("unknown ({e:#})"));
            let why = if port == "traffic-port" || port == names::CROSS_NETWORK_PORT.to_string() {
                diagnosis(
                    "targets behind the 15443 listener are not healthy, so the NLB drops cross-network traffic",
                    "the east-west gateway pods must listen on 15443 (a Gateway with a TLS AUTO_PASSTHROUGH server on 15443 must select them) and security groups must let the NLB's health checks in",
                )
            } else {
                diagnosis(
                    format!("targets behind the 15443 listener are not healthy: their health checks go to port {port}, not the traffic port"),
                    "remove the Service annotation service.beta.kubernetes.io/aws-load-balancer-healthcheck-port (traffic-port is the default) or name a port the gateway listens on",
                )
            };
            Err(e.context(why))
        }
    }
}

async fn all_targets_healthy(session: &Session, tg_arn: &str) -> Result<Vec<TargetHealth>> {
    let aws = session.aws()?;
    Ok(wait::until(
        format!("every target of {tg_arn} to be healthy"),
        Timeouts::wait(session.timeouts.targets_healthy),
        || async {
            let targets = nlb::target_health(aws, tg_arn).await?;
            Ok::<_, anyhow::Error>(if !targets.is_empty() && targets.iter().all(|t| t.state == "healthy") {
                Poll::Ready(targets)
            } else {
                Poll::Pending(describe_targets(&targets))
            })
        },
    )
    .await?)
}

/// The NLB hostname resolves to exactly the public addresses of its nodes, one
/// per zone. The nodes' addresses come from the NLB's network interfaces in EC2:
/// `LoadBalancerAddresses` is empty for an NLB without Elastic IPs (see [`nlb::Zone`]).
pub async fn resolves_per_zone(session: &Session, lb: &LoadBalancer) -> Result<Vec<String>> {
    resolution(session, lb).await.with_context(|| {
        diagnosis(
            format!("the NLB hostname {} does not resolve to its zones' addresses", lb.dns_name),
            "fix name resolution (MESHSPEC_DNS, the VPC resolver): istiod ignores a gateway whose hostname does not resolve",
        )
    })
}

async fn resolution(session: &Session, lb: &LoadBalancer) -> Result<Vec<String>> {
    let nodes = nlb::node_interfaces(session.aws()?, lb).await?;
    let zones: BTreeSet<&str> = lb.zones.iter().map(|z| z.name.as_str()).collect();
    let public: Vec<(&str, &str)> =
        nodes.iter().filter_map(|n| n.public_ip.as_deref().map(|ip| (n.availability_zone.as_str(), ip))).collect();
    let node_zones: BTreeSet<&str> = public.iter().map(|(az, _)| *az).collect();
    ensure!(
        node_zones == zones && public.len() == zones.len(),
        "load balancer {} does not have one public node address per zone: zones {zones:?}, network interfaces {nodes:?}",
        lb.name
    );
    let zone_ips: BTreeSet<String> = public.iter().map(|(_, ip)| ip.to_string()).collect();
    let dns = &session.dns;
    let resolved = wait::until(
        format!("{} to resolve to {} addresses", lb.dns_name, zone_ips.len()),
        Timeouts::wait(session.timeouts.nlb_active),
        || async {
            let ips: BTreeSet<String> = dns.ipv4(&lb.dns_name).await?.into_iter().map(|ip| ip.to_string()).collect();
            Ok::<_, anyhow::Error>(if ips == zone_ips {
                Poll::Ready(ips)
            } else {
                Poll::Pending(format!("resolves to {ips:?}, the NLB's nodes hold {zone_ips:?}"))
            })
        },
    )
    .await?;
    Ok(resolved.into_iter().collect())
}
