//! The review kinds: SelfSubjectAccessReview, SubjectAccessReview,
//! LocalSubjectAccessReview (authorization.k8s.io/v1) and SelfSubjectReview
//! (authentication.k8s.io/v1). Each is created, answered in its `status` and
//! never stored (kubernetes/kubernetes pkg/registry/authorization/*/rest.go,
//! pkg/registry/authentication/selfsubjectreview/rest.go).
//!
//! Validation as pkg/apis/authorization/validation/validation.go words it
//! (read through the file index, the pre-1.34 form): exactly one of
//! resourceAttributes and nonResourceAttributes, a user or a group for a
//! SubjectAccessReview, every cause at once. A local review's namespace must
//! match its attributes' (the message is the twin's).

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
    // Every cause at once, as the validation functions collect them.
    let mut causes = attribute_causes(&spec);
    let (name, groups) = (
        spec.get("user").and_then(Value::as_str).unwrap_or_default(),
        spec.get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
    let about_others = matches!(kind, "SubjectAccessReview" | "LocalSubjectAccessReview");
    if about_others && name.is_empty() && groups.is_empty() {
        causes.push(FieldCause::invalid("spec.user", "", "at least one of user or group must be specified"));
    }
    let attrs = attributes(&spec);
    if kind == "LocalSubjectAccessReview" {
        let asked = attrs.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default();
        if Some(asked) != ns {
            causes.push(FieldCause::invalid(
                "spec.resourceAttributes.namespace",
                asked,
                "must match metadata.namespace",
            ));
        }
    }
    if !causes.is_empty() {
        // apierrors.NewInvalid names the kind qualified by its group.
        let qualified = format!("{kind}.{}", info.resource.group);
        return Err(ApiError::invalid(&qualified, "", causes));
    }
    let subject = if about_others {
        UserInfo { name: name.into(), uid: spec.get("uid").and_then(Value::as_str).unwrap_or_default().into(), groups }
    } else {
        user.clone()
    };
    let decision = authz::authorize(&ctx.store, &subject, &attrs);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    obj["status"] = status;
    Ok(server::json(StatusCode::CREATED, &obj))
}

/// The union rule of validation.go: exactly one of the attribute sets. Both:
/// `spec.nonResourceAttributes` cannot be combined; neither:
/// `spec.resourceAttributes: Invalid value: null` (the nil pointer it is given).
fn attribute_causes(spec: &Value) -> Vec<FieldCause> {
    match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(_), Some(n)) => vec![FieldCause {
            reason: "FieldValueInvalid".into(),
            // The value is Go's rendering of a struct pointer; its JSON stands in for it.
            message: format!("Invalid value: {n}: cannot be specified in combination with resourceAttributes"),
            field: "spec.nonResourceAttributes".into(),
        }],
        (None, None) => vec![FieldCause {
            reason: "FieldValueInvalid".into(),
            message:
                "Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
                    .into(),
            field: "spec.resourceAttributes".into(),
        }],
        _ => Vec::new(),
    }
}

/// What a valid spec asks.
fn attributes(spec: &Value) -> Attributes {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), _) => Attributes::resource(
            &text(r, "verb"),
            ResourceAttributes {
                group: text(r, "group"),
                version: text(r, "version"),
                resource: text(r, "resource"),
                subresource: text(r, "subresource"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
            },
        ),
        (None, Some(n)) => Attributes { verb: text(n, "verb"), resource: None, path: text(n, "path") },
        (None, None) => Attributes { verb: String::new(), resource: None, path: String::new() },
    }
}
