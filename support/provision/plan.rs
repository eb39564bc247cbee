//! The declared stage plan (fixtures/stages.yaml).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fixtures::Fixtures;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePlan {
    pub stages: Vec<Stage>,
    /// How a Terraform-provisioned deployment is torn down, in order.
    #[serde(default)]
    pub destroy: Vec<DestroyStage>,
}

/// One `terraform destroy` of the teardown.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyStage {
    pub number: u32,
    pub name: String,
    pub summary: String,
    /// Its `-target`s; none destroys everything left.
    #[serde(default)]
    pub terraform_targets: Vec<String>,
    /// What must be gone before the next stage starts (see `KNOWN_WAITS`).
    #[serde(default)]
    pub then_wait_for: Vec<String>,
}

/// What a destroy stage can wait for.
pub const KNOWN_WAITS: &[&str] = &["no-load-balancers"];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub number: u32,
    pub name: String,
    pub summary: String,
    /// Read as `StageStep`s, so that a plan naming a step no provisioner knows
    /// is refused when it is loaded, with its file and line.
    pub steps: Vec<StageStep>,
    /// Checked on the target before the stage starts (see `KNOWN_PRECONDITIONS`).
    #[serde(default)]
    pub preconditions: Vec<String>,
    #[serde(default)]
    pub terraform_targets: Vec<String>,
}

/// A step of the plan, spelt in the YAML as `as_str` says. Each provisioner
/// says how it runs each one (see `super::stages::StageExecutor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStep {
    Vpcs,
    Clusters,
    Cacerts,
    LoadBalancerController,
    Istiod,
    Gateways,
    ReaderTokens,
    Samples,
}

impl StageStep {
    pub const ALL: [StageStep; 8] = [
        StageStep::Vpcs,
        StageStep::Clusters,
        StageStep::Cacerts,
        StageStep::LoadBalancerController,
        StageStep::Istiod,
        StageStep::Gateways,
        StageStep::ReaderTokens,
        StageStep::Samples,
    ];

    /// The plan's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StageStep::Vpcs => "vpcs",
            StageStep::Clusters => "clusters",
            StageStep::Cacerts => "cacerts",
            StageStep::LoadBalancerController => "load-balancer-controller",
            StageStep::Istiod => "istiod",
            StageStep::Gateways => "gateways",
            StageStep::ReaderTokens => "reader-tokens",
            StageStep::Samples => "samples",
        }
    }
}

impl std::fmt::Display for StageStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a stage may require of the target before it starts.
pub const KNOWN_PRECONDITIONS: &[&str] = super::preconditions::KNOWN;

/// The seed's plan.
pub const DEFAULT_PLAN: &str = "stages.yaml";

impl StagePlan {
    /// A plan from the fixtures: `stages.yaml`, or another one such as
    /// `plans/istiod-before-cacerts.yaml`; or the user's own, when `name` is a
    /// file that exists.
    pub fn load(fixtures: &Fixtures, name: &str) -> Result<StagePlan> {
        let (text, file) = if std::path::Path::new(name).is_file() {
            let text = std::fs::read_to_string(name).with_context(|| format!("cannot read the stage plan {name}"))?;
            (std::borrow::Cow::Owned(text), std::path::PathBuf::from(name))
        } else {
            (fixtures.read(name)?, std::path::Path::new("fixtures").join(name))
        };
        let plan: StagePlan = crate::input::from_yaml(&text, &file)?;
        plan.validate()?;
        Ok(plan)
    }

