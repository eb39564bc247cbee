//! Checks of a CA rotation: whether istiod took up a new intermediate while it
//! runs (its own log lines), and which intermediate the workloads' certificates
//! come from (the chain their sidecar holds, as `istioctl proxy-config secret`
//! reads it).
//!
//! Istio 1.20.2 pilot/pkg/bootstrap/istio_ca.go: with a plugged-in CA istiod
//! watches /etc/cacerts (`initCACertsWatcher`, fsnotify); `handleEvent` logs
//! `Update Istiod cacerts`, then either takes up a new intermediate of the same
//! root (`Istiod has detected the newly added intermediate CA and updated its
//! key and certs accordingly`) or refuses a new root (`Multi root is disabled,
//! updating new ROOT-CA not supported`, unless ISTIO_MULTIROOT_MESH).

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;
use x509_parser::prelude::*;

use super::check::{Check, Diagnosis, Observation};
use super::provisioning::Cacerts;
use crate::mesh::ca_rotation::workload_chain;
use crate::mesh::cacerts::VerifiedCaCerts;
use crate::run::Session;
use crate::timeouts::Timeouts;
use crate::topology::{names, ClusterTopology};

pub const LOG_TAKEN_UP: &str =
    "Istiod has detected the newly added intermediate CA and updated its key and certs accordingly";
pub const LOG_ROOT_REFUSED: &str = "Multi root is disabled, updating new ROOT-CA not supported";

/// What istiod's watch did with a changed `cacerts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Reload {
    TakenUp,
    RootRefused,
}

/// The last reload istiod logged, if any.
pub fn last_reload(log: &str) -> Option<Reload> {
    log.lines().rev().find_map(|l| {
        if l.contains(LOG_TAKEN_UP) {
            Some(Reload::TakenUp)
        } else if l.contains(LOG_ROOT_REFUSED) {
            Some(Reload::RootRefused)
        } else {
            None
        }
    })
}

/// istiod of a cluster logged the reload `expect` after `cacerts` changed.
/// Definite when it logged the other outcome; transient while it logged none
/// (the kubelet updates a mounted Secret within about a minute).
pub struct CacertsReloaded {
    pub cluster: ClusterTopology,
    pub expect: Reload,
}

impl Check for CacertsReloaded {
    type Evidence = Reload;

    fn name(&self) -> String {
        let what = match self.expect {
            Reload::TakenUp => "took up the new intermediate",
            Reload::RootRefused => "refused the new root",
        };
        format!("{}: istiod {what} of cacerts while running", self.cluster.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<Reload>> {
        let log = super::sync::istiod_log(s, &self.cluster).await?;
        let c = &self.cluster.name;
        Ok(match last_reload(&log) {
            Some(r) if r == self.expect => Observation::Holds(r),
            Some(Reload::RootRefused) => Observation::broken(
                format!("istiod logged {LOG_ROOT_REFUSED:?}"),
                Diagnosis::new(
                    format!("the new intermediate in {c}'s cacerts comes from a different root, which istiod refuses while it runs and takes at its next start, breaking mTLS with the other cluster"),
                    "issue the intermediate from the shared root, write it into cacerts, then restart istiod",
                ),
            ),
            Some(Reload::TakenUp) => Observation::broken(
                format!("istiod logged {LOG_TAKEN_UP:?}"),
                Diagnosis::new(
                    format!("istiod in {c} took the new cacerts up as an intermediate of its root"),
                    "nothing to fix: the new cacerts shares the root",
                ),
            ),
            None => Observation::pending(format!("istiod in {c} has not logged a cacerts reload yet")),
        })
    }
}

/// A presented chain, as the evidence shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PresentedChain {
    pub certificates: usize,
    pub leaf_issuer: String,
    pub intermediate_subject: String,
    pub intermediate_fingerprint: String,
    pub intermediate_issuer: String,
    /// Whether the root of the cluster's cacerts signed that intermediate.
    pub signed_by_cacerts_root: bool,
}

/// Reads a chain (leaf, intermediate, and the root if sent) against `cacerts`.
pub fn read_chain(chain: &[Vec<u8>], cacerts: &VerifiedCaCerts) -> Result<PresentedChain> {
    anyhow::ensure!(
        chain.len() >= 2,
        "the chain holds {} certificate(s): a leaf and its intermediate expected",
        chain.len()
    );
    fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
        X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| anyhow::anyhow!("not X.509: {e}"))
    }
    let (leaf, intermediate) = (parse(&chain[0])?, parse(&chain[1])?);
    Ok(PresentedChain {
        certificates: chain.len(),
        leaf_issuer: leaf.issuer().to_string(),
        intermediate_subject: intermediate.subject().to_string(),
        intermediate_fingerprint: crate::mesh::cacerts::der_fingerprint(&chain[1]),
        intermediate_issuer: intermediate.issuer().to_string(),
        signed_by_cacerts_root: crate::mesh::cacerts::signed_by(&chain[1], &cacerts.root_der)?,
    })
}

