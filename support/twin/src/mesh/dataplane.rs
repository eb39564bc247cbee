//! The mesh's data plane, in-process: where one HTTP request from a pod goes
//! and what comes back (reference/istio-multinetwork.md and DESIGN.md "The
//! twin"). Nothing crosses a real socket; delays are simulated time.
//!
//! - A pod with a sidecar calling a Service: Envoy picks one of the
//!   endpoints istiod gave it, by weight. A pod IP of its own VPC answers
//!   directly; a gateway address (an NLB's public IP on 15443) crosses
//!   networks only if that NLB has a healthy target there, a `Gateway` of the
//!   NLB's cluster selects that target and passes the SNI through
//!   (AUTO_PASSTHROUGH, matching hosts), and both clusters' istiods share a
//!   root; the gateway (its own network view) then picks the pod. Anything
//!   else fails as Envoy says it does (503 and a reason).
//! - A pod without a sidecar: kube-proxy, to the local endpoints only.
//! - Plain TCP to an address nobody in the VPC has: SYNs go unanswered.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::apps::{self, HttpRequest, HttpResponse};
use super::envoy;
use super::injection;
use super::istiod::xds::{self, ClusterLoadAssignment, LbEndpoint};
use super::network::RemoteLeg;
use super::{Mesh, MeshCluster};
use crate::aws::{LoadBalancerInfo, TargetGroupInfo};
use crate::kube::Resource;
use crate::programs::listening::{is_istio_gateway, listens_on};
use crate::programs::load_balancer_controller::running_instance;
use crate::programs::objects::{self, pod, service};

/// Envoy's connect timeout for upstream hosts (Istio's default).
pub const ENVOY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Linux keeps retrying a SYN nobody answers (6 retries).
pub const KERNEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(127);
/// The port istiod serves its debug endpoints on.
pub const ISTIOD_DEBUG_PORT: u16 = 15014;

pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
pub const CONNECT_TIMEOUT_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection timeout";
pub const CONNECTION_TERMINATION_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
pub const CONNECTION_REFUSED_BODY: &str = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111";
pub const CERTIFICATE_VERIFY_FAILED_BODY: &str = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";

/// What became of a connection and its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Response(HttpResponse),
    /// The SYN was answered with a RST.
    Refused,
    /// Nobody answered the SYN.
    Unreachable,
    /// Accepted, then reset before any answer.
    Reset,
}

/// An outcome and how long (simulated) it took to happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub after: Duration,
    pub outcome: Outcome,
}

impl Delivery {
    fn now(outcome: Outcome) -> Delivery {
        Delivery { after: Duration::ZERO, outcome }
    }

    fn response(r: HttpResponse) -> Delivery {
        Delivery::now(Outcome::Response(r))
    }

    /// A response, at once.
    pub fn now_response(r: HttpResponse) -> Delivery {
        Delivery::response(r)
    }
}

/// An answer Envoy makes up itself.
pub fn envoy_error(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, "text/plain", body).with_header("server", "envoy")
}

/// An upstream's answer as Envoy passes it on.
pub fn via_envoy(r: HttpResponse) -> HttpResponse {
    r.with_header("server", "envoy").with_header("x-envoy-upstream-service-time", "1")
}

