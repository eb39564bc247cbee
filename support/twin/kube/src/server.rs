//! The HTTPS front: a TLS listener on 127.0.0.1, HTTP/1.1 connections (with
//! upgrades, for exec), bearer-token authentication, and dispatch to discovery
//! or the resource API. Every error is a `Status` object.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::authz::{self, Attributes, UserInfo};
use crate::discovery;
use crate::error::ApiError;
use crate::exec::{ExecHandler, ExecState};
use crate::route::{self, Route};
use crate::store::Store;

/// Decides who a bearer token is, if anyone, in this cluster.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate(&self, bearer_token: &str) -> Option<UserInfo>;
}

/// Any `Fn(&str) -> bool` is an authenticator whose tokens are a cluster
/// administrator's (in `system:masters`).
impl<F: Fn(&str) -> bool + Send + Sync + 'static> Authenticator for F {
    fn authenticate(&self, bearer_token: &str) -> Option<UserInfo> {
        self(bearer_token).then(|| UserInfo::admin("kubernetes-admin"))
    }
}

/// What `/version` reports, and the faults the server injects.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiServerConfig {
    /// The `minor` field. The gcloud kubectl dispatcher on this machine picks
    /// its client by it: "32" (or anything it has no binary for) runs kubectl
    /// 1.32, "28+" would run kubectl 1.28, which has no WebSocket exec.
    pub version_minor: String,
    /// What the cluster says it is, e.g. `v1.28.15-eks-7f9249a`.
    pub git_version: String,
    pub platform: String,
    /// Errors, latency and cut connections at a rate (none by default).
    pub faults: crate::faults::ApiFaults,
}

impl ApiServerConfig {
    /// An EKS cluster of Kubernetes `1.<minor>`: `gitVersion` `v1.<minor>.15-eks-7f9249a`,
    /// `minor` "32" so that kubectl 1.32 (the reference client) is the one dispatched.
    pub fn eks(minor: u32) -> Self {
        ApiServerConfig {
            version_minor: "32".into(),
            git_version: format!("v1.{minor}.15-eks-7f9249a"),
            platform: "linux/amd64".into(),
            faults: Default::default(),
        }
    }
}

impl Default for ApiServerConfig {
    /// The seed's clusters: EKS 1.28.
    fn default() -> Self {
        Self::eks(28)
    }
}

/// A running API server; dropping it (or [`ApiServer::shutdown`]) stops it.
pub struct ApiServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    ctx: Arc<Ctx>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("url", &self.url).finish_non_exhaustive()
    }
}

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;
pub(crate) type Response = http::Response<Body>;

/// Largest request body accepted (Kubernetes' own limit is 3 MiB per object).
const MAX_BODY: usize = 16 * 1024 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Ctx {
    pub store: Arc<Store>,
    pub auth: Arc<dyn Authenticator>,
    pub cfg: ApiServerConfig,
    /// `127.0.0.1:PORT`, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
    pub exec: ExecState,
}

