//! The EKS provisioner: the user's Terraform, driven stage by stage as the
//! seed runs it (`init`, then one `apply -target=...` per stage of the plan,
//! the last one whole), each stage started only once its preconditions hold
//! on the target. Terraform's output is streamed with the stage and a count of
//! finished resources; afterwards the kube contexts are built from EKS. The
//! teardown follows the plan's `destroy` stages, waits for the load balancer
//! controller to delete the NLBs in between, and ends with a leak sweep.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::plan::{DestroyStage, Stage, StagePlan, StageStep};
use super::stages::{StageExecutor, StageUnit};
use super::{ProvisionRecord, ProvisionedBy};
use crate::aws::eks;
use crate::aws::network::Leftover;
use crate::run::Session;
use crate::tools::process::{self, Invocation};
use crate::tools::terraform::{Progress, TerraformConfig, Verb};

/// The ledger's name for a Terraform root module a run applied.
pub const LEDGER_KIND: &str = "terraform root module";

/// Where the provisioner writes the kubeconfig of the clusters it made (like
/// `aws eks update-kubeconfig`), if anywhere.
#[derive(Clone, Debug)]
pub struct TerraformProvisioner {
    pub terraform: TerraformConfig,
    pub kubeconfig_out: Option<PathBuf>,
}

fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// One Terraform run, streamed to stderr under `prefix` and the count of
/// resources it finished.
async fn terraform(session: &Session, tf: &TerraformConfig, args: Vec<String>, label: String) -> Result<Progress> {
    let deadline =
        if args.iter().any(|a| a == "init") { session.timeouts.tool } else { session.timeouts.terraform_stage };
    let mut inv = Invocation::new(&tf.binary, args, label.clone()).deadline(deadline);
    inv.env = tf.env();
    let mut progress = Progress::default();
    let result = process::run(&inv, |_, line| {
        if let Some(shown) = progress.take(line) {
            eprintln!("[{label} {}] {shown}", progress.counter());
        }
    })
    .await;
    match result {
        Ok(_) => Ok(progress),
        // Terraform's own error diagnostics say more than its last lines.
        Err(e) if !progress.errors.is_empty() => {
            Err(e.context(format!("Terraform reported: {}", progress.errors.join("; "))))
        }
        Err(e) => Err(e),
    }
}

pub async fn provision(session: &Session, p: &TerraformProvisioner) -> Result<ProvisionRecord> {
    let tf = &p.terraform;
    anyhow::ensure!(
        tf.dir.is_dir(),
        "the Terraform directory {} does not exist (pass --terraform-dir with the root module that the plan's -target addresses name)",
        tf.dir.display()
    );
    let plan = StagePlan::load(&session.fixtures, &session.plan)?;
    let dir = absolute(&tf.dir);
    for c in &session.topology.clusters {
        session.record(
            &c.name,
            LEDGER_KIND,
            &dir.display().to_string(),
            vec![("dir".into(), dir.display().to_string())],
        )?;
    }
    terraform(session, tf, tf.init_args(), "terraform init".into()).await?;
    let mut exec = TerraformStages { tf, total: plan.stages.len() };
    let stages = super::stages::run(session, &plan, &mut exec).await?;
    build_contexts(session, p.kubeconfig_out.as_deref()).await?;
    Ok(ProvisionRecord { by: ProvisionedBy::Terraform, stages, root_fingerprint: None })
}

/// How the Terraform provisioner runs a stage: one `apply` of its `-target`s.
struct TerraformStages<'a> {
    tf: &'a TerraformConfig,
    total: usize,
}

