//! Driving a running twin with clients nobody here wrote: the aws CLI and
//! kubectl, each in a clean environment pointed at the twin. Every wait is
//! bounded and says what it last saw when it gives up.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use meshspec_twin::{Twin, TwinConfig};
use serde_json::Value;
use tokio::process::Command;

/// How long any single wait may take (wall time); the twin's delays are
/// compressed far below this.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Env {
    pub twin: Twin,
    pub dir: tempfile::TempDir,
}

/// A cluster the test created through EKS.
pub struct ClusterRef {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub endpoint: String,
    pub ca_data: String,
    pub vpc_id: String,
}

impl Env {
    /// A twin with time compressed so that minutes pass in milliseconds.
    pub async fn start() -> Result<Env> {
        Self::start_with(TwinConfig::default()).await
    }

    /// The same, with a configuration of the caller's (time still compressed).
    pub async fn start_with(cfg: TwinConfig) -> Result<Env> {
        let cfg = TwinConfig { time_scale: 2000.0, ..cfg };
        Ok(Env { twin: Twin::start(cfg).await?, dir: tempfile::tempdir()? })
    }

    fn aws_command(&self, args: &[&str]) -> Command {
        let (key, secret) = self.twin.credentials();
        let mut cmd = Command::new("aws");
        cmd.args(args)
            .args(["--output", "json"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", self.twin.aws_endpoint())
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-west-2")
            .env("AWS_DEFAULT_REGION", "us-west-2")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .kill_on_drop(true);
        cmd
    }

    /// `aws <args> --output json`, parsed; a non-zero exit is an error with stderr.
    pub async fn aws(&self, args: &[&str]) -> Result<Value> {
        let out = tokio::time::timeout(WAIT, self.aws_command(args).output())
            .await
            .with_context(|| format!("aws {args:?} timed out"))??;
        if !out.status.success() {
            bail!("aws {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("aws {args:?} printed no JSON: {text}"))
    }

    /// `kubectl --kubeconfig <k> --cache-dir <tmp> <args>`; Ok(stdout) or Err(stderr).
    pub async fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(kubeconfig, args, None).await
    }

    pub async fn kubectl_stdin(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
        kubectl_at(kubeconfig, self.dir.path(), &self.dir.path().join("kube-cache"), args, stdin).await
    }

    pub async fn kubectl_json(&self, kubeconfig: &Path, args: &[&str]) -> Result<Value> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl(kubeconfig, &all).await?;
        serde_json::from_str(&text).with_context(|| format!("kubectl {args:?} printed no JSON"))
    }

    pub async fn apply(&self, kubeconfig: &Path, manifest: &str) -> Result<String> {
        self.kubectl_stdin(kubeconfig, &["apply", "-f", "-"], Some(manifest)).await
    }

    /// A VPC like the seed's: three private /20 subnets and three public /24
    /// ones, tagged for internal and internet-facing load balancers.
    pub async fn create_vpc(&self, second_octet: u8) -> Result<(String, Vec<String>)> {
        let cidr = format!("10.{second_octet}.0.0/16");
        let vpc = self.aws(&["ec2", "create-vpc", "--cidr-block", &cidr]).await?;
        let vpc_id = vpc["Vpc"]["VpcId"].as_str().ok_or_else(|| anyhow!("no VpcId in {vpc}"))?.to_owned();
        let mut subnets = Vec::new();
        for (i, az) in ["us-west-2a", "us-west-2b", "us-west-2c"].iter().enumerate() {
            for (cidr, tag) in [
                (format!("10.{second_octet}.{}.0/20", i * 16), "kubernetes.io/role/internal-elb"),
                (format!("10.{second_octet}.{}.0/24", 48 + i), "kubernetes.io/role/elb"),
            ] {
                let spec = format!("ResourceType=subnet,Tags=[{{Key={tag},Value=1}}]");
                let s = self
                    .aws(&[
                        "ec2",
                        "create-subnet",
                        "--vpc-id",
                        &vpc_id,
                        "--cidr-block",
                        &cidr,
                        "--availability-zone",
                        az,
                        "--tag-specifications",
                        &spec,
                    ])
                    .await?;
                subnets.push(s["Subnet"]["SubnetId"].as_str().ok_or_else(|| anyhow!("no SubnetId in {s}"))?.to_owned());
            }
        }
        Ok((vpc_id, subnets))
    }

    /// Creates an EKS cluster, waits for ACTIVE and writes a kubeconfig for
    /// it from describe-cluster and the twin's admin token.
    pub async fn create_cluster(&self, name: &str, second_octet: u8) -> Result<ClusterRef> {
        let (vpc_id, subnets) = self.create_vpc(second_octet).await?;
        let vpc_config = format!("subnetIds={}", subnets.join(","));
        let role = format!("arn:aws:iam::{}:role/{name}-cluster", self.twin.account_id());
        self.aws(&[
            "eks",
            "create-cluster",
            "--name",
            name,
            "--role-arn",
            &role,
            "--resources-vpc-config",
            &vpc_config,
            "--kubernetes-version",
            "1.28",
        ])
        .await?;
        let cluster = eventually(&format!("EKS cluster {name} ACTIVE"), || async {
            let c = self.aws(&["eks", "describe-cluster", "--name", name]).await?;
            let status = c["cluster"]["status"].as_str().unwrap_or_default().to_owned();
            Ok(if status == "ACTIVE" { Ok(c) } else { Err(format!("status {status}")) })
        })
        .await?;
        let endpoint = cluster["cluster"]["endpoint"].as_str().context("endpoint")?.to_owned();
        let ca_data = cluster["cluster"]["certificateAuthority"]["data"].as_str().context("CA data")?.to_owned();
        let token = self.twin.cluster_admin_token(name).context("no admin token for an ACTIVE cluster")?;
        let kubeconfig = self.write_kubeconfig(name, &endpoint, &ca_data, &token)?;
        Ok(ClusterRef { name: name.to_owned(), kubeconfig, endpoint, ca_data, vpc_id })
    }

    pub fn write_kubeconfig(&self, name: &str, server: &str, ca_data: &str, token: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("kubeconfig-{name}-{}", rand_suffix()));
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        });
        std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
        Ok(path)
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.twin.dns_addr()
    }
}

