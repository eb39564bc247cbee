//! Label and field selectors, parsed from the query-string syntax clients send
//! (`app=sleep`, `tier notin (a,b)`, `!k`, `metadata.name=x`).

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    key: String,
    op: LabelOp,
}

/// A parsed label selector; requirements are ANDed. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// From a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`),
    /// as Deployments and Services carry them.
    pub fn from_object(sel: &Value) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                let v = v.as_str().ok_or_else(|| ApiError::bad_request("matchLabels values must be strings"))?;
                requirements.push(Requirement { key: k.clone(), op: LabelOp::Equals(v.to_string()) });
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let op = match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                    "In" => LabelOp::In(values),
                    "NotIn" => LabelOp::NotIn(values),
                    "Exists" => LabelOp::Exists,
                    "DoesNotExist" => LabelOp::DoesNotExist,
                    other => return Err(ApiError::bad_request(format!("invalid label selector operator {other:?}"))),
                };
                requirements.push(Requirement { key, op });
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match &r.op {
            LabelOp::Equals(v) => get(&r.key) == Some(v.as_str()),
            LabelOp::NotEquals(v) => get(&r.key) != Some(v.as_str()),
            LabelOp::In(vs) => get(&r.key).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelOp::NotIn(vs) => get(&r.key).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelOp::Exists => get(&r.key).is_some(),
            LabelOp::DoesNotExist => get(&r.key).is_none(),
        })
    }

    /// Back to the query syntax (`app=x,tier in (a,b)`), e.g. for a Scale's `status.selector`.
    pub fn to_query(&self) -> String {
        self.requirements
            .iter()
            .map(|r| match &r.op {
                LabelOp::Equals(v) => format!("{}={v}", r.key),
                LabelOp::NotEquals(v) => format!("{}!={v}", r.key),
                LabelOp::In(vs) => format!("{} in ({})", r.key, vs.join(",")),
                LabelOp::NotIn(vs) => format!("{} notin ({})", r.key, vs.join(",")),
                LabelOp::Exists => r.key.clone(),
                LabelOp::DoesNotExist => format!("!{}", r.key),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Splits on commas that are not inside `( )`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, ApiError> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: invalid label selector: {part:?}"));
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key).map_err(|_| bad())?;
        return Ok(Requirement { key: key.into(), op: LabelOp::DoesNotExist });
    }
    for (token, make) in [("!=", 0u8), ("==", 1), ("=", 1)] {
        if let Some((k, v)) = part.split_once(token) {
            let (k, v) = (k.trim(), v.trim());
            check_key(k).map_err(|_| bad())?;
            check_value(v).map_err(|_| bad())?;
            let op = if make == 0 { LabelOp::NotEquals(v.into()) } else { LabelOp::Equals(v.into()) };
            return Ok(Requirement { key: k.into(), op });
        }
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = words[0];
        let rest = words[1].trim_start();
        let (is_in, list) = if let Some(l) = rest.strip_prefix("notin") {
            (false, l)
        } else if let Some(l) = rest.strip_prefix("in") {
            (true, l)
        } else {
            return Err(bad());
        };
        let list = list.trim();
        let inner = list.strip_prefix('(').and_then(|l| l.strip_suffix(')')).ok_or_else(bad)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        check_key(key).map_err(|_| bad())?;
        for v in &values {
            check_value(v).map_err(|_| bad())?;
        }
        let op = if is_in { LabelOp::In(values) } else { LabelOp::NotIn(values) };
        return Ok(Requirement { key: key.into(), op });
    }
    check_key(part).map_err(|_| bad())?;
    Ok(Requirement { key: part.into(), op: LabelOp::Exists })
}

/// A label key: optional DNS prefix + `/` + a name of alphanumerics, `-`, `_`, `.`.
pub(crate) fn check_key(key: &str) -> Result<(), ()> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(());
            }
            name
        }
        None => key,
    };
    if name.is_empty() || name.len() > 63 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(());
    }
    Ok(())
}

pub(crate) fn check_value(v: &str) -> Result<(), ()> {
    if v.len() > 63 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(());
    }
    Ok(())
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, ANDed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Fields every kind can be selected by; real servers add a few per kind.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

fn kind_fields(plural: &str) -> &'static [&'static str] {
    match plural {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "nodes" => &["spec.unschedulable"],
        "replicasets" => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses for one resource (by plural): unsupported fields answer 400 like real servers.
    pub fn parse(text: &str, plural: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{text}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if !COMMON_FIELDS.contains(&field) && !kind_fields(plural).contains(&field) {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, eq, want)| {
            let have = field_value(obj, field);
            (have == *want) == *eq
        })
    }

    /// The name when the selector pins exactly one (`metadata.name=x`), to shortcut lookups.
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms.iter().find(|(f, eq, _)| f == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }
}

/// A field as a string; absent fields read as "" (so `spec.nodeName=` matches unscheduled pods).
fn field_value(obj: &Value, field: &str) -> String {
    let mut cur = obj;
    for seg in field.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("parses")
    }

    #[test]
    fn equality_forms() {
        let o = obj(json!({"app": "sleep", "version": "v1"}));
        assert!(sel("app=sleep").matches(&o));
        assert!(sel("app==sleep").matches(&o));
        assert!(!sel("app=helloworld").matches(&o));
        assert!(sel("app=sleep,version=v1").matches(&o));
        assert!(!sel("app=sleep,version=v2").matches(&o));
        assert!(sel("").matches(&o));
    }

    #[test]
    fn not_equals_and_notin_match_absent_keys() {
        let o = obj(json!({"app": "sleep"}));
        assert!(sel("tier!=web").matches(&o));
        assert!(!sel("app!=sleep").matches(&o));
        assert!(sel("tier notin (a,b)").matches(&o));
        assert!(!sel("app notin (sleep, x)").matches(&o));
    }

    #[test]
    fn set_and_existence() {
        let o = obj(json!({"app": "sleep", "istio.io/rev": "default"}));
        assert!(sel("app in (helloworld, sleep)").matches(&o));
        assert!(!sel("app in (helloworld)").matches(&o));
        assert!(sel("istio.io/rev").matches(&o));
        assert!(!sel("!istio.io/rev").matches(&o));
        assert!(sel("!missing").matches(&o));
        assert!(!sel("version in (v1)").matches(&o), "in does not match absent keys");
        assert!(sel("app in (sleep),!missing,istio.io/rev=default").matches(&o));
    }

    #[test]
    fn bad_selectors_are_400() {
        for bad in ["app in sleep", "a b c", "app=(x)", "=x", "app in (a"] {
            let e = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(e.code, 400, "{bad}");
        }
    }

    #[test]
    fn from_object_and_round_trip() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "sleep"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}))
        .expect("valid");
        assert!(s.matches(&obj(json!({"app": "sleep"}))));
        assert_eq!(s.to_query(), "app=sleep,tier notin (x)");
        assert_eq!(LabelSelector::parse(&s.to_query()).expect("round trip"), s);
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f = FieldSelector::parse("metadata.name=a", "pods").expect("ok");
        assert!(f.matches(&o));
        assert_eq!(f.pinned_name(), Some("a"));
        assert!(!FieldSelector::parse("metadata.name!=a", "pods").expect("ok").matches(&o));
        assert!(FieldSelector::parse("metadata.namespace==ns,status.phase=Running", "pods").expect("ok").matches(&o));
        assert!(!FieldSelector::parse("status.phase=Pending", "pods").expect("ok").matches(&o));
        let e = FieldSelector::parse("status.phase=Running", "configmaps").expect_err("unsupported");
        assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: status.phase"));
    }
}
