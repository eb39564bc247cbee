//! The cluster's pod network, as the Amazon VPC CNI makes it: one node per
//! private subnet (one per AZ), and every pod gets a unique secondary IP from
//! its node's subnet. Nodes are named like EKS names them after their primary
//! IP (`ip-10-1-3-7.us-west-2.compute.internal`).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

/// A subnet the cluster's nodes run in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSubnet {
    pub id: String,
    pub az: String,
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl NodeSubnet {
    /// `None` when `cidr` is not an IPv4 `a.b.c.d/n` with 16 <= n <= 28.
    pub fn parse(id: &str, az: &str, cidr: &str) -> Option<NodeSubnet> {
        let (addr, prefix) = cidr.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if !(16..=28).contains(&prefix) {
            return None;
        }
        let mask = u32::MAX << (32 - prefix);
        Some(NodeSubnet {
            id: id.to_owned(),
            az: az.to_owned(),
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// Host offsets AWS lets instances use: the first four and the last
    /// address of a subnet are reserved.
    fn usable(&self) -> std::ops::Range<u32> {
        4..self.size() - 1
    }

    fn at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + offset)
    }
}

/// One (virtual) worker node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub subnet: NodeSubnet,
}

/// Where a pod runs and the IP it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub node_name: String,
    pub host_ip: Ipv4Addr,
    pub pod_ip: Ipv4Addr,
    pub az: String,
}

/// Nodes and the pod IPs in use.
#[derive(Debug)]
pub struct PodNetwork {
    nodes: Vec<Node>,
    used: HashSet<Ipv4Addr>,
    /// Pods per node, to spread new pods over the AZs.
    load: BTreeMap<String, usize>,
    by_pod: BTreeMap<String, (String, Ipv4Addr)>,
}

impl PodNetwork {
    /// One node per subnet, in subnet order.
    pub fn new(region: &str, subnets: Vec<NodeSubnet>) -> PodNetwork {
        let mut used = HashSet::new();
        let nodes: Vec<Node> = subnets
            .into_iter()
            .map(|subnet| {
                // A node IP somewhere in the first quarter, stable per subnet.
                let span = (subnet.usable().end - subnet.usable().start) / 4;
                let offset = subnet.usable().start + 3 + stable_hash(&subnet.id) % span.max(1);
                let ip = subnet.at(offset);
                used.insert(ip);
                let o = ip.octets();
                let name = format!("ip-{}-{}-{}-{}.{region}.compute.internal", o[0], o[1], o[2], o[3]);
                Node { name, ip, subnet }
            })
            .collect();
        let load = nodes.iter().map(|n| (n.name.clone(), 0)).collect();
        PodNetwork { nodes, used, load, by_pod: BTreeMap::new() }
    }

    /// A network of given nodes, each placing its pods in its own subnet (a
    /// K3s node's pod CIDR), whatever its own address.
    pub fn with_nodes(nodes: Vec<Node>) -> PodNetwork {
        let used = nodes.iter().map(|n| n.ip).collect();
        let load = nodes.iter().map(|n| (n.name.clone(), 0)).collect();
        PodNetwork { nodes, used, load, by_pod: BTreeMap::new() }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Places a pod (key `namespace/name`) on the least loaded node and gives
    /// it a free IP of that node's subnet; the same pod keeps its placement.
    /// `None` when there is no node or the subnet is full.
    pub fn place(&mut self, pod_key: &str) -> Option<Placement> {
        if let Some((node_name, ip)) = self.by_pod.get(pod_key) {
            let node = self.nodes.iter().find(|n| &n.name == node_name)?;
            return Some(placement(node, *ip));
        }
        let node = self.nodes.iter().min_by_key(|n| self.load.get(&n.name).copied().unwrap_or(0))?.clone();
        let range = node.subnet.usable();
        let span = range.end - range.start;
        // Start at a random offset so IPs look like a real VPC's, then probe.
        let start = rand::random::<u32>() % span;
        let ip =
            (0..span).map(|i| node.subnet.at(range.start + (start + i) % span)).find(|ip| !self.used.contains(ip))?;
        self.used.insert(ip);
        *self.load.entry(node.name.clone()).or_default() += 1;
        self.by_pod.insert(pod_key.to_owned(), (node.name.clone(), ip));
        Some(placement(&node, ip))
    }

    /// Frees the IP of a deleted pod.
    pub fn release(&mut self, pod_key: &str) {
        if let Some((node, ip)) = self.by_pod.remove(pod_key) {
            self.used.remove(&ip);
            if let Some(l) = self.load.get_mut(&node) {
                *l = l.saturating_sub(1);
            }
        }
    }

    /// Frees the IPs of every pod `keep` refuses (pods that are gone).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.by_pod.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            self.release(&key);
        }
    }

    /// Records a placement made before (a pod that already has an IP), so the
    /// IP is not handed out twice.
    pub fn adopt(&mut self, pod_key: &str, node_name: &str, ip: Ipv4Addr) {
        if self.by_pod.contains_key(pod_key) {
            return;
        }
        self.used.insert(ip);
        *self.load.entry(node_name.to_owned()).or_default() += 1;
        self.by_pod.insert(pod_key.to_owned(), (node_name.to_owned(), ip));
    }
}

