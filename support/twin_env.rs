//! What `meshspec twin up` hands to other tools: a kubeconfig whose contexts are
//! named like `aws eks update-kubeconfig` names them (the cluster ARN), and an
//! env file of KEY=VALUE lines (KUBECONFIG, CTX_CLUSTER1/2, AWS_*, MESHSPEC_DNS).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;

use crate::aws::eks;
use crate::run::Session;

/// The two files `twin up` writes; both hold credentials and are mode 0600.
#[derive(Clone, Debug)]
pub struct TwinEnvFiles {
    pub env_file: PathBuf,
    pub kubeconfig: PathBuf,
}

impl TwinEnvFiles {
    pub fn for_env_file(env_file: &Path) -> Self {
        let mut kubeconfig = env_file.as_os_str().to_owned();
        kubeconfig.push(".kubeconfig");
        TwinEnvFiles { env_file: env_file.to_path_buf(), kubeconfig: PathBuf::from(kubeconfig) }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.env_file);
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// A value as a shell word: bare when it is safe, else single-quoted.
fn shell_word(v: &str) -> String {
    let safe = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:/,@%+=".contains(c));
    if safe {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

fn aws_vars(twin: &crate::target::TwinEndpoints) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".to_string(), twin.aws_endpoint.clone()),
        ("AWS_REGION".to_string(), twin.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), twin.region.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), twin.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), twin.secret_access_key.clone()),
        ("MESHSPEC_DNS".to_string(), twin.dns.to_string()),
    ]
}

fn env_text(vars: &[(String, String)]) -> String {
    vars.iter().map(|(k, v)| format!("{k}={}\n", shell_word(v))).collect()
}

/// The env file of a bare twin: its AWS endpoint, credentials and DNS, no clusters yet.
pub async fn write_bare(session: &Session, files: &TwinEnvFiles) -> Result<Vec<(String, String)>> {
    let twin = session.twin_endpoints().await.context("twin up needs the twin target")?;
    let vars = aws_vars(&twin);
    crate::tools::write_private(&files.env_file, &env_text(&vars))?;
    Ok(vars)
}

/// Write the kubeconfig and env file for a provisioned twin session.
pub async fn write(session: &Session, files: &TwinEnvFiles) -> Result<Vec<(String, String)>> {
    let twin = session.twin_endpoints().await.context("twin up needs the twin target")?;
    let aws = session.aws()?;
    let mut clusters = Vec::new();
    let mut contexts = Vec::new();
    let mut users = Vec::new();
    let mut arns = Vec::new();
    for c in &session.topology.clusters {
        let d = eks::describe(aws, &c.name).await?.with_context(|| format!("EKS has no cluster {}", c.name))?;
        let endpoint = d.endpoint.clone().context("cluster without endpoint")?;
        let ca = d.ca_pem.clone().context("cluster without CA")?;
        let token = session
            .twin_admin_token(&c.name)
            .await
            .with_context(|| format!("the twin has no admin token for {}", c.name))?;
        clusters.push(serde_json::json!({"name": d.arn, "cluster": {
            "server": endpoint,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca)}}));
        contexts.push(serde_json::json!({"name": d.arn, "context": {"cluster": d.arn, "user": d.arn}}));
        users.push(serde_json::json!({"name": d.arn, "user": {"token": token}}));
        arns.push(d.arn);
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": clusters, "contexts": contexts, "users": users,
        "current-context": arns[0],
    });
    crate::tools::write_private(&files.kubeconfig, &serde_yaml::to_string(&kubeconfig)?)?;
    let kubeconfig_path = std::fs::canonicalize(&files.kubeconfig)?;
    let mut vars = vec![("KUBECONFIG".to_string(), kubeconfig_path.display().to_string())];
    for (i, arn) in arns.iter().enumerate() {
        vars.push((format!("CTX_CLUSTER{}", i + 1), arn.clone()));
    }
    vars.extend(aws_vars(&twin));
    crate::tools::write_private(&files.env_file, &env_text(&vars))?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words_survive_sourcing() {
        assert_eq!(shell_word("arn:aws:eks:us-west-2:1:cluster/eks-1"), "arn:aws:eks:us-west-2:1:cluster/eks-1");
        assert_eq!(shell_word("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_word(""), "''");
    }
}
