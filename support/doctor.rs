//! `meshspec doctor`: before anything costs money, check what a target needs
//! (tools, credentials, kube contexts, the clusters and the versions on them)
//! and say what is missing and how to get it. It changes nothing and keeps
//! going after a failed check, so that one run lists every gap.

use std::path::{Path, PathBuf};

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::aws::eks;
use crate::provision::Provisioner;
use crate::run::Session;
use crate::target::TargetOptions;
use crate::tools::process::{self, Invocation};
use crate::topology::names;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub level: Level,
    pub check: String,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag}  {}: {}", self.check, self.detail)
    }
}

/// The findings so far; each is handed to `shown` as soon as it is made, so
/// that a slow check never hides the ones before it.
struct Report<'a> {
    findings: Vec<Finding>,
    shown: &'a mut (dyn FnMut(&Finding) + Send),
}

impl Report<'_> {
    /// One finding, one line: a multi-line detail (a tool's last output) is joined.
    fn add(&mut self, level: Level, check: impl Into<String>, detail: impl Into<String>) {
        let detail: String = detail.into();
        let detail = detail.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        let f = Finding { level, check: check.into(), detail };
        (self.shown)(&f);
        self.findings.push(f);
    }
}

/// A tool a target needs, how to ask its version, and where to get it.
struct Tool {
    program: String,
    version_args: &'static [&'static str],
    why: &'static str,
    install: &'static str,
}

async fn check_tool(r: &mut Report<'_>, t: &Tool) -> Option<String> {
    let inv = Invocation::new(&t.program, t.version_args.iter().copied(), format!("{} version", t.program))
        .deadline(std::time::Duration::from_secs(30));
    match process::run(&inv, |_, _| {}).await {
        Ok(out) => {
            let version = out.stdout.iter().map(|l| l.trim()).find(|l| !l.is_empty()).unwrap_or("").to_string();
            r.add(Level::Ok, format!("tool {}", t.program), format!("{version} ({})", t.why));
            Some(version)
        }
        Err(e) => {
            let missing = matches!(e.downcast_ref(), Some(process::ToolError::NotInstalled { .. }));
            let detail = if missing {
                format!("not found on PATH; it is needed {}; install: {}", t.why, t.install)
            } else {
                format!("does not work: {e:#}")
            };
            r.add(Level::Fail, format!("tool {}", t.program), detail);
            None
        }
    }
}

/// The leading number of a version part ("28+" on EKS).
fn number(s: &str) -> Option<u32> {
    s.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// `major.minor` of a version string such as `v1.28.3-eks-1` or `1.20.2`.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    Some((number(parts.next()?)?, number(parts.next()?)?))
}

/// Terraform's version from the first line of `terraform version` ("Terraform v1.11.4").
fn terraform_version(line: &str) -> Option<String> {
    line.split_whitespace().nth(1).map(str::to_string)
}

fn exec_commands(kubeconfig: Option<&Path>, contexts: &[String]) -> Result<Vec<(String, String)>> {
    let config = match kubeconfig {
        Some(p) => kube::config::Kubeconfig::read_from(p)?,
        None => kube::config::Kubeconfig::read()?,
    };
    let mut out = Vec::new();
    for ctx in contexts {
        let user = config
            .contexts
            .iter()
            .find(|c| &c.name == ctx)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone());
        let exec = user
            .and_then(|u| config.auth_infos.iter().find(|a| a.name == u).cloned())
            .and_then(|a| a.auth_info)
            .and_then(|a| a.exec)
            .and_then(|e| e.command);
        if let Some(cmd) = exec {
            out.push((ctx.clone(), cmd));
        }
    }
    Ok(out)
}

fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Examine a target as `opts` describes it.
pub async fn examine(opts: TargetOptions) -> Vec<Finding> {
    examine_showing(opts, &mut |_| {}).await
}

