//! Elastic Load Balancing v2 over awsQuery (2015-12-01): network load
//! balancers, listeners, target groups, targets and their health, tags and
//! attributes.

pub mod health;
pub mod ops;
mod render;

use crate::error::{AwsError, AwsResult};
use crate::model::{decode_token, encode_token, paginate, Model};
use crate::query::Params;
use crate::xml::{query_response, Xml, ELB_NS};
use crate::NewLoadBalancer;
use ops::{lb_not_found, listener_not_found, tg_not_found, TargetGroupRequest};

pub fn handle(model: &mut Model, params: &Params, request_id: &str) -> AwsResult<String> {
    let action = params.get("Action").unwrap_or_default();
    let respond = |result: &dyn Fn(&mut Xml)| query_response(action, ELB_NS, request_id, result);
    let need = |key: &str| params.require(key, AwsError::elb_missing);
    match action {
        "DescribeLoadBalancers" => {
            let arns = params.members("LoadBalancerArns");
            let names = params.members("Names");
            if !arns.is_empty() && !names.is_empty() {
                return Err(AwsError::elb_validation(
                    "Load balancer names and load balancer ARNs cannot be specified at the same time",
                ));
            }
            let paging = Paging::from_params(params, "lb")?;
            if arns.iter().any(|a| !model.load_balancers.contains_key(a)) {
                return Err(lb_not_found());
            }
            let missing: Vec<&String> =
                names.iter().filter(|n| !model.load_balancers.values().any(|lb| &lb.name == *n)).collect();
            if !missing.is_empty() {
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(AwsError::bad(
                    "LoadBalancerNotFound",
                    format!("Load balancers '[{}]' not found", list.join(", ")),
                ));
            }
            let items = model
                .load_balancers
                .values()
                .filter(|lb| arns.is_empty() || arns.contains(&lb.arn))
                .filter(|lb| names.is_empty() || names.contains(&lb.name))
                .map(|lb| (lb.seq, lb))
                .collect();
            let (page, next) = paging.page(items);
            Ok(respond(&|x| {
                x.list("LoadBalancers", "member", &page, |x, lb| render::load_balancer(x, lb, &model.ctx));
                x.opt_leaf("NextMarker", next.as_ref());
            }))
        }
        "CreateLoadBalancer" => {
            let kind = params.get("Type").unwrap_or("application");
            if kind != "network" {
                return Err(AwsError::bad(
                    "InvalidConfigurationRequest",
                    format!("Load balancer type '{kind}' is not available here: only network load balancers (Type=network) are"),
                ));
            }
            if params.get("IpAddressType").is_some_and(|t| t != "ipv4") {
                return Err(AwsError::bad("InvalidConfigurationRequest", "Only the ipv4 IP address type is available"));
            }
            let mut subnet_ids = params.members("Subnets");
            subnet_ids.extend(
                params.member_structs("SubnetMappings").iter().filter_map(|m| m.get("SubnetId").map(str::to_string)),
            );
            let req = NewLoadBalancer {
                name: need("Name")?.to_string(),
                scheme: params.get("Scheme").unwrap_or("internet-facing").to_string(),
                subnet_ids,
                security_group_ids: params.members("SecurityGroups"),
                tags: params.elb_tags(),
            };
            let arn = model.elb_create_load_balancer(&req)?;
            let lb = &model.load_balancers[&arn];
            Ok(respond(&|x| {
                x.node("LoadBalancers", |x| {
                    x.node("member", |x| render::load_balancer(x, lb, &model.ctx));
                });
            }))
        }
        "DeleteLoadBalancer" => {
            model.elb_delete_load_balancer(need("LoadBalancerArn")?)?;
            Ok(respond(&|_| {}))
        }
        "DescribeListeners" => {
            let lb_arn = params.get("LoadBalancerArn");
            let arns = params.members("ListenerArns");
            if lb_arn.is_none() && arns.is_empty() {
                return Err(AwsError::elb_validation("You must specify either listener ARNs or a load balancer ARN"));
            }
            let paging = Paging::from_params(params, "listener")?;
            if let Some(lb) = lb_arn {
                if !model.load_balancers.contains_key(lb) {
                    return Err(lb_not_found());
                }
            }
            if arns.iter().any(|a| !model.listeners.contains_key(a)) {
                return Err(listener_not_found());
            }
            let items = model
                .listeners
                .values()
                .filter(|l| lb_arn.is_none_or(|lb| l.lb_arn == lb))
                .filter(|l| arns.is_empty() || arns.contains(&l.arn))
                .map(|l| (l.seq, l))
                .collect();
            let (page, next) = paging.page(items);
            Ok(respond(&|x| {
                x.list("Listeners", "member", &page, |x, l| render::listener(x, l));
                x.opt_leaf("NextMarker", next.as_ref());
            }))
        }
        "CreateListener" => {
            let lb_arn = need("LoadBalancerArn")?;
            let port = port_param(params, "Port")?.ok_or_else(|| AwsError::elb_missing("port"))?;
            let protocol = params.get("Protocol").unwrap_or("TCP");
            let forward = forward_action(params)?;
            let arn = model.elb_create_listener(lb_arn, port, protocol, forward, params.elb_tags())?;
            let listener = &model.listeners[&arn];
            Ok(respond(&|x| {
                x.node("Listeners", |x| {
                    x.node("member", |x| render::listener(x, listener));
                });
            }))
        }
        "DeleteListener" => {
            model.elb_delete_listener(need("ListenerArn")?)?;
            Ok(respond(&|_| {}))
        }
        "DescribeTargetGroups" => {
            let lb_arn = params.get("LoadBalancerArn");
            let arns = params.members("TargetGroupArns");
            let names = params.members("Names");
            let paging = Paging::from_params(params, "tg")?;
            if let Some(lb) = lb_arn {
                if !model.load_balancers.contains_key(lb) {
                    return Err(lb_not_found());
                }
            }
            if arns.iter().any(|a| !model.target_groups.contains_key(a))
                || names.iter().any(|n| !model.target_groups.values().any(|tg| &tg.name == n))
            {
                return Err(tg_not_found());
            }
            let items = model
                .target_groups
                .values()
                .filter(|tg| {
                    lb_arn.is_none_or(|lb| model.load_balancers_of_target_group(&tg.arn).iter().any(|a| a == lb))
                })
                .filter(|tg| arns.is_empty() || arns.contains(&tg.arn))
                .filter(|tg| names.is_empty() || names.contains(&tg.name))
                .map(|tg| (tg.seq, tg))
                .collect();
            let (page, next) = paging.page(items);
            Ok(respond(&|x| {
                x.list("TargetGroups", "member", &page, |x, tg| render::target_group(x, tg, model));
                x.opt_leaf("NextMarker", next.as_ref());
            }))
        }
        "CreateTargetGroup" => {
            let name = need("Name")?.to_string();
            let port = port_param(params, "Port")?.ok_or_else(|| AwsError::elb_missing("port"))?;
            let health_check_port = match params.get("HealthCheckPort") {
                None | Some("traffic-port") => None,
                Some(_) => port_param(params, "HealthCheckPort")?,
            };
            let number = |key: &str| {
                params.int::<u64>(key, |v| AwsError::elb_validation(format!("'{v}' is not a valid value for {key}")))
            };
            let req = TargetGroupRequest {
                name,
                protocol: params.get("Protocol").unwrap_or("TCP").to_string(),
                port,
                vpc_id: need("VpcId")?.to_string(),
                target_type: params.get("TargetType").unwrap_or("instance").to_string(),
                health_check_port,
                health_check_interval_seconds: number("HealthCheckIntervalSeconds")?,
                health_check_timeout_seconds: number("HealthCheckTimeoutSeconds")?,
                healthy_threshold: number("HealthyThresholdCount")?.map(|n| n.min(10) as u32),
                unhealthy_threshold: number("UnhealthyThresholdCount")?.map(|n| n.min(10) as u32),
                tags: params.elb_tags(),
            };
            let arn = model.elb_create_target_group(req)?;
            let tg = &model.target_groups[&arn];
            Ok(respond(&|x| {
                x.node("TargetGroups", |x| {
                    x.node("member", |x| render::target_group(x, tg, model));
                });
            }))
        }
        "ModifyTargetGroup" => {
            // The health-check members of ModifyTargetGroupInput; the answer lists
            // the modified group (botocore elbv2 2015-12-01 service-2.json,
            // ModifyTargetGroupInput / ModifyTargetGroupOutput). The AWS Load Balancer
            // Controller modifies the health-check port in place this way.
            let arn = need("TargetGroupArn")?;
            let health_check_port = match params.get("HealthCheckPort") {
                None => None,
                Some("traffic-port") => Some(None),
                Some(_) => Some(port_param(params, "HealthCheckPort")?),
            };
            if params.get("HealthCheckProtocol").is_some_and(|p| p != "TCP") {
                return Err(AwsError::bad(
                    "InvalidConfigurationRequest",
                    "Only the TCP health-check protocol is available here",
                ));
            }
            let number = |key: &str| {
                params.int::<u64>(key, |v| AwsError::elb_validation(format!("'{v}' is not a valid value for {key}")))
            };
            let interval = number("HealthCheckIntervalSeconds")?;
            let timeout = number("HealthCheckTimeoutSeconds")?;
            let healthy = number("HealthyThresholdCount")?;
            let unhealthy = number("UnhealthyThresholdCount")?;
            let tg = model.target_groups.get_mut(arn).ok_or_else(tg_not_found)?;
            let hc = &mut tg.health_check;
            if let Some(port) = health_check_port {
                hc.port = port;
            }
            hc.interval_seconds = interval.unwrap_or(hc.interval_seconds);
            hc.timeout_seconds = timeout.unwrap_or(hc.timeout_seconds);
            hc.healthy_threshold = healthy.map_or(hc.healthy_threshold, |n| n.clamp(1, 10) as u32);
            hc.unhealthy_threshold = unhealthy.map_or(hc.unhealthy_threshold, |n| n.clamp(1, 10) as u32);
            let tg = &model.target_groups[arn];
            Ok(respond(&|x| {
                x.node("TargetGroups", |x| {
                    x.node("member", |x| render::target_group(x, tg, model));
                });
            }))
        }
        "DeleteTargetGroup" => {
            model.elb_delete_target_group(need("TargetGroupArn")?)?;
            Ok(respond(&|_| {}))
        }
        "RegisterTargets" | "DeregisterTargets" => {
            let tg_arn = need("TargetGroupArn")?.to_string();
            let targets = targets_param(params)?;
            if targets.is_empty() {
                return Err(AwsError::elb_missing("targets"));
            }
            if action == "RegisterTargets" {
                model.elb_register_targets(&tg_arn, &targets)?;
            } else {
                model.elb_deregister_targets(&tg_arn, &targets)?;
            }
            Ok(respond(&|_| {}))
        }
        "DescribeTargetHealth" => {
            let tg_arn = need("TargetGroupArn")?;
            let tg = model.target_groups.get(tg_arn).ok_or_else(tg_not_found)?;
            let wanted = targets_param(params)?;
            let mut rows = Vec::new();
            if wanted.is_empty() {
                rows.extend(tg.targets.iter().map(|t| render::TargetRow::of(t, model.target_health(tg, t))));
            } else {
                for (id, port) in &wanted {
                    let found: Vec<_> =
                        tg.targets.iter().filter(|t| &t.id == id && port.is_none_or(|p| p == t.port)).collect();
                    if found.is_empty() {
                        rows.push(render::TargetRow::unregistered(id, port.unwrap_or(tg.port)));
                    }
                    rows.extend(found.into_iter().map(|t| render::TargetRow::of(t, model.target_health(tg, t))));
                }
            }
            let check_port = tg.health_check.port;
            Ok(respond(&|x| {
                x.list("TargetHealthDescriptions", "member", &rows, |x, row| render::target_health(x, row, check_port));
            }))
        }
        "DescribeTags" => {
            let arns = params.members("ResourceArns");
            if arns.is_empty() {
                return Err(AwsError::elb_missing("resourceArns"));
            }
            if arns.len() > 20 {
                return Err(AwsError::elb_validation("A maximum of 20 resource ARNs can be specified"));
            }
            let mut described = Vec::new();
            for arn in &arns {
                described.push((arn.clone(), model.elb_tags_mut(arn)?.clone()));
            }
            Ok(respond(&|x| {
                x.list("TagDescriptions", "member", &described, |x, (arn, tags)| {
                    x.leaf("ResourceArn", arn);
                    x.list("Tags", "member", tags, |x, (k, v)| {
                        x.leaf("Key", k).leaf("Value", v);
                    });
                });
            }))
        }
        "AddTags" => {
            let arns = params.members("ResourceArns");
            let tags = params.elb_tags();
            if arns.is_empty() || tags.is_empty() {
                return Err(AwsError::elb_missing(if arns.is_empty() { "resourceArns" } else { "tags" }));
            }
            model.elb_add_tags(&arns, &tags)?;
            Ok(respond(&|_| {}))
        }
        "RemoveTags" => {
            let arns = params.members("ResourceArns");
            if arns.is_empty() {
                return Err(AwsError::elb_missing("resourceArns"));
            }
            model.elb_remove_tags(&arns, &params.members("TagKeys"))?;
            Ok(respond(&|_| {}))
        }
        "DescribeLoadBalancerAttributes" | "ModifyLoadBalancerAttributes" => {
            let arn = need("LoadBalancerArn")?;
            let lb = model.load_balancers.get_mut(arn).ok_or_else(lb_not_found)?;
            if action == "ModifyLoadBalancerAttributes" {
                ops::modify_attributes(&mut lb.attributes, &attributes_param(params), "Load balancer")?;
            }
            let attributes = lb.attributes.clone();
            Ok(respond(&|x| render::attributes(x, &attributes)))
        }
        "DescribeTargetGroupAttributes" | "ModifyTargetGroupAttributes" => {
            let arn = need("TargetGroupArn")?;
            let tg = model.target_groups.get_mut(arn).ok_or_else(tg_not_found)?;
            if action == "ModifyTargetGroupAttributes" {
                ops::modify_attributes(&mut tg.attributes, &attributes_param(params), "Target group")?;
            }
            let attributes = tg.attributes.clone();
            Ok(respond(&|x| render::attributes(x, &attributes)))
        }
        "" => Err(AwsError::bad("MissingAction", "The request must contain the parameter Action")),
        other => Err(AwsError::bad("InvalidAction", format!("The action {other} is not valid for this web service."))),
    }
}

