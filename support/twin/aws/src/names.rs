//! Identifier, ARN and DNS name forms as AWS writes them, and the random parts
//! (hex suffixes, request ids, public IPs).

use crate::cidr::Cidr;
use rand::Rng;
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Random lowercase hex of `len` characters.
pub fn hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// EC2 ids: `vpc-`, `subnet-`, `sg-`, `eni-` followed by 17 hex digits.
pub fn ec2_id(prefix: &str) -> String {
    format!("{prefix}-{}", hex(17))
}

/// A request id in the UUID form the services send in `x-amzn-RequestId`.
pub fn request_id() -> String {
    format!("{}-{}-{}-{}-{}", hex(8), hex(4), hex(4), hex(4), hex(12))
}

/// `us-west-2` -> `usw2`, the prefix of availability zone ids.
pub fn zone_id_prefix(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    match parts.as_slice() {
        [geo, direction, number] => {
            format!("{geo}{}{number}", direction.chars().next().unwrap_or_default())
        }
        _ => region.replace('-', ""),
    }
}

/// The region's availability zones: (`us-west-2a`, `usw2-az1`) ... four of them.
pub fn zones(region: &str) -> Vec<(String, String)> {
    let prefix = zone_id_prefix(region);
    ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, letter)| (format!("{region}{letter}"), format!("{prefix}-az{}", i + 1)))
        .collect()
}

pub fn eks_cluster_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:eks:{region}:{account}:cluster/{name}")
}

pub fn subnet_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:subnet/{id}")
}

pub fn security_group_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:security-group/{id}")
}

pub fn nlb_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/net/{name}/{suffix}")
}

pub fn target_group_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/{suffix}")
}

/// `...:listener/net/<lb>/<lb16hex>/<16hex>`, derived from the load balancer's ARN.
pub fn listener_arn(lb_arn: &str, suffix: &str) -> String {
    format!("{}/{suffix}", lb_arn.replacen(":loadbalancer/", ":listener/", 1))
}

/// `<name>-<16 hex>.elb.<region>.amazonaws.com`, the DNSName DescribeLoadBalancers
/// gives an NLB (reference/istio-multinetwork.md; the seed README's hostnames).
pub fn nlb_dns_name(name: &str, suffix: &str, region: &str) -> String {
    format!("{name}-{suffix}.elb.{region}.amazonaws.com")
}

/// The Route 53 hosted zone of network load balancers per region (AWS General
/// Reference, "Elastic Load Balancing endpoints and quotas", column "Route 53
/// Hosted Zone ID (Network Load Balancers)"). Regions not listed get us-west-2's,
/// the seed's region: the twin does not know theirs.
pub fn nlb_hosted_zone(region: &str) -> &'static str {
    match region {
        "us-east-1" => "Z26RNL4JYFTOTI",
        "us-east-2" => "ZLMOA37VPKANP",
        "us-west-1" => "Z24FKFUX50B4VW",
        "eu-west-1" => "Z2IFOLAFXWLO4F",
        "eu-central-1" => "Z3F0SRJ5LGBH90",
        _ => "Z18D5FSROUN65G",
    }
}

/// Ranges the region's public EC2 addresses come from (us-west-2 ones: they
/// look plausible in any region).
/// (first octet, lowest second octet, highest second octet).
const PUBLIC_RANGES: &[(u8, u8, u8)] = &[(34, 208, 223), (35, 160, 167), (44, 224, 255), (52, 32, 35), (54, 68, 71)];

/// A fresh public IPv4 address, never handed out before by this twin.
pub fn public_ip(taken: &mut HashSet<Ipv4Addr>) -> Ipv4Addr {
    let mut rng = rand::rng();
    loop {
        let (a, from, to) = PUBLIC_RANGES[rng.random_range(0..PUBLIC_RANGES.len())];
        let ip = Ipv4Addr::new(a, rng.random_range(from..=to), rng.random_range(0..=255), rng.random_range(1..=254));
        if taken.insert(ip) {
            return ip;
        }
    }
}

