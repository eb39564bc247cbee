//! The resource API: list, watch, get, create, replace, the four patch types,
//! delete and deletecollection, and the status, scale and log subresources.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::error::{ApiError, FieldCause};
use crate::patch::{self, PatchType};
use crate::resources::{Resource, ResourceInfo};
use crate::route::ResourcePath;
use crate::scale;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{self, Ctx, Request, Response};
use crate::store::{DeleteOptions, Part, Propagation, Store, WatchStart};
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchRequest};

pub(crate) async fn handle(ctx: &Ctx, req: &Request, path: ResourcePath) -> Response {
    match dispatch(ctx, req, path) {
        Ok(resp) => resp,
        Err(e) => server::error(&e),
    }
}

/// The resolved target of a request.
struct Target<'a> {
    store: &'a Arc<Store>,
    info: ResourceInfo,
    ns: Option<String>,
}

impl Target<'_> {
    fn r(&self) -> &Resource {
        &self.info.resource
    }

    fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }
}

fn dispatch(ctx: &Ctx, req: &Request, path: ResourcePath) -> Result<Response, ApiError> {
    let info = ctx.store.lookup(&path.group, &path.version, &path.plural).ok_or_else(ApiError::no_route)?;
    if !info.resource.namespaced && path.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    let t = Target { store: &ctx.store, info, ns: path.namespace.clone() };
    let verb_allowed = |verb: &str| t.info.verbs.iter().any(|v| v == verb);
    let not_allowed =
        || ApiError::method_not_allowed("the server does not allow this method on the requested resource");
    let item_needs_ns = t.r().namespaced && t.ns.is_none();
    match (&req.method, path.name.as_deref(), path.subresource.as_deref()) {
        (&Method::GET, None, None) if path.watch || req.flag("watch") => watch(&t, req, None),
        // The legacy `/watch/.../<plural>/<name>` form: a watch of one object.
        (&Method::GET, Some(name), None) if path.watch => watch(&t, req, Some(name)),
        (&Method::GET, None, None) => list(&t, req),
        (&Method::POST, None, None) if verb_allowed("create") && !item_needs_ns => create(&t, req),
        (&Method::DELETE, None, None) if verb_allowed("deletecollection") => delete_collection(&t, req),
        (_, None, _) => Err(not_allowed()),
        (_, Some(_), _) if item_needs_ns => Err(ApiError::no_route()),
        (&Method::GET, Some(name), None) => get(&t, req, name),
        (&Method::PUT, Some(name), None) if verb_allowed("update") => replace(&t, req, name, Part::Main),
        (&Method::PATCH, Some(name), None) if verb_allowed("patch") => patch(&t, req, name, Part::Main),
        (&Method::DELETE, Some(name), None) if verb_allowed("delete") => delete(&t, req, name),
        (_, Some(_), None) => Err(not_allowed()),
        (_, Some(_), Some(sub)) if !t.info.has_subresource(sub) => Err(ApiError::no_route()),
        (&Method::GET, Some(name), Some("status")) => get(&t, req, name),
        (&Method::PUT, Some(name), Some("status")) => replace(&t, req, name, Part::Status),
        (&Method::PATCH, Some(name), Some("status")) => patch(&t, req, name, Part::Status),
        (&Method::GET, Some(name), Some("scale")) => get_scale(&t, name),
        (&Method::PUT, Some(name), Some("scale")) => put_scale(&t, req, name),
        (&Method::PATCH, Some(name), Some("scale")) => patch_scale(&t, req, name),
        (&Method::GET, Some(name), Some("log")) => log(&t, req, name),
        (&Method::PUT, Some(name), Some("finalize")) => finalize(&t, req, name),
        _ => Err(not_allowed()),
    }
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::not_found(&t.r().qualified_plural(), name)
}

/// JSON bodies only (protobuf clients get 415, like typed `kubectl create configmap`).
fn require_json(req: &Request) -> Result<(), ApiError> {
    let ct = req.header(header::CONTENT_TYPE);
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media.is_empty() || media == "application/json" || media == "*/*" {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(ct))
    }
}

/// The twin does not simulate dry runs; refusing beats silently writing.
fn refuse_dry_run(req: &Request) -> Result<(), ApiError> {
    match req.query("dryRun") {
        Some(v) if !v.is_empty() => Err(ApiError::bad_request("dryRun is not supported by this API server")),
        _ => Ok(()),
    }
}

