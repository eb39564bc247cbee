//! How istiod finds network gateways (reference/istio-multinetwork.md, "How
//! istiod finds gateways"): a Service labelled `topology.istio.io/network`
//! that exposes 15443, in any known cluster, is its network's gateway, at the
//! addresses of `status.loadBalancer.ingress[]` (an IP, else a hostname that
//! istiod resolves itself: one gateway per A record), else its externalIPs.
//!
//! Hostnames are resolved over DNS (the twin's server, UDP) with the answer's
//! TTL clamped to 30 s..1 h; a name that does not resolve is logged and tried
//! again after 30 s, and until then that gateway does not exist.
//!
//! Source: Istio 1.20.2 pilot/pkg/model/network.go (hostname gateways resolved
//! while RESOLVE_HOSTNAME_GATEWAYS, default true in pilot/pkg/features/pilot.go;
//! the warning `could not resolve hostname "<host>" for <n> gateways`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::registry::ClusterView;
use super::xds::NetworkGateway;
use crate::mesh::injection::NETWORK_LABEL;
use crate::programs::objects::{self, service};

/// The port cross-network traffic enters a gateway on (Istio's default).
pub const GATEWAY_PORT: u16 = 15443;
/// Overrides [`GATEWAY_PORT`] on a gateway Service.
const GATEWAY_PORT_LABEL: &str = "networking.istio.io/gatewayPort";
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(3600);
pub const RETRY_UNRESOLVED: Duration = Duration::from_secs(30);

/// Where one gateway Service says its address is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GatewayAddress {
    Ip(String),
    Hostname(String),
}

/// A gateway Service's address, before hostnames are resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GatewaySource {
    pub network: String,
    pub cluster: String,
    pub address: GatewayAddress,
    pub port: u16,
}

