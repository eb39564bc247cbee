//! ELBv2: from a Service hostname to the NLB, its listener and the health of
//! every target (the seed's readiness lookup, without its `[0]`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::connect::explain;
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
    pub addresses: Vec<String>,
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

/// Every load balancer of the account and region (all pages).
pub async fn all(aws: &AwsAccess) -> Result<Vec<LoadBalancer>> {
    let mut out = Vec::new();
    let mut items = aws.elbv2.describe_load_balancers().into_paginator().items().send();
    while let Some(lb) = items.next().await {
        let lb = lb.map_err(|e| anyhow::anyhow!("elbv2 DescribeLoadBalancers: {}", explain(&e)))?;
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
        let lb = lb.map_err(|e| anyhow::anyhow!("elbv2 DescribeLoadBalancers: {}", explain(&e)))?;
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
        let l = l.map_err(|e| anyhow::anyhow!("elbv2 DescribeListeners {lb_arn}: {}", explain(&e)))?;
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
    let out = aws
        .elbv2
        .describe_target_health()
        .target_group_arn(tg_arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("elbv2 DescribeTargetHealth {tg_arn}: {}", explain(&e)))?;
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
            .map_err(|e| anyhow::anyhow!("elbv2 DescribeTags: {}", explain(&e)))?;
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
pub async fn target_groups(aws: &AwsAccess) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut items = aws.elbv2.describe_target_groups().into_paginator().items().send();
    while let Some(tg) = items.next().await {
        let tg = tg.map_err(|e| anyhow::anyhow!("elbv2 DescribeTargetGroups: {}", explain(&e)))?;
        out.push((
            tg.target_group_arn().unwrap_or_default().to_string(),
            tg.target_group_name().unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}
