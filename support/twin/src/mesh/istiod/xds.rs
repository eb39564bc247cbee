//! What istiod sends each proxy for its outbound clusters (EDS), by the rules
//! of reference/istio-multinetwork.md, "How istiod builds a client's
//! endpoints across networks":
//!
//! - every Service port of every known cluster is a cluster
//!   `outbound|<port>||<svc>.<ns>.svc.cluster.local`; the same Service in
//!   several clusters is one host with the endpoints of all of them;
//! - a proxy asking for a network view (`ISTIO_META_REQUESTED_NETWORK_VIEW`)
//!   sees only endpoints of those networks (and of no network);
//! - no network gateway anywhere: every endpoint as is, weight 1;
//! - else weights are scaled by the LCM of the gateway counts; an endpoint of
//!   the proxy's network, or of a network without gateways, stays; a remote
//!   endpoint becomes its network's gateways on 15443 (those of its own
//!   cluster preferred), its weight split evenly over them; remote endpoints
//!   without a sidecar (no mTLS) are dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::registry::ClusterView;
use crate::mesh::injection::{NETWORK_LABEL, TLS_MODE_LABEL};
use crate::programs::nodes::{REGION_LABEL, ZONE_LABEL};
use crate::programs::objects::{self, pod, service};

pub const CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
}

/// One endpoint of a service as istiod's registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IstioEndpoint {
    pub address: String,
    pub port: u16,
    pub network: String,
    pub cluster: String,
    pub locality: Locality,
    /// The pod has a sidecar (`security.istio.io/tlsMode=istio`): reachable over mTLS.
    pub mtls: bool,
}

/// A network's entry point for other networks (`/debug/networkz`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkGateway {
    pub network: String,
    pub cluster: String,
    pub addr: String,
    pub port: u16,
}

/// What istiod knows of the proxy it builds for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyView {
    pub network: String,
    /// Empty: every network is visible.
    pub requested_networks: Vec<String>,
}

/// One host of an Envoy cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbEndpoint {
    pub address: String,
    pub port: u16,
    pub weight: u32,
    pub locality: Locality,
}

/// One EDS cluster and its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LbEndpoint>,
}

pub fn service_host(namespace: &str, name: &str) -> String {
    format!("{name}.{namespace}.svc.{CLUSTER_DOMAIN}")
}

pub fn cluster_name(port: u16, host: &str) -> String {
    format!("outbound|{port}||{host}")
}

/// The SNI a sidecar sends to a remote network's gateway for a cluster
/// (Istio's DNS SRV subset key: `outbound_.<port>_.<subset>_.<host>`).
pub fn sni_of(port: u16, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// The cluster an AUTO_PASSTHROUGH gateway routes an SNI to.
pub fn cluster_of_sni(sni: &str) -> Option<String> {
    let rest = sni.strip_prefix("outbound_.")?;
    let (port, rest) = rest.split_once("_.")?;
    let (subset, host) = rest.split_once("_.")?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| format!("outbound|{port}|{subset}|{host}"))
}

/// Every service port of every cluster (as an Envoy cluster name) with the
/// ready endpoints behind it in all clusters.
pub fn service_endpoints(views: &[ClusterView]) -> BTreeMap<String, Vec<IstioEndpoint>> {
    let mut out: BTreeMap<String, Vec<IstioEndpoint>> = BTreeMap::new();
    for view in views {
        for svc in &view.services {
            if service::type_(svc) == "ExternalName" {
                continue;
            }
            let (ns, name) = (objects::namespace(svc), objects::name(svc));
            let host = service_host(ns, name);
            let eps = view.endpoints.iter().find(|e| objects::namespace(e) == ns && objects::name(e) == name);
            for sp in service::ports(svc) {
                let list = out.entry(cluster_name(sp.port, &host)).or_default();
                if let Some(eps) = eps {
                    list.extend(endpoints_of_port(view, eps, sp.name.as_deref()));
                }
            }
        }
    }
    out
}

