//! kind as the kind provisioner calls it, and what it prints.

use std::path::Path;

use anyhow::{Context, Result};

pub fn create_args(name: &str, config: &Path, kubeconfig: &Path) -> Vec<String> {
    vec![
        "create".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config.display().to_string(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--wait".into(),
        "5m".into(),
    ]
}

pub fn delete_args(name: &str, kubeconfig: &Path) -> Vec<String> {
    vec![
        "delete".into(),
        "cluster".into(),
        "--name".into(),
        name.into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ]
}

pub fn list_args() -> Vec<String> {
    vec!["get".into(), "clusters".into()]
}

/// The kubeconfig that reaches the API server from inside the kind network.
pub fn internal_kubeconfig_args(name: &str) -> Vec<String> {
    vec!["get".into(), "kubeconfig".into(), "--name".into(), name.into(), "--internal".into()]
}

/// `kind get clusters` prints one name a line (or "No kind clusters found." on stderr).
pub fn cluster_names(stdout: &[String]) -> Vec<String> {
    stdout.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// The context kind names a cluster's kubeconfig entry.
pub fn context(name: &str) -> String {
    format!("kind-{name}")
}

/// The node container of a one-node cluster, as Docker names it.
pub fn control_plane_container(name: &str) -> String {
    format!("{name}-control-plane")
}

/// The API server address and CA of an internal kubeconfig.
pub struct InternalEndpoint {
    pub server: url::Url,
    pub ca_pem: String,
}

pub fn parse_internal_kubeconfig(text: &str) -> Result<InternalEndpoint> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).context("kind printed a kubeconfig that is not YAML")?;
    let cluster = doc["clusters"][0]["cluster"].clone();
    let server = cluster["server"].as_str().context("the internal kubeconfig names no server")?;
    let ca = cluster["certificate-authority-data"].as_str().context("the internal kubeconfig has no CA")?;
    use base64::Engine;
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(ca.trim()).context("the kubeconfig CA is not base64")?,
    )
    .context("the kubeconfig CA is not PEM text")?;
    Ok(InternalEndpoint { server: server.parse().context("the internal server is not a URL")?, ca_pem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_kubeconfigs_give_the_server_and_ca() {
        let text = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTgo=\n    server: https://cluster1-control-plane:6443\n  name: kind-cluster1\n";
        let e = parse_internal_kubeconfig(text).unwrap();
        assert_eq!(e.server.host_str(), Some("cluster1-control-plane"));
        assert_eq!(e.server.port(), Some(6443));
        assert_eq!(e.ca_pem, "-----BEGIN\n");
        assert!(parse_internal_kubeconfig("clusters: []").is_err());
    }

    #[test]
    fn names_and_arguments() {
        assert_eq!(cluster_names(&["cluster1".into(), "".into(), " other ".into()]), ["cluster1", "other"]);
        assert_eq!(context("cluster1"), "kind-cluster1");
        let args = create_args("cluster1", Path::new("/c.yaml"), Path::new("/k"));
        assert_eq!(args.join(" "), "create cluster --name cluster1 --config /c.yaml --kubeconfig /k --wait 5m");
    }
}
