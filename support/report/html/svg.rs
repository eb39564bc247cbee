//! The page's charts, as inline SVG: the responses per helloworld version of
//! one source cluster, the provisioning stages on a time axis, convergence
//! marks, and the traffic probe's timeline. Every bar carries its data in
//! attributes, so that a reader of the DOM (a test, a scraper) gets the
//! numbers without reading pixels.

use super::escape::esc;

/// One bar of a distribution.
pub struct Bar {
    pub label: String,
    pub count: usize,
    /// What the endpoint weights predict, when known.
    pub expected: Option<f64>,
    /// Error answers rather than a version.
    pub error: bool,
}

const LABEL_W: f64 = 90.0;
const BAR_W: f64 = 360.0;
const ROW_H: f64 = 26.0;

fn fmt(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Horizontal bars, one per version, scaled to the number of requests.
pub fn distribution(title: &str, requests: usize, bars: &[Bar]) -> String {
    let width = LABEL_W + BAR_W + 110.0;
    let height = 12.0 + ROW_H * bars.len().max(1) as f64 + 8.0;
    let scale = BAR_W / requests.max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart distribution\" role=\"img\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" data-requests=\"{requests}\"><title>{t}</title>",
        w = fmt(width),
        h = fmt(height),
        t = esc(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 12.0 + ROW_H * i as f64;
        let w = b.count as f64 * scale;
        let share = if requests == 0 { 0.0 } else { 100.0 * b.count as f64 / requests as f64 };
        let class = if b.error { "bar error" } else { "bar" };
        svg.push_str(&format!(
            "<text class=\"label\" x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{l}</text>\
             <rect class=\"track\" x=\"{bx}\" y=\"{y}\" width=\"{tw}\" height=\"18\" rx=\"2\"></rect>\
             <rect class=\"{class}\" data-version=\"{l}\" data-count=\"{c}\" x=\"{bx}\" y=\"{y}\" width=\"{w}\" height=\"18\" rx=\"2\">\
             <title>{l}: {c} of {requests}</title></rect>\
             <text class=\"value\" x=\"{vx}\" y=\"{ty}\">{c} ({share:.0}%)</text>",
            x = fmt(LABEL_W - 8.0),
            ty = fmt(y + 13.5),
            l = esc(&b.label),
            c = b.count,
            bx = fmt(LABEL_W),
            y = fmt(y),
            w = fmt(w),
            tw = fmt(BAR_W),
            vx = fmt(LABEL_W + BAR_W + 8.0),
        ));
        if let Some(e) = b.expected {
            let x = LABEL_W + e * scale;
            svg.push_str(&format!(
                "<line class=\"expected\" data-expected=\"{e}\" x1=\"{x}\" x2=\"{x}\" y1=\"{y1}\" y2=\"{y2}\"><title>expected {e}</title></line>",
                e = fmt(e),
                x = fmt(x),
                y1 = fmt(y - 3.0),
                y2 = fmt(y + 21.0)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One provisioning stage, in milliseconds since the first stage started.
pub struct Span {
    pub number: u32,
    pub name: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub started_at: String,
    pub finished_at: String,
}

/// The stages on one time axis, one row each.
pub fn timeline(title: &str, spans: &[Span]) -> String {
    let total = spans.iter().map(|s| s.end_ms).max().unwrap_or(0).max(1) as f64;
    let label_w = 150.0;
    let width = label_w + BAR_W + 90.0;
    let height = 12.0 + ROW_H * spans.len().max(1) as f64 + 24.0;
    let scale = BAR_W / total;
    let mut svg = format!(
        "<svg class=\"chart timeline\" role=\"img\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" data-total-ms=\"{total}\"><title>{t}</title>",
        w = fmt(width),
        h = fmt(height),
        total = total as i64,
        t = esc(title)
    );
    for (i, s) in spans.iter().enumerate() {
        let y = 12.0 + ROW_H * i as f64;
        let x = label_w + s.start_ms.max(0) as f64 * scale;
        let w = ((s.end_ms - s.start_ms).max(0) as f64 * scale).max(1.0);
        let secs = (s.end_ms - s.start_ms) as f64 / 1000.0;
        svg.push_str(&format!(
            "<text class=\"label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{n} {name}</text>\
             <rect class=\"bar stage\" data-stage=\"{n}\" data-name=\"{name}\" data-started=\"{sa}\" data-finished=\"{fa}\" \
             data-duration-ms=\"{d}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"18\" rx=\"2\"><title>stage {n} {name}: {sa} to {fa}</title></rect>\
             <text class=\"value\" x=\"{vx}\" y=\"{ty}\">{secs:.1} s</text>",
            lx = fmt(label_w - 8.0),
            ty = fmt(y + 13.5),
            n = s.number,
            name = esc(&s.name),
            sa = esc(&s.started_at),
            fa = esc(&s.finished_at),
            d = s.end_ms - s.start_ms,
            x = fmt(x),
            y = fmt(y),
            w = fmt(w),
            vx = fmt(x + w + 6.0),
        ));
    }
    svg.push_str(&time_axis(label_w, spans.len(), &format!("{:.1} s", total / 1000.0)));
    svg.push_str("</svg>");
    svg
}

/// One bar of [`marks`]: a moment or a duration, in seconds.
pub struct Mark {
    pub label: String,
    pub seconds: f64,
    /// A CSS class for the bar (`converged`, `diagnosed`, `deadline`).
    pub class: &'static str,
    pub title: String,
}

/// Bars from zero to each mark's seconds, one row each, on one axis.
pub fn marks(title: &str, rows: &[Mark]) -> String {
    let total = rows.iter().map(|r| r.seconds).fold(0.0_f64, f64::max).max(0.001);
    let label_w = 300.0;
    let width = label_w + BAR_W + 90.0;
    let height = 12.0 + ROW_H * rows.len().max(1) as f64 + 24.0;
    let scale = BAR_W / total;
    let mut svg = format!(
        "<svg class=\"chart marks\" role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><title>{t}</title>",
        w = fmt(width),
        h = fmt(height),
        t = esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 12.0 + ROW_H * i as f64;
        let w = (r.seconds.max(0.0) * scale).max(1.0);
        svg.push_str(&format!(
            "<text class=\"label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"bar {class}\" data-seconds=\"{secs:.3}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"18\" rx=\"2\"><title>{tt}</title></rect>\
             <text class=\"value\" x=\"{vx}\" y=\"{ty}\">{secs:.2} s</text>",
            lx = fmt(label_w - 8.0),
            ty = fmt(y + 13.5),
            label = esc(&r.label),
            class = r.class,
            secs = r.seconds,
            x = fmt(label_w),
            y = fmt(y),
            w = fmt(w),
            tt = esc(&r.title),
            vx = fmt(label_w + w + 6.0),
        ));
    }
    svg.push_str(&time_axis(label_w, rows.len(), &format!("{total:.2} s")));
    svg.push_str("</svg>");
    svg
}

/// The time axis under `rows` bars: 0 s at the left, `end` at the right.
fn time_axis(label_w: f64, rows: usize, end: &str) -> String {
    let axis_y = 12.0 + ROW_H * rows.max(1) as f64 + 4.0;
    format!(
        "<line class=\"axis\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{y}\" y2=\"{y}\"></line>\
         <text class=\"tick\" x=\"{x0}\" y=\"{ty}\">0 s</text><text class=\"tick\" x=\"{x1}\" y=\"{ty}\" text-anchor=\"end\">{end}</text>",
        x0 = fmt(label_w),
        x1 = fmt(label_w + BAR_W),
        y = fmt(axis_y),
        ty = fmt(axis_y + 14.0),
    )
}

/// One request on the probe chart: a mark in its cluster's row from when it
/// was sent to when it was answered.
pub struct ProbeHit {
    pub row: usize,
    pub sent_s: f64,
    pub answered_s: f64,
    /// The version that answered; None for an error.
    pub version: Option<String>,
    pub title: String,
}

/// A named instant on the probe chart.
pub struct ProbeMark {
    pub name: String,
    pub s: f64,
    pub title: String,
}

/// The colours of the versions, in their sorted order; v1 and v2 as on the
/// distribution charts. Errors are red.
const VERSION_COLOURS: &[&str] = &["#0969da", "#bf8700", "#8250df", "#1a7f37", "#57606a"];
const ERROR_COLOUR: &str = "#cf222e";

/// The probe's timeline: a row per cluster over time, each request a mark
/// coloured by the version that answered (red for an error), the marks as
/// vertical lines with their names, and a legend.
pub fn probe(
    title: &str,
    rows: &[String],
    versions: &[String],
    hits: &[ProbeHit],
    marks: &[ProbeMark],
    total_s: f64,
    end: &str,
) -> String {
    let label_w = 90.0;
    let plot_w = 720.0;
    let top = 12.0 + 14.0 * 2.0;
    let width = label_w + plot_w + 20.0;
    let legend_y = top + ROW_H * rows.len().max(1) as f64 + 34.0;
    let height = legend_y + 16.0;
    let total = total_s.max(0.001);
    let x = |s: f64| label_w + (s.max(0.0) / total).min(1.0) * plot_w;
    let colour = |v: &Option<String>| match v {
        Some(v) => {
            let i = versions.iter().position(|x| x == v).unwrap_or(VERSION_COLOURS.len() - 1);
            VERSION_COLOURS[i.min(VERSION_COLOURS.len() - 1)]
        }
        None => ERROR_COLOUR,
    };
    let mut svg = format!(
        "<svg class=\"chart probe\" role=\"img\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         data-requests=\"{n}\" data-total-s=\"{total:.3}\"><title>{t}</title>",
        w = fmt(width),
        h = fmt(height),
        n = hits.len(),
        t = esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + ROW_H * i as f64;
        svg.push_str(&format!(
            "<text class=\"label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{l}</text>\
             <rect class=\"track\" data-row=\"{l}\" x=\"{bx}\" y=\"{y}\" width=\"{pw}\" height=\"18\" rx=\"2\"></rect>",
            lx = fmt(label_w - 8.0),
            ty = fmt(y + 13.5),
            l = esc(r),
            bx = fmt(label_w),
            y = fmt(y),
            pw = fmt(plot_w),
        ));
    }
    for h in hits {
        let y = top + ROW_H * h.row as f64 + 2.0;
        let (x0, x1) = (x(h.sent_s), x(h.answered_s));
        let outcome = match &h.version {
            Some(v) => format!("class=\"req\" data-version=\"{}\"", esc(v)),
            None => "class=\"req error\" data-error=\"true\"".to_string(),
        };
        svg.push_str(&format!(
            "<rect {outcome} data-cluster=\"{c}\" data-sent=\"{s:.3}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"14\" fill=\"{f}\"><title>{t}</title></rect>",
            c = esc(rows.get(h.row).map(String::as_str).unwrap_or_default()),
            s = h.sent_s,
            x = fmt(x0),
            y = fmt(y),
            w = fmt((x1 - x0).max(1.5)),
            f = colour(&h.version),
            t = esc(&h.title),
        ));
    }
    let bottom = top + ROW_H * rows.len().max(1) as f64;
    for (i, m) in marks.iter().enumerate() {
        let mx = x(m.s);
        // Names alternate between two lines, so that close marks stay readable.
        let ty = 12.0 + 14.0 * (i % 2) as f64;
        let anchor = if mx > label_w + plot_w * 0.75 { "end" } else { "start" };
        svg.push_str(&format!(
            "<g class=\"mark\" data-mark=\"{n}\" data-s=\"{s:.3}\"><line class=\"mark\" x1=\"{x}\" x2=\"{x}\" y1=\"{y1}\" y2=\"{y2}\"></line>\
             <text class=\"mark-name\" x=\"{x}\" y=\"{ty}\" text-anchor=\"{anchor}\">{n}</text><title>{t}</title></g>",
            n = esc(&m.name),
            s = m.s,
            x = fmt(mx),
            y1 = fmt(ty + 3.0),
            y2 = fmt(bottom),
            ty = fmt(ty),
            t = esc(&m.title),
        ));
    }
    let axis_y = bottom + 4.0;
    svg.push_str(&format!(
        "<line class=\"axis\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{y}\" y2=\"{y}\"></line>\
         <text class=\"tick\" x=\"{x0}\" y=\"{ty}\">0 s</text><text class=\"tick\" x=\"{x1}\" y=\"{ty}\" text-anchor=\"end\">{end}</text>",
        x0 = fmt(label_w),
        x1 = fmt(label_w + plot_w),
        y = fmt(axis_y),
        ty = fmt(axis_y + 14.0),
        end = esc(end),
    ));
    let mut lx = label_w;
    let legend = versions.iter().map(|v| (v.as_str(), colour(&Some(v.clone())))).chain([("error", ERROR_COLOUR)]);
    for (name, fill) in legend {
        svg.push_str(&format!(
            "<rect class=\"legend\" x=\"{x}\" y=\"{y}\" width=\"10\" height=\"10\" fill=\"{fill}\"></rect>\
             <text class=\"tick\" x=\"{tx}\" y=\"{ty}\">{n}</text>",
            x = fmt(lx),
            y = fmt(legend_y - 9.0),
            tx = fmt(lx + 14.0),
            ty = fmt(legend_y),
            n = esc(name),
        ));
        lx += 24.0 + 7.0 * name.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_counts_and_scale_to_the_requests() {
        let svg = distribution(
            "eks-1",
            20,
            &[
                Bar { label: "v1".into(), count: 15, expected: Some(10.0), error: false },
                Bar { label: "v2".into(), count: 5, expected: None, error: false },
            ],
        );
        assert!(svg.contains(r#"data-version="v1" data-count="15" x="90" y="12" width="270""#), "{svg}");
        assert!(svg.contains(r#"data-version="v2" data-count="5""#), "{svg}");
        assert!(svg.contains(r#"data-expected="10""#), "{svg}");
        assert!(svg.contains("15 (75%)"));
    }

    #[test]
    fn stages_sit_on_one_time_axis() {
        let span = |n, s, e| Span {
            number: n,
            name: format!("s{n}"),
            start_ms: s,
            end_ms: e,
            started_at: String::new(),
            finished_at: String::new(),
        };
        let svg = timeline("stages", &[span(1, 0, 1000), span(2, 1000, 4000)]);
        assert!(svg.contains(r#"data-stage="2" data-name="s2""#), "{svg}");
        // Stage 2 starts a quarter along the 360-wide axis and is three quarters long.
        assert!(svg.contains(r#"data-duration-ms="3000" x="240" y="38" width="270""#), "{svg}");
        assert!(svg.contains("4.0 s"));
    }

    #[test]
    fn probe_requests_sit_in_their_cluster_row_and_marks_span_every_row() {
        let hit = |row, sent_s, version: Option<&str>| ProbeHit {
            row,
            sent_s,
            answered_s: sent_s + 0.5,
            version: version.map(str::to_string),
            title: String::new(),
        };
        let rows = vec!["eks-1".to_string(), "eks-2".to_string()];
        let versions = vec!["v1".to_string(), "v2".to_string()];
        let svg = probe(
            "probe",
            &rows,
            &versions,
            &[hit(0, 0.0, Some("v1")), hit(1, 5.0, Some("v2")), hit(1, 9.5, None)],
            &[ProbeMark { name: "gateway <deleted>".into(), s: 5.0, title: String::new() }],
            10.0,
            "10.0 s",
        );
        assert!(svg.contains(r#"data-requests="3""#), "{svg}");
        // Half way along the 720-wide plot, in the second row, v2's colour.
        assert!(
            svg.contains(r##"class="req" data-version="v2" data-cluster="eks-2" data-sent="5.000" x="450" y="68" width="36" height="14" fill="#bf8700""##),
            "{svg}"
        );
        assert!(svg.contains(r##"class="req error" data-error="true" data-cluster="eks-2" data-sent="9.500" x="774" y="68" width="36" height="14" fill="#cf222e""##), "{svg}");
        assert!(svg.contains(r#"data-mark="gateway &lt;deleted&gt;" data-s="5.000"><line class="mark" x1="450" x2="450" y1="15" y2="92">"#), "{svg}");
    }
}
