//! Helpers shared by the integration tests: bounded child processes, free
//! ports, an in-process twin with a session on it.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use meshspec::aws::AwsSettings;
use meshspec::target::{Session, TargetKind, TargetOptions};
use meshspec::topology::Topology;
use meshspec::twin::twin::{Twin, TwinConfig};

/// Held by tests that run whole features through the binary: on two cores,
/// two such runs at once (their fresh twins, their fault deadlines) starve
/// each other, so they take turns.
pub fn whole_runs() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn init() {
    meshspec::install_crypto_provider();
}

/// Run a command to completion, killing it if it outlives `limit`. Its output
/// is read while it runs, so that a chatty command never blocks on a full pipe.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// The KEY=VALUE lines of an env file written by `twin up`.
pub fn parse_env(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
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