/// `Marker` / `PageSize` (1..=400, default 400).
struct Paging {
    limit: usize,
    after: Option<u64>,
    kind: &'static str,
}

impl Paging {
    fn from_params(params: &Params, kind: &'static str) -> AwsResult<Paging> {
        let size: Option<i64> =
            params.int("PageSize", |v| AwsError::elb_validation(format!("'{v}' is not a valid page size")))?;
        if let Some(size) = size {
            if !(1..=400).contains(&size) {
                return Err(AwsError::elb_validation(format!(
                    "1 validation error detected: Value '{size}' at 'pageSize' failed to satisfy constraint: Member must have value between 1 and 400"
                )));
            }
        }
        let after = match params.get("Marker") {
            None | Some("") => None,
            Some(marker) => {
                Some(decode_token(kind, marker).ok_or_else(|| AwsError::elb_validation("The marker is not valid"))?)
            }
        };
        Ok(Paging { limit: size.map_or(400, |s| s as usize), after, kind })
    }

    fn page<T>(&self, items: Vec<(u64, T)>) -> (Vec<T>, Option<String>) {
        let (page, next) = paginate(items, self.after, self.limit);
        (page, next.map(|seq| encode_token(self.kind, seq)))
    }
}

fn port_param(params: &Params, key: &str) -> AwsResult<Option<u16>> {
    let port: Option<i64> = params.int(key, |v| AwsError::elb_validation(format!("'{v}' is not a valid port")))?;
    match port {
        None => Ok(None),
        Some(p) if (1..=65535).contains(&p) => Ok(Some(p as u16)),
        Some(p) => Err(AwsError::elb_validation(format!(
            "1 validation error detected: Value '{p}' at 'port' failed to satisfy constraint: Member must have value between 1 and 65535"
        ))),
    }
}

