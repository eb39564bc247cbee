//! ELBv2: from a Service hostname to the NLB, its listener and the health of
//! every target (the seed's readiness lookup, without its `[0]`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::AwsAccess;

#[derive(Clone, Debug, Serialize)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub dns_name: String,
    /// `network` for an NLB.
    pub kind: String,
    pub scheme: String,
    pub state: String,
    pub vpc_id: String,
    pub zones: Vec<Zone>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Zone {
    pub name: String,
    pub subnet_id: String,
    /// `LoadBalancerAddresses`: AWS fills it only for Elastic IPs given through
    /// SubnetMappings or an internal NLB's chosen private IPv4 (ELBv2 API reference,
    /// `AvailabilityZone`; botocore elbv2 2015-12-01 service-2.json). The NLBs the load
    /// balancer controller makes for the seed have none: no check may rely on it.
    pub addresses: Vec<String>,
}

/// One network interface of an NLB: what EC2 shows of its node in one zone.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeInterface {
    pub id: String,
    pub availability_zone: String,
    pub private_ip: String,
    /// The AWS-owned public address of an internet-facing NLB's node.
    pub public_ip: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Listener {
    pub arn: String,
    pub port: u16,
    pub protocol: String,
    /// Target groups of its forward action (simple or weighted).
    pub target_group_arns: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetHealth {
    pub id: String,
    pub port: u16,
    pub availability_zone: String,
    pub state: String,
    pub reason: String,
    pub description: String,
}

impl std::fmt::Display for TargetHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ({}) {}", self.id, self.port, self.availability_zone, self.state)?;
        if !self.reason.is_empty() {
            write!(f, " [{}]", self.reason)?;
        }
        if !self.description.is_empty() {
            write!(f, " {}", self.description)?;
        }
        Ok(())
    }
}

fn load_balancer_of(lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer) -> LoadBalancer {
    LoadBalancer {
        arn: lb.load_balancer_arn().unwrap_or_default().to_string(),
        name: lb.load_balancer_name().unwrap_or_default().to_string(),
        dns_name: lb.dns_name().unwrap_or_default().to_string(),
        kind: lb.r#type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        scheme: lb.scheme().map(|s| s.as_str().to_string()).unwrap_or_default(),
        state: lb.state().and_then(|s| s.code()).map(|c| c.as_str().to_string()).unwrap_or_default(),
        vpc_id: lb.vpc_id().unwrap_or_default().to_string(),
        zones: lb
            .availability_zones()
            .iter()
            .map(|z| Zone {
                name: z.zone_name().unwrap_or_default().to_string(),
                subnet_id: z.subnet_id().unwrap_or_default().to_string(),
                addresses: z
                    .load_balancer_addresses()
                    .iter()
                    .filter_map(|a| a.ip_address().map(str::to_string))
                    .collect(),
            })
            .collect(),
    }
}