fn body_object(req: &Request) -> Result<Value, ApiError> {
    match req.json()? {
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(ApiError::bad_request("the request body must be a JSON object")),
        None => Err(ApiError::bad_request("the request body is empty")),
    }
}

fn selectors(t: &Target, req: &Request) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(req.query("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(req.query("fieldSelector").unwrap_or_default(), &t.r().plural)?;
    Ok((labels, fields))
}

fn table_mode(req: &Request) -> Option<IncludeObject> {
    table::wants_table(req.header(header::ACCEPT)).then(|| IncludeObject::parse(req.query("includeObject")))
}

fn list(t: &Target, req: &Request) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(t, req)?;
    let (items, rv) = t.store.list_matching(t.r(), t.ns(), &labels, &fields)?;
    if let Some(include) = table_mode(req) {
        return Ok(server::json(StatusCode::OK, &table::table(t.r(), &items, rv, include)));
    }
    let list = json!({"apiVersion": t.r().api_version(), "kind": format!("{}List", t.r().kind),
                      "metadata": {"resourceVersion": rv.to_string()}, "items": items});
    Ok(server::json(StatusCode::OK, &list))
}

fn watch(t: &Target, req: &Request, name: Option<&str>) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(t, req)?;
    if let Some(name) = name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"), &t.r().plural)?;
    }
    let start = if req.flag("sendInitialEvents") {
        WatchStart::Now
    } else {
        match req.query("resourceVersion") {
            None | Some("") | Some("0") => WatchStart::Now,
            Some(rv) => WatchStart::After(
                rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            ),
        }
    };
    let timeout = req.query("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
    let request = WatchRequest {
        resource: t.r().clone(),
        namespace: t.ns.clone(),
        labels,
        fields,
        start,
        bookmarks: req.flag("allowWatchBookmarks"),
        send_initial_events: req.flag("sendInitialEvents"),
        timeout,
        table: table_mode(req),
    };
    let lines = watch::stream(t.store, request);
    Ok(server::respond(StatusCode::OK, "application/json", server::stream_body(lines)))
}

fn get(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    let obj = t.store.get(t.r(), t.ns(), name).ok_or_else(|| not_found(t, name))?;
    if let Some(include) = table_mode(req) {
        return Ok(server::json(StatusCode::OK, &table::table(t.r(), &[obj], t.store.resource_version(), include)));
    }
    Ok(server::json(StatusCode::OK, &obj))
}

fn create(t: &Target, req: &Request) -> Result<Response, ApiError> {
    require_json(req)?;
    refuse_dry_run(req)?;
    let obj = body_object(req)?;
    let created = t.store.create(t.r(), t.ns(), obj)?;
    Ok(server::json(StatusCode::CREATED, &created))
}

fn replace(t: &Target, req: &Request, name: &str, part: Part) -> Result<Response, ApiError> {
    require_json(req)?;
    refuse_dry_run(req)?;
    let obj = body_object(req)?;
    let updated = t.store.replace(t.r(), t.ns(), name, obj, part)?;
    Ok(server::json(StatusCode::OK, &updated))
}

