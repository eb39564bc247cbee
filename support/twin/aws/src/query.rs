//! Decoding of the query protocols' form parameters (EC2 and awsQuery).
//!
//! EC2 writes lists flat (`VpcId.1`, `Filter.1.Value.2`); awsQuery adds
//! `.member` (`Names.member.1`). Both are 1-based, may come in any order and
//! may skip indices, so lists are gathered by numeric index, not by position.

use crate::error::AwsError;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

/// One EC2 `Filter.N`: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Params {
    /// Parse an `application/x-www-form-urlencoded` body or query string.
    /// A repeated key keeps its last value, as the services do.
    pub fn parse(form: &[u8]) -> Self {
        let map = form_urlencoded::parse(form).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        Params { map }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// A present, non-empty value, or `missing(key)`.
    pub fn require(&self, key: &str, missing: fn(&str) -> AwsError) -> Result<&str, AwsError> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(missing(key)),
        }
    }

    /// An optional integer; a value that is not one is the caller's error.
    pub fn int<T: std::str::FromStr>(
        &self,
        key: &str,
        invalid: impl FnOnce(&str) -> AwsError,
    ) -> Result<Option<T>, AwsError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| invalid(v)),
        }
    }

    /// Sub-parameter sets `prefix.N.*`, ordered by N, with the prefix removed.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        let mut by_index: BTreeMap<u32, Params> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (key, value) in self.map.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<u32>() else {
                continue;
            };
            by_index.entry(index).or_default().map.insert(field.to_string(), value.clone());
        }
        by_index.into_values().collect()
    }

    /// Scalar list `prefix.N`, ordered by N.
    pub fn values(&self, prefix: &str) -> Vec<String> {
        let mut by_index: BTreeMap<u32, String> = BTreeMap::new();
        let dotted = format!("{prefix}.");
        for (key, value) in self.map.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            if let Ok(index) = rest.parse::<u32>() {
                by_index.insert(index, value.clone());
            }
        }
        by_index.into_values().collect()
    }

    /// awsQuery scalar list `prefix.member.N`.
    pub fn members(&self, prefix: &str) -> Vec<String> {
        self.values(&format!("{prefix}.member"))
    }

    /// awsQuery structure list `prefix.member.N.*`.
    pub fn member_structs(&self, prefix: &str) -> Vec<Params> {
        self.structs(&format!("{prefix}.member"))
    }

    /// EC2 `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> Vec<Filter> {
        self.structs("Filter")
            .into_iter()
            .filter_map(|f| Some(Filter { name: f.get("Name")?.to_string(), values: f.values("Value") }))
            .collect()
    }

    /// EC2 `Tag.N.Key` / `Tag.N.Value` (value defaults to empty).
    pub fn ec2_tags(&self, prefix: &str) -> Vec<(String, String)> {
        self.structs(prefix)
            .into_iter()
            .filter_map(|t| Some((t.get("Key")?.to_string(), t.get("Value").unwrap_or_default().to_string())))
            .collect()
    }

    /// EC2 `TagSpecification.N.ResourceType` + `TagSpecification.N.Tag.M.*`.
    pub fn tag_specifications(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.structs("TagSpecification")
            .into_iter()
            .map(|s| (s.get("ResourceType").unwrap_or_default().to_string(), s.ec2_tags("Tag")))
            .collect()
    }

    /// awsQuery `Tags.member.N.Key/Value`.
    pub fn elb_tags(&self) -> Vec<(String, String)> {
        self.member_structs("Tags")
            .into_iter()
            .filter_map(|t| Some((t.get("Key")?.to_string(), t.get("Value").unwrap_or_default().to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_filters_in_any_order_with_gaps() {
        let p = Params::parse(
            b"Filter.2.Value.1=10.1.0.0%2F16&Action=DescribeVpcs&Filter.1.Name=tag%3AName&Filter.1.Value.2=b&Filter.1.Value.1=a&Filter.2.Name=cidr&Filter.10.Name=vpc-id&Filter.10.Value.1=vpc-9",
        );
        assert_eq!(p.get("Action"), Some("DescribeVpcs"));
        assert_eq!(
            p.filters(),
            vec![
                Filter { name: "tag:Name".into(), values: vec!["a".into(), "b".into()] },
                Filter { name: "cidr".into(), values: vec!["10.1.0.0/16".into()] },
                Filter { name: "vpc-id".into(), values: vec!["vpc-9".into()] },
            ]
        );
    }

    #[test]
    fn flat_and_member_lists_are_ordered_numerically() {
        let p = Params::parse(b"VpcId.10=c&VpcId.2=b&VpcId.1=a&VpcIdX=no&Names.member.2=y&Names.member.1=x");
        assert_eq!(p.values("VpcId"), vec!["a", "b", "c"]);
        assert_eq!(p.members("Names"), vec!["x", "y"]);
        assert!(p.values("Missing").is_empty());
    }

    #[test]
    fn tags_and_tag_specifications() {
        let p = Params::parse(
            b"TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=eks-1-vpc&TagSpecification.1.Tag.2.Key=empty&Tags.member.1.Key=k&Tags.member.1.Value=v",
        );
        assert_eq!(
            p.tag_specifications(),
            vec![("vpc".to_string(), vec![("Name".into(), "eks-1-vpc".into()), ("empty".into(), String::new())])]
        );
        assert_eq!(p.elb_tags(), vec![("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn targets_structs_and_plus_decoding() {
        let p = Params::parse(
            b"Targets.member.1.Id=10.1.0.5&Targets.member.1.Port=15443&Targets.member.2.Id=10.1.16.7&Description=a+b",
        );
        let t = p.member_structs("Targets");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].get("Port"), Some("15443"));
        assert_eq!(t[1].get("Port"), None);
        assert_eq!(p.get("Description"), Some("a b"));
    }

    #[test]
    fn integers_and_required_values() {
        let p = Params::parse(b"MaxResults=abc&PageSize=5&Empty=");
        let bad = p.int::<u32>("MaxResults", |v| AwsError::bad("InvalidParameterValue", v));
        assert_eq!(bad.unwrap_err().message, "abc");
        assert_eq!(p.int::<u32>("PageSize", |_| unreachable!()).ok().flatten(), Some(5));
        assert!(p.require("Empty", AwsError::ec2_missing).is_err());
        assert!(p.require("PageSize", AwsError::ec2_missing).is_ok());
    }
}
