//! The data meshspec ships in fixtures/: the topology, the stage plan and the
//! manifests. They are compiled in, so the binary works anywhere; `--fixtures DIR`
//! (or MESHSPEC_FIXTURES) reads a directory of the same layout instead.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::Value;

const EMBEDDED: &[(&str, &str)] = &[
    ("topology.yaml", include_str!("../fixtures/topology.yaml")),
    ("stages.yaml", include_str!("../fixtures/stages.yaml")),
    ("plans/istiod-before-cacerts.yaml", include_str!("../fixtures/plans/istiod-before-cacerts.yaml")),
    ("plans/gateway-before-controller.yaml", include_str!("../fixtures/plans/gateway-before-controller.yaml")),
    ("plans/without-cacerts.yaml", include_str!("../fixtures/plans/without-cacerts.yaml")),
    ("manifests/cacerts.yaml", include_str!("../fixtures/manifests/cacerts.yaml")),
    (
        "manifests/aws-load-balancer-controller.yaml",
        include_str!("../fixtures/manifests/aws-load-balancer-controller.yaml"),
    ),
    ("manifests/istiod.yaml", include_str!("../fixtures/manifests/istiod.yaml")),
    ("manifests/ingress-gateway.yaml", include_str!("../fixtures/manifests/ingress-gateway.yaml")),
    ("manifests/eastwest-gateway.yaml", include_str!("../fixtures/manifests/eastwest-gateway.yaml")),
    ("manifests/reader-token.yaml", include_str!("../fixtures/manifests/reader-token.yaml")),
    ("manifests/samples.yaml", include_str!("../fixtures/manifests/samples.yaml")),
    ("manifests/remote-secret.yaml", include_str!("../fixtures/manifests/remote-secret.yaml")),
    ("plans/kind.yaml", include_str!("../fixtures/plans/kind.yaml")),
    ("plans/k3s.yaml", include_str!("../fixtures/plans/k3s.yaml")),
    ("kind/cluster.yaml", include_str!("../fixtures/kind/cluster.yaml")),
    ("kind/metallb-pool.yaml", include_str!("../fixtures/kind/metallb-pool.yaml")),
    ("kind/values/istiod.yaml", include_str!("../fixtures/kind/values/istiod.yaml")),
    ("kind/values/ingress-gateway.yaml", include_str!("../fixtures/kind/values/ingress-gateway.yaml")),
    ("kind/values/eastwest-gateway.yaml", include_str!("../fixtures/kind/values/eastwest-gateway.yaml")),
];

#[derive(Clone, Debug, Default)]
pub struct Fixtures {
    dir: Option<PathBuf>,
}

impl Fixtures {
    pub fn embedded() -> Self {
        Fixtures { dir: None }
    }

    pub fn from_dir(dir: PathBuf) -> Self {
        Fixtures { dir: Some(dir) }
    }

    pub fn read(&self, name: &str) -> Result<Cow<'static, str>> {
        if let Some(dir) = &self.dir {
            let path = dir.join(name);
            return std::fs::read_to_string(&path)
                .map(Cow::Owned)
                .with_context(|| format!("cannot read fixture {}", path.display()));
        }
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| Cow::Borrowed(*text))
            .with_context(|| format!("no fixture named {name}"))
    }

    /// A manifest template rendered with `vars` and split into its documents.
    pub fn manifest(&self, name: &str, vars: &Vars) -> Result<Vec<Value>> {
        let template = self.read(&format!("manifests/{name}.yaml"))?;
        let text = render(&template, vars).with_context(|| format!("manifest {name}"))?;
        parse_documents(&text).with_context(|| format!("manifest {name}"))
    }
}

/// Template variables. Values are inserted verbatim: multi-line values must be
/// given as YAML-safe scalars (see `quoted`).
pub type Vars = BTreeMap<&'static str, String>;

/// A string as a YAML scalar that survives any content (JSON strings are YAML).
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Replace every `${NAME}`; an unknown name is an error, never left in place.
pub fn render(template: &str, vars: &Vars) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').context("an unterminated ${ in a template")?;
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => bail!("template variable ${{{name}}} has no value"),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The documents of a multi-document YAML text, as JSON values (empty documents skipped).
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).with_context(|| format!("document {} is not valid YAML", i + 1))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_every_variable_and_refuses_unknown_ones() {
        let mut vars = Vars::new();
        vars.insert("A", "x".into());
        assert_eq!(render("a=${A} b=${A}", &vars).unwrap(), "a=x b=x");
        assert!(render("${B}", &vars).unwrap_err().to_string().contains("${B}"));
    }

    #[test]
    fn quoted_multiline_values_survive_yaml() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        let mut vars = Vars::new();
        vars.insert("PEM", quoted(pem));
        let docs = parse_documents(&render("data:\n  k: ${PEM}\n", &vars).unwrap()).unwrap();
        assert_eq!(docs[0]["data"]["k"], pem);
    }

    #[test]
    fn every_embedded_manifest_parses_once_rendered() {
        let f = Fixtures::embedded();
        let mut vars = Vars::new();
        for k in [
            "NETWORK",
            "CLUSTER_NAME",
            "ISTIO_CLUSTER",
            "MESH_ID",
            "ISTIO_VERSION",
            "SAMPLE_VERSION",
            "REMOTE_CLUSTER",
            "REMOTE_KUBECONFIG",
            "REMOTE_SECRET_KEY",
            "CA_CERT_PEM",
            "CA_KEY_PEM",
            "ROOT_CERT_PEM",
            "CERT_CHAIN_PEM",
        ] {
            vars.insert(k, "x".into());
        }
        for (name, _) in EMBEDDED.iter().filter(|(n, _)| n.starts_with("manifests/")) {
            let stem = name.trim_start_matches("manifests/").trim_end_matches(".yaml");
            let docs = f.manifest(stem, &vars).unwrap();
            assert!(!docs.is_empty(), "{name}");
            for d in docs {
                assert!(d["kind"].is_string() && d["metadata"]["name"].is_string(), "{name}: {d}");
            }
        }
    }
}
