//! What a ServiceLB port does with a connection: what k3s' svclb pod and
//! kube-proxy do (DNAT to the Service's cluster IP, then to one endpoint),
//! with the endpoint simulated in-process: an HTTP request is answered by
//! the pod's program through the mesh's data plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::servicelb::Forward;
use crate::aws::Clock;
use crate::kube::Resource;
use crate::mesh::apps::{self, HttpRequest, HttpResponse};
use crate::mesh::dataplane::Outcome;
use crate::mesh::Mesh;

/// Largest request head read from a node port.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections accepted per Service port (`namespace/name:port`).
#[derive(Debug, Default)]
pub struct ConnectionLog(Mutex<BTreeMap<String, u64>>);

impl ConnectionLog {
    fn record(&self, key: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
    }

    /// How many connections the port of `namespace/name` accepted.
    pub fn count(&self, namespace: &str, name: &str, port: u16) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&format!("{namespace}/{name}:{port}")).copied().unwrap_or(0)
    }
}

/// The node's forwarding into the cluster.
pub struct NodeForward {
    mesh: Weak<Mesh>,
    cluster: String,
    clock: Clock,
    log: Arc<ConnectionLog>,
}

impl NodeForward {
    pub fn new(mesh: &Arc<Mesh>, cluster: &str, clock: Clock, log: Arc<ConnectionLog>) -> NodeForward {
        NodeForward { mesh: Arc::downgrade(mesh), cluster: cluster.to_owned(), clock, log }
    }
}

impl Forward for NodeForward {
    fn forward(&self, namespace: String, service: String, port: u16, conn: TcpStream) {
        self.log.record(format!("{namespace}/{service}:{port}"));
        let (mesh, cluster, clock) = (self.mesh.clone(), self.cluster.clone(), self.clock);
        tokio::spawn(async move {
            let Some(mesh) = mesh.upgrade() else { return };
            if let Err(e) = serve_connection(mesh, &cluster, clock, &namespace, &service, port, conn).await {
                tracing::debug!(service = %format!("{namespace}/{service}:{port}"), "node port connection: {e}");
            }
        });
    }
}

async fn serve_connection(
    mesh: Arc<Mesh>,
    cluster: &str,
    clock: Clock,
    namespace: &str,
    service: &str,
    port: u16,
    mut conn: TcpStream,
) -> std::io::Result<()> {
    let Some(mc) = mesh.cluster(cluster) else { return Ok(()) };
    let Some(svc) = mc.cluster.get(&Resource::services(), Some(namespace), service) else {
        return Ok(());
    };
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(READ_TIMEOUT, conn.peek(&mut first)).await.map_err(|_| timed_out())??;
    if n == 1 && first[0] == 0x16 {
        // A TLS ClientHello: for a gateway's passthrough port.
        return super::passthrough::serve(mesh, mc, clock, &svc, port, conn).await;
    }
    let Some(req) = tokio::time::timeout(READ_TIMEOUT, read_request(&mut conn)).await.map_err(|_| timed_out())?? else {
        return Ok(());
    };
    let delivery = mesh.from_node(&mc, &svc, port, &req);
    tokio::time::sleep(clock.compress(delivery.after)).await;
    match delivery.outcome {
        Outcome::Response(r) => conn.write_all(&write_response(&r)).await,
        // Refused, unreachable or reset inside the cluster: the client sees the connection end.
        _ => Ok(()),
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "client sent no request in time")
}

/// Reads one HTTP/1.1 request (head and a Content-Length body); `None` on a clean close.
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(conn: &mut R) -> std::io::Result<Option<HttpRequest>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or("/").to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let authority = header("host").unwrap_or_default();
    Ok(Some(HttpRequest { method, authority, path, headers, body }))
}

/// An HTTP/1.1 response on the wire (the connection closes after it).
pub fn write_response(r: &HttpResponse) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, apps::reason(r.status)).into_bytes();
    for (k, v) in &r.headers {
        if !k.eq_ignore_ascii_case("connection") {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&r.body);
    out
}

/// Parses an HTTP/1.1 response as [`write_response`] writes it (and as the
/// twin's own pods answer): status, headers, Content-Length body.
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(conn: &mut R) -> std::io::Result<HttpResponse> {
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| k != "connection")
        .collect();
    Ok(HttpResponse { status, headers, body: buf[head_end + 4..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_and_responses_round_trip_on_the_wire() {
        let raw = b"GET /hello HTTP/1.1\r\nHost: helloworld.sample:5000\r\nContent-Length: 2\r\n\r\nhi";
        let mut r: &[u8] = raw;
        let req = read_request(&mut r).await.expect("read").expect("a request");
        assert_eq!((req.method.as_str(), req.path.as_str(), req.authority.as_str()), ("GET", "/hello", "helloworld.sample:5000"));
        assert_eq!(req.body, b"hi");
        let mut empty: &[u8] = b"";
        assert!(read_request(&mut empty).await.expect("read").is_none());
        let resp = HttpResponse::new(200, "text/plain", "Hello version: v1\n").with_header("server", "envoy");
        let wire = write_response(&resp);
        let back = read_response(&mut wire.as_slice()).await.expect("parse");
        assert_eq!(back.status, 200);
        assert_eq!(back.body, resp.body);
        assert_eq!(back.header("server"), Some("envoy"));
    }
}