impl StageExecutor for TerraformStages<'_> {
    fn who(&self) -> &'static str {
        "the Terraform provisioner"
    }

    fn plan_file(&self) -> &'static str {
        super::plan::DEFAULT_PLAN
    }

    /// The user's root module makes whatever a stage's `-target`s name.
    fn supports(&self, _: StageStep) -> bool {
        true
    }

    fn unit(&self) -> StageUnit {
        StageUnit::Stage
    }

    async fn step(&mut self, _session: &Session, step: StageStep) -> Result<Vec<String>> {
        anyhow::bail!("the Terraform provisioner applies whole stages, not step {step}")
    }

    async fn stage(&mut self, session: &Session, stage: &Stage) -> Result<Vec<String>> {
        let label = format!("terraform apply {}/{} {}", stage.number, self.total, stage.name);
        eprintln!("[{label}] {}", stage.summary);
        let progress =
            terraform(session, self.tf, self.tf.stage_args(Verb::Apply, &stage.terraform_targets), label).await?;
        let mut created = progress.done.clone();
        if let Some(s) = &progress.summary {
            created.push(format!("{} added, {} changed, {} destroyed", s.add, s.change, s.remove));
        }
        Ok(created)
    }
}

/// The kube access of the clusters Terraform made, from EKS (DescribeCluster
/// and a token made in-process); and, if asked, the kubeconfig a user would get
/// from `aws eks update-kubeconfig`.
async fn build_contexts(session: &Session, kubeconfig_out: Option<&Path>) -> Result<()> {
    let aws = session.aws()?;
    let mut described = Vec::new();
    for c in &session.topology.clusters {
        let client = session.kube(&c.name).await?;
        client.apiserver_version().await.with_context(|| format!("the API server of {} does not answer", c.name))?;
        described.push(eks::describe(aws, &c.name).await?.with_context(|| format!("EKS has no cluster {}", c.name))?);
    }
    if let Some(path) = kubeconfig_out {
        crate::aws::kubeconfig::write(path, &aws.region, &described)?;
        let contexts: Vec<String> =
            described.iter().enumerate().map(|(i, c)| format!("CTX_CLUSTER{}={}", i + 1, c.arn)).collect();
        eprintln!("kubeconfig: export KUBECONFIG={} {}", path.display(), contexts.join(" "));
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct TerraformDestroyRecord {
    pub stages: Vec<String>,
    /// What the leak sweep found after the last stage (must be empty).
    pub left: Vec<Leftover>,
}

/// The seed's teardown of a Terraform deployment.
pub async fn destroy(session: &Session, tf: &TerraformConfig) -> Result<TerraformDestroyRecord> {
    anyhow::ensure!(session.allow_provision, "destroy is not allowed on the {} target", session.kind);
    anyhow::ensure!(tf.dir.is_dir(), "the Terraform directory {} does not exist", tf.dir.display());
    let plan = StagePlan::load(&session.fixtures, &session.plan)?;
    anyhow::ensure!(!plan.destroy.is_empty(), "the stage plan {} has no destroy stages", session.plan);
    terraform(session, tf, tf.init_args(), "terraform init".into()).await?;
    let total = plan.destroy.len();
    let mut done = Vec::new();
    for stage in &plan.destroy {
        destroy_stage(session, tf, stage, total).await?;
        done.push(format!("{} {}", stage.number, stage.name));
    }
    let left = super::destroy::leak_sweep(session).await?;
    Ok(TerraformDestroyRecord { stages: done, left })
}

async fn destroy_stage(session: &Session, tf: &TerraformConfig, stage: &DestroyStage, total: usize) -> Result<()> {
    let label = format!("terraform destroy {}/{total} {}", stage.number, stage.name);
    eprintln!("[{label}] {}", stage.summary);
    terraform(session, tf, tf.stage_args(Verb::Destroy, &stage.terraform_targets), label)
        .await
        .with_context(|| format!("destroy stage {} ({}); the stages after it did not run", stage.number, stage.name))?;
    for w in &stage.then_wait_for {
        match w.as_str() {
            "no-load-balancers" => super::destroy::wait_no_load_balancers(session)
                .await
                .with_context(|| format!("after destroy stage {}", stage.number))
                .context(crate::checks::check::Diagnosis::new(
                    "the load balancer controller did not delete every NLB it made",
                    "check that the controller still ran while the Services were deleted; delete what is left by its tags, then destroy the rest",
                ))?,
            other => anyhow::bail!("unknown wait {other:?}"),
        }
    }
    Ok(())
}
