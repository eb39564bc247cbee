//! Name resolution for NLB hostnames: the system resolver, or the one named by
//! `MESHSPEC_DNS` (host:port), which is how a target points meshspec at its DNS.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveErrorKind, TokioResolver};

#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    pub server: Option<SocketAddr>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dns({})", self.server.map(|s| s.to_string()).unwrap_or_else(|| "system".into()))
    }
}

impl Dns {
    pub fn system() -> Result<Dns> {
        let resolver = TokioResolver::builder_tokio().context("cannot read the system resolver configuration")?.build();
        Ok(Dns { resolver, server: None })
    }

    pub fn server(addr: SocketAddr) -> Dns {
        let mut config = ResolverConfig::new();
        config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
        config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // NLB answers change as targets turn healthy: never serve stale answers.
        opts.cache_size = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).with_options(opts).build();
        Dns { resolver, server: Some(addr) }
    }

    /// `MESHSPEC_DNS=host:port` if set, else the system resolver.
    pub fn from_env() -> Result<Dns> {
        match std::env::var("MESHSPEC_DNS") {
            Ok(v) if !v.trim().is_empty() => {
                let addr: SocketAddr =
                    v.trim().parse().with_context(|| format!("MESHSPEC_DNS={v:?} is not host:port"))?;
                Ok(Dns::server(addr))
            }
            _ => Dns::system(),
        }
    }

    /// The A records of `name`; an empty list when the name does not exist.
    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>> {
        match self.resolver.ipv4_lookup(name).await {
            Ok(answer) => {
                let mut ips: Vec<Ipv4Addr> = answer.iter().map(|a| a.0).collect();
                ips.sort();
                Ok(ips)
            }
            Err(e) if matches!(e.kind(), ResolveErrorKind::Proto(p) if p.is_no_records_found() || p.is_nx_domain()) => {
                Ok(Vec::new())
            }
            Err(e) => Err(anyhow::anyhow!("DNS lookup of {name} failed: {e}")),
        }
    }
}
