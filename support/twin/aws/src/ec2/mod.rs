//! EC2 over the ec2 query protocol (2016-11-15): the actions meshspec and
//! Terraform-like provisioning use, answered in EC2's own envelope.

mod filter;
pub mod ops;
mod render;

use crate::error::{AwsError, AwsResult};
use crate::model::Model;
use crate::names;
use crate::query::Params;
use crate::xml::ec2_response;
use filter::{check_names, matches, Paging};
use ops::check_user_tags;

pub fn handle(model: &mut Model, params: &Params, request_id: &str) -> AwsResult<String> {
    let action = params.get("Action").unwrap_or_default();
    let x = |payload: &dyn Fn(&mut crate::xml::Xml)| ec2_response(action, request_id, payload);
    match action {
        "CreateVpc" => {
            let cidr = params.require("CidrBlock", AwsError::ec2_missing)?;
            let tags = tag_specs(params, "vpc")?;
            let id = model.create_vpc(cidr, tags)?;
            let vpc = &model.vpcs[&id];
            Ok(x(&|x| {
                x.node("vpc", |x| render::vpc(x, vpc, &model.ctx));
            }))
        }
        "DescribeVpcs" => {
            let ids = params.values("VpcId");
            let filters = params.filters();
            check_names(&filters, render::VPC_FILTERS)?;
            let paging = Paging::from_params(params, "vpc", (!ids.is_empty()).then_some("vpcIds"))?;
            for id in &ids {
                if !model.vpcs.contains_key(id) {
                    return Err(ops::vpc_not_found(id));
                }
            }
            let items = model
                .vpcs
                .values()
                .filter(|v| ids.is_empty() || ids.contains(&v.id))
                .filter(|v| matches(&filters, &v.tags, |f| render::vpc_field(v, f, &model.ctx)))
                .map(|v| (v.seq, v))
                .collect();
            let (page, next) = paging.page(items);
            Ok(x(&|x| {
                x.list("vpcSet", "item", &page, |x, v| render::vpc(x, v, &model.ctx));
                x.opt_leaf("nextToken", next.as_ref());
            }))
        }
        // One attribute per call (botocore ec2 ModifyVpcAttributeRequest: "You cannot modify
        // the DNS resolution and DNS hostnames attributes in the same request").
        "ModifyVpcAttribute" => {
            let id = params.require("VpcId", AwsError::ec2_missing)?;
            let given: Vec<(&str, &str)> =
                ["EnableDnsSupport", "EnableDnsHostnames", "EnableNetworkAddressUsageMetrics"]
                    .into_iter()
                    .filter_map(|a| params.get(&format!("{a}.Value")).map(|v| (a, v)))
                    .collect();
            let [(attribute, value)] = given.as_slice() else {
                return Err(AwsError::bad(
                    "InvalidParameterCombination",
                    "Exactly one attribute must be specified per request",
                ));
            };
            let value = match *value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(AwsError::bad("InvalidParameterValue", format!("Invalid value '{other}' for boolean")))
                }
            };
            let vpc = model.vpcs.get_mut(id).ok_or_else(|| ops::vpc_not_found(id))?;
            match *attribute {
                "EnableDnsSupport" => vpc.dns_support = value,
                "EnableDnsHostnames" => vpc.dns_hostnames = value,
                _ => {}
            }
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "DescribeVpcAttribute" => {
            let id = params.require("VpcId", AwsError::ec2_missing)?;
            let attribute = params.require("Attribute", AwsError::ec2_missing)?;
            let vpc = model.vpcs.get(id).ok_or_else(|| ops::vpc_not_found(id))?;
            let value = match attribute {
                "enableDnsSupport" => vpc.dns_support,
                "enableDnsHostnames" => vpc.dns_hostnames,
                "enableNetworkAddressUsageMetrics" => false,
                other => {
                    return Err(AwsError::bad(
                        "InvalidParameterValue",
                        format!("Value ({other}) for parameter attribute is invalid. Unknown attribute."),
                    ))
                }
            };
            let vpc_id = vpc.id.clone();
            Ok(x(&|x| {
                x.leaf("vpcId", &vpc_id).node(attribute, |x| {
                    x.leaf("value", value);
                });
            }))
        }
        "DeleteVpc" => {
            model.delete_vpc(params.require("VpcId", AwsError::ec2_missing)?)?;
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "CreateSubnet" => {
            let vpc_id = params.require("VpcId", AwsError::ec2_missing)?;
            let cidr = params.require("CidrBlock", AwsError::ec2_missing)?;
            let tags = tag_specs(params, "subnet")?;
            let id = model.create_subnet(
                vpc_id,
                cidr,
                params.get("AvailabilityZone"),
                params.get("AvailabilityZoneId"),
                tags,
            )?;
            let subnet = &model.subnets[&id];
            Ok(x(&|x| {
                x.node("subnet", |x| render::subnet(x, subnet, &model.ctx));
            }))
        }
        "DescribeSubnets" => {
            let ids = params.values("SubnetId");
            let filters = params.filters();
            check_names(&filters, render::SUBNET_FILTERS)?;
            let paging = Paging::from_params(params, "subnet", (!ids.is_empty()).then_some("subnetIds"))?;
            for id in &ids {
                if !model.subnets.contains_key(id) {
                    return Err(ops::subnet_not_found(id));
                }
            }
            let items = model
                .subnets
                .values()
                .filter(|s| ids.is_empty() || ids.contains(&s.id))
                .filter(|s| matches(&filters, &s.tags, |f| render::subnet_field(s, f, &model.ctx)))
                .map(|s| (s.seq, s))
                .collect();
            let (page, next) = paging.page(items);
            Ok(x(&|x| {
                x.list("subnetSet", "item", &page, |x, s| render::subnet(x, s, &model.ctx));
                x.opt_leaf("nextToken", next.as_ref());
            }))
        }
        "DeleteSubnet" => {
            model.delete_subnet(params.require("SubnetId", AwsError::ec2_missing)?)?;
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "CreateSecurityGroup" => {
            let name = params.require("GroupName", AwsError::ec2_missing)?;
            let description = params.require("GroupDescription", AwsError::ec2_missing)?;
            let vpc_id = params
                .get("VpcId")
                .ok_or_else(|| AwsError::bad("VPCIdNotSpecified", "No default VPC for this user"))?;
            let tags = tag_specs(params, "security-group")?;
            let id = model.create_security_group(vpc_id, name, description, tags)?;
            let group = &model.security_groups[&id];
            // CreateSecurityGroupResult is groupId, tags, securityGroupArn and no `return`
            // (botocore 1.43.11 data/ec2/2016-11-15/service-2.json.gz), unlike
            // DeleteSecurityGroupResult; no client reads one.
            Ok(x(&|x| {
                x.leaf("groupId", &group.id);
                x.leaf("securityGroupArn", names::security_group_arn(&model.ctx.region, &model.ctx.account, &group.id));
                render::tag_set(x, &group.tags);
            }))
        }
        "DescribeSecurityGroups" => {
            let ids = params.values("GroupId");
            let group_names = params.values("GroupName");
            let filters = params.filters();
            check_names(&filters, render::SECURITY_GROUP_FILTERS)?;
            let explicit = !ids.is_empty() || !group_names.is_empty();
            let paging = Paging::from_params(params, "sg", explicit.then_some("groupIds"))?;
            for id in &ids {
                if !model.security_groups.contains_key(id) {
                    return Err(ops::group_not_found(id));
                }
            }
            for name in &group_names {
                if !model.security_groups.values().any(|g| &g.name == name) {
                    return Err(AwsError::bad(
                        "InvalidGroup.NotFound",
                        format!("The security group '{name}' does not exist"),
                    ));
                }
            }
            let items = model
                .security_groups
                .values()
                .filter(|g| ids.is_empty() || ids.contains(&g.id))
                .filter(|g| group_names.is_empty() || group_names.contains(&g.name))
                .filter(|g| matches(&filters, &g.tags, |f| render::security_group_field(g, f, &model.ctx)))
                .map(|g| (g.seq, g))
                .collect();
            let (page, next) = paging.page(items);
            Ok(x(&|x| {
                x.list("securityGroupInfo", "item", &page, |x, g| render::security_group(x, g, &model.ctx));
                x.opt_leaf("nextToken", next.as_ref());
            }))
        }
        "DeleteSecurityGroup" => {
            let id = match (params.get("GroupId"), params.get("GroupName")) {
                (Some(id), _) => id.to_string(),
                (None, Some(name)) => {
                    model.security_groups.values().find(|g| g.name == name).map(|g| g.id.clone()).ok_or_else(|| {
                        AwsError::bad("InvalidGroup.NotFound", format!("The security group '{name}' does not exist"))
                    })?
                }
                (None, None) => return Err(AwsError::ec2_missing("GroupId")),
            };
            model.delete_security_group(&id)?;
            Ok(x(&|x| {
                x.leaf("return", true).leaf("groupId", &id);
            }))
        }
        "DescribeNetworkInterfaces" => {
            let ids = params.values("NetworkInterfaceId");
            let filters = params.filters();
            check_names(&filters, render::ENI_FILTERS)?;
            let paging = Paging::from_params(params, "eni", (!ids.is_empty()).then_some("networkInterfaceIds"))?;
            for id in &ids {
                if !model.enis.contains_key(id) {
                    return Err(ops::eni_not_found(id));
                }
            }
            let items = model
                .enis
                .values()
                .filter(|e| ids.is_empty() || ids.contains(&e.id))
                .filter(|e| matches(&filters, &e.tags, |f| render::eni_field(e, f, model)))
                .map(|e| (e.seq, e))
                .collect();
            let (page, next) = paging.page(items);
            Ok(x(&|x| {
                x.list("networkInterfaceSet", "item", &page, |x, e| render::eni(x, e, model));
                x.opt_leaf("nextToken", next.as_ref());
            }))
        }
        "DeleteNetworkInterface" => {
            model.delete_network_interface(params.require("NetworkInterfaceId", AwsError::ec2_missing)?)?;
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "CreateTags" => {
            let ids = params.values("ResourceId");
            if ids.is_empty() {
                return Err(AwsError::ec2_missing("ResourceId"));
            }
            let tags = params.ec2_tags("Tag");
            if tags.is_empty() {
                return Err(AwsError::ec2_missing("Tag"));
            }
            model.create_tags(&ids, &tags)?;
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "DeleteTags" => {
            let ids = params.values("ResourceId");
            if ids.is_empty() {
                return Err(AwsError::ec2_missing("ResourceId"));
            }
            // A tag given without a value is deleted whatever its value.
            let tags: Vec<(String, Option<String>)> = params
                .structs("Tag")
                .into_iter()
                .filter_map(|t| Some((t.get("Key")?.to_string(), t.get("Value").map(str::to_string))))
                .collect();
            model.delete_tags(&ids, &tags)?;
            Ok(x(&|x| {
                x.leaf("return", true);
            }))
        }
        "DescribeTags" => {
            let filters = params.filters();
            check_names(&filters, &["resource-id", "resource-type", "key", "value"])?;
            let paging = Paging::from_params(params, "tag", None)?;
            let entries = render::all_tags(model);
            let items = entries
                .into_iter()
                .enumerate()
                .filter(|(_, t)| {
                    matches(&filters, &Default::default(), |f| match f {
                        "resource-id" => vec![t.0.to_string()],
                        "resource-type" => vec![t.1.to_string()],
                        "key" => vec![t.2.to_string()],
                        "value" => vec![t.3.to_string()],
                        _ => vec![],
                    })
                })
                .map(|(i, t)| (i as u64 + 1, t))
                .collect();
            let (page, next) = paging.page(items);
            Ok(x(&|x| {
                x.list("tagSet", "item", &page, |x, (id, kind, key, value)| {
                    x.leaf("resourceId", id).leaf("resourceType", kind).leaf("key", key).leaf("value", value);
                });
                x.opt_leaf("nextToken", next.as_ref());
            }))
        }
        "DescribeAvailabilityZones" => {
            let zone_names = params.values("ZoneName");
            let zone_ids = params.values("ZoneId");
            let filters = params.filters();
            check_names(&filters, render::ZONE_FILTERS)?;
            let zones = names::zones(&model.ctx.region);
            for name in &zone_names {
                if !zones.iter().any(|(n, _)| n == name) {
                    return Err(AwsError::bad("InvalidParameterValue", format!("Invalid availability zone: [{name}]")));
                }
            }
            for id in &zone_ids {
                if !zones.iter().any(|(_, i)| i == id) {
                    return Err(AwsError::bad(
                        "InvalidParameterValue",
                        format!("Invalid availability zone ID: [{id}]"),
                    ));
                }
            }
            let region = model.ctx.region.clone();
            let selected: Vec<&(String, String)> = zones
                .iter()
                .filter(|(n, i)| {
                    (zone_names.is_empty() && zone_ids.is_empty()) || zone_names.contains(n) || zone_ids.contains(i)
                })
                .filter(|(n, i)| matches(&filters, &Default::default(), |f| render::zone_field(n, i, &region, f)))
                .collect();
            Ok(x(&|x| {
                x.list("availabilityZoneInfo", "item", &selected, |x, (n, i)| render::zone(x, n, i, &region));
            }))
        }
        "" => Err(AwsError::bad("MissingAction", "The request must contain the parameter Action")),
        other => Err(AwsError::bad("InvalidAction", format!("The action {other} is not valid for this web service."))),
    }
}

/// Tags from `TagSpecification.N` for a resource of `kind`; a specification
/// for another resource type is refused like EC2 does.
fn tag_specs(params: &Params, kind: &str) -> AwsResult<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for (resource_type, spec_tags) in params.tag_specifications() {
        if resource_type != kind {
            return Err(AwsError::bad(
                "InvalidParameterValue",
                format!("'{resource_type}' is not a valid taggable resource type for this operation."),
            ));
        }
        tags.extend(spec_tags);
    }
    check_user_tags(&tags)?;
    Ok(tags)
}
