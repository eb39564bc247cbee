//! The step catalog: every step pattern with its doc comment and the scenarios
//! that use it. The patterns come from cucumber's own step collection (what the
//! `#[given]`/`#[when]`/`#[then]` macros registered); their doc comments and
//! function names from the step sources compiled into this binary; and a
//! step's users from cucumber's own matching of every feature step. Nothing is
//! written by hand, so the catalog cannot drift from the step definitions.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use cucumber::codegen::{StepConstructor as _, WorldInventory};
use cucumber::feature::Ext as _;
use cucumber::{gherkin, World as _};
use serde::Serialize;

use super::html::escape::{esc, text_with_code};
use crate::steps::MeshWorld;

/// The step modules, as compiled (file name, source).
pub const SOURCES: &[(&str, &str)] = &[
    ("ca_rotation.rs", include_str!("../../steps/ca_rotation.rs")),
    ("destroy.rs", include_str!("../../steps/destroy.rs")),
    ("diagnosis.rs", include_str!("../../steps/diagnosis.rs")),
    ("gateway_operations.rs", include_str!("../../steps/gateway_operations.rs")),
    ("load_balancing.rs", include_str!("../../steps/load_balancing.rs")),
    ("mod.rs", include_str!("../../steps/mod.rs")),
    ("operations.rs", include_str!("../../steps/operations.rs")),
    ("ordering.rs", include_str!("../../steps/ordering.rs")),
    ("probe.rs", include_str!("../../steps/probe.rs")),
    ("provisioning.rs", include_str!("../../steps/provisioning.rs")),
    ("readiness.rs", include_str!("../../steps/readiness.rs")),
    ("secret_operations.rs", include_str!("../../steps/secret_operations.rs")),
    ("sync.rs", include_str!("../../steps/sync.rs")),
    ("topology.rs", include_str!("../../steps/topology.rs")),
];

/// One step definition as its source has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Definition {
    /// given, when or then.
    pub kind: String,
    /// "literal" (matched exactly), "expr" (a cucumber expression) or "regex".
    pub syntax: String,
    pub pattern: String,
    /// The `///` comment above the attribute, lines joined.
    pub doc: String,
    pub function: String,
    /// `steps/<file>` and the attribute's line.
    pub file: String,
    pub line: u32,
}

/// A scenario (or a feature's Background) that uses a step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Use {
    pub feature: String,
    /// The scenario as written (an outline once, not per example); "Background" for its steps.
    pub scenario: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub definition: Definition,
    pub used_by: Vec<Use>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

/// Step definitions parsed from one step module's source.
pub fn parse_source(file: &str, source: &str) -> Result<Vec<Definition>> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            i += 1;
            continue;
        }
        let kind = ["given", "when", "then"].into_iter().find(|k| t.starts_with(&format!("#[{k}(")));
        let Some(kind) = kind else {
            // Other attributes may sit between a doc comment and its step attribute.
            if !t.starts_with("#[") {
                doc.clear();
            }
            i += 1;
            continue;
        };
        let start = i;
        let mut attr = String::new();
        while i < lines.len() {
            attr.push_str(lines[i].trim());
            attr.push(' ');
            i += 1;
            if attr.trim_end().ends_with(")]") && balanced(&attr) {
                break;
            }
        }
        let inner = attr.trim().strip_prefix(&format!("#[{kind}(")).and_then(|a| a.strip_suffix(")]")).unwrap_or("");
        let (syntax, literal) = match inner.trim().split_once('=') {
            Some((key, rest)) if !key.contains('"') => (key.trim().to_string(), rest.trim()),
            _ => ("literal".to_string(), inner.trim()),
        };
        let pattern = string_literal(literal).with_context(|| format!("steps/{file}:{}: {attr}", start + 1))?;
        let function = lines[i..]
            .iter()
            .find_map(|l| l.split_once("fn ").map(|(_, rest)| rest.split(['(', '<']).next().unwrap_or("").trim()))
            .unwrap_or_default()
            .to_string();
        out.push(Definition {
            kind: kind.to_string(),
            syntax,
            pattern,
            doc: std::mem::take(&mut doc).join(" ").trim().to_string(),
            function,
            file: format!("steps/{file}"),
            line: start as u32 + 1,
        });
    }
    Ok(out)
}

