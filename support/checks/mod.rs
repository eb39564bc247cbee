//! Checks: each verifies one fact of the deployment from a named data source
//! and, when it fails, says what it saw. Steps call these and assert nothing else.

pub mod ca_rotation;
pub mod check;
pub mod destroy;
pub mod load_balancing;
pub mod ordering;
pub mod probe;
pub mod provisioning;
pub mod readiness;
pub mod secret_operations;
pub mod sweep;
pub mod sync;
