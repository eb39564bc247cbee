//! Mesh inspection and mesh material: the plugged-in CA (`cacerts`), remote
//! secrets, Envoy endpoints, istiod debug output, and traffic through the
//! sidecars (the load-balancing requests, and the probe that keeps sending
//! them through an operation).

pub mod ca_rotation;
pub mod cacerts;
pub mod envoy;
pub mod envoy_dump;
pub mod gateway_ops;
mod goyaml;
pub mod istiod;
pub mod probe;
pub mod remote_secret;
pub mod secret_operations;
pub mod traffic;
