//! The topology of the deployment under test: every name meshspec uses comes
//! from one configuration (fixtures/topology.yaml by default), never from
//! literals scattered in steps.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Namespaces and objects of the seed system.
pub mod names {
    pub const ISTIO_SYSTEM: &str = "istio-system";
    pub const ISTIO_INGRESS: &str = "istio-ingress";
    pub const SAMPLE: &str = "sample";
    pub const KUBE_SYSTEM: &str = "kube-system";
    pub const CACERTS: &str = "cacerts";
    pub const EASTWEST_GATEWAY: &str = "istio-eastwestgateway";
    pub const INGRESS_GATEWAY: &str = "istio-ingressgateway";
    pub const CROSS_NETWORK_GATEWAY: &str = "cross-network-gateway";
    pub const LB_CONTROLLER: &str = "aws-load-balancer-controller";
    pub const READER_TOKEN_SECRET: &str = "istio-reader-service-account-istio-remote-secret-token";
    /// The istio-discovery chart's reader role for revision "" in istio-system.
    pub const READER_CLUSTER_ROLE: &str = "istio-reader-clusterrole-istio-system";
    pub const NETWORK_LABEL: &str = "topology.istio.io/network";
    pub const INJECTION_LABEL: &str = "istio-injection";
    /// The port of the east-west gateway that carries cross-network traffic.
    pub const CROSS_NETWORK_PORT: u16 = 15443;
    pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY: &str = "meshspec";
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub region: String,
    pub mesh_id: String,
    pub kubernetes_version: String,
    pub istio_version: String,
    pub clusters: Vec<ClusterTopology>,
}

/// One EKS cluster of the mesh and the Istio names it carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterTopology {
    /// EKS cluster name (eks-1).
    pub name: String,
    /// Istio cluster ID (cluster1).
    pub istio_cluster: String,
    /// Istio network (network1).
    pub network: String,
    pub vpc_name: String,
    pub vpc_cidr: String,
    /// helloworld version deployed in this cluster (v1).
    pub sample_version: String,
    /// The kind cluster that stands for it on the kind target (defaults: see `kind()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KindCluster>,
}

/// A kind cluster: its name (context `kind-<name>`) and its own pod and
/// service subnets (two clusters must not share them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KindCluster {
    pub name: String,
    pub pod_subnet: String,
    pub service_subnet: String,
}

/// A subnet the seed's VPC module creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetPlan {
    pub cidr: String,
    pub public: bool,
    /// Index of the availability zone (0 = first of the region).
    pub az_index: usize,
}

impl SubnetPlan {
    /// The tag the AWS load balancer controller uses to pick subnets.
    pub fn role_tag(&self) -> (&'static str, &'static str) {
        if self.public {
            ("kubernetes.io/role/elb", "1")
        } else {
            ("kubernetes.io/role/internal-elb", "1")
        }
    }
}

impl Topology {
    pub const DEFAULT_FILE: &'static str = "fixtures/topology.yaml";

    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the topology file {}", path.display()))?;
        let topology: Topology = crate::input::from_yaml(&text, path)?;
        topology.validate()?;
        Ok(topology)
    }

    /// The seed topology, as fixtures/topology.yaml ships it.
    pub fn seed() -> Topology {
        let text = include_str!("../fixtures/topology.yaml");
        serde_yaml::from_str(text).expect("fixtures/topology.yaml is valid")
    }

    pub fn validate(&self) -> Result<()> {
        if self.clusters.len() != 2 {
            bail!(
                "the topology must name exactly two clusters (multi-primary, multi-network), found {}",
                self.clusters.len()
            );
        }
        for c in &self.clusters {
            parse_cidr(&c.vpc_cidr).with_context(|| format!("cluster {}: bad vpc_cidr {:?}", c.name, c.vpc_cidr))?;
        }
        // meshspec verifies the minors whose facts it has (fixtures/istio/releases.yaml).
        meshspec_twin::istio::release(&self.istio_version).map_err(anyhow::Error::msg)?;
        let (a, b) = (&self.clusters[0], &self.clusters[1]);
        if a.name == b.name || a.istio_cluster == b.istio_cluster || a.network == b.network {
            bail!("the two clusters must differ in EKS name, Istio cluster and network");
        }
        let (ka, kb) = (self.kind_cluster(a), self.kind_cluster(b));
        for k in [&ka, &kb] {
            for cidr in [&k.pod_subnet, &k.service_subnet] {
                parse_cidr(cidr).with_context(|| format!("kind cluster {}: bad subnet {cidr:?}", k.name))?;
            }
            if cidrs_overlap(&k.pod_subnet, &k.service_subnet) {
                bail!("kind cluster {}: its pod and service subnets overlap", k.name);
            }
        }
        if ka.name == kb.name {
            bail!("the two kind clusters must have different names, both are {:?}", ka.name);
        }
        for (x, y) in [(&ka.pod_subnet, &kb.pod_subnet), (&ka.service_subnet, &kb.service_subnet)] {
            if cidrs_overlap(x, y) {
                bail!("the kind clusters {} and {} have overlapping subnets {x} and {y}", ka.name, kb.name);
            }
        }
        Ok(())
    }

    pub fn cluster(&self, name: &str) -> Result<&ClusterTopology> {
        self.clusters.iter().find(|c| c.name == name || c.istio_cluster == name).with_context(|| {
            format!(
                "no cluster {name:?} in the topology (clusters: {})",
                self.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// The other cluster of the pair: the one whose remote secret this one holds.
    pub fn peer_of<'a>(&'a self, cluster: &ClusterTopology) -> &'a ClusterTopology {
        self.clusters.iter().find(|c| c.name != cluster.name).unwrap_or(&self.clusters[0])
    }

    /// The kind cluster of a cluster: as configured, else named after its
    /// Istio cluster, with the VPC's CIDR for pods and 10.10N.0.0/16 for services.
    pub fn kind_cluster(&self, c: &ClusterTopology) -> KindCluster {
        if let Some(k) = &c.kind {
            return k.clone();
        }
        let n = self.clusters.iter().position(|x| x.name == c.name).unwrap_or(0) + 1;
        KindCluster {
            name: c.istio_cluster.clone(),
            pod_subnet: c.vpc_cidr.clone(),
            service_subnet: format!("10.{}.0.0/16", 100 + n),
        }
    }

    /// The first three availability zones of the region, as the seed uses them.
    pub fn availability_zones(&self) -> Vec<String> {
        ["a", "b", "c"].iter().map(|s| format!("{}{s}", self.region)).collect()
    }
}

impl ClusterTopology {
    /// The seed's subnets: three private /20 (cidrsubnet(cidr, 4, i)) and three
    /// public /24 (cidrsubnet(cidr, 8, i + 48)).
    pub fn subnet_plan(&self) -> Result<Vec<SubnetPlan>> {
        let (base, prefix) = parse_cidr(&self.vpc_cidr)?;
        let mut plan = Vec::new();
        for i in 0..3 {
            plan.push(SubnetPlan { cidr: cidr_subnet(base, prefix, 4, i)?, public: false, az_index: i as usize });
        }
        for i in 0..3 {
            plan.push(SubnetPlan { cidr: cidr_subnet(base, prefix, 8, i + 48)?, public: true, az_index: i as usize });
        }
        Ok(plan)
    }
}

pub fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8)> {
    let (addr, len) = cidr.split_once('/').context("a CIDR has the form a.b.c.d/n")?;
    let addr: Ipv4Addr = addr.parse().context("bad address in CIDR")?;
    let len: u8 = len.parse().context("bad prefix length in CIDR")?;
    if len > 32 {
        bail!("prefix length {len} > 32");
    }
    Ok((addr, len))
}

