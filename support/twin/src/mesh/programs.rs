//! What the mesh's other programs print as they start, into their
//! containers' logs: pilot-agent in every sidecar and gateway, gunicorn in
//! helloworld. (istiod writes its own, in `istiod`; curl's `sleep infinity`
//! prints nothing.)

use serde_json::Value;

use super::apps::HELLOWORLD_IMAGE;
use super::injection::env_value;
use super::log::ProgramLog;
use crate::programs::objects::{self, pod};
use crate::programs::Cluster;

/// Istio 1.20.2's build: pkg/version/version.go `BuildInfo.String()`
/// (`<version>-<git revision>-<build status>`), the revision of tag 1.20.2.
const ISTIO_BUILD: &str = "1.20.2-5f5d657c72d30a97cae97938de3a6831583e9f15-Clean";

fn image_repo(image: &str) -> &str {
    let repo = image.split('@').next().unwrap_or(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    last.split(':').next().unwrap_or(last)
}

/// Writes the start-up lines of each starting container's program.
pub fn write_start_lines(cluster: &Cluster, p: &Value, starting: &[String]) {
    for c in pod::containers(p) {
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !starting.iter().any(|s| s == name) {
            continue;
        }
        let log = ProgramLog::new(cluster.store.logs().clone(), objects::uid(p), name);
        let repo = image_repo(pod::image(c));
        if repo == "proxyv2" {
            pilot_agent(&log, p, c);
        } else if repo.starts_with(HELLOWORLD_IMAGE) {
            gunicorn(&log, cluster);
        }
    }
}

/// pilot-agent's start (Istio 1.20.2): pilot/cmd/pilot-agent/app/cmd.go
/// (`Version`, `Proxy role` with its labels), pkg/istio-agent/agent.go
/// (`CA Endpoint`, `Pilot SAN`), pilot/cmd/pilot-agent/status/server.go
/// (`Opening status port`), pkg/istio-agent/xds_proxy.go
/// (scope `xdsproxy`), pkg/envoy/agent.go (`Starting proxy agent`).
fn pilot_agent(log: &ProgramLog, p: &Value, container: &Value) {
    let ns = objects::namespace(p);
    // A gateway runs `proxy router`, a sidecar `proxy sidecar` (the injection template's args).
    let args = container.get("args").and_then(Value::as_array);
    let role = if args.is_some_and(|a| a.iter().any(|v| v == "router")) { "router" } else { "sidecar" };
    let ip = pod::ip(p).unwrap_or_default();
    let cluster_id = env_value(container, "ISTIO_META_CLUSTER_ID").filter(|c| !c.is_empty());
    let cluster_id = cluster_id.unwrap_or_else(|| "Kubernetes".to_owned());
    log.info(&format!("Version {ISTIO_BUILD}"));
    log.info(&format!("Proxy role\tips=[{ip}] type={role} id={}.{ns} domain={ns}.svc.cluster.local", objects::name(p)));
    log.info("CA Endpoint istiod.istio-system.svc:15012, provider Citadel");
    log.info("Opening status port 15020");
    log.info("Pilot SAN: [istiod.istio-system.svc]");
    log.scoped(
        "info",
        "xdsproxy",
        &format!("Initializing with upstream address \"istiod.istio-system.svc:15012\" and cluster {cluster_id:?}"),
    );
    log.info("Starting proxy agent");
    // `Envoy proxy is ready` (status/server.go) is left out: it follows Envoy's
    // first config, which the twin does not give at start.
}

/// gunicorn's start as helloworld's image runs it (Istio 1.20.2
/// samples/helloworld/src/Dockerfile: `gunicorn -b [::]:5000 app:app -k
/// gevent`), in gunicorn's format (benoitc/gunicorn 21.2.0 glogging.py:
/// `%(asctime)s [%(process)d] [%(levelname)s] %(message)s` with datefmt
/// `[%Y-%m-%d %H:%M:%S %z]`; arbiter.py's start lines; config.py
/// `worker_class_str`). The image's requirements do not pin gunicorn: 21.2.0
/// (the release current when Istio 1.20.2 was tagged) is an assumption.
fn gunicorn(log: &ProgramLog, cluster: &Cluster) {
    let now = cluster.store.logs().now().format("%Y-%m-%d %H:%M:%S +0000");
    log.raw(&format!("[{now}] [1] [INFO] Starting gunicorn 21.2.0"));
    log.raw(&format!("[{now}] [1] [INFO] Listening at: http://[::]:5000 (1)"));
    log.raw(&format!("[{now}] [1] [INFO] Using worker: gevent"));
    log.raw(&format!("[{now}] [7] [INFO] Booting worker with pid: 7"));
}