/// Whether a presented chain comes from the intermediate of `cacerts`:
/// transient while it comes from another intermediate of the same root
/// (istio-agent renews a certificate when it rotates it, or when the workload
/// restarts), definite when another root signed its intermediate.
pub fn judge_chain(cluster: &str, got: PresentedChain, cacerts: &VerifiedCaCerts) -> Observation<PresentedChain> {
    if got.intermediate_fingerprint == cacerts.intermediate_fingerprint {
        return Observation::Holds(got);
    }
    if !got.signed_by_cacerts_root {
        return Observation::broken(
            format!("{got:?}"),
            Diagnosis::new(
                format!(
                    "the workloads of {cluster} present certificates from an intermediate ({}) issued by {} that the root of its cacerts ({}) did not sign",
                    got.intermediate_fingerprint, got.intermediate_issuer, cacerts.root_fingerprint
                ),
                "restart istiod so that it signs with the cacerts it mounts, then restart the workloads",
            ),
        );
    }
    Observation::Pending {
        seen: format!(
            "intermediate {} ({}), not cacerts' {}",
            got.intermediate_subject, got.intermediate_fingerprint, cacerts.intermediate_fingerprint
        ),
        diagnosis: Some(Diagnosis::new(
            format!("the workloads of {cluster} still hold certificates from the previous intermediate (same root): istio-agent keeps a certificate until it rotates it"),
            "restart istiod if it has not taken up the new cacerts, then restart the workloads (kubectl rollout restart) for new certificates at once",
        )),
    }
}

/// Every helloworld workload of a cluster holds a certificate issued by the
/// intermediate in that cluster's `cacerts`.
pub struct PresentsCacertsIntermediate(pub ClusterTopology);

impl Check for PresentsCacertsIntermediate {
    type Evidence = PresentedChain;

    fn name(&self) -> String {
        format!("{}: workloads present certificates from the intermediate in cacerts", self.0.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.mesh_sync
    }

    async fn observe(&self, s: &Session) -> Result<Observation<PresentedChain>> {
        let cacerts = match Cacerts(self.0.clone()).observe(s).await? {
            Observation::Holds((_, v)) => v,
            other => return Ok(other.map_holds(|_| PresentedChain::default())),
        };
        let pods: Api<Pod> = Api::namespaced(s.kube(&self.0.name).await?, names::SAMPLE);
        let list = pods.list(&ListParams::default().labels("app=helloworld")).await?;
        let running = list.items.into_iter().filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        });
        let mut last = None;
        for pod in running {
            let name = pod.metadata.name.unwrap_or_default();
            let chain = workload_chain(s, &self.0, names::SAMPLE, &name).await?;
            match judge_chain(&format!("{} ({name})", self.0.name), read_chain(&chain, &cacerts)?, &cacerts) {
                Observation::Holds(c) => last = Some(c),
                other => return Ok(other),
            }
        }
        Ok(match last {
            Some(c) => Observation::Holds(c),
            None => Observation::pending(format!("{}: no running helloworld pod", self.0.name)),
        })
    }
}

/// A cluster's `cacerts` chain to the root meshspec holds (the one the run made
/// them with, or `--mesh-root-ca`): only then is an intermediate issued from it
/// one the cluster's workloads and every other cluster's trust. Definite when
/// the roots differ: nothing but an operator changes either.
pub struct TrustsHeldRoot {
    pub cluster: ClusterTopology,
    /// SHA-256 of the held root's DER.
    pub held: String,
}

impl Check for TrustsHeldRoot {
    /// The shared root's fingerprint.
    type Evidence = String;

    fn name(&self) -> String {
        format!("{}: cacerts chain to the root meshspec holds", self.cluster.name)
    }

    fn deadline(&self, t: &Timeouts) -> Duration {
        t.api_call
    }

