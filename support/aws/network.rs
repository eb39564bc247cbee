//! EC2: the VPCs and subnets of the seed (names and tags from the topology).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::AwsAccess;

#[derive(Clone, Debug)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub availability_zone: String,
    pub tags: BTreeMap<String, String>,
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

fn vpc_of(v: &aws_sdk_ec2::types::Vpc) -> Vpc {
    Vpc {
        id: v.vpc_id().unwrap_or_default().to_string(),
        cidr: v.cidr_block().unwrap_or_default().to_string(),
        state: v.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        tags: tags_of(v.tags()),
    }
}

/// VPCs whose Name tag is `name` (every page).
pub async fn vpcs_named(aws: &AwsAccess, name: &str) -> Result<Vec<Vpc>> {
    let mut out = Vec::new();
    let mut pages = aws
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("ec2", "DescribeVpcs", &e)))?;
        out.extend(page.vpcs().iter().map(vpc_of));
    }
    Ok(out)
}

pub async fn create_vpc(aws: &AwsAccess, cidr: &str, tags: &BTreeMap<String, String>) -> Result<Vpc> {
    let out = aws
        .ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(tag_spec(ResourceType::Vpc, tags))
        .send()
        .await
        .map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("ec2", format!("CreateVpc {cidr}"), &e)))?;
    Ok(vpc_of(out.vpc().context("CreateVpc answered without a vpc")?))
}

pub async fn subnets_of(aws: &AwsAccess, vpc_id: &str) -> Result<Vec<Subnet>> {
    let mut out = Vec::new();
    let mut pages = aws
        .ec2
        .describe_subnets()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("ec2", "DescribeSubnets", &e)))?;
        out.extend(page.subnets().iter().map(|s| Subnet {
            id: s.subnet_id().unwrap_or_default().to_string(),
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            cidr: s.cidr_block().unwrap_or_default().to_string(),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            tags: tags_of(s.tags()),
        }));
    }
    out.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    Ok(out)
}

pub async fn create_subnet(
    aws: &AwsAccess,
    vpc_id: &str,
    cidr: &str,
    az: &str,
    tags: &BTreeMap<String, String>,
) -> Result<String> {
    let out = aws
        .ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(cidr)
        .availability_zone(az)
        .tag_specifications(tag_spec(ResourceType::Subnet, tags))
        .send()
        .await
        .map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("ec2", format!("CreateSubnet {cidr} in {vpc_id}"), &e))
        })?;
    out.subnet().and_then(|s| s.subnet_id()).map(str::to_string).context("CreateSubnet answered without a subnet id")
}

/// DeleteVpc. AWS refuses with DependencyViolation while subnets, network
/// interfaces or security groups remain: the error code is kept for callers.
pub async fn delete_vpc(aws: &AwsAccess, vpc_id: &str) -> Result<()> {
    aws.ec2.delete_vpc().vpc_id(vpc_id).send().await.map(|_| ()).map_err(|e| {
        anyhow::Error::new(super::connect::ServiceError::of(&e)).context(format!("ec2 DeleteVpc {vpc_id}"))
    })
}

/// Whether the Amazon-provided DNS server answers in the VPC (DescribeVpcAttribute
/// enableDnsSupport): without it nothing in the VPC resolves names outside the
/// cluster, NLB hostnames included.
pub async fn dns_support(aws: &AwsAccess, vpc_id: &str) -> Result<bool> {
    let out = aws
        .ec2
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsSupport)
        .send()
        .await
        .map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("ec2", format!("DescribeVpcAttribute {vpc_id}"), &e))
        })?;
    Ok(out.enable_dns_support().and_then(|a| a.value()).unwrap_or(false))
}

/// ModifyVpcAttribute enableDnsSupport.
pub async fn set_dns_support(aws: &AwsAccess, vpc_id: &str, enabled: bool) -> Result<()> {
    aws.ec2
        .modify_vpc_attribute()
        .vpc_id(vpc_id)
        .enable_dns_support(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(enabled).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("ec2", format!("ModifyVpcAttribute {vpc_id}"), &e))
        })
}

pub async fn delete_subnet(aws: &AwsAccess, subnet_id: &str) -> Result<()> {
    aws.ec2.delete_subnet().subnet_id(subnet_id).send().await.map(|_| ()).map_err(|e| {
        anyhow::Error::new(super::connect::ServiceError::of(&e)).context(format!("ec2 DeleteSubnet {subnet_id}"))
    })
}

/// A network interface or security group found by a leak sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Leftover {
    pub kind: String,
    pub id: String,
    pub detail: String,
}

/// Network interfaces in a VPC (load balancer ENIs, EKS control plane ENIs, ...).
pub async fn network_interfaces(aws: &AwsAccess, vpc_id: &str) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let mut pages = aws
        .ec2
        .describe_network_interfaces()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of("ec2", "DescribeNetworkInterfaces", &e))
        })?;
        out.extend(page.network_interfaces().iter().map(|n| Leftover {
            kind: "network interface".into(),
            id: n.network_interface_id().unwrap_or_default().to_string(),
            detail: n.description().unwrap_or_default().to_string(),
        }));
    }
    Ok(out)
}

/// Security groups carrying a tag (key, value).
pub async fn security_groups_tagged(aws: &AwsAccess, key: &str, value: &str) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let mut pages = aws
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name(format!("tag:{key}")).values(value).build())
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("ec2", "DescribeSecurityGroups", &e)))?;
        out.extend(page.security_groups().iter().map(|g| Leftover {
            kind: "security group".into(),
            id: g.group_id().unwrap_or_default().to_string(),
            detail: g.group_name().unwrap_or_default().to_string(),
        }));
    }
    Ok(out)
}