impl ApiServer {
    pub async fn start(
        store: Arc<Store>,
        tls: Arc<rustls::ServerConfig>,
        auth: Arc<dyn Authenticator>,
        cfg: ApiServerConfig,
    ) -> anyhow::Result<ApiServer> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), store, tls, auth, cfg).await
    }

    /// As [`ApiServer::start`], listening on `bind` (e.g. a K3s stand-in's
    /// `--bind-address`:`--https-listen-port`).
    pub async fn start_at(
        bind: SocketAddr,
        store: Arc<Store>,
        tls: Arc<rustls::ServerConfig>,
        auth: Arc<dyn Authenticator>,
        cfg: ApiServerConfig,
    ) -> anyhow::Result<ApiServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let ctx =
            Arc::new(Ctx { store: store.clone(), auth, cfg, address: addr.to_string(), exec: ExecState::default() });
        let acceptor = TlsAcceptor::from(tls);
        let task = tokio::spawn(accept_loop(listener, acceptor, ctx.clone()));
        Ok(ApiServer { url: format!("https://{addr}"), addr, store, ctx, task })
    }

    /// Installs (or replaces) what `pods/exec` runs. Until one is installed, exec
    /// answers a 500 Status (as a real server that cannot reach the kubelet).
    /// Takes effect for the next exec request.
    pub fn set_exec_handler(&self, handler: Arc<dyn ExecHandler>) {
        self.ctx.exec.set_handler(handler);
    }

    /// Stops accepting and closes every open connection (watches and execs included).
    pub fn shutdown(&self) {
        self.task.abort();
        self.ctx.exec.abort_sessions();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ctx: Arc<Ctx>) {
    // Connections live in the set, so aborting this task drops (aborts) them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else { return };
                    // rustls verified the chain against the client CA, if one is configured.
                    let cert_user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| certificate_user(c));
                    let service = hyper::service::service_fn(move |req| {
                        let (ctx, cert_user) = (ctx.clone(), cert_user.clone());
                        async move { with_faults(ctx, cert_user, req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).with_upgrades().await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A parsed request, body read.
pub(crate) struct Request {
    /// Who asks (after impersonation).
    pub user: UserInfo,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// The first value of a query parameter (`?&a=b` and `+` for space are fine).
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.query(key), Some("true") | Some("1"))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The body as JSON; an empty body is `None`.
    pub fn json(&self) -> Result<Option<Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
    }
}

pub(crate) fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().filter(|(k, _)| !k.is_empty()).collect())
        .unwrap_or_default()
}

/// The user a request acts as: its own, or the one its `Impersonate-User`
/// and `Impersonate-Group` headers name when it may impersonate them
/// (k8s.io/apiserver pkg/endpoints/filters/impersonation.go: `impersonate` on
/// `users`, `groups` or the service account; a service account's user gets
/// its groups; everyone but system:anonymous is in system:authenticated).
fn impersonate(ctx: &Ctx, user: UserInfo, headers: &http::HeaderMap) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    };
    let (users, groups) = (values("impersonate-user"), values("impersonate-group"));
    if users.is_empty() {
        if groups.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::internal("requested impersonation of groups without impersonating a user"));
    }
    let name = users[0].clone();
    let may = |attrs: authz::ResourceAttributes| {
        let attrs = Attributes::resource("impersonate", attrs);
        let d = authz::authorize(&ctx.store, &user, &attrs);
        if d.allowed {
            Ok(())
        } else {
            Err(authz::forbidden(&user, &attrs, &d.reason))
        }
    };
    let mut target = match UserInfo::service_account_parts(&name) {
        Some((ns, sa)) => {
            may(authz::ResourceAttributes {
                resource: "serviceaccounts".into(),
                namespace: ns.into(),
                name: sa.into(),
                ..Default::default()
            })?;
            UserInfo::service_account(ns, sa)
        }
        None => {
            may(authz::ResourceAttributes { resource: "users".into(), name: name.clone(), ..Default::default() })?;
            UserInfo::new(&name, &[])
        }
    };
    for g in groups {
        may(authz::ResourceAttributes { resource: "groups".into(), name: g.clone(), ..Default::default() })?;
        if !target.groups.contains(&g) {
            target.groups.push(g);
        }
    }
    if target.name != authz::ANONYMOUS && !target.groups.iter().any(|g| g == authz::AUTHENTICATED) {
        target.groups.push(authz::AUTHENTICATED.into());
    }
    Ok(target)
}

/// The user a verified client certificate stands for: CN is the name, each
/// O a group (k8s.io/apiserver pkg/authentication/request/x509
/// CommonNameUserConversion), plus system:authenticated as every
/// authenticated user gets (pkg/authentication/group AuthenticatedGroupAdder).
/// A certificate without a CN authenticates no one.
pub fn certificate_user(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_owned).collect();
    if !groups.iter().any(|g| g == authz::AUTHENTICATED) {
        groups.push(authz::AUTHENTICATED.into());
    }
    Some(UserInfo { name, uid: String::new(), groups })
}

