//! The resource API: list, watch, get, create, replace, the four patch types,
//! delete and deletecollection, and the status, scale and log subresources.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, Expected, Output};
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
    let output = match negotiate(ctx, req, &path) {
        Ok(output) => output,
        Err(e) => return server::error(&e),
    };
    let resp = match dispatch(ctx, req, path) {
        Ok(resp) => resp,
        Err(e) => server::error(&e),
    };
    match output {
        Output::Protobuf => body::encode_answer(resp).await,
        Output::Json => resp,
    }
}

/// The answer's encoding (JSON, or protobuf for built-in kinds when the client
/// prefers it). Watch streams and logs are answered as before, in JSON and text.
fn negotiate(ctx: &Ctx, req: &Request, path: &ResourcePath) -> Result<Output, ApiError> {
    if path.watch || req.flag("watch") || path.subresource.as_deref() == Some("log") {
        return Ok(Output::Json);
    }
    let Some(info) = ctx.store.lookup(&path.group, &path.version, &path.plural) else {
        return Ok(Output::Json);
    };
    let api_version = url_api_version(path);
    let expected = match path.subresource.as_deref() {
        Some("scale") => SCALE,
        _ => Expected { api_version: &api_version, kind: &info.resource.kind },
    };
    body::output(req.header(header::ACCEPT), &expected)
}

/// autoscaling/v1 Scale, the body and answer of `<kind>/scale`.
const SCALE: Expected<'static> = Expected { api_version: "autoscaling/v1", kind: "Scale" };

/// The group version the URL names (a kind may be served at several).
fn url_api_version(path: &ResourcePath) -> String {
    if path.group.is_empty() {
        path.version.clone()
    } else {
        format!("{}/{}", path.group, path.version)
    }
}

/// The resolved target of a request.
struct Target<'a> {
    store: &'a Arc<Store>,
    info: ResourceInfo,
    ns: Option<String>,
    /// The group version of the URL.
    api_version: String,
}

impl Target<'_> {
    /// What a body sent to this URL must be.
    fn expected(&self) -> Expected<'_> {
        Expected { api_version: &self.api_version, kind: &self.info.resource.kind }
    }

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
    let t = Target { store: &ctx.store, info, ns: path.namespace.clone(), api_version: url_api_version(&path) };
    let verb_allowed = |verb: &str| t.info.verbs.iter().any(|v| v == verb);
    let not_allowed =
        || ApiError::method_not_allowed("the server does not allow this method on the requested resource");
    let item_needs_ns = t.r().namespaced && t.ns.is_none();
    match (&req.method, path.name.as_deref(), path.subresource.as_deref()) {
        (&Method::GET, None, None) if path.watch || req.flag("watch") => watch(&t, req, None),
        // The legacy `/watch/.../<plural>/<name>` form: a watch of one object.
        (&Method::GET, Some(name), None) if path.watch => watch(&t, req, Some(name)),
        (&Method::GET, None, None) => list(&t, req),
        (&Method::POST, None, None) if is_review(&t.info) && !item_needs_ns => {
            crate::reviews::create(ctx, &req.user, &t.info, t.ns(), body::object(req, t.expected())?)
        }
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

/// The review kinds are answered, not stored.
fn is_review(info: &ResourceInfo) -> bool {
    use crate::resources::{AUTHENTICATION_GROUP, AUTHORIZATION_GROUP};
    let g = info.resource.group.as_str();
    (g == AUTHORIZATION_GROUP || g == AUTHENTICATION_GROUP) && info.resource.plural.ends_with("reviews")
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::not_found(&t.r().qualified_plural(), name)
}

/// The twin does not simulate dry runs; refusing beats silently writing.
fn refuse_dry_run(req: &Request) -> Result<(), ApiError> {
    match req.query("dryRun") {
        Some(v) if !v.is_empty() => Err(ApiError::bad_request("dryRun is not supported by this API server")),
        _ => Ok(()),
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
    refuse_dry_run(req)?;
    let obj = body::object(req, t.expected())?;
    let created = t.store.create(t.r(), t.ns(), obj)?;
    Ok(server::json(StatusCode::CREATED, &created))
}

fn replace(t: &Target, req: &Request, name: &str, part: Part) -> Result<Response, ApiError> {
    refuse_dry_run(req)?;
    let obj = body::object(req, t.expected())?;
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

/// meta/v1 DeleteOptions, the body of a delete (protobuf from typed clients).
const DELETE_OPTIONS: Expected<'static> = Expected { api_version: "meta.k8s.io/v1", kind: "DeleteOptions" };

fn delete_options(req: &Request) -> Result<DeleteOptions, ApiError> {
    let body = body::optional_object(req, DELETE_OPTIONS)?.unwrap_or(Value::Null);
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
    // kubectl's scale PUT may come without a Content-Type, which means JSON.
    let body = body::object(req, SCALE)?;
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
    let body = body::object(req, t.expected())?;
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
