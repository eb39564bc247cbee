//! The documents of a run, written once its Cucumber JSON carries the
//! evidence: run.json, the page, the conformance report (JSON and YAML) and
//! one more line of the trend file. And what `meshspec docs` writes: the page
//! again from a previous run's reports, and the step catalog.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::meta::{self, RunMeta};
use super::{catalog, conformance, html, model, trend, versions};
use crate::run::Session;
use crate::runner::Excluded;

/// What the runner knows of the run besides the reports.
pub struct RunFacts<'a> {
    pub tags: Option<String>,
    pub started_at: DateTime<Utc>,
    pub excluded: &'a [Excluded],
    pub features: &'a Path,
    /// The trend file (None: $MESHSPEC_TREND or the report dir's trend.jsonl).
    pub trend: Option<&'a Path>,
    pub interrupted: bool,
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
    let clock = std::time::Instant::now();
    let features = meta::feature_docs(facts.features).unwrap_or_else(|e| {
        // cucumber reports a feature that does not parse; the page then shows what ran.
        tracing::warn!("the page lacks the features' text: {e:#}");
        Vec::new()
    });
    let meta = RunMeta {
        target: session.kind.to_string(),
        fault: session.fault.map(|f| f.name().to_string()),
        api_faults: session.api_fault_rate,
        tags: facts.tags,
        started_at: Some(facts.started_at),
        finished_at: Some(finished_at),
        versions: versions::collect(session).await,
        excluded: facts.excluded.to_vec(),
        features,
        convergence: session.run.convergence.snapshot(),
        interrupted: facts.interrupted,
    };
    let versions_read = clock.elapsed();
    let written = write(meta, report_dir, facts.trend);
    tracing::debug!(?versions_read, total = ?clock.elapsed(), "the documents of the run are written");
    written
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reports")
    }

    fn fixture_report() -> model::Report {
        let json = std::fs::read_to_string(fixtures().join("cucumber.json")).unwrap();
        model::join(&json, RunMeta::read(&fixtures().join("run.json")).unwrap()).unwrap()
    }

    /// Compare with a golden file, or rewrite it when MESHSPEC_BLESS is set.
    fn golden(name: &str, got: &str) {
        let path = fixtures().join(name);
        if std::env::var_os("MESHSPEC_BLESS").is_some() {
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            let line = want.lines().zip(got.lines()).position(|(a, b)| a != b).unwrap_or(want.lines().count());
            let at = |t: &str| t.lines().nth(line).unwrap_or("<end>").chars().take(300).collect::<String>();
            panic!(
                "{name} differs from its golden file at line {}:\n  golden: {}\n  now:    {}\n\
                 (MESHSPEC_BLESS=1 cargo test --lib golden rewrites it after an intended change)",
                line + 1,
                at(&want),
                at(got)
            );
        }
    }

    #[test]
    fn golden_page_conformance_and_trend_of_the_fixture() {
        let report = fixture_report();
        golden("report.html", &html::page(&report));
        let c = conformance::of(&report);
        golden("conformance.json", &c.json().unwrap());
        golden("conformance.yaml", &c.yaml().unwrap());
        golden("trend.jsonl", &(serde_json::to_string(&trend::line(&report)).unwrap() + "\n"));
    }

    #[test]
    fn the_fixture_page_shows_what_the_run_saw() {
        let page = html::page(&fixture_report());
        for f in ["Cross-cluster endpoint sync", "Cross-cluster load balancing", "East-west gateway readiness"] {
            assert!(page.contains(&format!("data-feature=\"{f}\"")), "{f}");
        }
        assert!(page.contains("<section class=\"diagnoses\""));
        assert!(page.contains("rejects the remote secret&#39;s token"));
        assert!(page.contains("data-evidence=\"failure bundle\""));
        assert!(page.contains("<svg class=\"chart distribution\""));
        assert!(page.contains("<rect class=\"bar stage\" data-stage=\"3\""));
        assert!(page.contains("data-state=\"healthy\""));
        assert!(page.contains("Not run: @aws"));
        assert!(page.contains("unavailable: eks DescribeCluster eks-2"));
    }

    #[test]
    fn the_page_loads_nothing_from_anywhere() {
        let page = html::page(&fixture_report());
        for bad in ["src=", "href=\"http", "<link", "<script", "url(", "@import", "<iframe", "<img"] {
            assert!(!page.contains(bad), "the page has {bad:?}");
        }
        for href in page.split("href=\"").skip(1) {
            assert!(href.starts_with('#'), "a link leaves the page: {}", &href[..href.len().min(80)]);
        }
    }

    #[test]
    fn markup_and_credentials_from_a_run_do_not_reach_the_page() {
        use base64::Engine;
        let key = format!("-----BEGIN {} KEY-----\nMIIE", "PRIVATE");
        let evidence = serde_json::json!({"user": {"token": "abc123"}, "note": "Bearer abc123", "pem": key});
        let json = serde_json::json!([{
            "uri": "features/x.feature", "keyword": "Feature", "name": "X <script>alert(1)</script>", "tags": [],
            "elements": [{"type": "scenario", "keyword": "Scenario", "id": "x", "line": 3, "name": "S", "tags": [],
                "steps": [{"keyword": "Then ", "line": 4, "name": "it <b>works</b>",
                    "result": {"status": "failed", "duration": 5,
                               "error_message": format!("diagnosis: the <i>cause</i>; fix: x\n{key}\nAuthorization: Bearer abc123")},
                    "embeddings": [{"mime_type": "application/json", "name": "<img src=x>",
                        "data": base64::engine::general_purpose::STANDARD.encode(evidence.to_string())},
                        {"mime_type": "application/json", "name": "diagnosis",
                        "data": base64::engine::general_purpose::STANDARD.encode(
                            serde_json::json!({"cause": "the <i>cause</i>", "fix": "x"}).to_string())}]}]}]
        }]);
        let report = model::join(&json.to_string(), RunMeta::unknown(Vec::new())).unwrap();
        let page = html::page(&report);
        for bad in ["<script", "<b>", "<i>", "<img", "abc123", "PRIVATE KEY"] {
            assert!(!page.contains(bad), "the page has {bad:?}");
        }
        assert!(page.contains("it &lt;b&gt;works&lt;/b&gt;"));
        assert!(page.contains("<strong>diagnosis:</strong> the &lt;i&gt;cause&lt;/i&gt;"));
    }

    #[test]
    fn the_documents_of_a_run_land_in_the_report_dir_and_the_trend_grows() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures().join("cucumber.json"), dir.path().join("cucumber.json")).unwrap();
        let meta = RunMeta::read(&fixtures().join("run.json")).unwrap();
        let trend = dir.path().join("t/trend.jsonl");
        let first = write(meta.clone(), dir.path(), Some(&trend)).unwrap();
        write(meta, dir.path(), Some(&trend)).unwrap();
        assert_eq!(trend::read(&first.trend).unwrap().len(), 2);
        let conformance: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&first.conformance).unwrap()).unwrap();
        assert_eq!(conformance["concerns"]["sync"]["status"], "failed");
        assert_eq!(conformance["outcome"], "failed");
        // The page from the written reports is the one the run wrote.
        let again = page(dir.path(), Path::new("no-features-needed")).unwrap();
        assert_eq!(again, std::fs::read_to_string(&first.page).unwrap());
    }
}