/// `Targets.member.N.Id` / `.Port`.
fn targets_param(params: &Params) -> AwsResult<Vec<(String, Option<u16>)>> {
    params
        .member_structs("Targets")
        .iter()
        .map(|t| {
            let id = t.get("Id").ok_or_else(|| AwsError::elb_missing("targets.member.id"))?;
            Ok((id.to_string(), port_param(t, "Port")?))
        })
        .collect()
}

/// `Attributes.member.N.Key` / `.Value`.
fn attributes_param(params: &Params) -> Vec<(String, String)> {
    params
        .member_structs("Attributes")
        .iter()
        .filter_map(|a| Some((a.get("Key")?.to_string(), a.get("Value").unwrap_or_default().to_string())))
        .collect()
}

/// The listener's single forward action, in either spelling.
fn forward_action(params: &Params) -> AwsResult<Vec<(String, u32)>> {
    let actions = params.member_structs("DefaultActions");
    let Some(action) = actions.first() else {
        return Err(AwsError::elb_missing("defaultActions"));
    };
    if actions.len() > 1 || action.get("Type") != Some("forward") {
        return Err(AwsError::elb_validation("Network load balancer listeners support a single forward action"));
    }
    let mut forward: Vec<(String, u32)> = action
        .member_structs("ForwardConfig.TargetGroups")
        .iter()
        .filter_map(|t| {
            Some((t.get("TargetGroupArn")?.to_string(), t.get("Weight").and_then(|w| w.parse().ok()).unwrap_or(1)))
        })
        .collect();
    if let Some(arn) = action.get("TargetGroupArn") {
        if !forward.iter().any(|(a, _)| a == arn) {
            forward.insert(0, (arn.to_string(), 1));
        }
    }
    Ok(forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_action_in_both_spellings() {
        let simple = Params::parse(b"DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn=tg1");
        assert_eq!(forward_action(&simple).unwrap(), vec![("tg1".to_string(), 1)]);
        let config = Params::parse(
            b"DefaultActions.member.1.Type=forward&DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=tg2&DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight=5",
        );
        assert_eq!(forward_action(&config).unwrap(), vec![("tg2".to_string(), 5)]);
        let redirect = Params::parse(b"DefaultActions.member.1.Type=redirect");
        assert!(forward_action(&redirect).is_err());
        assert!(forward_action(&Params::default()).is_err());
    }

    #[test]
    fn page_size_bounds() {
        assert!(Paging::from_params(&Params::parse(b"PageSize=401"), "lb").is_err());
        assert!(Paging::from_params(&Params::parse(b"PageSize=0"), "lb").is_err());
        assert_eq!(Paging::from_params(&Params::default(), "lb").unwrap().limit, 400);
        assert!(Paging::from_params(&Params::parse(b"Marker=bogus"), "lb").is_err());
    }

    #[test]
    fn ports_are_validated() {
        assert_eq!(port_param(&Params::parse(b"Port=15443"), "Port").unwrap(), Some(15443));
        assert!(port_param(&Params::parse(b"Port=0"), "Port").is_err());
        assert!(port_param(&Params::parse(b"Port=70000"), "Port").is_err());
        assert!(port_param(&Params::parse(b"Port=x"), "Port").is_err());
    }
}
