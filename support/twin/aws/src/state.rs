//! `AwsState`: the shared handle on the model, and the API the twin's own
//! programs use (load balancer controller, health checker, DNS, Kubernetes
//! token authentication). Each method has the semantics of the API call the
//! real program would make.

use crate::auth::CallerIdentity;
use crate::clock::{Clock, Delays};
use crate::elbv2::ops::TargetGroupRequest;
use crate::error::AwsError;
use crate::model::{Ctx, Model};
use crate::{
    sts, ClusterInfo, EksHooks, ForwardSnapshot, ListenerSnapshot, LoadBalancerInfo, NewLoadBalancer, NewTargetGroup,
    NlbSnapshot, SubnetInfo, TargetGroupInfo, TargetSnapshot,
};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

#[derive(Clone)]
pub struct AwsConfig {
    pub region: String,
    pub account_id: String,
    /// (access key id, secret access key) pairs the endpoint accepts.
    pub credentials: Vec<(String, String)>,
    pub clock: Clock,
    pub delays: Delays,
    /// Throttling, unavailability, latency and cut connections at a rate (none by default).
    pub faults: crate::faults::ApiFaults,
    /// When set, each zone of each NLB gets an address of this range (a
    /// loopback range such as 127.77.0.0/16) instead of a public-looking one,
    /// so that a data plane on this host can bind it (see
    /// `LbZone::host_ip`). None: AWS-looking addresses, nothing to bind.
    pub nlb_address_range: Option<crate::Cidr>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: "us-west-2".into(),
            account_id: "123456789012".into(),
            credentials: Vec::new(),
            clock: Clock::default(),
            delays: Delays::default(),
            faults: Default::default(),
            nlb_address_range: None,
        }
    }
}

/// Secrets stay out of debug output.
impl fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.credentials.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("access_key_ids", &keys)
            .field("clock", &self.clock)
            .field("delays", &self.delays)
            .field("nlb_address_range", &self.nlb_address_range)
            .finish()
    }
}

