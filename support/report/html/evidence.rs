//! Evidence on the page: what a step attached, by name. The endpoint table,
//! the response distribution (an SVG bar chart), target health, the
//! provisioning stages (an SVG timeline), the traffic probe's timeline (an SVG
//! chart) and the failure bundle have their own views; anything else is shown
//! as tables derived from its JSON.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::escape::esc;
use super::svg;
use crate::mesh::probe::Timeline;
use crate::report::model::Evidence;

pub fn render(e: &Evidence) -> String {
    let body = match e.name.as_str() {
        "response distribution" => distribution(&e.data),
        "endpoints" => endpoints(&e.data),
        "target health" => target_health(&e.data),
        "provisioning stages" => stages(&e.data),
        crate::steps::probe::TIMELINE_EVIDENCE => probe_timeline(&e.data),
        "failure bundle" => return failure_bundle(&e.data),
        _ => None,
    };
    match body {
        Some(b) => format!("<figure class=\"evidence\" data-evidence=\"{}\">{b}</figure>", esc(&e.name)),
        // A view that does not fit the data falls back to the generic one.
        None => format!(
            "<details class=\"evidence\" data-evidence=\"{n}\"><summary>{n}</summary>{}</details>",
            value(&e.data, 0),
            n = esc(&e.name)
        ),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// The responses of one source cluster per helloworld version.
fn distribution(v: &Value) -> Option<String> {
    let d = v.get("distribution")?;
    let requests = d["requests"].as_u64()? as usize;
    let versions = d["versions"].as_object()?;
    let p = v["local_probability"].as_f64();
    let local = v["local_version"].as_str();
    let others = versions.keys().filter(|k| Some(k.as_str()) != local).count().max(1) as f64;
    let mut bars: Vec<svg::Bar> = versions
        .iter()
        .map(|(version, n)| svg::Bar {
            label: version.clone(),
            count: n.as_u64().unwrap_or(0) as usize,
            expected: match (p, local) {
                (Some(p), Some(l)) if l == version => Some(p * requests as f64),
                (Some(p), Some(_)) => Some((1.0 - p) * requests as f64 / others),
                _ => None,
            },
            error: false,
        })
        .collect();
    let errors = d["errors"].as_array().map(Vec::len).unwrap_or(0);
    if errors > 0 {
        bars.push(svg::Bar { label: "errors".into(), count: errors, expected: None, error: true });
    }
    let cluster = s(v, "cluster");
    let title = format!("Responses to {requests} requests from {cluster}, per helloworld version");
    let mut out = format!(
        "<figcaption>Responses from <strong>{}</strong> (pod <code>{}</code>): {requests} requests</figcaption>{}",
        esc(cluster),
        esc(s(v, "pod")),
        svg::distribution(&title, requests, &bars)
    );
    if let (Some(p), Some(l)) = (p, local) {
        out.push_str(&format!(
            "<p class=\"note\">The endpoint weights predict {:.0}% for the local version {} (the marks show the expected counts).</p>",
            p * 100.0,
            esc(l)
        ));
    }
    if errors > 0 {
        out.push_str("<p class=\"note\">Error answers:</p><ul class=\"errors\">");
        for err in d["errors"].as_array().into_iter().flatten().take(20) {
            out.push_str(&format!("<li><code>{}</code></li>", esc(err.as_str().unwrap_or_default())));
        }
        out.push_str("</ul>");
    }
    if let Some(instances) = d["instances"].as_object().filter(|i| !i.is_empty()) {
        out.push_str("<table class=\"small\"><thead><tr><th>answered by</th><th>responses</th></tr></thead><tbody>");
        for (pod, n) in instances {
            out.push_str(&format!("<tr><td><code>{}</code></td><td>{}</td></tr>", esc(pod), n));
        }
        out.push_str("</tbody></table>");
    }
    Some(out)
}

/// An Envoy endpoint table (rows as `EndpointRow`), each endpoint said for what it stands.
fn endpoint_table(rows: &[Value], local: &[&str], gateways: &[&str], remote: &[&str]) -> String {
    let mut out = String::from(
        "<table class=\"endpoints\"><thead><tr><th>ENDPOINT</th><th>STATUS</th><th>OUTLIER CHECK</th><th>WEIGHT</th>\
         <th>ZONE</th><th>CLUSTER</th><th>is</th></tr></thead><tbody>",
    );
    for r in rows {
        let address = s(r, "address");
        let what = if remote.contains(&address) {
            "<span class=\"bad\">a pod IP of the other cluster</span>"
        } else if local.contains(&address) {
            "a local helloworld pod"
        } else if gateways.contains(&address) {
            "the other network's gateway"
        } else if local.is_empty() && gateways.is_empty() {
            ""
        } else {
            "<span class=\"bad\">unexpected</span>"
        };
        let status = s(r, "status");
        out.push_str(&format!(
            "<tr><td><code>{}:{}</code></td><td class=\"state {}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{what}</td></tr>",
            esc(address),
            r["port"],
            esc(&status.to_lowercase()),
            esc(status),
            if r["outlier_failed"].as_bool().unwrap_or(false) { "FAILED" } else { "OK" },
            r["weight"],
            esc(r["zone"].as_str().unwrap_or("")),
            esc(s(r, "cluster")),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

fn endpoints(v: &Value) -> Option<String> {
    let rows = v.get("rows")?.as_array()?;
    let (local, gateways, remote) =
        (strings(&v["expected_local"]), strings(&v["expected_gateways"]), strings(&v["remote_pod_ips"]));
    let list = |l: &[&str]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.iter().map(|x| esc(x)).collect::<Vec<_>>().join(", ")
        }
    };
    Some(format!(
        "<figcaption>helloworld endpoints in the Envoy of <code>{}</code> in <strong>{}</strong></figcaption>{}\
         <p class=\"note\">Expected: local pods {} on 5000, the other network's gateway {} on 15443; never the other cluster's pods {}.</p>",
        esc(s(v, "pod")),
        esc(s(v, "cluster")),
        endpoint_table(rows, &local, &gateways, &remote),
        list(&local),
        list(&gateways),
        list(&remote)
    ))
}

fn targets_table(targets: &[Value]) -> String {
    let mut out = String::from(
        "<table class=\"targets\"><thead><tr><th>target</th><th>port</th><th>zone</th><th>state</th><th>reason</th>\
         <th>description</th></tr></thead><tbody>",
    );
    for t in targets {
        let state = s(t, "state");
        out.push_str(&format!(
            "<tr data-target=\"{id}\" data-state=\"{st}\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td class=\"state {st}\">{st}</td><td>{}</td><td>{}</td></tr>",
            t["port"],
            esc(s(t, "availability_zone")),
            esc(s(t, "reason")),
            esc(s(t, "description")),
            id = esc(s(t, "id")),
            st = esc(state),
        ));
    }
    if targets.is_empty() {
        out.push_str("<tr><td colspan=\"6\">no target registered</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn target_health(v: &Value) -> Option<String> {
    let targets = v.get("targets")?.as_array()?;
    Some(format!(
        "<figcaption>Target health behind the 15443 listener of <strong>{}</strong> (target group <code>{}</code>)</figcaption>{}",
        esc(s(v, "cluster")),
        esc(s(v, "target_group")),
        targets_table(targets)
    ))
}

/// The stages of a provisioning record on a time axis, then their details.
pub fn stages(v: &Value) -> Option<String> {
    let list = v.get("stages")?.as_array()?;
    if list.is_empty() {
        return Some("<figcaption>Provisioning stages</figcaption><p class=\"note\">No stage was provisioned in this run (the deployment was only verified).</p>".to_string());
    }
    let time = |x: &Value| x.as_str()?.parse::<DateTime<Utc>>().ok();
    let first = list.iter().filter_map(|st| time(&st["started_at"])).min()?;
    let mut spans = Vec::new();
    for st in list {
        let (a, b) = (time(&st["started_at"])?, time(&st["finished_at"])?);
        spans.push(svg::Span {
            number: st["number"].as_u64().unwrap_or(0) as u32,
            name: s(st, "name").to_string(),
            start_ms: (a - first).num_milliseconds(),
            end_ms: (b - first).num_milliseconds(),
            started_at: s(st, "started_at").to_string(),
            finished_at: s(st, "finished_at").to_string(),
        });
    }
    let mut out = format!(
        "<figcaption>Provisioning stages, from {}</figcaption>{}",
        esc(&first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        svg::timeline("Provisioning stages on a time axis", &spans)
    );
    out.push_str(
        "<table class=\"small\"><thead><tr><th>stage</th><th>preconditions held</th><th>steps</th><th>created</th></tr></thead><tbody>",
    );
    for st in list {
        let created = strings(&st["created"]);
        out.push_str(&format!(
            "<tr><td>{} {}</td><td>{}</td><td>{}</td><td><details><summary>{} resources</summary><ul>{}</ul></details></td></tr>",
            st["number"],
            esc(s(st, "name")),
            esc(&strings(&st["preconditions"]).join(", ")),
            esc(&strings(&st["steps"]).join(", ")),
            created.len(),
            created.iter().map(|c| format!("<li><code>{}</code></li>", esc(c))).collect::<String>()
        ));
    }
    out.push_str("</tbody></table>");
    if let Some(fp) = v["root_fingerprint"].as_str() {
        out.push_str(&format!("<p class=\"note\">Root certificate SHA-256: <code>{}</code></p>", esc(fp)));
    }
    Some(out)
}

/// A duration in seconds as people read it: `12.3 s`, `38.5 min`.
fn seconds(s: f64) -> String {
    if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The traffic probe's timeline: a row per cluster, each request coloured by
/// the version that answered or red for an error, the scenario's marks; then
/// the counts per cluster, the marks and the failures.
fn probe_timeline(v: &Value) -> Option<String> {
    let t: Timeline = serde_json::from_value(v.clone()).ok()?;
    let mut rows: Vec<String> = t.clusters().map(str::to_string).collect();
    for r in &t.requests {
        if !rows.contains(&r.cluster) {
            rows.push(r.cluster.clone());
        }
    }
    let versions: Vec<String> = t
        .requests
        .iter()
        .filter_map(|r| r.answer.version().map(str::to_string))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let total = t
        .requests
        .iter()
        .map(|r| r.answered.s)
        .chain(t.marks.iter().map(|m| m.at.s))
        .chain(t.stopped.iter().map(|s| s.at.s))
        .fold(0.0_f64, f64::max);
    let hits: Vec<svg::ProbeHit> = t
        .requests
        .iter()
        .map(|r| svg::ProbeHit {
            row: rows.iter().position(|c| *c == r.cluster).unwrap_or(0),
            sent_s: r.sent.s,
            answered_s: r.answered.s,
            version: r.answer.version().map(str::to_string),
            title: format!(
                "{}: sent at {}, answered after {:.0} ms: {}",
                r.cluster,
                r.sent,
                (r.answered.s - r.sent.s) * 1000.0,
                r.answer
            ),
        })
        .collect();
    let marks: Vec<svg::ProbeMark> = t
        .marks
        .iter()
        .map(|m| svg::ProbeMark { name: m.name.clone(), s: m.at.s, title: format!("{} at {}", m.name, m.at) })
        .collect();
    let mut end = seconds(total);
    if let Some(k) = t.time_scale {
        end.push_str(&format!(" (simulated {})", seconds(total * k)));
    }
    let failed: Vec<_> = t.requests.iter().filter(|r| r.answer.is_error()).collect();
    let title = format!("Probe requests to {} per cluster over time", t.url);
    let mut out = format!(
        "<figcaption>Traffic probe to <code>{}</code>: {} requests, {} failed, one at a time per cluster every {:.0} ms{}</figcaption>{}",
        esc(&t.url),
        t.requests.len(),
        failed.len(),
        t.interval_s * 1000.0,
        t.stopped.as_ref().map(|s| format!(", stopped by {} at {}", esc(&s.by), esc(&s.at.to_string()))).unwrap_or_default(),
        svg::probe(&title, &rows, &versions, &hits, &marks, total, &end)
    );
    if t.time_scale.is_some() {
        out.push_str(
            "<p class=\"note\">Times are wall-clock seconds since the probe started; the target compresses time, and its simulated times are in each mark's and request's tooltip.</p>",
        );
    }
    out.push_str("<table class=\"small probe-counts\"><thead><tr><th>from</th><th>sleep pod</th><th>requests</th>");
    for v in &versions {
        out.push_str(&format!("<th>{}</th>", esc(v)));
    }
    out.push_str("<th>failed</th></tr></thead><tbody>");
    for c in &rows {
        let mine: Vec<_> = t.requests.iter().filter(|r| r.cluster == *c).collect();
        let pod = t.sources.iter().find(|s| s.cluster == *c).map(|s| s.pod.as_str()).unwrap_or_default();
        out.push_str(&format!(
            "<tr data-cluster=\"{c}\"><th>{c}</th><td><code>{}</code></td><td>{}</td>",
            esc(pod),
            mine.len(),
            c = esc(c)
        ));
        for v in &versions {
            out.push_str(&format!(
                "<td>{}</td>",
                mine.iter().filter(|r| r.answer.version() == Some(v.as_str())).count()
            ));
        }
        out.push_str(&format!("<td>{}</td></tr>", mine.iter().filter(|r| r.answer.is_error()).count()));
    }
    out.push_str("</tbody></table>");
    if !t.marks.is_empty() {
        out.push_str("<table class=\"small\"><thead><tr><th>mark</th><th>at</th></tr></thead><tbody>");
        for m in &t.marks {
            out.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", esc(&m.name), esc(&m.at.to_string())));
        }
        out.push_str("</tbody></table>");
    }
    if !failed.is_empty() {
        out.push_str(&format!("<details><summary>{} failed requests</summary><ul class=\"errors\">", failed.len()));
        for r in failed.iter().take(50) {
            out.push_str(&format!(
                "<li>{} at {}: <code>{}</code></li>",
                esc(&r.cluster),
                esc(&r.sent.to_string()),
                esc(&r.answer.to_string())
            ));
        }
        if failed.len() > 50 {
            out.push_str(&format!("<li>and {} more (all in evidence.json)</li>", failed.len() - 50));
        }
        out.push_str("</ul></details>");
    }
    Some(out)
}

fn failure_bundle(v: &Value) -> String {
    let mut out = String::from(
        "<details class=\"evidence bundle\" data-evidence=\"failure bundle\"><summary>Evidence bundle of the failure, per cluster</summary>",
    );
    for (cluster, b) in v.as_object().into_iter().flatten() {
        out.push_str(&format!("<details class=\"cluster\"><summary>{}</summary>", esc(cluster)));
        if let Some(rows) = b["sleep_endpoints"].as_array() {
            out.push_str(&format!("<h5>the sleep pod's Envoy endpoints</h5>{}", endpoint_table(rows, &[], &[], &[])));
        } else if !b["sleep_endpoints"].is_null() {
            out.push_str(&format!("<h5>the sleep pod's Envoy endpoints</h5>{}", value(&b["sleep_endpoints"], 1)));
        }
        if let Some(targets) = b["eastwest_target_health"].as_array() {
            out.push_str(&format!("<h5>east-west NLB target health</h5>{}", targets_table(targets)));
        } else if !b["eastwest_target_health"].is_null() {
            out.push_str(&format!("<h5>east-west NLB target health</h5>{}", value(&b["eastwest_target_health"], 1)));
        }
        if let Some(log) = b["istiod_log"].as_str() {
            out.push_str(&format!("<h5>istiod's log (last lines)</h5><pre>{}</pre>", esc(log)));
        } else if !b["istiod_log"].is_null() {
            out.push_str(&format!("<h5>istiod's log</h5>{}", value(&b["istiod_log"], 1)));
        }
        for part in ["clusterz", "networkz"] {
            if !b[part].is_null() {
                out.push_str(&format!("<h5>istiod {part}</h5>{}", value(&b[part], 1)));
            }
        }
        for (ns, objects) in b["objects"].as_object().into_iter().flatten() {
            out.push_str(&format!("<details><summary>namespace {}</summary>{}</details>", esc(ns), value(objects, 1)));
        }
        if let Some(why) = b["unavailable"].as_str() {
            out.push_str(&format!("<p class=\"note\">unavailable: {}</p>", esc(why)));
        }
        out.push_str("</details>");
    }
    out.push_str("</details>");
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("<span class=\"none\">none</span>".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if s.contains('\n') => Some(format!("<pre>{}</pre>", esc(s))),
        Value::String(s) => Some(esc(s)),
        _ => None,
    }
}

/// Any JSON as HTML: objects as key/value tables, lists of objects as tables.
pub fn value(v: &Value, depth: usize) -> String {
    if let Some(s) = scalar(v) {
        return s;
    }
    if depth > 5 {
        return format!("<pre>{}</pre>", esc(&serde_json::to_string_pretty(v).unwrap_or_default()));
    }
    match v {
        Value::Array(items) if items.is_empty() => "<span class=\"none\">none</span>".into(),
        Value::Array(items) if items.iter().all(|i| scalar(i).is_some()) => items
            .iter()
            .map(|i| format!("<code>{}</code>", scalar(i).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut keys: Vec<&String> = Vec::new();
            for k in items.iter().filter_map(Value::as_object).flat_map(|o| o.keys()) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            let mut out = String::from("<table class=\"data\"><thead><tr>");
            for k in &keys {
                out.push_str(&format!("<th>{}</th>", esc(k)));
            }
            out.push_str("</tr></thead><tbody>");
            for i in items {
                out.push_str("<tr>");
                for k in &keys {
                    out.push_str(&format!("<td>{}</td>", value(&i[k.as_str()], depth + 1)));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
            out
        }
        Value::Array(items) => {
            format!(
                "<ol class=\"data\">{}</ol>",
                items.iter().map(|i| format!("<li>{}</li>", value(i, depth + 1))).collect::<String>()
            )
        }
        Value::Object(o) if o.is_empty() => "<span class=\"none\">none</span>".into(),
        Value::Object(o) => {
            let mut out = String::from("<table class=\"kv\"><tbody>");
            for (k, x) in o {
                out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), value(x, depth + 1)));
            }
            out.push_str("</tbody></table>");
            out
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_values_become_tables_and_stay_escaped() {
        let html = value(&json!([{"id": "<a>", "n": 1}, {"id": "b", "extra": null}]), 0);
        assert!(html.contains("<th>id</th><th>n</th><th>extra</th>"), "{html}");
        assert!(html.contains("&lt;a&gt;"), "{html}");
    }

    #[test]
    fn a_distribution_is_a_chart_with_the_expected_marks() {
        let e = Evidence {
            name: "response distribution".into(),
            data: json!({"cluster": "eks-1", "pod": "sleep-1", "local_probability": 0.25, "local_version": "v1",
                         "distribution": {"requests": 20, "versions": {"v1": 6, "v2": 14}, "instances": {}, "errors": []}}),
        };
        let html = render(&e);
        assert!(html.contains(r#"data-version="v1" data-count="6""#), "{html}");
        assert!(html.contains(r#"data-expected="5""#) && html.contains(r#"data-expected="15""#), "{html}");
    }

    #[test]
    fn empty_stages_say_that_nothing_was_provisioned() {
        let html = render(&Evidence {
            name: "provisioning stages".into(),
            data: json!({"stages": [], "root_fingerprint": null}),
        });
        assert!(html.contains("No stage was provisioned"), "{html}");
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn a_probe_timeline_is_a_chart_with_a_row_per_cluster_and_its_marks() {
        let req = |cluster: &str, s: f64, answer: serde_json::Value| {
            json!({"cluster": cluster, "sent": {"s": s, "simulated_s": s * 1000.0},
                   "answered": {"s": s + 0.01, "simulated_s": (s + 0.01) * 1000.0}, "answer": answer})
        };
        let hello = |v: &str| json!({"kind": "hello", "version": v, "instance": format!("helloworld-{v}-0")});
        let e = Evidence {
            name: "probe timeline".into(),
            data: json!({
                "url": "helloworld.sample:5000/hello", "started_at": "2026-01-01T00:00:00Z",
                "interval_s": 0.05, "deadline_s": 10.0, "time_scale": 1000.0,
                "sources": [{"cluster": "eks-1", "pod": "sleep-a"}, {"cluster": "eks-2", "pod": "sleep-b"}],
                "requests": [req("eks-1", 0.0, hello("v1")), req("eks-2", 0.1, hello("v2")),
                             req("eks-2", 0.2, json!({"kind": "http", "status": 503, "body": "no healthy upstream"}))],
                "marks": [{"name": "gateway deleted", "at": {"s": 0.15, "simulated_s": 150.0}}],
                "stopped": {"at": {"s": 0.3, "simulated_s": 300.0}, "by": "the end of its scenario"}
            }),
        };
        let html = render(&e);
        assert!(html.starts_with(r#"<figure class="evidence" data-evidence="probe timeline">"#), "{html}");
        assert!(html.contains(r#"<svg class="chart probe""#) && html.contains(r#"data-requests="3""#), "{html}");
        assert_eq!(html.matches(r#"class="req" data-version="#).count(), 2, "{html}");
        assert!(html.contains(r#"class="req error" data-error="true" data-cluster="eks-2""#), "{html}");
        assert!(html.contains(r#"data-mark="gateway deleted""#) && html.contains(">gateway deleted</text>"), "{html}");
        assert!(html.contains("0.3 s (simulated 5.0 min)"), "{html}");
        assert!(html.contains("HTTP 503: no healthy upstream"), "{html}");
        assert!(html.contains("3 requests, 1 failed"), "{html}");
        // Data that is not a timeline falls back to the generic view.
        let other = render(&Evidence { name: "probe timeline".into(), data: json!({"x": 1}) });
        assert!(other.starts_with("<details"), "{other}");
    }
}