/// The network interfaces EC2 holds for an NLB, one per enabled zone. ELB describes
/// them as `ELB net/<name>/<id>`, the last two parts of the load balancer's ARN
/// (EC2 User Guide, "Network interfaces": requester-managed interfaces of Elastic Load Balancing).
pub async fn node_interfaces(aws: &AwsAccess, lb: &LoadBalancer) -> Result<Vec<NodeInterface>> {
    use aws_sdk_ec2::types::Filter;
    let description = interface_description(&lb.arn)
        .ok_or_else(|| anyhow::anyhow!("{} is not a network load balancer ARN", lb.arn))?;
    let mut out = Vec::new();
    let mut pages = aws
        .ec2
        .describe_network_interfaces()
        .filters(Filter::builder().name("description").values(description).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("ec2", "DescribeNetworkInterfaces", &e))
        })?;
        out.extend(page.network_interfaces().iter().map(|n| NodeInterface {
            id: n.network_interface_id().unwrap_or_default().to_string(),
            availability_zone: n.availability_zone().unwrap_or_default().to_string(),
            private_ip: n.private_ip_address().unwrap_or_default().to_string(),
            public_ip: n.association().and_then(|a| a.public_ip()).map(str::to_string),
        }));
    }
    out.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/net/NAME/ID` -> `ELB net/NAME/ID`.
fn interface_description(arn: &str) -> Option<String> {
    let path = arn.split_once(":loadbalancer/")?.1;
    path.starts_with("net/").then(|| format!("ELB {path}"))
}

/// Every load balancer of the account and region (all pages).
pub async fn all(aws: &AwsAccess) -> Result<Vec<LoadBalancer>> {
    let mut out = Vec::new();
    let mut items = aws.elbv2.describe_load_balancers().into_paginator().items().send();
    while let Some(lb) = items.next().await {
        let lb =
            lb.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("elbv2", "DescribeLoadBalancers", &e)))?;
        out.push(load_balancer_of(&lb));
    }
    Ok(out)
}

/// The load balancer whose DNSName is `hostname` (DNS names compare without case),
/// looked up across every page like the seed's `jq select(.DNSName == ...)`.
pub async fn find_by_dns_name(aws: &AwsAccess, hostname: &str) -> Result<Option<LoadBalancer>> {
    let wanted = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut items = aws.elbv2.describe_load_balancers().into_paginator().items().send();
    while let Some(lb) = items.next().await {
        let lb =
            lb.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("elbv2", "DescribeLoadBalancers", &e)))?;
        if lb.dns_name().map(|d| d.to_ascii_lowercase()) == Some(wanted.clone()) {
            return Ok(Some(load_balancer_of(&lb)));
        }
    }
    Ok(None)
}

pub async fn listeners(aws: &AwsAccess, lb_arn: &str) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    let mut items = aws.elbv2.describe_listeners().load_balancer_arn(lb_arn).into_paginator().items().send();
    while let Some(l) = items.next().await {
        let l = l.map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("elbv2", format!("DescribeListeners {lb_arn}"), &e))
        })?;
        let mut tgs = Vec::new();
        for action in l.default_actions() {
            if let Some(tg) = action.target_group_arn() {
                tgs.push(tg.to_string());
            }
            if let Some(fc) = action.forward_config() {
                for t in fc.target_groups() {
                    if let Some(arn) = t.target_group_arn() {
                        if !tgs.iter().any(|x| x == arn) {
                            tgs.push(arn.to_string());
                        }
                    }
                }
            }
        }
        out.push(Listener {
            arn: l.listener_arn().unwrap_or_default().to_string(),
            port: l.port().unwrap_or_default() as u16,
            protocol: l.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(),
            target_group_arns: tgs,
        });
    }
    Ok(out)
}

pub async fn target_health(aws: &AwsAccess, tg_arn: &str) -> Result<Vec<TargetHealth>> {
    let out = aws.elbv2.describe_target_health().target_group_arn(tg_arn).send().await.map_err(|e| {
        anyhow::Error::new(super::connect::AwsCallError::of("elbv2", format!("DescribeTargetHealth {tg_arn}"), &e))
    })?;
    let mut targets: Vec<TargetHealth> = out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let t = d.target();
            let h = d.target_health();
            TargetHealth {
                id: t.and_then(|t| t.id()).unwrap_or_default().to_string(),
                port: t.and_then(|t| t.port()).unwrap_or_default() as u16,
                availability_zone: t.and_then(|t| t.availability_zone()).unwrap_or_default().to_string(),
                state: h.and_then(|h| h.state()).map(|s| s.as_str().to_string()).unwrap_or_default(),
                reason: h.and_then(|h| h.reason()).map(|s| s.as_str().to_string()).unwrap_or_default(),
                description: h.and_then(|h| h.description()).unwrap_or_default().to_string(),
            }
        })
        .collect();
    targets.sort_by(|a, b| (&a.id, a.port).cmp(&(&b.id, b.port)));
    Ok(targets)
}

/// Tags of ELBv2 resources (at most 20 ARNs per call, as the API allows).
pub async fn tags(aws: &AwsAccess, arns: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let res = aws
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("elbv2", "DescribeTags", &e)))?;
        for d in res.tag_descriptions() {
            let tags = d
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    Ok(out)
}

/// Every target group of the account and region (all pages).
/// Where a target group's health checks go: its `HealthCheckPort`, `traffic-port`
/// or a number (DescribeTargetGroups).
pub async fn health_check_port(aws: &AwsAccess, tg_arn: &str) -> Result<String> {
    let out = aws.elbv2.describe_target_groups().target_group_arns(tg_arn).send().await.map_err(|e| {
        anyhow::Error::new(super::connect::AwsCallError::of("elbv2", format!("DescribeTargetGroups {tg_arn}"), &e))
    })?;
    Ok(out.target_groups().first().and_then(|tg| tg.health_check_port()).unwrap_or("traffic-port").to_string())
}

pub async fn target_groups(aws: &AwsAccess) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut items = aws.elbv2.describe_target_groups().into_paginator().items().send();
    while let Some(tg) = items.next().await {
        let tg =
            tg.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("elbv2", "DescribeTargetGroups", &e)))?;
        out.push((
            tg.target_group_arn().unwrap_or_default().to_string(),
            tg.target_group_name().unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::interface_description;

    #[test]
    fn an_nlb_arn_names_its_interfaces() {
        assert_eq!(
            interface_description(
                "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/net/k8s-istioing-istioeas-1a2b3c4d5e/50dc6c495c0c9188"
            )
            .as_deref(),
            Some("ELB net/k8s-istioing-istioeas-1a2b3c4d5e/50dc6c495c0c9188")
        );
        assert_eq!(
            interface_description("arn:aws:elasticloadbalancing:us-west-2:1:loadbalancer/app/alb/1"),
            None,
            "an application load balancer is not an NLB"
        );
    }
}
