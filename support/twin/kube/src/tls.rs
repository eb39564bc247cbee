//! The twin's certificate authority: a CA and leaf server certificates signed
//! by it. kube-rs (webpki) rejects a self-signed CA:TRUE certificate used as a
//! server certificate, so servers get a CA:FALSE leaf with serverAuth and the
//! loopback SANs, and clients trust the CA (`certificate-authority-data`).

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA that signs the API servers' leaf certificates.
pub struct TwinCa {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TwinCa {
    // The signing key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwinCa").finish_non_exhaustive()
    }
}

/// A leaf certificate and its private key, PEM-encoded.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TwinCa {
    pub fn new(common_name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().context("generating the CA key")?;
        let cert = params.self_signed(&key).context("self-signing the CA")?;
        Ok(TwinCa { ca_pem: cert.pem(), ca_der: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM (what goes, base64-encoded, into `certificate-authority-data`).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Concatenates PEM certificates into one bundle (e.g. the CAs of both clusters).
    pub fn bundle(pems: &[&str]) -> String {
        let mut out = String::new();
        for pem in pems {
            out.push_str(pem.trim_end());
            out.push('\n');
        }
        out
    }

    /// A CA:FALSE serverAuth leaf for these names (IP addresses become IP SANs).
    pub fn issue_server_cert(&self, names: &[&str]) -> anyhow::Result<IssuedCert> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).context("leaf SANs")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        self.sign_leaf(params, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Signs a CA:FALSE leaf for `usage` with a fresh key.
    fn sign_leaf(&self, mut params: CertificateParams, usage: ExtendedKeyUsagePurpose) -> anyhow::Result<IssuedCert> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().context("generating the leaf key")?;
        let cert = params.signed_by(&key, &self.issuer).context("signing the leaf")?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// A CA:FALSE clientAuth leaf with subject CN `common_name` and O
    /// `organization` (what kube-apiserver's x509 authenticator reads as user
    /// name and group: k8s.io/apiserver pkg/authentication/request/x509
    /// CommonNameUserConversion). One O at most: rcgen keeps one value per
    /// attribute type.
    pub fn issue_client_cert(&self, common_name: &str, organization: Option<&str>) -> anyhow::Result<IssuedCert> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(o) = organization {
            dn.push(DnType::OrganizationName, o);
        }
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        self.sign_leaf(params, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server config for `names` that also asks for a client certificate
    /// signed by `client_ca` and lets clients without one in (kube-apiserver
    /// with `--client-ca-file`: a certificate is one way in, bearer tokens
    /// another).
    pub fn server_config_with_client_ca(
        &self,
        names: &[&str],
        client_ca: &TwinCa,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let leaf = self.issue_server_cert(names)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca.ca_der.clone()).context("client CA")?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("client certificate verifier")?;
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(verifier);
        with_leaf(builder, &leaf)
    }

    /// A rustls server config with a leaf for `127.0.0.1` and `localhost`, ALPN http/1.1.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        self.server_config_for(&["127.0.0.1", "localhost"])
    }

    pub fn server_config_for(&self, names: &[&str]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let leaf = self.issue_server_cert(names)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth();
        with_leaf(builder, &leaf)
    }
}

/// A server config serving `leaf`, ALPN http/1.1.
fn with_leaf(
    builder: rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>,
    leaf: &IssuedCert,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = builder
        .with_single_cert(
            vec![leaf.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
        )
        .context("server certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_and_leaf_are_pem_and_distinct() {
        let ca = TwinCa::new("twin-ca").expect("ca");
        assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = ca.issue_server_cert(&["127.0.0.1", "localhost"]).expect("leaf");
        assert_ne!(leaf.cert_pem, ca.ca_pem());
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        assert!(ca.server_config().is_ok());
        let bundle = TwinCa::bundle(&[&ca.ca_pem(), &TwinCa::new("other").expect("ca").ca_pem()]);
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_client_certificate_names_its_user_and_group() {
        let ca = TwinCa::new("k3s-client-ca").expect("ca");
        let admin = ca.issue_client_cert("system:admin", Some("system:masters")).expect("client cert");
        let user = crate::server::certificate_user(&admin.cert_der).expect("a user");
        assert_eq!(user.name, "system:admin");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        let nobody = ca.issue_client_cert("", None).expect("client cert");
        assert!(crate::server::certificate_user(&nobody.cert_der).is_none(), "no CN, no user");
        let server = ca.server_config_with_client_ca(&["127.0.0.1"], &ca);
        assert!(server.is_ok());
    }
}
