//! EC2 resources as XML items and as filterable fields.

use crate::model::{Ctx, Eni, Model, SecurityGroup, Subnet, Tags, Vpc};
use crate::names;
use crate::xml::Xml;

/// Every VPC shares the region's default DHCP options set.
const DHCP_OPTIONS_ID: &str = "dopt-0a7c3f5e9b1d24680";

pub const VPC_FILTERS: &[&str] = &[
    "vpc-id",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "state",
    "is-default",
    "isDefault",
    "owner-id",
    "dhcp-options-id",
];

pub const SUBNET_FILTERS: &[&str] = &[
    "subnet-id",
    "subnetId",
    "vpc-id",
    "vpcId",
    "cidr",
    "cidr-block",
    "cidrBlock",
    "availability-zone",
    "availabilityZone",
    "availability-zone-id",
    "availabilityZoneId",
    "state",
    "default-for-az",
    "defaultForAz",
    "map-public-ip-on-launch",
    "owner-id",
    "subnet-arn",
    "available-ip-address-count",
];

pub const SECURITY_GROUP_FILTERS: &[&str] = &["group-id", "group-name", "vpc-id", "description", "owner-id"];

pub const ENI_FILTERS: &[&str] = &[
    "network-interface-id",
    "vpc-id",
    "subnet-id",
    "description",
    "group-id",
    "group-name",
    "availability-zone",
    "status",
    "interface-type",
    "requester-managed",
    "requester-id",
    "private-ip-address",
    "addresses.private-ip-address",
    "association.public-ip",
    "owner-id",
];

pub const ZONE_FILTERS: &[&str] =
    &["zone-name", "zone-id", "state", "region-name", "group-name", "zone-type", "opt-in-status"];

pub fn tag_set(x: &mut Xml, tags: &Tags) {
    x.list("tagSet", "item", tags, |x, (k, v)| {
        x.leaf("key", k).leaf("value", v);
    });
}

fn vpc_state(vpc: &Vpc) -> &'static str {
    if vpc.available {
        "available"
    } else {
        "pending"
    }
}

pub fn vpc(x: &mut Xml, vpc: &Vpc, ctx: &Ctx) {
    x.leaf("vpcId", &vpc.id)
        .leaf("ownerId", &ctx.account)
        .leaf("state", vpc_state(vpc))
        .leaf("cidrBlock", vpc.cidr)
        .node("cidrBlockAssociationSet", |x| {
            x.node("item", |x| {
                x.leaf("cidrBlock", vpc.cidr).leaf("associationId", &vpc.cidr_association_id).node(
                    "cidrBlockState",
                    |x| {
                        x.leaf("state", "associated");
                    },
                );
            });
        })
        .empty("ipv6CidrBlockAssociationSet")
        .leaf("dhcpOptionsId", DHCP_OPTIONS_ID);
    tag_set(x, &vpc.tags);
    x.leaf("instanceTenancy", "default").leaf("isDefault", false);
}

pub fn vpc_field(vpc: &Vpc, name: &str, ctx: &Ctx) -> Vec<String> {
    let one = |s: String| vec![s];
    match name {
        "vpc-id" => one(vpc.id.clone()),
        "cidr" | "cidr-block" | "cidrBlock" | "cidr-block-association.cidr-block" => one(vpc.cidr.to_string()),
        "cidr-block-association.association-id" => one(vpc.cidr_association_id.clone()),
        "cidr-block-association.state" => one("associated".into()),
        "state" => one(vpc_state(vpc).into()),
        "is-default" | "isDefault" => one("false".into()),
        "owner-id" => one(ctx.account.clone()),
        "dhcp-options-id" => one(DHCP_OPTIONS_ID.into()),
        _ => vec![],
    }
}

pub fn subnet(x: &mut Xml, s: &Subnet, ctx: &Ctx) {
    x.leaf("subnetId", &s.id)
        .leaf("subnetArn", names::subnet_arn(&ctx.region, &ctx.account, &s.id))
        .leaf("state", "available")
        .leaf("ownerId", &ctx.account)
        .leaf("vpcId", &s.vpc_id)
        .leaf("cidrBlock", s.cidr)
        .empty("ipv6CidrBlockAssociationSet")
        .leaf("availableIpAddressCount", s.available_ips())
        .leaf("availabilityZone", &s.az)
        .leaf("availabilityZoneId", &s.az_id)
        .leaf("defaultForAz", false)
        .leaf("mapPublicIpOnLaunch", false)
        .leaf("assignIpv6AddressOnCreation", false);
    tag_set(x, &s.tags);
    x.node("privateDnsNameOptionsOnLaunch", |x| {
        x.leaf("hostnameType", "ip-name")
            .leaf("enableResourceNameDnsARecord", false)
            .leaf("enableResourceNameDnsAAAARecord", false);
    });
}

