//! The eks and kind targets, verified here through `meshspec twin up`: the
//! twin is reached exactly as EKS would be (the seed's `aws eks
//! update-kubeconfig`, whose contexts get their tokens from `aws eks
//! get-token`), or as kind clusters would be (kube contexts only, no AWS).
//! Every scenario runs but those the target cannot run, each named with why.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::harness::{run_bounded, text, TwinUp};

const RUN_LIMIT: Duration = Duration::from_secs(300);

/// A scenario of the features, as cucumber names it (outlines expanded), with
/// its feature's and its own tags.
#[derive(Debug)]
struct Scenario {
    feature: String,
    name: String,
    tags: Vec<String>,
}

fn scenarios(features: &Path) -> Vec<Scenario> {
    meshspec::report::meta::feature_docs(features)
        .unwrap()
        .into_iter()
        .flat_map(|f| {
            f.scenarios
                .into_iter()
                .map(move |sc| Scenario { feature: f.name.clone(), name: sc.name, tags: sc.tags })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The scenarios a run reported in its Cucumber JSON.
fn ran(report_dir: &Path) -> BTreeSet<(String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("cucumber.json")).unwrap()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            f["elements"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "scenario")
                .map(|e| (f["name"].as_str().unwrap().to_string(), e["name"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// The `not run: FEATURE / SCENARIO: REASON` lines of a run's output.
fn not_run(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("not run: "))
        .map(|l| {
            let (feature, rest) = l.split_once(" / ").unwrap();
            let (scenario, reason) = rest.split_once(": ").unwrap();
            (feature.to_string(), scenario.to_string(), reason.to_string())
        })
        .collect()
}

/// Run the features (without the `@twin` ones, which start twins of their own)
/// and check that exactly the scenarios tagged `left_out` were left out, each
/// with a reason that names one of its `left_out` tags and says `reason`, and
/// that every other one ran and passed.
fn run_and_check(cmd: &mut Command, left_out: &[&str], reason: &str) {
    let reports = tempfile::tempdir().unwrap();
    cmd.args(["--tags", "not @twin", "--report-dir"]).arg(reports.path());
    let out = run_bounded(cmd, RUN_LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "the run failed:\n{stdout}\n{}", text(&out.stderr));
    let all: Vec<Scenario> = scenarios(&Path::new(env!("CARGO_MANIFEST_DIR")).join("features"))
        .into_iter()
        .filter(|s| !s.tags.iter().any(|t| t == "twin"))
        .collect();
    let expected_out: BTreeSet<(String, String)> = all
        .iter()
        .filter(|s| s.tags.iter().any(|t| left_out.contains(&t.as_str())))
        .map(|s| (s.feature.clone(), s.name.clone()))
        .collect();
    let expected_run: BTreeSet<(String, String)> =
        all.iter().map(|s| (s.feature.clone(), s.name.clone())).filter(|k| !expected_out.contains(k)).collect();
    let excluded = not_run(&stdout);
    assert_eq!(
        excluded.iter().map(|(f, s, _)| (f.clone(), s.clone())).collect::<BTreeSet<_>>(),
        expected_out,
        "scenarios left out"
    );
    for (feature, scenario, why) in &excluded {
        let s = all.iter().find(|s| &s.feature == feature && &s.name == scenario).unwrap();
        let named =
            s.tags.iter().filter(|t| left_out.contains(&t.as_str())).any(|t| why.starts_with(&format!("@{t}: ")));
        assert!(named && why.contains(reason), "{scenario}: reason {why:?}");
    }
    assert!(!expected_run.is_empty());
    assert_eq!(ran(reports.path()), expected_run, "scenarios run");
    let closing = format!("{} passed, 0 failed", expected_run.len());
    assert!(stdout.lines().any(|l| l == closing), "closing line {closing:?} missing:\n{stdout}");
    let junit = std::fs::read_to_string(reports.path().join("junit.xml")).unwrap();
    assert!(!junit.contains("<failure") && !junit.contains("<skipped"), "{junit}");
}

#[test]
fn the_eks_target_verifies_a_twin_reached_through_the_seeds_own_kubeconfig() {
    let up = TwinUp::start();
    // The runbook's commands, as written: update-kubeconfig, then the contexts from describe-cluster.
    let kubeconfig = up.dir.path().join("eks.kubeconfig");
    let mut contexts = Vec::new();
    for name in ["eks-1", "eks-2"] {
        let mut cmd = up.command("aws");
        cmd.args(["eks", "update-kubeconfig", "--region", "us-west-2", "--name", name, "--kubeconfig"])
            .arg(&kubeconfig);
        let out = run_bounded(&mut cmd, super::harness::CLI_LIMIT);
        assert!(out.status.success(), "update-kubeconfig: {}", text(&out.stderr));
        contexts
            .push(up.aws(&["eks", "describe-cluster", "--name", name])["cluster"]["arn"].as_str().unwrap().to_string());
    }
    // Its users get tokens from `aws eks get-token`: nothing but the EKS token format reaches the twin.
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(written.contains("get-token") && !written.contains("token:"), "{written}");

    let mut run = up.meshspec();
    run.env("KUBECONFIG", &kubeconfig)
        .env("CTX_CLUSTER1", &contexts[0])
        .env("CTX_CLUSTER2", &contexts[1])
        .args(["run", "--target", "eks"]);
    run_and_check(&mut run, &["provisions", "disruptive"], "--allow-provision");
}

#[test]
fn the_kind_target_runs_everything_but_the_aws_scenarios_with_kube_contexts_only() {
    let up = TwinUp::start();
    let mut run = up.meshspec();
    // Kube contexts and the DNS of the gateways' addresses, nothing of AWS.
    for var in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"] {
        run.env_remove(var);
    }
    run.args(["run", "--target", "kind", "--context"])
        .arg(format!("eks-1={}", up.env["CTX_CLUSTER1"]))
        .arg("--context")
        .arg(format!("eks-2={}", up.env["CTX_CLUSTER2"]));
    run_and_check(&mut run, &["aws", "provisions", "disruptive"], "target");
}

#[test]
fn a_token_from_aws_eks_get_token_opens_only_the_cluster_it_was_signed_for() {
    let up = TwinUp::start();
    let cred = up.aws(&["eks", "get-token", "--cluster-name", "eks-1"]);
    assert_eq!(cred["kind"], "ExecCredential");
    let token = cred["status"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("k8s-aws-v1."));
    for (ctx, accepted) in [(&up.env["CTX_CLUSTER1"], true), (&up.env["CTX_CLUSTER2"], false)] {
        let mut cmd = up.command("kubectl");
        cmd.arg("--cache-dir").arg(up.dir.path().join("kube-cache"));
        cmd.args(["get", "ns", "istio-system", "--context", ctx, "--token", &token]);
        let out = run_bounded(&mut cmd, super::harness::CLI_LIMIT);
        assert_eq!(out.status.success(), accepted, "{ctx}: {}", text(&out.stderr));
        if !accepted {
            assert!(text(&out.stderr).contains("You must be logged in"), "{}", text(&out.stderr));
        }
    }
}

#[test]
fn routine_operator_actions_do_not_fail_a_verification_run() {
    let up = TwinUp::start();
    // What operators do every week, made with kubectl: controller and istiod restarts
    // (add-on upgrades, node rotation), and pods rescheduled.
    for ctx in [&up.env["CTX_CLUSTER1"], &up.env["CTX_CLUSTER2"]] {
        for (deployment, ns) in [("aws-load-balancer-controller", "kube-system"), ("istiod", "istio-system")] {
            up.kubectl(&["--context", ctx, "rollout", "restart", &format!("deployment/{deployment}"), "-n", ns]);
        }
        up.kubectl(&["--context", ctx, "delete", "pod", "-n", "sample", "-l", "app=helloworld", "--wait=false"]);
    }
    for ctx in [&up.env["CTX_CLUSTER1"], &up.env["CTX_CLUSTER2"]] {
        for (deployment, ns) in
            [("aws-load-balancer-controller", "kube-system"), ("istiod", "istio-system"), ("helloworld-v1", "sample")]
        {
            let exists = up.kubectl(&["--context", ctx, "get", "deployment", "-n", ns, "-o", "name"]);
            if exists.contains(&format!("deployment.apps/{deployment}")) {
                up.kubectl(&[
                    "--context",
                    ctx,
                    "rollout",
                    "status",
                    &format!("deployment/{deployment}"),
                    "-n",
                    ns,
                    "--timeout=60s",
                ]);
            }
        }
    }
    let mut run = up.meshspec();
    run.args(["run", "--target", "eks"]);
    run_and_check(&mut run, &["provisions", "disruptive"], "--allow-provision");
}