/// Examine a target, handing each finding to `shown` as it is made.
pub async fn examine_showing(opts: TargetOptions, shown: &mut (dyn FnMut(&Finding) + Send)) -> Vec<Finding> {
    let mut r = Report { findings: Vec::new(), shown };
    // The twin provisions itself in every run: its clusters not existing yet is expected.
    let provisioning = opts.allow_provision || opts.kind.driver().provisions_unasked();
    let verb = if provisioning { "provision and verify" } else { "verify" };
    r.add(Level::Ok, "target", format!("{} (meshspec will {verb})", opts.kind));
    match &opts.provisioner {
        Provisioner::Terraform(p) if provisioning => {
            let t = Tool {
                program: p.terraform.binary.clone(),
                version_args: &["version"],
                why: "to apply the stages",
                install: "https://developer.hashicorp.com/terraform/install (1.1 or later)",
            };
            if let Some(v) = check_tool(&mut r, &t).await {
                match terraform_version(&v).as_deref().and_then(major_minor) {
                    Some((1, _)) => {}
                    Some((0, m)) if m >= 15 => {}
                    _ => r.add(
                        Level::Fail,
                        "terraform version",
                        format!("{v}: meshspec reads -json output, Terraform 0.15.3 or later"),
                    ),
                }
            }
            check_terraform_dir(&mut r, &p.terraform.dir);
        }
        Provisioner::Kind(_) if provisioning => {
            for t in [
                Tool {
                    program: "kind".into(),
                    version_args: &["version"],
                    why: "to create the clusters",
                    install: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
                },
                Tool {
                    program: "helm".into(),
                    version_args: &["version", "--short"],
                    why: "to install MetalLB and Istio",
                    install: "https://helm.sh/docs/intro/install/ (v3)",
                },
                Tool {
                    program: "docker".into(),
                    version_args: &["version", "--format", "{{.Server.Version}}"],
                    why: "for kind's nodes (the engine must run)",
                    install: "https://docs.docker.com/engine/install/",
                },
            ] {
                check_tool(&mut r, &t).await;
            }
        }
        Provisioner::Own(p) => {
            let own = p.doctor().await;
            if !own.is_empty() {
                for f in own {
                    r.add(f.level, f.check, f.detail);
                }
                // Its clusters are made by the run itself: nothing exists yet to examine.
                return r.findings;
            }
        }
        _ => {}
    }
    let contexts: Vec<String> = opts.contexts.values().cloned().collect();
    if !contexts.is_empty() && !provisioning {
        match exec_commands(opts.kubeconfig.as_deref(), &contexts) {
            Ok(execs) => {
                for (ctx, cmd) in execs {
                    if on_path(&cmd) {
                        r.add(
                            Level::Ok,
                            format!("context {ctx}"),
                            format!("its credentials come from `{cmd}`, which is on PATH"),
                        );
                    } else {
                        r.add(
                            Level::Fail,
                            format!("context {ctx}"),
                            format!("its credentials come from `{cmd}`, which is not on PATH"),
                        );
                    }
                }
            }
            Err(e) => r.add(Level::Fail, "kubeconfig", format!("{e:#}")),
        }
    }
    let topology = opts.topology.clone();
    let mut session_opts = opts;
    session_opts.ledger_dir = None;
    let session = match Session::open(session_opts).await {
        Ok(s) => s,
        Err(e) => {
            r.add(Level::Fail, "target", format!("cannot be opened: {e:#}"));
            return r.findings;
        }
    };
    let mut aws_answers = true;
    if let Ok(aws) = session.aws() {
        match crate::aws::connect::caller_identity(aws).await {
            Ok((account, arn)) => r.add(
                Level::Ok,
                "AWS credentials",
                format!(
                    "{arn} (account {account}), region {}{}",
                    aws.region,
                    aws.endpoint.as_deref().map(|e| format!(", endpoint {e}")).unwrap_or_default()
                ),
            ),
            Err(e) => {
                // An endpoint that does not answer would make every later AWS check wait as long.
                aws_answers = e.downcast_ref::<crate::aws::connect::AwsUnreachable>().is_none();
                r.add(Level::Fail, "AWS credentials", format!("{e:#}"));
            }
        }
    }
    for c in &topology.clusters {
        examine_cluster(&mut r, &session, c, provisioning, aws_answers).await;
    }
    session.close().await;
    r.findings
}

fn check_terraform_dir(r: &mut Report<'_>, dir: &PathBuf) {
    let tf_files = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "tf")).count())
        .unwrap_or(0);
    if tf_files == 0 {
        r.add(
            Level::Fail,
            "terraform directory",
            format!("{} holds no .tf file (pass --terraform-dir with your root module)", dir.display()),
        );
    } else {
        r.add(Level::Ok, "terraform directory", format!("{} ({tf_files} .tf files)", dir.display()));
    }
}

