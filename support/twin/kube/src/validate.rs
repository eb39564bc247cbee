//! The validation real API servers do that clients can observe as 422 Invalid:
//! object names, label syntax, and the required fields of the workload kinds.

use serde_json::Value;

use crate::error::{ApiError, FieldCause};
use crate::selector::{check_key, check_value, LabelSelector};

/// DNS-1123 subdomain: lower-case alphanumerics, `-` and `.`, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label_part)
}

/// DNS-1123 label: lower-case alphanumerics and `-`, at most 63.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_part(s)
}

fn is_label_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Kinds whose names must be DNS labels rather than subdomains.
fn needs_label_name(kind: &str) -> bool {
    matches!(kind, "Namespace" | "Service")
}

fn is_rbac(kind: &str) -> bool {
    matches!(kind, "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding")
}

/// Validates an object about to be stored; all problems are reported at once.
pub fn validate(kind: &str, obj: &Value) -> Result<(), ApiError> {
    let name = crate::object::name(obj);
    let mut causes = Vec::new();
    if needs_label_name(kind) {
        if !is_dns_label(name) {
            causes.push(FieldCause::invalid("metadata.name", name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"));
        }
    } else if is_rbac(kind) {
        // RBAC names are path segments (pkg/apis/rbac/validation ValidateRBACName:
        // path.IsValidPathSegmentName), so `system:discovery` is one.
        if name == "." || name == ".." {
            causes.push(FieldCause::invalid("metadata.name", name, &format!("may not be '{name}'")));
        } else if let Some(bad) = ["/", "%"].iter().find(|c| name.contains(**c)) {
            causes.push(FieldCause::invalid("metadata.name", name, &format!("may not contain '{bad}'")));
        }
    } else if !is_dns_subdomain(name) && kind != "CustomResourceDefinition" {
        causes.push(FieldCause::invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"));
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    let text = v.as_str().unwrap_or_default();
                    if !v.is_string() || check_key(k).is_err() || check_value(text).is_err() {
                        causes.push(FieldCause::invalid("metadata.labels", text, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
                    }
                }
            }
            None => {
                causes.push(FieldCause::invalid("metadata.labels", &labels.to_string(), "must be a map of strings"))
            }
        }
    }
    match kind {
        "Deployment" | "ReplicaSet" => workload(obj, &mut causes),
        "Pod" => pod_spec(obj.get("spec"), "spec", &mut causes),
        "Service" => service(obj, &mut causes),
        "CustomResourceDefinition" => crd(obj, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, name, causes))
    }
}

fn workload(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec");
    let selector = spec.and_then(|s| s.get("selector"));
    let template_labels = spec.and_then(|s| s.pointer("/template/metadata/labels")).cloned().unwrap_or(Value::Null);
    match selector {
        None | Some(Value::Null) => causes.push(FieldCause::required("spec.selector")),
        Some(sel) => match LabelSelector::from_object(sel) {
            Ok(s) if s.is_empty() => {
                causes.push(FieldCause::invalid("spec.selector", "{}", "empty selector is invalid for deployment"))
            }
            Ok(s) => {
                let probe = serde_json::json!({"metadata": {"labels": template_labels}});
                if !s.matches(&probe) {
                    causes.push(FieldCause::invalid(
                        "spec.template.metadata.labels",
                        &template_labels.to_string(),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            Err(e) => causes.push(FieldCause::invalid("spec.selector", &sel.to_string(), &e.message)),
        },
    }
    pod_spec(spec.and_then(|s| s.pointer("/template/spec")), "spec.template.spec", causes);
}

fn pod_spec(spec: Option<&Value>, at: &str, causes: &mut Vec<FieldCause>) {
    let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array);
    match containers {
        None => causes.push(FieldCause::required(&format!("{at}.containers"))),
        Some(list) if list.is_empty() => causes.push(FieldCause::required(&format!("{at}.containers"))),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                for field in ["name", "image"] {
                    if c.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                        causes.push(FieldCause::required(&format!("{at}.containers[{i}].{field}")));
                    }
                }
            }
        }
    }
}

fn service(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec");
    let ty = spec.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        causes.push(FieldCause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: \"{ty}\""),
            field: "spec.type".into(),
        });
    }
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, p) in ports.iter().enumerate() {
        match p.get("port").and_then(Value::as_u64) {
            Some(1..=65535) => {}
            Some(n) => causes.push(FieldCause::invalid(
                &format!("spec.ports[{i}].port"),
                &n.to_string(),
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(FieldCause::required(&format!("spec.ports[{i}].port"))),
        }
        if ports.len() > 1 && p.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            causes.push(FieldCause::required(&format!("spec.ports[{i}].name")));
        }
    }
}

fn crd(obj: &Value, causes: &mut Vec<FieldCause>) {
    let spec = obj.get("spec");
    let group = spec.and_then(|s| s.get("group")).and_then(Value::as_str).unwrap_or_default();
    let plural = spec.and_then(|s| s.pointer("/names/plural")).and_then(Value::as_str).unwrap_or_default();
    let kind = spec.and_then(|s| s.pointer("/names/kind")).and_then(Value::as_str).unwrap_or_default();
    let name = crate::object::name(obj);
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group"));
    }
    if plural.is_empty() {
        causes.push(FieldCause::required("spec.names.plural"));
    }
    if kind.is_empty() {
        causes.push(FieldCause::required("spec.names.kind"));
    }
    if name != format!("{plural}.{group}") {
        causes.push(FieldCause::invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
    }
    let versions = spec.and_then(|s| s.get("versions")).and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(FieldCause::required("spec.versions"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns_subdomain("helloworld-v1.x"));
        assert!(!is_dns_subdomain("Hello"));
        assert!(!is_dns_subdomain("-a"));
        assert!(is_dns_label("istio-system"));
        assert!(!is_dns_label("a.b"));
        let e = validate("Namespace", &json!({"metadata": {"name": "a.b"}})).expect_err("label");
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert!(validate("ConfigMap", &json!({"metadata": {"name": "a.b"}})).is_ok());
        let e = validate("ConfigMap", &json!({"metadata": {"name": "a", "labels": {"k": "bad value"}}}))
            .expect_err("label value");
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], "metadata.labels");
    }

    #[test]
    fn deployments_need_a_matching_selector() {
        let ok = json!({"metadata": {"name": "sleep"}, "spec": {"selector": {"matchLabels": {"app": "sleep"}},
            "template": {"metadata": {"labels": {"app": "sleep"}}, "spec": {"containers": [{"name": "sleep", "image": "curl"}]}}}});
        assert!(validate("Deployment", &ok).is_ok());
        let mut missing = ok.clone();
        missing["spec"].as_object_mut().expect("spec").remove("selector");
        let e = validate("Deployment", &missing).expect_err("no selector");
        assert_eq!(e.message, "Deployment \"sleep\" is invalid: spec.selector: Required value");
        let mut mismatch = ok.clone();
        mismatch["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        assert!(validate("Deployment", &mismatch).expect_err("mismatch").message.contains("does not match template"));
        let mut no_image = ok;
        no_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        assert!(validate("Deployment", &no_image).expect_err("image").message.contains("containers[0].image"));
    }

    #[test]
    fn services_need_ports_in_range() {
        let e = validate("Service", &json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}}))
            .expect_err("range");
        assert!(e.message.contains("spec.ports[0].port"));
        assert!(validate("Service", &json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})).is_ok());
    }
}
