//! ELBv2 resources as awsQuery `<member>` structures.

use super::health::{HealthView, NOT_REGISTERED};
use crate::model::{Ctx, Listener, LoadBalancer, Model, Target, TargetGroup};
use crate::names;
use crate::xml::Xml;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn load_balancer(x: &mut Xml, lb: &LoadBalancer, ctx: &Ctx) {
    x.leaf("LoadBalancerArn", &lb.arn)
        .leaf("DNSName", &lb.dns_name)
        .leaf("CanonicalHostedZoneId", names::nlb_hosted_zone(&ctx.region))
        .leaf("CreatedTime", timestamp(&lb.created_at))
        .leaf("LoadBalancerName", &lb.name)
        .leaf("Scheme", &lb.scheme)
        .leaf("VpcId", &lb.vpc_id)
        .node("State", |x| {
            x.leaf("Code", lb.state());
        })
        .leaf("Type", "network");
    x.list("AvailabilityZones", "member", &lb.zones, |x, zone| {
        // LoadBalancerAddresses lists only Elastic IPs given through SubnetMappings and an
        // internal NLB's chosen private IPv4 (ELBv2 API reference, AvailabilityZone and
        // LoadBalancerAddress; botocore elbv2 2015-12-01 service-2.json). The twin's NLBs are
        // made from Subnets alone, as the load balancer controller makes them without
        // eip-allocations: the list is empty and the node addresses are only on the ENIs.
        x.leaf("ZoneName", &zone.az).leaf("SubnetId", &zone.subnet_id);
        x.list("LoadBalancerAddresses", "member", std::iter::empty::<&str>(), |x, ip| {
            x.leaf("IpAddress", ip);
        });
    });
    if !lb.security_groups.is_empty() {
        x.list("SecurityGroups", "member", &lb.security_groups, |x, sg| {
            x.text(sg);
        });
    }
    x.leaf("IpAddressType", "ipv4");
}

pub fn listener(x: &mut Xml, l: &Listener) {
    x.leaf("ListenerArn", &l.arn).leaf("LoadBalancerArn", &l.lb_arn).leaf("Port", l.port).leaf("Protocol", &l.protocol);
    x.node("DefaultActions", |x| {
        x.node("member", |x| {
            x.leaf("Type", "forward");
            if let [(arn, _)] = l.forward.as_slice() {
                x.leaf("TargetGroupArn", arn);
            }
            x.node("ForwardConfig", |x| {
                x.list("TargetGroups", "member", &l.forward, |x, (arn, weight)| {
                    x.leaf("TargetGroupArn", arn).leaf("Weight", weight);
                });
                x.node("TargetGroupStickinessConfig", |x| {
                    x.leaf("Enabled", false);
                });
            });
        });
    });
}

pub fn target_group(x: &mut Xml, tg: &TargetGroup, model: &Model) {
    let hc = &tg.health_check;
    x.leaf("TargetGroupArn", &tg.arn)
        .leaf("TargetGroupName", &tg.name)
        .leaf("Protocol", &tg.protocol)
        .leaf("Port", tg.port)
        .leaf("VpcId", &tg.vpc_id)
        .leaf("HealthCheckProtocol", &hc.protocol)
        .leaf("HealthCheckPort", hc.port.map_or("traffic-port".to_string(), |p| p.to_string()))
        .leaf("HealthCheckEnabled", true)
        .leaf("HealthCheckIntervalSeconds", hc.interval_seconds)
        .leaf("HealthCheckTimeoutSeconds", hc.timeout_seconds)
        .leaf("HealthyThresholdCount", hc.healthy_threshold)
        .leaf("UnhealthyThresholdCount", hc.unhealthy_threshold);
    x.list("LoadBalancerArns", "member", model.load_balancers_of_target_group(&tg.arn), |x, arn| {
        x.text(&arn);
    });
    x.leaf("TargetType", &tg.target_type).leaf("IpAddressType", "ipv4");
}

/// One row of DescribeTargetHealth.
pub struct TargetRow {
    id: String,
    port: u16,
    az: Option<String>,
    health: HealthView,
}

impl TargetRow {
    pub fn of(t: &Target, health: HealthView) -> Self {
        TargetRow { id: t.id.clone(), port: t.port, az: Some(t.az.clone()), health }
    }

    pub fn unregistered(id: &str, port: u16) -> Self {
        TargetRow { id: id.to_string(), port, az: None, health: NOT_REGISTERED }
    }
}

pub fn target_health(x: &mut Xml, row: &TargetRow, check_port: Option<u16>) {
    x.node("Target", |x| {
        x.leaf("Id", &row.id).leaf("Port", row.port).opt_leaf("AvailabilityZone", row.az.as_ref());
    });
    x.leaf("HealthCheckPort", check_port.unwrap_or(row.port));
    x.node("TargetHealth", |x| {
        x.leaf("State", row.health.state)
            .opt_leaf("Reason", row.health.reason)
            .opt_leaf("Description", row.health.description);
    });
}

pub fn attributes(x: &mut Xml, attributes: &BTreeMap<String, String>) {
    x.list("Attributes", "member", attributes, |x, (k, v)| {
        x.leaf("Key", k).leaf("Value", v);
    });
}
