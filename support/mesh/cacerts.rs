//! The plugged-in CA of the seed: one root shared by both clusters and one
//! intermediate per cluster, made with rcgen; and the check that a `cacerts`
//! secret is what Istio needs, done by parsing X.509 (signatures, CA flags,
//! key/certificate match), never by comparing strings.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, PKCS_RSA_SHA256,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use x509_parser::prelude::*;

pub const ROOT_CN: &str = "multicluster.istio.io";
pub const INTERMEDIATE_CN: &str = "intermediate.multicluster.istio.io";
/// The four keys Istio reads from `cacerts`.
pub const KEYS: [&str; 4] = ["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"];

/// The shared root. Its key lives only in memory, for signing intermediates.
pub struct RootCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// Never the key: the root's fingerprint only.
impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fp = root_fingerprint(&self.cert_pem).unwrap_or_default();
        f.debug_struct("RootCa").field("fingerprint", &fp).field("key", &"<redacted>").finish()
    }
}

/// The files a root CA is kept in, as Istio's tools/certs/Makefile.selfsigned.mk
/// writes them (1.20.2, target `root-ca`: `root-key.pem` from `openssl genrsa`,
/// `root-cert.pem` self-signed with it).
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
pub const ROOT_KEY_FILE: &str = "root-key.pem";

/// One cluster's `cacerts` content. Debug never shows the key.
#[derive(Clone)]
pub struct CaCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub root_cert_pem: String,
    pub cert_chain_pem: String,
}

impl std::fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCerts").field("ca_key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

fn ca_params(cn: &str, locality: Option<&str>) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Istio");
    if let Some(l) = locality {
        dn.push(DnType::LocalityName, l);
    }
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // Ten years, as the seed's Terraform tls resources make them.
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::hours(1);
    let end = now + chrono::Duration::days(3650);
    use chrono::Datelike;
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    Ok(params)
}

impl RootCa {
    /// A new self-signed root (RSA 2048).
    pub fn generate() -> Result<RootCa> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).context("cannot generate the root key")?;
        let params = ca_params(ROOT_CN, None)?;
        let cert = params.self_signed(&key).context("cannot self-sign the root")?;
        Ok(RootCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The mesh's root as its owner keeps it: `root-cert.pem` and `root-key.pem`
    /// in `dir`. The certificate must be a self-signed CA, valid now, and the
    /// key its own. Errors name the file, never its content.
    pub fn load(dir: &Path) -> Result<RootCa> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let (cert_pem, key_pem) = (read(ROOT_CERT_FILE)?, read(ROOT_KEY_FILE)?);
        RootCa::from_pems(&cert_pem, &key_pem).with_context(|| format!("{} is not a usable root CA", dir.display()))
    }

    /// A root from its certificate and key (PKCS#8, or PKCS#1 as `openssl
    /// genrsa -traditional` and Terraform's `tls_private_key.private_key_pem` write RSA keys).
    pub fn from_pems(cert_pem: &str, key_pem: &str) -> Result<RootCa> {
        let ders = certificates(cert_pem, ROOT_CERT_FILE)?;
        ensure!(ders.len() == 1, "{ROOT_CERT_FILE} holds {} certificates, expected the root alone", ders.len());
        let cert = parse(&ders[0], ROOT_CERT_FILE)?;
        ensure!(is_ca(&cert), "{ROOT_CERT_FILE} is not a CA (basicConstraints CA:FALSE or missing)");
        ensure!(cert.subject() == cert.issuer(), "{ROOT_CERT_FILE} is not self-signed (issuer {})", cert.issuer());
        cert.verify_signature(None)
            .map_err(|e| anyhow::anyhow!("{ROOT_CERT_FILE}'s self-signature does not verify: {e}"))?;
        ensure!(
            cert.validity().is_valid(),
            "{ROOT_CERT_FILE} is not valid now (not before {}, not after {})",
            cert.validity().not_before,
            cert.validity().not_after
        );
        // No detail of the parse error: it could quote the key.
        let key = KeyPair::from_pem(key_pem).map_err(|_| {
            anyhow::anyhow!("{ROOT_KEY_FILE} is not a usable private key (PEM, PKCS#8 or PKCS#1, unencrypted)")
        })?;
        ensure!(
            key.subject_public_key_info() == cert.public_key().raw,
            "{ROOT_KEY_FILE} does not match {ROOT_CERT_FILE} (different public keys)"
        );
        let issuer = Issuer::from_ca_cert_der(&ders[0].clone().into(), key)
            .map_err(|e| anyhow::anyhow!("{ROOT_CERT_FILE} cannot issue certificates: {e}"))?;
        Ok(RootCa { cert_pem: pem_of(&ders[0]), issuer })
    }

    /// SHA-256 of the root's DER, as `VerifiedCaCerts::root_fingerprint`.
    pub fn fingerprint(&self) -> Result<String> {
        root_fingerprint(&self.cert_pem)
    }

    /// An intermediate CA for one cluster, signed by this root.
    pub fn intermediate(&self, cluster: &str) -> Result<CaCerts> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).context("cannot generate an intermediate key")?;
        let params = ca_params(INTERMEDIATE_CN, Some(cluster))?;
        let cert = params.signed_by(&key, &self.issuer).context("cannot sign the intermediate")?;
        let ca_cert_pem = cert.pem();
        Ok(CaCerts {
            cert_chain_pem: format!("{ca_cert_pem}{}", self.cert_pem),
            ca_cert_pem,
            ca_key_pem: key.serialize_pem(),
            root_cert_pem: self.cert_pem.clone(),
        })
    }
}

