//! The acceptance run: every feature in features/ against the embedded twin
//! (`cargo test --test acceptance`). Reports go to target/meshspec/, the page
//! as target/meshspec/report.html.
//! MESHSPEC_TAGS narrows the run with a tag expression.

use std::process::ExitCode;

use meshspec::runner::{self, RunOptions};
use meshspec::target::{TargetKind, TargetOptions};
use meshspec::topology::Topology;

fn main() -> ExitCode {
    meshspec::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut opts = RunOptions::new(TargetOptions::new(TargetKind::Twin, Topology::seed()));
    opts.features = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features");
    opts.report_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/meshspec");
    opts.tags = std::env::var("MESHSPEC_TAGS").ok().filter(|t| !t.is_empty());
    match runtime.block_on(runner::run(opts)) {
        Ok(summary) => {
            println!("report: {}", summary.documents.page.display());
            println!("acceptance wall time: {:.2?}", summary.wall_time);
            println!("{}", runner::closing_line(&summary.tally));
            if summary.tally.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
