//! One exec on an upgraded connection: Kubernetes' channel protocol over
//! binary WebSocket frames (first byte = channel). Stdin is read to the
//! client's EOF, the handler's output is sent as stdout/stderr frames, then the
//! status on channel 3, then a Close 1000, then the TCP connection is closed.
//! That order matters: kube-rs stops reading at the status, and kubectl fails
//! (close 1006) when the Close frame is missing.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::handshake::Protocol;
use super::request::Streams;
use super::{ExecHandler, ExecOutput, ExecRequest};
use crate::error::ApiError;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
/// v5 only: `[CLOSE, channel]` half-closes a channel (kubectl sends it at stdin EOF).
const CLOSE: u8 = 255;

/// Output is split into frames of this size (client-go reads with 32 KiB buffers).
const FRAME_DATA: usize = 32 * 1024;
/// Stdin is buffered whole for the handler; past this the exec fails.
const MAX_STDIN: usize = 16 * 1024 * 1024;
/// How long the client gets to answer our Close before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Where the command stands when the connection is upgraded.
pub(crate) enum Pending {
    /// Ran already (no stdin to wait for).
    Done(ExecOutput),
    /// Runs once stdin is complete.
    AfterStdin(Arc<dyn ExecHandler>),
}

pub(crate) async fn run(upgraded: Upgraded, protocol: Protocol, exec: ExecRequest, streams: Streams, pending: Pending) {
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let result = match pending {
        Pending::Done(output) => Ok(output),
        Pending::AfterStdin(handler) => match read_stdin(&mut ws, protocol).await {
            Stdin::Complete(bytes) => answering_pings(&mut ws, handler.exec(exec.clone(), bytes)).await,
            Stdin::TooLarge => Err(ApiError::too_large()),
            Stdin::Gone => return,
        },
    };
    // A client that closed the connection early (v4 has no other way to end stdin)
    // cannot be answered: sending fails and the session just ends.
    if let Err(e) = send_result(&mut ws, &exec, streams, result).await {
        tracing::debug!("exec: the client left before the result: {e}");
        return;
    }
    finish(&mut ws).await;
}

enum Stdin {
    Complete(Vec<u8>),
    TooLarge,
    /// The connection broke: nobody is left to answer.
    Gone,
}

async fn read_stdin(ws: &mut Ws, protocol: Protocol) -> Stdin {
    let mut buf = Vec::new();
    loop {
        // Reading also sends the pongs tungstenite queued for the client's pings.
        let message = match ws.next().await {
            Some(Ok(m)) => m,
            None | Some(Err(_)) => return Stdin::Gone,
        };
        match message {
            Message::Binary(data) => match data.as_ref() {
                [STDIN, bytes @ ..] if !bytes.is_empty() => {
                    if buf.len() + bytes.len() > MAX_STDIN {
                        return Stdin::TooLarge;
                    }
                    buf.extend_from_slice(bytes);
                }
                // v4 cannot half-close: an empty stdin frame stands for EOF.
                [STDIN] if protocol == Protocol::V4 => return Stdin::Complete(buf),
                [CLOSE, STDIN] if protocol == Protocol::V5 => return Stdin::Complete(buf),
                // Resize, empty frames, half-closes of other channels.
                _ => {}
            },
            // Closing the whole connection ends stdin too (kube-rs does that on v4).
            Message::Close(_) => return Stdin::Complete(buf),
            // Text frames are not part of the protocol; pings are answered by tungstenite.
            _ => {}
        }
    }
}

/// Awaits the handler while still reading, so that the client's pings are
/// answered (kubectl gives up after about a minute without a pong).
async fn answering_pings(
    ws: &mut Ws,
    mut command: BoxFuture<'static, Result<ExecOutput, ApiError>>,
) -> Result<ExecOutput, ApiError> {
    let mut reading = true;
    loop {
        tokio::select! {
            result = &mut command => return result,
            message = ws.next(), if reading => {
                if matches!(message, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                    reading = false;
                }
            }
        }
    }
}

async fn send_result(
    ws: &mut Ws,
    exec: &ExecRequest,
    streams: Streams,
    result: Result<ExecOutput, ApiError>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let (output, status) = match result {
        Ok(output) => {
            let status = exit_status(&exec.command, output.exit_code);
            (output, status)
        }
        Err(e) => (ExecOutput::default(), error_status(&e)),
    };
    if streams.stdout {
        send_channel(ws, STDOUT, &output.stdout).await?;
    }
    // A terminal has one output: stderr goes where stdout goes.
    match (exec.tty, streams) {
        (true, Streams { stdout: true, .. }) => send_channel(ws, STDOUT, &output.stderr).await?,
        (false, Streams { stderr: true, .. }) => send_channel(ws, STDERR, &output.stderr).await?,
        _ => {}
    }
    send_frame(ws, STATUS, &status).await?;
    ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await
}

async fn send_channel(ws: &mut Ws, channel: u8, data: &[u8]) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for chunk in data.chunks(FRAME_DATA) {
        send_frame(ws, channel, chunk).await?;
    }
    Ok(())
}

async fn send_frame(ws: &mut Ws, channel: u8, data: &[u8]) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    ws.send(Message::binary(frame)).await
}

/// Waits (bounded) for the client's answer to our Close, then closes TCP (and TLS) cleanly.
async fn finish(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    let _ = ws.get_mut().shutdown().await;
}

/// The status object of channel 3; field order as the kubelet writes it.
#[derive(Serialize)]
struct ChannelStatus {
    metadata: Map<String, Value>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Details {
    Causes { causes: Vec<Cause> },
    Other(Value),
}

#[derive(Serialize)]
struct Cause {
    reason: &'static str,
    message: String,
}

impl ChannelStatus {
    fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Success, or kubelet's NonZeroExitCode Failure, which kubectl turns into its
/// own exit code. client-go parses the code as a byte: codes outside 1..=255
/// (a handler's -1, say) are sent as 255 rather than as a success or a protocol error.
fn exit_status(command: &[String], exit_code: i32) -> Vec<u8> {
    if exit_code == 0 {
        return ChannelStatus {
            metadata: Map::new(),
            status: "Success",
            message: None,
            reason: None,
            details: None,
            code: None,
        }
        .to_bytes();
    }
    let code = if (1..=255).contains(&exit_code) { exit_code } else { 255 };
    ChannelStatus {
        metadata: Map::new(),
        status: "Failure",
        message: Some(format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        )),
        reason: Some("NonZeroExitCode".into()),
        details: Some(Details::Causes { causes: vec![Cause { reason: "ExitCode", message: code.to_string() }] }),
        code: None,
    }
    .to_bytes()
}

/// A handler's refusal after the upgrade: a Failure with the error's reason and code.
fn error_status(e: &ApiError) -> Vec<u8> {
    ChannelStatus {
        metadata: Map::new(),
        status: "Failure",
        message: Some(e.message.clone()),
        reason: Some(e.reason.clone()),
        details: e.details.clone().map(Details::Other),
        code: Some(e.code),
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn statuses_are_byte_exact() {
        let cmd: Vec<String> = ["sh", "-c", "fail"].map(String::from).to_vec();
        assert_eq!(text(exit_status(&cmd, 0)), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            text(exit_status(&cmd, 7)),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c fail], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#
        );
        assert!(text(exit_status(&cmd, -1)).contains(r#"exit code 255""#));
        assert_eq!(
            text(error_status(&ApiError::bad_request("nope"))),
            r#"{"metadata":{},"status":"Failure","message":"nope","reason":"BadRequest","code":400}"#
        );
    }
}
