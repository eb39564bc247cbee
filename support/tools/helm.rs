//! helm as the kind provisioner calls it: `upgrade --install` of one chart
//! into one kube context, waiting until its workloads are ready.

use std::path::{Path, PathBuf};

/// Istio's chart repository.
pub const ISTIO_REPO: &str = "https://istio-release.storage.googleapis.com/charts";
pub const METALLB_REPO: &str = "https://metallb.github.io/metallb";
pub const METALLB_VERSION: &str = "0.14.8";

#[derive(Clone, Debug)]
pub struct Release {
    pub name: String,
    pub chart: String,
    pub repo: String,
    pub version: String,
    pub namespace: String,
    pub values: Option<PathBuf>,
}

impl Release {
    pub fn new(name: &str, chart: &str, repo: &str, version: &str, namespace: &str) -> Self {
        Release {
            name: name.into(),
            chart: chart.into(),
            repo: repo.into(),
            version: version.into(),
            namespace: namespace.into(),
            values: None,
        }
    }

    pub fn install_args(&self, kubeconfig: &Path, context: &str, wait: std::time::Duration) -> Vec<String> {
        let mut args = vec![
            "upgrade".into(),
            "--install".into(),
            self.name.clone(),
            self.chart.clone(),
            "--repo".into(),
            self.repo.clone(),
            "--version".into(),
            self.version.clone(),
            "--namespace".into(),
            self.namespace.clone(),
            "--create-namespace".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--kube-context".into(),
            context.into(),
            "--wait".into(),
            "--timeout".into(),
            format!("{}s", wait.as_secs()),
        ];
        if let Some(v) = &self.values {
            args.push("--values".into());
            args.push(v.display().to_string());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_waits_in_its_context_with_its_values() {
        let mut r = Release::new("istiod", "istiod", ISTIO_REPO, "1.20.2", "istio-system");
        r.values = Some("/tmp/v.yaml".into());
        let args = r.install_args(Path::new("/k"), "kind-cluster1", std::time::Duration::from_secs(600)).join(" ");
        assert_eq!(
            args,
            format!(
                "upgrade --install istiod istiod --repo {ISTIO_REPO} --version 1.20.2 --namespace istio-system \
                 --create-namespace --kubeconfig /k --kube-context kind-cluster1 --wait --timeout 600s --values /tmp/v.yaml"
            )
        );
    }
}
