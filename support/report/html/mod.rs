//! The living documentation of a run: one self-contained HTML page (inline
//! CSS, inline SVG, no script, nothing loaded from anywhere) with every
//! feature as written, each scenario's result, each step's status, duration
//! and evidence, the diagnosis of each failure, and the target and versions.
//! Rendered from the documents' model only (Cucumber JSON + run.json), so
//! that `meshspec run` and `meshspec docs` give the same page.

pub mod escape;
pub mod evidence;
pub mod svg;

use escape::{description, esc, slug, text_with_code};

use super::conformance::{self, Concern};
use super::convergence::{point_label, Convergence};
use super::model::{Outcome, Report, ScenarioReport, StepReport};
use super::versions::Seen;
use crate::checks::check::Diagnosis;

pub const FILE: &str = "report.html";

const CSS: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --skip: #6e7781; --line: #d0d7de; --soft: #f6f8fa; --ink: #1f2328; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink); margin: 0; background: #fff; }
header.run, main, nav, section.run-facts, div.wrap, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header.run { padding-top: 20px; padding-bottom: 12px; border-bottom: 4px solid var(--skip); }
header.run.passed { border-color: var(--pass); } header.run.failed { border-color: var(--fail); }
h1 { font-size: 26px; margin: 0 0 6px; } h2 { font-size: 21px; margin: 28px 0 8px; } h3 { font-size: 16px; margin: 0; }
h4 { font-size: 14px; margin: 14px 0 6px; } h5 { font-size: 13px; margin: 12px 0 4px; }
code, pre { font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--soft); padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
pre { background: var(--soft); padding: 8px 10px; border-radius: 4px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: var(--soft); }
table.kv > tbody > tr > th { background: var(--soft); font-weight: 600; white-space: nowrap; }
.badge { display: inline-block; border-radius: 10px; padding: 0 9px; font-size: 12px; font-weight: 600; color: #fff; background: var(--skip); vertical-align: 2px; }
.badge.passed { background: var(--pass); } .badge.failed { background: var(--fail); }
.summary, .meta, .note { color: #57606a; } .note { font-size: 13px; margin: 4px 0; }
.tags { color: #6639ba; font-size: 12.5px; margin: 2px 0; }
section.diagnoses { border: 2px solid var(--fail); background: #fff5f5; border-radius: 6px; padding: 4px 16px 10px; margin-top: 16px; }
section.diagnoses h2 { color: var(--fail); margin-top: 10px; }
rect.bar.converged { fill: var(--pass); } rect.bar.diagnosed { fill: var(--fail); } rect.bar.deadline { fill: #b7791f; }
p.diagnosis { border-left: 5px solid var(--fail); background: #fff0f0; padding: 6px 10px; margin: 6px 0; font-weight: 500; }
nav ol { columns: 2; padding-left: 20px; }
section.feature { border-top: 1px solid var(--line); margin-top: 24px; }
section.feature > .description { max-width: 900px; }
article.scenario { border: 1px solid var(--line); border-left: 5px solid var(--skip); border-radius: 4px; padding: 10px 14px; margin: 12px 0; }
article.scenario.passed { border-left-color: var(--pass); } article.scenario.failed { border-left-color: var(--fail); }
article.scenario.skipped { background: #fbfbfc; }
article.scenario .description { color: #424a53; font-size: 14px; }
ol.steps { list-style: none; padding: 0; margin: 8px 0 0; }
li.step { padding: 3px 0 3px 22px; position: relative; border-top: 1px dashed #eaeef2; }
li.step::before { position: absolute; left: 2px; top: 3px; font-weight: 700; }
li.step.passed::before { content: "\2713"; color: var(--pass); } li.step.failed::before, li.step.undefined::before, li.step.ambiguous::before { content: "\2717"; color: var(--fail); }
li.step.skipped::before, li.step.not-run::before { content: "\2013"; color: var(--skip); }
li.step.not-run { color: var(--skip); } li.step.background .kw { color: #57606a; }
.kw { font-weight: 700; } .dur { color: #57606a; font-size: 12px; margin-left: 6px; white-space: nowrap; }
.failure { margin: 6px 0; } pre.error { background: #fff0f0; border: 1px solid #ffcecb; }
figure.evidence { margin: 8px 0 6px; padding: 8px 12px; background: #fcfcfd; border: 1px solid var(--line); border-radius: 4px; }
figcaption { font-size: 13px; font-weight: 600; margin-bottom: 4px; }
details.evidence { margin: 6px 0; } details > summary { cursor: pointer; color: #0969da; font-size: 13px; }
details.bundle { border: 1px solid #ffcecb; border-radius: 4px; padding: 6px 10px; background: #fffafa; }
details.cluster { margin: 6px 0 6px 10px; }
svg.chart { display: block; max-width: 100%; height: auto; font: 12px system-ui, sans-serif; }
svg.chart .track { fill: #eef1f4; } svg.chart .bar { fill: #0969da; } svg.chart rect[data-version="v2"] { fill: #bf8700; } svg.chart .bar.error { fill: var(--fail); }
svg.chart rect.req.error { fill: var(--fail); } svg.chart line.mark { stroke: var(--ink); stroke-width: 1.5; stroke-dasharray: 4 3; } svg.chart .mark-name { font-size: 11px; font-weight: 600; }
svg.chart .bar.stage { fill: #8250df; } svg.chart .expected { stroke: var(--ink); stroke-width: 2; stroke-dasharray: 3 2; }
svg.chart .axis { stroke: #8c959f; } svg.chart text { fill: var(--ink); } svg.chart .tick { fill: #57606a; font-size: 11px; }
table.endpoints td:first-child { white-space: nowrap; }
td.state.healthy { color: var(--pass); font-weight: 600; } td.state.unhealthy, td.state.unused, td.state.draining { color: var(--fail); font-weight: 600; }
.bad { color: var(--fail); font-weight: 600; } .none, .unavailable { color: var(--skip); font-style: italic; }
table.concerns td.passed { color: var(--pass); font-weight: 600; } table.concerns td.failed { color: var(--fail); font-weight: 600; } table.concerns td.skipped { color: var(--skip); }
footer { color: #57606a; font-size: 12px; padding: 24px; border-top: 1px solid var(--line); margin-top: 32px; }
"#;

/// A complete page around a body.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        esc(title)
    )
}

/// A duration as people read it.
pub fn duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    match ms {
        0 if ns > 0 => "<1 ms".to_string(),
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.2} s", ns as f64 / 1e9),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn status_class(status: &str) -> String {
    slug(status)
}

fn badge(status: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", status_class(status), esc(status))
}

fn tags(tags: &[String]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let t: Vec<String> = tags.iter().map(|t| format!("@{}", t.trim_start_matches('@'))).collect();
    format!("<p class=\"tags\">{}</p>", esc(&t.join(" ")))
}

fn scenario_id(feature: &str, s: &ScenarioReport) -> String {
    format!("sc-{}-{}", slug(feature), s.line)
}

/// A diagnosis, its two parts marked.
fn diagnosis(d: &Diagnosis) -> String {
    format!(
        "<p class=\"diagnosis\"><strong>diagnosis:</strong> {}; <strong>fix:</strong> {}</p>",
        text_with_code(&d.cause),
        text_with_code(&d.fix)
    )
}

fn data_table(rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table class=\"datatable\">");
    for (i, r) in rows.iter().enumerate() {
        let cell = if i == 0 { "th" } else { "td" };
        out.push_str("<tr>");
        for c in r {
            out.push_str(&format!("<{cell}>{}</{cell}>", esc(c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

fn step(s: &StepReport) -> String {
    let class = format!("step {}{}", status_class(&s.status), if s.background { " background" } else { "" });
    let mut out = format!(
        "<li class=\"{class}\" data-status=\"{}\"><span class=\"kw\">{}</span> <span class=\"text\">{}</span>",
        esc(&s.status),
        esc(&s.keyword),
        esc(&s.text)
    );
    if s.status != "not run" {
        out.push_str(&format!("<span class=\"dur\">{} · {}</span>", esc(&s.status), duration(s.duration_ns)));
    }
    if let Some(t) = &s.table {
        out.push_str(&data_table(t));
    }
    if let Some(d) = &s.docstring {
        out.push_str(&format!("<pre>{}</pre>", esc(d)));
    }
    if let Some(e) = &s.error {
        out.push_str("<div class=\"failure\">");
        for d in s.diagnoses() {
            out.push_str(&diagnosis(&d));
        }
        out.push_str(&format!("<pre class=\"error\">{}</pre></div>", esc(e)));
    }
    for e in &s.evidence {
        out.push_str(&evidence::render(e));
    }
    out.push_str("</li>");
    out
}

fn scenario(feature: &str, s: &ScenarioReport) -> String {
    let status = s.outcome.as_str();
    let mut out = format!(
        "<article class=\"scenario {status}\" id=\"{}\" data-scenario=\"{}\" data-status=\"{status}\"><h3>{} {}: {}",
        scenario_id(feature, s),
        esc(&s.name),
        badge(if s.not_run.is_some() { "not run" } else { status }),
        esc(s.keyword.trim()),
        esc(&s.name)
    );
    if s.not_run.is_none() {
        out.push_str(&format!("<span class=\"dur\">{}</span>", duration(s.duration_ns)));
    }
    out.push_str("</h3>");
    out.push_str(&tags(&s.tags));
    if let Some(d) = &s.description {
        out.push_str(&format!("<div class=\"description\">{}</div>", description(d)));
    }
    if let Some(why) = &s.not_run {
        out.push_str(&format!("<p class=\"note not-run\">Not run: {}</p>", esc(why)));
    }
    for h in &s.hook_errors {
        out.push_str(&format!("<pre class=\"error\">hook failed: {}</pre>", esc(h)));
    }
    out.push_str("<ol class=\"steps\">");
    for st in &s.steps {
        out.push_str(&step(st));
    }
    out.push_str("</ol></article>");
    out
}

fn seen(s: &Seen) -> String {
    match s {
        Seen::Value(v) => format!("<code>{}</code>", esc(v)),
        Seen::Unavailable(why) => format!("<span class=\"unavailable\">unavailable: {}</span>", esc(why)),
    }
}

fn facts(report: &Report) -> String {
    let m = &report.meta;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|| "unknown".into())
    };
    let mut out = String::from(
        "<section class=\"run-facts\" id=\"target\"><h2>Target and versions</h2><table class=\"kv\"><tbody>",
    );
    out.push_str(&format!("<tr><th>target</th><td data-target=\"{t}\">{t}</td></tr>", t = esc(&m.target)));
    if let Some(f) = &m.fault {
        out.push_str(&format!("<tr><th>fault injected</th><td><code>{}</code></td></tr>", esc(f)));
    }
    out.push_str(&format!(
        "<tr><th>tag expression</th><td>{}</td></tr>",
        m.tags.as_deref().map(|t| format!("<code>{}</code>", esc(t))).unwrap_or_else(|| "none (every feature)".into())
    ));
    out.push_str(&format!(
        "<tr><th>started</th><td>{}</td></tr><tr><th>finished</th><td>{}</td></tr>",
        time(m.started_at),
        time(m.finished_at)
    ));
    if !m.versions.meshspec.is_empty() {
        out.push_str(&format!("<tr><th>meshspec</th><td><code>{}</code></td></tr>", esc(&m.versions.meshspec)));
    }
    out.push_str("</tbody></table>");
    if !m.versions.clusters.is_empty() {
        let istio: Vec<&String> = m.versions.clusters[0].istio.keys().collect();
        out.push_str(
            "<table class=\"versions\"><thead><tr><th>cluster</th><th>Kubernetes</th><th>EKS</th><th>EKS platform</th>",
        );
        for k in &istio {
            out.push_str(&format!("<th>{}</th>", esc(k)));
        }
        out.push_str("</tr></thead><tbody>");
        for c in &m.versions.clusters {
            out.push_str(&format!(
                "<tr data-cluster=\"{}\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td>",
                esc(&c.cluster),
                esc(&c.cluster),
                seen(&c.kubernetes),
                seen(&c.eks_version),
                seen(&c.eks_platform_version)
            ));
            for k in &istio {
                out.push_str(&format!("<td>{}</td>", c.istio.get(*k).map(seen).unwrap_or_default()));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    // The run's own provisioning, wherever the scenario that did it landed.
    let stages = report
        .scenarios()
        .flat_map(|(_, s)| &s.steps)
        .flat_map(|st| &st.evidence)
        .find(|e| e.name == "provisioning stages");
    if let Some(html) = stages.and_then(|e| evidence::stages(&e.data)) {
        out.push_str(&format!(
            "<h3>Provisioning</h3><figure class=\"evidence\" data-evidence=\"provisioning stages\">{html}</figure>"
        ));
    }
    out.push_str("</section>");
    out
}

fn concerns(report: &Report) -> String {
    let c = conformance::of(report).concerns;
    let rows: [(&str, &Concern); 7] = [
        ("provisioning", &c.provisioning),
        ("ordering", &c.ordering),
        ("readiness", &c.readiness),
        ("sync", &c.sync),
        ("load balancing", &c.load_balancing),
        ("destroy", &c.destroy),
        ("diagnosis", &c.diagnosis),
    ];
    let mut out = String::from(
        "<section class=\"run-facts\" id=\"concerns\"><h2>Concerns</h2><table class=\"concerns\"><thead><tr><th>concern</th>\
         <th>status</th><th>passed</th><th>failed</th><th>skipped</th><th>why skipped</th></tr></thead><tbody>",
    );
    for (name, c) in rows {
        out.push_str(&format!(
            "<tr data-concern=\"{n}\" data-status=\"{s}\"><th>{n}</th><td class=\"{s}\">{s}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.scenarios.passed,
            c.scenarios.failed,
            c.scenarios.skipped,
            esc(&c.skipped_because.join("; ")),
            n = esc(name),
            s = c.status,
        ));
    }
    out.push_str("</tbody></table></section>");
    out
}

/// How long the mesh took to converge at each point, and each failed check to
/// name its cause: two bar charts on one axis each.
fn convergence(c: &Convergence) -> String {
    if c.reached.is_empty() && c.diagnosed.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<div class=\"wrap\"><section class=\"convergence\" id=\"convergence\"><h2>Convergence</h2>");
    if !c.reached.is_empty() {
        let mut reached = c.reached.clone();
        reached.sort_by(|a, b| a.at.total_cmp(&b.at));
        let rows: Vec<svg::Mark> = reached
            .iter()
            .map(|r| {
                let cluster = r.check.split(':').next().unwrap_or_default();
                svg::Mark {
                    label: format!("{cluster}: {}", point_label(&r.point)),
                    seconds: r.at,
                    class: "converged",
                    title: format!("{} after {:.2} s (the check waited {:.2} s)", r.check, r.at, r.waited),
                }
            })
            .collect();
        out.push_str(
            "<p class=\"note\">Seconds from the start of the deployment to the moment each point was first seen.</p>",
        );
        out.push_str(&svg::marks("When the mesh reached each convergence point", &rows));
    }
    if !c.diagnosed.is_empty() {
        let rows: Vec<svg::Mark> = c
            .diagnosed
            .iter()
            .map(|d| svg::Mark {
                label: d.check.clone(),
                seconds: d.time_to_diagnosis,
                class: match d.ending {
                    crate::checks::check::Ending::Broken => "diagnosed",
                    crate::checks::check::Ending::Deadline => "deadline",
                    crate::checks::check::Ending::Interrupted => "interrupted",
                },
                title: d.cause.clone().unwrap_or_else(|| "no diagnosis".into()),
            })
            .collect();
        out.push_str("<h3>Time to diagnosis</h3><p class=\"note\">Seconds each failed check waited before naming its cause: a definite break at once, a transient state at its deadline.</p>");
        out.push_str(&svg::marks("Time to diagnosis of each failed check", &rows));
    }
    out.push_str("</section></div>");
    out
}

/// The page of a run.
pub fn page(report: &Report) -> String {
    let outcome = report.outcome().as_str();
    let (passed, failed, skipped) =
        (report.count(Outcome::Passed), report.count(Outcome::Failed), report.count(Outcome::Skipped));
    let mut body = format!(
        "<header class=\"run {outcome}\" data-outcome=\"{outcome}\"><h1>meshspec: the mesh runbook on {} {}</h1>\
         <p class=\"summary\">{} scenarios: {passed} passed, {failed} failed, {skipped} not run",
        esc(&report.meta.target),
        badge(outcome),
        passed + failed + skipped
    );
    if let Some(w) = report.wall_time_s() {
        body.push_str(&format!(" · {w:.1} s"));
    }
    body.push_str("</p></header>");
    let failures: Vec<_> = report.scenarios().filter(|(_, s)| s.outcome == Outcome::Failed).collect();
    if !failures.is_empty() {
        body.push_str("<div class=\"wrap\"><section class=\"diagnoses\" id=\"diagnoses\"><h2>Why the run failed</h2>");
        for (f, s) in failures {
            body.push_str(&format!(
                "<h4><a href=\"#{}\">{} / {}</a></h4>",
                scenario_id(&f.name, s),
                esc(&f.name),
                esc(&s.name)
            ));
            let ds: Vec<Diagnosis> = s.failed_steps().flat_map(|st| st.diagnoses()).collect();
            for d in &ds {
                body.push_str(&diagnosis(d));
            }
            if ds.is_empty() {
                let first =
                    s.failed_steps().next().and_then(|st| st.error.clone()).or_else(|| s.hook_errors.first().cloned());
                body.push_str(&format!("<pre class=\"error\">{}</pre>", esc(first.as_deref().unwrap_or("failed"))));
            }
        }
        body.push_str("</section></div>");
    }
    body.push_str(&facts(report));
    body.push_str(&convergence(&report.meta.convergence));
    body.push_str(&concerns(report));
    body.push_str("<nav id=\"contents\"><h2>Features</h2><ol>");
    for f in &report.features {
        body.push_str(&format!(
            "<li><a href=\"#f-{}\">{}</a> <span class=\"meta\">{} passed, {} failed, {} not run</span></li>",
            slug(&f.name),
            esc(&f.name),
            f.count(Outcome::Passed),
            f.count(Outcome::Failed),
            f.count(Outcome::Skipped)
        ));
    }
    body.push_str("</ol></nav><main>");
    for f in &report.features {
        let status = if f.count(Outcome::Failed) > 0 {
            "failed"
        } else if f.count(Outcome::Passed) > 0 {
            "passed"
        } else {
            "skipped"
        };
        body.push_str(&format!(
            "<section class=\"feature\" id=\"f-{}\" data-feature=\"{}\" data-status=\"{status}\"><h2>Feature: {}</h2>{}",
            slug(&f.name),
            esc(&f.name),
            esc(&f.name),
            tags(&f.tags)
        ));
        if !f.path.is_empty() {
            body.push_str(&format!("<p class=\"meta\"><code>{}</code></p>", esc(&f.path)));
        }
        if let Some(d) = &f.description {
            body.push_str(&format!("<div class=\"description\">{}</div>", description(d)));
        }
        for s in &f.scenarios {
            body.push_str(&scenario(&f.name, s));
        }
        body.push_str("</section>");
    }
    body.push_str(
        "</main><footer>Rendered by meshspec from the run's cucumber.json and run.json; \
                   <code>meshspec docs --from DIR</code> renders it again.</footer>",
    );
    document(&format!("meshspec run on {}: {outcome}", report.meta.target), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(500), "<1 ms");
        assert_eq!(duration(183_291_610), "183 ms");
        assert_eq!(duration(5_822_793_995), "5.82 s");
        assert_eq!(duration(125_000_000_000), "2 min 5 s");
    }

    #[test]
    fn diagnosis_lines_mark_cause_and_fix() {
        assert_eq!(
            diagnosis(&Diagnosis::new("no <secret>", "run `istioctl x`")),
            "<p class=\"diagnosis\"><strong>diagnosis:</strong> no &lt;secret&gt;; <strong>fix:</strong> run <code>istioctl x</code></p>"
        );
    }
}
