//! Helpers shared by the integration tests: bounded child processes, free
//! ports, an in-process twin with a session on it.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use meshspec::aws::AwsSettings;
use meshspec::run::Session;
use meshspec::target::{TargetKind, TargetOptions};
use meshspec::topology::Topology;
use meshspec::twin::twin::{Twin, TwinConfig};

/// Held by tests that run whole features through the binary: on two cores,
/// two such runs at once (their fresh twins, their fault deadlines) starve
/// each other, so they take turns.
pub fn whole_runs() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The built meshspec binary, run from the project's directory with no
/// kubeconfig, no trend file and its ledgers in `ledgers`.
pub fn meshspec_with_ledgers(ledgers: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG")
        .env_remove("MESHSPEC_TREND")
        .env("MESHSPEC_LEDGER_DIR", ledgers);
    cmd
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

/// Spawns `cmd` (stdin closed, stderr dropped); its stdout lines come through the channel as they are printed.
pub fn spawn_lines(cmd: &mut Command) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a child to end, killing it (and failing) after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal by name (INT, TERM, KILL) to a child.
pub fn signal(child: &std::process::Child, name: &str) {
    assert!(Command::new("kill").args(["-s", name, &child.id().to_string()]).status().expect("kill").success());
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
        std::sync::Arc::get_mut(&mut s).expect("fresh session").target.dns =
            meshspec::dns::Dns::server(self.twin.dns_addr());
        s
    }
}

/// The deadline of one CLI call (kubectl, the aws CLI) in the tests.
pub const CLI_LIMIT: Duration = Duration::from_secs(60);

/// `meshspec twin up` as a separate process, and the env file it wrote. A
/// twin still running when this is dropped (a failed test) is killed.
pub struct TwinUp {
    child: Option<std::process::Child>,
    pub dir: tempfile::TempDir,
    pub env_file: std::path::PathBuf,
    pub env: BTreeMap<String, String>,
}

impl TwinUp {
    /// The seed deployment, provisioned and ready.
    pub fn start() -> TwinUp {
        Self::spawn(&[])
    }

    /// The twin's AWS endpoint and DNS only, nothing provisioned.
    pub fn bare() -> TwinUp {
        Self::spawn(&["--bare"])
    }

    /// The seed deployment, with more arguments to `twin up` (e.g. `--topology FILE`).
    pub fn with_args(extra: &[&str]) -> TwinUp {
        Self::spawn(extra)
    }

    fn spawn(extra: &[&str]) -> TwinUp {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("twin.env");
        let child = Command::new(env!("CARGO_BIN_EXE_meshspec"))
            .args(["twin", "up"])
            .args(extra)
            .arg("--env-file")
            .arg(&env_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("meshspec twin up starts");
        let mut up = TwinUp { child: Some(child), dir, env_file, env: BTreeMap::new() };
        let start = Instant::now();
        // The file is written in one go; read until its last key is there.
        while !up.env.contains_key("MESHSPEC_DNS") {
            if let Some(status) = up.child.as_mut().expect("child").try_wait().unwrap() {
                panic!("twin up exited early with {status}");
            }
            assert!(start.elapsed() < Duration::from_secs(120), "twin up did not write its env file in 120 s");
            std::thread::sleep(Duration::from_millis(50));
            up.env = parse_env(&std::fs::read_to_string(&up.env_file).unwrap_or_default());
        }
        up
    }

    /// A command with exactly the env file's variables (as after `set -a; . twin.env`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .envs(&self.env);
        cmd
    }

    /// meshspec itself, with the env file's variables.
    pub fn meshspec(&self) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_meshspec"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut cmd = self.command("kubectl");
        cmd.arg("--cache-dir").arg(self.dir.path().join("kube-cache")).args(args);
        let out = run_bounded(&mut cmd, CLI_LIMIT);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    pub fn aws(&self, args: &[&str]) -> serde_json::Value {
        let out = run_bounded(self.command("aws").args(args), CLI_LIMIT);
        assert!(out.status.success(), "aws {args:?} failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("aws {args:?}: not JSON ({e}): {}", text(&out.stdout)))
    }

    /// Stop it with `signal` and check that it exits cleanly and removes its files.
    pub fn stop(mut self, signal: &str) {
        let mut child = self.child.take().expect("child");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-s", signal, &pid]).status().unwrap().success());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("twin up did not stop within 30 s of {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "twin up exited with {status} after {signal}");
        assert!(!self.env_file.exists(), "the env file is removed on {signal}");
        assert!(
            !std::path::Path::new(&format!("{}.kubeconfig", self.env_file.display())).exists(),
            "the kubeconfig is removed on {signal}"
        );
    }
}

impl Drop for TwinUp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-s", "TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

/// A command that must fail as bad input does: exit code 2 and one `error:`
/// line on stderr, which says everything in `said`. Returns stdout and stderr.
pub fn expect_error(out: &Output, said: &[&str]) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    for s in said {
        assert!(errors[0].contains(s), "{s:?} not in {}", errors[0]);
    }
    (stdout, stderr)
}

/// The run id a provisioning command printed (`run id: ID (ledger ...)`).
pub fn run_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run id: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no run id in {stdout}"))
        .to_string()
}