/// Addresses of this host that stand in for NLB nodes (a loopback range such
/// as 127.77.0.0/16), so that a real data plane can bind them: each zone of
/// each NLB gets its own, held until the NLB is deleted. The search starts
/// at a random offset and moves on after each pick, so that twins sharing a
/// host rarely collide and a released address is not handed out again at
/// once (a client holding a deleted NLB's address reaches nothing).
#[derive(Debug)]
pub struct HostAddresses {
    range: Cidr,
    held: HashSet<Ipv4Addr>,
    cursor: u64,
}

impl HostAddresses {
    pub fn new(range: Cidr) -> Self {
        let cursor = rand::rng().random_range(0..range.size());
        HostAddresses { range, held: HashSet::new(), cursor }
    }

    /// A free address of the range (never its network or broadcast
    /// address when it has more than two), marked held; None when all are.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let size = self.range.size();
        for step in 0..size {
            let offset = (self.cursor + step) % size;
            if size > 2 && (offset == 0 || offset == size - 1) {
                continue;
            }
            let Some(ip) = self.range.nth(offset) else { continue };
            if self.held.insert(ip) {
                self.cursor = (offset + 1) % size;
                return Some(ip);
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.held.remove(&ip);
    }

    #[cfg(test)]
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        self.held.contains(&ip)
    }
}

/// The EC2 public DNS name of a public address.
pub fn public_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ec2-{a}-{b}-{c}-{d}.{region}.compute.amazonaws.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let id = ec2_id("vpc");
        assert!(id.starts_with("vpc-") && id.len() == 21 && id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(zone_id_prefix("us-west-2"), "usw2");
        assert_eq!(zones("us-west-2")[0], ("us-west-2a".to_string(), "usw2-az1".to_string()));
        assert_eq!(zones("us-west-2")[3].1, "usw2-az4");
        let lb = nlb_arn("us-west-2", "123456789012", "gw", "0123456789abcdef");
        assert_eq!(lb, "arn:aws:elasticloadbalancing:us-west-2:123456789012:loadbalancer/net/gw/0123456789abcdef");
        assert_eq!(
            listener_arn(&lb, "fedcba9876543210"),
            "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/net/gw/0123456789abcdef/fedcba9876543210"
        );
        assert_eq!(
            nlb_dns_name("gw", "0123456789abcdef", "us-west-2"),
            "gw-0123456789abcdef.elb.us-west-2.amazonaws.com"
        );
        assert_eq!(request_id().len(), 36);
    }

    #[test]
    fn public_ips_are_unique_and_public() {
        let mut taken = HashSet::new();
        for _ in 0..2000 {
            let ip = public_ip(&mut taken);
            assert!(!ip.is_private() && !ip.is_loopback() && ip.octets()[3] != 0);
        }
        assert_eq!(taken.len(), 2000);
    }

    #[test]
    fn host_addresses_are_distinct_until_released_and_run_out() {
        let mut pool = HostAddresses::new(Cidr::parse("127.77.0.0/29").unwrap());
        let got: Vec<Ipv4Addr> = (0..6).map(|_| pool.allocate().expect("six usable")).collect();
        let distinct: HashSet<&Ipv4Addr> = got.iter().collect();
        assert_eq!(distinct.len(), 6);
        assert!(got.iter().all(|ip| ip.octets()[..3] == [127, 77, 0] && !matches!(ip.octets()[3], 0 | 7)));
        assert_eq!(pool.allocate(), None, "network and broadcast addresses are never handed out");
        pool.release(got[2]);
        assert_eq!(pool.allocate(), Some(got[2]));
        let mut one = HostAddresses::new(Cidr::parse("127.77.1.1/32").unwrap());
        assert_eq!(one.allocate(), Some(Ipv4Addr::new(127, 77, 1, 1)));
        assert_eq!(one.allocate(), None);
    }
}
