//! Day-2 operations on a cluster's east-west gateway Service, through the
//! Kubernetes API as an operator does them: delete it (the AWS Load Balancer
//! Controller deletes its NLB before it lets the Service go) and create it
//! again (a new NLB, with a new DNS name).
//!
//! The AWS Load Balancer Controller (kubernetes-sigs/aws-load-balancer-controller,
//! controllers/service/service_controller.go `cleanupLoadBalancerResources`):
//! a Service being deleted keeps its finalizer `service.k8s.aws/resources`
//! until the NLB, target groups and security groups are gone. A new NLB's DNS
//! name is `<name>-<16 hex>.elb.<region>.amazonaws.com` with a suffix ELB picks
//! at creation (reference/istio-multinetwork.md), so a recreated Service gets a
//! new hostname even where its NLB keeps its name.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};

use crate::run::Session;
use crate::topology::{names, ClusterTopology};
use crate::wait::{self, Poll, WaitOptions};

/// The east-west gateway Service as it was, and its load balancer hostname.
#[derive(Clone, Debug)]
pub struct DeletedGateway {
    pub service: Service,
    pub hostname: Option<String>,
}

fn hostname(svc: &Service) -> Option<String> {
    let ingress = svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?;
    ingress.iter().find_map(|i| i.hostname.clone().filter(|h| !h.is_empty()))
}

/// Delete the east-west gateway Service of `c` and wait (within `deadline`)
/// until it is gone, i.e. until the load balancer controller has deleted its
/// NLB and removed its finalizer.
pub async fn delete_gateway(session: &Session, c: &ClusterTopology, deadline: Duration) -> Result<DeletedGateway> {
    let api: Api<Service> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_INGRESS);
    let call = session.timeouts.api_call;
    let name = names::EASTWEST_GATEWAY;
    let service = tokio::time::timeout(call, api.get(name))
        .await
        .with_context(|| format!("{}: reading Service {name} took longer than one API call", c.name))??;
    let hostname = hostname(&service);
    tokio::time::timeout(call, api.delete(name, &DeleteParams::default()))
        .await
        .with_context(|| format!("{}: deleting Service {name} took longer than one API call", c.name))??;
    let what = format!("{}: Service {}/{name} to be gone (its NLB deleted)", c.name, names::ISTIO_INGRESS);
    wait::until(what, WaitOptions::new(deadline), || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Ready(()),
            Some(s) => Poll::Pending(format!(
                "still there with finalizers {:?}",
                s.metadata.finalizers.clone().unwrap_or_default()
            )),
        })
    })
    .await?;
    Ok(DeletedGateway { service, hostname })
}

/// What to create again from a deleted gateway Service: its spec and labels
/// and annotations, without what the API server and controllers set.
/// `without_network_label` drops `topology.istio.io/network` (the operation
/// done wrong: istiod no longer sees a gateway for that network).
pub fn recreated(old: &Service, without_network_label: bool) -> Service {
    let mut svc = Service::default();
    svc.metadata.name = old.metadata.name.clone();
    svc.metadata.namespace = old.metadata.namespace.clone();
    svc.metadata.labels = old.metadata.labels.clone();
    svc.metadata.annotations = old.metadata.annotations.clone();
    if without_network_label {
        if let Some(l) = svc.metadata.labels.as_mut() {
            l.remove(names::NETWORK_LABEL);
        }
    }
    let mut spec = old.spec.clone().unwrap_or_default();
    // Allocated by the API server for the old object (and by the controller, for NodePorts).
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    for p in spec.ports.iter_mut().flatten() {
        p.node_port = None;
    }
    spec.health_check_node_port = None;
    svc.spec = Some(spec);
    svc
}

/// Create the gateway Service again and wait (within `deadline`) for a load
/// balancer hostname other than `old_hostname`; returns the new hostname.
pub async fn recreate_gateway(
    session: &Session,
    c: &ClusterTopology,
    deleted: &DeletedGateway,
    without_network_label: bool,
    deadline: Duration,
) -> Result<String> {
    let api: Api<Service> = Api::namespaced(session.kube(&c.name).await?, names::ISTIO_INGRESS);
    let svc = recreated(&deleted.service, without_network_label);
    tokio::time::timeout(session.timeouts.api_call, api.create(&PostParams::default(), &svc)).await.with_context(
        || format!("{}: creating Service {} took longer than one API call", c.name, names::EASTWEST_GATEWAY),
    )??;
    let what = format!("{}: the new Service {} to get a new load balancer hostname", c.name, names::EASTWEST_GATEWAY);
    let old = deleted.hostname.clone();
    Ok(wait::until(what, WaitOptions::new(deadline), || async {
        Ok::<_, kube::Error>(match api.get_opt(names::EASTWEST_GATEWAY).await?.as_ref().and_then(hostname) {
            Some(h) if Some(&h) != old.as_ref() => Poll::Ready(h),
            Some(h) => Poll::Pending(format!("still the old hostname {h}")),
            None => Poll::Pending("EXTERNAL-IP <pending>".into()),
        })
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use kube::api::ObjectMeta;

    fn old() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(names::EASTWEST_GATEWAY.into()),
                namespace: Some(names::ISTIO_INGRESS.into()),
                uid: Some("u-1".into()),
                resource_version: Some("42".into()),
                finalizers: Some(vec!["service.k8s.aws/resources".into()]),
                labels: Some([(names::NETWORK_LABEL.to_string(), "network2".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                cluster_ip: Some("172.20.1.2".into()),
                cluster_ips: Some(vec!["172.20.1.2".into()]),
                ports: Some(vec![ServicePort { port: 15443, node_port: Some(31443), ..Default::default() }]),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress { hostname: Some("old.elb".into()), ..Default::default() }]),
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_recreated_gateway_keeps_its_spec_and_labels_but_nothing_allocated() {
        let old = old();
        assert_eq!(hostname(&old).as_deref(), Some("old.elb"));
        let new = recreated(&old, false);
        assert_eq!(new.metadata.labels, old.metadata.labels);
        assert!(new.metadata.uid.is_none() && new.metadata.resource_version.is_none());
        assert!(new.metadata.finalizers.is_none(), "the controller adds its finalizer again");
        assert!(new.status.is_none());
        let spec = new.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert!(spec.cluster_ip.is_none() && spec.cluster_ips.is_none());
        assert_eq!(spec.ports.unwrap()[0].node_port, None);
        let unlabelled = recreated(&old, true);
        assert!(!unlabelled.metadata.labels.unwrap().contains_key(names::NETWORK_LABEL));
    }
}