/// Whether the quotes and parentheses of an attribute are closed.
fn balanced(s: &str) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for c in s.chars() {
        match (in_str, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_str = false,
            (false, '"') => in_str = true,
            (false, '(') | (false, '[') => depth += 1,
            (false, ')') | (false, ']') => depth -= 1,
            _ => {}
        }
    }
    !in_str && depth == 0
}

/// The value of a Rust string literal (plain or raw).
fn string_literal(s: &str) -> Result<String> {
    let s = s.trim();
    if let Some(raw) = s.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = &raw[hashes..];
        let fence = format!("\"{}", "#".repeat(hashes));
        return body
            .strip_prefix('"')
            .and_then(|b| b.strip_suffix(fence.as_str()))
            .map(str::to_string)
            .context("a raw string literal");
    }
    let body = s.strip_prefix('"').and_then(|b| b.strip_suffix('"')).context("a string literal")?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => bail!("a string literal ends in a backslash"),
        }
    }
    Ok(out)
}

/// Every definition of the step sources.
pub fn definitions() -> Result<Vec<Definition>> {
    let mut all = Vec::new();
    for (file, source) in SOURCES {
        all.extend(parse_source(file, source)?);
    }
    Ok(all)
}

/// What cucumber registered: (kind, file name, line, regex).
pub fn registered() -> Vec<(String, String, u32, String)> {
    fn file_name(path: &str) -> String {
        Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
    }
    let mut out = Vec::new();
    let mut add = |kind: &str, (loc, regex, _): (cucumber::step::Location, cucumber::codegen::LazyRegex, _)| {
        out.push((kind.to_string(), file_name(loc.path), loc.line, regex().as_str().to_string()));
    };
    for s in cucumber::codegen::inventory::iter::<<MeshWorld as WorldInventory>::Given> {
        add("given", s.inner());
    }
    for s in cucumber::codegen::inventory::iter::<<MeshWorld as WorldInventory>::When> {
        add("when", s.inner());
    }
    for s in cucumber::codegen::inventory::iter::<<MeshWorld as WorldInventory>::Then> {
        add("then", s.inner());
    }
    out.sort();
    out
}

/// The features of a directory (or one file), parsed, outlines expanded.
pub fn parse_features(path: &Path) -> Result<Vec<gherkin::Feature>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the features at {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "feature"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|f| {
            gherkin::Feature::parse_path(f, gherkin::GherkinEnv::default())
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))
        })
        .collect()
}

/// The catalog: every registered step with its source's doc comment, and the
/// scenarios of `features` that use it. Fails if the sources and cucumber's
/// collection disagree, or if a feature step matches no step or several.
pub fn build(features: &[gherkin::Feature]) -> Result<Catalog> {
    let defs = definitions()?;
    let registered = registered();
    let mut by_location: BTreeMap<(String, u32), Entry> = BTreeMap::new();
    for (kind, file, line, _) in &registered {
        let def = defs
            .iter()
            .find(|d| d.file == format!("steps/{file}") && d.line == *line && d.kind == *kind)
            .with_context(|| format!("cucumber registered a {kind} step at steps/{file}:{line} the catalog cannot find in the sources (is the module in catalog::SOURCES?)"))?;
        by_location.insert((file.clone(), *line), Entry { definition: def.clone(), used_by: Vec::new() });
    }
    if by_location.len() != defs.len() {
        let missing: Vec<String> = defs
            .iter()
            .filter(|d| !registered.iter().any(|(_, f, l, _)| d.file == format!("steps/{f}") && d.line == *l))
            .map(|d| format!("{}:{} {}", d.file, d.line, d.pattern))
            .collect();
        bail!("the sources define steps cucumber did not register: {missing:?}");
    }
    let collection = MeshWorld::collection();
    for template in features {
        let expanded = template.clone().expand_examples().map_err(|e| anyhow::anyhow!("{}: {e}", template.name))?;
        let mut uses: Vec<(&gherkin::Step, String)> = Vec::new();
        let backgrounds = expanded.background.iter().chain(expanded.rules.iter().flat_map(|r| r.background.iter()));
        for bg in backgrounds {
            uses.extend(bg.steps.iter().map(|s| (s, "Background".to_string())));
        }
        let scenarios = expanded.scenarios.iter().chain(expanded.rules.iter().flat_map(|r| r.scenarios.iter()));
        let originals: Vec<&gherkin::Scenario> =
            template.scenarios.iter().chain(template.rules.iter().flat_map(|r| r.scenarios.iter())).collect();
        for sc in scenarios {
            // An expanded outline's scenario carries its example's name; list the outline once.
            let name = originals
                .iter()
                .find(|o| o.span.start <= sc.span.start && sc.span.start < o.span.end.max(o.span.start + 1))
                .map(|o| o.name.clone())
                .unwrap_or_else(|| sc.name.clone());
            uses.extend(sc.steps.iter().map(|s| (s, name.clone())));
        }
        for (step, scenario) in uses {
            let found = collection
                .find(step)
                .map_err(|e| anyhow::anyhow!("{}: the step {:?} is ambiguous: {e}", template.name, step.value))?;
            let Some((_, _, Some(loc), _)) = found else {
                bail!("{} / {scenario}: no step definition matches {:?}", template.name, step.value);
            };
            let file = Path::new(loc.path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let entry = by_location.get_mut(&(file.clone(), loc.line)).with_context(|| {
                format!("{:?} matched steps/{file}:{}, which is not catalogued", step.value, loc.line)
            })?;
            let u = Use { feature: template.name.clone(), scenario };
            if !entry.used_by.contains(&u) {
                entry.used_by.push(u);
            }
        }
    }
    let mut entries: Vec<Entry> = by_location.into_values().collect();
    let order = |k: &str| ["given", "when", "then"].iter().position(|x| *x == k).unwrap_or(3);
    entries.sort_by(|a, b| {
        (order(&a.definition.kind), &a.definition.file, a.definition.line).cmp(&(
            order(&b.definition.kind),
            &b.definition.file,
            b.definition.line,
        ))
    });
    Ok(Catalog { entries })
}

fn title(kind: &str) -> &'static str {
    match kind {
        "given" => "Given",
        "when" => "When",
        _ => "Then",
    }
}

