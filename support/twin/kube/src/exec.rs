//! `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), as
//! kubectl 1.32 and kube-rs use it. The server checks the request against the
//! pod, then a pluggable [`ExecHandler`] decides what the command does: the API
//! server runs nothing itself.

mod handshake;
mod request;
mod session;
mod state;

pub(crate) use state::ExecState;

use futures::future::BoxFuture;
use http::Method;
use hyper::body::Incoming;

use crate::error::ApiError;
use crate::route::ResourcePath;
use crate::server::{self, Ctx, Response};

/// A command to run "in" a container, as the client asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    /// Always set by the server: the `container` parameter, or the pod's only
    /// container, or its `kubectl.kubernetes.io/default-container`.
    pub container: Option<String>,
    pub command: Vec<String>,
    /// The client sends stdin; the handler gets all of it (up to the client's EOF).
    pub stdin: bool,
    /// A terminal was asked for: stderr is sent on the stdout channel, as a terminal merges them.
    pub tty: bool,
}

/// What a finished command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

/// Runs exec'd commands for an API server (see [`crate::ApiServer::set_exec_handler`]).
pub trait ExecHandler: Send + Sync + 'static {
    /// Runs a command "in" a container. Without stdin the handler runs before the
    /// upgrade, so an `Err(ApiError)` is answered as an HTTP error (e.g. 404 pod not
    /// found, 400 `container X is not valid for pod Y`). With stdin it runs after the
    /// client's EOF, on the upgraded connection: an `Err` is then sent as a Failure
    /// Status on the status channel (kubectl prints its message).
    fn exec(&self, req: ExecRequest, stdin: Vec<u8>) -> BoxFuture<'static, Result<ExecOutput, ApiError>>;
}

/// Any `Fn(ExecRequest, Vec<u8>) -> BoxFuture<..>` is a handler.
impl<F> ExecHandler for F
where
    F: Fn(ExecRequest, Vec<u8>) -> BoxFuture<'static, Result<ExecOutput, ApiError>> + Send + Sync + 'static,
{
    fn exec(&self, req: ExecRequest, stdin: Vec<u8>) -> BoxFuture<'static, Result<ExecOutput, ApiError>> {
        self(req, stdin)
    }
}

/// Answers `.../pods/NAME/exec`: checks the request and the pod, then answers 101
/// and hands the upgraded connection to a session. Every refusal is a Status
/// error before the upgrade.
pub(crate) async fn handle(ctx: &Ctx, mut req: http::Request<Incoming>, path: &ResourcePath) -> Response {
    match prepare(ctx, &req, path).await {
        Ok(Accepted { handshake, exec, streams, pending }) => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            let protocol = handshake.protocol;
            ctx.exec.spawn_session(async move {
                match on_upgrade.await {
                    Ok(upgraded) => session::run(upgraded, protocol, exec, streams, pending).await,
                    Err(e) => tracing::debug!("exec upgrade failed: {e}"),
                }
            });
            handshake::switching_protocols(&handshake)
        }
        Err(e) => server::error(&e),
    }
}

/// An exec that passed every check, ready for the 101.
struct Accepted {
    handshake: handshake::Handshake,
    exec: ExecRequest,
    streams: request::Streams,
    pending: session::Pending,
}

async fn prepare(ctx: &Ctx, req: &http::Request<Incoming>, path: &ResourcePath) -> Result<Accepted, ApiError> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"));
    }
    let (Some(namespace), Some(pod)) = (path.namespace.as_deref(), path.name.as_deref()) else {
        return Err(ApiError::no_route());
    };
    let query = server::query_pairs(req.uri());
    let (exec, streams) = request::parse(&ctx.store, &query, namespace, pod)?;
    let handler = ctx.exec.handler().ok_or_else(|| {
        // What a real API server says when it cannot reach the node's kubelet.
        ApiError::internal("error dialing backend: this twin has no exec handler installed")
    })?;
    // kubectl retries a refused WebSocket exec over SPDY, which this server does not
    // speak: it gets the refusal the handler gave, as a real server would answer again.
    let handshake = handshake::accept(req.headers()).map_err(|e| ctx.exec.take_refusal(&exec).unwrap_or(e))?;
    tracing::debug!(
        namespace,
        pod,
        container = exec.container.as_deref().unwrap_or_default(),
        // Only the program: arguments may carry credentials.
        program = exec.command.first().map(String::as_str).unwrap_or_default(),
        protocol = handshake.protocol.name(),
        "exec"
    );
    let pending = if exec.stdin {
        session::Pending::AfterStdin(handler)
    } else {
        // Nothing to wait for: run now, so that a handler's error is a plain HTTP error.
        match handler.exec(exec.clone(), Vec::new()).await {
            Ok(output) => session::Pending::Done(output),
            Err(e) => {
                ctx.exec.remember_refusal(&exec, &e);
                return Err(e);
            }
        }
    };
    Ok(Accepted { handshake, exec, streams, pending })
}
