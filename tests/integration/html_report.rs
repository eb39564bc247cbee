//! The page of twin runs, as a real browser renders it: headless Chromium
//! (Debian's `chromium`, which scripts/test installs) loads report.html from
//! disk, and the test reads the DOM the browser built: every feature is there,
//! the charts are SVG with data (the traffic probe's timeline among them), a
//! failed run shows its diagnosis. It also
//! saves screenshots under target/meshspec/ for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::harness::{run_bounded, text, whole_runs};

/// Chromium, from $CHROMIUM or the PATH. Its absence fails the test.
fn chromium() -> PathBuf {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join("chromium")).find(|p| p.exists())
    });
    match found {
        Some(p) if p.exists() => p,
        _ => panic!("chromium is not installed: scripts/test installs it (apt-get install chromium); without it the page is untested"),
    }
}

/// Headless Chromium on a file, with a fresh profile and no network use of its own.
fn browser(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "chromium failed on {}: {}", page.display(), text(&out.stderr));
    out
}

/// The DOM as the browser built it from the page.
fn dom(page: &Path) -> String {
    let dom = text(&browser(page, &["--dump-dom"]).stdout);
    assert!(dom.contains("</html>"), "chromium printed no DOM for {}: {dom}", page.display());
    dom
}

fn screenshot(page: &Path, png: &Path) {
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(png);
    browser(page, &[&format!("--screenshot={}", png.display()), "--window-size=1280,4000"]);
    let bytes = std::fs::read(png).unwrap_or_default();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000, "no real screenshot at {}", png.display());
}

fn meshspec(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("MESHSPEC_PROGRESS", "off").args(args);
    run_bounded(&mut cmd, Duration::from_secs(300))
}

