//! The Istio release the twin's clusters run, and what that release serves:
//! facts per minor from `fixtures/istio/releases.yaml`, each row naming the
//! file and tag of istio/istio it was read from.

use serde::Deserialize;
use serde_json::{json, Value};

const RELEASES: &str = include_str!("../../../fixtures/istio/releases.yaml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    releases: Vec<Release>,
}

/// One Istio minor as its CRDs define it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// `1.20`.
    pub minor: String,
    /// The tag the facts were read at.
    pub tag: String,
    /// The file of istio/istio they were read from.
    pub source: String,
    pub networking: Versions,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    pub served: Vec<String>,
    pub storage: String,
}

/// Istio's networking kinds: plural, singular, kind and short name, as the CRDs name them.
const NETWORKING_KINDS: &[(&str, &str, &str, &str)] = &[
    ("gateways", "gateway", "Gateway", "gw"),
    ("virtualservices", "virtualservice", "VirtualService", "vs"),
    ("destinationrules", "destinationrule", "DestinationRule", "dr"),
    ("serviceentries", "serviceentry", "ServiceEntry", "se"),
];

impl Release {
    /// The CustomResourceDefinitions of Istio's networking kinds as the release's
    /// base chart installs them: its versions (crd-all.gen.yaml at the row's tag),
    /// with the names, categories, labels and annotation of 1.20.2's file (later
    /// charts add labels). Schemas are left out: the twin stores these kinds schemaless.
    pub fn networking_crds(&self) -> Vec<Value> {
        NETWORKING_KINDS
            .iter()
            .map(|(plural, singular, kind, short)| {
                let versions: Vec<Value> = self
                    .networking
                    .served
                    .iter()
                    .map(|v| json!({"name": v, "served": true, "storage": *v == self.networking.storage, "subresources": {"status": {}}}))
                    .collect();
                json!({
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {
                        "name": format!("{plural}.networking.istio.io"),
                        "annotations": {"helm.sh/resource-policy": "keep"},
                        "labels": {"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio"}
                    },
                    "spec": {
                        "group": "networking.istio.io",
                        "scope": "Namespaced",
                        "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List"),
                                  "shortNames": [short], "categories": ["istio-io", "networking-istio-io"]},
                        "versions": versions
                    }
                })
            })
            .collect()
    }
}

/// Every minor of the table, oldest first.
pub fn releases() -> Vec<Release> {
    serde_yaml::from_str::<Table>(RELEASES).expect("fixtures/istio/releases.yaml parses").releases
}

/// The release of an Istio version (`1.20.2`, `1.20`); an error names the known minors.
pub fn release(version: &str) -> Result<Release, String> {
    let minor: String = version.trim_start_matches('v').split('.').take(2).collect::<Vec<_>>().join(".");
    let all = releases();
    all.iter().find(|r| r.minor == minor).cloned().ok_or_else(|| {
        format!(
            "Istio {version} is not a release meshspec knows the facts of; known minors: {}",
            all.iter().map(|r| r.minor.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minor_from_1_20_has_its_facts_and_a_source() {
        let all = releases();
        assert_eq!(all.first().map(|r| r.minor.as_str()), Some("1.20"));
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.minor, format!("1.{}", 20 + i), "one row per minor, in order");
            assert!(r.tag.starts_with(&format!("{}.", r.minor)), "{r:?}");
            assert!(r.source.ends_with("crd-all.gen.yaml"), "{r:?}");
            assert!(r.networking.served.contains(&r.networking.storage), "{r:?}");
        }
    }

    #[test]
    fn versions_resolve_to_their_minor_and_unknown_ones_are_refused() {
        let r = release("1.20.2").unwrap();
        assert_eq!(r.networking.storage, "v1alpha3");
        assert!(!r.networking.served.contains(&"v1".to_string()), "v1 arrives in 1.22");
        assert!(release("1.22.0").unwrap().networking.served.contains(&"v1".to_string()));
        assert_eq!(release("v1.27.1").unwrap().networking.storage, "v1");
        let e = release("1.9.0").unwrap_err();
        assert!(e.contains("known minors: 1.20, 1.21"), "{e}");
    }
}
