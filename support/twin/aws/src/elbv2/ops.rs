//! ELBv2 operations on the model (network load balancers only), with the
//! validations, idempotency and error codes of the real service.

use crate::error::{AwsError, AwsResult};
use crate::model::{
    Eni, EniOwner, Health, HealthCheck, LbZone, Listener, LoadBalancer, Model, Tags, Target, TargetGroup,
};
use crate::{names, NewLoadBalancer};
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Instant;

pub fn lb_not_found() -> AwsError {
    AwsError::bad("LoadBalancerNotFound", "One or more load balancers not found")
}

pub fn tg_not_found() -> AwsError {
    AwsError::bad("TargetGroupNotFound", "One or more target groups not found")
}

pub fn listener_not_found() -> AwsError {
    AwsError::bad("ListenerNotFound", "One or more listeners not found")
}

/// Load balancer and target group names: 1-32 alphanumerics or hyphens, no
/// hyphen at either end.
fn check_name(kind: &str, name: &str) -> AwsResult<()> {
    if name.is_empty() || name.len() > 32 {
        return Err(AwsError::elb_validation(format!("{kind} name '{name}' must be between 1 and 32 characters long")));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(AwsError::elb_validation(format!(
            "{kind} name '{name}' can only contain characters that are alphanumeric characters or hyphens(-)"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(AwsError::elb_validation(format!("{kind} name '{name}' cannot begin or end with a hyphen")));
    }
    if kind == "Load balancer" && name.starts_with("internal-") {
        return Err(AwsError::elb_validation(format!("Load balancer name '{name}' cannot begin with 'internal-'")));
    }
    Ok(())
}

fn check_tags(tags: &[(String, String)]) -> AwsResult<()> {
    if tags.len() > 50 {
        return Err(AwsError::bad("TooManyTags", "You've reached the limit on the number of tags for this resource"));
    }
    let mut seen = BTreeSet::new();
    for (key, _) in tags {
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::elb_validation("Tag keys starting with 'aws:' are reserved for internal use"));
        }
        if !seen.insert(key) {
            return Err(AwsError::bad("DuplicateTagKeys", format!("Tag key '{key}' specified more than once")));
        }
    }
    Ok(())
}

fn default_lb_attributes() -> BTreeMap<String, String> {
    [
        ("access_logs.s3.enabled", "false"),
        ("access_logs.s3.bucket", ""),
        ("access_logs.s3.prefix", ""),
        ("deletion_protection.enabled", "false"),
        ("load_balancing.cross_zone.enabled", "false"),
        ("ipv6.deny_all_igw_traffic", "false"),
        ("dns_record.client_routing_policy", "any_availability_zone"),
        ("zonal_shift.config.enabled", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn default_tg_attributes() -> BTreeMap<String, String> {
    [
        ("deregistration_delay.timeout_seconds", "300"),
        ("deregistration_delay.connection_termination.enabled", "false"),
        ("preserve_client_ip.enabled", "false"),
        ("proxy_protocol_v2.enabled", "false"),
        ("stickiness.enabled", "false"),
        ("stickiness.type", "source_ip"),
        ("load_balancing.cross_zone.enabled", "use_load_balancer_configuration"),
        ("target_health_state.unhealthy.connection_termination.enabled", "true"),
        ("target_group_health.dns_failover.minimum_healthy_targets.count", "1"),
        ("target_group_health.dns_failover.minimum_healthy_targets.percentage", "off"),
        ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "1"),
        ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Applies `Key=Value` changes to an attribute map; unknown keys are refused.
pub fn modify_attributes(
    attributes: &mut BTreeMap<String, String>,
    changes: &[(String, String)],
    kind: &str,
) -> AwsResult<()> {
    for (key, _) in changes {
        if !attributes.contains_key(key) {
            return Err(AwsError::elb_validation(format!("{kind} attribute key '{key}' is not recognized")));
        }
    }
    for (key, value) in changes {
        attributes.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// A new target group's request, beyond the controller's simple form.
pub struct TargetGroupRequest {
    pub name: String,
    pub protocol: String,
    pub port: u16,
    pub vpc_id: String,
    pub target_type: String,
    pub health_check_port: Option<u16>,
    pub health_check_interval_seconds: Option<u64>,
    pub health_check_timeout_seconds: Option<u64>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub tags: Vec<(String, String)>,
}

impl TargetGroupRequest {
    /// The controller's form for NLBs: TCP, target type ip, default health checks.
    pub fn tcp_ip(name: String, port: u16, vpc_id: String, tags: Vec<(String, String)>) -> Self {
        TargetGroupRequest {
            name,
            protocol: "TCP".into(),
            port,
            vpc_id,
            target_type: "ip".into(),
            health_check_port: None,
            health_check_interval_seconds: None,
            health_check_timeout_seconds: None,
            healthy_threshold: None,
            unhealthy_threshold: None,
            tags,
        }
    }
}

const NLB_PROTOCOLS: &[&str] = &["TCP", "UDP", "TCP_UDP", "TLS"];

impl Model {
    pub fn elb_create_load_balancer(&mut self, req: &NewLoadBalancer) -> AwsResult<String> {
        check_name("Load balancer", &req.name)?;
        check_tags(&req.tags)?;
        let scheme = if req.scheme.is_empty() { "internet-facing" } else { req.scheme.as_str() };
        if scheme != "internet-facing" && scheme != "internal" {
            return Err(AwsError::elb_validation(format!(
                "Scheme '{scheme}' is not valid: internet-facing or internal"
            )));
        }
        if req.subnet_ids.is_empty() {
            return Err(AwsError::elb_validation("At least one subnet must be specified"));
        }
        let mut vpc_id: Option<&str> = None;
        let mut zones_seen = BTreeSet::new();
        for id in &req.subnet_ids {
            let subnet = self
                .subnets
                .get(id)
                .ok_or_else(|| AwsError::bad("SubnetNotFound", format!("The subnet ID '{id}' is not valid")))?;
            if vpc_id.is_some_and(|v| v != subnet.vpc_id) {
                return Err(AwsError::bad("InvalidConfigurationRequest", "All subnets must belong to the same VPC"));
            }
            vpc_id = Some(&subnet.vpc_id);
            if !zones_seen.insert(subnet.az.clone()) {
                return Err(AwsError::bad(
                    "InvalidConfigurationRequest",
                    "A load balancer cannot be attached to multiple subnets in the same Availability Zone",
                ));
            }
            if subnet.available_ips() < 8 {
                return Err(AwsError::bad(
                    "InvalidSubnet",
                    format!("Not enough IP space available in {id}. ELB requires at least 8 free IP addresses in each subnet."),
                ));
            }
        }
        let vpc_id = vpc_id.unwrap_or_default().to_string();
        for sg in &req.security_group_ids {
            if self.security_groups.get(sg).is_none_or(|g| g.vpc_id != vpc_id) {
                return Err(AwsError::bad("InvalidSecurityGroup", format!("Security group '{sg}' does not exist")));
            }
        }
        if let Some(existing) = self.load_balancers.values().find(|lb| lb.name == req.name) {
            let same_subnets: BTreeSet<&String> = existing.zones.iter().map(|z| &z.subnet_id).collect();
            let wanted: BTreeSet<&String> = req.subnet_ids.iter().collect();
            if existing.scheme == scheme && same_subnets == wanted {
                return Ok(existing.arn.clone());
            }
            return Err(AwsError::bad(
                "DuplicateLoadBalancerName",
                format!("A load balancer with the same name '{}' exists, but with different settings", req.name),
            ));
        }

        let suffix = names::hex(16);
        let arn = names::nlb_arn(&self.ctx.region, &self.ctx.account, &req.name, &suffix);
        let host_ips = self.allocate_host_ips(req.subnet_ids.len())?;
        let mut zones = Vec::new();
        for (i, subnet_id) in req.subnet_ids.iter().enumerate() {
            let private_ip = self.allocate_private_ip(subnet_id).ok_or_else(|| {
                AwsError::bad("InvalidSubnet", format!("Not enough IP space available in {subnet_id}."))
            })?;
            let host_ip = host_ips.get(i).copied();
            let public_ip = (scheme == "internet-facing")
                .then(|| host_ip.unwrap_or_else(|| names::public_ip(&mut self.public_ips)));
            let (az, vpc) = self.subnets.get(subnet_id).map(|s| (s.az.clone(), s.vpc_id.clone())).unwrap_or_default();
            let eni_id = names::ec2_id("eni");
            let seq = self.next_seq();
            self.enis.insert(
                eni_id.clone(),
                Eni {
                    id: eni_id.clone(),
                    seq,
                    subnet_id: subnet_id.clone(),
                    vpc_id: vpc,
                    az: az.clone(),
                    description: format!("ELB net/{}/{suffix}", req.name),
                    private_ip,
                    public_ip,
                    interface_type: "network_load_balancer".into(),
                    requester_id: "amazon-elb".into(),
                    group_ids: req.security_group_ids.clone(),
                    owner: EniOwner::LoadBalancer(arn.clone()),
                    tags: Tags::new(),
                },
            );
            zones.push(LbZone { az, subnet_id: subnet_id.clone(), private_ip, public_ip, host_ip });
        }
        let seq = self.next_seq();
        self.load_balancers.insert(
            arn.clone(),
            LoadBalancer {
                arn: arn.clone(),
                name: req.name.clone(),
                seq,
                dns_name: names::nlb_dns_name(&req.name, &suffix, &self.ctx.region),
                scheme: scheme.to_string(),
                vpc_id,
                created_at: Utc::now(),
                created: Instant::now(),
                active: false,
                zones,
                security_groups: req.security_group_ids.clone(),
                attributes: default_lb_attributes(),
                tags: req.tags.iter().cloned().collect(),
            },
        );
        Ok(arn)
    }

    /// One address of this host per zone when NLB nodes get bindable ones
    /// (none otherwise); all or nothing.
    fn allocate_host_ips(&mut self, zones: usize) -> AwsResult<Vec<Ipv4Addr>> {
        let Some(pool) = self.host_addresses.as_mut() else {
            return Ok(Vec::new());
        };
        let mut ips = Vec::with_capacity(zones);
        for _ in 0..zones {
            match pool.allocate() {
                Some(ip) => ips.push(ip),
                None => {
                    ips.iter().for_each(|ip| pool.release(*ip));
                    // Not an AWS limit: the twin's configured range is full.
                    return Err(AwsError::new(
                        500,
                        "InternalFailure",
                        "The twin's NLB address range has no free address left",
                    ));
                }
            }
        }
        Ok(ips)
    }

    /// Deleting an unknown load balancer succeeds, as in ELBv2.
    pub fn elb_delete_load_balancer(&mut self, arn: &str) -> AwsResult<()> {
        let Some(lb) = self.load_balancers.get(arn) else {
            return Ok(());
        };
        if lb.attributes.get("deletion_protection.enabled").map(String::as_str) == Some("true") {
            return Err(AwsError::bad(
                "OperationNotPermitted",
                format!("Load balancer '{arn}' cannot be deleted because deletion protection is enabled"),
            ));
        }
        if let Some(lb) = self.load_balancers.remove(arn) {
            if let Some(pool) = self.host_addresses.as_mut() {
                lb.zones.iter().filter_map(|z| z.host_ip).for_each(|ip| pool.release(ip));
            }
        }
        let listeners: Vec<String> =
            self.listeners.values().filter(|l| l.lb_arn == arn).map(|l| l.arn.clone()).collect();
        for listener in listeners {
            self.elb_delete_listener(&listener)?;
        }
        self.remove_enis_of(&EniOwner::LoadBalancer(arn.to_string()));
        Ok(())
    }

    pub fn elb_create_target_group(&mut self, req: TargetGroupRequest) -> AwsResult<String> {
        check_name("Target group", &req.name)?;
        check_tags(&req.tags)?;
        if !NLB_PROTOCOLS.contains(&req.protocol.as_str()) {
            return Err(AwsError::elb_validation(format!(
                "Protocol '{}' is not supported for network load balancer target groups",
                req.protocol
            )));
        }
        if req.port == 0 {
            return Err(AwsError::elb_validation("Port must be between 1 and 65535"));
        }
        if !["ip", "instance", "alb"].contains(&req.target_type.as_str()) {
            return Err(AwsError::elb_validation(format!("Target type '{}' is not valid", req.target_type)));
        }
        if !self.vpcs.contains_key(&req.vpc_id) {
            return Err(AwsError::elb_validation(format!("The VPC ID '{}' is not found", req.vpc_id)));
        }
        let delays = &self.ctx.delays;
        let health_check = HealthCheck {
            protocol: "TCP".into(),
            port: req.health_check_port,
            interval_seconds: req
                .health_check_interval_seconds
                .unwrap_or(delays.health_check_interval.as_secs().max(1)),
            timeout_seconds: req.health_check_timeout_seconds.unwrap_or(10),
            healthy_threshold: req.healthy_threshold.unwrap_or(delays.healthy_threshold).max(1),
            unhealthy_threshold: req.unhealthy_threshold.unwrap_or(delays.unhealthy_threshold).max(1),
        };
        if let Some(existing) = self.target_groups.values().find(|tg| tg.name == req.name) {
            let same = existing.protocol == req.protocol
                && existing.port == req.port
                && existing.vpc_id == req.vpc_id
                && existing.target_type == req.target_type;
            if same {
                return Ok(existing.arn.clone());
            }
            return Err(AwsError::bad(
                "DuplicateTargetGroupName",
                format!("A target group with the same name '{}' exists, but with different settings", req.name),
            ));
        }
        let arn = names::target_group_arn(&self.ctx.region, &self.ctx.account, &req.name, &names::hex(16));
        let seq = self.next_seq();
        self.target_groups.insert(
            arn.clone(),
            TargetGroup {
                arn: arn.clone(),
                name: req.name,
                seq,
                protocol: req.protocol,
                port: req.port,
                vpc_id: req.vpc_id,
                target_type: req.target_type,
                health_check,
                targets: Vec::new(),
                attributes: default_tg_attributes(),
                tags: req.tags.into_iter().collect(),
            },
        );
        Ok(arn)
    }

    pub fn elb_delete_target_group(&mut self, arn: &str) -> AwsResult<()> {
        if self.target_group_in_use(arn) {
            return Err(AwsError::bad(
                "ResourceInUse",
                format!("Target group '{arn}' is currently in use by a listener or a rule"),
            ));
        }
        self.target_groups.remove(arn);
        Ok(())
    }

    pub fn elb_create_listener(
        &mut self,
        lb_arn: &str,
        port: u16,
        protocol: &str,
        forward: Vec<(String, u32)>,
        tags: Vec<(String, String)>,
    ) -> AwsResult<String> {
        check_tags(&tags)?;
        let lb_vpc = self.load_balancers.get(lb_arn).ok_or_else(lb_not_found)?.vpc_id.clone();
        if port == 0 {
            return Err(AwsError::elb_validation("Port must be between 1 and 65535"));
        }
        if !NLB_PROTOCOLS.contains(&protocol) {
            return Err(AwsError::elb_validation(format!(
                "Protocol '{protocol}' is not supported by network load balancers"
            )));
        }
        match forward.len() {
            0 => return Err(AwsError::elb_validation("A forward action with a target group must be specified")),
            1 => {}
            _ => {
                return Err(AwsError::bad(
                    "InvalidConfigurationRequest",
                    "You can specify only one target group for a forward action on a Network Load Balancer",
                ))
            }
        }
        for (tg_arn, _) in &forward {
            let tg = self.target_groups.get(tg_arn).ok_or_else(tg_not_found)?;
            if tg.vpc_id != lb_vpc {
                return Err(AwsError::bad(
                    "InvalidConfigurationRequest",
                    format!("The target group '{tg_arn}' and the load balancer must be in the same VPC"),
                ));
            }
            let compatible = match protocol {
                "TCP" => ["TCP", "TCP_UDP"].contains(&tg.protocol.as_str()),
                "UDP" => ["UDP", "TCP_UDP"].contains(&tg.protocol.as_str()),
                "TLS" => ["TCP", "TLS"].contains(&tg.protocol.as_str()),
                _ => tg.protocol == protocol,
            };
            if !compatible {
                return Err(AwsError::bad(
                    "IncompatibleProtocols",
                    format!(
                        "Listener protocol '{protocol}' is not compatible with target group protocol '{}'",
                        tg.protocol
                    ),
                ));
            }
            if self.load_balancers_of_target_group(tg_arn).iter().any(|other| other != lb_arn) {
                return Err(AwsError::bad(
                    "TargetGroupAssociationLimit",
                    format!(
                        "The following target groups cannot be associated with more than one load balancer: {tg_arn}"
                    ),
                ));
            }
        }
        if let Some(existing) = self.listeners.values().find(|l| l.lb_arn == lb_arn && l.port == port) {
            if existing.protocol == protocol && existing.forward == forward {
                return Ok(existing.arn.clone());
            }
            return Err(AwsError::bad(
                "DuplicateListener",
                format!("A listener already exists on this port for this load balancer '{lb_arn}'"),
            ));
        }
        let arn = names::listener_arn(lb_arn, &names::hex(16));
        let seq = self.next_seq();
        self.listeners.insert(
            arn.clone(),
            Listener {
                arn: arn.clone(),
                seq,
                lb_arn: lb_arn.to_string(),
                port,
                protocol: protocol.to_string(),
                forward,
                tags: tags.into_iter().collect(),
            },
        );
        Ok(arn)
    }

    pub fn elb_delete_listener(&mut self, arn: &str) -> AwsResult<()> {
        let listener = self.listeners.remove(arn).ok_or_else(listener_not_found)?;
        // A target group that no longer receives traffic is health checked
        // afresh when it is used again.
        for (tg_arn, _) in listener.forward {
            if !self.target_group_in_use(&tg_arn) {
                if let Some(tg) = self.target_groups.get_mut(&tg_arn) {
                    for t in &mut tg.targets {
                        t.health = Health::Initial;
                        t.passes = 0;
                        t.failures = 0;
                    }
                }
            }
        }
        Ok(())
    }

    /// The availability zone an IP target is in: its subnet's, or `all` for a
    /// private address outside the VPC's subnets.
    fn ip_target_zone(&self, vpc_id: &str, id: &str) -> AwsResult<String> {
        let ip: Ipv4Addr = id.parse().map_err(|_| {
            AwsError::bad("InvalidTarget", format!("The IP address '{id}' is not a valid IPv4 address"))
        })?;
        if let Some(subnet) = self.subnets.values().find(|s| s.vpc_id == vpc_id && s.cidr.contains(ip)) {
            return Ok(subnet.az.clone());
        }
        let [a, b, ..] = ip.octets();
        if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            return Ok("all".into());
        }
        Err(AwsError::bad(
            "InvalidTarget",
            format!("The IP address '{id}' is not within the VPC or a private address range"),
        ))
    }

    /// Registers (id, port) targets; port None = the target group's port.
    pub fn elb_register_targets(&mut self, tg_arn: &str, targets: &[(String, Option<u16>)]) -> AwsResult<()> {
        let tg = self.target_groups.get(tg_arn).ok_or_else(tg_not_found)?;
        let mut resolved = Vec::new();
        for (id, port) in targets {
            if tg.target_type != "ip" {
                return Err(AwsError::bad("InvalidTarget", format!("The following targets are not valid: '{id}'")));
            }
            let az = self.ip_target_zone(&tg.vpc_id, id)?;
            let port = port.unwrap_or(tg.port);
            if port == 0 {
                return Err(AwsError::elb_validation("Port must be between 1 and 65535"));
            }
            resolved.push((id.clone(), port, az));
        }
        let tg = self.target_groups.get_mut(tg_arn).ok_or_else(tg_not_found)?;
        let now = Instant::now();
        for (id, port, az) in resolved {
            match tg.targets.iter_mut().find(|t| t.id == id && t.port == port) {
                Some(t) if t.deregistered.is_some() => {
                    *t = Target::registered(id, port, az, now);
                }
                Some(_) => {}
                None => {
                    if tg.targets.len() >= 1000 {
                        return Err(AwsError::bad(
                            "TooManyTargets",
                            "You have reached the maximum number of targets per target group",
                        ));
                    }
                    tg.targets.push(Target::registered(id, port, az, now));
                }
            }
        }
        Ok(())
    }

    pub fn elb_deregister_targets(&mut self, tg_arn: &str, targets: &[(String, Option<u16>)]) -> AwsResult<()> {
        let tg = self.target_groups.get_mut(tg_arn).ok_or_else(tg_not_found)?;
        let default_port = tg.port;
        let wanted: Vec<(String, u16)> =
            targets.iter().map(|(id, port)| (id.clone(), port.unwrap_or(default_port))).collect();
        for (id, port) in &wanted {
            if !tg.targets.iter().any(|t| &t.id == id && t.port == *port && t.deregistered.is_none()) {
                return Err(AwsError::bad(
                    "InvalidTarget",
                    format!("The following targets are not registered in target group '{tg_arn}': '{id}:{port}'"),
                ));
            }
        }
        let now = Instant::now();
        for t in tg.targets.iter_mut() {
            if wanted.iter().any(|(id, port)| &t.id == id && t.port == *port) {
                t.deregistered = Some(now);
            }
        }
        Ok(())
    }

    /// The tags of an ELBv2 resource by ARN, or the NotFound error for its kind.
    pub fn elb_tags_mut(&mut self, arn: &str) -> AwsResult<&mut Tags> {
        if arn.contains(":loadbalancer/") {
            self.load_balancers.get_mut(arn).map(|r| &mut r.tags).ok_or_else(lb_not_found)
        } else if arn.contains(":targetgroup/") {
            self.target_groups.get_mut(arn).map(|r| &mut r.tags).ok_or_else(tg_not_found)
        } else if arn.contains(":listener/") {
            self.listeners.get_mut(arn).map(|r| &mut r.tags).ok_or_else(listener_not_found)
        } else {
            Err(AwsError::elb_validation(format!("'{arn}' is not a valid resource ARN")))
        }
    }

    pub fn elb_add_tags(&mut self, arns: &[String], tags: &[(String, String)]) -> AwsResult<()> {
        check_tags(tags)?;
        for arn in arns {
            let existing = self.elb_tags_mut(arn)?;
            let keys: BTreeSet<&String> = existing.keys().chain(tags.iter().map(|(k, _)| k)).collect();
            if keys.len() > 50 {
                return Err(AwsError::bad(
                    "TooManyTags",
                    "You've reached the limit on the number of tags for this resource",
                ));
            }
        }
        for arn in arns {
            let existing = self.elb_tags_mut(arn)?;
            for (k, v) in tags {
                existing.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    pub fn elb_remove_tags(&mut self, arns: &[String], keys: &[String]) -> AwsResult<()> {
        for arn in arns {
            self.elb_tags_mut(arn)?;
        }
        for arn in arns {
            let existing = self.elb_tags_mut(arn)?;
            for k in keys {
                existing.remove(k);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Ctx;
    use crate::{Clock, Delays};

    pub(crate) fn network() -> (Model, String, Vec<String>) {
        let mut m = Model::new(Ctx {
            region: "us-west-2".into(),
            account: "123456789012".into(),
            clock: Clock::new(1.0),
            delays: Delays::default(),
        });
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let subnets = ["10.1.48.0/24", "10.1.49.0/24", "10.1.50.0/24"]
            .iter()
            .zip(["us-west-2a", "us-west-2b", "us-west-2c"])
            .map(|(cidr, az)| m.create_subnet(&vpc, cidr, Some(az), None, vec![]).unwrap())
            .collect();
        (m, vpc, subnets)
    }

    fn nlb(name: &str, subnets: &[String]) -> NewLoadBalancer {
        NewLoadBalancer {
            name: name.into(),
            scheme: "internet-facing".into(),
            subnet_ids: subnets.to_vec(),
            ..Default::default()
        }
    }

    fn tg(name: &str, vpc: &str) -> TargetGroupRequest {
        TargetGroupRequest::tcp_ip(name.into(), 15443, vpc.into(), vec![])
    }

    #[test]
    fn nlb_gets_an_eni_and_public_ip_per_subnet_and_deletion_frees_the_vpc() {
        let (mut m, vpc, subnets) = network();
        let arn = m.elb_create_load_balancer(&nlb("gw", &subnets)).unwrap();
        let lb = &m.load_balancers[&arn];
        assert_eq!(lb.zones.len(), 3);
        assert!(lb.zones.iter().all(|z| z.public_ip.is_some()));
        let enis: Vec<_> = m.enis.values().collect();
        assert_eq!(enis.len(), 3);
        let suffix = arn.rsplit('/').next().unwrap();
        assert!(enis
            .iter()
            .all(|e| e.description == format!("ELB net/gw/{suffix}") && e.interface_type == "network_load_balancer"));
        assert!(lb.dns_name.starts_with(&format!("gw-{suffix}.elb.us-west-2")));
        assert_eq!(m.delete_subnet(&subnets[0]).unwrap_err().code, "DependencyViolation");
        assert_eq!(m.elb_create_load_balancer(&nlb("gw", &subnets)).unwrap(), arn, "same settings: idempotent");
        assert_eq!(
            m.elb_create_load_balancer(&nlb("gw", &subnets[..1])).unwrap_err().code,
            "DuplicateLoadBalancerName"
        );
        m.elb_delete_load_balancer(&arn).unwrap();
        assert!(m.enis.is_empty());
        for s in &subnets {
            m.delete_subnet(s).unwrap();
        }
        m.delete_vpc(&vpc).unwrap();
        m.elb_delete_load_balancer(&arn).unwrap();
    }

    #[test]
    fn load_balancer_validation() {
        let (mut m, _, subnets) = network();
        let code = |m: &mut Model, req: NewLoadBalancer| m.elb_create_load_balancer(&req).unwrap_err().code;
        assert_eq!(code(&mut m, nlb("-bad", &subnets)), "ValidationError");
        assert_eq!(code(&mut m, nlb(&"x".repeat(33), &subnets)), "ValidationError");
        assert_eq!(code(&mut m, nlb("ok", &["subnet-0123456789abcdef0".to_string()])), "SubnetNotFound");
        let mut same_az = nlb("ok", &subnets[..1]);
        same_az.subnet_ids.push(subnets[0].clone());
        assert_eq!(code(&mut m, same_az), "InvalidConfigurationRequest");
        let mut with_sg = nlb("ok", &subnets);
        with_sg.security_group_ids = vec!["sg-0123456789abcdef0".into()];
        assert_eq!(code(&mut m, with_sg), "InvalidSecurityGroup");
    }

    #[test]
    fn listeners_target_groups_and_their_constraints() {
        let (mut m, vpc, subnets) = network();
        let lb = m.elb_create_load_balancer(&nlb("gw", &subnets)).unwrap();
        let tg_arn = m.elb_create_target_group(tg("k8s-gw-15443", &vpc)).unwrap();
        assert_eq!(m.elb_create_target_group(tg("k8s-gw-15443", &vpc)).unwrap(), tg_arn);
        let mut other_port = tg("k8s-gw-15443", &vpc);
        other_port.port = 1;
        assert_eq!(m.elb_create_target_group(other_port).unwrap_err().code, "DuplicateTargetGroupName");
        let listener = m.elb_create_listener(&lb, 15443, "TCP", vec![(tg_arn.clone(), 1)], vec![]).unwrap();
        assert!(listener.contains(":listener/net/gw/"));
        let tg2 = m.elb_create_target_group(tg("other", &vpc)).unwrap();
        assert_eq!(
            m.elb_create_listener(&lb, 15443, "TCP", vec![(tg2, 1)], vec![]).unwrap_err().code,
            "DuplicateListener"
        );
        assert_eq!(m.elb_delete_target_group(&tg_arn).unwrap_err().code, "ResourceInUse");
        assert_eq!(
            m.elb_create_listener("arn:nope", 1, "TCP", vec![(tg_arn.clone(), 1)], vec![]).unwrap_err().code,
            "LoadBalancerNotFound"
        );
        m.elb_delete_load_balancer(&lb).unwrap();
        assert!(m.listeners.is_empty());
        m.elb_delete_target_group(&tg_arn).unwrap();
        assert_eq!(m.elb_delete_listener(&listener).unwrap_err().code, "ListenerNotFound");
    }

    #[test]
    fn targets_register_in_their_subnet_zone() {
        let (mut m, vpc, _) = network();
        let tg_arn = m.elb_create_target_group(tg("t", &vpc)).unwrap();
        m.elb_register_targets(&tg_arn, &[("10.1.49.20".into(), None), ("10.99.0.1".into(), Some(8080))]).unwrap();
        let targets = &m.target_groups[&tg_arn].targets;
        assert_eq!((targets[0].az.as_str(), targets[0].port), ("us-west-2b", 15443));
        assert_eq!((targets[1].az.as_str(), targets[1].port), ("all", 8080));
        assert_eq!(m.elb_register_targets(&tg_arn, &[("8.8.8.8".into(), None)]).unwrap_err().code, "InvalidTarget");
        assert_eq!(m.elb_register_targets(&tg_arn, &[("pod".into(), None)]).unwrap_err().code, "InvalidTarget");
        assert_eq!(
            m.elb_deregister_targets(&tg_arn, &[("10.1.49.21".into(), None)]).unwrap_err().code,
            "InvalidTarget"
        );
        m.elb_deregister_targets(&tg_arn, &[("10.1.49.20".into(), None)]).unwrap();
        assert!(m.target_groups[&tg_arn].targets[0].deregistered.is_some());
    }

    #[test]
    fn tags_by_arn_kind() {
        let (mut m, vpc, _) = network();
        let tg_arn = m.elb_create_target_group(tg("t", &vpc)).unwrap();
        m.elb_add_tags(std::slice::from_ref(&tg_arn), &[("k".into(), "v".into())]).unwrap();
        assert_eq!(m.target_groups[&tg_arn].tags["k"], "v");
        let missing_lb =
            "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/net/x/0123456789abcdef".to_string();
        assert_eq!(
            m.elb_add_tags(&[missing_lb], &[("k".into(), "v".into())]).unwrap_err().code,
            "LoadBalancerNotFound"
        );
        m.elb_remove_tags(std::slice::from_ref(&tg_arn), &["k".into()]).unwrap();
        assert!(m.target_groups[&tg_arn].tags.is_empty());
        assert_eq!(m.elb_add_tags(&[tg_arn], &[("aws:x".into(), "v".into())]).unwrap_err().code, "ValidationError");
    }
}
