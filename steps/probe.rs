//! Steps of the traffic probe (features/operations.feature): requests from
//! every cluster's sleep pod for as long as a scenario's operation lasts, the
//! marks the scenario sets on the probe's timeline, and the checks on it. The
//! probe stops when its scenario ends, and its timeline is attached to the
//! step that started it.

use std::time::Duration;

use cucumber::gherkin::Step;
use cucumber::{given, then, when, Parameter};

use super::{MeshWorld, StepResult};
use crate::checks::probe::{
    self as check, AnsweredAgain, Answers, EveryVersionAnswered, FailuresOnlyBetween, NoFailedRequest,
    OnlyVersionBetween,
};
use crate::mesh::probe::{Probe, ProbeView};

/// The evidence a probe's timeline is attached as (the report draws it).
pub const TIMELINE_EVIDENCE: &str = "probe timeline";

/// A probe running in a scenario, and the step that started it.
#[derive(Debug)]
pub struct ScenarioProbe {
    pub probe: Probe,
    pub started_by: String,
}

/// A duration as a feature states it: `90 s`, `90 seconds`, `5 minutes`, `500 ms`.
#[derive(Debug, Parameter)]
#[param(name = "duration", regex = r"\d+(?:\.\d+)? ?(?:ms|s|seconds?|min|minutes?)")]
pub struct StatedDuration(pub Duration);

impl std::str::FromStr for StatedDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (number, unit) = (&s[..split], s[split..].trim());
        let n: f64 = number.parse().map_err(|_| format!("{s:?} is not a duration"))?;
        let seconds = match unit {
            "ms" => n / 1000.0,
            "s" | "second" | "seconds" => n,
            "min" | "minute" | "minutes" => n * 60.0,
            _ => return Err(format!("{s:?}: the unit is one of ms, s, seconds, min, minutes")),
        };
        Ok(StatedDuration(Duration::from_secs_f64(seconds)))
    }
}

impl MeshWorld {
    fn probe(&self) -> anyhow::Result<&Probe> {
        self.probe.as_ref().map(|p| &p.probe).ok_or_else(|| {
            anyhow::anyhow!(
                "no traffic probe runs in this scenario: start one with `Given a traffic probe runs from every cluster's sleep pod to \"URL\"`"
            )
        })
    }

    fn probe_view(&self) -> anyhow::Result<ProbeView> {
        self.probe().map(Probe::view)
    }

    /// The helloworld versions of the topology's clusters.
    fn versions(&self) -> Vec<String> {
        self.topology().clusters.iter().map(|c| c.sample_version.clone()).collect()
    }

    /// Stop the scenario's probe, if one runs, and attach its timeline to the
    /// step that started it (the runner calls this when a scenario ends).
    pub async fn stop_probe(&mut self, by: &str) {
        if let Some(p) = self.probe.take() {
            let timeline = p.probe.stop(by).await;
            self.session.run.evidence.add(crate::report::evidence::Evidence {
                feature: self.feature.clone(),
                scenario: self.scenario.clone(),
                step: p.started_by,
                name: TIMELINE_EVIDENCE.into(),
                data: serde_json::to_value(&timeline)
                    .unwrap_or_else(|e| serde_json::json!({"unserializable": e.to_string()})),
            });
        }
    }
}

/// Start sending requests from every cluster's sleep pod through its sidecar to the URL, one at a time per
/// cluster at the target's pace (every 250 ms on EKS; compressed on the twin), each within its deadline, until the
/// scenario ends. Starts once each sidecar holds both networks' helloworld endpoints, as the load-balancing
/// steps wait for them. The timeline (every answer with its time, version or error, and the marks) is
/// attached to this step when the scenario ends.
#[given(expr = "a traffic probe runs from every cluster's sleep pod to {string}")]
async fn start(w: &mut MeshWorld, step: &Step, url: String) -> StepResult {
    ensure!(w.probe.is_none(), "a traffic probe already runs in this scenario");
    let probe = check::start(&w.session, &url).await.map_err(|e| w.failed(step, e))?;
    w.probe = Some(ScenarioProbe { probe, started_by: step.value.clone() });
    Ok(())
}

/// Name this instant on the probe's timeline; the window and recovery steps refer to it by name.
#[when(expr = "the probe marks {string}")]
async fn mark(w: &mut MeshWorld, name: String) -> StepResult {
    w.probe()?.mark(&name).map_err(anyhow::Error::new)?;
    Ok(())
}

