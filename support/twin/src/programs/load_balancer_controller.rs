//! The AWS Load Balancer Controller, as far as the seed uses it: Services of
//! type LoadBalancer annotated `aws-load-balancer-type: external` (or of
//! class `service.k8s.aws/nlb`) with target type `ip` become NLBs through the
//! twin's AWS state (reference/istio-multinetwork.md, "AWS Load Balancer
//! Controller").
//!
//! It acts only while its own pod runs and is Ready in the cluster (an image
//! containing `aws-load-balancer-controller`, cluster name from
//! `--cluster-name=`): a Service created while it is absent stays pending,
//! and one deleted while it is absent keeps its finalizer. Everything it made
//! is found again by tags and deterministic names, so a restart adopts its
//! NLBs instead of creating second ones.
//!
//! Sources (kubernetes-sigs/aws-load-balancer-controller at 225f4456, v3.5.0-8;
//! the same at v2.7.1 where named): which Services it claims,
//! pkg/service/service_utils.go `IsServiceSupported`; the annotations and their
//! defaults (scheme `internal`, health-check port `traffic-port`),
//! docs/guide/service/annotations.md; the finalizer `service.k8s.aws/resources`,
//! pkg/shared_constants/finalizers.go; the tags `elbv2.k8s.aws/cluster`,
//! `service.k8s.aws/stack` and `service.k8s.aws/resource`,
//! pkg/deploy/tracking/provider.go; the class `service.k8s.aws/nlb`,
//! pkg/config/service_config.go. Its Events and log lines: see `report`. Not
//! modelled: its Service mutating webhook (`mservice.elbv2.k8s.aws`, which
//! sets that class at creation).

mod names;
mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::objects::{self, pod, service};
use super::runtime::{Cluster, Reconciler, PRIVATE_SUBNET_TAG, PUBLIC_SUBNET_TAG};
use crate::aws::{AwsError, LoadBalancerInfo, NewLoadBalancer, NewTargetGroup};
use crate::aws_api::AwsApi;
use crate::kube::{Resource, StoreEvent};

pub const FINALIZER: &str = "service.k8s.aws/resources";
pub const CONTROLLER_IMAGE: &str = "aws-load-balancer-controller";
pub const NLB_CLASS: &str = "service.k8s.aws/nlb";

const ANN_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
const ANN_TARGET_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type";
const ANN_SCHEME: &str = "service.beta.kubernetes.io/aws-load-balancer-scheme";
const ANN_INTERNAL: &str = "service.beta.kubernetes.io/aws-load-balancer-internal";
const ANN_ATTRIBUTES: &str = "service.beta.kubernetes.io/aws-load-balancer-attributes";
const ANN_HEALTHCHECK_PORT: &str = "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port";

const TAG_CLUSTER: &str = "elbv2.k8s.aws/cluster";
const TAG_STACK: &str = "service.k8s.aws/stack";
const TAG_RESOURCE: &str = "service.k8s.aws/resource";
const TAG_ELBV2_RESOURCE: &str = "elbv2.k8s.aws/resource";

/// How often to look at AWS even without Kubernetes events (someone may
/// have deleted an NLB or target behind the controller's back).
const RESYNC: Duration = Duration::from_secs(1);

/// The controller as its Deployment configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `--cluster-name`: what the resources are tagged with.
    pub cluster_name: String,
    pub vpc_id: String,
    /// The controller's pod and container (where its log goes).
    pub pod_uid: String,
    pub container: String,
}

/// The running, Ready controller pod of the cluster, if any.
pub fn running_instance(pods: &[Value], cluster_vpc: &str) -> Option<Instance> {
    let mut candidates: Vec<&Value> = pods.iter().filter(|p| pod::is_serving(p)).collect();
    candidates.sort_by_key(|p| (objects::namespace(p), objects::name(p)));
    candidates.into_iter().find_map(|p| {
        let container = pod::containers(p).iter().find(|c| pod::image(c).contains(CONTROLLER_IMAGE))?;
        // Without --cluster-name the real controller exits at start.
        let cluster_name = pod::flag_value(container, "--cluster-name").filter(|c| !c.is_empty())?;
        let vpc_id = pod::flag_value(container, "--aws-vpc-id").unwrap_or_else(|| cluster_vpc.to_owned());
        let container = container.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(Instance { cluster_name, vpc_id, pod_uid: objects::uid(p).to_owned(), container })
    })
}