/// Every `<svg class="chart distribution" ...>...</svg>` of a DOM: (requests, [(version, count)]).
fn distributions(dom: &str) -> Vec<(usize, Vec<(String, usize)>)> {
    let svg =
        regex::Regex::new(r#"(?s)<svg class="chart distribution"[^>]*data-requests="(\d+)"[^>]*>(.*?)</svg>"#).unwrap();
    let bar = regex::Regex::new(r#"<rect class="bar[^"]*" data-version="([^"]+)" data-count="(\d+)""#).unwrap();
    svg.captures_iter(dom)
        .map(|c| {
            let bars = bar.captures_iter(&c[2]).map(|b| (b[1].to_string(), b[2].parse().unwrap())).collect();
            (c[1].parse().unwrap(), bars)
        })
        .collect()
}

/// A probe chart of a DOM: its rows, its requests as (cluster, version or "error"), its marks.
#[derive(Debug)]
struct ProbeChart {
    declared: usize,
    rows: Vec<String>,
    requests: Vec<(String, String)>,
    marks: Vec<String>,
}

fn probe_charts(dom: &str) -> Vec<ProbeChart> {
    let svg = regex::Regex::new(r#"(?s)<svg class="chart probe"[^>]*data-requests="(\d+)"[^>]*>(.*?)</svg>"#).unwrap();
    let row = regex::Regex::new(r#"<rect class="track" data-row="([^"]+)""#).unwrap();
    let request = regex::Regex::new(
        r#"<rect class="req(?: error)?" (?:data-version="([^"]+)"|data-error="true") data-cluster="([^"]+)""#,
    )
    .unwrap();
    let mark = regex::Regex::new(r#"<g class="mark" data-mark="([^"]+)""#).unwrap();
    svg.captures_iter(dom)
        .map(|c| ProbeChart {
            declared: c[1].parse().unwrap(),
            rows: row.captures_iter(&c[2]).map(|r| r[1].to_string()).collect(),
            requests: request
                .captures_iter(&c[2])
                .map(|r| (r[2].to_string(), r.get(1).map_or("error", |v| v.as_str()).to_string()))
                .collect(),
            marks: mark.captures_iter(&c[2]).map(|m| m[1].to_string()).collect(),
        })
        .collect()
}

#[test]
fn the_page_of_a_twin_run_in_a_browser_shows_every_feature_its_charts_and_a_failures_diagnosis() {
    // Missing chromium fails the test before the runs.
    chromium();
    let _turn = whole_runs();
    let dir = tempfile::tempdir().unwrap();
    let (ok, bad, docs) = (dir.path().join("ok"), dir.path().join("bad"), dir.path().join("docs"));
    let trend = dir.path().join("trend.jsonl");
    let p = |p: &Path| p.to_str().unwrap().to_string();

    let run = meshspec(&["run", "--tags", "not @diagnosis", "--report-dir", &p(&ok), "--trend", &p(&trend)]);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", text(&run.stderr));
    assert!(stdout.contains(&format!("reports: {}", ok.join("report.html").display())), "{stdout}");
    let failed = meshspec(&[
        "run",
        "--fault",
        "bad-reader-token",
        "--tags",
        "@sync",
        "--timeout-scale",
        "0.2",
        "--report-dir",
        &p(&bad),
        "--trend",
        &p(&trend),
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stdout));

    // The passing run, as the browser sees it.
    let page = dom(&ok.join("report.html"));
    assert!(page.contains(r#"data-outcome="passed""#));
    let features =
        meshspec::report::catalog::parse_features(&Path::new(env!("CARGO_MANIFEST_DIR")).join("features")).unwrap();
    assert_eq!(features.len(), 8);
    for f in &features {
        assert!(page.contains(&format!(r#"data-feature="{}""#, f.name)), "the page lacks the feature {}", f.name);
    }
    let charts = distributions(&page);
    assert_eq!(
        charts.len(),
        4,
        "one distribution per sending step (two load-balancing outlines, one ordering scenario, the operations \
         negative with an intermediate from another root)"
    );
    for (requests, bars) in &charts {
        assert_eq!(bars.iter().map(|(_, n)| n).sum::<usize>(), *requests, "{bars:?}");
        assert!(*requests > 0);
    }
    assert!(
        charts
            .iter()
            .filter(|(_, bars)| bars.iter().filter(|(v, n)| v.starts_with('v') && *n > 0).count() == 2)
            .count()
            >= 2,
        "both versions answered from both clusters: {charts:?}"
    );
    // The traffic probe's timeline: a row per cluster, every request coloured by
    // the version that answered, the scenario's mark as a named line.
    let probes = probe_charts(&page);
    let feature = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/features/operations.feature")).unwrap();
    let started = feature.lines().filter(|l| l.contains("a traffic probe runs from every cluster's sleep pod")).count();
    assert_eq!(probes.len(), started, "a probe timeline per scenario of operations.feature that starts one");
    let probe = probes.iter().find(|p| p.marks == ["20 answers each"]).expect("the undisturbed baseline's timeline");
    assert_eq!(probe.requests.len(), probe.declared, "{probe:?}");
    for cluster in ["eks-1", "eks-2"] {
        assert!(probe.rows.iter().any(|r| r == cluster), "a row for {cluster}: {probe:?}");
        let answered: std::collections::BTreeSet<&str> =
            probe.requests.iter().filter(|(c, _)| c == cluster).map(|(_, v)| v.as_str()).collect();
        assert_eq!(answered, ["v1", "v2"].into(), "{cluster} answered by both versions, no error: {probe:?}");
        assert!(probe.requests.iter().filter(|(c, _)| c == cluster).count() >= 20, "{probe:?}");
    }
    assert_eq!(probe.marks, ["20 answers each"], "{probe:?}");
    let stages = regex::Regex::new(r#"<rect class="bar stage" data-stage="(\d)" data-name="([a-z-]+)""#).unwrap();
    let timeline: Vec<String> = stages.captures_iter(&page).map(|c| format!("{} {}", &c[1], &c[2])).collect();
    assert!(
        timeline.starts_with(&["1 infrastructure".into(), "2 control-plane".into(), "3 workloads".into()]),
        "{timeline:?}"
    );
    assert!(page.contains(r#"<table class="endpoints">"#) && page.contains(r#"data-state="healthy""#));
    assert!(page.contains("v1.28.15-eks"), "the Kubernetes version seen");

    // The failing run shows the diagnosis and the evidence bundle.
    let failure = dom(&bad.join("report.html"));
    assert!(failure.contains(r#"data-outcome="failed""#));
    let why = failure.split(r#"<section class="diagnoses""#).nth(1).expect("a section that says why the run failed");
    assert!(why.contains("diagnosis:") && why.contains("rejects the remote secret"), "{}", &why[..why.len().min(2000)]);
    assert!(failure.contains("Evidence bundle of the failure"));

    // `meshspec docs` renders the same page from the reports, and the step catalog.
    let d = meshspec(&["docs", "--from", &p(&ok), "--out", &p(&docs)]);
    assert!(d.status.success(), "{}", text(&d.stderr));
    assert_eq!(std::fs::read(docs.join("report.html")).unwrap(), std::fs::read(ok.join("report.html")).unwrap());
    assert!(std::fs::read_to_string(docs.join("steps.md")).unwrap().contains("### Given `the mesh topology:`"));

    // Both runs appended to one trend file; the conformance reports say what ran.
    let lines = meshspec::report::trend::read(&trend).unwrap();
    assert_eq!(lines.iter().map(|l| l.outcome.as_str()).collect::<Vec<_>>(), ["passed", "failed"]);
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ok.join("conformance.json")).unwrap()).unwrap();
    for concern in ["provisioning", "ordering", "readiness", "sync", "load_balancing", "destroy"] {
        assert_eq!(c["concerns"][concern]["status"], "passed", "{concern}: {}", c["concerns"][concern]);
    }
    assert_eq!(c["concerns"]["diagnosis"]["status"], "skipped");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bad.join("conformance.json")).unwrap()).unwrap();
    assert_eq!(
        (c["concerns"]["sync"]["status"].as_str(), c["concerns"]["readiness"]["status"].as_str()),
        (Some("failed"), Some("skipped"))
    );

    // For a person: what the pages look like.
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/meshspec");
    screenshot(&ok.join("report.html"), &shots.join("report.png"));
    screenshot(&bad.join("report.html"), &shots.join("report-failed.png"));
}
