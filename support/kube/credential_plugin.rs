//! A kubeconfig's exec credential plugin (`aws eks get-token`, kubelogin, ...),
//! run by meshspec instead of kube-rs: kube-rs waits for the plugin without a
//! deadline and leaves it running when meshspec stops. Here the plugin runs in
//! its own process group, without a terminal, and the whole group is killed at
//! the deadline, so neither meshspec nor the plugin's children outlive it.
//!
//! The protocol is client-go's (k8s.io/client-go/pkg/apis/clientauthentication):
//! KUBERNETES_EXEC_INFO holds an ExecCredential with `spec.interactive`; the
//! plugin prints an ExecCredential whose `status` holds a token or a client
//! certificate and key, and optionally `expirationTimestamp`.

use std::process::Stdio;
use std::time::Duration;

use kube::config::ExecConfig;
use serde::Deserialize;

use crate::report::redact::redact_text;

/// Why a plugin gave no credential; rendered once, here.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("the credential plugin `{command}` of context {context:?} is not installed (not found on PATH)")]
    NotFound { context: String, command: String },
    #[error("the credential plugin `{command}` of context {context:?} cannot start: {cause}")]
    CannotStart { context: String, command: String, cause: String },
    #[error(
        "the credential plugin `{command}` of context {context:?} gave no credential within {deadline:?}; \
         it was stopped with its process group (does it wait for a login or a prompt?)"
    )]
    TimedOut { context: String, command: String, deadline: Duration },
    #[error("the credential plugin `{command}` of context {context:?} failed ({status}){}", tail(.stderr))]
    Failed { context: String, command: String, status: String, stderr: String },
    #[error("the credential plugin `{command}` of context {context:?} printed no usable ExecCredential: {cause}")]
    BadOutput { context: String, command: String, cause: String },
}

fn tail(stderr: &str) -> String {
    let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
    if last.is_empty() {
        String::new()
    } else {
        format!(": {}", last.into_iter().rev().collect::<Vec<_>>().join(" / "))
    }
}

/// What a plugin hands back.
#[derive(Clone)]
pub enum Credential {
    Token {
        token: String,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// PEM certificate and key.
    Certificate {
        certificate: String,
        key: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token { expires, .. } => write!(f, "Token(.., expires {expires:?})"),
            Credential::Certificate { .. } => f.write_str("Certificate(..)"),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    expiration_timestamp: Option<String>,
}

fn parse(stdout: &[u8]) -> Result<Credential, String> {
    let out: Output = serde_json::from_slice(stdout).map_err(|e| format!("not JSON ({e})"))?;
    let status = out.status.ok_or("no status")?;
    let expires = match &status.expiration_timestamp {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("expirationTimestamp {t:?} is not RFC 3339 ({e})"))?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    match (status.token, status.client_certificate_data, status.client_key_data) {
        (Some(token), _, _) if !token.is_empty() => Ok(Credential::Token { token, expires }),
        (_, Some(certificate), Some(key)) => Ok(Credential::Certificate { certificate, key }),
        _ => Err("its status holds neither a token nor a client certificate and key".into()),
    }
}

/// Run `exec` once, bounded by `deadline`.
pub async fn run(exec: &ExecConfig, context: &str, deadline: Duration) -> Result<Credential, PluginError> {
    let command = exec.command.clone().unwrap_or_default();
    let ctx = || context.to_string();
    let mut cmd = tokio::process::Command::new(&command);
    cmd.args(exec.args.iter().flatten());
    for pair in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (pair.get("name"), pair.get("value")) {
            cmd.env(name, value);
        }
    }
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    let api_version = exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let mut spec = serde_json::json!({"interactive": false});
    if exec.provide_cluster_info {
        if let Some(cluster) = &exec.cluster {
            spec["cluster"] = serde_json::to_value(cluster).unwrap_or_default();
        }
    }
    let info = serde_json::json!({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec});
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    // Its own process group, no terminal: a plugin that prompts fails instead of waiting.
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PluginError::NotFound { context: ctx(), command: command.clone() },
        _ => PluginError::CannotStart { context: ctx(), command: command.clone(), cause: e.to_string() },
    })?;
    let pid = child.id();
    // The group stays alive while a handle holds it; killed however this future ends.
    let group = pid.map(ProcessGroup);
    let output = match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(PluginError::CannotStart { context: ctx(), command, cause: e.to_string() });
        }
        Err(_) => {
            drop(group);
            return Err(PluginError::TimedOut { context: ctx(), command, deadline });
        }
    };
    if !output.status.success() {
        let stderr = redact_text(&String::from_utf8_lossy(&output.stderr));
        return Err(PluginError::Failed { context: ctx(), command, status: output.status.to_string(), stderr });
    }
    parse(&output.stdout).map_err(|cause| PluginError::BadOutput { context: ctx(), command, cause })
}

/// Kills a plugin's process group when dropped: after a deadline, and when the
/// caller's future is dropped (an interrupted run) while the plugin still runs.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.0) {
            // SAFETY: killpg only sends a signal; the group id is the plugin's own
            // (process_group(0) made the plugin its leader). ESRCH when already gone.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &str, args: &[&str]) -> ExecConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
        }))
        .unwrap()
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[tokio::test]
    async fn a_token_is_read_with_its_expiry() {
        let out = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"status":{"expirationTimestamp":"2026-12-02T12:00:00Z","token":"k8s-aws-v1.abc"}}"#;
        let e = exec("sh", &["-c", &format!("echo '{out}'")]);
        match run(&e, "c", Duration::from_secs(10)).await.unwrap() {
            Credential::Token { token, expires } => {
                assert_eq!(token, "k8s-aws-v1.abc");
                assert_eq!(expires.unwrap().to_rfc3339(), "2026-12-02T12:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_plugin_that_never_returns_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The plugin starts a child of its own and waits, as a stuck login would.
        let script = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let e = exec("sh", &["-c", &script]);
        let started = std::time::Instant::now();
        let err = run(&e, "stuck", Duration::from_millis(500)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(err, PluginError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("context \"stuck\""), "{err}");
        let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive(child) || std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "the plugin's child {child} outlived the deadline");
    }

    #[tokio::test]
    async fn failures_and_bad_output_are_named() {
        let e = exec("sh", &["-c", "echo 'token expired: run aws sso login' >&2; exit 3"]);
        let err = run(&e, "c", Duration::from_secs(10)).await.unwrap_err().to_string();
        assert!(err.contains("failed (exit status: 3): token expired: run aws sso login"), "{err}");
        let e = exec("sh", &["-c", "echo hello"]);
        let err = run(&e, "c", Duration::from_secs(10)).await.unwrap_err().to_string();
        assert!(err.contains("printed no usable ExecCredential: not JSON"), "{err}");
        let e = exec("no-such-plugin-anywhere", &[]);
        assert!(matches!(run(&e, "c", Duration::from_secs(10)).await, Err(PluginError::NotFound { .. })));
    }
}
