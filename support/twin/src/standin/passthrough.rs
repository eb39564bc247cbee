//! A gateway's TLS passthrough port on the node, as the east-west gateway's
//! Envoy serves 15443 (Istio's AUTO_PASSTHROUGH): the ClientHello's SNI is
//! read without terminating TLS, the Gateway rule and the gateway's own
//! proxy config pick the destination, and the bytes pass through, both ways,
//! to the destination's sidecar. That sidecar is simulated in-process as a
//! TLS server with a workload certificate from its cluster's CA, requiring a
//! client certificate chaining to its root; the pod's program answers the
//! request inside.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::aws::Clock;
use crate::mesh::dataplane::Found;
use crate::mesh::identity::{spiffe_id, WorkloadCa};
use crate::mesh::{wire, Mesh, MeshCluster};

/// A ClientHello larger than this is refused (TLS records are at most 16 KiB;
/// a hello spans a few at most).
const MAX_HELLO: usize = 64 * 1024;
/// How long the peer may take to finish its ClientHello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The SNI of a ClientHello, from the start of a TLS stream: `Ok(None)` when
/// the bytes are complete but name no server, `Err(n)` when at least `n`
/// bytes are needed to know. Bounds-checked throughout (RFC 8446 4.1.2,
/// RFC 6066 3).
pub fn sni_of_client_hello(bytes: &[u8]) -> Result<Option<String>, usize> {
    // Reassemble the handshake bytes of consecutive handshake records.
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        if bytes.len() < at + 5 {
            return Err(at + 5);
        }
        if bytes[at] != 0x16 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        if bytes.len() < at + 5 + len {
            return Err(at + 5 + len);
        }
        handshake.extend_from_slice(&bytes[at + 5..at + 5 + len]);
        at += 5 + len;
        if handshake.len() >= 4 {
            let body_len =
                (usize::from(handshake[1]) << 16) | (usize::from(handshake[2]) << 8) | usize::from(handshake[3]);
            if handshake.len() >= 4 + body_len {
                if handshake[0] != 0x01 {
                    return Ok(None);
                }
                return Ok(sni_in_hello_body(&handshake[4..4 + body_len]));
            }
        }
    }
}