fn patch(t: &Target, req: &Request, name: &str, part: Part) -> Result<Response, ApiError> {
    refuse_dry_run(req)?;
    let ct = req.header(header::CONTENT_TYPE);
    let kind = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    if kind == PatchType::StrategicMerge && !t.info.builtin {
        // Custom resources have no patch strategies; real servers refuse the same way.
        return Err(ApiError::new(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
    }
    let body = req.json()?.ok_or_else(|| ApiError::bad_request("the patch is empty"))?;
    if kind == PatchType::Apply {
        if req.query("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "PatchOptions.meta.k8s.io",
                "",
                vec![FieldCause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ));
        }
        let (obj, created) = t.store.apply(t.r(), t.ns(), name, part, body)?;
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        return Ok(server::json(status, &obj));
    }
    let kind_name = t.r().kind.clone();
    let updated = t.store.modify(t.r(), t.ns(), name, part, |current| match kind {
        PatchType::Merge => Ok(patch::merge_patch(current, &body)),
        PatchType::Json => patch::json_patch(current, &body),
        PatchType::StrategicMerge | PatchType::Apply => patch::strategic_merge(current, &body, &kind_name),
    })?;
    Ok(server::json(StatusCode::OK, &updated))
}

fn delete_options(req: &Request) -> Result<DeleteOptions, ApiError> {
    let body = req.json()?.unwrap_or(Value::Null);
    let policy = body.get("propagationPolicy").and_then(Value::as_str).or(req.query("propagationPolicy"));
    let propagation = match policy {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => return Err(ApiError::bad_request(format!("unknown propagationPolicy {other:?}"))),
    };
    let orphan = body.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let pre = |k: &str| body.pointer(&format!("/preconditions/{k}")).and_then(Value::as_str).map(String::from);
    Ok(DeleteOptions {
        propagation: if orphan { Propagation::Orphan } else { propagation },
        precondition_uid: pre("uid"),
        precondition_resource_version: pre("resourceVersion"),
    })
}

fn delete(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    refuse_dry_run(req)?;
    let opts = delete_options(req)?;
    let obj = t.store.delete_with(t.r(), t.ns(), name, &opts)?;
    Ok(server::json(StatusCode::OK, &obj))
}

fn delete_collection(t: &Target, req: &Request) -> Result<Response, ApiError> {
    refuse_dry_run(req)?;
    let opts = delete_options(req)?;
    let (labels, fields) = selectors(t, req)?;
    let (items, _) = t.store.list_matching(t.r(), t.ns(), &labels, &fields)?;
    let mut deleted = Vec::new();
    for item in items {
        let ns = crate::object::namespace(&item).map(String::from);
        match t.store.delete_with(t.r(), ns.as_deref(), crate::object::name(&item), &opts) {
            Ok(obj) => deleted.push(obj),
            // Gone in between (e.g. garbage-collected with its owner): nothing to do.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({"apiVersion": t.r().api_version(), "kind": format!("{}List", t.r().kind),
                      "metadata": {"resourceVersion": t.store.resource_version().to_string()}, "items": deleted});
    Ok(server::json(StatusCode::OK, &list))
}

fn get_scale(t: &Target, name: &str) -> Result<Response, ApiError> {
    let obj = t.store.get(t.r(), t.ns(), name).ok_or_else(|| not_found(t, name))?;
    Ok(server::json(StatusCode::OK, &scale::to_scale(&obj)))
}

fn put_scale(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    // kubectl's scale PUT may come without a Content-Type: the body is JSON regardless.
    let body = body_object(req)?;
    let plural = t.r().qualified_plural();
    let updated = t.store.modify(t.r(), t.ns(), name, Part::Main, |current| {
        let want = crate::object::meta_str(&body, "resourceVersion").filter(|s| !s.is_empty());
        if want.is_some_and(|w| Some(w) != crate::object::meta_str(current, "resourceVersion")) {
            return Err(ApiError::conflict(&plural, name));
        }
        scale::apply_scale(current, &body)
    })?;
    Ok(server::json(StatusCode::OK, &scale::to_scale(&updated)))
}

fn patch_scale(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    let ct = req.header(header::CONTENT_TYPE);
    let kind = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let body = req.json()?.ok_or_else(|| ApiError::bad_request("the patch is empty"))?;
    let updated = t.store.modify(t.r(), t.ns(), name, Part::Main, |current| {
        let view = scale::to_scale(current);
        let patched = match kind {
            PatchType::Json => patch::json_patch(&view, &body)?,
            // A Scale has no lists: every other flavour is a merge.
            _ => patch::merge_patch(&view, &body),
        };
        scale::apply_scale(current, &patched)
    })?;
    Ok(server::json(StatusCode::OK, &scale::to_scale(&updated)))
}

/// Pod logs: what the pod's containers wrote (`logs.rs`).
fn log(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    let pod = t.store.get(t.r(), t.ns(), name).ok_or_else(|| not_found(t, name))?;
    crate::logs::serve(t.store, &pod, name, req)
}

/// `namespaces/<name>/finalize`: only `spec.finalizers` changes.
fn finalize(t: &Target, req: &Request, name: &str) -> Result<Response, ApiError> {
    let body = body_object(req)?;
    let updated = t.store.modify(t.r(), t.ns(), name, Part::Main, |current| {
        let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
        let mut next = current.clone();
        if let Some(map) = next.as_object_mut() {
            map.insert("spec".into(), json!({"finalizers": finalizers}));
        }
        Ok(next)
    })?;
    Ok(server::json(StatusCode::OK, &updated))
}
