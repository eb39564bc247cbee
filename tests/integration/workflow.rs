//! The nightly workflow example (.github/workflows/nightly-eks.yml) is run,
//! not just read: its verification steps' shell, as written, against
//! `meshspec twin up` standing in for EKS (the aws CLI's update-kubeconfig,
//! the doctor, the run), and the JUnit it publishes is the one the run wrote.

use std::path::Path;
use std::time::Duration;

use super::harness::{run_bounded, text, TwinUp};

fn workflow() -> serde_yaml::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/nightly-eks.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn step<'a>(steps: &'a [serde_yaml::Value], name: &str) -> &'a serde_yaml::Value {
    steps.iter().find(|s| s["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no step {name:?}"))
}

#[test]
fn the_nightly_workflow_verifies_with_the_runbooks_contexts_and_publishes_the_runs_junit() {
    let wf = workflow();
    assert!(wf["on"]["schedule"][0]["cron"].as_str().is_some(), "it runs nightly");
    let steps = wf["jobs"]["conformance"]["steps"].as_sequence().unwrap();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(at("Kube contexts, as the runbook makes them") < at("Doctor") && at("Doctor") < at("Verify the mesh"));
    assert!(at("Verify the mesh") < at("Publish JUnit"));
    assert_eq!(step(steps, "Publish JUnit")["if"].as_str(), Some("always()"));
    let verify = step(steps, "Verify the mesh")["run"].as_str().unwrap();
    let report_dir = verify.split("--report-dir ").nth(1).unwrap().split_whitespace().next().unwrap();
    assert_eq!(
        step(steps, "Publish JUnit")["with"]["report_paths"].as_str(),
        Some(format!("{report_dir}/junit.xml").as_str())
    );

    // The verification steps' shell, as written, with twin up standing in for EKS.
    let up = TwinUp::start();
    let work = tempfile::tempdir().unwrap();
    let github_env = work.path().join("github.env");
    // The job runs in the checkout: the features are where they are in it.
    std::os::unix::fs::symlink(Path::new(env!("CARGO_MANIFEST_DIR")).join("features"), work.path().join("features"))
        .unwrap();
    let binary = env!("CARGO_BIN_EXE_meshspec");
    let shell = |script: &str, extra: &[(String, String)]| {
        let mut cmd = up.command("bash");
        // A runner has AWS credentials, not twin up's kubeconfig and contexts.
        cmd.env_remove("KUBECONFIG").env_remove("CTX_CLUSTER1").env_remove("CTX_CLUSTER2");
        cmd.current_dir(work.path()).env("GITHUB_ENV", &github_env).envs(extra.iter().cloned());
        cmd.args(["-euo", "pipefail", "-c", &script.replace("target/debug/meshspec", binary)]);
        run_bounded(&mut cmd, Duration::from_secs(300))
    };
    let out = shell(step(steps, "Kube contexts, as the runbook makes them")["run"].as_str().unwrap(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ctx: Vec<(String, String)> = std::fs::read_to_string(&github_env)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    assert_eq!(ctx.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["CTX_CLUSTER1", "CTX_CLUSTER2"]);
    // update-kubeconfig wrote ~/.kube/config; the twin's own kubeconfig is not used.
    let mut env = ctx.clone();
    env.push(("KUBECONFIG".into(), up.dir.path().join(".kube/config").display().to_string()));
    let doctor = shell(step(steps, "Doctor")["run"].as_str().unwrap(), &env);
    assert!(doctor.status.success(), "{}{}", text(&doctor.stdout), text(&doctor.stderr));
    let run = shell(verify, &env);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    let junit = std::fs::read_to_string(work.path().join(report_dir).join("junit.xml")).unwrap();
    assert!(junit.contains("<testcase") && !junit.contains("<failure"), "{junit}");
}