impl Catalog {
    pub fn markdown(&self) -> String {
        let mut md = String::from("# meshspec step catalog\n\n");
        md.push_str(&format!(
            "{} step patterns, generated from the step definitions in `steps/` (cucumber's own step collection \
             and the doc comments of the sources) and matched against the features with cucumber's own step \
             matching. Do not edit: `meshspec docs --catalog` writes it.\n",
            self.entries.len()
        ));
        let mut kind = "";
        for e in &self.entries {
            let d = &e.definition;
            if d.kind != kind {
                kind = &d.kind;
                md.push_str(&format!("\n## {}\n", title(kind)));
            }
            md.push_str(&format!("\n### {} `{}`\n\n", title(&d.kind), d.pattern));
            if !d.doc.is_empty() {
                md.push_str(&format!("{}\n\n", d.doc));
            }
            md.push_str(&format!(
                "- defined in `{}:{}` (`{}`, {})\n",
                d.file,
                d.line,
                d.function,
                syntax_name(&d.syntax)
            ));
            if e.used_by.is_empty() {
                md.push_str("- used by no scenario\n");
            }
            for u in &e.used_by {
                md.push_str(&format!("- used by: {} / {}\n", u.feature, u.scenario));
            }
        }
        md
    }

    pub fn html(&self) -> String {
        let mut body = String::new();
        body.push_str("<header><h1>meshspec step catalog</h1>");
        body.push_str(&format!(
            "<p>{} step patterns, generated from the step definitions in <code>steps/</code> and matched against the \
             features with cucumber's own step matching.</p></header>",
            self.entries.len()
        ));
        let mut kind = "";
        for e in &self.entries {
            let d = &e.definition;
            if d.kind != kind {
                if !kind.is_empty() {
                    body.push_str("</section>");
                }
                kind = &d.kind;
                body.push_str(&format!("<section class=\"kind\"><h2>{}</h2>", title(kind)));
            }
            body.push_str(&format!(
                "<article class=\"pattern\" data-kind=\"{}\" data-pattern=\"{}\"><h3><span class=\"kw\">{}</span> <code>{}</code></h3>",
                esc(&d.kind),
                esc(&d.pattern),
                title(&d.kind),
                esc(&d.pattern)
            ));
            if !d.doc.is_empty() {
                body.push_str(&format!("<p>{}</p>", text_with_code(&d.doc)));
            }
            body.push_str(&format!(
                "<p class=\"meta\">defined in <code>{}:{}</code> (<code>{}</code>, {})</p>",
                esc(&d.file),
                d.line,
                esc(&d.function),
                syntax_name(&d.syntax)
            ));
            if e.used_by.is_empty() {
                body.push_str("<p class=\"meta\">used by no scenario</p>");
            } else {
                body.push_str("<ul class=\"uses\">");
                for u in &e.used_by {
                    body.push_str(&format!("<li>{} / {}</li>", esc(&u.feature), esc(&u.scenario)));
                }
                body.push_str("</ul>");
            }
            body.push_str("</article>");
        }
        if !kind.is_empty() {
            body.push_str("</section>");
        }
        super::html::document("meshspec step catalog", &body)
    }
}