    pub fn validate(&self) -> Result<()> {
        if self.stages.is_empty() {
            bail!("the stage plan has no stages");
        }
        for (i, stage) in self.stages.iter().enumerate() {
            if stage.number as usize != i + 1 {
                bail!("stage {} is numbered {}: stages must be numbered 1, 2, 3... in order", stage.name, stage.number);
            }
            for p in &stage.preconditions {
                if !KNOWN_PRECONDITIONS.contains(&p.as_str()) {
                    bail!(
                        "stage {}: unknown precondition {p:?} (known: {})",
                        stage.name,
                        KNOWN_PRECONDITIONS.join(", ")
                    );
                }
            }
        }
        for (i, stage) in self.destroy.iter().enumerate() {
            if stage.number as usize != i + 1 {
                bail!("destroy stage {} is numbered {}: number them 1, 2... in order", stage.name, stage.number);
            }
            for w in &stage.then_wait_for {
                if !KNOWN_WAITS.contains(&w.as_str()) {
                    bail!("destroy stage {}: unknown wait {w:?} (known: {})", stage.name, KNOWN_WAITS.join(", "));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for step in self.stages.iter().flat_map(|s| &s.steps) {
            if !seen.insert(step) {
                bail!("step {:?} appears twice in the plan", step.as_str());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_plan_is_the_seed_order() {
        let plan = StagePlan::load(&Fixtures::embedded(), DEFAULT_PLAN).unwrap();
        let names: Vec<_> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["infrastructure", "control-plane", "workloads"]);
        let pos = |step: StageStep| plan.stages.iter().position(|s| s.steps.contains(&step)).unwrap();
        assert!(pos(StageStep::Cacerts) < pos(StageStep::Istiod));
        assert!(pos(StageStep::LoadBalancerController) < pos(StageStep::Gateways));
        assert!(plan.stages[1].preconditions.iter().any(|p| p == "cacerts-present"));
        // The seed's destroy: the releases first, wait for the load balancers, then the rest.
        assert_eq!(plan.destroy.len(), 2);
        assert!(plan.destroy[0].terraform_targets.iter().any(|t| t == "helm_release.multicluster_deploy_1"));
        assert_eq!(plan.destroy[0].then_wait_for, ["no-load-balancers"]);
        assert!(plan.destroy[1].terraform_targets.is_empty());
    }

    #[test]
    fn a_plan_may_be_a_file_of_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(&path, "stages: [{number: 1, name: all, summary: s, steps: [vpcs]}]").unwrap();
        let plan = StagePlan::load(&Fixtures::embedded(), path.to_str().unwrap()).unwrap();
        assert_eq!(plan.stages[0].name, "all");
        assert!(StagePlan::load(&Fixtures::embedded(), "no/such/plan.yaml").is_err());
    }

    #[test]
    fn the_wrong_order_plan_loads_and_puts_istiod_first() {
        let plan = StagePlan::load(&Fixtures::embedded(), "plans/istiod-before-cacerts.yaml").unwrap();
        let pos = |step: StageStep| plan.stages.iter().position(|s| s.steps.contains(&step)).unwrap();
        assert!(pos(StageStep::Istiod) < pos(StageStep::Cacerts));
    }

    #[test]
    fn bad_numbering_unknown_preconditions_and_repeated_steps_are_refused() {
        let bad: StagePlan =
            serde_yaml::from_str("stages: [{number: 1, name: a, summary: s, steps: [vpcs, cacerts, vpcs]}]").unwrap();
        assert_eq!(bad.validate().unwrap_err().to_string(), "step \"vpcs\" appears twice in the plan");
        let bad: StagePlan = serde_yaml::from_str("stages: [{number: 2, name: a, summary: s, steps: []}]").unwrap();
        assert!(bad.validate().is_err());
        let bad: StagePlan =
            serde_yaml::from_str("stages: [{number: 1, name: a, summary: s, steps: [], preconditions: [luck]}]")
                .unwrap();
        assert!(bad.validate().unwrap_err().to_string().contains("unknown precondition"));
    }

    #[test]
    fn a_plan_with_an_unknown_step_is_refused_at_load_with_the_file_line_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(&path, "stages:\n  - number: 1\n    name: all\n    summary: s\n    steps: [vpcs, istio-d]\n")
            .unwrap();
        let e = StagePlan::load(&Fixtures::embedded(), path.to_str().unwrap()).unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.starts_with(&format!("{}:5: stages[0].steps[1]: unknown variant `istio-d`", path.display())),
            "{text}"
        );
        // The steps there are, in the plan's spelling, so the fix is in the message.
        for step in StageStep::ALL {
            assert!(text.contains(&format!("`{step}`")), "{step} missing from: {text}");
        }
    }

    #[test]
    fn every_step_reads_back_as_its_plan_spelling() {
        for step in StageStep::ALL {
            let read: StageStep = serde_yaml::from_str(step.as_str()).unwrap();
            assert_eq!(read, step);
        }
    }

    #[test]
    fn a_misspelt_plan_key_is_named_with_file_line_and_the_meant_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        std::fs::write(&path, "stages:\n  - number: 1\n    name: all\n    summary: s\n    steps: [vpcs]\n    precondition: [cacerts-present]\n")
            .unwrap();
        let e = StagePlan::load(&Fixtures::embedded(), path.to_str().unwrap()).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            format!("{}:6: unknown key `precondition` in stages[0]; did you mean `preconditions`?", path.display())
        );
    }
}
