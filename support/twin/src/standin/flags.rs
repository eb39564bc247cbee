//! `k3s server` flags the stand-in accepts: names, short forms, defaults and
//! environment variables as k3s declares them (k3s pkg/cli/cmds/server.go and
//! agent.go, v1.28.8+k3s1). Parsing follows urfave/cli: `--name value`,
//! `--name=value`, repeatable slices; anything else is refused.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// An IPv4 network `a.b.c.d/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = text.split_once('/').ok_or_else(|| format!("invalid CIDR {text}"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("invalid CIDR {text}"))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("invalid CIDR {text}"))?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Cidr { network: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        u32::from(ip) & mask == u32::from(self.network)
    }

    /// The `n`th address of the network.
    pub fn at(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// What `k3s server` was asked to do, as far as the stand-in needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFlags {
    /// `--snapshotter` (agent.go: default "overlayfs"); accepted, no effect.
    pub snapshotter: String,
    /// `--node-external-ip` (repeatable, comma-separated values too).
    pub node_external_ip: Vec<Ipv4Addr>,
    /// `--node-ip`, `-i` (repeatable).
    pub node_ip: Vec<Ipv4Addr>,
    /// `--tls-san` (repeatable).
    pub tls_san: Vec<String>,
    /// `--cluster-cidr` (default 10.42.0.0/16).
    pub cluster_cidr: Cidr,
    /// `--service-cidr` (default 10.43.0.0/16).
    pub service_cidr: Cidr,
    /// `--cluster-dns` (default: the service network's 10th address).
    pub cluster_dns: Option<Ipv4Addr>,
    /// `--node-name` (env K3S_NODE_NAME; default the hostname).
    pub node_name: Option<String>,
    /// `--disable` (repeatable): traefik, servicelb, ...
    pub disable: Vec<String>,
    /// `--bind-address` (default 0.0.0.0).
    pub bind_address: Option<IpAddr>,
    /// `--https-listen-port` (default 6443).
    pub https_listen_port: u16,
    /// `--advertise-address` (default: node-external-ip, else node-ip).
    pub advertise_address: Option<Ipv4Addr>,
    /// `--write-kubeconfig`, `-o` (env K3S_KUBECONFIG_OUTPUT).
    pub write_kubeconfig: Option<PathBuf>,
    /// `--write-kubeconfig-mode` (env K3S_KUBECONFIG_MODE), octal.
    pub write_kubeconfig_mode: Option<u32>,
}

impl Default for ServerFlags {
    fn default() -> Self {
        ServerFlags {
            snapshotter: "overlayfs".into(),
            node_external_ip: Vec::new(),
            node_ip: Vec::new(),
            tls_san: Vec::new(),
            cluster_cidr: Cidr { network: Ipv4Addr::new(10, 42, 0, 0), prefix: 16 },
            service_cidr: Cidr { network: Ipv4Addr::new(10, 43, 0, 0), prefix: 16 },
            cluster_dns: None,
            node_name: None,
            disable: Vec::new(),
            bind_address: None,
            https_listen_port: 6443,
            advertise_address: None,
            write_kubeconfig: None,
            write_kubeconfig_mode: None,
        }
    }
}

impl ServerFlags {
    /// Whether a packaged component is disabled (`--disable servicelb`).
    pub fn disables(&self, component: &str) -> bool {
        self.disable.iter().any(|d| d == component)
    }

    /// The cluster DNS address: the flag, else the service network + 10
    /// (k3s pkg/cli/server/server.go).
    pub fn cluster_dns(&self) -> Ipv4Addr {
        self.cluster_dns.unwrap_or_else(|| self.service_cidr.at(10))
    }
}

/// An octal file mode as `--write-kubeconfig-mode` takes it ("644", "0600").
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| format!("invalid file mode {text:?}"))
}

