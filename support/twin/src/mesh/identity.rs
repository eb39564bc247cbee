//! Workload certificates as istiod issues them to sidecars, for the legs of
//! a request that cross a real network: a leaf with the workload's SPIFFE ID
//! as its only SAN (`spiffe://<trust domain>/ns/<ns>/sa/<sa>`, Istio 1.20.2
//! pkg/spiffe), signed by the cluster's signing CA (the plugged-in `cacerts`
//! intermediate, else istiod's self-signed `istio-ca-secret`), sent with the
//! CA's chain (`cert-chain.pem`); peers are verified against the root
//! (`root-cert.pem`) by chain only: Envoy checks SANs against the expected
//! identities, not against the SNI host name.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde_json::Value;

use super::ca::{secret_text, SELF_SIGNED_SECRET};
use super::istiod::registry::ISTIO_SYSTEM;
use super::istiod::xds::CLUSTER_DOMAIN;
use super::MeshCluster;
use crate::kube::Resource;
use crate::programs::objects;

/// A cluster's signing CA for workloads.
pub struct WorkloadCa {
    issuer: Issuer<'static, KeyPair>,
    /// What follows a leaf on the wire.
    chain: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
}

/// A leaf and its key, ready for rustls.
pub struct WorkloadCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).collect()
}

/// The SPIFFE ID of a pod's workload.
pub fn spiffe_id(pod: &Value) -> String {
    let sa =
        pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("default");
    format!("spiffe://{CLUSTER_DOMAIN}/ns/{}/sa/{sa}", objects::namespace(pod))
}

impl WorkloadCa {
    /// The CA the cluster's workloads hold certificates from: the one its
    /// istiod signs with, chosen when it started (Istio 1.20.2
    /// pilot/pkg/bootstrap/istio_ca.go: the CA is made at start, a `cacerts`
    /// made later is not picked up until istiod restarts) or a new
    /// intermediate of the same root its watch took up since (`reload_cacerts`).
    /// Certificates are issued per connection here, so a new intermediate shows
    /// at once; istio-agent would keep its certificate until it rotates it.
    /// `None` before any istiod ran, or when its self-signed secret is gone.
    pub fn in_use(mc: &MeshCluster) -> Option<WorkloadCa> {
        let root = mc.istiod.trust_root()?;
        if let Some(p) = mc.istiod.signing() {
            return Self::from_pems(&p.ca_cert, &p.ca_key, &p.cert_chain, &p.root);
        }
        let s = mc.cluster.get(&Resource::secrets(), Some(ISTIO_SYSTEM), SELF_SIGNED_SECRET)?;
        let cert = secret_text(&s, "ca-cert.pem")?;
        if certs(&cert) != certs(&root) {
            return None;
        }
        Self::from_pems(&cert, &secret_text(&s, "ca-key.pem")?, &cert, &cert)
    }

    pub fn from_pems(ca_cert: &str, ca_key: &str, chain: &str, root: &str) -> Option<WorkloadCa> {
        let key = KeyPair::from_pem(ca_key).ok()?;
        let issuer = Issuer::from_ca_cert_pem(ca_cert, key).ok()?;
        let mut roots = RootCertStore::empty();
        for c in certs(root) {
            roots.add(c).ok()?;
        }
        if roots.is_empty() {
            return None;
        }
        let mut chain = certs(chain);
        if chain.is_empty() {
            chain = certs(ca_cert);
        }
        Some(WorkloadCa { issuer, chain, roots: Arc::new(roots) })
    }

    /// A workload leaf for `spiffe_id`, good for both ends of mTLS.
    pub fn issue(&self, spiffe_id: &str) -> Option<WorkloadCert> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().ok()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().ok()?;
        let cert = params.signed_by(&key, &self.issuer).ok()?;
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.chain.iter().cloned());
        Some(WorkloadCert { chain, key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())) })
    }

    /// A sidecar's client config: its certificate, peers checked against the root.
    pub fn client_config(&self, me: WorkloadCert) -> Option<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider.clone())
            .build()
            .ok()?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            .with_client_auth_cert(me.chain, me.key)
            .ok()?;
        Some(Arc::new(config))
    }

    /// A sidecar's inbound config: its certificate, a client certificate
    /// chaining to the root required (Istio's mTLS).
    pub fn server_config(&self, me: WorkloadCert) -> Option<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .ok()?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(me.chain, me.key)
            .ok()?;
        Some(Arc::new(config))
    }
}

/// webpki's chain checks without the host-name check (the SNI is a cluster
/// name, not the peer's identity).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