/// Terraform's cidrsubnet(prefix, newbits, netnum).
pub fn cidr_subnet(base: Ipv4Addr, prefix: u8, newbits: u8, netnum: u32) -> Result<String> {
    let len = prefix + newbits;
    if len > 32 || (newbits < 32 && netnum >= (1u32 << newbits)) {
        bail!("cidrsubnet: {netnum} does not fit in {newbits} bits");
    }
    let base = u32::from(base) & mask(prefix);
    let net = base | (netnum << (32 - len));
    Ok(format!("{}/{}", Ipv4Addr::from(net), len))
}

/// Whether an address lies in a CIDR.
pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    match parse_cidr(cidr) {
        Ok((base, len)) => u32::from(ip) & mask(len) == u32::from(base) & mask(len),
        Err(_) => false,
    }
}

/// Whether two CIDRs share an address.
pub fn cidrs_overlap(a: &str, b: &str) -> bool {
    match (parse_cidr(a), parse_cidr(b)) {
        (Ok((x, lx)), Ok((y, ly))) => {
            let m = mask(lx.min(ly));
            u32::from(x) & m == u32::from(y) & m
        }
        _ => false,
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_subnets_follow_the_terraform_vpc_module() {
        let t = Topology::seed();
        let plan = t.clusters[0].subnet_plan().unwrap();
        let cidrs: Vec<_> = plan.iter().map(|s| s.cidr.as_str()).collect();
        assert_eq!(
            cidrs,
            ["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/20", "10.1.48.0/24", "10.1.49.0/24", "10.1.50.0/24"]
        );
        assert!(plan[3].public && !plan[0].public);
    }

    #[test]
    fn seed_topology_is_valid_and_names_its_pair() {
        let t = Topology::seed();
        t.validate().unwrap();
        let c1 = t.cluster("eks-1").unwrap();
        assert_eq!(c1.istio_cluster, "cluster1");
        assert_eq!(t.peer_of(c1).name, "eks-2");
        assert!(t.cluster("eks-3").is_err());
    }

    #[test]
    fn kind_clusters_are_distinct_by_default_and_checked_when_configured() {
        let mut t = Topology::seed();
        let (a, b) = (t.kind_cluster(&t.clusters[0]), t.kind_cluster(&t.clusters[1]));
        assert_eq!(a.name, "cluster1");
        assert_ne!(a.pod_subnet, b.pod_subnet);
        assert_ne!(a.service_subnet, b.service_subnet);
        t.clusters[1].kind = Some(KindCluster { name: "x".into(), ..a.clone() });
        assert!(t.validate().unwrap_err().to_string().contains("overlapping"));
        t.clusters[1].kind = Some(KindCluster { name: "cluster1".into(), ..b });
        assert!(t.validate().unwrap_err().to_string().contains("different names"));
        assert!(cidrs_overlap("10.0.0.0/8", "10.1.0.0/16") && !cidrs_overlap("10.1.0.0/16", "10.2.0.0/16"));
    }

    #[test]
    fn cidr_containment() {
        assert!(cidr_contains("10.1.0.0/16", "10.1.200.3".parse().unwrap()));
        assert!(!cidr_contains("10.1.0.0/16", "10.2.0.3".parse().unwrap()));
    }
}
