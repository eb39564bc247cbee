//! EKS: the clusters and what kube access is built from (endpoint + CA).

use std::collections::HashMap;

use anyhow::{Context, Result};
use base64::Engine;

use super::connect::error_code;
use super::AwsAccess;
use crate::wait::{self, Poll, WaitOptions};

#[derive(Clone, Debug)]
pub struct EksCluster {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub version: String,
    pub endpoint: Option<String>,
    /// PEM of the cluster CA (decoded from certificateAuthority.data).
    pub ca_pem: Option<String>,
    pub vpc_id: Option<String>,
    pub platform_version: Option<String>,
    pub tags: HashMap<String, String>,
}

impl EksCluster {
    fn from_sdk(c: &aws_sdk_eks::types::Cluster) -> Result<EksCluster> {
        let ca_pem = match c.certificate_authority().and_then(|ca| ca.data()) {
            Some(b64) => Some(
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .context("certificateAuthority.data is not base64")?,
                )
                .context("certificateAuthority.data is not a PEM text")?,
            ),
            None => None,
        };
        Ok(EksCluster {
            name: c.name().unwrap_or_default().to_string(),
            arn: c.arn().unwrap_or_default().to_string(),
            status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: c.version().unwrap_or_default().to_string(),
            endpoint: c.endpoint().map(str::to_string),
            ca_pem,
            vpc_id: c.resources_vpc_config().and_then(|v| v.vpc_id()).map(str::to_string),
            platform_version: c.platform_version().map(str::to_string),
            tags: c.tags().cloned().unwrap_or_default(),
        })
    }
}

/// DescribeCluster; Ok(None) when the cluster does not exist.
pub async fn describe(aws: &AwsAccess, name: &str) -> Result<Option<EksCluster>> {
    match aws.eks.describe_cluster().name(name).send().await {
        Ok(out) => out.cluster().map(EksCluster::from_sdk).transpose(),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => {
            Err(anyhow::Error::new(super::connect::AwsCallError::of("eks", format!("DescribeCluster {name}"), &e)))
        }
    }
}

/// Every cluster name, following nextToken.
pub async fn list(aws: &AwsAccess) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut pages = aws.eks.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::Error::new(super::connect::AwsCallError::of("eks", "ListClusters", &e)))?;
        names.extend(page.clusters().iter().cloned());
    }
    Ok(names)
}

pub struct NewCluster<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub role_arn: &'a str,
    pub subnet_ids: &'a [String],
    pub tags: HashMap<String, String>,
}

pub async fn create(aws: &AwsAccess, req: NewCluster<'_>) -> Result<EksCluster> {
    let vpc = aws_sdk_eks::types::VpcConfigRequest::builder()
        .set_subnet_ids(Some(req.subnet_ids.to_vec()))
        .endpoint_public_access(true)
        .endpoint_private_access(true)
        .build();
    let out = aws
        .eks
        .create_cluster()
        .name(req.name)
        .version(req.version)
        .role_arn(req.role_arn)
        .resources_vpc_config(vpc)
        .set_tags(Some(req.tags))
        .send()
        .await
        .map_err(|e| {
            anyhow::Error::new(super::connect::AwsCallError::of(
                "eks",
                format!("CreateCluster {name}", name = req.name),
                &e,
            ))
        })?;
    EksCluster::from_sdk(out.cluster().context("CreateCluster answered without a cluster")?)
}

/// Wait until the cluster is ACTIVE and carries an endpoint and a CA.
pub async fn wait_active(aws: &AwsAccess, name: &str, opts: WaitOptions) -> Result<EksCluster> {
    let cluster = wait::until(format!("EKS cluster {name} to be ACTIVE"), opts, || async {
        match describe(aws, name).await? {
            None => Ok(Poll::Pending(format!("cluster {name} does not exist"))),
            Some(c) if c.status == "FAILED" => Err(anyhow::anyhow!("cluster {name} is FAILED")),
            Some(c) if c.status == "ACTIVE" && c.endpoint.is_some() && c.ca_pem.is_some() => Ok(Poll::Ready(c)),
            Some(c) => Ok(Poll::Pending(format!("status {}", c.status))),
        }
    })
    .await?;
    Ok(cluster)
}

pub async fn delete(aws: &AwsAccess, name: &str) -> Result<()> {
    match aws.eks.delete_cluster().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(()),
        Err(e) => Err(anyhow::Error::new(super::connect::AwsCallError::of("eks", format!("DeleteCluster {name}"), &e))),
    }
}

/// Wait until DescribeCluster no longer finds the cluster.
pub async fn wait_gone(aws: &AwsAccess, name: &str, opts: WaitOptions) -> Result<()> {
    wait::until(format!("EKS cluster {name} to be deleted"), opts, || async {
        Ok::<_, anyhow::Error>(match describe(aws, name).await? {
            None => Poll::Ready(()),
            Some(c) => Poll::Pending(format!("status {}", c.status)),
        })
    })
    .await?;
    Ok(())
}
