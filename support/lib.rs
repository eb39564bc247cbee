//! meshspec: the runbook of an Istio multi-primary, multi-network mesh on two
//! EKS clusters as executable Gherkin. This library is the machinery behind the
//! features: topology, the AWS and Kubernetes adapters, mesh material, waits,
//! provisioning, checks, the runner, and the step definitions themselves.

pub mod api_faults;
pub mod aws;
pub mod bench;
pub mod bench_k3s;
pub mod bench_suite;
pub mod checks;
pub mod containers;
pub mod dns;
pub mod doctor;
pub mod faults;
pub mod fixtures;
pub mod input;
pub mod interrupt;
pub mod kube;
pub mod ledger;
pub mod mesh;
pub mod progress;
pub mod provision;
pub mod report;
pub mod run;
pub mod runner;
pub mod target;
pub mod timeouts;
pub mod tools;
pub mod topology;
pub mod twin_env;
pub mod twin_up;
pub mod wait;

#[path = "../steps/mod.rs"]
pub mod steps;

pub use meshspec_twin as twin;

/// Both kube (ring or aws-lc) and the AWS SDK enable rustls providers; one
/// process-wide choice must be made before the first TLS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
