//! The seed deployment provisioned as meshspec does it: VPCs and EKS clusters
//! with the aws CLI, then `kubectl apply -f` of fixtures/manifests rendered
//! with the seed's values, stage by stage (cacerts and the load balancer
//! controller, then istiod, then gateways, reader tokens, samples and the
//! remote secrets). The plugged-in CA is made here with rcgen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use meshspec_twin::kube::exec::{ExecOutput, ExecRequest};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::Value;

use crate::support::{eventually, ClusterRef, Env};

pub const ISTIO_VERSION: &str = "1.20.2";
pub const HELLOWORLD_CLUSTER: &str = "outbound|5000||helloworld.sample.svc.cluster.local";

/// One cluster of the seed topology.
pub struct Seed {
    pub eks: &'static str,
    pub octet: u8,
    pub istio: &'static str,
    pub network: &'static str,
    pub version: &'static str,
}

pub const SEED: [Seed; 2] = [
    Seed { eks: "eks-1", octet: 1, istio: "cluster1", network: "network1", version: "v1" },
    Seed { eks: "eks-2", octet: 2, istio: "cluster2", network: "network2", version: "v2" },
];

/// Misconfigurations to provision with.
#[derive(Default)]
pub struct Faults {
    /// Each cluster's cacerts under its own root.
    pub different_roots: bool,
    /// The remote secret in this cluster (index into SEED) carries a bad token.
    pub bad_token_in: Option<usize>,
    /// In this cluster, the reader ClusterRole loses this resource from every
    /// rule before the remote secrets are made.
    pub reader_role_without: Option<(usize, &'static str)>,
}

/// A root CA of the mesh (CN multicluster.istio.io).
pub struct Root {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// The four files of `cacerts`.
pub struct CaCerts {
    pub root_pem: String,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub chain_pem: String,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

impl Root {
    pub fn new() -> Result<Root> {
        let params = ca_params("multicluster.istio.io");
        let key = KeyPair::generate()?;
        let pem = params.self_signed(&key)?.pem();
        Ok(Root { pem, issuer: Issuer::new(params, key) })
    }

    /// An intermediate CA under this root, as `cacerts` holds it.
    pub fn cacerts(&self) -> Result<CaCerts> {
        let key = KeyPair::generate()?;
        let cert = ca_params("intermediate.multicluster.istio.io").signed_by(&key, &self.issuer)?.pem();
        Ok(CaCerts {
            root_pem: self.pem.clone(),
            chain_pem: format!("{}{}", cert, self.pem),
            ca_cert_pem: cert,
            ca_key_pem: key.serialize_pem(),
        })
    }
}

/// A manifest of fixtures/manifests with `${NAME}` replaced; multi-line
/// values go in as JSON strings (valid YAML scalars).
pub fn render(file: &str, vars: &[(&str, String)]) -> Result<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/manifests").join(file);
    let mut text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for (name, value) in vars {
        let value = if value.contains('\n') { serde_json::to_string(value)? } else { value.clone() };
        text = text.replace(&format!("${{{name}}}"), &value);
    }
    if let Some(at) = text.find("${") {
        bail!("{file}: unrendered placeholder near {:?}", &text[at..(at + 30).min(text.len())]);
    }
    Ok(text)
}

fn vars(seed: &Seed) -> Vec<(&'static str, String)> {
    vec![
        ("CLUSTER_NAME", seed.eks.to_owned()),
        ("NETWORK", seed.network.to_owned()),
        ("ISTIO_VERSION", ISTIO_VERSION.to_owned()),
        ("MESH_ID", "mesh1".to_owned()),
        ("ISTIO_CLUSTER", seed.istio.to_owned()),
        ("SAMPLE_VERSION", seed.version.to_owned()),
    ]
}

/// The reader token the other istiod will use, once the token controller filled it.
async fn reader_token(env: &Env, c: &ClusterRef) -> Result<String> {
    eventually(&format!("the reader token of {}", c.name), || async {
        let s = env
            .kubectl_json(
                &c.kubeconfig,
                &["get", "secret", "istio-reader-service-account-istio-remote-secret-token", "-n", "istio-system"],
            )
            .await?;
        Ok(match s["data"]["token"].as_str() {
            Some(t) => Ok(String::from_utf8(STANDARD.decode(t)?)?),
            None => Err(format!("data {}", s["data"])),
        })
    })
    .await
}

/// What `istioctl create-remote-secret` puts under the cluster's key.
pub fn remote_kubeconfig(name: &str, server: &str, ca_data: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca_data}\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {name}\n  name: {name}\ncurrent-context: {name}\npreferences: {{}}\nusers:\n- name: {name}\n  user:\n    token: {token}\n"
    )
}