async fn examine_cluster(
    r: &mut Report<'_>,
    session: &Session,
    c: &crate::topology::ClusterTopology,
    provisioning: bool,
    aws_answers: bool,
) {
    let want_k8s = &session.topology.kubernetes_version;
    let aws = session.aws().ok();
    if !aws_answers && aws.is_some() {
        r.add(Level::Fail, format!("EKS {}", c.name), "not examined: the AWS endpoint does not answer");
        if !session.has_context(&c.name) {
            // Without a context its API server is found through EKS, which does not answer.
            return;
        }
    }
    if let Some(aws) = aws.filter(|_| aws_answers) {
        match eks::describe(aws, &c.name).await {
            Ok(Some(d)) => {
                let level = if major_minor(&d.version) == major_minor(want_k8s) { Level::Ok } else { Level::Warn };
                r.add(
                    level,
                    format!("EKS {}", c.name),
                    format!(
                        "{}, Kubernetes {} (topology: {want_k8s}), platform {}",
                        d.status,
                        d.version,
                        d.platform_version.as_deref().unwrap_or("unknown")
                    ),
                );
            }
            Ok(None) if provisioning => {
                r.add(Level::Ok, format!("EKS {}", c.name), "does not exist yet: provisioning creates it")
            }
            Ok(None) => {
                r.add(Level::Fail, format!("EKS {}", c.name), "no such cluster, and provisioning is not allowed")
            }
            Err(e) => r.add(Level::Fail, format!("EKS {}", c.name), format!("{e:#}")),
        }
    }
    let client = match session.kube(&c.name).await {
        Ok(client) => client,
        Err(_) if provisioning => return,
        Err(e) => return r.add(Level::Fail, format!("cluster {}", c.name), format!("{e:#}")),
    };
    match client.apiserver_version().await {
        Ok(v) => {
            let level = if major_minor(&v.git_version) == major_minor(want_k8s) { Level::Ok } else { Level::Warn };
            r.add(
                level,
                format!("Kubernetes {}", c.name),
                format!("API server {} (topology: {want_k8s})", v.git_version),
            );
        }
        Err(_) if provisioning => return,
        Err(e) => {
            let failure = match session.kube_endpoint(&c.name).await {
                Some((who, url)) => crate::kube::failure::ApiFailure::of(who, url, &e).to_string(),
                None => crate::kube::failure::cause_of(&e).to_string(),
            };
            return r.add(Level::Fail, format!("Kubernetes {}", c.name), failure);
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client, names::ISTIO_SYSTEM);
    examine_root(r, session, c, provisioning).await;
    match deployments.get_opt("istiod").await {
        Ok(Some(d)) => {
            let image = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|p| p.containers.into_iter().next())
                .and_then(|c| c.image)
                .unwrap_or_default();
            let tag = crate::report::versions::image_tag(&image);
            let want = &session.topology.istio_version;
            let level = if major_minor(&tag) == major_minor(want) { Level::Ok } else { Level::Warn };
            r.add(level, format!("Istio {}", c.name), format!("istiod runs {image} (topology: {want})"));
        }
        Ok(None) if provisioning => {
            r.add(Level::Ok, format!("Istio {}", c.name), "istiod is not installed yet: provisioning installs it")
        }
        Ok(None) => {
            r.add(Level::Fail, format!("Istio {}", c.name), "no istiod in istio-system: the mesh is not deployed")
        }
        Err(e) => r.add(Level::Fail, format!("Istio {}", c.name), crate::kube::failure::cause_of(&e).to_string()),
    }
}

/// Whether the root given with `--mesh-root-ca` is the one the cluster's
/// `cacerts` chain to: the same-root CA rotation refuses any other.
async fn examine_root(r: &mut Report<'_>, session: &Session, c: &crate::topology::ClusterTopology, provisioning: bool) {
    let Some(root) = &session.mesh_root_ca else { return };
    let check = format!("mesh root CA {}", c.name);
    if provisioning && session.provisioner.makes_ca() {
        return r.add(Level::Ok, check, "provisioning issues cacerts from the root of --mesh-root-ca");
    }
    let held = match root.fingerprint() {
        Ok(f) => f,
        Err(e) => return r.add(Level::Fail, check, format!("{e:#}")),
    };
    if provisioning {
        // Terraform may not have made them yet: its apply comes first in the run.
        let made = crate::checks::check::now(session, &crate::checks::provisioning::Cacerts(c.clone())).await;
        if let Err(f) = made {
            return r.add(Level::Warn, check, format!("not compared yet: {f}"));
        }
    }
    let trusts = crate::checks::ca_rotation::TrustsHeldRoot { cluster: c.clone(), held };
    match crate::checks::check::now(session, &trusts).await {
        Ok(fp) => r.add(
            Level::Ok,
            check,
            format!("cacerts chain to the root of --mesh-root-ca (SHA-256 {fp}): the same-root CA rotation can run"),
        ),
        Err(f) => r.add(Level::Fail, check, f.to_string()),
    }
}

/// The closing line and whether nothing failed.
pub fn summary(findings: &[Finding]) -> (String, bool) {
    let count = |l| findings.iter().filter(|f| f.level == l).count();
    let (ok, warn, fail) = (count(Level::Ok), count(Level::Warn), count(Level::Fail));
    (format!("doctor: {ok} ok, {warn} warnings, {fail} failed"), fail == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_by_major_and_minor() {
        assert_eq!(major_minor("v1.28.3-eks-1"), Some((1, 28)));
        assert_eq!(major_minor("1.28+"), Some((1, 28)));
        assert_eq!(major_minor("1.20.2"), Some((1, 20)));
        assert_eq!(major_minor("latest"), None);
        assert_eq!(terraform_version("Terraform v1.11.4").as_deref(), Some("v1.11.4"));
    }

    #[test]
    fn the_summary_fails_only_on_failures() {
        let f = |level| Finding { level, check: "c".into(), detail: "d".into() };
        assert_eq!(summary(&[f(Level::Ok), f(Level::Warn)]), ("doctor: 1 ok, 1 warnings, 0 failed".to_string(), true));
        assert!(!summary(&[f(Level::Fail)]).1);
        assert_eq!(f(Level::Fail).to_string(), "FAIL  c: d");
    }
}
