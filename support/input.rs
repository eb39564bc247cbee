//! Strict reading of the user's YAML files (topology, stage plan): an unknown
//! key is an error naming the file, the line, the key and, where one is close,
//! the key that was meant. A misspelt `netwrok:` beside `network:` would
//! otherwise be dropped without a word and the run would test something else.

use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_path_to_error::Segment;

/// Why a YAML file was refused; rendered once, here.
#[derive(Debug, Clone, PartialEq)]
pub enum InputError {
    UnknownKey {
        file: PathBuf,
        line: usize,
        /// Where the key sits, e.g. `clusters[0]` (empty at the top level).
        at: String,
        key: String,
        known: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        at: String,
        message: String,
    },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::UnknownKey { file, line, at, key, known, suggestion } => {
                write!(f, "{}:{line}: unknown key `{key}`", file.display())?;
                if !at.is_empty() {
                    write!(f, " in {at}")?;
                }
                match suggestion {
                    Some(s) => write!(f, "; did you mean `{s}`?")?,
                    None => write!(f, "; the keys here are {}", known.join(", "))?,
                }
                Ok(())
            }
            InputError::Invalid { file, line, at, message } => {
                write!(f, "{}", file.display())?;
                if let Some(l) = line {
                    write!(f, ":{l}")?;
                }
                write!(f, ": ")?;
                if !at.is_empty() {
                    write!(f, "{at}: ")?;
                }
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for InputError {}

/// The closest known key to a misspelt one, if it is close enough to be a slip.
pub fn did_you_mean(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Decode `text` (the content of `file`) as `T`, whose structs deny unknown fields.
pub fn from_yaml<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, InputError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        let key_here = inner.location().and_then(|l| key_at(text, l.line(), l.column()));
        // The path ends at the mapping that holds the unknown key, or at the key itself.
        let (parent, key) = match (path.split_last(), &key_here) {
            (Some((Segment::Map { key }, parent)), _) if fields_at::<T>(parent).is_some() => {
                (parent.to_vec(), Some(key.clone()))
            }
            (_, Some(k)) => (path.clone(), Some(k.clone())),
            _ => (path.clone(), None),
        };
        if let (Some(known), Some(key), Some(line)) = (fields_at::<T>(&parent), key, line) {
            if !known.contains(&key.as_str()) {
                return InputError::UnknownKey {
                    file: file.to_path_buf(),
                    line,
                    at: render_path(&parent),
                    suggestion: did_you_mean(&key, known),
                    key,
                    known: known.to_vec(),
                };
            }
        }
        // serde_yaml's message ends with its own " at line L column C"; the line is ours to show.
        let message = inner.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) if line.is_some() => message[..i].to_string(),
            _ => message,
        };
        // serde_yaml starts a message inside nested values with the same path; it is shown once.
        let at = render_path(&path);
        let message = match message.strip_prefix(&format!("{at}: ")) {
            Some(rest) if !at.is_empty() => rest.to_string(),
            _ => message,
        };
        InputError::Invalid { file: file.to_path_buf(), line, at, message }
    })
}

/// The mapping key that starts at 1-based (line, column), as the file spells it.
fn key_at(text: &str, line: usize, column: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let rest = l.get(column.checked_sub(1)?..)?;
    let key = rest.split(':').next()?.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_string())
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => out.push_str(&format!("::{variant}")),
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// The field names serde knows for the struct at `path` inside `T`: a
/// deserializer that feeds `T` nothing but the path, and stops at the struct.
pub fn fields_at<T: DeserializeOwned>(path: &[Segment]) -> Option<&'static [&'static str]> {
    match T::deserialize(Probe { path }) {
        Err(ProbeError(found)) => found,
        Ok(_) => None,
    }
}

#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        ProbeError(None)
    }
}

struct Probe<'a> {
    path: &'a [Segment],
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        match self.path.split_first() {
            None => Err(ProbeError(Some(fields))),
            Some((Segment::Map { key }, rest)) => visitor.visit_map(ProbeMap { key: Some(key), rest }),
            Some(_) => Err(ProbeError(None)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        match self.path.split_first() {
            Some((Segment::Map { key }, rest)) => visitor.visit_map(ProbeMap { key: Some(key), rest }),
            _ => Err(ProbeError(None)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        match self.path.split_first() {
            Some((Segment::Seq { .. }, rest)) => visitor.visit_seq(ProbeSeq { rest, done: false }),
            _ => Err(ProbeError(None)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct tuple tuple_struct enum identifier ignored_any
    }
}

struct ProbeMap<'a> {
    key: Option<&'a str>,
    rest: &'a [Segment],
}

impl<'de> de::MapAccess<'de> for ProbeMap<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeError> {
        match self.key.take() {
            Some(k) => seed.deserialize(k.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeError> {
        seed.deserialize(Probe { path: self.rest })
    }
}

struct ProbeSeq<'a> {
    rest: &'a [Segment],
    done: bool,
}

impl<'de> de::SeqAccess<'de> for ProbeSeq<'_> {
    type Error = ProbeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, ProbeError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        seed.deserialize(Probe { path: self.rest }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Topology;

    fn load(text: &str) -> Result<Topology, InputError> {
        from_yaml(text, Path::new("t.yaml"))
    }

    fn seed_text() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(Topology::DEFAULT_FILE)).unwrap()
    }

    #[test]
    fn the_seed_topology_is_strictly_valid() {
        assert_eq!(load(&seed_text()).unwrap(), Topology::seed());
    }

    #[test]
    fn a_misspelt_key_beside_the_right_one_is_named_with_its_line() {
        let text = seed_text().replacen("    network: network1\n", "    network: network1\n    netwrok: network9\n", 1);
        let line = text.lines().position(|l| l.contains("netwrok")).unwrap() + 1;
        let e = load(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("t.yaml:{line}: unknown key `netwrok` in clusters[0]; did you mean `network`?")
        );
    }

    #[test]
    fn a_misspelt_top_level_key_suggests_the_known_one() {
        let text = seed_text().replace("mesh_id: mesh1", "mesh_idd: mesh1");
        let e = load(&text).unwrap_err();
        match &e {
            InputError::UnknownKey { key, suggestion, at, .. } => {
                assert_eq!((key.as_str(), *suggestion, at.as_str()), ("mesh_idd", Some("mesh_id"), ""))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_unlike_any_lists_the_known_ones() {
        let text = seed_text().replacen("      pod_subnet:", "      colour: blue\n      pod_subnet:", 1);
        let e = load(&text).unwrap_err().to_string();
        assert!(
            e.contains("unknown key `colour` in clusters[0].kind; the keys here are name, pod_subnet, service_subnet"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_names_the_line_and_the_path() {
        let text = seed_text().replacen("    sample_version: v1", "    sample_version: [v1]", 1);
        let line = text.lines().position(|l| l.contains("[v1]")).unwrap() + 1;
        match load(&text).unwrap_err() {
            InputError::Invalid { line: l, at, .. } => {
                assert_eq!((l, at.as_str()), (Some(line), "clusters[0].sample_version"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn suggestions_are_only_for_slips() {
        let known = &["network", "name", "vpc_cidr"];
        assert_eq!(did_you_mean("netwrok", known), Some("network"));
        assert_eq!(did_you_mean("nme", known), Some("name"));
        assert_eq!(did_you_mean("colour", known), None);
    }
}