/// Whether this controller provisions an NLB with IP targets for the Service.
pub fn manages(svc: &Value) -> bool {
    if service::type_(svc) != "LoadBalancer" {
        return false;
    }
    let class = svc.pointer("/spec/loadBalancerClass").and_then(Value::as_str);
    let lb_type = objects::annotation(svc, ANN_TYPE);
    let target_type = objects::annotation(svc, ANN_TARGET_TYPE);
    match (class, lb_type) {
        // Another controller's class: not ours whatever the annotations say.
        (Some(c), _) if c != NLB_CLASS => false,
        (_, Some("nlb-ip")) => true,
        (Some(_), _) | (None, Some("external")) => target_type == Some("ip"),
        _ => false,
    }
}

/// `internet-facing` or `internal` (the default).
pub fn scheme(svc: &Value) -> &'static str {
    match objects::annotation(svc, ANN_SCHEME) {
        Some("internet-facing") => "internet-facing",
        Some(_) => "internal",
        None if objects::annotation(svc, ANN_INTERNAL) == Some("false") => "internet-facing",
        None => "internal",
    }
}

/// The health-check port of the Service's target groups: None for `traffic-port`
/// (the default with externalTrafficPolicy Cluster), a number, or a Service port's
/// name, which for IP targets is that port's numeric target port
/// (aws-load-balancer-controller docs/guide/service/annotations.md, healthcheck-port;
/// pkg/service/model_build_target_group.go). Err for a value the controller refuses.
pub fn health_check_port(svc: &Value, selected: &[&Value]) -> Result<Option<u16>, String> {
    let Some(value) = objects::annotation(svc, ANN_HEALTHCHECK_PORT).map(str::trim) else {
        return Ok(None);
    };
    if value == "traffic-port" {
        return Ok(None);
    }
    if let Ok(n) = value.parse::<u16>() {
        return Ok(Some(n));
    }
    let port = service::ports(svc)
        .into_iter()
        .find(|p| p.name.as_deref() == Some(value))
        .ok_or_else(|| format!("failed to resolve healthCheckPort {value}: unable to find port {value} on service"))?;
    Ok(Some(selected.iter().find_map(|p| port.resolve_on(p)).unwrap_or(match &port.target_port {
        service::TargetPort::Number(n) => *n,
        service::TargetPort::Name(_) => port.port,
    })))
}

/// `k=v,k=v` from the attributes annotation.
pub fn attributes(svc: &Value) -> Vec<(String, String)> {
    objects::annotation(svc, ANN_ATTRIBUTES)
        .unwrap_or("")
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn has_tag(tags: &[(String, String)], key: &str, value: &str) -> bool {
    tags.iter().any(|(k, v)| k == key && v == value)
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The controller's reconcile loop for one cluster.
#[derive(Default)]
pub struct LoadBalancerController {
    /// Last outcome per Service (`Ok` or the error), reported when it changes
    /// rather than every pass: the twin's passes are far more frequent than
    /// the real controller's reconciles, and would only raise counts.
    last_outcome: HashMap<String, Result<(), Failure>>,
}

/// Why a reconcile failed, as the controller tells them apart
/// (controllers/service/service_controller.go buildModel / deployModel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The model could not be built (e.g. no subnets to put the NLB in).
    Build(String),
    /// AWS refused or failed a change (the wording is the twin's).
    Deploy(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Deploy(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::Deploy(e.to_owned())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Build(e) | Failure::Deploy(e) => f.write_str(e),
        }
    }
}

/// One reconcile pass's view of the controller's world.
struct Pass<'a> {
    cluster: &'a Cluster,
    instance: Instance,
    pods: Vec<Value>,
}

impl Reconciler for LoadBalancerController {
    fn name(&self) -> &'static str {
        "aws-load-balancer-controller"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        matches!(event.resource.plural.as_str(), "services" | "pods")
    }

    fn resync(&self) -> Option<Duration> {
        Some(RESYNC)
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let pods = cluster.list(&Resource::pods());
        let Some(instance) = running_instance(&pods, &cluster.vpc_id) else {
            return;
        };
        let pass = Pass { cluster, instance, pods };
        let services = cluster.list(&Resource::services());
        for svc in &services {
            let key = format!("{}/{}", objects::namespace(svc), objects::name(svc));
            let has_finalizer = objects::finalizers(svc).iter().any(|f| f == FINALIZER);
            let result = if manages(svc) && !objects::is_terminating(svc) {
                pass.ensure(svc, &key)
            } else if has_finalizer {
                let others = services
                    .iter()
                    .any(|o| o != svc && (manages(o) || objects::finalizers(o).iter().any(|f| f == FINALIZER)));
                pass.tear_down(svc, &key, !others)
            } else {
                Ok(())
            };
            let managed = manages(svc) || has_finalizer;
            if managed && self.last_outcome.get(&key) != Some(&result) {
                if let Err(e) = &result {
                    tracing::warn!(cluster = %cluster.eks_name, service = %key, "load balancer: {e}");
                }
                report::outcome(&pass, svc, &result);
                self.last_outcome.insert(key, result);
            }
        }
        let live: HashSet<String> =
            services.iter().map(|s| format!("{}/{}", objects::namespace(s), objects::name(s))).collect();
        self.last_outcome.retain(|k, _| live.contains(k));
    }
}