pub fn subnet_field(s: &Subnet, name: &str, ctx: &Ctx) -> Vec<String> {
    let one = |s: String| vec![s];
    match name {
        "subnet-id" | "subnetId" => one(s.id.clone()),
        "vpc-id" | "vpcId" => one(s.vpc_id.clone()),
        "cidr" | "cidr-block" | "cidrBlock" => one(s.cidr.to_string()),
        "availability-zone" | "availabilityZone" => one(s.az.clone()),
        "availability-zone-id" | "availabilityZoneId" => one(s.az_id.clone()),
        "state" => one("available".into()),
        "default-for-az" | "defaultForAz" | "map-public-ip-on-launch" => one("false".into()),
        "owner-id" => one(ctx.account.clone()),
        "subnet-arn" => one(names::subnet_arn(&ctx.region, &ctx.account, &s.id)),
        "available-ip-address-count" => one(s.available_ips().to_string()),
        _ => vec![],
    }
}

/// Default groups allow all traffic from themselves; every group allows all egress.
pub fn security_group(x: &mut Xml, g: &SecurityGroup, ctx: &Ctx) {
    x.leaf("ownerId", &ctx.account)
        .leaf("groupId", &g.id)
        .leaf("groupName", &g.name)
        .leaf("groupDescription", &g.description)
        .leaf("vpcId", &g.vpc_id)
        .leaf("securityGroupArn", names::security_group_arn(&ctx.region, &ctx.account, &g.id));
    let self_rule = g.is_default.then_some(());
    x.list("ipPermissions", "item", self_rule, |x, ()| {
        x.leaf("ipProtocol", "-1")
            .node("groups", |x| {
                x.node("item", |x| {
                    x.leaf("userId", &ctx.account).leaf("groupId", &g.id);
                });
            })
            .empty("ipRanges")
            .empty("ipv6Ranges")
            .empty("prefixListIds");
    });
    x.node("ipPermissionsEgress", |x| {
        x.node("item", |x| {
            x.leaf("ipProtocol", "-1")
                .empty("groups")
                .node("ipRanges", |x| {
                    x.node("item", |x| {
                        x.leaf("cidrIp", "0.0.0.0/0");
                    });
                })
                .empty("ipv6Ranges")
                .empty("prefixListIds");
        });
    });
    tag_set(x, &g.tags);
}

pub fn security_group_field(g: &SecurityGroup, name: &str, ctx: &Ctx) -> Vec<String> {
    match name {
        "group-id" => vec![g.id.clone()],
        "group-name" => vec![g.name.clone()],
        "vpc-id" => vec![g.vpc_id.clone()],
        "description" => vec![g.description.clone()],
        "owner-id" => vec![ctx.account.clone()],
        _ => vec![],
    }
}

fn private_dns_name(ip: std::net::Ipv4Addr, region: &str) -> String {
    format!("ip-{}.{region}.compute.internal", ip.to_string().replace('.', "-"))
}

/// A stable, locally administered MAC derived from the ENI id.
fn mac_address(id: &str) -> String {
    let hex: Vec<char> = id.trim_start_matches("eni-").chars().chain(std::iter::repeat('0')).take(10).collect();
    let pairs: Vec<String> = hex.chunks(2).map(|c| c.iter().collect()).collect();
    format!("02:{}", pairs.join(":"))
}