/// What a verified `cacerts` secret holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedCaCerts {
    pub root_subject: String,
    /// SHA-256 of the root certificate's DER: equal across clusters iff one root is shared.
    pub root_fingerprint: String,
    pub intermediate_subject: String,
    pub intermediate_fingerprint: String,
    pub not_after: String,
    /// The root's DER, to verify what it signed.
    #[serde(skip)]
    pub root_der: Vec<u8>,
}

fn certificates(pem: &str, what: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for p in Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.with_context(|| format!("{what} is not valid PEM"))?;
        ensure!(p.label == "CERTIFICATE", "{what} holds a {} block, not a certificate", p.label);
        out.push(p.contents);
    }
    ensure!(!out.is_empty(), "{what} holds no certificate");
    Ok(out)
}

/// A DER certificate as PEM, 64 columns (RFC 7468), without anything the file had around it.
fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("{what} is not X.509: {e}"))?;
    Ok(cert)
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Check a `cacerts` bundle (key -> PEM text): the four keys, a self-signed CA
/// root, an intermediate CA signed by it, the private key matching the
/// intermediate, and the chain being intermediate then root.
pub fn verify(data: &BTreeMap<String, String>) -> Result<VerifiedCaCerts> {
    for key in KEYS {
        ensure!(
            data.contains_key(key),
            "cacerts has no {key} (keys: {})",
            data.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let root_ders = certificates(&data["root-cert.pem"], "root-cert.pem")?;
    ensure!(root_ders.len() == 1, "root-cert.pem holds {} certificates, expected 1", root_ders.len());
    let root = parse(&root_ders[0], "root-cert.pem")?;
    ensure!(is_ca(&root), "root-cert.pem is not a CA (basicConstraints CA:FALSE or missing)");
    ensure!(root.subject() == root.issuer(), "root-cert.pem is not self-signed (issuer {})", root.issuer());
    root.verify_signature(None).map_err(|e| anyhow::anyhow!("root-cert.pem's self-signature does not verify: {e}"))?;

    let ca_ders = certificates(&data["ca-cert.pem"], "ca-cert.pem")?;
    let intermediate = parse(&ca_ders[0], "ca-cert.pem")?;
    ensure!(is_ca(&intermediate), "ca-cert.pem is not a CA");
    ensure!(
        intermediate.issuer() == root.subject(),
        "ca-cert.pem was issued by {}, not by the root {}",
        intermediate.issuer(),
        root.subject()
    );
    intermediate
        .verify_signature(Some(root.public_key()))
        .map_err(|e| anyhow::anyhow!("ca-cert.pem is not signed by root-cert.pem: {e}"))?;

    let key = KeyPair::from_pem(&data["ca-key.pem"]).context("ca-key.pem is not a usable private key")?;
    ensure!(
        key.subject_public_key_info() == intermediate.public_key().raw,
        "ca-key.pem does not match ca-cert.pem (different public keys)"
    );

    let chain = certificates(&data["cert-chain.pem"], "cert-chain.pem")?;
    if chain.len() < 2 {
        bail!("cert-chain.pem holds {} certificate(s), expected the intermediate then the root", chain.len());
    }
    let (first, last) =
        (parse(&chain[0], "cert-chain.pem[0]")?, parse(&chain[chain.len() - 1], "cert-chain.pem[last]")?);
    ensure!(
        first.tbs_certificate.as_ref() == intermediate.tbs_certificate.as_ref(),
        "cert-chain.pem does not start with ca-cert.pem"
    );
    ensure!(
        last.tbs_certificate.as_ref() == root.tbs_certificate.as_ref(),
        "cert-chain.pem does not end with root-cert.pem"
    );

    Ok(VerifiedCaCerts {
        root_subject: root.subject().to_string(),
        root_fingerprint: fingerprint(&root_ders[0]),
        intermediate_subject: intermediate.subject().to_string(),
        intermediate_fingerprint: fingerprint(&ca_ders[0]),
        not_after: intermediate.validity().not_after.to_string(),
        root_der: root_ders[0].clone(),
    })
}

/// SHA-256 fingerprint of a DER certificate, as `VerifiedCaCerts` shows them.
pub fn der_fingerprint(der: &[u8]) -> String {
    fingerprint(der)
}

/// Whether the certificate `der` carries a signature of the root `root_der`.
pub fn signed_by(der: &[u8], root_der: &[u8]) -> Result<bool> {
    let (cert, root) = (parse(der, "certificate")?, parse(root_der, "root")?);
    Ok(cert.verify_signature(Some(root.public_key())).is_ok())
}

/// SHA-256 fingerprint of the first certificate of a PEM text (e.g. `istio-ca-root-cert`).
pub fn root_fingerprint(pem: &str) -> Result<String> {
    let ders = certificates(pem, "root certificate")?;
    parse(&ders[0], "root certificate")?;
    Ok(fingerprint(&ders[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(c: &CaCerts) -> BTreeMap<String, String> {
        [
            ("ca-cert.pem", &c.ca_cert_pem),
            ("ca-key.pem", &c.ca_key_pem),
            ("root-cert.pem", &c.root_cert_pem),
            ("cert-chain.pem", &c.cert_chain_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }

    #[test]
    fn one_root_two_intermediates_verify_and_share_the_root() {
        let root = RootCa::generate().unwrap();
        let a = verify(&bundle(&root.intermediate("cluster1").unwrap())).unwrap();
        let b = verify(&bundle(&root.intermediate("cluster2").unwrap())).unwrap();
        assert_eq!(a.root_fingerprint, b.root_fingerprint);
        assert_ne!(a.intermediate_fingerprint, b.intermediate_fingerprint);
        assert!(a.root_subject.contains(ROOT_CN) && a.intermediate_subject.contains(INTERMEDIATE_CN));
    }

    #[test]
    fn mismatches_are_named() {
        let root = RootCa::generate().unwrap();
        let other = RootCa::generate().unwrap();
        let c1 = root.intermediate("cluster1").unwrap();
        let c2 = other.intermediate("cluster2").unwrap();

        let mut wrong_key = bundle(&c1);
        wrong_key.insert("ca-key.pem".into(), c2.ca_key_pem.clone());
        assert!(verify(&wrong_key).unwrap_err().to_string().contains("does not match"));

        let mut wrong_root = bundle(&c1);
        wrong_root.insert("root-cert.pem".into(), other.cert_pem.clone());
        let e = verify(&wrong_root).unwrap_err().to_string();
        assert!(e.contains("not signed by") || e.contains("issued by"), "{e}");

        let mut missing = bundle(&c1);
        missing.remove("cert-chain.pem");
        assert!(verify(&missing).unwrap_err().to_string().contains("cert-chain.pem"));

        let mut reversed = bundle(&c1);
        reversed.insert("cert-chain.pem".into(), format!("{}{}", c1.root_cert_pem, c1.ca_cert_pem));
        assert!(verify(&reversed).is_err());
    }

    /// A root as an operator keeps it: a self-signed CA certificate and its key, as PEM.
    fn kept_root() -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
        let cert = ca_params("Root CA", None).unwrap().self_signed(&key).unwrap();
        (format!("a comment line before the PEM\n{}", cert.pem()), key.serialize_pem())
    }

    #[test]
    fn a_kept_root_issues_intermediates_that_verify_under_it() {
        let (cert, key) = kept_root();
        let root = RootCa::from_pems(&cert, &key).unwrap();
        let issued = verify(&bundle(&root.intermediate("cluster1").unwrap())).unwrap();
        assert_eq!(issued.root_fingerprint, root.fingerprint().unwrap());
        assert_eq!(issued.root_fingerprint, root_fingerprint(&cert).unwrap());
        // Debug shows the fingerprint, never the key.
        let shown = format!("{root:?}");
        assert!(shown.contains(&issued.root_fingerprint) && !shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn a_kept_root_that_cannot_issue_is_refused_with_the_file_named() {
        let (cert, key) = kept_root();
        let (_, other_key) = kept_root();
        let e = RootCa::from_pems(&cert, &other_key).unwrap_err().to_string();
        assert!(e.contains("root-key.pem does not match root-cert.pem"), "{e}");
        // A key whose body was cut: its PEM lines around four bytes of base64.
        let lines: Vec<&str> = key.lines().collect();
        let cut = format!("{}\nAAAA\n{}\n", lines[0], lines[lines.len() - 1]);
        let e = RootCa::from_pems(&cert, &cut).unwrap_err().to_string();
        assert!(e.contains("root-key.pem is not a usable private key") && !e.contains("AAAA"), "{e}");
        let e = RootCa::from_pems(&format!("{cert}{cert}"), &key).unwrap_err().to_string();
        assert!(e.contains("expected the root alone"), "{e}");
        // An intermediate is a CA, but not self-signed: not a root.
        let root = RootCa::from_pems(&cert, &key).unwrap();
        let inter = root.intermediate("cluster1").unwrap();
        let e = RootCa::from_pems(&inter.ca_cert_pem, &inter.ca_key_pem).unwrap_err().to_string();
        assert!(e.contains("not self-signed"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = format!("{:#}", RootCa::load(dir.path()).unwrap_err());
        assert!(e.contains("root-cert.pem"), "{e}");
    }
}
