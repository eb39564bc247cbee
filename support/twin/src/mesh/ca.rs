//! istiod's certificate authority as it is chosen at start
//! (reference/istio-multinetwork.md, "Plugged-in CA"): the `cacerts` Secret
//! with all four files is a plugged-in CA ("Use local CA certificate");
//! without it istiod signs with a self-signed root kept in `istio-ca-secret`
//! (created once, reused by later starts); a partial bundle stops istiod.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};

pub const CACERTS: &str = "cacerts";
pub const SELF_SIGNED_SECRET: &str = "istio-ca-secret";
pub const ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The four files of a plugged-in CA, as mounted at /etc/cacerts.
pub const CACERTS_KEYS: [&str; 4] = ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"];

/// The log lines istiod prints for each choice (its own wording).
pub const LOG_LOCAL_CA: &str = "Use local CA certificate";
pub const LOG_SELF_SIGNED: &str = "Use self-signed certificate as the CA certificate";
pub const LOG_INCOMPLETE: &str = "incomplete signing CA bundle detected";

/// What the `cacerts` Secret offers at istiod's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaBundle {
    /// All four files: the plugged-in root.
    Plugged { root_pem: String },
    /// No Secret, or none of the four files in it.
    Absent,
    /// Some of the files only (the names of those present).
    Incomplete { present: Vec<String> },
    /// All four, but the root is not a PEM certificate.
    Invalid(String),
}

/// A Secret's `data.<key>`, decoded; `None` when missing, not base64 or not UTF-8.
pub fn secret_text(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret.pointer("/data")?.get(key)?.as_str()?;
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

/// Reads the optional `cacerts` Secret the way istiod reads its mount.
pub fn read_cacerts(secret: Option<&Value>) -> CaBundle {
    let Some(secret) = secret else {
        return CaBundle::Absent;
    };
    let present: Vec<String> = CACERTS_KEYS
        .iter()
        .filter(|k| secret_text(secret, k).is_some_and(|v| !v.trim().is_empty()))
        .map(|k| (*k).to_owned())
        .collect();
    match present.len() {
        0 => CaBundle::Absent,
        4 => {
            let root = secret_text(secret, "root-cert.pem").unwrap_or_default();
            if root.contains("-----BEGIN CERTIFICATE-----") {
                CaBundle::Plugged { root_pem: root }
            } else {
                CaBundle::Invalid("root-cert.pem holds no PEM certificate".into())
            }
        }
        _ => CaBundle::Incomplete { present },
    }
}

/// The signing CA of a plugged-in `cacerts`: the four files as istiod holds them.
#[derive(Clone, PartialEq, Eq)]
pub struct PluggedCa {
    pub ca_cert: String,
    pub ca_key: String,
    pub cert_chain: String,
    pub root: String,
}

impl std::fmt::Debug for PluggedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluggedCa").field("ca_key", &"<redacted>").finish_non_exhaustive()
    }
}

/// The four files of `cacerts`, when all are there and the root is a PEM certificate.
pub fn plugged_ca(secret: Option<&Value>) -> Option<PluggedCa> {
    if !matches!(read_cacerts(secret), CaBundle::Plugged { .. }) {
        return None;
    }
    let text = |k: &str| secret_text(secret?, k);
    Some(PluggedCa {
        ca_cert: text("ca-cert.pem")?,
        ca_key: text("ca-key.pem")?,
        cert_chain: text("cert-chain.pem")?,
        root: text("root-cert.pem")?,
    })
}

/// The root of an existing `istio-ca-secret` (a previous start's self-signed CA).
pub fn self_signed_root(secret: Option<&Value>) -> Option<String> {
    secret_text(secret?, "ca-cert.pem").filter(|pem| pem.contains("-----BEGIN CERTIFICATE-----"))
}

/// A new self-signed CA like istiod's: organization = trust domain, 10 years.
/// Returns (certificate PEM, key PEM).
pub fn generate_self_signed() -> Result<(String, String), String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cluster.local");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 24 * 3600)).into();
    let key = KeyPair::generate().map_err(|e| format!("generating the CA key: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("self-signing the CA: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The `istio-ca-secret` istiod creates for its self-signed CA.
pub fn self_signed_secret(namespace: &str, cert_pem: &str, key_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "istio.io/ca-root",
        "metadata": {"name": SELF_SIGNED_SECRET, "namespace": namespace},
        "data": {
            "ca-cert.pem": STANDARD.encode(cert_pem),
            "ca-key.pem": STANDARD.encode(key_pem),
            "cert-chain.pem": "",
            "root-cert.pem": "",
        },
    })
}

/// The `istio-ca-root-cert` ConfigMap of one namespace.
pub fn root_cert_configmap(namespace: &str, root_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ROOT_CERT_CONFIGMAP, "namespace": namespace, "labels": {"istio.io/config": "true"}},
        "data": {ROOT_CERT_KEY: root_pem},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(STANDARD.encode(v)))).collect();
        json!({"metadata": {"name": CACERTS}, "data": data})
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn all_four_files_plug_the_root_in_and_fewer_are_refused() {
        let full =
            secret(&[("ca-cert.pem", PEM), ("ca-key.pem", "key"), ("root-cert.pem", PEM), ("cert-chain.pem", PEM)]);
        assert_eq!(read_cacerts(Some(&full)), CaBundle::Plugged { root_pem: PEM.into() });
        assert_eq!(read_cacerts(None), CaBundle::Absent);
        assert_eq!(read_cacerts(Some(&secret(&[]))), CaBundle::Absent);
        let partial = secret(&[("root-cert.pem", PEM), ("ca-cert.pem", PEM)]);
        assert_eq!(
            read_cacerts(Some(&partial)),
            CaBundle::Incomplete { present: vec!["ca-cert.pem".into(), "root-cert.pem".into()] }
        );
        let garbage =
            secret(&[("ca-cert.pem", PEM), ("ca-key.pem", "key"), ("root-cert.pem", "nope"), ("cert-chain.pem", PEM)]);
        assert!(matches!(read_cacerts(Some(&garbage)), CaBundle::Invalid(_)));
    }

    #[test]
    fn a_self_signed_root_is_a_pem_ca_and_is_found_again_in_its_secret() {
        let (cert, key) = generate_self_signed().unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let s = self_signed_secret("istio-system", &cert, &key);
        assert_eq!(s["type"], "istio.io/ca-root");
        assert_eq!(self_signed_root(Some(&s)), Some(cert.clone()));
        assert_ne!(generate_self_signed().unwrap().0, cert, "a new root each time");
    }
}