struct Inner {
    cfg: AwsConfig,
    model: Mutex<Model>,
    hooks: RwLock<Option<Arc<dyn EksHooks>>>,
    /// `host:port` of the endpoints serving this state (allowed in token URLs).
    own_hosts: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct AwsState {
    inner: Arc<Inner>,
}

impl AwsState {
    pub fn new(cfg: AwsConfig) -> Self {
        let ctx = Ctx {
            region: cfg.region.clone(),
            account: cfg.account_id.clone(),
            clock: cfg.clock,
            delays: cfg.delays.clone(),
        };
        let mut model = Model::new(ctx);
        model.host_addresses = cfg.nlb_address_range.map(crate::names::HostAddresses::new);
        AwsState {
            inner: Arc::new(Inner {
                cfg,
                model: Mutex::new(model),
                hooks: RwLock::new(None),
                own_hosts: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn config(&self) -> &AwsConfig {
        &self.inner.cfg
    }

    pub fn set_eks_hooks(&self, hooks: Arc<dyn EksHooks>) {
        *self.inner.hooks.write().unwrap_or_else(|e| e.into_inner()) = Some(hooks);
    }

    pub(crate) fn eks_hooks(&self) -> Option<Arc<dyn EksHooks>> {
        self.inner.hooks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on the model after applying every transition that is due.
    pub(crate) fn with_model<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        let mut model = self.inner.model.lock().unwrap_or_else(|e| e.into_inner());
        model.settle();
        f(&mut model)
    }

    pub(crate) fn secret_of(&self, access_key_id: &str) -> Option<String> {
        self.inner.cfg.credentials.iter().find(|(k, _)| k == access_key_id).map(|(_, s)| s.clone())
    }

    pub(crate) fn identity_of(&self, access_key_id: &str) -> CallerIdentity {
        CallerIdentity::for_key(&self.inner.cfg.account_id, access_key_id)
    }

    pub(crate) fn add_own_host(&self, host: String) {
        self.inner.own_hosts.lock().unwrap_or_else(|e| e.into_inner()).push(host);
    }

    /// Hosts a token URL may point at: the real STS endpoints over https, or
    /// this endpoint itself over http (what `aws eks get-token` presigns for
    /// when AWS_ENDPOINT_URL points here).
    fn sts_host_allowed(&self, scheme: &str, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let real = scheme == "https"
            && (host == "sts.amazonaws.com"
                || (host.starts_with("sts.") && host.ends_with(".amazonaws.com") && !host[4..].contains('/')));
        let own = self.inner.own_hosts.lock().unwrap_or_else(|e| e.into_inner()).contains(&host);
        real || own
    }

    /// Checks an EKS token's presigned GetCallerIdentity URL as
    /// aws-iam-authenticator and STS would for a cluster named `cluster_header`.
    pub fn verify_presigned_sts(&self, url: &str, cluster_header: &str) -> Result<CallerIdentity, String> {
        self.verify_presigned_sts_at(url, cluster_header, SystemTime::now())
    }

    /// [`Self::verify_presigned_sts`] at a given time.
    pub fn verify_presigned_sts_at(
        &self,
        url: &str,
        cluster_header: &str,
        now: SystemTime,
    ) -> Result<CallerIdentity, String> {
        let uri: http::Uri = url.parse().map_err(|_| "the token URL is not a URL".to_string())?;
        let scheme = uri.scheme_str().ok_or("the token URL has no scheme")?;
        let authority = uri.authority().ok_or("the token URL has no host")?.as_str().to_ascii_lowercase();
        let presigned = sts::check_token_url(
            scheme,
            &authority,
            uri.path(),
            uri.query().unwrap_or_default(),
            |s, h| self.sts_host_allowed(s, h),
            now,
        )?;
        let secret = self.secret_of(&presigned.scope.access_key_id).ok_or("the access key is not known")?;
        // The host header as the signer saw it: default ports are left out.
        let host = match (scheme, uri.port_u16()) {
            ("https", Some(443)) | ("http", Some(80)) => uri.host().unwrap_or_default().to_string(),
            _ => authority.clone(),
        };
        let mut headers = Vec::new();
        for name in &presigned.signed_headers {
            match name.as_str() {
                "host" => headers.push(("host".to_string(), host.clone())),
                "x-k8s-aws-id" => headers.push(("x-k8s-aws-id".to_string(), cluster_header.to_string())),
                other => return Err(format!("cannot verify a token that signs header {other:?}")),
            }
        }
        presigned.verify("GET", &format!("{scheme}://{authority}"), uri.path(), &headers, &secret)?;
        Ok(self.identity_of(&presigned.scope.access_key_id))
    }

    // --- seeding a network without going through the wire ----------------

    /// EC2 CreateVpc (tags as with a TagSpecification).
    pub fn create_vpc(&self, cidr: &str, tags: Vec<(String, String)>) -> Result<String, AwsError> {
        crate::ec2::ops::check_user_tags(&tags)?;
        self.with_model(|m| m.create_vpc(cidr, tags))
    }

    /// EC2 CreateSubnet in a named availability zone (`us-west-2a`).
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        cidr: &str,
        az: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        crate::ec2::ops::check_user_tags(&tags)?;
        self.with_model(|m| m.create_subnet(vpc_id, cidr, Some(az), None, tags))
    }

    // --- the twin's load balancer controller -----------------------------

    pub fn create_load_balancer(&self, req: NewLoadBalancer) -> Result<LoadBalancerInfo, AwsError> {
        self.with_model(|m| {
            let arn = m.elb_create_load_balancer(&req)?;
            lb_info(m, &arn).ok_or_else(crate::elbv2::ops::lb_not_found)
        })
    }

    pub fn delete_load_balancer(&self, arn: &str) -> Result<(), AwsError> {
        self.with_model(|m| m.elb_delete_load_balancer(arn))
    }

    /// Sets load balancer attributes (e.g. `load_balancing.cross_zone.enabled`).
    pub fn modify_load_balancer_attributes(&self, arn: &str, attributes: &[(String, String)]) -> Result<(), AwsError> {
        self.with_model(|m| {
            let lb = m.load_balancers.get_mut(arn).ok_or_else(crate::elbv2::ops::lb_not_found)?;
            crate::elbv2::ops::modify_attributes(&mut lb.attributes, attributes, "Load balancer")
        })
    }

    pub fn create_target_group(&self, req: NewTargetGroup) -> Result<String, AwsError> {
        self.with_model(|m| {
            let mut tg = TargetGroupRequest::tcp_ip(req.name, req.port, req.vpc_id, req.tags);
            tg.health_check_port = req.health_check_port;
            m.elb_create_target_group(tg)
        })
    }

    pub fn delete_target_group(&self, arn: &str) -> Result<(), AwsError> {
        self.with_model(|m| m.elb_delete_target_group(arn))
    }

    /// A TCP listener forwarding to one target group.
    pub fn create_listener(
        &self,
        lb_arn: &str,
        port: u16,
        target_group_arn: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        self.with_model(|m| m.elb_create_listener(lb_arn, port, "TCP", vec![(target_group_arn.to_string(), 1)], tags))
    }

    pub fn register_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError> {
        let targets: Vec<(String, Option<u16>)> = targets.iter().map(|(ip, port)| (ip.clone(), Some(*port))).collect();
        self.with_model(|m| m.elb_register_targets(tg_arn, &targets))
    }

    pub fn deregister_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError> {
        let targets: Vec<(String, Option<u16>)> = targets.iter().map(|(ip, port)| (ip.clone(), Some(*port))).collect();
        self.with_model(|m| m.elb_deregister_targets(tg_arn, &targets))
    }

    /// Registered targets (not draining), in registration order.
    pub fn registered_targets(&self, tg_arn: &str) -> Vec<(String, u16)> {
        self.with_model(|m| {
            m.target_groups
                .get(tg_arn)
                .map(|tg| {
                    tg.targets.iter().filter(|t| t.deregistered.is_none()).map(|t| (t.id.clone(), t.port)).collect()
                })
                .unwrap_or_default()
        })
    }

    /// One health-check result from the twin's checker (the only source of health).
    pub fn record_health_check(&self, tg_arn: &str, ip: &str, port: u16, passed: bool) {
        self.with_model(|m| m.record_health_check(tg_arn, ip, port, passed))
    }

    /// Whether the Amazon-provided DNS server answers in the VPC (`enableDnsSupport`);
    /// false for a VPC that does not exist.
    pub fn vpc_dns_support(&self, vpc_id: &str) -> bool {
        self.with_model(|m| m.vpcs.get(vpc_id).is_some_and(|v| v.dns_support))
    }

    /// Points a target group's health checks at `port` (None: the traffic port), as
    /// ModifyTargetGroup does; target health follows from the next checks.
    pub fn set_health_check_port(&self, tg_arn: &str, port: Option<u16>) -> Result<(), AwsError> {
        self.with_model(|m| {
            let tg = m
                .target_groups
                .get_mut(tg_arn)
                .ok_or_else(|| AwsError::bad("TargetGroupNotFound", "One or more target groups not found"))?;
            tg.health_check.port = port;
            Ok(())
        })
    }

    pub fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        self.with_model(|m| m.create_security_group(vpc_id, name, description, tags))
    }

    pub fn delete_security_group(&self, id: &str) -> Result<(), AwsError> {
        self.with_model(|m| m.delete_security_group(id))
    }

    pub fn load_balancers_tagged(&self, key: &str, value: &str) -> Vec<LoadBalancerInfo> {
        self.with_model(|m| {
            let mut lbs: Vec<_> =
                m.load_balancers.values().filter(|lb| lb.tags.get(key).is_some_and(|v| v == value)).collect();
            lbs.sort_by_key(|lb| lb.seq);
            lbs.iter().filter_map(|lb| lb_info(m, &lb.arn)).collect()
        })
    }

    pub fn load_balancer(&self, arn: &str) -> Option<LoadBalancerInfo> {
        self.with_model(|m| lb_info(m, arn))
    }

    /// Every network load balancer, in creation order, with its listeners,
    /// their target groups and the targets' health.
    pub fn network_load_balancers(&self) -> Vec<NlbSnapshot> {
        self.with_model(|m| {
            let mut lbs: Vec<_> = m.load_balancers.values().collect();
            lbs.sort_by_key(|lb| lb.seq);
            lbs.iter().filter_map(|lb| nlb_snapshot(m, &lb.arn)).collect()
        })
    }

    /// One network load balancer as [`Self::network_load_balancers`] lists it.
    pub fn network_load_balancer(&self, arn: &str) -> Option<NlbSnapshot> {
        self.with_model(|m| nlb_snapshot(m, arn))
    }

    /// Target groups a load balancer's listeners forward to.
    pub fn target_groups_of(&self, lb_arn: &str) -> Vec<TargetGroupInfo> {
        self.with_model(|m| {
            let mut listeners: Vec<_> = m.listeners.values().filter(|l| l.lb_arn == lb_arn).collect();
            listeners.sort_by_key(|l| l.seq);
            let mut arns: Vec<&String> = Vec::new();
            for (arn, _) in listeners.iter().flat_map(|l| &l.forward) {
                if !arns.contains(&arn) {
                    arns.push(arn);
                }
            }
            arns.iter().filter_map(|arn| tg_info(m, arn)).collect()
        })
    }

    pub fn target_group(&self, arn: &str) -> Option<TargetGroupInfo> {
        self.with_model(|m| tg_info(m, arn))
    }

    pub fn security_groups_tagged(&self, key: &str, value: &str) -> Vec<String> {
        self.with_model(|m| {
            let mut groups: Vec<_> =
                m.security_groups.values().filter(|g| g.tags.get(key).is_some_and(|v| v == value)).collect();
            groups.sort_by_key(|g| g.seq);
            groups.iter().map(|g| g.id.clone()).collect()
        })
    }

    pub fn subnets_of_vpc(&self, vpc_id: &str) -> Vec<SubnetInfo> {
        self.with_model(|m| {
            let mut subnets: Vec<_> = m.subnets.values().filter(|s| s.vpc_id == vpc_id).collect();
            subnets.sort_by_key(|s| s.seq);
            subnets
                .iter()
                .map(|s| SubnetInfo {
                    id: s.id.clone(),
                    vpc_id: s.vpc_id.clone(),
                    cidr: s.cidr.to_string(),
                    az: s.az.clone(),
                    tags: s.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                })
                .collect()
        })
    }

    pub fn cluster(&self, name: &str) -> Option<ClusterInfo> {
        self.with_model(|m| {
            let c = m.clusters.get(name)?;
            Some(ClusterInfo {
                name: c.name.clone(),
                arn: c.arn.clone(),
                status: c.status(&m.ctx).to_string(),
                vpc_id: c.vpc_id.clone(),
                subnet_ids: c.subnet_ids.clone(),
                cluster_security_group_id: c.cluster_security_group_id.clone(),
                endpoint: c.endpoint(&m.ctx).map(|e| e.endpoint.clone()),
            })
        })
    }

    /// DNS answer for an NLB name (case-insensitive, trailing dot allowed):
    /// None = no such name (NXDOMAIN), also while the NLB is provisioning.
    /// The addresses of zones with a healthy target; all of them with
    /// cross-zone load balancing and any healthy target, or when no target is
    /// healthy anywhere (NLBs fail open).
    pub fn resolve(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let name = name.trim_end_matches('.');
        self.with_model(|m| {
            let lb = m.load_balancers.values().find(|lb| lb.dns_name.eq_ignore_ascii_case(name))?;
            if !lb.active {
                return None;
            }
            let all: Vec<Ipv4Addr> = lb.zones.iter().map(|z| z.address()).collect();
            let healthy = m.healthy_zones(&lb.arn);
            if healthy.is_empty() || lb.cross_zone() || healthy.iter().any(|z| z == "all") {
                return Some(all);
            }
            Some(lb.zones.iter().filter(|z| healthy.contains(&z.az)).map(|z| z.address()).collect())
        })
    }
}

fn lb_info(m: &Model, arn: &str) -> Option<LoadBalancerInfo> {
    let lb = m.load_balancers.get(arn)?;
    Some(LoadBalancerInfo {
        arn: lb.arn.clone(),
        name: lb.name.clone(),
        dns_name: lb.dns_name.clone(),
        vpc_id: lb.vpc_id.clone(),
        scheme: lb.scheme.clone(),
        state: lb.state().to_string(),
        zones: lb.zones.iter().map(|z| (z.az.clone(), z.subnet_id.clone(), z.address())).collect(),
        security_group_ids: lb.security_groups.clone(),
        tags: lb.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

fn nlb_snapshot(m: &Model, arn: &str) -> Option<NlbSnapshot> {
    let lb = m.load_balancers.get(arn)?;
    let mut listeners: Vec<_> = m.listeners.values().filter(|l| l.lb_arn == arn).collect();
    listeners.sort_by_key(|l| l.seq);
    let listeners = listeners
        .into_iter()
        .map(|l| ListenerSnapshot {
            arn: l.arn.clone(),
            port: l.port,
            protocol: l.protocol.clone(),
            forward: l
                .forward
                .iter()
                .filter_map(|(tg_arn, weight)| {
                    let tg = m.target_groups.get(tg_arn)?;
                    Some(ForwardSnapshot {
                        target_group: tg_info(m, tg_arn)?,
                        weight: *weight,
                        health_check_timeout_seconds: tg.health_check.timeout_seconds,
                        targets: tg
                            .targets
                            .iter()
                            .map(|t| TargetSnapshot {
                                ip: t.id.clone(),
                                port: t.port,
                                az: t.az.clone(),
                                state: m.target_health(tg, t).state,
                            })
                            .collect(),
                    })
                })
                .collect(),
        })
        .collect();
    Some(NlbSnapshot { lb: lb_info(m, arn)?, cross_zone: lb.cross_zone(), listeners })
}

fn tg_info(m: &Model, arn: &str) -> Option<TargetGroupInfo> {
    let tg = m.target_groups.get(arn)?;
    Some(TargetGroupInfo {
        arn: tg.arn.clone(),
        name: tg.name.clone(),
        port: tg.port,
        protocol: tg.protocol.clone(),
        vpc_id: tg.vpc_id.clone(),
        target_type: tg.target_type.clone(),
        health_check_port: tg.health_check.port,
        health_check_interval_seconds: tg.health_check.interval_seconds,
        load_balancer_arns: m.load_balancers_of_target_group(arn),
        tags: tg.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(scale: f64, delays: Delays) -> (AwsState, String, Vec<String>) {
        let state = AwsState::new(AwsConfig { clock: Clock::new(scale), delays, ..AwsConfig::default() });
        let vpc = state.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let subnets = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, z)| {
                state.create_subnet(&vpc, &format!("10.1.{}.0/24", 48 + i), &format!("us-west-2{z}"), vec![]).unwrap()
            })
            .collect();
        (state, vpc, subnets)
    }

    fn gateway(state: &AwsState, subnets: &[String]) -> LoadBalancerInfo {
        state
            .create_load_balancer(NewLoadBalancer {
                name: "gw".into(),
                scheme: "internet-facing".into(),
                subnet_ids: subnets.to_vec(),
                security_group_ids: vec![],
                tags: vec![("elbv2.k8s.aws/cluster".into(), "eks-1".into())],
            })
            .unwrap()
    }

    #[test]
    fn vpc_and_nlb_wait_for_their_simulated_delays() {
        let (slow, _, subnets) = state(1.0, Delays::default());
        let lb = gateway(&slow, &subnets);
        assert_eq!(lb.state, "provisioning");
        assert_eq!(slow.resolve(&lb.dns_name), None, "no DNS record while provisioning");
        assert!(slow.with_model(|m| m.vpcs.values().all(|v| !v.available)));

        // 180 s of provisioning and 2 s for the VPC take 0.18 ms and 2 µs at this scale.
        let (fast, _, subnets) = state(1_000_000.0, Delays::default());
        let lb = gateway(&fast, &subnets);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(fast.load_balancer(&lb.arn).unwrap().state, "active");
        assert!(fast.with_model(|m| m.vpcs.values().all(|v| v.available)));
    }

    #[test]
    fn dns_answers_healthy_zones_fails_open_and_honours_cross_zone() {
        let delays = Delays { nlb_provision: Duration::ZERO, target_registration: Duration::ZERO, ..Delays::default() };
        let (state, vpc, subnets) = state(1.0, delays);
        let lb = gateway(&state, &subnets);
        let all: Vec<Ipv4Addr> = lb.zones.iter().map(|z| z.2).collect();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|ip| !ip.is_private()), "internet-facing: public addresses");
        assert_eq!(state.resolve(&lb.dns_name), Some(all.clone()), "nothing healthy: fail open");
        assert_eq!(state.resolve("nope.elb.us-west-2.amazonaws.com"), None);

        let tg = state
            .create_target_group(NewTargetGroup {
                name: "gw-15443".into(),
                port: 15443,
                vpc_id: vpc,
                ..Default::default()
            })
            .unwrap();
        state.create_listener(&lb.arn, 15443, &tg, vec![]).unwrap();
        state.register_targets(&tg, &[("10.1.49.7".into(), 15443)]).unwrap();
        assert_eq!(state.registered_targets(&tg), vec![("10.1.49.7".to_string(), 15443)]);
        for _ in 0..3 {
            state.record_health_check(&tg, "10.1.49.7", 15443, true);
        }
        let name = format!("{}.", lb.dns_name.to_uppercase());
        assert_eq!(state.resolve(&name), Some(vec![all[1]]), "only us-west-2b has a healthy target");

        state
            .modify_load_balancer_attributes(&lb.arn, &[("load_balancing.cross_zone.enabled".into(), "true".into())])
            .unwrap();
        assert_eq!(state.resolve(&lb.dns_name), Some(all.clone()));
        assert!(state.modify_load_balancer_attributes(&lb.arn, &[("no.such".into(), "1".into())]).is_err());

        let groups = state.target_groups_of(&lb.arn);
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].port, groups[0].load_balancer_arns.clone()), (15443, vec![lb.arn.clone()]));
        assert_eq!(state.load_balancers_tagged("elbv2.k8s.aws/cluster", "eks-1")[0].arn, lb.arn);
        assert!(state.load_balancers_tagged("elbv2.k8s.aws/cluster", "eks-2").is_empty());
        assert_eq!(
            state.subnets_of_vpc(&lb.vpc_id).iter().map(|s| s.az.as_str()).collect::<Vec<_>>(),
            ["us-west-2a", "us-west-2b", "us-west-2c"]
        );

        state.deregister_targets(&tg, &[("10.1.49.7".into(), 15443)]).unwrap();
        assert!(state.registered_targets(&tg).is_empty(), "draining targets are no longer registered");
        assert_eq!(state.resolve(&lb.dns_name), Some(all));
        state.delete_load_balancer(&lb.arn).unwrap();
        assert_eq!(state.resolve(&lb.dns_name), None);
        state.delete_target_group(&tg).unwrap();
    }