/// The server_name extension's host name in a ClientHello body.
fn sni_in_hello_body(body: &[u8]) -> Option<String> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    let session = usize::from(r.u8()?);
    r.take(session)?;
    let suites = usize::from(r.u16()?);
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let ext_len = usize::from(r.u16()?);
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let data = exts.take(len)?;
        if ty != 0 {
            continue;
        }
        let mut list = Reader(data);
        let list_len = usize::from(list.u16()?);
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let n = usize::from(names.u16()?);
            let name = names.take(n)?;
            if name_type == 0 {
                return String::from_utf8(name.to_vec()).ok();
            }
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Reads the ClientHello off the connection, keeping every byte read.
async fn read_client_hello<S: AsyncRead + Unpin>(conn: &mut S) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let mut buf = Vec::new();
    loop {
        match sni_of_client_hello(&buf) {
            Ok(sni) => return Ok((buf, sni)),
            Err(need) if need > MAX_HELLO => return Ok((buf, None)),
            Err(need) => {
                let mut chunk = vec![0u8; need - buf.len()];
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    return Ok((buf, None));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// A byte stream a connection arrives on (a node port's TCP connection, or a
/// tunnel through the VPC fabric).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// Serves one connection on a gateway Service's node port: kube-proxy picks
/// the gateway pod (see [`Mesh::passthrough_destination`]).
pub async fn serve<S: Stream>(
    mesh: Arc<Mesh>,
    at: Arc<MeshCluster>,
    _clock: Clock,
    svc: &Value,
    port: u16,
    conn: S,
) -> std::io::Result<()> {
    pass_through(mesh.clone(), conn, |sni| mesh.passthrough_destination(&at, svc, port, sni)).await
}

/// Serves one connection that reached gateway pod `gateway` on `port` itself
/// (an NLB's target, through the VPC fabric): the same SNI routing, without
/// kube-proxy's pick.
pub async fn serve_at_gateway<S: Stream>(mesh: Arc<Mesh>, gateway: Found, port: u16, conn: S) -> std::io::Result<()> {
    pass_through(mesh.clone(), conn, |sni| mesh.passthrough_at_gateway(&gateway, port, sni)).await
}

/// Serves one mTLS connection that reached a pod with a sidecar directly
/// (a peer's sidecar dialling the pod IP): its sidecar terminates it.
pub async fn serve_at_sidecar<S: Stream>(mesh: Arc<Mesh>, dest: Found, port: u16, conn: S) -> std::io::Result<()> {
    let Some(config) = sidecar_config(&dest) else { return Ok(()) };
    sidecar(mesh, dest, port, config, conn).await;
    Ok(())
}

/// Reads the ClientHello, asks `route` where its SNI goes, and passes the
/// bytes through, both ways, to that pod's sidecar.
async fn pass_through<S: Stream>(
    mesh: Arc<Mesh>,
    mut conn: S,
    route: impl FnOnce(&str) -> Option<(Found, u16)>,
) -> std::io::Result<()> {
    let (hello, sni) = tokio::time::timeout(HELLO_TIMEOUT, read_client_hello(&mut conn))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no ClientHello in time"))??;
    // No SNI, or no passthrough for it: the gateway's listener closes the connection.
    let Some(sni) = sni else { return Ok(()) };
    let Some((dest, dest_port)) = route(&sni) else {
        tracing::debug!(%sni, "no passthrough route: closing");
        return Ok(());
    };
    let Some(config) = sidecar_config(&dest) else { return Ok(()) };
    let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(sidecar(mesh, dest, dest_port, config, theirs));
    ours.write_all(&hello).await?;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut ours).await;
    Ok(())
}

/// The destination sidecar's server side: a workload certificate from its cluster's CA.
fn sidecar_config(dest: &Found) -> Option<Arc<rustls::ServerConfig>> {
    WorkloadCa::in_use(&dest.cluster).and_then(|ca| ca.issue(&spiffe_id(&dest.pod)).and_then(|me| ca.server_config(me)))
}

/// The destination's sidecar: mTLS in, the request to the pod's program, the answer out.
async fn sidecar<S: Stream>(mesh: Arc<Mesh>, dest: Found, port: u16, config: Arc<rustls::ServerConfig>, stream: S) {
    let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await else {
        return;
    };
    let Ok(Some(req)) = wire::read_request(&mut tls).await else { return };
    let resp = mesh.answer(&dest.cluster, &dest.pod, port, &req);
    let _ = tls.write_all(&wire::write_response(&resp)).await;
    let _ = tls.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello(sni: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("hello");
        out
    }

    #[test]
    fn the_sni_is_read_from_a_real_rustls_client_hello() {
        let sni = "outbound_.5000_._.helloworld.sample.svc.cluster.local";
        let hello = client_hello(sni);
        assert_eq!(sni_of_client_hello(&hello), Ok(Some(sni.to_owned())));
        // Truncated: how many bytes are needed, never a wrong answer.
        for cut in [0, 3, 5, hello.len() - 1] {
            let need = sni_of_client_hello(&hello[..cut]).expect_err("incomplete");
            assert!(need > cut && need <= hello.len(), "cut {cut}: need {need}");
        }
        // Not TLS, or garbage inside: no SNI, no panic.
        assert_eq!(sni_of_client_hello(b"GET / HTTP/1.1\r\n\r\n"), Ok(None));
        let mut bad = hello.clone();
        for b in bad.iter_mut().skip(9).take(40) {
            *b = 0xff;
        }
        assert!(matches!(sni_of_client_hello(&bad), Ok(_) | Err(_)));
        assert_eq!(sni_of_client_hello(&client_hello("example.com")), Ok(Some("example.com".into())));
    }
}
