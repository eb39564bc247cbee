//! `meshspec bench`: measured, never asserted. The load-balancing check against
//! the twin, compared in the same run with the runbook's method (one
//! `kubectl get pod` + one `kubectl exec ... curl` process per request).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::checks::load_balancing;
use crate::run::Session;
use crate::target::{TargetKind, TargetOptions};
use crate::topology::Topology;
use crate::twin_env::{self, TwinEnvFiles};

#[derive(Debug, Serialize)]
pub struct MethodFigure {
    pub method: String,
    pub requests: usize,
    pub wall_time_s: f64,
    pub per_request_ms: f64,
    pub answers_ok: usize,
}

#[derive(Debug, Serialize)]
pub struct LoadBalancingBench {
    pub cluster: String,
    pub meshspec: MethodFigure,
    pub runbook: MethodFigure,
    /// Runbook time per request / meshspec time per request.
    pub speedup: f64,
}

fn figure(method: &str, requests: usize, wall: Duration, ok: usize) -> MethodFigure {
    MethodFigure {
        method: method.to_string(),
        requests,
        wall_time_s: wall.as_secs_f64(),
        per_request_ms: wall.as_secs_f64() * 1000.0 / requests.max(1) as f64,
        answers_ok: ok,
    }
}

/// The runbook's loop, as written: per request, find the sleep pod, then exec curl.
async fn runbook_loop(kubeconfig: &Path, context: &str, cache: &Path, n: usize) -> Result<usize> {
    let script = format!(
        r#"for i in $(seq 1 {n}); do
kubectl --cache-dir "$CACHE" exec --context="$CTX" -n sample -c sleep \
    "$(kubectl --cache-dir "$CACHE" get pod --context="$CTX" -n sample -l \
    app=sleep -o jsonpath='{{.items[0].metadata.name}}')" \
    -- curl -sS helloworld.sample:5000/hello
done"#
    );
    let out = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .env("KUBECONFIG", kubeconfig)
        .env("CTX", context)
        .env("CACHE", cache)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run bash and kubectl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().filter(|l| l.starts_with("Hello version:")).count())
}

pub async fn load_balancing(requests: usize, time_scale: Option<f64>) -> Result<LoadBalancingBench> {
    let mut opts = TargetOptions::new(TargetKind::Twin, Topology::seed());
    opts.time_scale = time_scale;
    let session = Session::open(opts).await?;
    let result = async {
        crate::twin_up::bring_up(&session).await?;
        let dir = tempfile::tempdir()?;
        let files = TwinEnvFiles::for_env_file(&dir.path().join("twin.env"));
        let vars = twin_env::write(&session, &files).await?;
        let context =
            vars.iter().find(|(k, _)| k == "CTX_CLUSTER1").map(|(_, v)| v.clone()).context("no CTX_CLUSTER1")?;
        let c = session.topology.clusters[0].clone();

        let start = Instant::now();
        let ours = load_balancing::requests_from(&session, &c, "helloworld.sample:5000/hello", requests).await?;
        let ours_wall = start.elapsed();
        let ours_ok = ours.distribution.requests - ours.distribution.errors.len();

        let start = Instant::now();
        let theirs_ok = runbook_loop(&files.kubeconfig, &context, &dir.path().join("cache"), requests).await?;
        let theirs_wall = start.elapsed();
        ensure!(theirs_ok > 0, "the runbook's loop got no answer: is kubectl installed?");

        let meshspec = figure("meshspec (kube-rs exec, 10 URLs per curl, 8 in flight)", requests, ours_wall, ours_ok);
        let runbook = figure("runbook (kubectl get + kubectl exec per request)", requests, theirs_wall, theirs_ok);
        Ok(LoadBalancingBench {
            cluster: c.name,
            speedup: runbook.per_request_ms / meshspec.per_request_ms.max(f64::MIN_POSITIVE),
            meshspec,
            runbook,
        })
    }
    .await;
    session.close().await;
    result
}