/// Wait until every cluster's sleep pod has had this many probe requests answered (or failed).
#[when(expr = "the probe has {int} answers from every cluster")]
async fn answers(w: &mut MeshWorld, step: &Step, n: usize) -> StepResult {
    ensure!(n > 0, "at least one answer");
    let counts = w.until(step, &Answers { probe: w.probe_view()?, n, since: None }).await?;
    w.attach(step, "probe answers", &counts);
    Ok(())
}

/// Wait until every cluster's sleep pod has had this many probe requests, sent after the mark, answered (or failed).
#[when(expr = "the probe has {int} answers from every cluster since {string}")]
async fn answers_since(w: &mut MeshWorld, step: &Step, n: usize, mark: String) -> StepResult {
    ensure!(n > 0, "at least one answer");
    let counts = w.until(step, &Answers { probe: w.probe_view()?, n, since: Some(mark) }).await?;
    w.attach(step, "probe answers", &counts);
    Ok(())
}

/// Every probe request of the cluster sent at or after the first mark and answered by the second was answered by
/// the cluster's own helloworld version (the topology's), and none failed; requests in flight at either mark are
/// left to `no probe request failed`. Attaches how many were judged.
#[then(
    expr = "only the local helloworld version answered the probe of {string} between {string} and {string}, without an error"
)]
async fn only_local_between(w: &mut MeshWorld, step: &Step, cluster: String, from: String, to: String) -> StepResult {
    let version = w.topology().cluster(&cluster)?.sample_version.clone();
    let c = OnlyVersionBetween { probe: w.probe_view()?, cluster, version, from, to };
    let evidence = w.until(step, &c).await?;
    w.attach(step, "probe local-only window", &evidence);
    Ok(())
}

/// No probe request sent before this step failed (those still in flight are awaited, within their deadline);
/// attaches the answers per cluster and version.
#[then(expr = "no probe request failed")]
async fn no_failure(w: &mut MeshWorld, step: &Step) -> StepResult {
    let counts = w.until(step, &NoFailedRequest::new(w.probe_view()?)).await?;
    w.attach(step, "probe answers", &counts);
    Ok(())
}

/// Every probe request sent before this step that failed was in flight between the two marks (sent at or
/// before the second, answered at or after the first); a failure outside is named with its time and answer.
/// Attaches how many failed inside the window per cluster.
#[then(expr = "probe requests failed only between {string} and {string}")]
async fn failed_only_between(w: &mut MeshWorld, step: &Step, from: String, to: String) -> StepResult {
    let window = w.until(step, &FailuresOnlyBetween::new(w.probe_view()?, &from, &to)).await?;
    w.attach(step, "probe failure window", &window);
    Ok(())
}

/// Every cluster's probe requests sent after the mark are answered by both helloworld versions within the
/// duration (on the twin, compressed by its time scale as its deadlines are, never under 10 s); waits for it
/// while the duration lasts. Attaches how long each cluster took.
#[then(expr = "both helloworld versions answer every cluster's probe again within {duration} of {string}")]
async fn answered_again(w: &mut MeshWorld, step: &Step, within: StatedDuration, mark: String) -> StepResult {
    let c = AnsweredAgain::new(w.probe_view()?, &mark, w.versions(), within.0, &w.session.timeouts);
    let recovery = w.until(step, &c).await?;
    w.attach(step, "probe recovery", &recovery);
    Ok(())
}

/// Both helloworld versions answered the probe requests of every cluster sent before this step.
#[then(expr = "both helloworld versions answered every cluster's probe")]
async fn every_version(w: &mut MeshWorld, step: &Step) -> StepResult {
    let counts = w.until(step, &EveryVersionAnswered::new(w.probe_view()?, w.versions())).await?;
    w.attach(step, "probe answers", &counts);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_durations_read_as_people_write_them() {
        let d = |s: &str| s.parse::<StatedDuration>().map(|d| d.0);
        assert_eq!(d("90 s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1 second"), Ok(Duration::from_secs(1)));
        assert_eq!(d("5 minutes"), Ok(Duration::from_secs(300)));
        assert_eq!(d("2.5 min"), Ok(Duration::from_secs(150)));
        assert_eq!(d("500 ms"), Ok(Duration::from_millis(500)));
        assert!(d("5 hours").is_err());
        assert!(d("soon").is_err());
    }
}
