//! A run as the documents show it: the Cucumber JSON (results, durations, the
//! evidence embedded in steps) joined with run.json (the features as written,
//! what was left out and why). The page, the conformance report and the trend
//! line are all rendered from this, so that they cannot disagree.

use std::path::Path;

use crate::checks::check::Diagnosis;
use anyhow::{Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::meta::{FeatureDoc, RunMeta, ScenarioDoc, StepDoc};
use super::redact;

/// The concerns of the runbook, each a feature tag.
pub const CONCERNS: &[&str] =
    &["provisioning", "ordering", "readiness", "sync", "load_balancing", "destroy", "diagnosis"];

// The Cucumber JSON as cucumber's writer emits it (fields it may omit default).
#[derive(Debug, Deserialize)]
struct JFeature {
    #[serde(default)]
    uri: Option<String>,
    name: String,
    #[serde(default)]
    tags: Vec<JTag>,
    #[serde(default)]
    elements: Vec<JElement>,
}

#[derive(Debug, Deserialize)]
struct JTag {
    name: String,
}

#[derive(Debug, Deserialize)]
struct JElement {
    #[serde(default)]
    r#type: String,
    #[serde(default)]
    keyword: String,
    #[serde(default)]
    line: usize,
    name: String,
    #[serde(default)]
    tags: Vec<JTag>,
    #[serde(default)]
    steps: Vec<JStep>,
    #[serde(default)]
    before: Vec<JHook>,
    #[serde(default)]
    after: Vec<JHook>,
}

#[derive(Debug, Deserialize)]
struct JHook {
    result: JResult,
}

#[derive(Debug, Deserialize)]
struct JStep {
    #[serde(default)]
    keyword: String,
    #[serde(default)]
    line: usize,
    name: String,
    result: JResult,
    #[serde(default)]
    embeddings: Vec<JEmbedding>,
}

#[derive(Debug, Deserialize)]
struct JResult {
    status: String,
    #[serde(default)]
    duration: u64,
    #[serde(default)]
    error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JEmbedding {
    data: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run: left out for the target, filtered out by tags, or skipped.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub name: String,
    pub data: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub keyword: String,
    pub text: String,
    pub line: usize,
    /// passed, failed, skipped, undefined, ambiguous; "not run" when the scenario did not run.
    pub status: String,
    pub duration_ns: u64,
    pub error: Option<String>,
    pub table: Option<Vec<Vec<String>>>,
    pub docstring: Option<String>,
    pub evidence: Vec<Evidence>,
    pub background: bool,
}

impl StepReport {
    /// The typed diagnoses the step attached when it failed.
    pub fn diagnoses(&self) -> Vec<Diagnosis> {
        self.evidence
            .iter()
            .filter(|e| e.name == crate::steps::DIAGNOSIS_EVIDENCE)
            .filter_map(|e| serde_json::from_value(e.data.clone()).ok())
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub keyword: String,
    pub line: usize,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub outcome: Outcome,
    /// Why it did not run, when it did not.
    pub not_run: Option<String>,
    /// Steps and hooks, in nanoseconds.
    pub duration_ns: u64,
    pub steps: Vec<StepReport>,
    /// Failed hooks' messages.
    pub hook_errors: Vec<String>,
}

impl ScenarioReport {
    pub fn failed_steps(&self) -> impl Iterator<Item = &StepReport> {
        self.steps.iter().filter(|s| s.status == "failed" || s.status == "undefined" || s.status == "ambiguous")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FeatureReport {
    pub name: String,
    pub path: String,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// The concern tag of the feature, if it has one.
    pub concern: Option<String>,
    pub scenarios: Vec<ScenarioReport>,
}

impl FeatureReport {
    pub fn count(&self, o: Outcome) -> usize {
        self.scenarios.iter().filter(|s| s.outcome == o).count()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub meta: RunMeta,
    pub features: Vec<FeatureReport>,
}

impl Report {
    pub fn scenarios(&self) -> impl Iterator<Item = (&FeatureReport, &ScenarioReport)> {
        self.features.iter().flat_map(|f| f.scenarios.iter().map(move |s| (f, s)))
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.features.iter().map(|f| f.count(o)).sum()
    }

    /// Passed only if something ran and nothing failed.
    pub fn outcome(&self) -> Outcome {
        if self.count(Outcome::Failed) > 0 {
            Outcome::Failed
        } else if self.count(Outcome::Passed) > 0 {
            Outcome::Passed
        } else {
            Outcome::Skipped
        }
    }

    /// Every diagnosis of the run's failed steps, each once, in page order.
    pub fn diagnoses(&self) -> Vec<Diagnosis> {
        let mut out: Vec<Diagnosis> = Vec::new();
        for (_, s) in self.scenarios() {
            for d in s.failed_steps().flat_map(|st| st.diagnoses()) {
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        out
    }

    pub fn wall_time_s(&self) -> Option<f64> {
        let (s, f) = (self.meta.started_at?, self.meta.finished_at?);
        Some((f - s).num_milliseconds() as f64 / 1000.0)
    }
}

fn concern_of(tags: &[String]) -> Option<String> {
    tags.iter().map(|t| t.trim_start_matches('@')).find(|t| CONCERNS.contains(t)).map(str::to_string)
}

fn decode(e: &JEmbedding) -> Evidence {
    let bytes = base64::engine::general_purpose::STANDARD.decode(e.data.trim()).unwrap_or_default();
    let data = if e.mime_type.contains("json") {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    let name =
        e.name.clone().unwrap_or_else(|| if e.mime_type.contains("log") { "log".into() } else { e.mime_type.clone() });
    // The evidence was redacted when it was attached; a report from elsewhere may not be.
    Evidence { name, data: redact::redact(data) }
}

fn step_report(s: &JStep, doc: Option<&StepDoc>, background: bool) -> StepReport {
    StepReport {
        keyword: s.keyword.trim().to_string(),
        text: s.name.clone(),
        line: s.line,
        status: s.result.status.clone(),
        duration_ns: s.result.duration,
        error: s.result.error_message.as_deref().map(clean_error),
        table: doc.and_then(|d| d.table.clone()),
        docstring: doc.and_then(|d| d.docstring.clone()),
        evidence: s.embeddings.iter().map(decode).collect(),
        background,
    }
}

/// cucumber's failure text without its framing (the match location, "Step panicked").
fn clean_error(e: &str) -> String {
    let e = redact::redact_lines(e);
    let mut lines: Vec<&str> = e.lines().collect();
    if lines.first().is_some_and(|l| l.starts_with("Matched: ")) {
        lines.remove(0);
    }
    let text = lines.join("\n");
    text.strip_prefix("Step panicked. Captured output: ").unwrap_or(&text).to_string()
}

fn unrun_step(d: &StepDoc, background: bool) -> StepReport {
    StepReport {
        keyword: d.keyword.clone(),
        text: d.text.clone(),
        line: d.line,
        status: "not run".into(),
        duration_ns: 0,
        error: None,
        table: d.table.clone(),
        docstring: d.docstring.clone(),
        evidence: Vec::new(),
        background,
    }
}

fn scenario_report(meta: &RunMeta, f: &FeatureDoc, sc: &ScenarioDoc, elements: &[&JElement]) -> ScenarioReport {
    let doc_step = |line: usize| f.background.iter().chain(&sc.steps).find(|d| d.line == line);
    let mine: Vec<&&JElement> = elements.iter().filter(|e| e.name == sc.name && e.line == sc.line).collect();
    if mine.is_empty() {
        let reason = meta
            .excluded
            .iter()
            .find(|x| x.feature == f.name && (x.scenario == sc.name || Some(&x.scenario) == sc.outline.as_ref()))
            .map(|x| x.reason.clone())
            .unwrap_or_else(|| match &meta.tags {
                Some(t) => format!("filtered out by the tag expression {t}"),
                None => "not run".to_string(),
            });
        return ScenarioReport {
            name: sc.name.clone(),
            keyword: sc.keyword.clone(),
            line: sc.line,
            tags: sc.tags.clone(),
            description: sc.description.clone(),
            outcome: Outcome::Skipped,
            not_run: Some(reason),
            duration_ns: 0,
            steps: f
                .background
                .iter()
                .map(|d| unrun_step(d, true))
                .chain(sc.steps.iter().map(|d| unrun_step(d, false)))
                .collect(),
            hook_errors: Vec::new(),
        };
    }
    let mut steps = Vec::new();
    let mut hooks = Vec::new();
    for kind in ["background", "scenario"] {
        for e in mine.iter().filter(|e| e.r#type == kind) {
            steps.extend(e.steps.iter().map(|s| step_report(s, doc_step(s.line), kind == "background")));
            hooks.extend(e.before.iter().chain(&e.after));
        }
    }
    let failed = steps.iter().any(|s| matches!(s.status.as_str(), "failed" | "undefined" | "ambiguous"))
        || hooks.iter().any(|h| h.result.status != "passed");
    let skipped = steps.iter().any(|s| s.status == "skipped") || steps.is_empty();
    let duration_ns =
        steps.iter().map(|s| s.duration_ns).sum::<u64>() + hooks.iter().map(|h| h.result.duration).sum::<u64>();
    let keyword = mine.iter().find(|e| e.r#type == "scenario").map(|e| e.keyword.clone()).unwrap_or(sc.keyword.clone());
    ScenarioReport {
        name: sc.name.clone(),
        keyword,
        line: sc.line,
        tags: sc.tags.clone(),
        description: sc.description.clone(),
        outcome: if failed {
            Outcome::Failed
        } else if skipped {
            Outcome::Skipped
        } else {
            Outcome::Passed
        },
        not_run: None,
        duration_ns,
        steps,
        hook_errors: hooks.iter().filter_map(|h| h.result.error_message.as_deref().map(clean_error)).collect(),
    }
}

/// The documents' model of a run: every feature of run.json, in its order,
/// with the results of the Cucumber JSON; features the JSON has that run.json
/// lacks are added from the JSON alone.
pub fn join(cucumber_json: &str, mut meta: RunMeta) -> Result<Report> {
    let json: Vec<JFeature> = serde_json::from_str(cucumber_json).context("the Cucumber JSON does not parse")?;
    for jf in &json {
        if !meta.features.iter().any(|f| f.name == jf.name) {
            meta.features.push(doc_from_json(jf));
        }
    }
    let mut features = Vec::new();
    for f in &meta.features {
        let elements: Vec<&JElement> = json.iter().filter(|j| j.name == f.name).flat_map(|j| &j.elements).collect();
        features.push(FeatureReport {
            name: f.name.clone(),
            path: f.path.clone(),
            tags: f.tags.clone(),
            description: f.description.clone(),
            concern: concern_of(&f.tags),
            scenarios: f.scenarios.iter().map(|sc| scenario_report(&meta, f, sc, &elements)).collect(),
        });
    }
    Ok(Report { meta, features })
}

/// A feature known only from the Cucumber JSON (no descriptions, no tables).
fn doc_from_json(jf: &JFeature) -> FeatureDoc {
    let mut scenarios: Vec<ScenarioDoc> = Vec::new();
    for e in jf.elements.iter().filter(|e| e.r#type == "scenario") {
        if scenarios.iter().any(|s| s.name == e.name && s.line == e.line) {
            continue;
        }
        scenarios.push(ScenarioDoc {
            name: e.name.clone(),
            outline: None,
            keyword: e.keyword.clone(),
            line: e.line,
            tags: jf.tags.iter().chain(&e.tags).map(|t| t.name.clone()).collect(),
            description: None,
            steps: Vec::new(),
        });
    }
    FeatureDoc {
        name: jf.name.clone(),
        path: jf.uri.clone().unwrap_or_default(),
        tags: jf.tags.iter().map(|t| t.name.clone()).collect(),
        description: None,
        background: Vec::new(),
        scenarios,
    }
}

/// The model of the reports in a directory (or of one Cucumber JSON file):
/// run.json beside it when there is one, else the features in `features`.
pub fn load(from: &Path, features: Option<&Path>) -> Result<Report> {
    let json_path = if from.is_dir() { from.join("cucumber.json") } else { from.to_path_buf() };
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("no run to render: cannot read {}", json_path.display()))?;
    let meta_path = json_path.with_file_name(super::meta::FILE);
    let meta = if meta_path.exists() {
        RunMeta::read(&meta_path)?
    } else {
        match features.filter(|f| f.exists()) {
            Some(dir) => RunMeta::unknown(super::meta::feature_docs(dir)?),
            None => RunMeta::unknown(Vec::new()),
        }
    };
    join(&text, meta)
}
