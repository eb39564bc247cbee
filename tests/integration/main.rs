//! Integration tests: meshspec's adapters against the twin and moto, the twin
//! against clients nobody here wrote (kubectl, the aws CLI), and bad input.

mod adapters;
mod bad_input;
mod harness;
mod html_report;
mod moto;
mod reap;
mod secrets;
mod twin_clients;
