//! AWS names the load balancer controller gives its resources. Like the real
//! controller they are `k8s-<namespace 8>-<name 8>-<10 hex of a SHA-256>` with
//! non-alphanumerics stripped; the hash covers the cluster, the Service's
//! namespace and name and what makes the resource distinct, so the same
//! Service in the same cluster always gets the same names.
//!
//! Source: kubernetes-sigs/aws-load-balancer-controller (225f4456, v3.5.0-8),
//! pkg/service/model_build_load_balancer.go `buildLoadBalancerName` (the hash of
//! the cluster name, the Service UID and the scheme) and
//! pkg/service/model_build_target_group.go `buildTargetGroupName` (it also hashes
//! the ports, target type, protocol, health-check protocol and interval, but
//! not the health-check port). The twin hashes namespace and name for the UID:
//! the same Service recreated keeps its names here, not on AWS.

use sha2::{Digest, Sha256};

fn alnum(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn hash10(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        // A separator keeps ("ab","c") and ("a","bc") apart.
        h.update([0u8]);
    }
    hex::encode(h.finalize())[..10].to_owned()
}

fn k8s_name(namespace: &str, service: &str, hash: &str) -> String {
    let ns: String = alnum(namespace).chars().take(8).collect();
    let svc: String = alnum(service).chars().take(8).collect();
    format!("k8s-{ns}-{svc}-{hash}")
}

/// The NLB of a Service, e.g. `k8s-istioing-istioeas-1a2b3c4d5e`.
pub fn load_balancer(cluster: &str, namespace: &str, service: &str, scheme: &str) -> String {
    k8s_name(namespace, service, &hash10(&[cluster, namespace, service, scheme]))
}

/// The target group of one Service port.
pub fn target_group(
    cluster: &str,
    namespace: &str,
    service: &str,
    port: u16,
    target_port: u16,
    protocol: &str,
) -> String {
    let (p, t) = (port.to_string(), target_port.to_string());
    k8s_name(namespace, service, &hash10(&[cluster, namespace, service, &p, &t, "ip", protocol]))
}

/// The managed frontend security group of a Service's NLB.
pub fn frontend_security_group(cluster: &str, namespace: &str, service: &str) -> String {
    k8s_name(namespace, service, &hash10(&[cluster, namespace, service, "frontend"]))
}

/// The backend security group shared by all NLBs of a cluster.
pub fn backend_security_group(cluster: &str) -> String {
    let c: String = alnum(cluster).chars().take(232).collect();
    format!("k8s-traffic-{c}-{}", hash10(&[cluster]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_the_real_controllers_and_are_stable() {
        let a = load_balancer("eks-1", "istio-ingress", "istio-eastwestgateway", "internet-facing");
        assert!(a.starts_with("k8s-istioing-istioeas-"), "{a}");
        assert_eq!(a.len(), "k8s-istioing-istioeas-".len() + 10);
        assert!(a.len() <= 32, "ELBv2 names are at most 32 characters: {a}");
        assert_eq!(a, load_balancer("eks-1", "istio-ingress", "istio-eastwestgateway", "internet-facing"));
        assert_ne!(a, load_balancer("eks-2", "istio-ingress", "istio-eastwestgateway", "internet-facing"));
        assert_ne!(a, load_balancer("eks-1", "istio-ingress", "istio-eastwestgateway", "internal"));
        let t1 = target_group("eks-1", "istio-ingress", "istio-eastwestgateway", 15443, 15443, "TCP");
        let t2 = target_group("eks-1", "istio-ingress", "istio-eastwestgateway", 15021, 15021, "TCP");
        assert_ne!(t1, t2);
        assert!(t1.len() <= 32);
        assert!(backend_security_group("eks-1").starts_with("k8s-traffic-eks1-"));
    }
}