/// Every gateway Service of the known clusters, one entry per address.
pub fn gateway_sources(views: &[ClusterView]) -> Vec<GatewaySource> {
    let mut out = Vec::new();
    for view in views {
        for svc in &view.services {
            let labels = objects::labels(svc);
            let Some(network) = labels.get(NETWORK_LABEL).filter(|n| !n.is_empty()) else {
                continue;
            };
            let port = labels.get(GATEWAY_PORT_LABEL).and_then(|p| p.parse().ok()).unwrap_or(GATEWAY_PORT);
            if !service::ports(svc).iter().any(|p| p.port == port) {
                continue;
            }
            let mut addresses = Vec::new();
            for ingress in svc.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).into_iter().flatten() {
                let text = |k: &str| ingress.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                if let Some(ip) = text("ip") {
                    addresses.push(GatewayAddress::Ip(ip.to_owned()));
                } else if let Some(host) = text("hostname") {
                    addresses.push(GatewayAddress::Hostname(host.to_ascii_lowercase()));
                }
            }
            if addresses.is_empty() {
                let external = svc.pointer("/spec/externalIPs").and_then(Value::as_array);
                addresses.extend(
                    external
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|ip| GatewayAddress::Ip(ip.to_owned())),
                );
            }
            out.extend(addresses.into_iter().map(|address| GatewaySource {
                network: network.clone(),
                cluster: view.id.clone(),
                address,
                port,
            }));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What istiod remembers of a hostname (simulated times).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolution {
    Resolved { ips: Vec<Ipv4Addr>, until: Duration },
    Unresolvable { retry_at: Duration },
}

/// istiod's cache of gateway hostnames.
#[derive(Debug, Default)]
pub struct DnsCache {
    entries: BTreeMap<String, Resolution>,
}

impl DnsCache {
    /// Hostnames among `sources` that are due for a lookup at `now`.
    pub fn due(&self, sources: &[GatewaySource], now: Duration) -> Vec<String> {
        let mut names: Vec<String> = sources
            .iter()
            .filter_map(|s| match &s.address {
                GatewayAddress::Hostname(h) => Some(h.clone()),
                GatewayAddress::Ip(_) => None,
            })
            .filter(|h| match self.entries.get(h) {
                None => true,
                Some(Resolution::Resolved { until, .. }) => now >= *until,
                Some(Resolution::Unresolvable { retry_at }) => now >= *retry_at,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Records a lookup made at `now`: addresses with their TTL, or `None`.
    pub fn record(&mut self, host: &str, answer: Option<(Vec<Ipv4Addr>, Duration)>, now: Duration) {
        let entry = match answer {
            Some((ips, ttl)) if !ips.is_empty() => {
                Resolution::Resolved { ips, until: now + ttl.clamp(MIN_TTL, MAX_TTL) }
            }
            _ => Resolution::Unresolvable { retry_at: now + RETRY_UNRESOLVED },
        };
        self.entries.insert(host.to_owned(), entry);
    }

    /// Whether a lookup of `host` was made (resolved or not) and is remembered.
    pub fn tried(&self, host: &str) -> bool {
        self.entries.contains_key(host)
    }

    /// Whether a hostname among `sources` was never looked up: istiod resolves
    /// a gateway's hostname as it reloads its gateways, before it pushes
    /// (Istio 1.20.2 pilot/pkg/model/network.go `reload` calls
    /// `resolveHostnameGateways`, which waits for the answer), so no proxy
    /// gets a config built without it.
    pub fn never_looked_up(&self, sources: &[GatewaySource]) -> bool {
        sources.iter().any(|s| matches!(&s.address, GatewayAddress::Hostname(h) if !self.entries.contains_key(h)))
    }

    /// Forgets names no gateway uses any more.
    pub fn retain(&mut self, sources: &[GatewaySource]) {
        self.entries.retain(|h, _| sources.iter().any(|s| s.address == GatewayAddress::Hostname(h.clone())));
    }

    /// The gateways, with hostnames replaced by their cached addresses (an
    /// unresolved hostname gives none).
    pub fn gateways(&self, sources: &[GatewaySource]) -> Vec<NetworkGateway> {
        let mut out = Vec::new();
        for s in sources {
            let addrs: Vec<String> = match &s.address {
                GatewayAddress::Ip(ip) => vec![ip.clone()],
                GatewayAddress::Hostname(h) => match self.entries.get(h) {
                    Some(Resolution::Resolved { ips, .. }) => ips.iter().map(Ipv4Addr::to_string).collect(),
                    _ => Vec::new(),
                },
            };
            out.extend(addrs.into_iter().map(|addr| NetworkGateway {
                network: s.network.clone(),
                cluster: s.cluster.clone(),
                addr,
                port: s.port,
            }));
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Asks a DNS server for the A records of `host` over UDP: the addresses and
/// the smallest TTL, `Ok(None)` for a name that does not resolve.
pub async fn lookup_a(server: SocketAddr, host: &str) -> Result<Option<(Vec<Ipv4Addr>, Duration)>, String> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

    let fqdn = if host.ends_with('.') { host.to_owned() } else { format!("{host}.") };
    let name = Name::from_ascii(&fqdn).map_err(|e| format!("bad hostname {host:?}: {e}"))?;
    let mut query = Message::new();
    query
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, RecordType::A));
    let bytes = query.to_bytes().map_err(|e| e.to_string())?;
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(|e| e.to_string())?;
    socket.send_to(&bytes, server).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .map_err(|_| "DNS query timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let Ok(answer) = Message::from_bytes(&buf[..n]) else {
            continue;
        };
        if answer.id() != query.id() {
            continue;
        }
        if answer.response_code() == ResponseCode::NXDomain {
            return Ok(None);
        }
        if answer.response_code() != ResponseCode::NoError {
            return Err(format!("DNS answered {}", answer.response_code()));
        }
        let mut ttl = u32::MAX;
        let ips: Vec<Ipv4Addr> = answer
            .answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => {
                    ttl = ttl.min(r.ttl());
                    Some(a.0)
                }
                _ => None,
            })
            .collect();
        return Ok((!ips.is_empty()).then(|| (ips, Duration::from_secs(u64::from(ttl)))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway_service(labels: Value, status: Value) -> Value {
        json!({"metadata": {"name": "istio-eastwestgateway", "namespace": "istio-ingress", "labels": labels},
               "spec": {"type": "LoadBalancer", "ports": [{"name": "tls", "port": 15443}], "externalIPs": ["1.2.3.4"]},
               "status": status})
    }

    fn view(services: Vec<Value>) -> ClusterView {
        ClusterView { id: "cluster2".into(), network: "network2".into(), services, ..ClusterView::default() }
    }

    #[test]
    fn a_labelled_service_with_15443_is_a_gateway_at_its_ingress_addresses() {
        let nlb = "k8s-istioing-istioeas-1a2b3c4d5e-0123456789abcdef.elb.us-west-2.amazonaws.com";
        let svc = gateway_service(
            json!({NETWORK_LABEL: "network2"}),
            json!({"loadBalancer": {"ingress": [{"hostname": nlb.to_uppercase()}, {"ip": "9.9.9.9"}]}}),
        );
        let got = gateway_sources(&[view(vec![svc.clone()])]);
        assert_eq!(
            got.iter().map(|s| s.address.clone()).collect::<Vec<_>>(),
            [GatewayAddress::Ip("9.9.9.9".into()), GatewayAddress::Hostname(nlb.into())]
        );
        assert!(got.iter().all(|s| s.network == "network2" && s.cluster == "cluster2" && s.port == 15443));

        let pending = gateway_service(json!({NETWORK_LABEL: "network2"}), json!({"loadBalancer": {}}));
        assert_eq!(gateway_sources(&[view(vec![pending])])[0].address, GatewayAddress::Ip("1.2.3.4".into()));

        let unlabelled = gateway_service(json!({"istio": "eastwestgateway"}), json!({}));
        assert!(gateway_sources(&[view(vec![unlabelled])]).is_empty());
        let mut no_port = svc;
        no_port["spec"]["ports"] = json!([{"port": 15021}]);
        assert!(gateway_sources(&[view(vec![no_port])]).is_empty());
    }

    #[test]
    fn hostnames_resolve_into_one_gateway_per_address_and_failures_wait_30s() {
        let host = "nlb.elb.us-west-2.amazonaws.com".to_owned();
        let sources = vec![GatewaySource {
            network: "network2".into(),
            cluster: "cluster2".into(),
            address: GatewayAddress::Hostname(host.clone()),
            port: 15443,
        }];
        let mut cache = DnsCache::default();
        let t0 = Duration::from_secs(100);
        assert_eq!(cache.due(&sources, t0), std::slice::from_ref(&host));
        assert!(cache.never_looked_up(&sources));
        cache.record(&host, None, t0);
        assert!(!cache.never_looked_up(&sources), "looked up, even without an answer");
        assert!(cache.gateways(&sources).is_empty(), "no gateway while unresolved");
        assert!(cache.due(&sources, t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(cache.due(&sources, t0 + Duration::from_secs(30)), std::slice::from_ref(&host));

        let ips = vec![Ipv4Addr::new(44, 0, 0, 1), Ipv4Addr::new(44, 0, 0, 2), Ipv4Addr::new(44, 0, 0, 3)];
        let t1 = t0 + Duration::from_secs(30);
        cache.record(&host, Some((ips, Duration::from_secs(5))), t1);
        let gws = cache.gateways(&sources);
        assert_eq!(gws.len(), 3);
        assert_eq!(gws[0].addr, "44.0.0.1");
        assert!(cache.due(&sources, t1 + Duration::from_secs(29)).is_empty(), "a 5 s TTL counts as 30 s");
        assert_eq!(cache.due(&sources, t1 + Duration::from_secs(30)), [host]);
        cache.retain(&[]);
        assert!(cache.gateways(&sources).is_empty());
    }
}