    #[test]
    fn nlbs_get_host_addresses_from_the_range_and_give_them_back() {
        let delays = Delays { nlb_provision: Duration::ZERO, target_registration: Duration::ZERO, ..Delays::default() };
        let range: crate::Cidr = "127.77.0.0/16".parse().unwrap();
        let state = AwsState::new(AwsConfig { delays, nlb_address_range: Some(range), ..AwsConfig::default() });
        let vpc = state.create_vpc("10.1.0.0/16", vec![]).unwrap();
        let subnets: Vec<String> = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, z)| {
                state.create_subnet(&vpc, &format!("10.1.{}.0/24", 48 + i), &format!("us-west-2{z}"), vec![]).unwrap()
            })
            .collect();
        let public = gateway(&state, &subnets);
        let internal = state
            .create_load_balancer(NewLoadBalancer {
                name: "internal".into(),
                scheme: "internal".into(),
                subnet_ids: subnets.clone(),
                ..Default::default()
            })
            .unwrap();
        let mut all: Vec<Ipv4Addr> = public.zones.iter().chain(&internal.zones).map(|z| z.2).collect();
        assert!(all.iter().all(|ip| range.contains(*ip)), "{all:?}");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4, "one address per NLB and zone");
        // DNS answers them (nothing healthy yet: every zone).
        let mut resolved = state.resolve(&internal.dns_name).unwrap();
        resolved.sort();
        let mut zones: Vec<Ipv4Addr> = internal.zones.iter().map(|z| z.2).collect();
        zones.sort();
        assert_eq!(resolved, zones);
        // An internal NLB's ENIs keep their private addresses in the subnets.
        assert!(state.with_model(|m| m.enis.values().all(|e| e.private_ip.octets()[..2] == [10, 1])));

        let tg = state
            .create_target_group(NewTargetGroup {
                name: "gw-15443".into(),
                port: 15443,
                vpc_id: vpc,
                ..Default::default()
            })
            .unwrap();
        state.create_listener(&public.arn, 15443, &tg, vec![]).unwrap();
        state.register_targets(&tg, &[("10.1.48.7".into(), 15443)]).unwrap();
        for _ in 0..3 {
            state.record_health_check(&tg, "10.1.48.7", 15443, true);
        }
        let snapshot = state.network_load_balancers();
        assert_eq!(snapshot.iter().map(|n| n.lb.arn.as_str()).collect::<Vec<_>>(), [&public.arn, &internal.arn]);
        let listener = &snapshot[0].listeners[0];
        assert_eq!((listener.port, listener.protocol.as_str(), listener.forward.len()), (15443, "TCP", 1));
        let forward = &listener.forward[0];
        assert_eq!((forward.target_group.arn.as_str(), forward.weight), (tg.as_str(), 1));
        assert_eq!(
            forward.targets,
            vec![TargetSnapshot { ip: "10.1.48.7".into(), port: 15443, az: "us-west-2a".into(), state: "healthy" }]
        );
        assert!(snapshot[1].listeners.is_empty());
        assert_eq!(state.network_load_balancer(&public.arn).as_ref(), Some(&snapshot[0]));

        state.delete_load_balancer(&public.arn).unwrap();
        assert!(state.network_load_balancer(&public.arn).is_none());
        let held = |ip: Ipv4Addr| state.with_model(|m| m.host_addresses.as_ref().is_some_and(|p| p.holds(ip)));
        assert!(public.zones.iter().all(|z| !held(z.2)), "a deleted NLB's addresses are free again");
        assert!(internal.zones.iter().all(|z| held(z.2)));
    }

    #[test]
    fn config_debug_hides_secrets() {
        let cfg = AwsConfig { credentials: vec![("AKID".into(), "s3cr3t".into())], ..AwsConfig::default() };
        let shown = format!("{cfg:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t"));
    }
}
