//! EC2 `Filter.N` matching (`tag:K`, `tag-key`, `tag-value`, named fields,
//! `*`/`?` wildcards) and `MaxResults`/`NextToken` paging.

use crate::error::{AwsError, AwsResult};
use crate::model::{decode_token, encode_token, paginate, Tags};
use crate::query::{Filter, Params};

/// Refuses filter names the resource does not know, as EC2 does, before any matching.
pub fn check_names(filters: &[Filter], known: &[&str]) -> AwsResult<()> {
    for f in filters {
        let tag_filter = f.name.starts_with("tag:") || f.name == "tag-key" || f.name == "tag-value";
        if !tag_filter && !known.contains(&f.name.as_str()) {
            return Err(AwsError::bad("InvalidParameterValue", format!("The filter '{}' is invalid", f.name)));
        }
    }
    Ok(())
}

/// All filters must match (AND); within one filter any value may (OR).
pub fn matches(filters: &[Filter], tags: &Tags, field: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|f| {
        let candidates: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.get(key).cloned().into_iter().collect()
        } else if f.name == "tag-key" {
            tags.keys().cloned().collect()
        } else if f.name == "tag-value" {
            tags.values().cloned().collect()
        } else {
            field(&f.name)
        };
        candidates.iter().any(|c| f.values.iter().any(|pattern| glob(pattern, c)))
    })
}

/// EC2's wildcards: `*` any run of characters, `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One page of a Describe* answer.
pub struct Paging {
    limit: usize,
    after: Option<u64>,
    kind: &'static str,
}

impl Paging {
    /// Reads `MaxResults` (5..=1000, not together with explicit ids) and `NextToken`.
    pub fn from_params(params: &Params, kind: &'static str, ids_param: Option<&str>) -> AwsResult<Paging> {
        let max: Option<i64> = params.int("MaxResults", |v| {
            AwsError::bad("InvalidParameterValue", format!("Value ( {v} ) for parameter maxResults is invalid."))
        })?;
        if let (Some(_), Some(ids)) = (max, ids_param) {
            return Err(AwsError::bad(
                "InvalidParameterCombination",
                format!("The parameter {ids} cannot be used with the parameter maxResults"),
            ));
        }
        if let Some(m) = max {
            if !(5..=1000).contains(&m) {
                return Err(AwsError::bad(
                    "InvalidParameterValue",
                    format!("Value ( {m} ) for parameter maxResults is invalid. Parameter must be between 5 and 1000."),
                ));
            }
        }
        let after = match params.get("NextToken") {
            None | Some("") => None,
            Some(token) => Some(decode_token(kind, token).ok_or_else(|| {
                AwsError::bad("InvalidParameterValue", format!("Invalid value '{token}' for nextToken"))
            })?),
        };
        Ok(Paging { limit: max.map_or(usize::MAX, |m| m as usize), after, kind })
    }

    pub fn page<T>(&self, items: Vec<(u64, T)>) -> (Vec<T>, Option<String>) {
        let (page, next) = paginate(items, self.after, self.limit);
        (page, next.map(|seq| encode_token(self.kind, seq)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(name: &str, values: &[&str]) -> Filter {
        Filter { name: name.into(), values: values.iter().map(|v| v.to_string()).collect() }
    }

    #[test]
    fn globbing() {
        assert!(glob("eks-*-vpc", "eks-1-vpc"));
        assert!(glob("*", ""));
        assert!(glob("us-west-2?", "us-west-2a"));
        assert!(!glob("us-west-2?", "us-west-2"));
        assert!(!glob("eks-1", "eks-10"));
        assert!(glob("a*b*c", "axxbyyc"));
    }

    #[test]
    fn tag_and_field_filters_combine() {
        let tags: Tags = [("Name".to_string(), "eks-1-vpc".to_string())].into();
        let field = |name: &str| match name {
            "cidr" => vec!["10.1.0.0/16".to_string()],
            _ => vec![],
        };
        assert!(matches(&[filter("tag:Name", &["eks-2-vpc", "eks-1-vpc"])], &tags, field));
        assert!(matches(&[filter("tag-key", &["Name"]), filter("cidr", &["10.1.*"])], &tags, field));
        assert!(!matches(&[filter("tag:Name", &["eks-1-vpc"]), filter("cidr", &["10.2.0.0/16"])], &tags, field));
        assert!(!matches(&[filter("tag:Other", &["*"])], &tags, field));
        assert!(check_names(&[filter("cidr", &[])], &["cidr"]).is_ok());
        assert_eq!(check_names(&[filter("colour", &[])], &["cidr"]).unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn paging_limits() {
        let p = Params::parse(b"MaxResults=2");
        assert_eq!(Paging::from_params(&p, "vpc", None).err().map(|e| e.code), Some("InvalidParameterValue".into()));
        let p = Params::parse(b"MaxResults=5&VpcId.1=vpc-1");
        assert_eq!(
            Paging::from_params(&p, "vpc", Some("vpcIds")).err().map(|e| e.code),
            Some("InvalidParameterCombination".into())
        );
        let p = Params::parse(b"MaxResults=5");
        let paging = Paging::from_params(&p, "vpc", None).unwrap();
        let (page, next) = paging.page((1..=7).map(|i| (i, i)).collect());
        assert_eq!(page.len(), 5);
        let token = next.unwrap();
        let p = Params::parse(format!("MaxResults=5&NextToken={token}").as_bytes());
        let (page, next) = Paging::from_params(&p, "vpc", None).unwrap().page((1..=7).map(|i| (i, i)).collect());
        assert_eq!((page, next), (vec![6, 7], None));
        assert!(Paging::from_params(&Params::parse(b"NextToken=garbage"), "vpc", None).is_err());
    }
}