/// Parses the arguments after `server`, then the environment variables k3s
/// reads for flags left unset (`env` is looked up by name).
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<ServerFlags, String> {
    let mut f = ServerFlags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let canonical = match name {
            "o" => "write-kubeconfig",
            "i" => "node-ip",
            other => other,
        };
        const KNOWN: [&str; 14] = [
            "snapshotter",
            "node-external-ip",
            "node-ip",
            "tls-san",
            "cluster-cidr",
            "service-cidr",
            "cluster-dns",
            "node-name",
            "disable",
            "bind-address",
            "https-listen-port",
            "advertise-address",
            "write-kubeconfig",
            "write-kubeconfig-mode",
        ];
        if !KNOWN.contains(&canonical) {
            return Err(format!("flag provided but not defined: -{name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).ok_or_else(|| format!("flag needs an argument: -{name}"))?.clone();
                i += 1;
                v
            }
        };
        let ipv4 = |v: &str| -> Result<Ipv4Addr, String> {
            v.trim().parse().map_err(|_| format!("invalid IPv4 address {v:?} for --{canonical}"))
        };
        let list =
            |v: &str| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        match canonical {
            "snapshotter" => f.snapshotter = value,
            "node-external-ip" => {
                for v in list(&value) {
                    f.node_external_ip.push(ipv4(&v)?);
                }
            }
            "node-ip" => {
                for v in list(&value) {
                    f.node_ip.push(ipv4(&v)?);
                }
            }
            "tls-san" => f.tls_san.extend(list(&value)),
            "cluster-cidr" => f.cluster_cidr = Cidr::parse(&value).map_err(|e| format!("invalid cluster-cidr: {e}"))?,
            "service-cidr" => f.service_cidr = Cidr::parse(&value).map_err(|e| format!("invalid service-cidr: {e}"))?,
            "cluster-dns" => f.cluster_dns = Some(ipv4(&value)?),
            "node-name" => f.node_name = Some(value),
            "disable" => f.disable.extend(list(&value)),
            "bind-address" => {
                f.bind_address =
                    Some(value.parse().map_err(|_| format!("invalid IP address {value:?} for --bind-address"))?)
            }
            "https-listen-port" => {
                f.https_listen_port =
                    value.parse().map_err(|_| format!("invalid port {value:?} for --https-listen-port"))?
            }
            "advertise-address" => f.advertise_address = Some(ipv4(&value)?),
            "write-kubeconfig" => f.write_kubeconfig = Some(PathBuf::from(value)),
            "write-kubeconfig-mode" => f.write_kubeconfig_mode = Some(parse_mode(&value)?),
            _ => unreachable!("checked against KNOWN"),
        }
    }
    if f.write_kubeconfig.is_none() {
        f.write_kubeconfig = env("K3S_KUBECONFIG_OUTPUT").filter(|v| !v.is_empty()).map(PathBuf::from);
    }
    if f.write_kubeconfig_mode.is_none() {
        if let Some(v) = env("K3S_KUBECONFIG_MODE").filter(|v| !v.is_empty()) {
            f.write_kubeconfig_mode = Some(parse_mode(&v)?);
        }
    }
    if f.node_name.is_none() {
        f.node_name = env("K3S_NODE_NAME").filter(|v| !v.is_empty());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_are_k3s_defaults() {
        let f = parse(&[], |_| None).expect("no flags");
        assert_eq!(f.cluster_cidr.to_string(), "10.42.0.0/16");
        assert_eq!(f.service_cidr.to_string(), "10.43.0.0/16");
        assert_eq!(f.cluster_dns(), Ipv4Addr::new(10, 43, 0, 10));
        assert_eq!(f.https_listen_port, 6443);
        assert_eq!(f.snapshotter, "overlayfs");
    }

    #[test]
    fn flags_in_both_forms_repeat_and_env_fills_the_rest() {
        let f = parse(
            &args("--snapshotter=native --tls-san a.example --tls-san=1.2.3.4,b --disable traefik --disable=servicelb -o /tmp/k.yaml --node-ip 127.0.0.2 --cluster-cidr=10.44.0.0/16 --https-listen-port 7443 --bind-address 127.0.0.2"),
            |k| (k == "K3S_KUBECONFIG_MODE").then(|| "644".to_owned()),
        )
        .expect("valid");
        assert_eq!(f.snapshotter, "native");
        assert_eq!(f.tls_san, ["a.example", "1.2.3.4", "b"]);
        assert!(f.disables("traefik") && f.disables("servicelb") && !f.disables("metrics-server"));
        assert_eq!(f.write_kubeconfig, Some(PathBuf::from("/tmp/k.yaml")));
        assert_eq!(f.write_kubeconfig_mode, Some(0o644));
        assert_eq!(f.node_ip, [Ipv4Addr::new(127, 0, 0, 2)]);
        assert_eq!(f.cluster_cidr.at(0), Ipv4Addr::new(10, 44, 0, 0));
        assert_eq!(f.https_listen_port, 7443);
        assert_eq!(f.bind_address, Some("127.0.0.2".parse().unwrap()));
        // The flag wins over the environment.
        let f = parse(&args("--write-kubeconfig-mode 600"), |_| Some("644".into())).expect("valid");
        assert_eq!(f.write_kubeconfig_mode, Some(0o600));
    }

    #[test]
    fn unknown_flags_and_bad_values_are_refused_in_one_line() {
        for (a, want) in [
            ("--no-such-flag 1", "flag provided but not defined: -no-such-flag"),
            ("--cluster-cidr 10.42.0.0", "invalid cluster-cidr"),
            ("--node-ip nope", "invalid IPv4 address"),
            ("--https-listen-port", "flag needs an argument"),
            ("--write-kubeconfig-mode 9", "invalid file mode"),
            ("stray", "unexpected argument"),
        ] {
            let e = parse(&args(a), |_| None).expect_err(a);
            assert!(e.contains(want) && !e.contains('\n'), "{a}: {e}");
        }
        assert!(parse(&[], |_| Some("x".into())).is_err(), "a bad K3S_KUBECONFIG_MODE is refused");
    }
}
