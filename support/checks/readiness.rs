//! East-west gateway readiness: Service hostname -> NLB by DNSName (all pages)
//! -> listener 15443 -> target group -> EVERY target healthy -> the hostname
//! resolving to the NLB's nodes. Each check says which of its observations
//! are definite breaks and which are transient.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

use super::check::{Check, Diagnosis, Observation};
use crate::aws::nlb::{self, LoadBalancer, TargetHealth};
use crate::kube::rollout::{deployment_available, deployment_state};
use crate::provision::preconditions::{METALLB_CONTROLLER, METALLB_NAMESPACE};
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

const ANN_LB_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
const NO_ADDRESS: &str = "the east-west gateway Service has no load balancer address (EXTERNAL-IP <pending>)";

/// The east-west gateway Service of a cluster.
pub async fn gateway_service(s: &Session, c: &ClusterTopology) -> Result<Option<Service>> {
    let svcs: Api<Service> = Api::namespaced(s.kube(&c.name).await?, names::ISTIO_INGRESS);
    Ok(svcs.get_opt(names::EASTWEST_GATEWAY).await?)
}

pub fn hostname_of(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .and_then(|i| i.first().and_then(|i| i.hostname.clone()))
}

/// The first ingress IP of a Service (MetalLB and K3s' ServiceLB write IPs).
pub fn ip_of(svc: &Service) -> Option<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .and_then(|i| i.first().and_then(|i| i.ip.clone()))
}

/// What serves LoadBalancer Services in a cluster.
#[derive(Debug)]
pub enum LoadBalancerImplementation {
    /// The AWS load balancer controller, available.
    AwsController,
    /// MetalLB's controller, available (kind).
    MetalLb,
    /// K3s' ServiceLB, which runs inside K3s itself (no Deployment to see).
    ServiceLb,
    /// A controller is installed but not available now (starting, restarting): transient.
    NotAvailable(String),
    /// Neither is installed: nothing will ever give the Service an address.
    Absent,
}

pub async fn load_balancer_implementation(s: &Session, c: &ClusterTopology) -> Result<LoadBalancerImplementation> {
    let client = s.kube(&c.name).await?;
    let aws: Option<Deployment> =
        Api::namespaced(client.clone(), names::KUBE_SYSTEM).get_opt(names::LB_CONTROLLER).await?;
    let metallb: Option<Deployment> = Api::namespaced(client, METALLB_NAMESPACE).get_opt(METALLB_CONTROLLER).await?;
    Ok(match (aws, metallb) {
        (Some(d), _) if deployment_available(&d) => LoadBalancerImplementation::AwsController,
        (_, Some(d)) if deployment_available(&d) => LoadBalancerImplementation::MetalLb,
        (Some(d), _) => LoadBalancerImplementation::NotAvailable(format!(
            "deployment {}/{} {}",
            names::KUBE_SYSTEM,
            names::LB_CONTROLLER,
            deployment_state(&d)
        )),
        (None, Some(d)) => LoadBalancerImplementation::NotAvailable(format!(
            "deployment {METALLB_NAMESPACE}/{METALLB_CONTROLLER} {}",
            deployment_state(&d)
        )),
        (None, None) if is_k3s(&client_nodes(s, c).await?) => LoadBalancerImplementation::ServiceLb,
        (None, None) => LoadBalancerImplementation::Absent,
    })
}

async fn client_nodes(s: &Session, c: &ClusterTopology) -> Result<Vec<k8s_openapi::api::core::v1::Node>> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(s.kube(&c.name).await?);
    Ok(nodes.list(&Default::default()).await?.items)
}

/// K3s' cloud provider labels its nodes with instance type `k3s`
/// (k3s pkg/cloudprovider/instances.go, v1.28.8+k3s1).
fn is_k3s(nodes: &[k8s_openapi::api::core::v1::Node]) -> bool {
    nodes.iter().any(|n| {
        n.metadata.labels.as_ref().and_then(|l| l.get("node.kubernetes.io/instance-type")).map(String::as_str)
            == Some("k3s")
    })
}

