//! `meshspec bench k3s`: the k3s target's figures from one run of the suite
//! (measured, never asserted): the stand-in image's build, the run's wall
//! time and provisioning, what it left out, meshspec's peak memory, and the
//! stand-ins' while they run, and whether anything of the run was left.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::provision::k3s::K3sRuntime;
use crate::runner::{self, RunOptions};
use crate::target::rules::{self, TargetRequest};
use crate::target::TargetKind;

#[derive(Debug, Serialize)]
pub struct K3sFigures {
    pub runtime: String,
    pub image: Option<String>,
    /// `meshspec k3s standin-image`'s work (build, or finding it there).
    pub image_s: Option<f64>,
    pub passed: usize,
    pub failed: usize,
    pub left_out: usize,
    pub wall_s: f64,
    pub provisioning_s: Option<f64>,
    /// meshspec's own peak RSS (VmHWM), the `@twin` scenarios' in-process twins included.
    pub peak_mib: Option<f64>,
    /// The largest RSS a stand-in process reached (processes runtime only).
    pub standin_peak_mib: Option<f64>,
    /// Containers, networks or processes of the run still there after it.
    pub left_behind: usize,
}

/// One run of the features on the k3s target with `runtime`; with Docker, the
/// stand-in image is built first unless `image` names one.
pub async fn measure(
    features: &Path,
    report_dir: &Path,
    runtime: K3sRuntime,
    image: Option<String>,
) -> Result<K3sFigures> {
    let (image, image_s) = match (runtime, image) {
        (K3sRuntime::Docker, None) => {
            let started = Instant::now();
            let docker = crate::containers::engine().await?;
            let me = std::env::current_exe()?;
            let built = crate::containers::standin_image::build(&docker, &me).await?;
            (Some(built.to_string()), Some(started.elapsed().as_secs_f64()))
        }
        (_, given) => (given, None),
    };
    let mut req = TargetRequest::new(TargetKind::K3s);
    req.k3s_runtime = runtime;
    if let Some(i) = &image {
        req.k3s_image = i.clone();
    }
    let mut opts = RunOptions::new(rules::target_options(&req, &rules::process_env)?);
    opts.features = features.to_path_buf();
    opts.report_dir = report_dir.to_path_buf();
    let sampler = (runtime == K3sRuntime::Processes).then(|| tokio::spawn(standin_peak_kib()));
    let summary = runner::run(opts).await?;
    let standin_peak_mib = match sampler {
        Some(task) => {
            task.abort();
            let _ = task.await;
            Some(STANDIN_PEAK.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0)
        }
        None => None,
    };
    let left_behind = match (&summary.run_id, runtime) {
        (Some(run), K3sRuntime::Docker) => {
            let docker = crate::containers::engine().await?;
            let found = crate::containers::find(&docker, run).await?;
            found.containers.len() + found.networks.len()
        }
        (Some(run), K3sRuntime::Processes) => crate::containers::processes::find(run).len(),
        (None, _) => 0,
    };
    Ok(K3sFigures {
        runtime: format!("{runtime:?}").to_lowercase(),
        image,
        image_s,
        passed: summary.tally.passed,
        failed: summary.tally.failed,
        left_out: summary.excluded.len(),
        wall_s: summary.wall_time.as_secs_f64(),
        provisioning_s: summary.provisioning.map(|d| d.as_secs_f64()),
        peak_mib: crate::bench_suite::peak_memory_mib(),
        standin_peak_mib,
        left_behind,
    })
}

static STANDIN_PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Samples the RSS of this process's `k3s serve` children until aborted.
async fn standin_peak_kib() {
    let me = std::process::id().to_string();
    loop {
        for pid in
            std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().into_string().ok())
        {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
            let field = |name: &str| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .map(str::to_string)
            };
            if field("PPid:").as_deref() != Some(me.as_str()) {
                continue;
            }
            if let Some(kib) = field("VmRSS:").and_then(|v| v.parse::<u64>().ok()) {
                STANDIN_PEAK.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn render(f: &K3sFigures) -> String {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1} {unit}"));
    let mut out = String::new();
    out.push_str(&format!(
        "k3s target, runtime {}{}\n",
        f.runtime,
        f.image.as_deref().map(|i| format!(", image {i}")).unwrap_or_default()
    ));
    out.push_str(&format!("  stand-in image               {}\n", opt(f.image_s, "s")));
    out.push_str(&format!(
        "  scenarios                    {} passed, {} failed, {} left out\n",
        f.passed, f.failed, f.left_out
    ));
    out.push_str(&format!("  wall time                    {:.1} s\n", f.wall_s));
    out.push_str(&format!("  provisioning                 {}\n", opt(f.provisioning_s, "s")));
    out.push_str(&format!("  meshspec peak memory         {}\n", opt(f.peak_mib, "MiB")));
    out.push_str(&format!("  stand-in process peak memory {}\n", opt(f.standin_peak_mib, "MiB")));
    out.push_str(&format!("  left behind                  {}\n", f.left_behind));
    out
}