/// Who a request is: its client certificate's user first, then its bearer
/// token (kube-apiserver's union authenticator tries x509 before tokens;
/// k8s.io/kubernetes pkg/kubeapiserver/authenticator/config.go). `Err`: a
/// token nobody accepts.
fn authenticate(ctx: &Ctx, cert_user: Option<UserInfo>, headers: &http::HeaderMap) -> Result<UserInfo, ()> {
    if let Some(user) = cert_user {
        return Ok(user);
    }
    match bearer_token(headers) {
        Some(token) => ctx.auth.authenticate(token).ok_or(()),
        None => Ok(UserInfo::anonymous()),
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A connection closed on purpose, before any answer (an injected fault):
/// hyper closes a connection whose service fails.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped (injected fault)")
    }
}

impl std::error::Error for Dropped {}

/// The request, met by an injected fault at the configured rate (after
/// authentication, as the apiserver's filters run after it).
async fn with_faults(
    ctx: Arc<Ctx>,
    cert_user: Option<UserInfo>,
    req: http::Request<Incoming>,
) -> Result<Response, Dropped> {
    use crate::faults::Fault;
    let faults = ctx.cfg.faults;
    let authenticated =
        cert_user.is_some() || bearer_token(req.headers()).is_some_and(|t| ctx.auth.authenticate(t).is_some());
    if faults.rate() <= 0.0 || !authenticated {
        return Ok(handle(ctx, cert_user, req).await);
    }
    let read = req.method() == Method::GET;
    let route = route::parse(req.uri().path(), &ctx.store.catalog());
    let query = query_pairs(req.uri());
    let watch = matches!(&route, Route::Resource(p) if p.watch)
        || query.iter().any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let fault = match faults.pick(read, watch) {
        // Only requests that reach storage can time out in it.
        Some(Fault::StorageTimeout) if !matches!(route, Route::Resource(_)) => Some(Fault::ShuttingDown),
        other => other,
    };
    let retry_after = |mut r: Response, seconds: u32| {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        r
    };
    match fault {
        None => Ok(handle(ctx, cert_user, req).await),
        Some(Fault::Dropped) => Err(Dropped),
        Some(Fault::TooManyRequests) => {
            Ok(retry_after(text(StatusCode::TOO_MANY_REQUESTS, "Too many requests, please try again later.\n"), 1))
        }
        Some(Fault::ShuttingDown) => {
            Ok(retry_after(error(&ApiError::new(503, "ServiceUnavailable", "apiserver is shutting down")), 1))
        }
        Some(Fault::StorageTimeout) => {
            let (op, resource) = match &route {
                Route::Resource(p) => (storage_op(req.method(), p.name.is_some()), p.plural.clone()),
                _ => ("get", String::new()),
            };
            let mut e = ApiError::new(
                500,
                "ServerTimeout",
                format!("The {op} operation against {resource} could not be completed at this time, please try again."),
            );
            e.details = Some(serde_json::json!({"name": op, "kind": resource, "retryAfterSeconds": 2}));
            Ok(retry_after(error(&e), 2))
        }
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            Ok(handle(ctx, cert_user, req).await)
        }
        Some(Fault::WatchEndsEarly(after)) => {
            use futures::StreamExt;
            let resp = handle(ctx, cert_user, req).await;
            let (parts, body) = resp.into_parts();
            let cut =
                body.into_data_stream().take_until(tokio::time::sleep(after)).filter_map(|b| async move { b.ok() });
            Ok(http::Response::from_parts(parts, stream_body(cut)))
        }
    }
}

/// The storage operation a request is (apiserver's registry names them so).
fn storage_op(method: &Method, named: bool) -> &'static str {
    match *method {
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
}

