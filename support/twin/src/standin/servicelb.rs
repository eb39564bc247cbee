//! ServiceLB as k3s runs it (pkg/cloudprovider/servicelb.go, v1.28.8+k3s1):
//! each LoadBalancer Service without a loadBalancerClass gets its ports
//! served on the node (k3s runs a svclb DaemonSet whose pods take each port
//! as a hostPort and forward to the Service's cluster IPs), and
//! `status.loadBalancer.ingress` lists the addresses of the nodes where those
//! pods run: only `ip` entries, no hostname, no ipMode (getStatus).
//!
//! The stand-in has no svclb pods: it binds a real TCP listener per port on
//! the node's addresses itself and hands each connection to the node's
//! forwarding ([`Forward`]). A port already taken on the node leaves the
//! Service without ingress, as a svclb pod whose hostPort is taken stays
//! Pending and lists no address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::node;
use crate::kube::{Resource, StoreEvent};
use crate::programs::objects::{self, service};
use crate::programs::runtime::{Cluster, Reconciler};

/// Where a node-port connection goes: the Service (namespace, name), the
/// Service port, and the accepted connection.
pub trait Forward: Send + Sync + 'static {
    fn forward(&self, namespace: String, service: String, port: u16, conn: tokio::net::TcpStream);
}

/// One Service port's listeners.
struct Bound {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The ServiceLB controller of one node.
pub struct ServiceLb {
    node_name: String,
    /// Where the ports are bound: the node's addresses.
    listen_on: Vec<Ipv4Addr>,
    forward: Arc<dyn Forward>,
    bound: BTreeMap<(String, String, u16), Bound>,
}

impl ServiceLb {
    pub fn new(node_name: &str, listen_on: Vec<Ipv4Addr>, forward: Arc<dyn Forward>) -> ServiceLb {
        ServiceLb { node_name: node_name.to_owned(), listen_on, forward, bound: BTreeMap::new() }
    }

    /// Binds the listeners of one Service port; `None` when a port is taken.
    fn bind(&self, ns: &str, name: &str, port: u16) -> Option<Bound> {
        let mut tasks = Vec::new();
        for ip in &self.listen_on {
            let addr = SocketAddr::from((*ip, port));
            let listener = match std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|_| l))
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, service = %format!("{ns}/{name}"), "servicelb: port unavailable: {e}");
                    return None;
                }
            };
            let (forward, ns, name) = (self.forward.clone(), ns.to_owned(), name.to_owned());
            tasks.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((conn, _)) => forward.forward(ns.clone(), name.clone(), port, conn),
                        Err(e) => {
                            tracing::debug!("servicelb accept on {port}: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        Some(Bound { tasks })
    }
}

/// Whether ServiceLB serves this Service (k3s skips those with a loadBalancerClass).
pub fn manages(svc: &Value) -> bool {
    service::type_(svc) == "LoadBalancer"
        && svc.pointer("/spec/loadBalancerClass").and_then(Value::as_str).is_none_or(str::is_empty)
        && !objects::is_terminating(svc)
}

impl Reconciler for ServiceLb {
    fn name(&self) -> &'static str {
        "servicelb"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        matches!(event.resource.plural.as_str(), "services" | "nodes")
    }

    fn resync(&self) -> Option<Duration> {
        Some(Duration::from_secs(2))
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let nodes: Vec<Value> = cluster.get(&Resource::nodes(), None, &self.node_name).into_iter().collect();
        let ips = node::ingress_ips(&nodes);
        let services: Vec<Value> = cluster.list(&Resource::services()).into_iter().filter(manages).collect();
        let mut wanted = BTreeSet::new();
        for svc in &services {
            let (ns, name) = (objects::namespace(svc).to_owned(), objects::name(svc).to_owned());
            let mut all_bound = true;
            for sp in service::ports(svc).into_iter().filter(|p| p.protocol == "TCP") {
                let key = (ns.clone(), name.clone(), sp.port);
                wanted.insert(key.clone());
                if !self.bound.contains_key(&key) {
                    match self.bind(&ns, &name, sp.port) {
                        Some(b) => {
                            self.bound.insert(key, b);
                        }
                        None => all_bound = false,
                    }
                }
            }
            let ingress: Vec<Value> = if all_bound && !nodes.is_empty() {
                ips.iter().map(|ip| json!({"ip": ip})).collect()
            } else {
                Vec::new()
            };
            let want = if ingress.is_empty() { json!({}) } else { json!({"ingress": ingress}) };
            let have = svc.pointer("/status/loadBalancer").cloned().unwrap_or(json!({}));
            if have != want {
                let mut updated = svc.clone();
                updated["status"]["loadBalancer"] = want;
                cluster.set_status(&Resource::services(), &updated);
            }
        }
        self.bound.retain(|k, _| wanted.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servicelb_takes_load_balancers_without_a_class() {
        let svc = json!({"metadata": {"name": "gw", "namespace": "istio-system"}, "spec": {"type": "LoadBalancer"}});
        assert!(manages(&svc));
        let mut classed = svc.clone();
        classed["spec"]["loadBalancerClass"] = json!("service.k8s.aws/nlb");
        assert!(!manages(&classed));
        let mut cluster_ip = svc.clone();
        cluster_ip["spec"]["type"] = json!("ClusterIP");
        assert!(!manages(&cluster_ip));
    }
}
