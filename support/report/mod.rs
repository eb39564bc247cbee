//! Reports beyond cucumber's own: evidence that steps attach, merged into the
//! Cucumber JSON as step embeddings and written as evidence.json; and the
//! documents rendered from them after a run (the page, the conformance
//! report, the trend line) and by `meshspec docs` (the page, the step catalog).

pub mod bundle;
pub mod catalog;
pub mod conformance;
pub mod convergence;
pub mod documents;
pub mod evidence;
pub mod html;
pub mod meta;
pub mod model;
pub mod redact;
pub mod staging;
pub mod trend;
pub mod versions;