impl Pass<'_> {
    fn aws(&self) -> &dyn AwsApi {
        self.cluster.aws.as_ref()
    }

    fn cluster_tag(&self) -> (&str, &str) {
        (TAG_CLUSTER, self.instance.cluster_name.as_str())
    }

    /// The Service's NLBs in AWS: tagged with its stack and this cluster. A
    /// lookup AWS did not answer fails the pass: taken for "none", it would
    /// make a second NLB, or let the Service go with its NLB left in AWS.
    fn load_balancers_of(&self, key: &str) -> Result<Vec<LoadBalancerInfo>, String> {
        Ok(self
            .aws()
            .load_balancers_tagged(TAG_STACK, key)
            .map_err(|e| format!("listing load balancers: {e}"))?
            .into_iter()
            .filter(|lb| has_tag(&lb.tags, TAG_CLUSTER, &self.instance.cluster_name))
            .collect())
    }

    /// Security groups carrying both tags and this cluster's tag.
    fn security_groups(&self, key: &str, value: &str) -> Result<Vec<String>, String> {
        let listing = |k: &str, v: &str| {
            self.aws().security_groups_tagged(k, v).map_err(|e| format!("listing security groups: {e}"))
        };
        let mine: HashSet<String> = listing(TAG_CLUSTER, &self.instance.cluster_name)?.into_iter().collect();
        Ok(listing(key, value)?.into_iter().filter(|id| mine.contains(id)).collect())
    }

    fn ensure(&self, svc: &Value, key: &str) -> Result<(), Failure> {
        let ns = objects::namespace(svc);
        let name = objects::name(svc);
        let cluster_name = self.instance.cluster_name.as_str();

        // The finalizer first: from here on, AWS resources exist for it.
        let mut finalizers = objects::finalizers(svc);
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.to_owned());
            self.cluster
                .merge_patch(&Resource::services(), Some(ns), name, json!({"metadata": {"finalizers": finalizers}}))
                .ok_or("could not add the finalizer")?;
        }

        let scheme = scheme(svc);
        let subnets = self.subnets_for(scheme).map_err(Failure::Build)?;
        let frontend = self.frontend_security_group(ns, name, key)?;
        let backend = self.backend_security_group()?;

        let lb_name = names::load_balancer(cluster_name, ns, name, scheme);
        let existing = self.load_balancers_of(key)?;
        // A scheme change renames the NLB: the old one goes.
        for stale in existing.iter().filter(|lb| lb.name != lb_name) {
            self.delete_load_balancer(stale)?;
        }
        let lb = match existing.into_iter().find(|lb| lb.name == lb_name) {
            Some(lb) => lb,
            None => self
                .aws()
                .create_load_balancer(NewLoadBalancer {
                    name: lb_name.clone(),
                    scheme: scheme.to_owned(),
                    subnet_ids: subnets,
                    security_group_ids: vec![frontend, backend],
                    tags: tags(&[self.cluster_tag(), (TAG_STACK, key), (TAG_RESOURCE, "LoadBalancer")]),
                })
                .map_err(|e| format!("creating NLB {lb_name}: {e}"))?,
        };
        // The hostname is published at once, while the NLB still provisions.
        let ingress = json!([{"hostname": lb.dns_name.to_lowercase()}]);
        if svc.pointer("/status/loadBalancer/ingress") != Some(&ingress) {
            let mut updated = svc.clone();
            updated["status"]["loadBalancer"] = json!({"ingress": ingress});
            self.cluster.set_status(&Resource::services(), &updated);
        }

        let listeners = self.ensure_listeners(svc, key, &lb);
        // Bad attributes fail the pass (and are reported) like in the real
        // controller, but do not hold back listeners and targets.
        Ok(listeners.and(self.apply_attributes(svc, &lb))?)
    }

    fn subnets_for(&self, scheme: &str) -> Result<Vec<String>, String> {
        let role = if scheme == "internet-facing" { PUBLIC_SUBNET_TAG } else { PRIVATE_SUBNET_TAG };
        let mut subnets: Vec<_> = self
            .aws()
            .subnets_of_vpc(&self.instance.vpc_id)
            .map_err(|e| format!("listing the subnets of {}: {e}", self.instance.vpc_id))?
            .into_iter()
            .filter(|s| s.tags.iter().any(|(k, v)| k == role && (v == "1" || v.is_empty())))
            .collect();
        subnets.sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
        // One subnet per AZ, as the controller's subnet discovery picks.
        let mut per_az: BTreeMap<String, String> = BTreeMap::new();
        for s in subnets {
            per_az.entry(s.az).or_insert(s.id);
        }
        if per_az.is_empty() {
            // pkg/networking/subnet_resolver.go (v2.7.1) ResolveViaDiscovery: the
            // explanation counts the VPC's subnets with the role tag.
            return Err(format!("unable to resolve at least one subnet (0 match VPC and tags: [{role}])"));
        }
        Ok(per_az.into_values().collect())
    }

    fn frontend_security_group(&self, ns: &str, name: &str, key: &str) -> Result<String, String> {
        let found = self.security_groups(TAG_STACK, key)?;
        if let Some(id) = found.into_iter().next() {
            return Ok(id);
        }
        let sg_name = names::frontend_security_group(&self.instance.cluster_name, ns, name);
        self.aws()
            .create_security_group(
                &self.instance.vpc_id,
                &sg_name,
                "[k8s] Managed SecurityGroup for LoadBalancer",
                tags(&[self.cluster_tag(), (TAG_STACK, key), (TAG_RESOURCE, "ManagedLBSecurityGroup")]),
            )
            .map_err(|e| format!("creating security group {sg_name}: {e}"))
    }

    fn backend_security_group(&self) -> Result<String, String> {
        if let Some(id) = self.security_groups(TAG_ELBV2_RESOURCE, "backend-sg")?.into_iter().next() {
            return Ok(id);
        }
        let sg_name = names::backend_security_group(&self.instance.cluster_name);
        self.aws()
            .create_security_group(
                &self.instance.vpc_id,
                &sg_name,
                "[k8s] Shared Backend SecurityGroup for LoadBalancer",
                tags(&[self.cluster_tag(), (TAG_ELBV2_RESOURCE, "backend-sg")]),
            )
            .map_err(|e| format!("creating security group {sg_name}: {e}"))
    }

    fn apply_attributes(&self, svc: &Value, lb: &LoadBalancerInfo) -> Result<(), String> {
        let wanted = attributes(svc);
        if wanted.is_empty() {
            return Ok(());
        }
        self.aws()
            .modify_load_balancer_attributes(&lb.arn, &wanted)
            .map_err(|e| format!("attributes of {}: {e}", lb.name))
    }

    /// One target group and one TCP listener per Service port, and the
    /// targets of each: the Ready pods the Service selects, at the target port.
    fn ensure_listeners(&self, svc: &Value, key: &str, lb: &LoadBalancerInfo) -> Result<(), String> {
        let ns = objects::namespace(svc);
        let name = objects::name(svc);
        let selector = service::selector(svc);
        let selected: Vec<&Value> = self
            .pods
            .iter()
            .filter(|p| objects::namespace(p) == ns)
            .filter(|p| selector.as_ref().is_some_and(|s| objects::selects(s, &objects::labels(p))))
            .collect();
        let target_groups =
            self.aws().target_groups_of(&lb.arn).map_err(|e| format!("listing target groups of {}: {e}", lb.name))?;
        let hc_port = health_check_port(svc, &selected)?;

        for sp in service::ports(svc).into_iter().filter(|p| p.protocol == "TCP") {
            // A named target port takes its number from the pods declaring it.
            let tg_port = selected.iter().find_map(|p| sp.resolve_on(p)).unwrap_or(match &sp.target_port {
                service::TargetPort::Number(n) => *n,
                service::TargetPort::Name(_) => sp.port,
            });
            let tg_name = names::target_group(&self.instance.cluster_name, ns, name, sp.port, tg_port, "TCP");
            let resource = format!("{key}:{}", sp.port);
            let port_tags = tags(&[self.cluster_tag(), (TAG_STACK, key), (TAG_RESOURCE, &resource)]);
            let tg_arn = match target_groups.iter().find(|tg| tg.name == tg_name) {
                Some(tg) => {
                    // The target group's name does not hash the health-check port: it is modified in place.
                    if tg.health_check_port != hc_port {
                        self.aws()
                            .set_health_check_port(&tg.arn, hc_port)
                            .map_err(|e| format!("modifying target group {tg_name}: {e}"))?;
                    }
                    tg.arn.clone()
                }
                None => {
                    let arn = self
                        .aws()
                        .create_target_group(NewTargetGroup {
                            name: tg_name.clone(),
                            port: tg_port,
                            vpc_id: self.instance.vpc_id.clone(),
                            health_check_port: hc_port,
                            tags: port_tags.clone(),
                        })
                        .map_err(|e| format!("creating target group {tg_name}: {e}"))?;
                    match self.aws().create_listener(&lb.arn, sp.port, &arn, port_tags) {
                        Ok(_) => {}
                        Err(e) if e.code == "DuplicateListener" => {}
                        Err(e) => return Err(format!("creating listener {}: {e}", sp.port)),
                    }
                    arn
                }
            };

            let want: HashSet<(String, u16)> = selected
                .iter()
                .filter(|p| pod::is_serving(p))
                .filter_map(|p| Some((pod::ip(p)?.to_owned(), sp.resolve_on(p)?)))
                .collect();
            let have: HashSet<(String, u16)> = self
                .aws()
                .registered_targets(&tg_arn)
                .map_err(|e| format!("listing targets of {tg_name}: {e}"))?
                .into_iter()
                .collect();
            let add: Vec<(String, u16)> = want.difference(&have).cloned().collect();
            let remove: Vec<(String, u16)> = have.difference(&want).cloned().collect();
            if !add.is_empty() {
                self.aws()
                    .register_targets(&tg_arn, &add)
                    .map_err(|e| format!("registering targets in {tg_name}: {e}"))?;
            }
            if !remove.is_empty() {
                self.aws()
                    .deregister_targets(&tg_arn, &remove)
                    .map_err(|e| format!("deregistering targets from {tg_name}: {e}"))?;
            }
        }
        Ok(())
    }

    fn delete_load_balancer(&self, lb: &LoadBalancerInfo) -> Result<(), String> {
        // Listeners go with the NLB; then its target groups are free to go.
        let target_groups = match self.aws().target_groups_of(&lb.arn) {
            Ok(groups) => groups,
            // Already gone (DeleteLoadBalancer of an unknown ARN succeeds too).
            Err(e) if e.code == "LoadBalancerNotFound" => Vec::new(),
            Err(e) => return Err(format!("listing target groups of {}: {e}", lb.name)),
        };
        self.aws().delete_load_balancer(&lb.arn).map_err(|e| format!("deleting NLB {}: {e}", lb.name))?;
        for tg in target_groups {
            match self.aws().delete_target_group(&tg.arn) {
                Ok(()) => {}
                Err(e) if e.code == "TargetGroupNotFound" => {}
                Err(e) => return Err(format!("deleting target group {}: {e}", tg.name)),
            }
        }
        Ok(())
    }

    /// Deletes what the Service had in AWS, then lets the Service go.
    fn tear_down(&self, svc: &Value, key: &str, last_in_cluster: bool) -> Result<(), Failure> {
        for lb in self.load_balancers_of(key)? {
            self.delete_load_balancer(&lb)?;
        }
        for sg in self.security_groups(TAG_STACK, key)? {
            delete_security_group(self.aws(), &sg)?;
        }
        if last_in_cluster {
            for sg in self.security_groups(TAG_ELBV2_RESOURCE, "backend-sg")? {
                delete_security_group(self.aws(), &sg)?;
            }
        }
        let ns = objects::namespace(svc);
        let name = objects::name(svc);
        if !objects::is_terminating(svc) && svc.pointer("/status/loadBalancer/ingress").is_some() {
            // Still a Service (no longer an NLB one): it has no address now.
            let mut updated = svc.clone();
            updated["status"]["loadBalancer"] = json!({});
            self.cluster.set_status(&Resource::services(), &updated);
        }
        let finalizers: Vec<String> = objects::finalizers(svc).into_iter().filter(|f| f != FINALIZER).collect();
        self.cluster
            .merge_patch(&Resource::services(), Some(ns), name, json!({"metadata": {"finalizers": finalizers}}))
            .ok_or("could not remove the finalizer")?;
        Ok(())
    }
}

