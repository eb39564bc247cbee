//! The VPC fabric: how a connection from outside a cluster's process reaches
//! a pod IP inside it. Pod IPs are not on the host's network (each
//! cluster's pods live in its process), so each cluster process serves one
//! ingress port and a connection asks it for a pod with HTTP/1.1 `CONNECT
//! <podIP>:<port>` (RFC 9110 §9.3.6), then the stream is the pod's:
//!
//! - `200`: a pod with that IP accepts connections on that port (what the
//!   NLB's health check asks, see `programs::listening`); after the response
//!   head the bytes are the pod's (RFC 9110 §9.3.6: "the sender ... will
//!   switch to tunnel mode immediately after the blank line").
//! - `502`: a pod has that IP but nothing listens on the port: the kernel
//!   would answer the SYN with a RST. The ingress closes the connection.
//! - `504`: no pod has that IP: nobody would answer the SYN. Answered at
//!   once rather than after a connect timeout; the caller decides how long
//!   its client waits.
//!
//! Behind a `200` the stream is served as the pod would: a TLS ClientHello
//! to a gateway goes to its SNI passthrough (`standin::passthrough`), one to
//! a pod with a sidecar to that sidecar's mTLS, plain HTTP to the pod's
//! program through the mesh (`Mesh::to_pod`).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::aws::Clock;
use crate::mesh::apps::reason;
use crate::mesh::dataplane::{has_sidecar, Found, Outcome};
use crate::mesh::wire::{read_request, write_response};
use crate::mesh::Mesh;
use crate::programs::listening::is_istio_gateway;
use crate::standin::passthrough;

/// The ingress of a VPC (its cluster process) by VPC id, as the AWS process knows them.
pub type IngressOf = Arc<dyn Fn(&str) -> Option<SocketAddr> + Send + Sync>;

/// How long a peer may take to send a request head (the CONNECT, or the
/// first request in the tunnel).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A CONNECT head larger than this is refused.
const MAX_HEAD: usize = 8 * 1024;

/// Why [`connect`] did not get a stream to the pod.
#[derive(Debug)]
pub enum FabricError {
    /// The pod refused the connection (its kernel would send a RST).
    Refused,
    /// Nothing answered in time: no pod has the IP, or the ingress did not answer.
    TimedOut,
    /// The ingress could not be reached or spoke no CONNECT.
    Io(std::io::Error),
}

impl std::fmt::Display for FabricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FabricError::Refused => f.write_str("connection refused"),
            FabricError::TimedOut => f.write_str("connection timed out"),
            FabricError::Io(e) => write!(f, "the VPC's ingress: {e}"),
        }
    }
}

impl std::error::Error for FabricError {}

impl From<std::io::Error> for FabricError {
    fn from(e: std::io::Error) -> FabricError {
        FabricError::Io(e)
    }
}

