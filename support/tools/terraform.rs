//! Terraform as the EKS provisioner drives it: the command lines of the
//! seed's staged applies and destroys, and its machine-readable UI (`-json`,
//! one JSON message per line) turned into progress and into the errors a
//! failed stage reports. Messages are read by their `type`, never by text.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The user's Terraform and how to call it.
#[derive(Clone, Debug)]
pub struct TerraformConfig {
    /// The root module directory (`-chdir`).
    pub dir: PathBuf,
    /// The binary (`terraform`, or e.g. `tofu`).
    pub binary: String,
    /// `-var-file` arguments, in order.
    pub var_files: Vec<PathBuf>,
}

impl TerraformConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TerraformConfig { dir: dir.into(), binary: "terraform".to_string(), var_files: Vec::new() }
    }

    fn chdir(&self) -> String {
        format!("-chdir={}", self.dir.display())
    }

    /// `terraform init`, once before the first stage.
    pub fn init_args(&self) -> Vec<String> {
        vec![self.chdir(), "init".into(), "-input=false".into(), "-no-color".into()]
    }

    /// `apply` (or `destroy`) of one stage: its `-target`s, or everything when it names none.
    pub fn stage_args(&self, verb: Verb, targets: &[String]) -> Vec<String> {
        let mut args =
            vec![self.chdir(), verb.as_str().into(), "-auto-approve".into(), "-input=false".into(), "-json".into()];
        args.extend(self.var_files.iter().map(|f| format!("-var-file={}", f.display())));
        args.extend(targets.iter().map(|t| format!("-target={t}")));
        args
    }

    /// The environment Terraform gets besides meshspec's own (credentials come from there).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("TF_IN_AUTOMATION".into(), "1".into()), ("TF_INPUT".into(), "0".into())]
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Apply,
    Destroy,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Apply => "apply",
            Verb::Destroy => "destroy",
        }
    }
}

/// One message of Terraform's machine-readable UI (the fields meshspec reads).
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(rename = "@level", default)]
    level: String,
    #[serde(rename = "@message", default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    hook: Option<Hook>,
    #[serde(default)]
    changes: Option<Changes>,
    #[serde(default)]
    diagnostic: Option<Diagnostic>,
}

#[derive(Debug, Deserialize)]
struct Hook {
    resource: Option<ResourceAddr>,
}

#[derive(Debug, Deserialize)]
struct ResourceAddr {
    addr: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    #[serde(default)]
    pub add: u32,
    #[serde(default)]
    pub change: u32,
    #[serde(default)]
    pub remove: u32,
    #[serde(default)]
    pub operation: String,
}

#[derive(Debug, Deserialize)]
struct Diagnostic {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    detail: String,
}

/// What one staged run of Terraform has done so far, from its messages.
#[derive(Debug, Default)]
pub struct Progress {
    /// Resource changes the plan announced.
    pub planned: u32,
    /// Resources whose change completed, in order.
    pub done: Vec<String>,
    /// Resources being changed now.
    pub in_flight: Vec<String>,
    /// The apply's (or destroy's) closing summary.
    pub summary: Option<Changes>,
    /// Error diagnostics, `summary: detail`.
    pub errors: Vec<String>,
}

impl Progress {
    /// Take one line of Terraform's output; returns the line to show the user
    /// (its `@message`, or the line as it is when it is not a UI message).
    pub fn take(&mut self, line: &str) -> Option<String> {
        let Ok(m) = serde_json::from_str::<Message>(line) else {
            return (!line.trim().is_empty()).then(|| line.to_string());
        };
        let addr = m.hook.as_ref().and_then(|h| h.resource.as_ref()).map(|r| r.addr.clone());
        match m.kind.as_str() {
            "planned_change" => self.planned += 1,
            "apply_start" => self.in_flight.extend(addr),
            "apply_complete" | "apply_errored" => {
                if let Some(a) = addr {
                    self.in_flight.retain(|x| *x != a);
                    if m.kind == "apply_complete" {
                        self.done.push(a);
                    }
                }
            }
            "change_summary" => {
                if let Some(c) = m.changes {
                    if c.operation == "plan" {
                        self.planned = c.add + c.change + c.remove;
                    } else {
                        self.summary = Some(c);
                    }
                }
            }
            "diagnostic" => {
                if let Some(d) = &m.diagnostic {
                    if d.severity == "error" {
                        let detail = d.detail.lines().next().unwrap_or_default();
                        self.errors.push(if detail.is_empty() {
                            d.summary.clone()
                        } else {
                            format!("{}: {detail}", d.summary)
                        });
                    }
                }
            }
            _ => {}
        }
        if m.message.is_empty() {
            return None;
        }
        let level = if m.level == "error" || m.level == "warn" { format!("{}: ", m.level) } else { String::new() };
        Some(format!("{level}{}", m.message))
    }

