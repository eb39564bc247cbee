//! Helpers shared by the integration tests: bounded child processes, free
//! ports, an in-process twin with a session on it.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use meshspec::aws::AwsSettings;
use meshspec::target::{Session, TargetKind, TargetOptions};
use meshspec::topology::Topology;
use meshspec::twin::twin::{Twin, TwinConfig};

pub fn init() {
    meshspec::install_crypto_provider();
}

/// Run a command to completion, killing it if it outlives `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A twin started in-process, and a session on it that sees it only through
/// its endpoints and credentials (as an EKS target would be seen).
pub struct TwinTarget {
    pub twin: Twin,
    pub settings: AwsSettings,
}

impl TwinTarget {
    pub async fn start(time_scale: f64) -> TwinTarget {
        let twin = Twin::start(TwinConfig { time_scale, ..TwinConfig::default() }).await.expect("twin starts");
        let (id, secret) = twin.credentials();
        let settings = AwsSettings {
            region: Some(twin.region().to_string()),
            endpoint: Some(twin.aws_endpoint().to_string()),
            credentials: Some((id, secret)),
            api_timeout: Some(Duration::from_secs(10)),
        };
        TwinTarget { twin, settings }
    }

    /// A session that may provision, reaching AWS and the clusters only through the endpoints.
    pub async fn session(&self, timeout_scale: f64) -> std::sync::Arc<Session> {
        let mut opts = TargetOptions::new(TargetKind::Eks, Topology::seed());
        opts.aws = self.settings.clone();
        opts.allow_provision = true;
        opts.timeout_scale = timeout_scale;
        opts.contexts = BTreeMap::new();
        let mut s = Session::open(opts).await.expect("session opens");
        // The twin's DNS, as MESHSPEC_DNS would name it.
        std::sync::Arc::get_mut(&mut s).expect("fresh session").dns = meshspec::dns::Dns::server(self.twin.dns_addr());
        s
    }
}