fn placement(node: &Node, ip: Ipv4Addr) -> Placement {
    Placement { node_name: node.name.clone(), host_ip: node.ip, pod_ip: ip, az: node.subnet.az.clone() }
}

fn stable_hash(s: &str) -> u32 {
    // FNV-1a: stable across runs, unlike std's RandomState.
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> PodNetwork {
        let subnets = vec![
            NodeSubnet::parse("subnet-a", "us-west-2a", "10.1.0.0/20").unwrap(),
            NodeSubnet::parse("subnet-b", "us-west-2b", "10.1.16.0/20").unwrap(),
            NodeSubnet::parse("subnet-c", "us-west-2c", "10.1.32.0/20").unwrap(),
        ];
        PodNetwork::new("us-west-2", subnets)
    }

    #[test]
    fn nodes_are_named_after_their_ip_inside_their_subnet() {
        let n = net();
        assert_eq!(n.nodes().len(), 3);
        for node in n.nodes() {
            let o = node.ip.octets();
            assert_eq!(node.name, format!("ip-{}-{}-{}-{}.us-west-2.compute.internal", o[0], o[1], o[2], o[3]));
            let s = &node.subnet;
            assert_eq!(u32::from(node.ip) & (u32::MAX << (32 - s.prefix)), u32::from(s.network));
        }
    }

    #[test]
    fn pods_spread_over_azs_with_unique_ips_and_ips_come_back_on_release() {
        let mut n = net();
        let placed: Vec<Placement> = (0..6).map(|i| n.place(&format!("ns/p{i}")).unwrap()).collect();
        let azs: HashSet<&str> = placed[..3].iter().map(|p| p.az.as_str()).collect();
        assert_eq!(azs.len(), 3, "first three pods in three AZs: {placed:?}");
        let ips: HashSet<Ipv4Addr> = placed.iter().map(|p| p.pod_ip).collect();
        assert_eq!(ips.len(), 6);
        assert!(placed.iter().all(|p| p.pod_ip != p.host_ip));
        assert_eq!(n.place("ns/p0").unwrap(), placed[0], "a pod keeps its placement");
        n.release("ns/p0");
        assert!(!n.used.contains(&placed[0].pod_ip));
        n.retain(|key| key != "ns/p1");
        assert!(!n.used.contains(&placed[1].pod_ip));
        assert!(n.used.contains(&placed[2].pod_ip));
    }

    #[test]
    fn a_full_subnet_places_nothing_and_bad_cidrs_are_refused() {
        let mut n = PodNetwork::new("us-west-2", vec![NodeSubnet::parse("s", "us-west-2a", "10.9.0.0/28").unwrap()]);
        // 16 addresses - 5 reserved - 1 node = 10 pods.
        for i in 0..10 {
            assert!(n.place(&format!("ns/p{i}")).is_some(), "pod {i}");
        }
        assert!(n.place("ns/p10").is_none());
        assert!(NodeSubnet::parse("s", "a", "10.0.0.0").is_none());
        assert!(NodeSubnet::parse("s", "a", "10.0.0.0/8").is_none());
        assert!(NodeSubnet::parse("s", "a", "nope/20").is_none());
        assert!(PodNetwork::new("us-west-2", vec![]).place("ns/p").is_none());
    }
}
