//! The twin's Kubernetes API server: one HTTPS endpoint per simulated EKS
//! cluster that kubectl and kube-rs use as they would a real one. Objects live
//! in an in-memory [`Store`] that the twin's controllers also use in-process.
//! Wire behaviour follows `shared/reference/kubernetes-wire.md`.

mod api;
pub mod authz;
mod body;
mod crd;
mod defaults;
pub mod discovery;
pub mod error;
pub mod exec;
pub mod faults;
pub mod logs;
mod object;
pub mod patch;
pub mod protobuf;
pub mod resources;
mod reviews;
mod route;
mod scale;
pub mod selector;
pub mod server;
pub mod store;
mod table;
pub mod tls;
mod validate;
mod watch;

pub use error::{ApiError, FieldCause};
pub use exec::{ExecHandler, ExecOutput, ExecRequest};
pub use faults::ApiFaults;
pub use logs::{LogQuery, PodLogs};
pub use resources::{Catalog, CrdVersions, Resource, ResourceInfo, Subresource};
pub use server::{ApiServer, ApiServerConfig, Authenticator};
pub use store::{DeleteOptions, EventKind, Part, Propagation, Store, StoreEvent, WatchStart};
pub use tls::TwinCa;