fn syntax_name(s: &str) -> &'static str {
    match s {
        "expr" => "cucumber expression",
        "regex" => "regular expression",
        _ => "exact text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_with_their_doc_comments() {
        let src = r#"
/// Provision once.
/// Shared by all.
#[given("the deployment is provisioned")]
async fn provisioned(w: &mut MeshWorld) -> StepResult {}

#[then(
    expr = "the sleep pod in {string} holds \"x\""
)]
async fn endpoints(w: &mut MeshWorld) -> StepResult {}

// not a doc comment
#[when(regex = r"^(\d+) requests$")]
async fn n(w: &mut MeshWorld) -> StepResult {}
"#;
        let defs = parse_source("x.rs", src).unwrap();
        assert_eq!(defs.len(), 3);
        assert_eq!(defs[0].doc, "Provision once. Shared by all.");
        assert_eq!((defs[0].syntax.as_str(), defs[0].line, defs[0].function.as_str()), ("literal", 4, "provisioned"));
        assert_eq!(defs[1].pattern, "the sleep pod in {string} holds \"x\"");
        assert_eq!((defs[1].syntax.as_str(), defs[1].doc.as_str()), ("expr", ""));
        assert_eq!((defs[2].syntax.as_str(), defs[2].pattern.as_str()), ("regex", r"^(\d+) requests$"));
    }

    #[test]
    fn every_step_module_is_compiled_into_the_catalog() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("steps");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        on_disk.sort();
        let compiled: Vec<String> = SOURCES.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(on_disk, compiled);
    }

    /// The catalog is cucumber's collection: every registered step is one
    /// catalogued pattern, every feature step matches exactly one of them.
    #[test]
    fn the_catalog_is_what_cucumber_registered_and_the_features_use() {
        let features = parse_features(&Path::new(env!("CARGO_MANIFEST_DIR")).join("features")).unwrap();
        let catalog = build(&features).unwrap();
        let registered = registered();
        assert_eq!(catalog.entries.len(), registered.len());
        for e in &catalog.entries {
            let d = &e.definition;
            let (_, _, _, regex) = registered
                .iter()
                .find(|(k, f, l, _)| *k == d.kind && d.file.ends_with(f.as_str()) && *l == d.line)
                .unwrap();
            if d.syntax == "literal" {
                // cucumber matches a literal exactly: its regex is the escaped text, anchored.
                assert_eq!(*regex, format!("^{}$", regex::escape(&d.pattern)), "{d:?}");
            } else if d.syntax == "regex" {
                assert_eq!(*regex, d.pattern);
            }
        }
        let provisioned = catalog
            .entries
            .iter()
            .find(|e| e.definition.pattern == "the deployment is provisioned in stages on the target")
            .unwrap();
        assert!(provisioned.used_by.iter().any(|u| u.scenario == "Background"));
        let send = catalog
            .entries
            .iter()
            .find(|e| e.definition.pattern.starts_with("the sleep pod in {string} sends"))
            .unwrap();
        let features: Vec<&str> = send.used_by.iter().map(|u| u.feature.as_str()).collect();
        assert!(
            features.contains(&"Cross-cluster load balancing") && features.contains(&"Stage ordering"),
            "{features:?}"
        );
        // An outline is listed once, by its own name.
        assert!(send.used_by.iter().any(|u| u.scenario == "Requests from <cluster> reach both helloworld versions"));
    }

    #[test]
    fn a_feature_step_without_definition_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.feature");
        std::fs::write(&f, "Feature: X\n  Scenario: Y\n    Given nothing defines this step\n").unwrap();
        let err = build(&parse_features(&f).unwrap()).unwrap_err().to_string();
        assert!(err.contains("no step definition matches"), "{err}");
    }
}
