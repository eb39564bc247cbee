//! Reports beyond cucumber's own: evidence that steps attach, merged into the
//! Cucumber JSON as step embeddings and written as evidence.json.

pub mod bundle;
pub mod evidence;
pub mod redact;