/// Provisions both clusters in the seed's stages.
pub async fn provision(env: &Env, faults: &Faults) -> Result<Vec<ClusterRef>> {
    let mut clusters = Vec::new();
    for seed in &SEED {
        clusters.push(env.create_cluster(seed.eks, seed.octet).await?);
    }
    // Stage 1: cacerts (one root, or one per cluster) and the load balancer controllers.
    let shared = Root::new()?;
    for (seed, c) in SEED.iter().zip(&clusters) {
        let own;
        let root = if faults.different_roots {
            own = Root::new()?;
            &own
        } else {
            &shared
        };
        let ca = root.cacerts()?;
        let mut v = vars(seed);
        v.extend([
            ("CA_CERT_PEM", ca.ca_cert_pem),
            ("CA_KEY_PEM", ca.ca_key_pem),
            ("ROOT_CERT_PEM", ca.root_pem),
            ("CERT_CHAIN_PEM", ca.chain_pem),
        ]);
        env.apply(&c.kubeconfig, &render("cacerts.yaml", &v)?).await?;
        env.apply(&c.kubeconfig, &render("aws-load-balancer-controller.yaml", &vars(seed))?).await?;
    }
    // Stage 2: istiod.
    for (seed, c) in SEED.iter().zip(&clusters) {
        env.apply(&c.kubeconfig, &render("istiod.yaml", &vars(seed))?).await?;
    }
    // Stage 3: gateways, reader tokens, samples, then the remote secrets.
    for (seed, c) in SEED.iter().zip(&clusters) {
        for file in ["ingress-gateway.yaml", "eastwest-gateway.yaml", "reader-token.yaml", "samples.yaml"] {
            env.apply(&c.kubeconfig, &render(file, &vars(seed))?).await?;
        }
    }
    if let Some((i, resource)) = faults.reader_role_without {
        let role = env
            .kubectl_json(&clusters[i].kubeconfig, &["get", "clusterrole", "istio-reader-clusterrole-istio-system"])
            .await?;
        let mut role = role.clone();
        for rule in role["rules"].as_array_mut().into_iter().flatten() {
            if let Some(resources) = rule["resources"].as_array_mut() {
                resources.retain(|r| r != resource);
            }
        }
        env.apply(&clusters[i].kubeconfig, &role.to_string()).await?;
    }
    let mut tokens = Vec::new();
    for c in &clusters {
        tokens.push(reader_token(env, c).await?);
    }
    for (i, (seed, c)) in SEED.iter().zip(&clusters).enumerate() {
        let other = 1 - i;
        let token = if faults.bad_token_in == Some(i) { "not-a-valid-token".to_owned() } else { tokens[other].clone() };
        let kubeconfig =
            remote_kubeconfig(SEED[other].istio, &clusters[other].endpoint, &clusters[other].ca_data, &token);
        let mut v = vars(seed);
        v.extend([
            ("REMOTE_CLUSTER", SEED[other].istio.to_owned()),
            ("REMOTE_SECRET_KEY", SEED[other].istio.to_owned()),
            ("REMOTE_KUBECONFIG", kubeconfig),
        ]);
        env.apply(&c.kubeconfig, &render("remote-secret.yaml", &v)?).await?;
    }
    Ok(clusters)
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The name of the first Ready pod matching a selector.
pub async fn ready_pod(env: &Env, c: &ClusterRef, ns: &str, selector: &str) -> Result<Value> {
    eventually(&format!("a Ready pod {selector} in {}/{ns}", c.name), || async {
        let pods = env.kubectl_json(&c.kubeconfig, &["get", "pods", "-n", ns, "-l", selector]).await?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        Ok(match items.iter().find(|p| is_ready(p)) {
            Some(p) => Ok(p.clone()),
            None => Err(format!("{} pods, none Ready", items.len())),
        })
    })
    .await
}

pub fn name(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

/// Runs a command in a container through the twin's exec handler.
pub async fn exec(env: &Env, c: &ClusterRef, ns: &str, pod: &str, container: &str, cmd: &[&str]) -> Result<ExecOutput> {
    let req = ExecRequest {
        namespace: ns.to_owned(),
        pod: pod.to_owned(),
        container: Some(container.to_owned()),
        command: cmd.iter().map(|s| (*s).to_owned()).collect(),
        stdin: false,
        tty: false,
    };
    env.twin.mesh().exec(&c.name, req).await.map_err(|e| anyhow!("exec {cmd:?}: {e}"))
}

/// The sleep proxy's hosts for helloworld: (address, port) -> weight.
pub async fn helloworld_hosts(env: &Env, c: &ClusterRef, sleep: &str) -> Result<BTreeMap<(String, u64), u64>> {
    let out = exec(env, c, "sample", sleep, "istio-proxy", &["pilot-agent", "request", "GET", "clusters?format=json"])
        .await?;
    anyhow::ensure!(out.exit_code == 0, "pilot-agent failed: {}", String::from_utf8_lossy(&out.stderr));
    let admin: Value = serde_json::from_slice(&out.stdout)?;
    Ok(hosts_of(&admin, HELLOWORLD_CLUSTER))
}

pub fn hosts_of(admin: &Value, cluster: &str) -> BTreeMap<(String, u64), u64> {
    let mut out = BTreeMap::new();
    for c in admin["cluster_statuses"].as_array().into_iter().flatten().filter(|c| c["name"] == cluster) {
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let a = &h["address"]["socket_address"];
            let key = (a["address"].as_str().unwrap_or_default().to_owned(), a["port_value"].as_u64().unwrap_or(0));
            *out.entry(key).or_default() += h["weight"].as_u64().unwrap_or(0);
        }
    }
    out
}

/// istiod's `/debug/clusterz` in a cluster.
pub async fn clusterz(env: &Env, c: &ClusterRef) -> Result<Value> {
    let istiod = ready_pod(env, c, "istio-system", "app=istiod").await?;
    let out = exec(
        env,
        c,
        "istio-system",
        &name(&istiod),
        "discovery",
        &["pilot-discovery", "request", "GET", "/debug/clusterz"],
    )
    .await?;
    anyhow::ensure!(out.exit_code == 0, "pilot-discovery failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The sync status istiod reports for a cluster id.
pub fn status_of(clusterz: &Value, id: &str) -> Option<String> {
    clusterz.as_array()?.iter().find(|c| c["id"] == id)?["syncStatus"].as_str().map(str::to_owned)
}

/// The public IPs of the NLB behind a cluster's east-west gateway Service.
pub async fn gateway_nlb_ips(env: &Env, c: &ClusterRef) -> Result<BTreeSet<String>> {
    eventually(&format!("the east-west NLB of {} active", c.name), || async {
        let svc =
            env.kubectl_json(&c.kubeconfig, &["get", "svc", "istio-eastwestgateway", "-n", "istio-ingress"]).await?;
        let Some(host) = svc.pointer("/status/loadBalancer/ingress/0/hostname").and_then(Value::as_str) else {
            return Ok(Err("no hostname yet".to_owned()));
        };
        let lbs = env.aws(&["elbv2", "describe-load-balancers"]).await?;
        let lb = lbs["LoadBalancers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|lb| lb["DNSName"].as_str().is_some_and(|d| d.eq_ignore_ascii_case(host)));
        Ok(match lb {
            Some(lb) if lb["State"]["Code"] == "active" => {
                Ok(crate::support::nlb_node_ips(env, lb["LoadBalancerArn"].as_str().unwrap_or_default()).await?)
            }
            Some(lb) => Err(format!("NLB {}", lb["State"])),
            None => Err(format!("no NLB named {host}")),
        })
    })
    .await
}

/// `n` curls from a pod's sleep container: the outputs (stdout, or the error).
pub async fn curls(env: &Env, c: &ClusterRef, sleep: &str, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let out = exec(env, c, "sample", sleep, "sleep", &["curl", "-sS", "helloworld.sample:5000/hello"]).await?;
        let text = if out.exit_code == 0 {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!("exit {}: {}", out.exit_code, String::from_utf8_lossy(&out.stderr))
        };
        *seen.entry(text).or_default() += 1;
    }
    Ok(seen)
}

/// Counts of answers that start with a prefix.
pub fn count(seen: &BTreeMap<String, usize>, prefix: &str) -> usize {
    seen.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, n)| n).sum()
}
