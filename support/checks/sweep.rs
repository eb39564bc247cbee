//! Every check of the runbook, once, on one target: what `diagnosis.feature`
//! runs against a deployment with a fault, collecting the typed diagnoses of
//! the checks that fail. The checks are the values the steps wait on.

use serde::Serialize;

use super::check::{self, Check, CheckFailure, Diagnosis, Ending};
use super::{ordering, provisioning, readiness, sync};
use crate::run::Session;
use crate::topology::names;

#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    pub check: String,
    /// None when the check passed.
    pub failure: Option<CheckFailure>,
}

impl CheckOutcome {
    fn of<T>(check: String, r: Result<T, CheckFailure>) -> Self {
        CheckOutcome { check, failure: r.err() }
    }

    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        self.failure.as_ref().and_then(|f| f.diagnosis.as_ref())
    }
}

/// A failure that is not a check's (provisioning itself), as an outcome.
fn failed(check: &str, last_seen: String, diagnosis: Option<Diagnosis>) -> CheckOutcome {
    CheckOutcome {
        check: check.into(),
        failure: Some(CheckFailure { check: check.into(), ending: Ending::Broken, waited: 0.0, last_seen, diagnosis }),
    }
}

async fn until<C: Check>(s: &Session, c: C) -> CheckOutcome {
    CheckOutcome::of(c.name(), check::until(s, &c).await)
}

/// Some check failed, and the cause of a failed check's diagnosis names `cause`.
pub fn a_diagnosis_names(outcomes: &[CheckOutcome], cause: &str) -> Result<(), String> {
    let failed: Vec<&CheckOutcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    if failed.is_empty() {
        return Err("every check passed: the fault went unnoticed".into());
    }
    let causes: Vec<&str> = failed.iter().filter_map(|o| o.diagnosis()).map(|d| d.cause.as_str()).collect();
    if causes.iter().any(|d| d.contains(cause)) {
        return Ok(());
    }
    Err(format!(
        "no diagnosis names {cause:?}; failed checks: {:?}; diagnoses: {causes:?}",
        failed.iter().map(|o| o.check.as_str()).collect::<Vec<_>>()
    ))
}

pub async fn run(session: &Session) -> Vec<CheckOutcome> {
    let mut out = Vec::new();
    match session.run.provisioned.get() {
        Some(Err(e)) => {
            out.push(failed("provisioning", e.message.clone(), e.diagnosis.clone()));
            return out;
        }
        None => {
            out.push(failed("provisioning", "not provisioned".into(), None));
            return out;
        }
        Some(Ok(_)) => {}
    }
    let clusters = session.topology.clusters.clone();
    for c in &clusters {
        out.push(until(session, provisioning::Cacerts(c.clone())).await);
    }
    out.push(until(session, provisioning::OneRoot(clusters.clone())).await);
    for c in &clusters {
        out.push(
            until(session, ordering::IstiodAfterCacerts { cluster: c.clone(), namespace: names::SAMPLE.into() }).await,
        );
        out.push(until(session, provisioning::IstioGateway::cross_network(c.clone())).await);
        let ready = readiness::gateway_ready(session, c).await;
        out.push(CheckOutcome::of(format!("{}: readiness", c.name), ready));
        out.push(until(session, sync::RemoteSecretOf(c.clone())).await);
        out.push(until(session, sync::RemoteClusterSynced(c.clone())).await);
        out.push(until(session, sync::HelloworldEndpoints(c.clone())).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_caught_only_by_a_diagnosis_naming_it() {
        let ok = CheckOutcome { check: "a".into(), failure: None };
        let named = CheckOutcome {
            check: "b".into(),
            failure: Some(CheckFailure {
                check: "b".into(),
                ending: Ending::Broken,
                waited: 0.0,
                last_seen: "seen".into(),
                diagnosis: Some(Diagnosis::new("the remote secret is missing", "create it")),
            }),
        };
        assert!(a_diagnosis_names(std::slice::from_ref(&ok), "missing").unwrap_err().contains("unnoticed"));
        assert!(a_diagnosis_names(&[ok.clone(), named.clone()], "remote secret is missing").is_ok());
        assert!(a_diagnosis_names(&[ok, named], "cacerts").unwrap_err().contains("no diagnosis names"));
    }
}