/// The other LoadBalancer Services holding a TCP port `svc` also asks for:
/// ServiceLB serves each port on the node's own address (its svclb pods use
/// host ports, k3s pkg/cloudprovider/servicelb.go), so one node serves a port
/// for one Service only.
async fn servicelb_port_holders(s: &Session, c: &ClusterTopology, svc: &Service) -> Result<Vec<(String, i32)>> {
    let wanted: Vec<i32> =
        svc.spec.as_ref().and_then(|sp| sp.ports.clone()).unwrap_or_default().iter().map(|p| p.port).collect();
    let all: Api<Service> = Api::all(s.kube(&c.name).await?);
    let mut held = Vec::new();
    for other in all.list(&Default::default()).await?.items {
        if other.metadata.uid == svc.metadata.uid {
            continue;
        }
        let lb = other.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer");
        let served = other
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .is_some_and(|i| !i.is_empty());
        if !(lb && served) {
            continue;
        }
        let name = format!(
            "{}/{}",
            other.metadata.namespace.clone().unwrap_or_default(),
            other.metadata.name.clone().unwrap_or_default()
        );
        for p in other.spec.as_ref().and_then(|sp| sp.ports.clone()).unwrap_or_default() {
            if wanted.contains(&p.port) {
                held.push((name.clone(), p.port));
            }
        }
    }
    Ok(held)
}

fn no_controller() -> Diagnosis {
    Diagnosis::new(
        format!("{NO_ADDRESS}: the AWS load balancer controller is not running"),
        "install the AWS load balancer controller (stage 2, with istiod) and wait until it is available",
    )
}

/// The east-west gateway Service has a load balancer hostname.
///
/// Definite: no such Service (nothing but an install creates it); no load
/// balancer implementation installed at all; on AWS, a Service without the
/// annotation the controller claims (`type: external` or `nlb-ip`,
/// aws-load-balancer-controller pkg/service/service_utils.go), which no
/// controller serves. Transient: the controller installed but not available
/// (a restart), or no hostname written yet.
pub struct GatewayHostname(pub ClusterTopology);

impl Check for GatewayHostname {
    type Evidence = String;

