//! `pods/exec` over WebSocket with kubectl 1.32 (v5 only), kube-rs 5 (offers v5
//! and v4) and a raw WebSocket client (v4 only, and the exact frames).

mod common;

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use meshspec_twin_kube::{ApiError, ExecHandler, ExecOutput, ExecRequest, Resource};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sleep
  namespace: default
spec:
  containers:
  - name: sleep
    image: curlimages/curl
---
apiVersion: v1
kind: Pod
metadata:
  name: two
  namespace: default
  annotations:
    kubectl.kubernetes.io/default-container: b
spec:
  containers:
  - name: a
    image: x
  - name: b
    image: x
---
apiVersion: v1
kind: Pod
metadata:
  name: done
  namespace: default
spec:
  containers:
  - name: job
    image: x
"#;

/// Every request a handler got, with its stdin.
type Calls = Arc<Mutex<Vec<(ExecRequest, Vec<u8>)>>>;

/// A pretend container runtime: a few commands with known behaviour, and a
/// record of every request it got.
#[derive(Clone, Default)]
struct FakeRuntime {
    calls: Calls,
}

impl FakeRuntime {
    fn calls(&self) -> Vec<(ExecRequest, Vec<u8>)> {
        self.calls.lock().expect("calls").clone()
    }

    fn run(req: &ExecRequest, stdin: &[u8]) -> Result<ExecOutput, ApiError> {
        let args: Vec<&str> = req.command.iter().map(String::as_str).collect();
        let out = |stdout: Vec<u8>, stderr: &str, exit_code| ExecOutput { stdout, stderr: stderr.into(), exit_code };
        Ok(match args.as_slice() {
            ["echo", rest @ ..] => out(format!("{}\n", rest.join(" ")).into_bytes(), "", 0),
            ["sh", "-c", script] if script.starts_with("exit ") => {
                out(Vec::new(), "", script[5..].trim().parse().unwrap_or(2))
            }
            ["warn", message] => out(b"partial\n".to_vec(), &format!("{message}\n"), 0),
            ["upper"] | ["slow-upper"] => out(stdin.to_ascii_uppercase(), "", 0),
            ["big", n] => out((0..n.parse::<usize>().unwrap_or(0)).map(|i| b'a' + (i % 26) as u8).collect(), "", 0),
            ["where"] => out(
                format!("{}/{}/{}\n", req.namespace, req.pod, req.container.as_deref().unwrap_or("-")).into_bytes(),
                "",
                0,
            ),
            ["refuse"] => return Err(ApiError::new(503, "ServiceUnavailable", "the container is not running")),
            [program, ..] => out(Vec::new(), &format!("sh: {program}: not found\n"), 127),
            [] => out(Vec::new(), "", 0),
        })
    }
}

impl ExecHandler for FakeRuntime {
    fn exec(&self, req: ExecRequest, stdin: Vec<u8>) -> BoxFuture<'static, Result<ExecOutput, ApiError>> {
        self.calls.lock().expect("calls").push((req.clone(), stdin.clone()));
        Box::pin(async move {
            if req.command.first().is_some_and(|c| c.starts_with("slow-")) {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            }
            FakeRuntime::run(&req, &stdin)
        })
    }
}