    /// `12/40` (done of planned) for progress lines.
    pub fn counter(&self) -> String {
        format!("{}/{}", self.done.len(), self.planned.max(self.done.len() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Terraform 1.11 prints them for `apply -json` (shortened `hook` objects).
    const APPLY: &[&str] = &[
        r#"{"@level":"info","@message":"Terraform 1.11.4","@module":"terraform.ui","type":"version","terraform":"1.11.4","ui":"1.2"}"#,
        r#"{"@level":"info","@message":"module.vpc_1.aws_vpc.this[0]: Plan to create","type":"planned_change","change":{"resource":{"addr":"module.vpc_1.aws_vpc.this[0]"},"action":"create"}}"#,
        r#"{"@level":"info","@message":"Plan: 2 to add, 0 to change, 0 to destroy.","type":"change_summary","changes":{"add":2,"change":0,"import":0,"remove":0,"operation":"plan"}}"#,
        r#"{"@level":"info","@message":"module.vpc_1.aws_vpc.this[0]: Creating...","type":"apply_start","hook":{"resource":{"addr":"module.vpc_1.aws_vpc.this[0]"},"action":"create"}}"#,
        r#"{"@level":"info","@message":"module.vpc_1.aws_vpc.this[0]: Creation complete after 2s [id=vpc-1]","type":"apply_complete","hook":{"resource":{"addr":"module.vpc_1.aws_vpc.this[0]"},"action":"create","elapsed_seconds":2}}"#,
        r#"{"@level":"info","@message":"module.eks_1.aws_eks_cluster.this[0]: Creating...","type":"apply_start","hook":{"resource":{"addr":"module.eks_1.aws_eks_cluster.this[0]"},"action":"create"}}"#,
    ];

    #[test]
    fn progress_follows_the_messages_by_type() {
        let mut p = Progress::default();
        let shown: Vec<String> = APPLY.iter().filter_map(|l| p.take(l)).collect();
        assert_eq!(shown[0], "Terraform 1.11.4");
        assert_eq!(shown[4], "module.vpc_1.aws_vpc.this[0]: Creation complete after 2s [id=vpc-1]");
        assert_eq!(p.planned, 2);
        assert_eq!(p.done, ["module.vpc_1.aws_vpc.this[0]"]);
        assert_eq!(p.in_flight, ["module.eks_1.aws_eks_cluster.this[0]"]);
        assert_eq!(p.counter(), "1/2");
        p.take(r#"{"@level":"info","@message":"Apply complete! Resources: 2 added, 0 changed, 0 destroyed.","type":"change_summary","changes":{"add":2,"change":0,"remove":0,"operation":"apply"}}"#);
        assert_eq!(p.summary, Some(Changes { add: 2, change: 0, remove: 0, operation: "apply".into() }));
    }

    #[test]
    fn error_diagnostics_are_collected_and_plain_lines_pass_through() {
        let mut p = Progress::default();
        let shown = p.take(r#"{"@level":"error","@message":"Error: creating EKS Cluster (eks-1): AccessDeniedException","type":"diagnostic","diagnostic":{"severity":"error","summary":"creating EKS Cluster (eks-1): AccessDeniedException","detail":"User is not authorized\nmore"}}"#);
        assert_eq!(shown.as_deref(), Some("error: Error: creating EKS Cluster (eks-1): AccessDeniedException"));
        assert_eq!(p.errors, ["creating EKS Cluster (eks-1): AccessDeniedException: User is not authorized"]);
        assert_eq!(p.take("Initializing provider plugins...").as_deref(), Some("Initializing provider plugins..."));
        assert_eq!(p.take("   "), None);
    }

    #[test]
    fn stage_command_lines_follow_the_seed() {
        let mut tf = TerraformConfig::new("/infra");
        tf.var_files.push("prod.tfvars".into());
        let args = tf.stage_args(Verb::Apply, &["module.vpc_1".into(), "module.eks_1".into()]);
        assert_eq!(
            args,
            [
                "-chdir=/infra",
                "apply",
                "-auto-approve",
                "-input=false",
                "-json",
                "-var-file=prod.tfvars",
                "-target=module.vpc_1",
                "-target=module.eks_1"
            ]
        );
        assert_eq!(tf.stage_args(Verb::Destroy, &[])[1], "destroy");
        assert_eq!(tf.init_args(), ["-chdir=/infra", "init", "-input=false", "-no-color"]);
    }
}
