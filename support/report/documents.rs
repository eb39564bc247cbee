//! The documents of a run, written once its Cucumber JSON carries the
//! evidence: run.json, the page, the conformance report (JSON and YAML) and
//! one more line of the trend file. And what `meshspec docs` writes: the page
//! again from a previous run's reports, and the step catalog.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::meta::{self, RunMeta};
use super::{catalog, conformance, html, model, trend, versions};
use crate::runner::Excluded;
use crate::target::Session;

/// What the runner knows of the run besides the reports.
pub struct RunFacts<'a> {
    pub tags: Option<String>,
    pub started_at: DateTime<Utc>,
    pub excluded: &'a [Excluded],
    pub features: &'a Path,
    /// The trend file (None: $MESHSPEC_TREND or the report dir's trend.jsonl).
    pub trend: Option<&'a Path>,
}

/// Where the documents went.
#[derive(Clone, Debug)]
pub struct Written {
    pub page: PathBuf,
    pub conformance: PathBuf,
    pub trend: PathBuf,
}

/// After a run, with the session still open (the versions are read through it).
pub async fn after_run(session: &Session, facts: RunFacts<'_>, report_dir: &Path) -> Result<Written> {
    let finished_at = Utc::now();
    let features = meta::feature_docs(facts.features).unwrap_or_else(|e| {
        // cucumber reports a feature that does not parse; the page then shows what ran.
        tracing::warn!("the page lacks the features' text: {e:#}");
        Vec::new()
    });
    let meta = RunMeta {
        target: session.kind.to_string(),
        fault: session.fault.map(|f| f.name().to_string()),
        tags: facts.tags,
        started_at: Some(facts.started_at),
        finished_at: Some(finished_at),
        versions: versions::collect(session).await,
        excluded: facts.excluded.to_vec(),
        features,
    };
    write(meta, report_dir, facts.trend)
}

/// The documents of a run from its metadata and the Cucumber JSON in `report_dir`.
pub fn write(mut meta: RunMeta, report_dir: &Path, trend: Option<&Path>) -> Result<Written> {
    meta.finished_at.get_or_insert_with(Utc::now);
    meta.write(report_dir)?;
    let json =
        std::fs::read_to_string(report_dir.join("cucumber.json")).context("cannot read the Cucumber JSON report")?;
    let report = model::join(&json, meta)?;
    let page = report_dir.join(html::FILE);
    std::fs::write(&page, html::page(&report)).with_context(|| format!("cannot write {}", page.display()))?;
    let conformance = conformance::of(&report).write(report_dir)?;
    let trend = trend::path(trend, report_dir);
    trend::append(&trend, &trend::line(&report))?;
    Ok(Written { page, conformance, trend })
}

/// The page of a previous run: `from` is its report directory or its
/// cucumber.json; without run.json beside it, the features come from `features`.
pub fn page(from: &Path, features: &Path) -> Result<String> {
    Ok(html::page(&model::load(from, Some(features))?))
}

/// The step catalog as HTML and Markdown, in `out` (steps.html, steps.md).
pub fn catalog(features: &Path, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let c = catalog::build(&catalog::parse_features(features)?)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (h, m) = (out.join("steps.html"), out.join("steps.md"));
    std::fs::write(&h, c.html()).with_context(|| format!("cannot write {}", h.display()))?;
    std::fs::write(&m, c.markdown()).with_context(|| format!("cannot write {}", m.display()))?;
    Ok((h, m))
}
