//! Running a command in a container through the API server's exec endpoint
//! (WebSocket), the way `kubectl exec` does, with a deadline.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

/// What a command printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutcome {
    pub stdout: String,
    pub stderr: String,
    /// 0 on success; the exit code the API server reports otherwise.
    pub exit_code: i32,
}

/// Exit code from the exec status (`NonZeroExitCode` carries it as a cause).
fn exit_code(status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> Result<i32> {
    let status = status.context("the exec stream ended without a status")?;
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    match code {
        Some(code) => Ok(code),
        None => anyhow::bail!("exec failed: {}", status.message.unwrap_or_else(|| "no message".into())),
    }
}

pub async fn exec(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[&str],
    timeout: Duration,
) -> Result<ExecOutcome> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("exec {:?} in {namespace}/{pod} -c {container}", command.join(" "));
    let run = async {
        let params = AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
        let mut attached = api.exec(pod, command.iter().copied(), &params).await.with_context(|| what.clone())?;
        let mut stdout = attached.stdout().context("no stdout stream")?;
        let mut stderr = attached.stderr().context("no stderr stream")?;
        let status = attached.take_status().context("no status channel")?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.context("reading stdout")?;
        b.context("reading stderr")?;
        let code = exit_code(status.await)?;
        let _ = attached.join().await;
        Ok::<_, anyhow::Error>(ExecOutcome {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            exit_code: code,
        })
    };
    tokio::time::timeout(timeout, run).await.with_context(|| format!("{what} did not finish within {timeout:?}"))?
}

/// The first Running pod matching a label selector, as the runbook's
/// `kubectl get pod -l ... -o jsonpath='{.items[0].metadata.name}'` finds it.
pub async fn first_running_pod(client: &kube::Client, namespace: &str, selector: &str) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api.list(&ListParams::default().labels(selector)).await?;
    let phases: Vec<String> = pods
        .items
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.metadata.name.as_deref().unwrap_or("?"),
                p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("?")
            )
        })
        .collect();
    pods.items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .with_context(|| format!("no Running pod with {selector} in {namespace} (pods: {phases:?})"))
}