    async fn observe(&self, s: &Session) -> Result<Observation<String>> {
        let cacerts = match Cacerts(self.cluster.clone()).observe(s).await? {
            Observation::Holds((_, v)) => v,
            other => return Ok(other.map_holds(|_| String::new())),
        };
        Ok(if cacerts.root_fingerprint == self.held {
            Observation::Holds(cacerts.root_fingerprint)
        } else {
            Observation::broken(
                format!(
                    "{}: cacerts chain to {} (SHA-256 {}); the held root is SHA-256 {}",
                    self.cluster.name, cacerts.root_subject, cacerts.root_fingerprint, self.held
                ),
                Diagnosis::new(
                    "the root meshspec holds is not the root this cluster's cacerts chain to, so an intermediate issued from it would not be trusted by the mesh's workloads",
                    "pass the root the clusters' cacerts were issued from with --mesh-root-ca (root-cert.pem and root-key.pem)",
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::cacerts::{CaCerts, RootCa};
    use rcgen::{CertificateParams, Issuer, KeyPair};

    fn verified(c: &CaCerts) -> VerifiedCaCerts {
        let data = [
            ("ca-cert.pem", &c.ca_cert_pem),
            ("ca-key.pem", &c.ca_key_pem),
            ("root-cert.pem", &c.root_cert_pem),
            ("cert-chain.pem", &c.cert_chain_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        crate::mesh::cacerts::verify(&data).unwrap()
    }

    fn ders(pem: &str) -> Vec<Vec<u8>> {
        Pem::iter_from_buffer(pem.as_bytes()).map(|p| p.unwrap().contents).collect()
    }

    /// A leaf issued by `ca`, sent with its chain as a sidecar sends it.
    fn presented(ca: &CaCerts) -> Vec<Vec<u8>> {
        let key = KeyPair::from_pem(&ca.ca_key_pem).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca.ca_cert_pem, key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["helloworld".to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
        let mut chain = vec![leaf.der().to_vec()];
        chain.extend(ders(&ca.cert_chain_pem));
        chain
    }

    #[test]
    fn istiods_last_reload_line_is_what_it_did() {
        assert_eq!(last_reload("info\tUse local CA certificate\n"), None);
        let taken = format!("info\tUpdate Istiod cacerts\ninfo\t{LOG_TAKEN_UP}\n");
        assert_eq!(last_reload(&taken), Some(Reload::TakenUp));
        let refused = format!("{taken}info\tUpdate Istiod cacerts\nwarn\t{LOG_ROOT_REFUSED}\n");
        assert_eq!(last_reload(&refused), Some(Reload::RootRefused));
    }

    #[test]
    fn a_chain_is_judged_against_the_intermediate_and_root_of_cacerts() {
        let root = RootCa::generate().unwrap();
        let (old, new) = (root.intermediate("cluster2").unwrap(), root.intermediate("cluster2").unwrap());
        let other = RootCa::generate().unwrap().intermediate("cluster2").unwrap();

        let now = verified(&new);
        let got = read_chain(&presented(&new), &now).unwrap();
        assert!(got.leaf_issuer.contains("intermediate.multicluster.istio.io"));
        assert!(matches!(judge_chain("eks-2", got, &now), Observation::Holds(_)));
        // Without the root on the wire, the intermediate still decides.
        let short = read_chain(&presented(&new)[..2], &now).unwrap();
        assert!(matches!(judge_chain("eks-2", short, &now), Observation::Holds(_)));

        // The previous intermediate of the same root: not yet, and why.
        let stale = read_chain(&presented(&old), &now).unwrap();
        match judge_chain("eks-2", stale, &now) {
            Observation::Pending { diagnosis: Some(d), .. } => assert!(d.cause.contains("previous intermediate")),
            _ => panic!("an older intermediate of the same root is transient"),
        }

        // Another root: definite, naming the intermediate's issuer and the roots.
        let foreign = read_chain(&presented(&other), &now).unwrap();
        assert!(!foreign.signed_by_cacerts_root);
        match judge_chain("eks-2", foreign.clone(), &now) {
            Observation::Broken { diagnosis, .. } => {
                assert!(diagnosis.cause.contains(&foreign.intermediate_issuer), "{}", diagnosis.cause);
                assert!(diagnosis.cause.contains(&foreign.intermediate_fingerprint));
            }
            _ => panic!("another root is definite"),
        }
        assert!(read_chain(&presented(&new)[..1], &now).is_err(), "a leaf alone is refused");
    }
}