async fn start() -> (common::Twin, FakeRuntime) {
    let twin = common::start().await;
    let runtime = FakeRuntime::default();
    twin.server.set_exec_handler(Arc::new(runtime.clone()));
    let file = twin.write("pods.yaml", PODS);
    twin.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")]).await.ok();
    twin.store
        .update_status(&Resource::pods(), Some("default"), "sleep", json!({"phase": "Running"}))
        .expect("running");
    twin.store.update_status(&Resource::pods(), Some("default"), "done", json!({"phase": "Succeeded"})).expect("done");
    (twin, runtime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_outputs_and_exit_codes() {
    let (twin, runtime) = start().await;
    let out = twin.kubectl(&["exec", "sleep", "-c", "sleep", "--", "echo", "a b", "c"]).await;
    assert_eq!(out.ok(), "a b c\n");
    let (req, _) = runtime.calls().pop().expect("a call");
    assert_eq!(req.command, vec!["echo", "a b", "c"], "arguments arrive as given, spaces kept");
    assert_eq!(
        (req.namespace.as_str(), req.pod.as_str(), req.container.as_deref()),
        ("default", "sleep", Some("sleep"))
    );
    assert!(!req.stdin && !req.tty);

    let out = twin.kubectl(&["exec", "sleep", "--", "sh", "-c", "exit 7"]).await;
    assert_eq!(out.code, 7, "kubectl exits with the command's code; stderr: {}", out.stderr);
    assert!(out.stderr.contains("command terminated with exit code 7"), "{}", out.stderr);

    let out = twin.kubectl(&["exec", "sleep", "--", "warn", "careful"]).await;
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "partial\n", "careful\n"));

    let out = twin.kubectl(&["exec", "sleep", "--", "nosuch"]).await;
    assert_eq!(out.code, 127);
    assert!(out.stderr.contains("sh: nosuch: not found"), "{}", out.stderr);

    let out = twin.kubectl(&["exec", "sleep", "--", "big", "100000"]).await;
    let expected: String = (0..100_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    assert!(out.ok() == expected, "large output arrives whole and in order ({} bytes)", out.stdout.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_stdin_containers_and_errors() {
    let (twin, runtime) = start().await;
    let out = twin.kubectl_input(&["exec", "-i", "sleep", "--", "upper"], b"hello twin\nsecond line\n").await;
    assert_eq!(out.ok(), "HELLO TWIN\nSECOND LINE\n");
    let (req, stdin) = runtime.calls().pop().expect("a call");
    assert!(req.stdin);
    assert_eq!(stdin, b"hello twin\nsecond line\n");

    // kubectl picks the annotated default container itself; the server gets its name.
    let out = twin.kubectl(&["exec", "two", "--", "where"]).await;
    assert_eq!(out.ok(), "default/two/b\n");

    let calls = runtime.calls().len();
    let out = twin.kubectl(&["exec", "sleep", "-c", "nope", "--", "echo", "x"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("container nope is not valid for pod sleep"), "{}", out.stderr);
    let out = twin.kubectl(&["exec", "ghost", "--", "echo", "x"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("NotFound") && out.stderr.contains(r#"pods "ghost" not found"#), "{}", out.stderr);
    assert_eq!(runtime.calls().len(), calls, "refused requests never reach the handler");

    // A handler's refusal before the upgrade is an HTTP error kubectl prints.
    let out = twin.kubectl(&["exec", "sleep", "--", "refuse"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("the container is not running"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_handler_exec_fails_at_once() {
    let twin = common::start().await;
    let file = twin.write("pods.yaml", PODS);
    twin.kubectl(&["apply", "-f", file.to_str().expect("utf-8 path")]).await.ok();
    let out = twin.kubectl(&["exec", "sleep", "--", "echo", "x"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no exec handler"), "{}", out.stderr);
}

fn params() -> AttachParams {
    AttachParams::default().stdout(true).stderr(true)
}

async fn read_all(reader: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut text = String::new();
    reader.expect("stream").read_to_string(&mut text).await.expect("read");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_exec_status_and_stdin() {
    let (twin, runtime) = start().await;
    let pods: Api<Pod> = Api::namespaced(twin.kube_client("kubeconfig").await, "default");
    let ap = params();

    let mut proc = pods.exec("sleep", ["echo", "hi", "there"], &ap).await.expect("exec");
    let status = proc.take_status().expect("status future");
    assert_eq!(read_all(proc.stdout()).await, "hi there\n");
    let status = status.await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Success"));

    let mut proc = pods.exec("sleep", ["sh", "-c", "exit 3"], &ap).await.expect("exec");
    let status = proc.take_status().expect("status future").await.expect("a status");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.message.as_deref(),
        Some("command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3")
    );
    let causes = status.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!((causes[0].reason.as_deref(), causes[0].message.as_deref()), (Some("ExitCode"), Some("3")));

    // stderr on its own stream; kube-rs asks no container: the pod's only one is used.
    let mut proc = pods.exec("sleep", ["warn", "uh-oh"], &ap).await.expect("exec");
    let (out, err) = tokio::join!(read_all(proc.stdout()), read_all(proc.stderr()));
    assert_eq!((out.as_str(), err.as_str()), ("partial\n", "uh-oh\n"));
    assert_eq!(runtime.calls().last().expect("call").0.container.as_deref(), Some("sleep"));

    // stdin (v5: kube-rs half-closes stdin at EOF, output follows).
    let mut proc = pods.exec("sleep", ["upper"], &params().stdin(true)).await.expect("exec");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(b"from kube-rs").await.expect("write");
    // Shutting the writer down is EOF (dropping one half of the pipe is not).
    stdin.shutdown().await.expect("eof");
    assert_eq!(read_all(proc.stdout()).await, "FROM KUBE-RS");
    assert_eq!(proc.take_status().expect("status").await.and_then(|s| s.status).as_deref(), Some("Success"));

    // The default-container annotation when several containers and none named.
    let mut proc = pods.exec("two", ["where"], &ap).await.expect("exec");
    assert_eq!(read_all(proc.stdout()).await, "default/two/b\n");
}

fn api_status(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_exec_refusals_are_api_errors() {
    let (twin, runtime) = start().await;
    let pods: Api<Pod> = Api::namespaced(twin.kube_client("kubeconfig").await, "default");
    let ap = params();
    let status = api_status(pods.exec("ghost", ["echo"], &ap).await.err().expect("unknown pod"));
    assert!(status.is_not_found() && status.code == 404, "{status:?}");
    let status = api_status(pods.exec("sleep", ["echo"], &params().container("nope")).await.err().expect("container"));
    assert_eq!((status.code, status.message.as_str()), (400, "container nope is not valid for pod sleep"));
    let status = api_status(pods.exec("done", ["echo"], &ap).await.err().expect("completed"));
    assert_eq!(status.code, 400);
    assert_eq!(status.message, "cannot exec into a container in a completed pod; current phase is Succeeded");
    let pair = json!({"metadata": {"name": "pair"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}});
    twin.store.create(&Resource::pods(), Some("default"), pair).expect("pod");
    let status = api_status(pods.exec("pair", ["echo"], &ap).await.err().expect("ambiguous"));
    assert_eq!(
        (status.code, status.message.as_str()),
        (400, "a container name must be specified for pod pair, choose one of: [a b]")
    );
    assert!(runtime.calls().is_empty(), "refused requests never reach the handler");
}

/// Upgrades `uri` by hand through the kube client (TLS and token from the
/// kubeconfig), offering `protocols`, and returns the 101's headers and the socket.
async fn raw_upgrade(
    client: &kube::Client,
    uri: &str,
    protocols: &str,
) -> (http::HeaderMap, tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let req = http::Request::get(uri)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", &key)
        .header("sec-websocket-protocol", protocols)
        .body(kube::client::Body::empty())
        .expect("request");
    let resp = client.send(req).await.expect("sent");
    assert_eq!(resp.status(), 101);
    let headers = resp.headers().clone();
    assert_eq!(
        headers["sec-websocket-accept"],
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()).as_str()
    );
    let upgraded = hyper::upgrade::on(resp).await.expect("upgraded");
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (headers, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_v4_client_gets_frames_status_and_close_in_order() {
    let (twin, _) = start().await;
    let client = twin.kube_client("kubeconfig").await;
    let uri = "/api/v1/namespaces/default/pods/sleep/exec?&stdin=true&stdout=true&stderr=true&command=upper";
    let (headers, mut ws) = raw_upgrade(&client, uri, "v4.channel.k8s.io").await;
    assert_eq!(headers["sec-websocket-protocol"], "v4.channel.k8s.io");
    assert_eq!(headers["connection"], "Upgrade");
    assert_eq!(headers["upgrade"], "websocket");

    ws.send(Message::binary(b"\x00abc".to_vec())).await.expect("stdin");
    ws.send(Message::text("ignored")).await.expect("text");
    ws.send(Message::binary(b"\x04{\"Width\":80,\"Height\":24}".to_vec())).await.expect("resize");
    ws.send(Message::Ping(b"still there?".to_vec().into())).await.expect("ping");
    ws.send(Message::binary(b"\x00def".to_vec())).await.expect("stdin");
    ws.send(Message::binary(vec![0u8])).await.expect("v4 stdin EOF");

    let mut received = Vec::new();
    while let Some(message) = ws.next().await {
        received.push(message.expect("frame"));
    }
    assert_eq!(
        received,
        vec![
            Message::Pong(b"still there?".to_vec().into()),
            Message::binary(b"\x01ABCDEF".to_vec()),
            Message::binary(b"\x03{\"metadata\":{},\"status\":\"Success\"}".to_vec()),
            Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into()
            })),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_v5_client_half_closes_stdin_and_is_answered_while_the_command_runs() {
    let (twin, _) = start().await;
    let client = twin.kube_client("kubeconfig").await;
    let uri = "/api/v1/namespaces/default/pods/sleep/exec?command=slow-upper&stdin=true&stdout=true&stderr=false";
    let (headers, mut ws) = raw_upgrade(&client, uri, "v5.channel.k8s.io").await;
    assert_eq!(headers["sec-websocket-protocol"], "v5.channel.k8s.io");
    ws.send(Message::binary(b"\x00quiet".to_vec())).await.expect("stdin");
    // An empty stdin frame is not EOF on v5: only the half-close is.
    ws.send(Message::binary(vec![0u8])).await.expect("empty stdin");
    ws.send(Message::binary(b"\x00 please".to_vec())).await.expect("stdin");
    ws.send(Message::binary(vec![255u8, 0])).await.expect("half-close stdin");
    // The command takes 400 ms; the ping is answered meanwhile, before any output.
    ws.send(Message::Ping(b"hb".to_vec().into())).await.expect("ping");
    let first = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
    assert!(matches!(first, Ok(Some(Ok(Message::Pong(_))))), "{first:?}");
    let mut received = Vec::new();
    while let Some(message) = ws.next().await {
        received.push(message.expect("frame"));
    }
    assert_eq!(received[0], Message::binary(b"\x01QUIET PLEASE".to_vec()));
    assert_eq!(received[1], Message::binary(b"\x03{\"metadata\":{},\"status\":\"Success\"}".to_vec()));
    assert!(matches!(&received[2], Message::Close(Some(f)) if f.code == CloseCode::Normal));
    assert_eq!(received.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_v5_client_gets_large_output_in_frames() {
    let (twin, _) = start().await;
    let client = twin.kube_client("kubeconfig").await;
    let uri = "/api/v1/namespaces/default/pods/sleep/exec?command=big&command=70000&stdout=true&stderr=true";
    let (headers, mut ws) = raw_upgrade(&client, uri, "v4.channel.k8s.io, v5.channel.k8s.io").await;
    assert_eq!(headers["sec-websocket-protocol"], "v5.channel.k8s.io");
    let mut stdout = Vec::new();
    let mut status = None;
    let mut close = None;
    while let Some(message) = ws.next().await {
        match message.expect("frame") {
            Message::Binary(b) if b[0] == 1 => {
                assert!(b.len() <= 32 * 1024 + 1, "frames are at most 32 KiB");
                assert!(status.is_none(), "output comes before the status");
                stdout.extend_from_slice(&b[1..]);
            }
            Message::Binary(b) if b[0] == 3 => status = Some(serde_json::from_slice::<Value>(&b[1..]).expect("json")),
            Message::Close(frame) => close = frame.map(|f| f.code),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stdout.len(), 70_000);
    assert_eq!(status, Some(json!({"metadata": {}, "status": "Success"})));
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_refusals_before_the_upgrade() {
    let (twin, _) = start().await;
    let client = twin.kube_client("kubeconfig").await;
    let send = |protocols: &'static str, upgrade: &'static str| {
        let client = client.clone();
        async move {
            let req = http::Request::get("/api/v1/namespaces/default/pods/sleep/exec?command=echo")
                .header("connection", "Upgrade")
                .header("upgrade", upgrade)
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-protocol", protocols)
                .body(kube::client::Body::empty())
                .expect("request");
            let resp = client.send(req).await.expect("sent");
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
            (status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
        }
    };
    let (code, status) = send("channel.k8s.io", "websocket").await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    let (code, status) = send("v4.channel.k8s.io", "SPDY/3.1").await;
    assert_eq!((code, status["kind"].as_str()), (400, Some("Status")));
    // Anonymous exec is refused like any other request.
    twin.write_kubeconfig("anonymous", "");
    let anonymous = twin.kube_client("anonymous").await;
    let pods: Api<Pod> = Api::namespaced(anonymous, "default");
    let e = pods.exec("sleep", ["echo"], &AttachParams::default()).await.err().expect("forbidden");
    assert_eq!(api_status(e).code, 403);
}
