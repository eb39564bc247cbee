//! The conformance report of a run (conformance.json and conformance.yaml):
//! the target, the versions seen, start and end, and per concern of the
//! runbook whether it passed, failed or was skipped, with its scenario counts.
//! A concern whose scenarios all were left out (for the target, or by tags)
//! is skipped, with the reasons.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::{Outcome, Report};
use super::versions::Versions;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Concern {
    /// passed, failed or skipped.
    pub status: &'static str,
    pub scenarios: Counts,
    /// Why scenarios of this concern did not run, each reason once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_because: Vec<String>,
    /// The failed scenarios, as `feature / scenario`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_scenarios: Vec<String>,
}

/// The runbook's concerns, in the runbook's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Concerns {
    pub provisioning: Concern,
    pub ordering: Concern,
    pub readiness: Concern,
    pub sync: Concern,
    pub load_balancing: Concern,
    pub destroy: Concern,
    pub diagnosis: Concern,
}

#[derive(Clone, Debug, Serialize)]
pub struct Conformance {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    pub versions: Versions,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// passed only if every scenario that ran passed.
    pub outcome: &'static str,
    pub concerns: Concerns,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<crate::checks::check::Diagnosis>,
}

fn concern(report: &Report, name: &str) -> Concern {
    let mut c = Concern {
        status: "skipped",
        scenarios: Counts::default(),
        skipped_because: Vec::new(),
        failed_scenarios: Vec::new(),
    };
    let mut any = false;
    for (f, s) in report.scenarios().filter(|(f, _)| f.concern.as_deref() == Some(name)) {
        any = true;
        match s.outcome {
            Outcome::Passed => c.scenarios.passed += 1,
            Outcome::Failed => {
                c.scenarios.failed += 1;
                c.failed_scenarios.push(format!("{} / {}", f.name, s.name));
            }
            Outcome::Skipped => {
                c.scenarios.skipped += 1;
                let why = s.not_run.clone().unwrap_or_else(|| "a step was skipped".to_string());
                if !c.skipped_because.contains(&why) {
                    c.skipped_because.push(why);
                }
            }
        }
    }
    if !any {
        c.skipped_because.push(format!("no feature tagged @{name}"));
    }
    c.status = if c.scenarios.failed > 0 {
        "failed"
    } else if c.scenarios.passed > 0 {
        "passed"
    } else {
        "skipped"
    };
    c
}

pub fn of(report: &Report) -> Conformance {
    let m = &report.meta;
    Conformance {
        target: m.target.clone(),
        fault: m.fault.clone(),
        tags: m.tags.clone(),
        versions: m.versions.clone(),
        started_at: m.started_at,
        finished_at: m.finished_at,
        outcome: report.outcome().as_str(),
        concerns: Concerns {
            provisioning: concern(report, "provisioning"),
            ordering: concern(report, "ordering"),
            readiness: concern(report, "readiness"),
            sync: concern(report, "sync"),
            load_balancing: concern(report, "load_balancing"),
            destroy: concern(report, "destroy"),
            diagnosis: concern(report, "diagnosis"),
        },
        diagnoses: report.diagnoses(),
    }
}

// Serialized from the structs, not through serde_json::Value, to keep the
// concerns in the runbook's order; every string in them was redacted on its
// way into the model (evidence, errors, versions).
impl Conformance {
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    pub fn yaml(&self) -> Result<String> {
        Ok(serde_yaml::to_string(self)?)
    }

    /// Write conformance.json and conformance.yaml; returns the JSON's path.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf> {
        let json = dir.join("conformance.json");
        std::fs::write(&json, self.json()?).context("cannot write conformance.json")?;
        std::fs::write(dir.join("conformance.yaml"), self.yaml()?).context("cannot write conformance.yaml")?;
        Ok(json)
    }
}
