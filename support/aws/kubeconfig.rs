//! The kubeconfig `aws eks update-kubeconfig` writes: one context per cluster,
//! named after its ARN, whose user runs `aws eks get-token`. It holds no
//! credential, so it can be handed to the user after meshspec provisioned.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;

use super::eks::EksCluster;

pub fn render(region: &str, clusters: &[EksCluster]) -> Result<String> {
    let mut entries = (Vec::new(), Vec::new(), Vec::new());
    for c in clusters {
        let server = c.endpoint.as_deref().with_context(|| format!("EKS cluster {} has no endpoint yet", c.name))?;
        let ca = c.ca_pem.as_deref().with_context(|| format!("EKS cluster {} has no CA yet", c.name))?;
        entries.0.push(serde_json::json!({"name": c.arn, "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca)}}));
        entries.1.push(serde_json::json!({"name": c.arn, "context": {"cluster": c.arn, "user": c.arn}}));
        entries.2.push(serde_json::json!({"name": c.arn, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["--region", region, "eks", "get-token", "--cluster-name", c.name, "--output", "json"]}}}));
    }
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": entries.0, "contexts": entries.1, "users": entries.2,
        "current-context": clusters.first().map(|c| c.arn.clone()).unwrap_or_default(),
    });
    serde_yaml::to_string(&doc).context("cannot render the kubeconfig")
}

pub fn write(path: &Path, region: &str, clusters: &[EksCluster]) -> Result<()> {
    let text = render(region, clusters)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write the kubeconfig {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_named_after_the_arns_and_hold_no_credential() {
        let c = EksCluster {
            name: "eks-1".into(),
            arn: "arn:aws:eks:us-west-2:1:cluster/eks-1".into(),
            status: "ACTIVE".into(),
            version: "1.28".into(),
            endpoint: Some("https://example.eks".into()),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n".into()),
            vpc_id: None,
            platform_version: None,
            tags: Default::default(),
        };
        let text = render("us-west-2", std::slice::from_ref(&c)).unwrap();
        let v: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["contexts"][0]["name"], c.arn);
        assert_eq!(v["current-context"], c.arn);
        assert_eq!(v["users"][0]["user"]["exec"]["args"][5], "eks-1");
        assert!(!text.contains("token:"));
        let no_endpoint = EksCluster { endpoint: None, ..c };
        assert!(render("us-west-2", &[no_endpoint]).is_err());
    }
}
