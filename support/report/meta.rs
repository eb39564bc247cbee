//! run.json: what the Cucumber JSON does not say about a run. The target, the
//! tag expression, start and end, the versions seen, the scenarios left out
//! with their reasons, and the features as written (descriptions, every
//! scenario, step tables), so that the page shows the whole specification and
//! can be rendered again later from the reports alone.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use cucumber::feature::Ext as _;
use cucumber::gherkin;
use serde::{Deserialize, Serialize};

use super::versions::Versions;
use crate::runner::Excluded;

pub const FILE: &str = "run.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// twin, kind or eks ("unknown" when rendered without run.json).
    pub target: String,
    #[serde(default)]
    pub fault: Option<String>,
    /// The share of API requests the twin failed, slowed or cut on purpose (`--api-faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_faults: Option<crate::api_faults::ApiFaultRates>,
    /// The tag expression the run was narrowed with.
    #[serde(default)]
    pub tags: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub versions: Versions,
    #[serde(default)]
    pub excluded: Vec<Excluded>,
    #[serde(default)]
    pub features: Vec<FeatureDoc>,
    /// When the mesh reached each convergence point, and each failed check's time to diagnosis.
    #[serde(default)]
    pub convergence: super::convergence::Convergence,
    /// The run was stopped by a signal: scenarios not started are failed as not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDoc {
    pub name: String,
    /// The file, as given to the run.
    pub path: String,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub background: Vec<StepDoc>,
    /// Outlines expanded: one per example, as cucumber runs them.
    pub scenarios: Vec<ScenarioDoc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioDoc {
    pub name: String,
    /// The outline's own name, for a scenario expanded from one.
    pub outline: Option<String>,
    pub keyword: String,
    /// Its line (an example's row for an outline), as in the Cucumber JSON.
    pub line: usize,
    /// Feature, rule and scenario tags.
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub steps: Vec<StepDoc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDoc {
    pub keyword: String,
    pub text: String,
    pub line: usize,
    pub table: Option<Vec<Vec<String>>>,
    pub docstring: Option<String>,
}

fn step_doc(s: &gherkin::Step) -> StepDoc {
    StepDoc {
        keyword: s.keyword.trim().to_string(),
        text: s.value.clone(),
        line: s.position.line,
        table: s.table.as_ref().map(|t| t.rows.clone()),
        docstring: s.docstring.clone(),
    }
}

/// A description with its lines trimmed and its blank lines put back: the
/// parser drops them, and they separate paragraphs. `source` is the feature
/// file, `from` the line of the keyword the description follows.
fn clean(d: &Option<String>, source: &str, from: usize) -> Option<String> {
    let lines: Vec<&str> = d.as_deref()?.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = *lines.first()?;
    let mut out: Vec<&str> = Vec::new();
    let mut left = lines.len();
    let raw = source.lines().skip(from).map(str::trim).skip_while(|l| *l != first);
    for l in raw {
        if left == 0 {
            break;
        }
        if !l.is_empty() {
            left -= 1;
        }
        out.push(l);
    }
    // Without the source (or if it differs), the parser's lines as they are.
    if left > 0 || out.iter().filter(|l| !l.is_empty()).ne(lines.iter()) {
        return Some(lines.join("\n"));
    }
    Some(out.join("\n"))
}

/// A parsed feature as the page documents it.
pub fn feature_doc(template: &gherkin::Feature) -> Result<FeatureDoc> {
    let source = template.path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    let expanded = template.clone().expand_examples().map_err(|e| anyhow::anyhow!("{}: {e}", template.name))?;
    let outlines: Vec<&gherkin::Scenario> =
        template.scenarios.iter().chain(template.rules.iter().flat_map(|r| &r.scenarios)).collect();
    let mut scenarios = Vec::new();
    let mut add = |sc: &gherkin::Scenario, rule: Option<&gherkin::Rule>| {
        let outline = outlines.iter().find(|o| o.span.start == sc.span.start && !o.examples.is_empty());
        let tags = expanded.tags.iter().chain(rule.iter().flat_map(|r| &r.tags)).chain(&sc.tags).cloned().collect();
        scenarios.push(ScenarioDoc {
            name: sc.name.clone(),
            outline: outline.map(|o| o.name.clone()),
            keyword: sc.keyword.clone(),
            line: sc.position.line,
            tags,
            description: clean(&sc.description, &source, outline.map_or(sc.position.line, |o| o.position.line)),
            steps: rule
                .and_then(|r| r.background.as_ref())
                .into_iter()
                .flat_map(|b| &b.steps)
                .chain(&sc.steps)
                .map(step_doc)
                .collect(),
        });
    };
    for sc in &expanded.scenarios {
        add(sc, None);
    }
    for r in &expanded.rules {
        for sc in &r.scenarios {
            add(sc, Some(r));
        }
    }
    Ok(FeatureDoc {
        name: expanded.name.clone(),
        path: expanded.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        tags: expanded.tags.clone(),
        description: clean(&expanded.description, &source, expanded.position.line),
        background: expanded.background.iter().flat_map(|b| &b.steps).map(step_doc).collect(),
        scenarios,
    })
}

/// Every feature of a directory (or one file), as written.
pub fn feature_docs(path: &Path) -> Result<Vec<FeatureDoc>> {
    super::catalog::parse_features(path)?.iter().map(feature_doc).collect()
}

impl RunMeta {
    /// For rendering reports that come without run.json: only the features.
    pub fn unknown(features: Vec<FeatureDoc>) -> RunMeta {
        RunMeta {
            target: "unknown".into(),
            fault: None,
            api_faults: None,
            tags: None,
            started_at: None,
            finished_at: None,
            versions: Versions::default(),
            excluded: Vec::new(),
            features,
            convergence: Default::default(),
            interrupted: false,
        }
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let v = super::redact::redact(serde_json::to_value(self)?);
        std::fs::write(dir.join(FILE), serde_json::to_vec_pretty(&v)?).with_context(|| format!("cannot write {FILE}"))
    }

    pub fn read(path: &Path) -> Result<RunMeta> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not meshspec's run metadata", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines_expand_with_their_example_lines_and_tables_stay() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.feature");
        std::fs::write(
            &f,
            "@sync\nFeature: X\n  About X.\n\n  More.\n\n  Background:\n    Given a table:\n      | a |\n      | 1 |\n\n  \
             Scenario Outline: On <c>\n    Then <c> works\n\n    Examples:\n      | c |\n      | one |\n      | two |\n",
        )
        .unwrap();
        let docs = feature_docs(&f).unwrap();
        let d = &docs[0];
        assert_eq!(d.description.as_deref(), Some("About X.\n\nMore."));
        assert_eq!(d.background[0].table, Some(vec![vec!["a".to_string()], vec!["1".to_string()]]));
        let names: Vec<(&str, usize)> = d.scenarios.iter().map(|s| (s.name.as_str(), s.line)).collect();
        assert_eq!(names, vec![("On one", 17), ("On two", 18)]);
        assert_eq!(d.scenarios[0].outline.as_deref(), Some("On <c>"));
        assert_eq!(d.scenarios[1].steps[0].text, "two works");
        assert_eq!(d.scenarios[0].tags, vec!["sync".to_string()]);
    }
}
