//! Running the features: one session on the target, cucumber with the console,
//! JUnit, Cucumber JSON and tally writers, skipped steps failing the run.

pub mod capability;
pub mod features;
pub mod tally;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use cucumber::tag::Ext as _;
use cucumber::{writer, World as _, WriterExt as _};

use crate::run::Session;
use crate::steps::{set_session, MeshWorld};
use crate::target::TargetOptions;
pub use capability::{Capabilities, Excluded};
pub use tally::Tally;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TargetOptions,
    pub features: PathBuf,
    /// Cucumber tag expression, e.g. `@readiness and not @slow`.
    pub tags: Option<String>,
    pub report_dir: PathBuf,
    /// Tear down what the run provisioned once the features ran, whatever their outcome.
    pub teardown: bool,
    /// The trend file (None: $MESHSPEC_TREND, else trend.jsonl in the report dir).
    pub trend: Option<PathBuf>,
}

impl RunOptions {
    pub fn new(target: TargetOptions) -> Self {
        RunOptions {
            target,
            features: PathBuf::from("features"),
            tags: None,
            report_dir: PathBuf::from("target/meshspec"),
            teardown: false,
            trend: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The ledger's run id, when the run keeps one (what `meshspec reap` takes).
    pub run_id: Option<String>,
    /// Stopped by a signal: the scenarios not started count as failed.
    pub interrupted: bool,
    pub tally: Tally,
    pub junit: PathBuf,
    pub json: PathBuf,
    pub wall_time: std::time::Duration,
    /// Scenarios the target cannot run, left out before the run started.
    pub excluded: Vec<Excluded>,
    /// The page, the conformance report and the trend file.
    pub documents: crate::report::documents::Written,
    /// With `teardown`: what the leak sweep still found, or why the teardown failed.
    pub teardown: Option<std::result::Result<Vec<crate::aws::network::Leftover>, String>>,
    /// The typed diagnoses failed steps attached, each once, in the order seen.
    pub diagnoses: Vec<crate::checks::check::Diagnosis>,
    /// When the mesh converged at each point, and each failed check's time to diagnosis.
    pub convergence: crate::report::convergence::Convergence,
    /// How long this run's own provisioning took (first stage start to last stage end).
    pub provisioning: Option<std::time::Duration>,
}

impl RunSummary {
    /// Whether the run passed: every scenario, and the teardown if there was one.
    pub fn ok(&self) -> bool {
        !self.interrupted
            && self.tally.ok()
            && self.teardown.as_ref().is_none_or(|t| t.as_ref().is_ok_and(Vec::is_empty))
    }
}

/// Run the features once against the target; the summary says how it went.
pub async fn run(opts: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let tags = opts
        .tags
        .as_deref()
        .map(|t| {
            cucumber::gherkin::tagexpr::TagOperation::from_str(t)
                .map_err(|e| anyhow::anyhow!("bad tag expression {t:?}: {e}"))
        })
        .transpose()?;
    features::load(&opts.features, tags.as_ref(), opts.tags.as_deref())?;
    // One run per report directory; this run's reports are staged and replace
    // the previous ones only once they are whole.
    let report_dir = crate::report::staging::ReportDir::claim(&opts.report_dir, "meshspec run")?;
    let staged = report_dir.staging.clone();
    let trend = crate::report::trend::path(opts.trend.as_deref(), &opts.report_dir);
    let junit = staged.join("junit.xml");
    let json = staged.join("cucumber.json");

    let session: Arc<Session> = Session::open(opts.target).await?;
    if let Err(e) = session.preflight().await {
        session.close().await;
        return Err(e.context("the target is not usable"));
    }
    if let Some(l) = &session.run.ledger {
        println!("run id: {} (ledger {})", l.run_id, l.path.display());
        // The twin ends with this process: nothing of it outlives the run.
        if !session.in_process() {
            crate::interrupt::set_last_words(reap_hint(&l.run_id, session.kind));
        }
    }
    let files = std::fs::File::create(&junit)
        .and_then(|j| std::fs::File::create(&json).map(|s| (j, s)))
        .with_context(|| format!("cannot write reports in {}", staged.display()));
    let (junit_file, json_file) = match files {
        Ok(f) => f,
        Err(e) => {
            session.close().await;
            return Err(e);
        }
    };
    set_session(Some(session.clone()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    // The tag expression is evaluated here, with the target's capabilities:
    // cucumber's own --tags filter would replace this filter, not narrow it.
    let capabilities = Capabilities {
        kind: session.kind,
        provisions: session.allow_provision,
        fault: session.fault.map(|f| f.name()),
        root_key: session.mesh_root_ca.is_some() || (session.allow_provision && session.provisioner.makes_ca()),
    };
    let excluded = Arc::new(Mutex::new(Vec::new()));
    let filter = {
        let excluded = excluded.clone();
        move |feature: &cucumber::gherkin::Feature,
              rule: Option<&cucumber::gherkin::Rule>,
              scenario: &cucumber::gherkin::Scenario| {
            let all: Vec<String> =
                feature.tags.iter().chain(rule.iter().flat_map(|r| &r.tags)).chain(&scenario.tags).cloned().collect();
            if tags.as_ref().is_some_and(|t| !t.eval(all.iter())) {
                return false;
            }
            match capabilities.exclusion(&all) {
                None => true,
                Some(reason) => {
                    let e =
                        Excluded { feature: feature.name.clone(), scenario: scenario.name.clone(), tags: all, reason };
                    println!("{e}");
                    excluded.lock().expect("exclusions").push(e);
                    false
                }
            }
        }
    };
    let cli = cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default();
    // A twin of processes costs three processes per fresh twin; scenarios side
    // by side (cucumber's default is 64) would starve a small machine's cores.
    let at_once = match session.twin_runtime {
        crate::target::twin::TwinRuntime::Processes => Some(PROCESS_TWIN_SCENARIOS_AT_ONCE),
        crate::target::twin::TwinRuntime::InProcess => None,
    };
    // A @disruptive scenario on the twin works on a fresh twin of its own;
    // elsewhere it disrupts the deployment every other scenario reads, so it
    // runs alone, as cucumber runs @serial ones.
    let disruptive_alone = session.kind != crate::target::TargetKind::Twin;
    let outcome = MeshWorld::cucumber()
        .max_concurrent_scenarios(at_once)
        .which_scenario(move |feature, rule, scenario| {
            let tags = feature.tags.iter().chain(rule.iter().flat_map(|r| &r.tags)).chain(&scenario.tags);
            let serial = tags
                .map(|t| t.trim_start_matches('@'))
                .any(|t| t == "serial" || (disruptive_alone && t == capability::DISRUPTIVE));
            if serial {
                cucumber::runner::basic::ScenarioType::Serial
            } else {
                cucumber::runner::basic::ScenarioType::Concurrent
            }
        })
        .with_writer(
            writer::Basic::raw(std::io::stdout(), writer::Coloring::Auto, 0)
                .summarized()
                .tee::<MeshWorld, _>(writer::JUnit::for_tee(junit_file, 0))
                .tee::<MeshWorld, _>(writer::Json::for_tee(json_file))
                .tee::<MeshWorld, _>(
                    tally::TallyWriter::new(tally.clone()).discard_stats_writes().discard_arbitrary_writes(),
                )
                .normalized(),
        )
        .fail_on_skipped()
        .before(|feature, _rule, scenario, world| {
            world.feature = feature.name.clone();
            world.scenario = scenario.name.clone();
            // Once interrupted, a scenario not yet started fails at once (a
            // failed hook), so the run reaches its end and writes its reports.
            if crate::interrupt::is_interrupted() {
                std::panic::panic_any(crate::interrupt::NOT_STARTED);
            }
            Box::pin(async {})
        })
        .after(|_feature, _rule, _scenario, event, world| {
            Box::pin(async move {
                if let Some(w) = world {
                    // A probe still running stops with its scenario (within one
                    // request deadline), its timeline recorded, before its deployment goes.
                    w.stop_probe("the end of its scenario").await;
                    let failed = matches!(event, cucumber::event::ScenarioFinished::StepFailed(..));
                    // Once interrupted, no time goes to collecting bundles.
                    if failed && !crate::interrupt::is_interrupted() {
                        w.attach_failure_bundle().await;
                    }
                    w.close_separate().await;
                }
            })
        })
        .with_cli(cli)
        .filter_run(opts.features.clone(), filter)
        .await;
    drop(outcome);
    set_session(None);
    let interrupted = crate::interrupt::is_interrupted();
    let evidence = session.run.evidence.write(&staged, &json);
    let mut diagnoses: Vec<crate::checks::check::Diagnosis> = Vec::new();
    for e in session.run.evidence.all().into_iter().filter(|e| e.name == crate::steps::DIAGNOSIS_EVIDENCE) {
        if let Ok(d) = serde_json::from_value(e.data) {
            if !diagnoses.contains(&d) {
                diagnoses.push(d);
            }
        }
    }
    let convergence = session.run.convergence.snapshot();
    let provisioning = match session.run.provisioned.get() {
        Some(Ok(r)) => {
            let start = r.stages.iter().map(|s| s.started_at).min();
            let end = r.stages.iter().map(|s| s.finished_at).max();
            start.zip(end).and_then(|(a, b)| (b - a).to_std().ok())
        }
        _ => None,
    };
    let excluded = excluded.lock().expect("exclusions").clone();
    let documents = crate::report::documents::after_run(
        &session,
        crate::report::documents::RunFacts {
            tags: opts.tags.clone(),
            started_at,
            excluded: &excluded,
            features: &opts.features,
            trend: Some(&trend),
            interrupted,
        },
        &staged,
    )
    .await;
    // The versions are read above while the clusters exist; then the twin ends
    // with the session, and other targets keep what was made unless told.
    let teardown = if opts.teardown && session.allow_provision && !session.in_process() {
        Some(crate::provision::teardown(&session).await.map_err(|e| format!("{e:#}")))
    } else {
        None
    };
    session.close().await;
    evidence?;
    let mut documents = documents?;
    report_dir.publish()?;
    documents.page = report_dir.published(&documents.page);
    documents.conformance = report_dir.published(&documents.conformance);
    let tally = tally.lock().expect("tally").clone();
    Ok(RunSummary {
        run_id: session.run.ledger.as_ref().map(|l| l.run_id.clone()),
        interrupted,
        tally,
        junit: report_dir.published(&junit),
        json: report_dir.published(&json),
        wall_time: started.elapsed(),
        excluded,
        documents,
        teardown,
        diagnoses,
        convergence,
        provisioning,
    })
}

/// How to remove what an interrupted run created.
/// How many scenarios run at once on a twin of processes.
pub const PROCESS_TWIN_SCENARIOS_AT_ONCE: usize = 4;

pub fn reap_hint(run_id: &str, kind: crate::target::TargetKind) -> String {
    format!("to remove what this run created: meshspec reap --target {kind} --run-id {run_id}")
}

/// The closing line CI reads: scenarios passed and failed (skipped count as failed).
pub fn closing_line(t: &Tally) -> String {
    format!("{} passed, {} failed", t.passed, t.failed + t.skipped + t.parse_errors)
}
