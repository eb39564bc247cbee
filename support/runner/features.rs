//! The feature set of a run, read before the target is opened: a missing or
//! empty directory, a file that is not Gherkin, or a tag expression that selects
//! nothing is bad input, said with the file and line before anything costs money.

use std::path::{Path, PathBuf};

use cucumber::gherkin::{self, tagexpr::TagOperation, GherkinEnv};
use cucumber::tag::Ext as _;

#[derive(Debug, Clone, PartialEq)]
pub enum FeatureError {
    Missing(PathBuf),
    Empty(PathBuf),
    Unreadable {
        path: PathBuf,
        cause: String,
    },
    /// Not valid Gherkin. gherkin keeps the position private and shows it only
    /// in its message, so `line` is read from there when it can be.
    Parse {
        path: PathBuf,
        line: Option<(usize, usize)>,
        detail: String,
    },
    NothingSelected {
        dir: PathBuf,
        tags: String,
        scenarios: usize,
    },
}

impl std::fmt::Display for FeatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeatureError::Missing(p) => write!(f, "no features at {}", p.display()),
            FeatureError::Empty(p) => {
                write!(f, "no .feature file in {}: nothing to run (pass --features DIR or FILE)", p.display())
            }
            FeatureError::Unreadable { path, cause } => write!(f, "cannot read {}: {cause}", path.display()),
            FeatureError::Parse { path, line: Some((l, c)), detail } => {
                write!(f, "{}:{l}:{c}: not valid Gherkin: {detail}", path.display())
            }
            FeatureError::Parse { path, line: None, detail } => {
                write!(f, "{}: not valid Gherkin: {detail}", path.display())
            }
            FeatureError::NothingSelected { dir, tags, scenarios } => {
                write!(f, "the tag expression {tags:?} selects none of the {scenarios} scenarios in {}", dir.display())
            }
        }
    }
}

impl std::error::Error for FeatureError {}

/// What a run will be given: its files and how many scenarios the tags select.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub files: Vec<PathBuf>,
    pub scenarios: usize,
    pub selected: usize,
}

fn feature_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), FeatureError> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| FeatureError::Unreadable { path: path.to_path_buf(), cause: e.to_string() })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            feature_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "feature") {
            out.push(p);
        }
    }
    Ok(())
}

/// "Error at 5:3: {...}" → (5, 3) and the rest.
fn position_of(message: &str) -> (Option<(usize, usize)>, String) {
    let parsed = message.strip_prefix("Error at ").and_then(|rest| {
        let (pos, detail) = rest.split_once(": ")?;
        let (l, c) = pos.split_once(':')?;
        Some(((l.parse().ok()?, c.parse().ok()?), detail.to_string()))
    });
    match parsed {
        Some((pos, detail)) => (Some(pos), format!("expected one of {detail}")),
        None => (None, message.to_string()),
    }
}

fn parse(path: &Path) -> Result<gherkin::Feature, FeatureError> {
    gherkin::Feature::parse_path(path, GherkinEnv::default()).map_err(|e| match e {
        gherkin::ParseFileError::Reading { path, source } => {
            FeatureError::Unreadable { path, cause: source.to_string() }
        }
        gherkin::ParseFileError::Parsing { path, error, source } => {
            let (mut line, mut detail) = position_of(&source.to_string());
            if let Some(env) = error {
                // gherkin places the error where it gave up, after the line it
                // could not read; an unknown keyword is found on its own line.
                if let (gherkin::EnvError::UnknownKeyword(word), Some((at, _))) = (&env, line) {
                    line = keyword_line(&path, word, at).or(line);
                }
                detail = env.to_string();
            }
            FeatureError::Parse { path, line, detail }
        }
    })
}

/// The last line at or before `until` that starts with `word`: (line, column).
fn keyword_line(path: &Path, word: &str, until: usize) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .enumerate()
        .take(until)
        .filter(|(_, l)| l.trim_start().starts_with(word))
        .last()
        .map(|(i, l)| (i + 1, l.len() - l.trim_start().len() + 1))
}

/// Read every feature under `path`, and count the scenarios `tags` selects.
pub fn load(path: &Path, tags: Option<&TagOperation>, tag_text: Option<&str>) -> Result<FeatureSet, FeatureError> {
    if !path.exists() {
        return Err(FeatureError::Missing(path.to_path_buf()));
    }
    let mut files = Vec::new();
    feature_files(path, &mut files)?;
    if files.is_empty() {
        return Err(FeatureError::Empty(path.to_path_buf()));
    }
    let (mut scenarios, mut selected) = (0, 0);
    for f in &files {
        let feature = parse(f)?;
        let direct = feature.scenarios.iter().map(|s| (None, s));
        let in_rules = feature.rules.iter().flat_map(|r| r.scenarios.iter().map(move |s| (Some(r), s)));
        for (rule, s) in direct.chain(in_rules) {
            scenarios += 1;
            let all: Vec<&String> =
                feature.tags.iter().chain(rule.iter().flat_map(|r| &r.tags)).chain(&s.tags).collect();
            if tags.is_none_or(|t| t.eval(all.iter().copied())) {
                selected += 1;
            }
        }
    }
    if scenarios == 0 {
        return Err(FeatureError::Empty(path.to_path_buf()));
    }
    if selected == 0 {
        return Err(FeatureError::NothingSelected {
            dir: path.to_path_buf(),
            tags: tag_text.unwrap_or_default().to_string(),
            scenarios,
        });
    }
    Ok(FeatureSet { files, scenarios, selected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn an_empty_directory_is_said_to_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a feature").unwrap();
        assert_eq!(load(dir.path(), None, None).unwrap_err(), FeatureError::Empty(dir.path().to_path_buf()));
    }

    #[test]
    fn a_parse_error_carries_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.feature");
        std::fs::write(&path, "Feature: probe\n  Scenario: broken\n    Given a step\n  | a |\n nonsense here\n")
            .unwrap();
        let e = load(dir.path(), None, None).unwrap_err();
        match &e {
            FeatureError::Parse { path: p, line: Some((line, _)), .. } => assert_eq!((p, *line), (&path, 5)),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with(&format!("{}:5:", path.display())), "{e}");
    }

    #[test]
    fn the_shipped_features_parse_and_tags_select_from_them() {
        let features = Path::new(env!("CARGO_MANIFEST_DIR")).join("features");
        let all = load(&features, None, None).unwrap();
        assert_eq!(all.selected, all.scenarios);
        let t = TagOperation::from_str("@readiness").unwrap();
        let some = load(&features, Some(&t), Some("@readiness")).unwrap();
        assert!(some.selected > 0 && some.selected < all.scenarios);
        let none = TagOperation::from_str("@no-such-tag").unwrap();
        assert!(matches!(
            load(&features, Some(&none), Some("@no-such-tag")),
            Err(FeatureError::NothingSelected { .. })
        ));
    }
}
