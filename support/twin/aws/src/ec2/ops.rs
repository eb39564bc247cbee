//! EC2 operations on the model, with the validations and error codes of the
//! real service. Used by the wire handlers and by the twin's own programs.

use crate::cidr::{Cidr, CidrError};
use crate::error::{AwsError, AwsResult};
use crate::model::{Model, SecurityGroup, Subnet, Tags, Vpc};
use crate::names;
use std::time::Instant;

/// Resource types that tags can be put on, by id prefix.
pub fn resource_type(id: &str) -> Option<&'static str> {
    match id.split_once('-').map(|(prefix, _)| prefix) {
        Some("vpc") => Some("vpc"),
        Some("subnet") => Some("subnet"),
        Some("sg") => Some("security-group"),
        Some("eni") => Some("network-interface"),
        _ => None,
    }
}

/// `vpc-1a2b...` shape check: EC2 answers `...Malformed` for these before looking up.
fn well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

pub fn vpc_not_found(id: &str) -> AwsError {
    if well_formed(id, "vpc") {
        AwsError::bad("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist"))
    } else {
        AwsError::bad("InvalidVpcID.Malformed", format!("Invalid id: \"{id}\""))
    }
}

pub fn subnet_not_found(id: &str) -> AwsError {
    if well_formed(id, "subnet") {
        AwsError::bad("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
    } else {
        AwsError::bad("InvalidSubnetID.Malformed", format!("Invalid id: \"{id}\""))
    }
}

pub fn group_not_found(id: &str) -> AwsError {
    if well_formed(id, "sg") {
        AwsError::bad("InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
    } else {
        AwsError::bad("InvalidGroupId.Malformed", format!("Invalid id: \"{id}\" (expecting \"sg-...\")"))
    }
}

pub fn eni_not_found(id: &str) -> AwsError {
    if well_formed(id, "eni") {
        AwsError::bad("InvalidNetworkInterfaceID.NotFound", format!("The networkInterface ID '{id}' does not exist"))
    } else {
        AwsError::bad("InvalidNetworkInterfaceID.Malformed", format!("Invalid id: \"{id}\" (expecting \"eni-...\")"))
    }
}

fn not_found_for(id: &str) -> AwsError {
    match resource_type(id) {
        Some("vpc") => vpc_not_found(id),
        Some("subnet") => subnet_not_found(id),
        Some("security-group") => group_not_found(id),
        Some("network-interface") => eni_not_found(id),
        _ => AwsError::bad("InvalidID", format!("The ID '{id}' is not valid")),
    }
}

/// Users may not set tags in the `aws:` namespace.
pub fn check_user_tags(tags: &[(String, String)]) -> AwsResult<()> {
    for (key, _) in tags {
        if key.is_empty() || key.len() > 128 {
            return Err(AwsError::bad(
                "InvalidParameterValue",
                format!("Tag key '{key}' must be between 1 and 128 characters"),
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AwsError::bad(
                "InvalidParameterValue",
                "Tag keys starting with 'aws:' are reserved for internal use",
            ));
        }
    }
    Ok(())
}

fn parse_cidr(value: &str) -> AwsResult<Cidr> {
    Cidr::parse(value).map_err(|e| match e {
        CidrError::Malformed | CidrError::NotNetworkAddress => AwsError::bad(
            "InvalidParameterValue",
            format!("Value ({value}) for parameter cidrBlock is invalid. This is not a valid CIDR block."),
        ),
    })
}

impl Model {
    pub fn create_vpc(&mut self, cidr: &str, tags: Vec<(String, String)>) -> AwsResult<String> {
        let cidr = parse_cidr(cidr)?;
        if !(16..=28).contains(&cidr.prefix()) {
            return Err(AwsError::bad("InvalidVpc.Range", format!("The CIDR '{cidr}' is invalid.")));
        }
        let id = names::ec2_id("vpc");
        let seq = self.next_seq();
        self.vpcs.insert(
            id.clone(),
            Vpc {
                id: id.clone(),
                seq,
                cidr,
                cidr_association_id: names::ec2_id("vpc-cidr-assoc"),
                created: Instant::now(),
                available: false,
                dns_support: true,
                dns_hostnames: false,
                tags: tags.into_iter().collect(),
            },
        );
        // Every VPC comes with its default security group.
        self.insert_security_group(&id, "default", "default VPC security group", Tags::new(), true);
        Ok(id)
    }

    pub fn delete_vpc(&mut self, id: &str) -> AwsResult<()> {
        if !self.vpcs.contains_key(id) {
            return Err(vpc_not_found(id));
        }
        let busy = self.subnets.values().any(|s| s.vpc_id == id)
            || self.enis.values().any(|e| e.vpc_id == id)
            || self.security_groups.values().any(|g| g.vpc_id == id && !g.is_default);
        if busy {
            return Err(AwsError::bad(
                "DependencyViolation",
                format!("The vpc '{id}' has dependencies and cannot be deleted."),
            ));
        }
        self.vpcs.remove(id);
        self.security_groups.retain(|_, g| g.vpc_id != id);
        Ok(())
    }

    pub fn create_subnet(
        &mut self,
        vpc_id: &str,
        cidr: &str,
        az: Option<&str>,
        az_id: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> AwsResult<String> {
        let vpc_cidr = self.vpcs.get(vpc_id).ok_or_else(|| vpc_not_found(vpc_id))?.cidr;
        let cidr = parse_cidr(cidr)?;
        if !(16..=28).contains(&cidr.prefix()) || !vpc_cidr.covers(&cidr) {
            return Err(AwsError::bad("InvalidSubnet.Range", format!("The CIDR '{cidr}' is invalid.")));
        }
        if self.subnets.values().any(|s| s.vpc_id == vpc_id && s.cidr.overlaps(&cidr)) {
            return Err(AwsError::bad(
                "InvalidSubnet.Conflict",
                format!("The CIDR '{cidr}' conflicts with another subnet"),
            ));
        }
        let zones = names::zones(&self.ctx.region);
        let zone = match (az, az_id) {
            (Some(name), _) => zones.iter().find(|(n, _)| n == name).ok_or_else(|| invalid_zone(name, &zones))?,
            (None, Some(id)) => zones.iter().find(|(_, i)| i == id).ok_or_else(|| {
                AwsError::bad(
                    "InvalidParameterValue",
                    format!("Value ({id}) for parameter availabilityZoneId is invalid."),
                )
            })?,
            (None, None) => &zones[0],
        };
        let id = names::ec2_id("subnet");
        let seq = self.next_seq();
        self.subnets.insert(
            id.clone(),
            Subnet {
                id: id.clone(),
                seq,
                vpc_id: vpc_id.to_string(),
                cidr,
                az: zone.0.clone(),
                az_id: zone.1.clone(),
                used_ips: Default::default(),
                tags: tags.into_iter().collect(),
            },
        );
        Ok(id)
    }

    pub fn delete_subnet(&mut self, id: &str) -> AwsResult<()> {
        if !self.subnets.contains_key(id) {
            return Err(subnet_not_found(id));
        }
        if self.enis.values().any(|e| e.subnet_id == id) {
            return Err(AwsError::bad(
                "DependencyViolation",
                format!("The subnet '{id}' has dependencies and cannot be deleted."),
            ));
        }
        self.subnets.remove(id);
        Ok(())
    }

    pub fn create_security_group(
        &mut self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> AwsResult<String> {
        if !self.vpcs.contains_key(vpc_id) {
            return Err(vpc_not_found(vpc_id));
        }
        if name.is_empty() || name.len() > 255 {
            return Err(AwsError::bad("InvalidParameterValue", "Invalid security group name"));
        }
        if name.eq_ignore_ascii_case("default") {
            return Err(AwsError::bad("InvalidParameterValue", "Cannot use reserved security group name: default"));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(AwsError::bad(
                "InvalidParameterValue",
                format!(
                    "Group names may not be in the format sg-*. Value ({name}) for parameter GroupName is invalid."
                ),
            ));
        }
        if self.security_groups.values().any(|g| g.vpc_id == vpc_id && g.name == name) {
            return Err(AwsError::bad(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        Ok(self.insert_security_group(vpc_id, name, description, tags.into_iter().collect(), false))
    }

    /// Creates a group without the user-facing checks (default groups, EKS's cluster group).
    pub fn insert_security_group(
        &mut self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Tags,
        is_default: bool,
    ) -> String {
        let id = names::ec2_id("sg");
        let seq = self.next_seq();
        self.security_groups.insert(
            id.clone(),
            SecurityGroup {
                id: id.clone(),
                seq,
                vpc_id: vpc_id.to_string(),
                name: name.to_string(),
                description: description.to_string(),
                is_default,
                tags,
            },
        );
        id
    }

    pub fn delete_security_group(&mut self, id: &str) -> AwsResult<()> {
        let group = self.security_groups.get(id).ok_or_else(|| group_not_found(id))?;
        if group.is_default {
            return Err(AwsError::bad(
                "CannotDelete",
                format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
            ));
        }
        if self.enis.values().any(|e| e.group_ids.iter().any(|g| g == id))
            || self.load_balancers.values().any(|lb| lb.security_groups.iter().any(|g| g == id))
        {
            return Err(AwsError::bad("DependencyViolation", format!("resource {id} has a dependent object")));
        }
        self.security_groups.remove(id);
        Ok(())
    }

    pub fn delete_network_interface(&mut self, id: &str) -> AwsResult<()> {
        if !self.enis.contains_key(id) {
            return Err(eni_not_found(id));
        }
        // Every ENI in the twin is attached to a load balancer or a control
        // plane; those go away only with their owner.
        Err(AwsError::bad(
            "InvalidNetworkInterface.InUse",
            format!("The network interface '{id}' is currently in use."),
        ))
    }

    /// The tags of any EC2 resource by id.
    pub fn ec2_tags_mut(&mut self, id: &str) -> Option<&mut Tags> {
        match resource_type(id)? {
            "vpc" => self.vpcs.get_mut(id).map(|r| &mut r.tags),
            "subnet" => self.subnets.get_mut(id).map(|r| &mut r.tags),
            "security-group" => self.security_groups.get_mut(id).map(|r| &mut r.tags),
            "network-interface" => self.enis.get_mut(id).map(|r| &mut r.tags),
            _ => None,
        }
    }

    pub fn create_tags(&mut self, ids: &[String], tags: &[(String, String)]) -> AwsResult<()> {
        check_user_tags(tags)?;
        // All-or-nothing: look every resource up before changing any.
        for id in ids {
            if self.ec2_tags_mut(id).is_none() {
                return Err(not_found_for(id));
            }
        }
        for id in ids {
            if let Some(existing) = self.ec2_tags_mut(id) {
                for (k, v) in tags {
                    existing.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(())
    }

    /// DeleteTags: a tag with a value is removed only if the value matches;
    /// no tags at all removes every user tag.
    pub fn delete_tags(&mut self, ids: &[String], tags: &[(String, Option<String>)]) -> AwsResult<()> {
        for id in ids {
            if self.ec2_tags_mut(id).is_none() {
                return Err(not_found_for(id));
            }
        }
        for id in ids {
            if let Some(existing) = self.ec2_tags_mut(id) {
                if tags.is_empty() {
                    existing.retain(|k, _| k.starts_with("aws:"));
                }
                for (k, v) in tags {
                    if v.as_ref().is_none_or(|v| existing.get(k) == Some(v)) {
                        existing.remove(k);
                    }
                }
            }
        }
        Ok(())
    }
}

fn invalid_zone(name: &str, zones: &[(String, String)]) -> AwsError {
    let list: Vec<&str> = zones.iter().map(|(n, _)| n.as_str()).collect();
    AwsError::bad(
        "InvalidParameterValue",
        format!(
            "Value ({name}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
            list.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ctx;
    use crate::{Clock, Delays};

    fn model() -> Model {
        Model::new(Ctx {
            region: "us-west-2".into(),
            account: "123456789012".into(),
            clock: Clock::new(1.0),
            delays: Delays::default(),
        })
    }

    #[test]
    fn vpc_gets_default_group_and_validates_cidr() {
        let mut m = model();
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let defaults: Vec<(String, String)> =
            m.security_groups.values().filter(|g| g.vpc_id == vpc).map(|g| (g.id.clone(), g.name.clone())).collect();
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].1, "default");
        assert_eq!(m.create_vpc("10.0.0.0/8", vec![]).unwrap_err().code, "InvalidVpc.Range");
        assert_eq!(m.create_vpc("10.1.0.1/16", vec![]).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(m.delete_security_group(&defaults[0].0).unwrap_err().code, "CannotDelete");
    }

    #[test]
    fn subnets_must_fit_and_not_overlap() {
        let mut m = model();
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let s = m.create_subnet(&vpc, "10.1.0.0/20", Some("us-west-2b"), None, vec![]).unwrap();
        assert_eq!(m.subnets[&s].az_id, "usw2-az2");
        assert_eq!(m.subnets[&s].available_ips(), 4091);
        let e = |r: AwsResult<String>| r.unwrap_err().code;
        assert_eq!(e(m.create_subnet(&vpc, "10.1.8.0/21", None, None, vec![])), "InvalidSubnet.Conflict");
        assert_eq!(e(m.create_subnet(&vpc, "10.2.0.0/20", None, None, vec![])), "InvalidSubnet.Range");
        assert_eq!(e(m.create_subnet(&vpc, "10.1.16.0/20", Some("us-west-2z"), None, vec![])), "InvalidParameterValue");
        assert_eq!(
            e(m.create_subnet("vpc-0000000000000000a", "10.1.16.0/20", None, None, vec![])),
            "InvalidVpcID.NotFound"
        );
        assert_eq!(e(m.create_subnet("nope", "10.1.16.0/20", None, None, vec![])), "InvalidVpcID.Malformed");
    }

    #[test]
    fn vpc_delete_waits_for_dependencies() {
        let mut m = model();
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let subnet = m.create_subnet(&vpc, "10.1.0.0/20", None, None, vec![]).unwrap();
        let sg = m.create_security_group(&vpc, "nodes", "d", vec![]).unwrap();
        assert_eq!(m.delete_vpc(&vpc).unwrap_err().code, "DependencyViolation");
        m.delete_subnet(&subnet).unwrap();
        assert_eq!(m.delete_vpc(&vpc).unwrap_err().code, "DependencyViolation");
        m.delete_security_group(&sg).unwrap();
        m.delete_vpc(&vpc).unwrap();
        assert!(m.security_groups.is_empty(), "the default group goes with its VPC");
        assert_eq!(m.delete_vpc(&vpc).unwrap_err().code, "InvalidVpcID.NotFound");
    }

    #[test]
    fn tags_are_all_or_nothing_and_reserved_prefix_refused() {
        let mut m = model();
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let tag = vec![("Name".to_string(), "x".to_string())];
        assert_eq!(
            m.create_tags(&[vpc.clone(), "subnet-0123456789abcdef0".into()], &tag).unwrap_err().code,
            "InvalidSubnetID.NotFound"
        );
        assert!(m.vpcs[&vpc].tags.is_empty());
        m.create_tags(std::slice::from_ref(&vpc), &tag).unwrap();
        assert_eq!(m.vpcs[&vpc].tags["Name"], "x");
        assert!(m.create_tags(std::slice::from_ref(&vpc), &[("aws:x".into(), "1".into())]).is_err());
        m.delete_tags(std::slice::from_ref(&vpc), &[("Name".into(), Some("other".into()))]).unwrap();
        assert_eq!(m.vpcs[&vpc].tags.len(), 1, "a value that does not match keeps the tag");
        m.delete_tags(std::slice::from_ref(&vpc), &[]).unwrap();
        assert!(m.vpcs[&vpc].tags.is_empty());
    }

    #[test]
    fn duplicate_and_reserved_group_names() {
        let mut m = model();
        let vpc = m.create_vpc("10.1.0.0/16", vec![]).unwrap();
        m.create_security_group(&vpc, "a", "d", vec![]).unwrap();
        assert_eq!(m.create_security_group(&vpc, "a", "d", vec![]).unwrap_err().code, "InvalidGroup.Duplicate");
        assert_eq!(m.create_security_group(&vpc, "default", "d", vec![]).unwrap_err().code, "InvalidParameterValue");
    }
}
