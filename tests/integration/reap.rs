//! Nothing is left behind: runs that provision the eks target with Terraform
//! (a recording stand-in whose destroys act on `meshspec twin up`) are
//! interrupted with SIGINT and SIGTERM while a stage applies; `meshspec reap
//! --run-id` then destroys in the seed's order, and the aws CLI finds nothing.
//! (`--provisioner api` is refused on eks: it cannot build a working EKS
//! deployment, so the interrupted runs go through Terraform, as on EKS.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{run_bounded, text, TwinUp};
use super::standins::Standins;
use super::terraform::{meshspec, seed_destroy_rules, seed_plan, terraform_calls};

fn ledger_lines(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path()).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn reaping_an_interrupted_run_leaves_nothing() {
    // (signal, a word of the -targets of the apply that is running when it comes)
    for (signal, during) in [("INT", "module.vpc_1"), ("TERM", "istiod")] {
        let up = TwinUp::start();
        let tf_dir = tempfile::tempdir().unwrap();
        let [destroy_releases, destroy_rest] = seed_destroy_rules(&up);
        let standins = Standins::install(
            &["terraform"],
            serde_json::json!([
                {"tool": "terraform", "when": ["apply", during], "run": "sleep 20"},
                {"tool": "terraform", "when": ["apply"], "emit": "terraform-json"},
                destroy_releases,
                destroy_rest,
            ]),
        );
        let ledgers = tempfile::tempdir().unwrap();
        let reports = tempfile::tempdir().unwrap();
        let dir = tf_dir.path().to_str().unwrap();
        let mut run = meshspec(
            &up,
            &standins,
            &["run", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir", dir],
        );
        run.arg("--ledger-dir").arg(ledgers.path()).arg("--report-dir").arg(reports.path());
        let mut child = run.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let drained = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let start = Instant::now();
        while !terraform_calls(&standins).iter().any(|c| c.args[1] == "apply" && c.line().contains(during)) {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before applying {during}");
            assert!(start.elapsed() < Duration::from_secs(120), "the run never applied {during}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(Command::new("kill").args(["-s", signal, &child.id().to_string()]).status().unwrap().success());
        let status = child.wait().unwrap();
        let printed = drained.join().unwrap();
        let entries = ledger_lines(ledgers.path());
        assert!(!entries.is_empty(), "the run wrote no ledger before applying");
        let run_id =
            serde_json::from_str::<serde_json::Value>(&entries[0]).unwrap()["run_id"].as_str().unwrap().to_string();
        // The interrupted run ends on its own, with its summary and the line to reap it.
        assert_eq!(status.code(), Some(130), "after {signal}: {printed}");
        assert!(printed.contains(&format!("meshspec reap --target eks --run-id {run_id}")), "{printed}");
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(reports.path().join("cucumber.json")).unwrap())
            .expect("the interrupted run's cucumber.json parses");

        // What a run killed mid-write leaves: the complete lines are still reaped.
        let ledger_file = ledgers.path().join(format!("{run_id}.jsonl"));
        let lines = entries.len();
        let mut f = std::fs::OpenOptions::new().append(true).open(&ledger_file).unwrap();
        std::io::Write::write_all(&mut f, br#"{"run_id":"cut","kind":"VP"#).unwrap();
        drop(f);

        let applies = terraform_calls(&standins).len();
        let mut reap = meshspec(&up, &standins, &["reap", "--target", "eks", "--run-id", &run_id, "--ledger-dir"]);
        reap.arg(ledgers.path());
        let out = run_bounded(&mut reap, Duration::from_secs(180));
        assert!(out.status.success(), "reap after {signal}: {}{}", text(&out.stdout), text(&out.stderr));
        let damaged = format!("not reaped: {}:{}: a damaged ledger line", ledger_file.display(), lines + 1);
        assert!(text(&out.stdout).contains(&damaged), "{damaged:?} in {}", text(&out.stdout));
        let destroys: Vec<Vec<String>> = terraform_calls(&standins)
            .into_iter()
            .skip(applies)
            .filter(|c| c.args[1] == "destroy")
            .map(|c| c.targets())
            .collect();
        let seed: Vec<Vec<String>> = seed_plan().destroy.into_iter().map(|s| s.terraform_targets).collect();
        assert_eq!(destroys, seed, "reap after {signal} destroys in the seed's order");

        assert_eq!(up.aws(&["eks", "list-clusters"])["clusters"], serde_json::json!([]), "after {signal}");
        assert_eq!(up.aws(&["ec2", "describe-vpcs"])["Vpcs"], serde_json::json!([]), "after {signal}");
        assert_eq!(up.aws(&["elbv2", "describe-load-balancers"])["LoadBalancers"], serde_json::json!([]));
        assert_eq!(up.aws(&["ec2", "describe-network-interfaces"])["NetworkInterfaces"], serde_json::json!([]));
    }
}