/// The ready addresses of an Endpoints object for the Service port named `port_name`.
fn endpoints_of_port(view: &ClusterView, eps: &Value, port_name: Option<&str>) -> Vec<IstioEndpoint> {
    let mut out = Vec::new();
    for subset in eps.get("subsets").and_then(Value::as_array).into_iter().flatten() {
        let ports: Vec<&Value> = subset.get("ports").and_then(Value::as_array).into_iter().flatten().collect();
        let port = match port_name {
            Some(n) => ports.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(n)),
            None => ports.iter().find(|p| p.get("name").and_then(Value::as_str).is_none_or(str::is_empty)),
        };
        let Some(number) = port.and_then(|p| p.get("port")?.as_u64()).and_then(|n| u16::try_from(n).ok()) else {
            continue;
        };
        for address in subset.get("addresses").and_then(Value::as_array).into_iter().flatten() {
            let Some(ip) = address.get("ip").and_then(Value::as_str) else {
                continue;
            };
            let target = address.get("targetRef");
            let pod_obj = target.and_then(|t| {
                let ns = t.get("namespace").and_then(Value::as_str).unwrap_or(objects::namespace(eps));
                view.pod(ns, t.get("name")?.as_str()?)
            });
            let labels = pod_obj.map(objects::labels).unwrap_or_default();
            let node = address
                .get("nodeName")
                .and_then(Value::as_str)
                .or_else(|| pod_obj.and_then(pod::node_name))
                .unwrap_or("");
            out.push(IstioEndpoint {
                address: ip.to_owned(),
                port: number,
                network: labels.get(NETWORK_LABEL).cloned().unwrap_or_else(|| view.network.clone()),
                cluster: view.id.clone(),
                locality: locality_of(&view.nodes, node),
                mtls: labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio"),
            });
        }
    }
    out
}

fn locality_of(nodes: &[Value], node_name: &str) -> Locality {
    let labels = nodes.iter().find(|n| objects::name(n) == node_name).map(objects::labels).unwrap_or_default();
    Locality {
        region: labels.get(REGION_LABEL).cloned().unwrap_or_default(),
        zone: labels.get(ZONE_LABEL).cloned().unwrap_or_default(),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The LCM of the number of gateways per network and per network and cluster.
pub fn lb_weight_scale_factor(gateways: &[NetworkGateway]) -> u32 {
    let mut per_network: BTreeMap<&str, u32> = BTreeMap::new();
    let mut per_cluster: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for gw in gateways {
        *per_network.entry(&gw.network).or_default() += 1;
        *per_cluster.entry((&gw.network, &gw.cluster)).or_default() += 1;
    }
    per_network.values().chain(per_cluster.values()).fold(1, |l, &n| l / gcd(l, n) * n)
}

/// Istio's "same network": equal, or either one unknown.
fn in_network(proxy: &str, endpoint: &str) -> bool {
    proxy.is_empty() || endpoint.is_empty() || proxy == endpoint
}

/// The gateways to reach a network's endpoint of `cluster` through: that
/// cluster's if it has some, else the network's.
fn gateways_for<'a>(gateways: &'a [NetworkGateway], network: &str, cluster: &str) -> Vec<&'a NetworkGateway> {
    let same_cluster: Vec<&NetworkGateway> =
        gateways.iter().filter(|g| g.network == network && g.cluster == cluster).collect();
    if !same_cluster.is_empty() {
        return same_cluster;
    }
    gateways.iter().filter(|g| g.network == network).collect()
}

/// The hosts of one cluster for one proxy.
pub fn build_endpoints(proxy: &ProxyView, endpoints: &[IstioEndpoint], gateways: &[NetworkGateway]) -> Vec<LbEndpoint> {
    let visible = endpoints.iter().filter(|ep| {
        proxy.requested_networks.is_empty()
            || ep.network.is_empty()
            || proxy.requested_networks.iter().any(|n| n == &ep.network)
    });
    let direct = |ep: &IstioEndpoint, weight: u32| LbEndpoint {
        address: ep.address.clone(),
        port: ep.port,
        weight,
        locality: ep.locality.clone(),
    };
    if gateways.is_empty() {
        return visible.map(|ep| direct(ep, 1)).collect();
    }
    let scale = lb_weight_scale_factor(gateways);
    // Per locality, as Envoy groups hosts: direct hosts, then gateways.
    let mut groups: BTreeMap<Locality, (Vec<LbEndpoint>, BTreeMap<&NetworkGateway, u32>)> = BTreeMap::new();
    for ep in visible {
        let group = groups.entry(ep.locality.clone()).or_default();
        let through = gateways_for(gateways, &ep.network, &ep.cluster);
        if in_network(&proxy.network, &ep.network) || through.is_empty() {
            group.0.push(direct(ep, scale));
            continue;
        }
        if !ep.mtls {
            continue;
        }
        let share = scale / u32::try_from(through.len()).unwrap_or(u32::MAX).max(1);
        for gw in through {
            *group.1.entry(gw).or_default() += share;
        }
    }
    let mut out = Vec::new();
    for (locality, (hosts, via)) in groups {
        out.extend(hosts);
        out.extend(via.into_iter().filter(|(_, w)| *w > 0).map(|(gw, weight)| LbEndpoint {
            address: gw.addr.clone(),
            port: gw.port,
            weight,
            locality: locality.clone(),
        }));
    }
    out
}