fn delete_security_group(aws: &dyn AwsApi, id: &str) -> Result<(), String> {
    match aws.delete_security_group(id) {
        Ok(()) => Ok(()),
        Err(AwsError { code, .. }) if code == "InvalidGroup.NotFound" => Ok(()),
        Err(e) => Err(format!("deleting security group {id}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller_pod(args: Value, ready: bool) -> Value {
        json!({"metadata": {"name": "aws-load-balancer-controller-6b7c9d-x2x4z", "namespace": "kube-system"},
               "spec": {"containers": [{"name": "aws-load-balancer-controller",
                        "image": "public.ecr.aws/eks/aws-load-balancer-controller:v2.7.1", "args": args}]},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn gateway_service() -> Value {
        json!({"metadata": {"name": "istio-eastwestgateway", "namespace": "istio-ingress", "annotations": {
                  "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                  "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                  "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
                  "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true"}},
               "spec": {"type": "LoadBalancer", "selector": {"istio": "eastwestgateway"},
                        "ports": [{"name": "tls", "port": 15443, "targetPort": 15443}]}})
    }

    #[test]
    fn the_health_check_port_annotation_is_read_as_the_controller_reads_it() {
        let mut svc = gateway_service();
        assert_eq!(health_check_port(&svc, &[]), Ok(None), "traffic-port by default");
        svc["metadata"]["annotations"][ANN_HEALTHCHECK_PORT] = json!("traffic-port");
        assert_eq!(health_check_port(&svc, &[]), Ok(None));
        svc["metadata"]["annotations"][ANN_HEALTHCHECK_PORT] = json!("80");
        assert_eq!(health_check_port(&svc, &[]), Ok(Some(80)));
        svc["metadata"]["annotations"][ANN_HEALTHCHECK_PORT] = json!("no-such-port");
        assert!(health_check_port(&svc, &[]).unwrap_err().contains("no-such-port"));
    }

    #[test]
    fn the_controller_runs_only_as_a_ready_pod_with_a_cluster_name() {
        let vpc = "vpc-1";
        let ok = controller_pod(json!(["--cluster-name=eks-1", "--ingress-class=alb"]), true);
        assert_eq!(
            running_instance(std::slice::from_ref(&ok), vpc),
            Some(Instance {
                cluster_name: "eks-1".into(),
                vpc_id: "vpc-1".into(),
                pod_uid: objects::uid(&ok).into(),
                container: ok["spec"]["containers"][0]["name"].as_str().unwrap_or_default().into(),
            })
        );
        assert_eq!(running_instance(&[controller_pod(json!(["--cluster-name=eks-1"]), false)], vpc), None);
        assert_eq!(running_instance(&[controller_pod(json!(["--ingress-class=alb"]), true)], vpc), None);
        let own_vpc = controller_pod(json!(["--cluster-name=eks-1", "--aws-vpc-id=vpc-9"]), true);
        assert_eq!(running_instance(&[own_vpc], vpc).map(|i| i.vpc_id), Some("vpc-9".into()));
    }

    #[test]
    fn only_external_ip_services_or_the_nlb_class_are_managed() {
        let svc = gateway_service();
        assert!(manages(&svc));
        assert_eq!(scheme(&svc), "internet-facing");
        assert_eq!(attributes(&svc), [("load_balancing.cross_zone.enabled".to_owned(), "true".to_owned())]);

        let mut internal = svc.clone();
        internal["metadata"]["annotations"].as_object_mut().unwrap().remove(ANN_SCHEME);
        assert_eq!(scheme(&internal), "internal", "internal without the scheme annotation");

        let mut instance = svc.clone();
        instance["metadata"]["annotations"][ANN_TARGET_TYPE] = json!("instance");
        assert!(!manages(&instance));

        let mut cluster_ip = svc.clone();
        cluster_ip["spec"]["type"] = json!("ClusterIP");
        assert!(!manages(&cluster_ip));

        let plain = json!({"metadata": {"name": "x"}, "spec": {"type": "LoadBalancer"}});
        assert!(!manages(&plain), "the in-tree controller's Services are not ours");

        let mut by_class = plain.clone();
        by_class["spec"]["loadBalancerClass"] = json!(NLB_CLASS);
        by_class["metadata"]["annotations"] = json!({ANN_TARGET_TYPE: "ip"});
        assert!(manages(&by_class));
        by_class["spec"]["loadBalancerClass"] = json!("example.com/other");
        assert!(!manages(&by_class));
    }
}