    fn name(&self) -> String {
        format!("{}: east-west gateway load balancer hostname", self.0.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.load_balancer_hostname
    }

    async fn observe(&self, s: &Session) -> Result<Observation<String>> {
        let c = &self.0;
        let Some(svc) = gateway_service(s, c).await? else {
            return Ok(Observation::broken(
                format!("no Service {}/{}", names::ISTIO_INGRESS, names::EASTWEST_GATEWAY),
                Diagnosis::new(
                    format!("{} has no east-west gateway Service", c.name),
                    "install the east-west gateway (stage 3)",
                ),
            ));
        };
        if let Some(h) = hostname_of(&svc) {
            return Ok(Observation::Holds(h));
        }
        let annotated = svc.metadata.annotations.as_ref().and_then(|a| a.get(ANN_LB_TYPE).cloned());
        Ok(match load_balancer_implementation(s, c).await? {
            LoadBalancerImplementation::Absent => Observation::broken(
                format!("{}: no load balancer controller is installed", c.name),
                no_controller(),
            ),
            // ServiceLB gives node addresses, not hostnames.
            LoadBalancerImplementation::ServiceLb if ip_of(&svc).is_some() => Observation::Holds(ip_of(&svc).unwrap_or_default()),
            LoadBalancerImplementation::ServiceLb => {
                let held = servicelb_port_holders(s, c, &svc).await?;
                match held.first() {
                    Some((other, port)) => Observation::broken(
                        format!("no address; {other} holds port {port} on the node"),
                        Diagnosis::new(
                            format!("{NO_ADDRESS}: K3s' ServiceLB serves every LoadBalancer port on the node's address, and {other} already holds port {port}, so the east-west gateway gets none"),
                            format!("give {other} other ports (or type ClusterIP) so that 15443, 15012, 15017 and 15021 are free for the east-west gateway"),
                        ),
                    ),
                    None => Observation::Pending { seen: "ServiceLB has given no address yet".into(), diagnosis: None },
                }
            }
            LoadBalancerImplementation::NotAvailable(seen) => {
                Observation::Pending { seen: format!("no hostname yet; {seen}"), diagnosis: Some(no_controller()) }
            }
            LoadBalancerImplementation::AwsController if !matches!(annotated.as_deref(), Some("external" | "nlb-ip")) => {
                Observation::broken(
                    format!("no hostname; {ANN_LB_TYPE}: {}", annotated.as_deref().unwrap_or("(none)")),
                    Diagnosis::new(
                        format!("{NO_ADDRESS}: the Service lacks the annotation {ANN_LB_TYPE}: external, so the load balancer controller leaves it alone"),
                        format!("annotate the Service {ANN_LB_TYPE}: external (with nlb-target-type ip and scheme internet-facing)"),
                    ),
                )
            }
            _ => Observation::Pending {
                seen: "the Service has no load balancer hostname yet".into(),
                diagnosis: Some(Diagnosis::new(
                    format!("{NO_ADDRESS}, although a load balancer controller runs and claims the Service"),
                    "read the controller's events on the Service (kubectl describe svc istio-eastwestgateway -n istio-ingress) and its log",
                )),
            },
        })
    }
}

/// The load balancer whose DNSName is the hostname, among every page of
/// DescribeLoadBalancers, and (with `active`) out of `provisioning`.
///
/// Definite: state `failed`, "the load balancer could not be set up" (ELBv2 API
/// reference, LoadBalancerState: active | provisioning | active_impaired | failed). Transient: not listed yet, `provisioning`, `active_impaired`.
pub struct LoadBalancerOf {
    pub cluster: String,
    pub hostname: String,
    pub active: bool,
}

impl Check for LoadBalancerOf {
    type Evidence = LoadBalancer;

    fn name(&self) -> String {
        let what = if self.active { "active" } else { "found" };
        format!("{}: load balancer {} {what}", self.cluster, self.hostname)
    }

    fn point(&self) -> Option<&'static str> {
        self.active.then_some("nlb_active")
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.nlb_active
    }

    async fn observe(&self, s: &Session) -> Result<Observation<LoadBalancer>> {
        Ok(match nlb::find_by_dns_name(s.aws()?, &self.hostname).await? {
            None => Observation::pending("no load balancer has that DNSName"),
            Some(lb) if lb.state == "failed" => Observation::broken(
                format!("load balancer {} is in state failed", lb.name),
                Diagnosis::new(
                    format!("the NLB {} of {}'s east-west gateway failed to provision", lb.name, self.cluster),
                    "read the load balancer controller's events on the Service and its log (subnets, quotas), then recreate the Service",
                ),
            ),
            Some(lb) if !self.active || lb.state == "active" => Observation::Holds(lb),
            Some(lb) => Observation::pending(format!("state {}", lb.state)),
        })
    }
}

/// The target group behind the listener on `port`.
///
/// Transient: the controller reconciles listeners after the load balancer, so
/// a missing one is pending; callers observe it once ([`super::check::now`]).
pub struct ListenerTargetGroup {
    pub cluster: String,
    pub lb: LoadBalancer,
    pub port: u16,
}

impl Check for ListenerTargetGroup {
    type Evidence = String;

