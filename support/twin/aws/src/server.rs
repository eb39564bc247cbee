//! The HTTP endpoint. One port serves every service: a request is routed by
//! the service name in its SigV4 credential scope (Authorization header, or
//! `X-Amz-Credential` for a presigned URL), authenticated, then handed to the
//! service with its protocol's envelope and error format.

use crate::auth::{AuthFailure, AuthHeader, Presigned, SignedRequest};
use crate::eks::{self, EksRequest};
use crate::error::AwsError;
use crate::query::Params;
use crate::state::AwsState;
use crate::xml::{ec2_error, query_error, ELB_NS, STS_NS};
use crate::{ec2, elbv2, names, sts};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The longest validity a presigned URL may ask for (one week).
const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;

/// Request bodies beyond this are refused (the APIs' own limits are far lower).
const MAX_BODY: usize = 4 << 20;

/// A running endpoint; dropping it (or `shutdown`) stops it and its connections.
pub struct AwsServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl AwsServer {
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for AwsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `state` on 127.0.0.1 at a free port.
pub async fn serve(state: AwsState) -> anyhow::Result<AwsServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    state.add_own_host(format!("127.0.0.1:{}", addr.port()));
    state.add_own_host(format!("localhost:{}", addr.port()));
    let task = tokio::spawn(accept(listener, state));
    Ok(AwsServer { url: format!("http://{addr}"), addr, task })
}

async fn accept(listener: TcpListener, state: AwsState) {
    // Connections live in the set so that aborting this task closes them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { handle(state, req).await }
                        });
                        if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                            tracing::debug!(error = %e, "aws endpoint connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "aws endpoint accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The services behind the endpoint, with their wire protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Ec2,
    Elb,
    Sts { json: bool },
    Eks,
    Unknown,
}

impl Service {
    fn from_scope(name: &str, json: bool) -> Service {
        match name {
            "ec2" => Service::Ec2,
            "elasticloadbalancing" => Service::Elb,
            "sts" => Service::Sts { json },
            "eks" => Service::Eks,
            _ => Service::Unknown,
        }
    }

    /// For unauthenticated requests: the path (EKS) or the API version.
    fn guess(path: &str, params: &Params, json: bool) -> Service {
        if path.starts_with("/clusters") {
            return Service::Eks;
        }
        match params.get("Version") {
            Some("2016-11-15") => Service::Ec2,
            Some("2015-12-01") => Service::Elb,
            _ => Service::Sts { json },
        }
    }

    fn auth_error(self, failure: &AuthFailure) -> AwsError {
        const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
        const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
        let detail = |base: &str| match failure {
            AuthFailure::BadSignature(why) if !why.is_empty() => format!("{base} ({why})"),
            _ => base.to_string(),
        };
        match (self, failure) {
            (Service::Ec2, _) => {
                AwsError::new(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
            }
            (Service::Eks, AuthFailure::Missing) => {
                AwsError::new(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
            }
            (Service::Eks, AuthFailure::UnknownKey) => AwsError::new(403, "UnrecognizedClientException", INVALID_TOKEN),
            (_, AuthFailure::Missing) => {
                AwsError::new(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
            }
            (_, AuthFailure::UnknownKey) => AwsError::new(403, "InvalidClientTokenId", INVALID_TOKEN),
            (_, AuthFailure::BadSignature(_)) => AwsError::new(403, "SignatureDoesNotMatch", detail(MISMATCH)),
        }
    }
}

/// The body and content type of a successful answer.
struct Answer {
    status: u16,
    body: String,
    content_type: &'static str,
}

/// A connection closed on purpose before any answer (an injected fault).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped (injected fault)")
    }
}

impl std::error::Error for Dropped {}

/// How a request ended before reaching its service.
enum Refusal {
    Error(Service, AwsError),
    Dropped,
}

impl From<(Service, AwsError)> for Refusal {
    fn from((s, e): (Service, AwsError)) -> Self {
        Refusal::Error(s, e)
    }
}

async fn handle(state: AwsState, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let request_id = names::request_id();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(respond(&request_id, 413, "text/plain", "request body too large".into(), None));
        }
    };
    let json_wanted = parts
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let result = route(&state, &parts.method, &parts.uri, &parts.headers, &body, json_wanted, &request_id).await;
    let response = match result {
        Ok(answer) => respond(&request_id, answer.status, answer.content_type, answer.body, None),
        Err(Refusal::Error(service, err)) => error_response(service, &err, &request_id),
        Err(Refusal::Dropped) => return Err(Dropped),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), request_id = %request_id, "aws endpoint");
    Ok(response)
}

