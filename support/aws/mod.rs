//! The AWS adapter: aws-sdk clients from aws-config, and the few operations
//! meshspec needs from EKS, EC2 and ELBv2. The same code runs against real AWS,
//! the twin's endpoint, or moto: only the settings differ.

pub mod connect;
pub mod eks;
pub mod kubeconfig;
pub mod network;
pub mod nlb;
pub mod token;

pub use connect::{AwsAccess, AwsSettings};
