//! docker, asked only where kind's nodes are: the address of a node on the
//! `kind` network (for the other cluster's remote secret) and that network's
//! IPv4 subnet (for MetalLB's address pools).

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};

use crate::topology::parse_cidr;

pub const KIND_NETWORK: &str = "kind";

pub fn node_address_args(container: &str) -> Vec<String> {
    vec![
        "inspect".into(),
        "--format".into(),
        format!("{{{{ (index .NetworkSettings.Networks \"{KIND_NETWORK}\").IPAddress }}}}"),
        container.into(),
    ]
}

pub fn network_args() -> Vec<String> {
    vec!["network".into(), "inspect".into(), KIND_NETWORK.into(), "--format".into(), "{{json .IPAM.Config}}".into()]
}

pub fn parse_address(stdout: &[String]) -> Result<Ipv4Addr> {
    let line = stdout.iter().map(|l| l.trim()).find(|l| !l.is_empty()).context("docker printed no address")?;
    line.parse().with_context(|| format!("docker printed {line:?}, not an IPv4 address"))
}

/// The IPv4 subnet among the network's IPAM configs (kind also adds an IPv6 one).
pub fn parse_ipv4_subnet(stdout: &[String]) -> Result<String> {
    let text = stdout.join("\n");
    let configs: Vec<serde_json::Value> =
        serde_json::from_str(text.trim()).with_context(|| format!("docker printed {text:?}, not the IPAM config"))?;
    configs
        .iter()
        .filter_map(|c| c["Subnet"].as_str())
        .find(|s| parse_cidr(s).is_ok())
        .map(str::to_string)
        .context("the kind network has no IPv4 subnet")
}

/// The `index`-th cluster's MetalLB pool: 20 addresses near the top of the
/// subnet, clear of the nodes (which Docker numbers from the bottom).
pub fn metallb_pool(subnet: &str, index: usize) -> Result<String> {
    let (base, prefix) = parse_cidr(subnet)?;
    if prefix > 24 {
        bail!("the kind network {subnet} is too small for MetalLB pools (a /24 or larger is needed)");
    }
    let broadcast = u32::from(base) | (u32::MAX >> prefix);
    let start = broadcast - 55 + 20 * index as u32;
    Ok(format!("{}-{}", Ipv4Addr::from(start), Ipv4Addr::from(start + 19)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_do_not_overlap_and_stay_in_the_subnet() {
        assert_eq!(metallb_pool("172.18.0.0/16", 0).unwrap(), "172.18.255.200-172.18.255.219");
        assert_eq!(metallb_pool("172.18.0.0/16", 1).unwrap(), "172.18.255.220-172.18.255.239");
        assert_eq!(metallb_pool("192.168.5.0/24", 1).unwrap(), "192.168.5.220-192.168.5.239");
        assert!(metallb_pool("10.0.0.0/28", 0).is_err());
    }

    #[test]
    fn docker_output_is_read() {
        let cfg =
            [r#"[{"Subnet":"fc00:f853:ccd:e793::/64"},{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]"#.into()];
        assert_eq!(parse_ipv4_subnet(&cfg).unwrap(), "172.18.0.0/16");
        assert_eq!(parse_address(&["172.18.0.3".into()]).unwrap(), Ipv4Addr::new(172, 18, 0, 3));
        assert!(parse_address(&["".into()]).is_err());
        assert_eq!(
            node_address_args("c1-control-plane")[2],
            r#"{{ (index .NetworkSettings.Networks "kind").IPAddress }}"#
        );
    }
}