/// Serves the cluster's ingress on `listener` until the handle is aborted
/// (which also ends the tunnels it holds).
pub fn serve_ingress(listener: TcpListener, mesh: Arc<Mesh>, cluster: String, clock: Clock) -> JoinHandle<()> {
    // Weak: the ingress must not keep a stopped cluster's mesh alive.
    let mesh = Arc::downgrade(&mesh);
    let cluster: Arc<str> = cluster.into();
    tokio::spawn(async move {
        let mut tunnels = JoinSet::new();
        loop {
            while tunnels.try_join_next().is_some() {}
            match listener.accept().await {
                Ok((conn, _)) => {
                    let (mesh, cluster) = (mesh.clone(), cluster.clone());
                    tunnels.spawn(async move {
                        if let Err(e) = tunnel(mesh, &cluster, clock, conn).await {
                            tracing::debug!(%cluster, "VPC ingress connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(%cluster, "VPC ingress accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}

/// Opens a stream to `target` (a pod IP and port) through the ingress of its
/// VPC, within `within` (wall time).
pub async fn connect(ingress: SocketAddr, target: SocketAddrV4, within: Duration) -> Result<TcpStream, FabricError> {
    let attempt = async {
        let mut conn = TcpStream::connect(ingress).await?;
        let _ = conn.set_nodelay(true);
        conn.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await?;
        let Some(head) = read_head(&mut conn).await? else {
            return Err(FabricError::Io(eof("the ingress closed before answering")));
        };
        match status_of(&head) {
            Some(200..=299) => Ok(conn),
            Some(502) => Err(FabricError::Refused),
            Some(504) => Err(FabricError::TimedOut),
            _ => Err(FabricError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected answer to CONNECT: {}", head.lines().next().unwrap_or_default()),
            ))),
        }
    };
    tokio::time::timeout(within, attempt).await.unwrap_or(Err(FabricError::TimedOut))
}

/// One connection to the ingress: the CONNECT, the answer, then the pod's side.
async fn tunnel(mesh: Weak<Mesh>, cluster: &str, clock: Clock, mut conn: TcpStream) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut conn)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(timed_out()),
    };
    let target = match parse_connect(&head) {
        Ok(target) => target,
        Err((status, extra)) => return answer(&mut conn, status, extra).await,
    };
    // The cluster gone from this process: nothing answers for its pods.
    let Some(mesh) = mesh.upgrade() else { return answer(&mut conn, 504, "").await };
    let Some(mc) = mesh.cluster(cluster) else { return answer(&mut conn, 504, "").await };
    let Some(found) = Mesh::pod_in_cluster(&mc, *target.ip()) else {
        return answer(&mut conn, 504, "").await;
    };
    if !mesh.listens(&found, target.port()) {
        return answer(&mut conn, 502, "").await;
    }
    // RFC 9110 §9.3.6: no Content-Length or Transfer-Encoding in a 2xx to CONNECT.
    conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await?;
    serve_as_pod(mesh, found, target.port(), clock, conn).await
}

/// The stream after a `200`, as the pod at the other end serves it.
async fn serve_as_pod(
    mesh: Arc<Mesh>,
    dest: Found,
    port: u16,
    clock: Clock,
    mut conn: TcpStream,
) -> std::io::Result<()> {
    let mut first = [0u8; 1];
    let n = match tokio::time::timeout(HEAD_TIMEOUT, conn.peek(&mut first)).await {
        Ok(Ok(n)) => n,
        // A health check closes (or resets) right after connecting.
        Ok(Err(_)) => return Ok(()),
        Err(_) => return Err(timed_out()),
    };
    if n == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // A TLS ClientHello: a gateway's passthrough, or a sidecar's mTLS;
        // a program without either does not speak TLS and the peer gives up.
        return if is_istio_gateway(&dest.pod) {
            passthrough::serve_at_gateway(mesh, dest, port, conn).await
        } else if has_sidecar(&dest.pod) {
            passthrough::serve_at_sidecar(mesh, dest, port, conn).await
        } else {
            Ok(())
        };
    }
    let Some(req) = tokio::time::timeout(HEAD_TIMEOUT, read_request(&mut conn)).await.map_err(|_| timed_out())?? else {
        return Ok(());
    };
    let delivery = mesh.to_pod(&dest, port, &req);
    tokio::time::sleep(clock.compress(delivery.after)).await;
    match delivery.outcome {
        Outcome::Response(r) => conn.write_all(&write_response(&r)).await,
        // The pod stopped listening since the CONNECT: the connection is reset.
        _ => {
            let _ = conn.set_zero_linger();
            Ok(())
        }
    }
}

/// A response without a tunnel: status, then the connection closes.
async fn answer(conn: &mut TcpStream, status: u16, extra_headers: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\n{extra_headers}content-length: 0\r\nconnection: close\r\n\r\n",
        reason(status)
    );
    conn.write_all(head.as_bytes()).await?;
    conn.shutdown().await
}

/// The target of a `CONNECT ip:port HTTP/1.1` request head, or the status
/// (and headers) refusing it.
fn parse_connect(head: &str) -> Result<SocketAddrV4, (u16, &'static str)> {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err((400, ""));
    }
    if method != Some("CONNECT") {
        // RFC 9110 §15.5.6: a 405 lists the methods the target supports.
        return Err((405, "allow: CONNECT\r\n"));
    }
    target.and_then(|t| t.parse::<SocketAddrV4>().ok()).filter(|t| t.port() != 0).ok_or((400, ""))
}

/// The status code of a response head.
fn status_of(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    if !line.starts_with("HTTP/1.") {
        return None;
    }
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads a message head up to and including its blank line, a byte at a
/// time so that nothing after it (the tunnelled stream) is consumed;
/// `None` when the peer closes before sending anything.
async fn read_head<R: AsyncRead + Unpin>(conn: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        if conn.read(&mut byte).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(eof("the peer closed inside a message head")) };
        }
        buf.push(byte[0]);
        if buf.ends_with(b"\r\n\r\n") {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "message head too large"));
        }
    }
}

fn eof(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned())
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer sent nothing in time")
}

/// An IPv4 pod address and port from `ip` (as AWS lists target ids) and `port`.
pub fn pod_address(ip: &str, port: u16) -> Option<SocketAddrV4> {
    ip.parse::<Ipv4Addr>().ok().map(|ip| SocketAddrV4::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_heads_are_parsed_strictly() {
        let ok = parse_connect("CONNECT 10.42.0.7:5000 HTTP/1.1\r\nhost: 10.42.0.7:5000\r\n\r\n");
        assert_eq!(ok, Ok(SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 7), 5000)));
        assert_eq!(parse_connect("GET / HTTP/1.1\r\n\r\n"), Err((405, "allow: CONNECT\r\n")));
        assert_eq!(parse_connect("CONNECT helloworld:5000 HTTP/1.1\r\n\r\n"), Err((400, "")));
        assert_eq!(parse_connect("CONNECT 10.42.0.7:0 HTTP/1.1\r\n\r\n"), Err((400, "")));
        assert_eq!(parse_connect("CONNECT 10.42.0.7:5000\r\n\r\n"), Err((400, "")));
        assert_eq!(status_of("HTTP/1.1 502 Bad Gateway\r\n\r\n"), Some(502));
        assert_eq!(status_of("SSH-2.0-OpenSSH\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn a_head_is_read_without_the_bytes_after_it() {
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01";
        let head = read_head(&mut input).await.expect("read").expect("a head");
        assert_eq!(head, "HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(input, b"\x16\x03\x01", "the tunnelled bytes stay unread");
        let mut empty: &[u8] = b"";
        assert!(read_head(&mut empty).await.expect("read").is_none());
        let mut cut: &[u8] = b"HTTP/1.1 200";
        assert!(read_head(&mut cut).await.is_err());
    }

    #[tokio::test]
    async fn an_ingress_that_is_not_there_is_an_io_error_and_one_that_hangs_times_out() {
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = gone.local_addr().expect("addr");
        drop(gone);
        let target = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 7), 5000);
        assert!(matches!(connect(addr, target, Duration::from_secs(5)).await, Err(FabricError::Io(_))));
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = silent.local_addr().expect("addr");
        let started = std::time::Instant::now();
        assert!(matches!(connect(addr, target, Duration::from_millis(200)).await, Err(FabricError::TimedOut)));
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(silent);
    }
}