pub fn eni(x: &mut Xml, e: &Eni, model: &Model) {
    let region = &model.ctx.region;
    let association = |x: &mut Xml| {
        if let Some(ip) = e.public_ip {
            x.node("association", |x| {
                x.leaf("publicIp", ip)
                    .leaf("publicDnsName", names::public_dns_name(ip, region))
                    .leaf("ipOwnerId", "amazon");
            });
        }
    };
    x.leaf("networkInterfaceId", &e.id)
        .leaf("subnetId", &e.subnet_id)
        .leaf("vpcId", &e.vpc_id)
        .leaf("availabilityZone", &e.az)
        .leaf("description", &e.description)
        .leaf("ownerId", &model.ctx.account)
        .leaf("requesterId", &e.requester_id)
        .leaf("requesterManaged", true)
        .leaf("status", "in-use")
        .leaf("macAddress", mac_address(&e.id))
        .leaf("privateIpAddress", e.private_ip)
        .leaf("privateDnsName", private_dns_name(e.private_ip, region))
        .leaf("sourceDestCheck", true);
    x.list("groupSet", "item", &e.group_ids, |x, id| {
        let name = model.security_groups.get(id).map(|g| g.name.clone()).unwrap_or_default();
        x.leaf("groupId", id).leaf("groupName", name);
    });
    x.node("attachment", |x| {
        x.leaf("attachmentId", format!("ela-attach-{}", e.id.trim_start_matches("eni-")))
            .leaf("instanceOwnerId", "amazon-aws")
            .leaf("deviceIndex", 1)
            .leaf("status", "attached")
            .leaf("deleteOnTermination", false);
    });
    association(x);
    tag_set(x, &e.tags);
    x.node("privateIpAddressesSet", |x| {
        x.node("item", |x| {
            x.leaf("privateIpAddress", e.private_ip)
                .leaf("privateDnsName", private_dns_name(e.private_ip, region))
                .leaf("primary", true);
            association(x);
        });
    });
    x.empty("ipv6AddressesSet").leaf("interfaceType", &e.interface_type);
}

pub fn eni_field(e: &Eni, name: &str, model: &Model) -> Vec<String> {
    let one = |s: String| vec![s];
    match name {
        "network-interface-id" => one(e.id.clone()),
        "vpc-id" => one(e.vpc_id.clone()),
        "subnet-id" => one(e.subnet_id.clone()),
        "description" => one(e.description.clone()),
        "group-id" => e.group_ids.clone(),
        "group-name" => {
            e.group_ids.iter().filter_map(|g| model.security_groups.get(g)).map(|g| g.name.clone()).collect()
        }
        "availability-zone" => one(e.az.clone()),
        "status" => one("in-use".into()),
        "interface-type" => one(e.interface_type.clone()),
        "requester-managed" => one("true".into()),
        "requester-id" => one(e.requester_id.clone()),
        "private-ip-address" | "addresses.private-ip-address" => one(e.private_ip.to_string()),
        "association.public-ip" => e.public_ip.map(|ip| ip.to_string()).into_iter().collect(),
        "owner-id" => one(model.ctx.account.clone()),
        _ => vec![],
    }
}

pub fn zone(x: &mut Xml, name: &str, id: &str, region: &str) {
    x.leaf("zoneName", name)
        .leaf("zoneState", "available")
        .leaf("regionName", region)
        .leaf("zoneId", id)
        .leaf("groupName", region)
        .leaf("networkBorderGroup", region)
        .leaf("optInStatus", "opt-in-not-required")
        .leaf("zoneType", "availability-zone")
        .empty("messageSet");
}

pub fn zone_field(name: &str, id: &str, region: &str, filter: &str) -> Vec<String> {
    let value = match filter {
        "zone-name" => name,
        "zone-id" => id,
        "state" => "available",
        "region-name" | "group-name" => region,
        "zone-type" => "availability-zone",
        "opt-in-status" => "opt-in-not-required",
        _ => return vec![],
    };
    vec![value.to_string()]
}

/// Every tag of every EC2 resource as (id, type, key, value), in creation order.
pub fn all_tags(model: &Model) -> Vec<(String, &'static str, String, String)> {
    let mut resources: Vec<(u64, &str, &'static str, &Tags)> = Vec::new();
    resources.extend(model.vpcs.values().map(|r| (r.seq, r.id.as_str(), "vpc", &r.tags)));
    resources.extend(model.subnets.values().map(|r| (r.seq, r.id.as_str(), "subnet", &r.tags)));
    resources.extend(model.security_groups.values().map(|r| (r.seq, r.id.as_str(), "security-group", &r.tags)));
    resources.extend(model.enis.values().map(|r| (r.seq, r.id.as_str(), "network-interface", &r.tags)));
    resources.sort_by_key(|r| r.0);
    resources
        .into_iter()
        .flat_map(|(_, id, kind, tags)| tags.iter().map(move |(k, v)| (id.to_string(), kind, k.clone(), v.clone())))
        .collect()
}