fn rand_suffix() -> u32 {
    rand::random()
}

/// Polls `check` until it yields `Ok(value)`; `Err(seen)` means "not yet"
/// (what was seen goes into the timeout error), an outer error aborts.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, String>>>,
{
    let deadline = Instant::now() + WAIT;
    let mut last;
    loop {
        match check().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(seen)) => last = seen,
            Err(e) => last = format!("error: {e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {WAIT:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The public addresses of an NLB's nodes, from its network interfaces in EC2
/// (described `ELB net/NAME/ID`): where AWS shows them when no Elastic IP was given.
pub async fn nlb_node_ips(env: &Env, lb_arn: &str) -> Result<std::collections::BTreeSet<String>> {
    let id = lb_arn.split_once(":loadbalancer/").map(|(_, id)| id).context("not a load balancer ARN")?;
    let filter = format!("Name=description,Values=ELB {id}");
    let enis = env.aws(&["ec2", "describe-network-interfaces", "--filters", &filter]).await?;
    Ok(enis["NetworkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["Association"]["PublicIp"].as_str().map(str::to_owned))
        .collect())
}

/// Asks the twin's DNS server for the A records of `name` over UDP.
pub async fn dns_query(
    server: SocketAddr,
    name: &str,
    rtype: hickory_proto::rr::RecordType,
) -> Result<hickory_proto::op::Message> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::Name;
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

    let mut msg = Message::new();
    msg.set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name)?, rtype));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&msg.to_bytes()?, server).await?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await??;
    let answer = Message::from_bytes(&buf[..n])?;
    if answer.id() != msg.id() {
        bail!("DNS answer for another query");
    }
    Ok(answer)
}

/// kubectl with its own kubeconfig, HOME and cache, nothing else of the
/// environment but PATH; `stdin` written to it; at most `WAIT`.
pub async fn kubectl_at(
    kubeconfig: &Path,
    home: &Path,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("running kubectl")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
        drop(pipe);
    }
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .with_context(|| format!("kubectl {args:?} timed out"))??;
    if !out.status.success() {
        bail!("kubectl {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