async fn handle(ctx: Arc<Ctx>, cert_user: Option<UserInfo>, req: http::Request<Incoming>) -> Response {
    let catalog = ctx.store.catalog();
    let route = route::parse(req.uri().path(), &catalog);
    tracing::debug!(method = %req.method(), path = %req.uri().path(), "request");
    let Ok(user) = authenticate(&ctx, cert_user, req.headers()) else {
        return error(&ApiError::unauthorized());
    };
    let user = match impersonate(&ctx, user, req.headers()) {
        Ok(user) => user,
        Err(e) => return error(&e),
    };
    let query = query_pairs(req.uri());
    let watch_query = query.iter().any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let attrs = Attributes::of_request(req.method(), req.uri().path(), &route, watch_query);
    let decision = authz::authorize(&ctx.store, &user, &attrs);
    if !decision.allowed {
        return error(&authz::forbidden(&user, &attrs, &decision.reason));
    }
    if let Route::Resource(path) = &route {
        if matches!(path.subresource.as_deref(), Some("exec" | "attach" | "portforward")) {
            return upgrade_route(&ctx, req, path).await;
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return error(&ApiError::too_large())
        }
        Err(_) => return error(&ApiError::bad_request("could not read the request body")),
    };
    let request = Request { user, method: parts.method, query, headers: parts.headers, body };
    match route {
        Route::Resource(path) => crate::api::handle(&ctx, &request, path).await,
        _ if request.method != Method::GET => {
            error(&ApiError::method_not_allowed("the server does not allow this method on the requested resource"))
        }
        Route::Version => {
            json(StatusCode::OK, &discovery::version(&ctx.cfg.version_minor, &ctx.cfg.git_version, &ctx.cfg.platform))
        }
        Route::Health => text(StatusCode::OK, "ok"),
        Route::CoreVersions if discovery::wants_aggregated(request.header(header::ACCEPT)) => {
            aggregated(&discovery::aggregated(&catalog, true))
        }
        Route::CoreVersions => json(StatusCode::OK, &discovery::api_versions(&ctx.address)),
        Route::Groups if discovery::wants_aggregated(request.header(header::ACCEPT)) => {
            aggregated(&discovery::aggregated(&catalog, false))
        }
        Route::Groups => json(StatusCode::OK, &discovery::api_group_list(&catalog)),
        Route::Group(group) => found(discovery::api_group(&catalog, &group)),
        Route::ResourceList { group, version } => found(discovery::api_resource_list(&catalog, &group, &version)),
        Route::OpenApiV2 | Route::NotFound => error(&ApiError::no_route()),
        Route::OpenApiV3Root => json(StatusCode::OK, &discovery::openapi_v3_root(&catalog)),
        Route::OpenApiV3(key) => found(discovery::openapi_v3_by_key(&catalog, &key)),
    }
}

/// exec, attach and port-forward need a connection upgrade (WebSocket); the
/// request is passed on unread so that the upgrade handler can take it over.
/// Only exec is served.
async fn upgrade_route(ctx: &Ctx, req: http::Request<Incoming>, path: &route::ResourcePath) -> Response {
    let Some(name) = path.name.as_deref() else {
        return error(&ApiError::no_route());
    };
    if path.plural != "pods" || !path.group.is_empty() {
        return error(&ApiError::no_route());
    }
    if path.subresource.as_deref() == Some("exec") {
        return crate::exec::handle(ctx, req, path).await;
    }
    if ctx.store.get(&crate::Resource::pods(), path.namespace.as_deref(), name).is_none() {
        return error(&ApiError::not_found("pods", name));
    }
    error(&ApiError::bad_request(format!(
        "pods/{} is not supported by this API server",
        path.subresource.as_deref().unwrap_or_default()
    )))
}

fn found(doc: Option<Value>) -> Response {
    match doc {
        Some(doc) => json(StatusCode::OK, &doc),
        None => error(&ApiError::no_route()),
    }
}

/// The body of a 101 answer.
pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

pub(crate) fn full_body(bytes: impl Into<Bytes>) -> Body {
    full(bytes)
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp
}

pub(crate) fn json(status: StatusCode, v: &Value) -> Response {
    respond(status, "application/json", full(v.to_string()))
}

fn aggregated(v: &Value) -> Response {
    respond(StatusCode::OK, discovery::AGGREGATED_CONTENT_TYPE, full(v.to_string()))
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response {
    respond(status, "text/plain; charset=utf-8", full(body.to_string()))
}

pub(crate) fn error(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &e.to_status())
}

pub(crate) fn stream_body(lines: impl futures::Stream<Item = Bytes> + Send + 'static) -> Body {
    use futures::StreamExt;
    http_body_util::StreamBody::new(lines.map(|b| Ok::<_, Infallible>(hyper::body::Frame::data(b)))).boxed_unsync()
}
