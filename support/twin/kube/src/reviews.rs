//! The review kinds: SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview (authorization.k8s.io/v1) and SelfSubjectReview
//! (authentication.k8s.io/v1). Each is created, answered in its `status` and
//! never stored (kubernetes/kubernetes pkg/registry/authorization/*/rest.go,
//! pkg/registry/authentication/selfsubjectreview/rest.go).
//!
//! Validation as pkg/apis/authorization/validation/validation.go words it:
//! exactly one of resourceAttributes and nonResourceAttributes, a user or a
//! group for a SubjectAccessReview, and a local review's namespace matching
//! its attributes'.

use http::StatusCode;
use serde_json::{json, Value};

use crate::authz::{self, Attributes, ResourceAttributes, UserInfo};
use crate::error::{ApiError, FieldCause};
use crate::resources::ResourceInfo;
use crate::server::{self, Ctx, Response};

pub(crate) fn create(
    ctx: &Ctx,
    user: &UserInfo,
    info: &ResourceInfo,
    ns: Option<&str>,
    body: Value,
) -> Result<Response, ApiError> {
    let kind = info.resource.kind.as_str();
    let mut obj = body;
    obj["apiVersion"] = json!(info.resource.api_version());
    obj["kind"] = json!(kind);
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    if kind == "SelfSubjectReview" {
        let mut info = json!({"username": user.name, "groups": user.groups});
        if !user.uid.is_empty() {
            info["uid"] = json!(user.uid);
        }
        obj["status"] = json!({"userInfo": info});
        return Ok(server::json(StatusCode::CREATED, &obj));
    }
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let attrs = attributes(kind, &spec)?;
    if kind == "LocalSubjectAccessReview" {
        let asked = attrs.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default();
        if Some(asked) != ns {
            return Err(ApiError::invalid(
                kind,
                "",
                vec![FieldCause::invalid("spec.resourceAttributes.namespace", asked, "must match metadata.namespace")],
            ));
        }
    }
    let subject = match kind {
        "SelfSubjectAccessReview" => user.clone(),
        _ => {
            let name = spec.get("user").and_then(Value::as_str).unwrap_or_default();
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            if name.is_empty() && groups.is_empty() {
                return Err(ApiError::invalid(
                    kind,
                    "",
                    vec![FieldCause::invalid("spec.user", "", "at least one of user or group must be specified")],
                ));
            }
            UserInfo {
                name: name.into(),
                uid: spec.get("uid").and_then(Value::as_str).unwrap_or_default().into(),
                groups,
            }
        }
    };
    let decision = authz::authorize(&ctx.store, &subject, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    obj["status"] = status;
    Ok(server::json(StatusCode::CREATED, &obj))
}

fn attributes(kind: &str, spec: &Value) -> Result<Attributes, ApiError> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), None) => Ok(Attributes::resource(
            &text(r, "verb"),
            ResourceAttributes {
                group: text(r, "group"),
                version: text(r, "version"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
            },
        )),
        (None, Some(n)) => Ok(Attributes { verb: text(n, "verb"), resource: None, path: text(n, "path") }),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            kind,
            "",
            vec![FieldCause::invalid(
                "spec.resourceAttributes",
                "",
                "cannot be specified in combination with nonResourceAttributes",
            )],
        )),
        (None, None) => Err(ApiError::invalid(
            kind,
            "",
            vec![FieldCause::invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}
