//! Mesh inspection and mesh material: the plugged-in CA (`cacerts`), and (as
//! the project grows) remote secrets, Envoy endpoints and istiod debug output.

pub mod cacerts;