    fn name(&self) -> String {
        format!("{}: listener {} of {}", self.cluster, self.port, self.lb.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.nlb_active
    }

    async fn observe(&self, s: &Session) -> Result<Observation<String>> {
        let listeners = nlb::listeners(s.aws()?, &self.lb.arn).await?;
        let diagnosis = Some(Diagnosis::new(
            format!("the NLB {} does not forward {} to a target group", self.lb.name, self.port),
            format!("the east-west gateway Service must expose port {} (tls)", self.port),
        ));
        let Some(listener) = listeners.iter().find(|l| l.port == self.port) else {
            return Ok(Observation::Pending {
                seen: format!(
                    "no listener on {} (listeners: {})",
                    self.port,
                    listeners.iter().map(|l| format!("{}/{}", l.port, l.protocol)).collect::<Vec<_>>().join(", ")
                ),
                diagnosis,
            });
        };
        Ok(match listener.target_group_arns.first() {
            Some(tg) => Observation::Holds(tg.clone()),
            None => Observation::Pending {
                seen: format!("the listener on {} forwards to no target group", self.port),
                diagnosis,
            },
        })
    }
}

fn describe_targets(targets: &[TargetHealth]) -> String {
    if targets.is_empty() {
        return "no target registered".into();
    }
    targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join("; ")
}

/// Every target of the group healthy (an empty group is not).
///
/// Definite: unhealthy targets whose health checks go to a port the gateway's
/// Service does not expose (nothing will ever answer there), or while the
/// Gateway that makes the pods listen on 15443 does not exist. Transient:
/// `initial` (registration, first checks), `draining`, and `unhealthy` with
/// the checks on the traffic port: gateway pods restarting.
pub struct TargetsHealthy {
    pub cluster: ClusterTopology,
    pub target_group: String,
}

impl Check for TargetsHealthy {
    type Evidence = Vec<TargetHealth>;

    fn name(&self) -> String {
        format!("{}: every target of {} healthy", self.cluster.name, self.target_group)
    }

    fn point(&self) -> Option<&'static str> {
        Some("targets_healthy")
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.targets_healthy
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Vec<TargetHealth>>> {
        let aws = s.aws()?;
        let targets = nlb::target_health(aws, &self.target_group).await?;
        if !targets.is_empty() && targets.iter().all(|t| t.state == "healthy") {
            return Ok(Observation::Holds(targets));
        }
        let seen = describe_targets(&targets);
        if !targets.iter().any(|t| t.state == "unhealthy") {
            return Ok(Observation::pending(seen));
        }
        let port = nlb::health_check_port(aws, &self.target_group).await?;
        let on_traffic_port = port == "traffic-port" || port == names::CROSS_NETWORK_PORT.to_string();
        if !on_traffic_port {
            let exposed = match gateway_service(s, &self.cluster).await? {
                Some(svc) => service_ports(&svc),
                None => BTreeSet::new(),
            };
            let diagnosis = Diagnosis::new(
                format!("targets behind the 15443 listener are not healthy: their health checks go to port {port}, not the traffic port"),
                "remove the Service annotation service.beta.kubernetes.io/aws-load-balancer-healthcheck-port (traffic-port is the default) or name a port the gateway listens on",
            );
            return Ok(if exposed.contains(&port) {
                Observation::Pending { seen, diagnosis: Some(diagnosis) }
            } else {
                Observation::broken(
                    format!("{seen}; health checks on port {port}, which the gateway Service does not expose"),
                    diagnosis,
                )
            });
        }
        let gateway = super::provisioning::IstioGateway::cross_network(self.cluster.clone());
        if let Ok(Observation::Broken { seen: missing, diagnosis }) = gateway.observe(s).await {
            return Ok(Observation::broken(format!("{seen}; {missing}"), diagnosis));
        }
        Ok(Observation::Pending {
            seen,
            diagnosis: Some(Diagnosis::new(
                "targets behind the 15443 listener are not healthy, so the NLB drops cross-network traffic",
                "the east-west gateway pods must listen on 15443 (a Gateway with a TLS AUTO_PASSTHROUGH server on 15443 must select them) and security groups must let the NLB's health checks in",
            )),
        })
    }
}

/// The ports and target ports a Service exposes, as text.
fn service_ports(svc: &Service) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default() {
        out.insert(p.port.to_string());
        if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(t)) = p.target_port {
            out.insert(t.to_string());
        }
    }
    out
}

