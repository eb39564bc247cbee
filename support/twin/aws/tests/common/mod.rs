//! Shared by the real-client tests: a running endpoint and the aws CLI v1.
#![allow(dead_code)]

use meshspec_twin_aws::{serve, AwsConfig, AwsServer, AwsState, Clock, Delays};
use serde_json::Value;
use std::process::Stdio;

pub const AKID: &str = "AKIAMESHSPECTWIN0001";
/// Contains `/` and `+` like real secrets do.
pub const SECRET: &str = "tw1n/Secret+Key0123456789abcdefghijklmnop";

pub async fn start(scale: f64, delays: Delays) -> (AwsState, AwsServer) {
    let state = AwsState::new(AwsConfig {
        credentials: vec![(AKID.to_string(), SECRET.to_string())],
        clock: Clock::new(scale),
        delays,
        ..AwsConfig::default()
    });
    let server = serve(state.clone()).await.expect("serve");
    (state, server)
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// For commands that print nothing on success.
    pub fn json_or_empty(&self) -> Value {
        assert_eq!(self.code, 0, "aws failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// The CLI's JSON output; panics with stderr when the call failed.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "aws failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `aws <args>` against `url` with the given credentials, isolated from
/// any local AWS configuration.
pub async fn aws_as(url: &str, key: &str, secret: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new("aws");
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_EKS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(args)
        .args(["--output", "json"])
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-west-2")
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the aws CLI is installed");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn aws(url: &str, args: &[&str]) -> Output {
    aws_as(url, AKID, SECRET, args).await
}

pub fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A VPC 10.1.0.0/16 with public subnets in us-west-2a/b/c; returns (vpc, subnets).
pub fn network(state: &AwsState) -> (String, Vec<String>) {
    let vpc = state.create_vpc("10.1.0.0/16", tags(&[("Name", "eks-1-vpc")])).unwrap();
    let subnets = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, z)| {
            state
                .create_subnet(
                    &vpc,
                    &format!("10.1.{}.0/24", 48 + i),
                    &format!("us-west-2{z}"),
                    tags(&[("kubernetes.io/role/elb", "1")]),
                )
                .unwrap()
        })
        .collect();
    (vpc, subnets)
}
