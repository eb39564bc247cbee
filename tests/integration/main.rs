//! Integration tests: meshspec's adapters against the twin and moto, the twin
//! against clients nobody here wrote (kubectl, the aws CLI), and bad input.

mod adapters;
mod bad_input;
mod containers;
mod doctor;
mod fail_fast;
mod faulty_apis;
mod hangs;
mod harness;
mod html_report;
mod interrupts;
mod istio_minors;
mod k3s;
mod k3s_standin;
mod kind;
mod moto;
mod negative_checks;
mod operator_script;
mod proxy_config;
mod reap;
mod remote_secrets;
mod secrets;
mod standins;
mod targets;
mod terraform;
mod twin_clients;
mod twin_processes;
mod workflow;