/// Every outbound cluster of a proxy, sorted by name.
pub fn load_assignments(
    proxy: &ProxyView,
    services: &BTreeMap<String, Vec<IstioEndpoint>>,
    gateways: &[NetworkGateway],
) -> Vec<ClusterLoadAssignment> {
    services
        .iter()
        .map(|(name, eps)| ClusterLoadAssignment {
            cluster_name: name.clone(),
            endpoints: build_endpoints(proxy, eps, gateways),
        })
        .collect()
}

/// Networks named in `ISTIO_META_REQUESTED_NETWORK_VIEW` (comma-separated).
pub fn requested_networks(value: Option<&str>) -> Vec<String> {
    let set: BTreeSet<String> =
        value.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(ip: &str, network: &str, cluster: &str, zone: &str, mtls: bool) -> IstioEndpoint {
        IstioEndpoint {
            address: ip.into(),
            port: 5000,
            network: network.into(),
            cluster: cluster.into(),
            locality: Locality { region: "us-west-2".into(), zone: zone.into() },
            mtls,
        }
    }

    fn gw(network: &str, cluster: &str, addr: &str) -> NetworkGateway {
        NetworkGateway { network: network.into(), cluster: cluster.into(), addr: addr.into(), port: 15443 }
    }

    fn sidecar(network: &str) -> ProxyView {
        ProxyView { network: network.into(), requested_networks: vec![] }
    }

    fn seed_gateways() -> Vec<NetworkGateway> {
        vec![
            gw("network1", "cluster1", "35.1.1.1"),
            gw("network1", "cluster1", "35.1.1.2"),
            gw("network1", "cluster1", "35.1.1.3"),
            gw("network2", "cluster2", "44.227.39.238"),
            gw("network2", "cluster2", "44.229.207.145"),
            gw("network2", "cluster2", "52.33.147.49"),
        ]
    }

    fn hosts(eps: &[LbEndpoint]) -> Vec<(String, u16, u32)> {
        let mut v: Vec<_> = eps.iter().map(|e| (e.address.clone(), e.port, e.weight)).collect();
        v.sort();
        v
    }

    #[test]
    fn the_seed_case_local_pod_weight_3_and_each_remote_gateway_weight_1() {
        let eps = [
            ep("10.1.8.162", "network1", "cluster1", "us-west-2a", true),
            ep("10.2.5.9", "network2", "cluster2", "us-west-2b", true),
        ];
        let got = build_endpoints(&sidecar("network1"), &eps, &seed_gateways());
        assert_eq!(
            hosts(&got),
            [
                ("10.1.8.162".into(), 5000, 3),
                ("44.227.39.238".into(), 15443, 1),
                ("44.229.207.145".into(), 15443, 1),
                ("52.33.147.49".into(), 15443, 1)
            ]
        );
        // Gateways stand in the remote pod's locality.
        assert!(got.iter().filter(|e| e.port == 15443).all(|e| e.locality.zone == "us-west-2b"));
    }

    #[test]
    fn without_any_gateway_every_endpoint_goes_as_is_and_unreachable_remote_pods_included() {
        let eps =
            [ep("10.1.8.162", "network1", "cluster1", "a", true), ep("10.2.5.9", "network2", "cluster2", "b", true)];
        assert_eq!(
            hosts(&build_endpoints(&sidecar("network1"), &eps, &[])),
            [("10.1.8.162".into(), 5000, 1), ("10.2.5.9".into(), 5000, 1)]
        );
        // Gateways of the proxy's own network only: the remote network has
        // none, so its pod stays as is (and is scaled like the rest).
        let own = vec![gw("network1", "cluster1", "35.1.1.1"), gw("network1", "cluster1", "35.1.1.2")];
        assert_eq!(
            hosts(&build_endpoints(&sidecar("network1"), &eps, &own)),
            [("10.1.8.162".into(), 5000, 2), ("10.2.5.9".into(), 5000, 2)]
        );
    }

    #[test]
    fn remote_pods_without_sidecar_are_dropped_and_weights_add_up_per_gateway() {
        let eps = [
            ep("10.2.5.9", "network2", "cluster2", "b", true),
            ep("10.2.5.10", "network2", "cluster2", "b", true),
            ep("10.2.5.11", "network2", "cluster2", "b", false),
        ];
        let two = vec![
            gw("network2", "cluster2", "44.0.0.1"),
            gw("network2", "cluster2", "44.0.0.2"),
            gw("network1", "cluster1", "35.0.0.1"),
            gw("network1", "cluster1", "35.0.0.2"),
            gw("network1", "cluster1", "35.0.0.3"),
        ];
        assert_eq!(lb_weight_scale_factor(&two), 6);
        assert_eq!(
            hosts(&build_endpoints(&sidecar("network1"), &eps, &two)),
            [("44.0.0.1".into(), 15443, 6), ("44.0.0.2".into(), 15443, 6)],
            "two pods of weight 6 split over two gateways"
        );
    }

    #[test]
    fn a_requested_network_view_hides_other_networks() {
        let eps = [
            ep("10.1.8.162", "network1", "cluster1", "a", true),
            ep("10.2.5.9", "network2", "cluster2", "b", true),
            ep("10.9.9.9", "", "cluster2", "b", true),
        ];
        let gateway =
            ProxyView { network: "network2".into(), requested_networks: requested_networks(Some("network2")) };
        assert_eq!(
            hosts(&build_endpoints(&gateway, &eps, &seed_gateways())),
            [("10.2.5.9".into(), 5000, 3), ("10.9.9.9".into(), 5000, 3)]
        );
    }

    #[test]
    fn gateways_of_the_endpoint_cluster_are_preferred() {
        let gws = vec![gw("network2", "cluster2", "44.0.0.1"), gw("network2", "cluster3", "44.0.0.9")];
        let eps = [ep("10.3.0.1", "network2", "cluster3", "b", true)];
        assert_eq!(hosts(&build_endpoints(&sidecar("network1"), &eps, &gws)), [("44.0.0.9".into(), 15443, 2)]);
    }

    #[test]
    fn services_merge_across_clusters_with_ports_by_name_and_pod_metadata() {
        let svc = json!({"metadata": {"name": "helloworld", "namespace": "sample"},
                         "spec": {"selector": {"app": "helloworld"}, "ports": [{"name": "http", "port": 5000}]}});
        let eps = |ip: &str, pod: &str| {
            json!({"metadata": {"name": "helloworld", "namespace": "sample"},
            "subsets": [{"addresses": [{"ip": ip, "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "sample", "name": pod}}],
                         "notReadyAddresses": [{"ip": "10.9.9.9"}],
                         "ports": [{"name": "http", "port": 5000, "protocol": "TCP"}]}]})
        };
        let pod =
            |name: &str, labels: Value| json!({"metadata": {"name": name, "namespace": "sample", "labels": labels}});
        let node = json!({"metadata": {"name": "n1", "labels": {REGION_LABEL: "us-west-2", ZONE_LABEL: "us-west-2c"}}});
        let one = ClusterView {
            id: "cluster1".into(),
            network: "network1".into(),
            services: vec![svc.clone()],
            endpoints: vec![eps("10.1.0.5", "hw1")],
            pods: vec![pod("hw1", json!({TLS_MODE_LABEL: "istio"}))],
            nodes: vec![node.clone()],
        };
        let two = ClusterView {
            id: "cluster2".into(),
            network: "network2".into(),
            services: vec![svc],
            endpoints: vec![eps("10.2.0.5", "hw2")],
            pods: vec![pod("hw2", json!({NETWORK_LABEL: "network9"}))],
            nodes: vec![node],
        };
        let all = service_endpoints(&[one, two]);
        let hw = &all["outbound|5000||helloworld.sample.svc.cluster.local"];
        assert_eq!(hw.len(), 2);
        assert_eq!(
            (hw[0].network.as_str(), hw[0].mtls, hw[0].locality.zone.as_str()),
            ("network1", true, "us-west-2c")
        );
        assert_eq!((hw[1].network.as_str(), hw[1].mtls, hw[1].cluster.as_str()), ("network9", false, "cluster2"));
    }

    #[test]
    fn sni_names_the_cluster() {
        let host = service_host("sample", "helloworld");
        assert_eq!(sni_of(5000, "", &host), "outbound_.5000_._.helloworld.sample.svc.cluster.local");
        assert_eq!(
            cluster_of_sni(&sni_of(5000, "", &host)).as_deref(),
            Some("outbound|5000||helloworld.sample.svc.cluster.local")
        );
        assert_eq!(
            cluster_of_sni(&sni_of(5000, "v1", &host)).as_deref(),
            Some("outbound|5000|v1|helloworld.sample.svc.cluster.local")
        );
        assert_eq!(cluster_of_sni("example.com"), None);
        assert_eq!(cluster_of_sni("outbound_.x_._.h"), None);
    }
}
