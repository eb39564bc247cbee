//! The real network a cluster's node sits on, for the twin when each cluster
//! runs in its own process (the K3s stand-in): a sidecar's upstream
//! connection to an address nobody in this process has leaves over real TCP,
//! as Envoy's would: TLS with the outbound cluster's SNI and the workload's
//! certificate, the peer verified against the cluster's root, then the
//! HTTP request. Failures come back as Envoy reports them.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::apps::HttpRequest;
use super::dataplane::{
    envoy_error, via_envoy, Delivery, Outcome, CERTIFICATE_VERIFY_FAILED_BODY, CONNECTION_REFUSED_BODY,
    CONNECTION_TERMINATION_BODY, CONNECT_TIMEOUT_BODY, ENVOY_CONNECT_TIMEOUT,
};
use super::identity::{spiffe_id, WorkloadCa};
use super::{wire, MeshCluster};

/// Envoy's default route timeout (15 s): how long an upstream may take to answer.
pub const ENVOY_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// The least wall time a real connect may take before it counts as timed out.
const MIN_WALL_CONNECT: Duration = Duration::from_secs(2);
/// The least wall time the TLS handshake, request and response may take
/// (two certificates signed by the clusters' RSA intermediates, under load).
const MIN_WALL_EXCHANGE: Duration = Duration::from_secs(5);

/// Which addresses the node reaches on the wire (the rest: SYNs unanswered).
pub type Reachable = Arc<dyn Fn(Ipv4Addr) -> bool + Send + Sync>;

/// A request's upstream leg that leaves the process.
pub struct RemoteLeg {
    pub from: Arc<MeshCluster>,
    /// The client pod (its workload identity is the client certificate's).
    pub pod: Value,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The SNI Istio's sidecar sends for the outbound cluster.
    pub sni: String,
    pub req: HttpRequest,
}

/// Runs the leg: connect (Envoy's connect timeout, compressed by the
/// cluster's clock), mTLS, the request, the response.
pub async fn run(leg: RemoteLeg) -> Delivery {
    let clock = leg.from.cluster.clock;
    let started = Instant::now();
    let simulated = |since: Instant| Duration::from_secs_f64(since.elapsed().as_secs_f64() * clock.scale());
    let fail = |body: &str| Delivery::now_response(envoy_error(503, body));
    // Simulated time is compressed, but a real connection and real TLS on a busy
    // machine take real time: the compressed deadlines get a wall-time floor,
    // so that only a peer that really does not answer runs into them.
    let connect_within = clock.compress(ENVOY_CONNECT_TIMEOUT).max(MIN_WALL_CONNECT);
    let connect = tokio::time::timeout(connect_within, tokio::net::TcpStream::connect((leg.ip, leg.port))).await;
    let tcp = match connect {
        Err(_) => {
            return Delivery {
                after: ENVOY_CONNECT_TIMEOUT.saturating_sub(simulated(started)),
                outcome: Outcome::Response(envoy_error(503, CONNECT_TIMEOUT_BODY)),
            }
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return fail(CONNECTION_REFUSED_BODY),
        Ok(Err(_)) => return fail(CONNECT_TIMEOUT_BODY),
        Ok(Ok(tcp)) => tcp,
    };
    let Some(config) =
        WorkloadCa::in_use(&leg.from).and_then(|ca| ca.issue(&spiffe_id(&leg.pod)).and_then(|me| ca.client_config(me)))
    else {
        // No signing CA in the cluster: the sidecar has no certificate to present.
        return fail(CERTIFICATE_VERIFY_FAILED_BODY);
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(leg.sni.clone()) else {
        return fail(CONNECTION_TERMINATION_BODY);
    };
    let budget = clock.compress(ENVOY_ROUTE_TIMEOUT).max(MIN_WALL_EXCHANGE);
    let exchange = async {
        let mut tls = match tokio_rustls::TlsConnector::from(config).connect(server_name, tcp).await {
            Ok(tls) => tls,
            Err(e) => return Err(is_certificate_error(&e)),
        };
        tls.write_all(&wire::write_request(&leg.req)).await.map_err(|_| false)?;
        tls.flush().await.map_err(|_| false)?;
        wire::read_response(&mut tls).await.map_err(|_| false)
    };
    match tokio::time::timeout(budget, exchange).await {
        Ok(Ok(resp)) => Delivery::now_response(via_envoy(resp)),
        Ok(Err(true)) => fail(CERTIFICATE_VERIFY_FAILED_BODY),
        Ok(Err(false)) | Err(_) => fail(CONNECTION_TERMINATION_BODY),
    }
}

/// Whether a TLS failure was our side refusing the peer's certificate.
fn is_certificate_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)))
}

/// The node's directly connected IPv4 networks (the kernel's routes without
/// a gateway, /proc/net/route) and loopback: the addresses a packet from the
/// node reaches on the wire. Anything else would go to the default gateway.
pub fn directly_connected() -> Vec<(Ipv4Addr, u32)> {
    let mut nets = vec![(Ipv4Addr::new(127, 0, 0, 0), 0xff00_0000)];
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return nets;
    };
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dest), Some(gw), Some(mask)) = (f.get(1), f.get(2), f.get(7)) else { continue };
        // /proc/net/route prints each address as the native integer of its network-order bytes.
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|raw| u32::from_be_bytes(raw.to_ne_bytes()));
        let (Some(dest), Some(gw), Some(mask)) = (hex(dest), hex(gw), hex(mask)) else { continue };
        if gw == 0 && mask != 0 {
            nets.push((Ipv4Addr::from(dest), mask));
        }
    }
    nets
}

/// Whether `ip` is in one of `nets`.
pub fn in_networks(nets: &[(Ipv4Addr, u32)], ip: Ipv4Addr) -> bool {
    nets.iter().any(|(net, mask)| u32::from(ip) & mask == u32::from(*net) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_reachable_and_other_networks_only_when_connected() {
        let nets = vec![(Ipv4Addr::new(127, 0, 0, 0), 0xff00_0000), (Ipv4Addr::new(172, 17, 0, 0), 0xffff_0000)];
        assert!(in_networks(&nets, Ipv4Addr::new(127, 0, 0, 3)));
        assert!(in_networks(&nets, Ipv4Addr::new(172, 17, 4, 2)));
        assert!(!in_networks(&nets, Ipv4Addr::new(10, 44, 0, 5)));
        assert!(in_networks(&directly_connected(), Ipv4Addr::new(127, 0, 0, 2)));
    }
}