async fn route(
    state: &AwsState,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
    json_wanted: bool,
    request_id: &str,
) -> Result<Answer, Refusal> {
    let path = uri.path();
    let raw_query = uri.query().unwrap_or_default();
    // Query-protocol parameters come in the form body (POST) or the query (GET).
    let params = if method == Method::POST && !path.starts_with("/clusters") {
        Params::parse(body)
    } else {
        Params::parse(raw_query.as_bytes())
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").unwrap_or_default().to_string();
    let origin = format!("http://{host}");
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");

    let (service, access_key_id) = if let Some(value) = header("authorization") {
        let guessed = Service::guess(path, &params, json_wanted);
        let auth = AuthHeader::parse(value).ok_or_else(|| {
            (guessed, guessed.auth_error(&AuthFailure::BadSignature("malformed Authorization header".into())))
        })?;
        let service = Service::from_scope(&auth.scope.service, json_wanted);
        let signed = signed_values(headers, &auth.signed_headers);
        let req = SignedRequest { method: method.as_str(), origin: &origin, path_and_query, headers: &signed, body };
        crate::auth::verify_header(&auth, &req, header("x-amz-date"), |k| state.secret_of(k))
            .map_err(|f| (service, service.auth_error(&f)))?;
        check_region(state, service, &auth.scope.region)?;
        (service, auth.scope.access_key_id)
    } else if params.get("X-Amz-Credential").is_some() {
        let guessed = Service::guess(path, &params, json_wanted);
        let presigned = Presigned::parse(raw_query)
            .map_err(|why| (guessed, guessed.auth_error(&AuthFailure::BadSignature(why))))?;
        let service = Service::from_scope(&presigned.scope.service, json_wanted);
        let fail = |f: AuthFailure| (service, service.auth_error(&f));
        let secret = state.secret_of(&presigned.scope.access_key_id).ok_or_else(|| fail(AuthFailure::UnknownKey))?;
        // STS honours the 15-minute token lifetime rather than X-Amz-Expires
        // (that is what makes EKS tokens last 15 minutes); others honour X-Amz-Expires.
        let now = SystemTime::now();
        let time_ok = match service {
            Service::Sts { .. } => sts::check_token_time(presigned.time, now),
            _ => match presigned.time.checked_add(Duration::from_secs(presigned.expires)) {
                _ if presigned.expires > MAX_PRESIGN_EXPIRES => {
                    Err("X-Amz-Expires must be less than a week (in seconds) that is 604800".to_string())
                }
                Some(until) if now <= until => Ok(()),
                _ => Err("Request has expired".to_string()),
            },
        };
        time_ok.map_err(|why| fail(AuthFailure::BadSignature(why)))?;
        let signed = signed_values(headers, &presigned.signed_headers);
        presigned
            .verify(method.as_str(), &origin, path, &signed, &secret)
            .map_err(|why| fail(AuthFailure::BadSignature(why)))?;
        check_region(state, service, &presigned.scope.region)?;
        (service, presigned.scope.access_key_id.clone())
    } else {
        let service = Service::guess(path, &params, json_wanted);
        return Err((service, service.auth_error(&AuthFailure::Missing)).into());
    };

    // Throttling and outages come after authentication, as AWS answers them.
    let family = match service {
        Service::Ec2 => crate::faults::Family::Ec2,
        Service::Eks => crate::faults::Family::Eks,
        _ => crate::faults::Family::Query,
    };
    match state.config().faults.pick(family) {
        None => {}
        Some(crate::faults::Fault::Error(e)) => return Err((service, e).into()),
        Some(crate::faults::Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(crate::faults::Fault::Dropped) => return Err(Refusal::Dropped),
    }

    let xml = |body: String| Answer { status: 200, body, content_type: "text/xml" };
    match service {
        Service::Ec2 => {
            state.with_model(|m| ec2::handle(m, &params, request_id)).map(xml).map_err(|e| (service, e).into())
        }
        Service::Elb => {
            state.with_model(|m| elbv2::handle(m, &params, request_id)).map(xml).map_err(|e| (service, e).into())
        }
        Service::Sts { json } => {
            let identity = state.identity_of(&access_key_id);
            let (body, content_type) = sts::handle(&params, &identity, request_id, json).map_err(|e| (service, e))?;
            Ok(Answer { status: 200, body, content_type })
        }
        Service::Eks => {
            let req = EksRequest { method: method.as_str(), path, query: raw_query, body };
            let (status, value) = eks::handle(state, req).await.map_err(|e| (service, e))?;
            Ok(Answer { status, body: value.to_string(), content_type: "application/json" })
        }
        Service::Unknown => Err((
            service,
            AwsError::bad("UnknownService", "This endpoint serves ec2, elasticloadbalancing, eks and sts"),
        )
            .into()),
    }
}

/// The values of the headers a client signed (every value of a repeated one).
fn signed_values(headers: &HeaderMap, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .flat_map(|name| {
            headers
                .get_all(name.as_str())
                .iter()
                .map(move |v| (name.clone(), v.to_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// Requests must be signed for the twin's region (STS also accepts its
/// global endpoint's us-east-1 scope).
fn check_region(state: &AwsState, service: Service, region: &str) -> Result<(), (Service, AwsError)> {
    let expected = &state.config().region;
    let global_sts = matches!(service, Service::Sts { .. }) && region == "us-east-1";
    if region == expected || global_sts {
        return Ok(());
    }
    let why = format!("Credential should be scoped to a valid region, not '{region}'. ");
    Err((service, service.auth_error(&AuthFailure::BadSignature(why))))
}

fn error_response(service: Service, err: &AwsError, request_id: &str) -> Response<Full<Bytes>> {
    match service {
        Service::Eks => {
            let body = serde_json::json!({ "message": err.message }).to_string();
            respond(request_id, err.status, "application/json", body, Some(&err.code))
        }
        Service::Sts { json: true } => {
            let kind = if err.status >= 500 { "Receiver" } else { "Sender" };
            let body = serde_json::json!({
                "Error": { "Code": err.code, "Message": err.message, "Type": kind },
                "RequestId": request_id,
            })
            .to_string();
            respond(request_id, err.status, "application/json", body, None)
        }
        Service::Ec2 => {
            respond(request_id, err.status, "text/xml", ec2_error(&err.code, &err.message, request_id), None)
        }
        Service::Elb | Service::Unknown => respond(
            request_id,
            err.status,
            "text/xml",
            query_error(ELB_NS, err.status, &err.code, &err.message, request_id),
            None,
        ),
        Service::Sts { json: false } => respond(
            request_id,
            err.status,
            "text/xml",
            query_error(STS_NS, err.status, &err.code, &err.message, request_id),
            None,
        ),
    }
}

fn respond(
    request_id: &str,
    status: u16,
    content_type: &str,
    body: String,
    error_type: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("x-amzn-RequestId", request_id)
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some(kind) = error_type {
        builder = builder.header("X-Amzn-ErrorType", kind);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
