//! What `kubectl exec` runs "in" a container, chosen like a kubelet would
//! run it: by the container's image.
//!
//! - `curlimages/curl` (sleep) and `proxyv2`: `curl` through the data plane.
//! - `proxyv2`: `pilot-agent request GET <admin path>` (Envoy's admin API).
//! - `pilot` (istiod): `pilot-discovery request GET /debug/...`.
//! - Everywhere: `hostname`, `echo`, `env`, `true`, `false`, `sleep`.

use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::apps::HttpRequest;
use super::curl::{self, PodNetwork};
use super::dataplane::Delivery;
use super::envoy;
use super::injection::env_value;
use super::istiod::is_pilot_image;
use super::{Mesh, MeshCluster};
use crate::kube::exec::{ExecHandler, ExecOutput, ExecRequest};
use crate::kube::{ApiError, Resource};
use crate::programs::listening::is_istio_proxy;
use crate::programs::objects::{self, pod};

/// The exec handler of one cluster's API server.
pub struct MeshExec {
    pub cluster: Weak<MeshCluster>,
}

impl ExecHandler for MeshExec {
    fn exec(&self, req: ExecRequest, _stdin: Vec<u8>) -> BoxFuture<'static, Result<ExecOutput, ApiError>> {
        let cluster = self.cluster.upgrade();
        Box::pin(async move {
            match cluster {
                Some(c) => run(c, req).await,
                None => Err(ApiError::internal("error dialing backend: the cluster is stopping")),
            }
        })
    }
}

fn output(stdout: impl Into<Vec<u8>>, stderr: impl Into<Vec<u8>>, exit_code: i32) -> ExecOutput {
    ExecOutput { stdout: stdout.into(), stderr: stderr.into(), exit_code }
}

/// Whether the named container of the pod is running.
fn is_running(p: &Value, container: &str) -> bool {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| s.get("name").and_then(Value::as_str) == Some(container) && s.pointer("/state/running").is_some())
}

/// Runs one command in a container of a pod of this cluster.
pub async fn run(mc: Arc<MeshCluster>, req: ExecRequest) -> Result<ExecOutput, ApiError> {
    let p = mc
        .cluster
        .get(&Resource::pods(), Some(&req.namespace), &req.pod)
        .ok_or_else(|| ApiError::not_found("pods", &req.pod))?;
    let containers = pod::containers(&p);
    let name = match &req.container {
        Some(c) => c.clone(),
        None => containers.first().and_then(|c| c.get("name")?.as_str()).unwrap_or("").to_owned(),
    };
    let container = containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name.as_str()))
        .ok_or_else(|| ApiError::bad_request(format!("container {name} is not valid for pod {}", req.pod)))?;
    if !is_running(&p, &name) {
        return Err(ApiError::bad_request(format!("container not found (\"{name}\")")));
    }
    let image = pod::image(container).to_owned();
    let Some(program) = req.command.first() else {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    };
    let args = &req.command[1..];
    let base = program.rsplit('/').next().unwrap_or(program);
    let has_curl = image.contains("curl") || is_istio_proxy(&image);
    let clock = mc.cluster.clock;
    Ok(match base {
        "curl" if has_curl => {
            let Some(mesh) = mc.mesh() else {
                return Err(ApiError::internal("the twin is stopping"));
            };
            let net = InPod { mesh, cluster: mc.clone(), pod: p.clone(), container: name.clone() };
            curl::run(args, req.tty, &net, clock).await
        }
        "pilot-agent" if is_istio_proxy(&image) => pilot_agent(&mc, &p, args),
        "pilot-discovery" if is_pilot_image(&image) => pilot_discovery(&mc, &p, args),
        "hostname" => output(format!("{}\n", req.pod), "", 0),
        "echo" => output(format!("{}\n", args.join(" ")), "", 0),
        "true" => output("", "", 0),
        "false" => output("", "", 1),
        "env" => {
            let mut lines = vec![format!("HOSTNAME={}", req.pod)];
            for e in container.get("env").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(k), Some(_)) = (e.get("name").and_then(Value::as_str), e.get("value")) {
                    lines.push(format!("{k}={}", env_value(container, k).unwrap_or_default()));
                }
            }
            output(lines.join("\n") + "\n", "", 0)
        }
        "sleep" => {
            let secs = args.first().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
            match secs {
                Some(s) => {
                    clock.sleep(Duration::from_secs_f64(s.min(3600.0))).await;
                    output("", "", 0)
                }
                None => output("", "sleep: invalid time interval\n", 1),
            }
        }
        _ => {
            return Err(ApiError::internal(format!(
                "error executing command in container: failed to exec in container: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown"
            )));
        }
    })
}