/// The NLB hostname resolves to exactly the public addresses of its nodes, one
/// per zone. The nodes' addresses come from the NLB's network interfaces in EC2:
/// `LoadBalancerAddresses` is empty for an NLB without Elastic IPs (see [`nlb::Zone`]).
///
/// Transient, always: a fresh NLB's name takes minutes to resolve on AWS, and
/// a name that resolves elsewhere may be cached.
pub struct ResolvesPerZone {
    pub cluster: String,
    pub lb: LoadBalancer,
}

impl Check for ResolvesPerZone {
    type Evidence = Vec<String>;

    fn name(&self) -> String {
        format!("{}: {} resolving to one public address per zone", self.cluster, self.lb.dns_name)
    }

    fn point(&self) -> Option<&'static str> {
        Some("hostname_resolving")
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.nlb_active
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Vec<String>>> {
        let lb = &self.lb;
        let diagnosis = Some(Diagnosis::new(
            format!("the NLB hostname {} does not resolve to its zones' addresses", lb.dns_name),
            "fix name resolution (MESHSPEC_DNS, the VPC resolver): istiod ignores a gateway whose hostname does not resolve",
        ));
        let nodes = nlb::node_interfaces(s.aws()?, lb).await?;
        let zones: BTreeSet<&str> = lb.zones.iter().map(|z| z.name.as_str()).collect();
        let public: Vec<(&str, &str)> =
            nodes.iter().filter_map(|n| n.public_ip.as_deref().map(|ip| (n.availability_zone.as_str(), ip))).collect();
        let node_zones: BTreeSet<&str> = public.iter().map(|(az, _)| *az).collect();
        if node_zones != zones || public.len() != zones.len() {
            return Ok(Observation::Pending {
                seen: format!(
                    "load balancer {} does not have one public node address per zone: zones {zones:?}, network interfaces {nodes:?}",
                    lb.name
                ),
                diagnosis,
            });
        }
        let zone_ips: BTreeSet<String> = public.iter().map(|(_, ip)| ip.to_string()).collect();
        let ips: BTreeSet<String> = s.dns.ipv4(&lb.dns_name).await?.into_iter().map(|ip| ip.to_string()).collect();
        Ok(if ips == zone_ips {
            Observation::Holds(ips.into_iter().collect())
        } else {
            Observation::Pending { seen: format!("resolves to {ips:?}, the NLB's nodes hold {zone_ips:?}"), diagnosis }
        })
    }
}

/// The whole chain for one cluster's gateway, as the readiness feature walks
/// it: what `twin up` and the diagnosis sweep wait for.
pub async fn gateway_ready(s: &Session, c: &ClusterTopology) -> Result<Vec<TargetHealth>, super::check::CheckFailure> {
    use super::check::{now, until};
    let hostname = until(s, &GatewayHostname(c.clone())).await?;
    let lb = until(s, &LoadBalancerOf { cluster: c.name.clone(), hostname, active: true }).await?;
    let tg = now(s, &ListenerTargetGroup { cluster: c.name.clone(), lb: lb.clone(), port: names::CROSS_NETWORK_PORT })
        .await?;
    let targets = until(s, &TargetsHealthy { cluster: c.clone(), target_group: tg }).await?;
    until(s, &ResolvesPerZone { cluster: c.name.clone(), lb }).await?;
    Ok(targets)
}

/// The load balancer is of this type and scheme (and, when given, in this state).
pub fn load_balancer_is(lb: &LoadBalancer, kind: &str, scheme: &str, state: Option<&str>) -> Result<(), String> {
    if lb.kind != kind {
        return Err(format!("{} is of type {:?}, expected {kind:?}", lb.name, lb.kind));
    }
    if lb.scheme != scheme {
        return Err(format!("{} has scheme {:?}, expected {scheme:?}", lb.name, lb.scheme));
    }
    match state {
        Some(s) if lb.state != s => Err(format!("{} is {:?}, expected {s:?}", lb.name, lb.state)),
        _ => Ok(()),
    }
}
