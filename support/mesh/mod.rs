//! Mesh inspection and mesh material: the plugged-in CA (`cacerts`), and (as
//! the project grows) remote secrets, Envoy endpoints and istiod debug output.

pub mod cacerts;
pub mod envoy;
pub mod envoy_dump;
mod goyaml;
pub mod istiod;
pub mod remote_secret;
pub mod traffic;