/// Picks a host by weight.
pub fn pick(hosts: &[LbEndpoint]) -> Option<&LbEndpoint> {
    let total: u64 = hosts.iter().map(|h| u64::from(h.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut at = rand::random_range(0..total);
    hosts.iter().find(|h| {
        if at < u64::from(h.weight) {
            return true;
        }
        at -= u64::from(h.weight);
        false
    })
}

/// Whether a pod runs an injected sidecar (a gateway's proxy is not one).
pub fn has_sidecar(p: &Value) -> bool {
    injection::proxy_container_of(p).is_some() && !is_istio_gateway(p)
}

/// A pod somewhere in the mesh.
pub struct Found {
    pub cluster: Arc<MeshCluster>,
    pub pod: Value,
}

/// Who sends an outbound request, and where a leg over the real network goes
/// (`None`: this caller cannot wait for one).
struct Outbound<'a> {
    from: &'a Arc<MeshCluster>,
    pod: &'a Value,
    leg: Option<&'a mut Option<RemoteLeg>>,
}

impl Mesh {
    /// Resolves a name as a pod's resolver would: an IP as is, `localhost`,
    /// the cluster DNS with the pod's search path (`<ns>.svc.cluster.local`,
    /// `svc.cluster.local`, `cluster.local`, ndots 5), then public names (NLBs).
    pub fn resolve_in_pod(&self, from: &MeshCluster, p: &Value, host: &str) -> Option<Ipv4Addr> {
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Some(ip);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" {
            return Some(Ipv4Addr::LOCALHOST);
        }
        let ns = objects::namespace(p);
        let search = [
            format!("{name}.{ns}.svc.{}", xds::CLUSTER_DOMAIN),
            format!("{name}.svc.{}", xds::CLUSTER_DOMAIN),
            format!("{name}.{}", xds::CLUSTER_DOMAIN),
        ];
        let mut candidates: Vec<String> = Vec::new();
        let absolute = host.ends_with('.') || name.matches('.').count() >= 5;
        if absolute {
            candidates.push(name.clone());
        }
        candidates.extend(search);
        if !absolute {
            candidates.push(name.clone());
        }
        let services = from.cluster.list(&Resource::services());
        for candidate in &candidates {
            let Some(rest) = candidate.strip_suffix(&format!(".svc.{}", xds::CLUSTER_DOMAIN)) else {
                continue;
            };
            let Some((svc_name, svc_ns)) = rest.split_once('.') else {
                continue;
            };
            let svc = services.iter().find(|s| objects::name(s) == svc_name && objects::namespace(s) == svc_ns);
            if let Some(ip) = svc.and_then(|s| s.pointer("/spec/clusterIP")?.as_str()?.parse().ok()) {
                return Some(ip);
            }
        }
        self.aws.resolve(&name).and_then(|ips| ips.first().copied())
    }

    /// One HTTP request from container `container` of pod `p` (cluster
    /// `from`) to `ip:port`. The sidecar captures the app containers'
    /// traffic, not its own (iptables exempts the proxy's user).
    pub fn send_from_pod(
        &self,
        from: &Arc<MeshCluster>,
        p: &Value,
        container: &str,
        ip: Ipv4Addr,
        port: u16,
        req: &HttpRequest,
    ) -> Delivery {
        self.route_from_pod(from, p, container, ip, port, req, None)
    }

    /// As [`Mesh::send_from_pod`], and where the sidecar's upstream is an
    /// address of the real network (this process runs one cluster of
    /// several), over a real TCP connection.
    pub async fn send_from_pod_async(
        &self,
        from: &Arc<MeshCluster>,
        p: &Value,
        container: &str,
        ip: Ipv4Addr,
        port: u16,
        req: &HttpRequest,
    ) -> Delivery {
        let mut leg = None;
        let delivery = self.route_from_pod(from, p, container, ip, port, req, Some(&mut leg));
        match leg {
            Some(leg) => super::network::run(leg).await,
            None => delivery,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn route_from_pod(
        &self,
        from: &Arc<MeshCluster>,
        p: &Value,
        container: &str,
        ip: Ipv4Addr,
        port: u16,
        req: &HttpRequest,
        leg: Option<&mut Option<RemoteLeg>>,
    ) -> Delivery {
        if ip.is_loopback() {
            return self.in_pod(from, p, port, req);
        }
        let captured = has_sidecar(p) && container != injection::PROXY_CONTAINER;
        let services = from.cluster.list(&Resource::services());
        let target = services.iter().find_map(|s| {
            let cluster_ip = s.pointer("/spec/clusterIP").and_then(Value::as_str)?;
            if cluster_ip.parse::<Ipv4Addr>().ok()? != ip {
                return None;
            }
            service::ports(s).into_iter().find(|sp| sp.port == port).map(|sp| (s.clone(), sp))
        });
        match target {
            Some((svc, sp)) if captured => {
                let host = xds::service_host(objects::namespace(&svc), objects::name(&svc));
                match from.proxy_config(p) {
                    Some(config) => {
                        let outbound = Outbound { from, pod: p, leg };
                        self.envoy_outbound(outbound, &config, &xds::cluster_name(sp.port, &host), req)
                    }
                    // No config from istiod yet: Envoy passes traffic through.
                    None => self.kube_proxy(from, &svc, &sp, req),
                }
            }
            Some((svc, sp)) => self.kube_proxy(from, &svc, &sp, req),
            None => self.tcp(&from.cluster.vpc_id, ip, port, req),
        }
    }

    /// A connection that arrived at a node port of Service `svc` (port
    /// `port`), from outside the cluster: kube-proxy takes it to one of the
    /// Service's endpoints (k3s' svclb forwards to the cluster IP).
    pub fn from_node(&self, at: &Arc<MeshCluster>, svc: &Value, port: u16, req: &HttpRequest) -> Delivery {
        match service::ports(svc).into_iter().find(|sp| sp.port == port) {
            Some(sp) => self.kube_proxy(at, svc, &sp, req),
            None => Delivery::now(Outcome::Refused),
        }
    }

    /// `localhost:<port>` inside the pod: Envoy's admin port, or a container's port.
    fn in_pod(&self, from: &Arc<MeshCluster>, p: &Value, port: u16, req: &HttpRequest) -> Delivery {
        if port == envoy::ADMIN_PORT && injection::proxy_container_of(p).is_some() {
            let config = from.proxy_config(p).unwrap_or_default();
            let (status, body) = envoy::admin(&req.path, &config, objects::name(p));
            return Delivery::response(HttpResponse::new(status, "text/plain; charset=UTF-8", body));
        }
        if pod::containers(p).iter().flat_map(pod::container_ports).any(|(_, n)| n == port) {
            return Delivery::response(self.serve(from, p, port, req));
        }
        Delivery::now(Outcome::Refused)
    }

    /// What a pod's program answers on a port it listens on.
    fn serve(&self, at: &MeshCluster, p: &Value, port: u16, req: &HttpRequest) -> HttpResponse {
        if port == ISTIOD_DEBUG_PORT && super::istiod::pilot_container(p).is_some() {
            let (status, body) = at.istiod_debug(p, &req.path);
            return HttpResponse::new(status, "application/json", body);
        }
        apps::answer(p, port, req)
    }

    /// kube-proxy: one of the Service's ready endpoints in this cluster.
    fn kube_proxy(&self, from: &MeshCluster, svc: &Value, sp: &service::ServicePort, req: &HttpRequest) -> Delivery {
        let backends = self.backends(from, svc, sp);
        if backends.is_empty() {
            // kube-proxy rejects connections to a Service without endpoints.
            return Delivery::now(Outcome::Refused);
        }
        let (ip, port) = backends[rand::random_range(0..backends.len())];
        self.tcp(&from.cluster.vpc_id, ip, port, req)
    }

    /// A plain TCP connection from a pod in `vpc_id` to `ip:port`.
    fn tcp(&self, vpc_id: &str, ip: Ipv4Addr, port: u16, req: &HttpRequest) -> Delivery {
        if let Some(found) = self.pod_by_ip(vpc_id, ip) {
            return if self.listens(&found, port) {
                Delivery::response(self.serve(&found.cluster, &found.pod, port, req))
            } else {
                Delivery::now(Outcome::Refused)
            };
        }
        if let Some(lb) = self.nlb_by_ip(ip).filter(|lb| reachable_from(lb, vpc_id)) {
            // A gateway's TLS ports do not speak plain HTTP.
            if self.healthy_gateway_targets(&lb, port).is_some_and(|t| !t.is_empty()) {
                return Delivery::now(Outcome::Reset);
            }
        }
        Delivery { after: KERNEL_CONNECT_TIMEOUT, outcome: Outcome::Unreachable }
    }

    /// The sidecar's outbound: a host of the cluster by weight, then upstream.
    fn envoy_outbound(
        &self,
        outbound: Outbound<'_>,
        config: &[ClusterLoadAssignment],
        cluster_name: &str,
        req: &HttpRequest,
    ) -> Delivery {
        let from = outbound.from;
        let hosts = config.iter().find(|c| c.cluster_name == cluster_name).map(|c| c.endpoints.as_slice());
        let Some(host) = hosts.and_then(pick) else {
            return Delivery::response(envoy_error(503, NO_HEALTHY_UPSTREAM));
        };
        let Ok(ip) = host.address.parse::<Ipv4Addr>() else {
            return Delivery::response(envoy_error(503, CONNECTION_REFUSED_BODY));
        };
        if let Some(found) = self.pod_by_ip(&from.cluster.vpc_id, ip) {
            return if self.listens(&found, host.port) {
                Delivery::response(via_envoy(self.serve(&found.cluster, &found.pod, host.port, req)))
            } else {
                Delivery::response(envoy_error(503, CONNECTION_REFUSED_BODY))
            };
        }
        // An internal NLB's addresses are private to its VPC.
        if let Some(lb) = self.nlb_by_ip(ip).filter(|lb| reachable_from(lb, &from.cluster.vpc_id)) {
            return self.cross_network(from, &lb, host.port, cluster_name, req);
        }
        // Nobody here has it: with a real network, an address the node reaches goes out over TCP.
        if let (Some(slot), Some(reachable)) = (outbound.leg, self.real_network()) {
            if let (true, Some(sni)) = (reachable(ip), sni_of_cluster(cluster_name)) {
                *slot = Some(RemoteLeg {
                    from: from.clone(),
                    pod: outbound.pod.clone(),
                    ip,
                    port: host.port,
                    sni,
                    req: req.clone(),
                });
            }
        }
        Delivery { after: ENVOY_CONNECT_TIMEOUT, outcome: Outcome::Response(envoy_error(503, CONNECT_TIMEOUT_BODY)) }
    }

    /// Through a remote network's gateway: NLB -> gateway pod -> SNI route ->
    /// the gateway's own endpoint -> mTLS with the destination's sidecar.
    fn cross_network(
        &self,
        from: &Arc<MeshCluster>,
        lb: &LoadBalancerInfo,
        port: u16,
        cluster_name: &str,
        req: &HttpRequest,
    ) -> Delivery {
        let timeout = || Delivery {
            after: ENVOY_CONNECT_TIMEOUT,
            outcome: Outcome::Response(envoy_error(503, CONNECT_TIMEOUT_BODY)),
        };
        let Some(healthy) = self.healthy_gateway_targets(lb, port) else {
            // No listener on that port: the NLB drops the SYNs.
            return timeout();
        };
        if healthy.is_empty() {
            // Fails open to targets that refuse (the registered ones, if any).
            return match self.registered_targets(lb, port) {
                Some(t) if !t.is_empty() => Delivery::response(envoy_error(503, CONNECTION_REFUSED_BODY)),
                _ => timeout(),
            };
        }
        let gateway = &healthy[rand::random_range(0..healthy.len())];
        let termination = || Delivery::response(envoy_error(503, CONNECTION_TERMINATION_BODY));
        let sni = sni_of_cluster(cluster_name);
        if !sni.as_deref().is_some_and(|sni| passes_through(&gateway.cluster, &gateway.pod, port, sni)) {
            return termination();
        }
        let Some(config) = gateway.cluster.proxy_config(&gateway.pod) else {
            return termination();
        };
        let hosts = config.iter().find(|c| c.cluster_name == cluster_name).map(|c| c.endpoints.as_slice());
        let Some(host) = hosts.and_then(pick) else {
            return termination();
        };
        let Some(dest) = host.address.parse().ok().and_then(|ip| self.pod_by_ip(&gateway.cluster.cluster.vpc_id, ip))
        else {
            return termination();
        };
        if !self.listens(&dest, host.port) {
            return termination();
        }
        // The client's sidecar verifies the destination's certificate.
        let (ours, theirs) = (from.istiod.trust_root(), dest.cluster.istiod.trust_root());
        if ours.is_none() || ours != theirs {
            return Delivery::response(envoy_error(503, CERTIFICATE_VERIFY_FAILED_BODY));
        }
        Delivery::response(via_envoy(self.serve(&dest.cluster, &dest.pod, host.port, req)))
    }

    /// What a program in pod `p` of cluster `at` answers on `port`.
    pub fn answer(&self, at: &MeshCluster, p: &Value, port: u16, req: &HttpRequest) -> HttpResponse {
        self.serve(at, p, port, req)
    }

    /// Where a gateway passes a TLS connection through: a connection arrived
    /// at port `port` of the gateway's Service `svc` with `sni` in its
    /// ClientHello. kube-proxy picks a gateway pod; a Gateway selecting it
    /// must pass `sni` through on the target port (AUTO_PASSTHROUGH, matching
    /// hosts); the gateway's own proxy config for the SNI's cluster picks the
    /// destination, which must listen. `None`: the gateway closes the
    /// connection (Envoy's "connection termination" at the client).
    pub fn passthrough_destination(
        &self,
        at: &Arc<MeshCluster>,
        svc: &Value,
        port: u16,
        sni: &str,
    ) -> Option<(Found, u16)> {
        let sp = service::ports(svc).into_iter().find(|sp| sp.port == port)?;
        let backends = self.backends(at, svc, &sp);
        let gateways: Vec<(Found, u16)> = backends
            .into_iter()
            .filter_map(|(ip, target)| self.pod_by_ip(&at.cluster.vpc_id, ip).map(|f| (f, target)))
            .filter(|(f, target)| pod::is_serving(&f.pod) && self.listens(f, *target))
            .collect();
        if gateways.is_empty() {
            return None;
        }
        let (gateway, target) = &gateways[rand::random_range(0..gateways.len())];
        self.passthrough_at_gateway(gateway, *target, sni)
    }

    /// Where gateway pod `gateway` passes a TLS connection on its port `port`
    /// through: a Gateway selecting it must pass `sni` through on that port
    /// (AUTO_PASSTHROUGH, matching hosts); the gateway's own proxy config for
    /// the SNI's cluster picks the destination, which must listen. `None`:
    /// the gateway closes the connection.
    pub fn passthrough_at_gateway(&self, gateway: &Found, port: u16, sni: &str) -> Option<(Found, u16)> {
        if !pod::is_serving(&gateway.pod) || !passes_through(&gateway.cluster, &gateway.pod, port, sni) {
            return None;
        }
        let cluster_name = xds::cluster_of_sni(sni)?;
        let config = gateway.cluster.proxy_config(&gateway.pod)?;
        let hosts = config.iter().find(|c| c.cluster_name == cluster_name).map(|c| c.endpoints.as_slice());
        let host = hosts.and_then(pick)?;
        let dest = self.pod_by_ip(&gateway.cluster.cluster.vpc_id, host.address.parse().ok()?)?;
        self.listens(&dest, host.port).then_some((dest, host.port))
    }

    /// A Service port's ready endpoints in this cluster: (pod IP, target port).
    fn backends(&self, from: &MeshCluster, svc: &Value, sp: &service::ServicePort) -> Vec<(Ipv4Addr, u16)> {
        let (ns, name) = (objects::namespace(svc), objects::name(svc));
        let eps = from.cluster.get(&Resource::endpoints(), Some(ns), name);
        let mut backends: Vec<(Ipv4Addr, u16)> = Vec::new();
        for subset in eps.iter().flat_map(|e| e.get("subsets").and_then(Value::as_array).into_iter().flatten()) {
            let port = subset
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == sp.name.as_deref().unwrap_or(""));
            let Some(number) = port.and_then(|p| u16::try_from(p.get("port")?.as_u64()?).ok()) else {
                continue;
            };
            for a in subset.get("addresses").and_then(Value::as_array).into_iter().flatten() {
                if let Some(ip) = a.get("ip").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                    backends.push((ip, number));
                }
            }
        }
        backends
    }

    /// Whether a found pod accepts connections on a port.
    pub fn listens(&self, found: &Found, port: u16) -> bool {
        listens_on(&found.pod, port, &found.cluster.cluster.list(&Resource::gateways()))
    }

    /// One HTTP request on a connection that reached pod `dest` on `port`
    /// from outside its cluster (through the VPC fabric): the pod's program
    /// answers if the pod accepts connections there, else the SYN is refused.
    pub fn to_pod(&self, dest: &Found, port: u16, req: &HttpRequest) -> Delivery {
        if self.listens(dest, port) {
            Delivery::response(self.serve(&dest.cluster, &dest.pod, port, req))
        } else {
            Delivery::now(Outcome::Refused)
        }
    }

    /// The pod with this IP in a cluster of the VPC (the serving one, if two share it).
    fn pod_by_ip(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<Found> {
        let mut fallback = None;
        for mc in self.clusters() {
            if mc.cluster.vpc_id != vpc_id {
                continue;
            }
            match Self::pod_in_cluster(&mc, ip) {
                Some(found) if pod::is_serving(&found.pod) => return Some(found),
                Some(found) => fallback = Some(found),
                None => {}
            }
        }
        fallback
    }

    /// The pod with this IP in one cluster, not terminating (the serving one,
    /// if two share it).
    pub fn pod_in_cluster(at: &Arc<MeshCluster>, ip: Ipv4Addr) -> Option<Found> {
        let ip = ip.to_string();
        let mut fallback = None;
        for p in at.cluster.list_where(&Resource::pods(), &format!("status.podIP={ip}")) {
            if pod::ip(&p) != Some(ip.as_str()) || objects::is_terminating(&p) {
                continue;
            }
            if pod::is_serving(&p) {
                return Some(Found { cluster: at.clone(), pod: p });
            }
            fallback = Some(Found { cluster: at.clone(), pod: p });
        }
        fallback
    }

    /// The NLB (of any twin cluster's controller) owning a public IP.
    fn nlb_by_ip(&self, ip: Ipv4Addr) -> Option<LoadBalancerInfo> {
        let mut names: Vec<String> = Vec::new();
        for mc in self.clusters() {
            names.push(mc.cluster.eks_name.clone());
            if let Some(i) = running_instance(&mc.cluster.list(&Resource::pods()), &mc.cluster.vpc_id) {
                names.push(i.cluster_name);
            }
        }
        names.sort();
        names.dedup();
        names
            .iter()
            .flat_map(|n| self.aws.load_balancers_tagged("elbv2.k8s.aws/cluster", n))
            .find(|lb| lb.state == "active" && lb.zones.iter().any(|(_, _, a)| *a == ip))
    }

    /// The target group behind the NLB's listener on `port`.
    fn target_group(&self, lb: &LoadBalancerInfo, port: u16) -> Option<TargetGroupInfo> {
        self.aws.target_groups_of(&lb.arn).into_iter().find(|tg| tg.port == port)
    }

    fn registered_targets(&self, lb: &LoadBalancerInfo, port: u16) -> Option<Vec<(String, u16)>> {
        self.target_group(lb, port).map(|tg| self.aws.registered_targets(&tg.arn))
    }

    /// The gateway pods behind the NLB's listener on `port` that pass its
    /// health check (they accept connections there); `None` without a listener.
    fn healthy_gateway_targets(&self, lb: &LoadBalancerInfo, port: u16) -> Option<Vec<Found>> {
        let tg = self.target_group(lb, port)?;
        let mut healthy = Vec::new();
        for (ip, target_port) in self.aws.registered_targets(&tg.arn) {
            let Ok(ip) = ip.parse() else { continue };
            if let Some(found) = self.pod_by_ip(&tg.vpc_id, ip) {
                if pod::is_serving(&found.pod) && self.listens(&found, target_port) {
                    healthy.push(found);
                }
            }
        }
        Some(healthy)
    }
}

/// Whether a pod in `vpc_id` can reach the NLB's addresses: public ones from
/// anywhere, an internal NLB's only from its own VPC.
fn reachable_from(lb: &LoadBalancerInfo, vpc_id: &str) -> bool {
    lb.scheme == "internet-facing" || lb.vpc_id == vpc_id
}

/// The SNI a sidecar sends for an outbound cluster.
fn sni_of_cluster(cluster_name: &str) -> Option<String> {
    let mut parts = cluster_name.splitn(4, '|');
    let (direction, port, subset, host) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let port: u16 = port.parse().ok()?;
    (direction == "outbound").then(|| xds::sni_of(port, subset, host))
}

/// Whether a Gateway of the cluster selects the gateway pod and passes `sni`
/// through on `port` (TLS AUTO_PASSTHROUGH with a matching host).
fn passes_through(at: &MeshCluster, gateway_pod: &Value, port: u16, sni: &str) -> bool {
    let labels = objects::labels(gateway_pod);
    at.cluster.list(&Resource::gateways()).iter().filter(|gw| !objects::is_terminating(gw)).any(|gw| {
        let selector = objects::string_map(gw.pointer("/spec/selector"));
        if selector.is_empty() || !objects::selects(&selector, &labels) {
            return false;
        }
        gw.pointer("/spec/servers").and_then(Value::as_array).into_iter().flatten().any(|server| {
            let on_port = server.pointer("/port/number").and_then(Value::as_u64) == Some(u64::from(port));
            let passthrough = server.pointer("/tls/mode").and_then(Value::as_str) == Some("AUTO_PASSTHROUGH");
            let hosts = server.get("hosts").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
            on_port && passthrough && hosts.into_iter().any(|h| host_matches(h, sni))
        })
    })
}

/// A Gateway host (`[namespace/]name`, `*` or `*.suffix` wildcards) against an SNI.
pub fn host_matches(host: &str, sni: &str) -> bool {
    let host = host.rsplit_once('/').map_or(host, |(_, h)| h).to_ascii_lowercase();
    let sni = sni.to_ascii_lowercase();
    match host.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => sni.ends_with(suffix),
        None => host == sni,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::istiod::xds::Locality;

    #[test]
    fn hosts_are_picked_in_proportion_to_their_weight() {
        let host =
            |addr: &str, weight| LbEndpoint { address: addr.into(), port: 5000, weight, locality: Locality::default() };
        let hosts = [host("a", 3), host("b", 1), host("c", 0)];
        let mut a = 0;
        for _ in 0..4000 {
            match pick(&hosts).map(|h| h.address.as_str()) {
                Some("a") => a += 1,
                Some("b") => {}
                other => panic!("picked {other:?}"),
            }
        }
        assert!((2700..3300).contains(&a), "a picked {a} of 4000 times");
        assert!(pick(&[host("x", 0)]).is_none());
        assert!(pick(&[]).is_none());
    }

    #[test]
    fn gateway_hosts_match_snis_like_istio() {
        let sni = "outbound_.5000_._.helloworld.sample.svc.cluster.local";
        assert!(host_matches("*.local", sni));
        assert!(host_matches("*", sni));
        assert!(host_matches("*/*.local", sni));
        assert!(host_matches(sni, sni));
        assert!(!host_matches("*.example.com", sni));
        assert!(!host_matches("helloworld.sample.svc.cluster.local", sni));
        assert_eq!(sni_of_cluster("outbound|5000||helloworld.sample.svc.cluster.local").as_deref(), Some(sni));
        assert_eq!(
            sni_of_cluster("outbound|5000|v1|helloworld.sample.svc.cluster.local").as_deref(),
            Some("outbound_.5000_.v1_.helloworld.sample.svc.cluster.local")
        );
        assert_eq!(sni_of_cluster("BlackHoleCluster"), None);
    }
}