/// `<program> request <method> <path>`, as pilot-agent and pilot-discovery
/// parse it: only GET, and `serve` answers the path.
fn request_command(program: &str, args: &[String], serve: impl FnOnce(&str) -> ExecOutput) -> ExecOutput {
    match args {
        [sub, method, path, ..] if sub == "request" => {
            if !method.eq_ignore_ascii_case("GET") {
                return output(
                    "",
                    format!("Error: received unsuccessful status code 405: method {method} not allowed\n"),
                    1,
                );
            }
            serve(path)
        }
        [sub, ..] if sub == "request" => {
            output("", format!("Error: requires at least 2 arg(s), only received {}\n", args.len() - 1), 1)
        }
        _ => output("", format!("Error: unknown command; try {program} request GET <path>\n"), 1),
    }
}

/// `pilot-agent request <method> <path>`: Envoy's admin API on localhost:15000.
fn pilot_agent(mc: &MeshCluster, p: &Value, args: &[String]) -> ExecOutput {
    request_command("pilot-agent", args, |path| {
        if envoy::is_secrets_dump(path) {
            // The workload certificate SDS gave this sidecar, issued now by its cluster's CA.
            let ca = super::identity::WorkloadCa::in_use(mc);
            let chain = ca.and_then(|ca| ca.issue(&super::identity::spiffe_id(p))).map(|c| c.chain).unwrap_or_default();
            let root = mc.istiod.trust_root().unwrap_or_default();
            return output(envoy::secrets_dump(&chain, &root), "", 0);
        }
        let config = mc.proxy_config(p).unwrap_or_default();
        let (status, body) = envoy::admin(path, &config, objects::name(p));
        if status == 200 {
            output(body, "", 0)
        } else {
            output("", format!("Error: received unsuccessful status code {status}: {body}\n"), 1)
        }
    })
}

/// `pilot-discovery request <method> <path>`: istiod's debug port 15014.
fn pilot_discovery(mc: &MeshCluster, p: &Value, args: &[String]) -> ExecOutput {
    request_command("pilot-discovery", args, |path| {
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        let (status, body) = mc.istiod_debug(p, &path);
        match status {
            200 => output(body, "", 0),
            0 => output(
                "",
                format!("Error: Get \"http://127.0.0.1:15014{path}\": dial tcp 127.0.0.1:15014: connect: connection refused\n"),
                1,
            ),
            _ => output("", format!("Error: received unsuccessful status code {status}: {body}\n"), 1),
        }
    })
}

/// The network as a process in a pod sees it.
struct InPod {
    mesh: Arc<Mesh>,
    cluster: Arc<MeshCluster>,
    pod: Value,
    container: String,
}

impl PodNetwork for InPod {
    fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
        self.mesh.resolve_in_pod(&self.cluster, &self.pod, host)
    }

    fn send(&self, ip: Ipv4Addr, port: u16, req: &HttpRequest) -> Delivery {
        self.mesh.send_from_pod(&self.cluster, &self.pod, &self.container, ip, port, req)
    }

    fn send_async<'a>(
        &'a self,
        ip: Ipv4Addr,
        port: u16,
        req: &'a HttpRequest,
    ) -> futures::future::BoxFuture<'a, Delivery> {
        Box::pin(self.mesh.send_from_pod_async(&self.cluster, &self.pod, &self.container, ip, port, req))
    }
}
