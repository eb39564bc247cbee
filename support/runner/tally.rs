//! A writer that counts scenarios by outcome, for the closing line
//! `N passed, N failed` and the exit code. It is one more decorator in the
//! writer chain, teed beside the console, JUnit and JSON writers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cucumber::event::{self, Cucumber, Feature, Rule, Scenario, Step};
use cucumber::{cli, gherkin, parser, Event, Writer};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Features that could not be parsed.
    pub parse_errors: usize,
}

impl Tally {
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.skipped == 0 && self.parse_errors == 0 && self.passed > 0
    }
}

type Key = (Option<std::path::PathBuf>, String, usize, usize);

#[derive(Clone, Default)]
pub struct TallyWriter {
    pub shared: Arc<Mutex<Tally>>,
    /// Scenarios in progress: whether one of their steps failed / was skipped.
    open: HashMap<Key, (bool, bool)>,
}

impl TallyWriter {
    pub fn new(shared: Arc<Mutex<Tally>>) -> Self {
        TallyWriter { shared, open: HashMap::new() }
    }

    fn scenario<W>(&mut self, feature: &gherkin::Feature, sc: &gherkin::Scenario, ev: &Scenario<W>) {
        let key = (feature.path.clone(), sc.name.clone(), sc.position.line, sc.position.col);
        let mark = |open: &mut HashMap<Key, (bool, bool)>, step: &Step<W>| {
            let entry = open.entry(key.clone()).or_default();
            match step {
                Step::Failed(..) => entry.0 = true,
                Step::Skipped => entry.1 = true,
                _ => {}
            }
        };
        match ev {
            Scenario::Started => {
                self.open.insert(key, (false, false));
            }
            Scenario::Background(_, step) | Scenario::Step(_, step) => mark(&mut self.open, step),
            Scenario::Hook(_, event::Hook::Failed(..)) => {
                self.open.entry(key).or_default().0 = true;
            }
            Scenario::Finished => {
                let (failed, skipped) = self.open.remove(&key).unwrap_or_default();
                let mut t = self.shared.lock().expect("tally");
                if failed {
                    t.failed += 1;
                } else if skipped {
                    t.skipped += 1;
                } else {
                    t.passed += 1;
                }
            }
            _ => {}
        }
    }
}

impl<W: cucumber::World> Writer<W> for TallyWriter {
    type Cli = cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Cucumber<W>>>, _: &Self::Cli) {
        match ev.map(Event::into_inner) {
            Err(_) => self.shared.lock().expect("tally").parse_errors += 1,
            Ok(Cucumber::Feature(f, Feature::Scenario(sc, retryable))) => self.scenario(&f, &sc, &retryable.event),
            Ok(Cucumber::Feature(f, Feature::Rule(_, Rule::Scenario(sc, retryable)))) => {
                self.scenario(&f, &sc, &retryable.event)
            }
            _ => {}
        }
    }
}
