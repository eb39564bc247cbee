//! Running an external tool (terraform, kind, helm, docker) the way a
//! provisioner needs it: its output streamed line by line as it comes, every
//! line redacted before anyone sees it, a deadline after which it is
//! interrupted (SIGINT first, so that Terraform can save its state), and a
//! failure that says what ran, how it ended and what it printed last.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::report::redact::redact_text;

/// How many of its last lines a failure quotes.
const TAIL: usize = 12;
/// After SIGINT, how long a tool may take to stop before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

/// One run of a tool.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The program, looked up on PATH.
    pub program: String,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Added to meshspec's own environment.
    pub env: Vec<(String, String)>,
    pub deadline: Duration,
    /// What the run is for, in messages: "terraform apply (stage 1/3 infrastructure)".
    pub label: String,
}

impl Invocation {
    pub fn new(program: &str, args: impl IntoIterator<Item = impl Into<String>>, label: impl Into<String>) -> Self {
        Invocation {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
            env: Vec::new(),
            deadline: Duration::from_secs(600),
            label: label.into(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// The command line, for messages (arguments are never secrets: credentials go through env and files).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a tool printed, once it succeeded.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<String>,
    pub elapsed: Duration,
}

/// How a tool run failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program} is not installed (not found on PATH); it is needed for {label}")]
    NotInstalled { program: String, label: String },
    #[error("{label} failed: `{command}` exited with code {code}{}", tail_text(.tail))]
    Exited { label: String, command: String, code: i32, tail: Vec<String> },
    #[error("{label} failed: `{command}` was ended by a signal{}", tail_text(.tail))]
    Signalled { label: String, command: String, tail: Vec<String> },
    #[error("{label} did not finish within {deadline:?}: `{command}` was interrupted{}", tail_text(.tail))]
    TimedOut { label: String, command: String, deadline: Duration, tail: Vec<String> },
    #[error("{label} was stopped: the run was interrupted (`{command}` got SIGINT){}", tail_text(.tail))]
    Interrupted { label: String, command: String, tail: Vec<String> },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        "; it printed nothing".to_string()
    } else {
        format!("; its last output:\n    {}", tail.join("\n    "))
    }
}

/// Run `inv` to its end, handing every (redacted) line to `on_line` as it comes.
pub async fn run(inv: &Invocation, mut on_line: impl FnMut(Stream, &str)) -> Result<Output> {
    let start = Instant::now();
    let mut cmd = tokio::process::Command::new(&inv.program);
    cmd.args(&inv.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    if let Some(dir) = &inv.cwd {
        cmd.current_dir(dir);
    }
    for (k, v) in &inv.env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ToolError::NotInstalled { program: inv.program.clone(), label: inv.label.clone() }.into())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot start `{}`", inv.command_line())),
    };
    let mut out = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut err = BufReader::new(child.stderr.take().context("no stderr")?).lines();
    let (mut out_open, mut err_open) = (true, true);
    let mut stdout = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let keep = |line: String, tail: &mut VecDeque<String>| {
        if line.trim().is_empty() {
            return;
        }
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let deadline = tokio::time::Instant::now() + inv.deadline;
    let mut timed_out = false;
    let mut stopped = false;
    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                Ok(Some(l)) => {
                    let l = redact_text(&l);
                    on_line(Stream::Stdout, &l);
                    keep(l.clone(), &mut tail);
                    stdout.push(l);
                }
                _ => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Ok(Some(l)) => {
                    let l = redact_text(&l);
                    on_line(Stream::Stderr, &l);
                    keep(l, &mut tail);
                }
                _ => err_open = false,
            },
            _ = tokio::time::sleep_until(deadline), if !timed_out && !stopped => {
                timed_out = true;
                interrupt(&mut child).await;
            }
            _ = crate::interrupt::interrupted(), if !timed_out && !stopped => {
                stopped = true;
                interrupt(&mut child).await;
            }
        }
    }
    let status = child.wait().await.with_context(|| format!("cannot wait for `{}`", inv.command_line()))?;
    let tail: Vec<String> = tail.into_iter().collect();
    let (label, command) = (inv.label.clone(), inv.command_line());
    if timed_out {
        return Err(ToolError::TimedOut { label, command, deadline: inv.deadline, tail }.into());
    }
    if stopped {
        return Err(ToolError::Interrupted { label, command, tail }.into());
    }
    match status.code() {
        Some(0) => Ok(Output { stdout, elapsed: start.elapsed() }),
        Some(code) => Err(ToolError::Exited { label, command, code, tail }.into()),
        None => Err(ToolError::Signalled { label, command, tail }.into()),
    }
}

/// SIGINT (a tool's chance to stop cleanly), then SIGKILL after the grace.
async fn interrupt(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill").args(["-s", "INT", &pid.to_string()]).status();
    }
    if tokio::time::timeout(INTERRUPT_GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Invocation {
        Invocation::new("sh", ["-c", script], "a test")
    }

    #[tokio::test]
    async fn lines_stream_in_order_and_are_redacted() {
        let mut seen = Vec::new();
        let out =
            run(&sh("echo one; echo two >&2; echo 'Bearer abc'; echo three"), |s, l| seen.push((s, l.to_string())))
                .await
                .unwrap();
        assert_eq!(out.stdout, ["one", "<redacted>", "three"]);
        assert!(seen.contains(&(Stream::Stderr, "two".to_string())));
        assert!(!seen.iter().any(|(_, l)| l.contains("abc")));
    }

    #[tokio::test]
    async fn a_failure_names_the_command_its_code_and_its_last_lines() {
        let e = run(&sh("echo started; echo 'Error: no credentials' >&2; exit 3"), |_, _| {}).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a test failed: `sh -c"), "{text}");
        assert!(text.contains("exited with code 3"), "{text}");
        assert!(text.contains("Error: no credentials"), "{text}");
        assert!(matches!(e.downcast_ref::<ToolError>(), Some(ToolError::Exited { code: 3, .. })));
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let inv = Invocation::new("meshspec-no-such-tool", ["x"], "stage 1");
        let e = run(&inv, |_, _| {}).await.unwrap_err();
        assert!(matches!(e.downcast_ref::<ToolError>(), Some(ToolError::NotInstalled { .. })), "{e}");
        assert!(e.to_string().contains("meshspec-no-such-tool is not installed"), "{e}");
    }

    #[tokio::test]
    async fn past_its_deadline_a_tool_is_interrupted_and_may_clean_up() {
        let inv = sh("trap 'echo saving state; exit 130' INT; echo working; while :; do sleep 0.05; done")
            .deadline(Duration::from_millis(300));
        let e = run(&inv, |_, _| {}).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e.downcast_ref::<ToolError>(), Some(ToolError::TimedOut { .. })), "{text}");
        assert!(text.contains("saving state"), "SIGINT reached the tool first: {text}");
    }
}
