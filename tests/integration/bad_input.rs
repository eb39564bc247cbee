//! Bad input gives one clear error and a non-zero exit: never a panic, never a hang.

use std::process::Command;
use std::time::Duration;

use super::harness::{free_port, init, run_bounded, text, TwinTarget};

const LIMIT: Duration = Duration::from_secs(90);

/// meshspec with no kube or AWS configuration of the machine's.
pub(super) fn meshspec() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBECONFIG")
        .env_remove("CTX_CLUSTER1")
        .env_remove("CTX_CLUSTER2")
        .env_remove("MESHSPEC_DNS")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// Runs meshspec and expects exit code 2 with `needle` in a single `error:` line.
fn expect_clear_error(cmd: &mut Command, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    cmd.arg("--report-dir").arg(dir.path());
    let out = run_bounded(cmd, LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "exit code; stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert!(errors[0].contains(needle), "expected {needle:?} in {:?}", errors[0]);
}

fn eks_run() -> Command {
    let mut cmd = meshspec();
    cmd.args(["run", "--target", "eks"]);
    cmd
}

#[test]
fn a_missing_kubeconfig_is_named() {
    expect_clear_error(
        eks_run().args(["--kubeconfig", "/nonexistent/kubeconfig", "--context", "eks-1=a", "--context", "eks-2=b"]),
        "cannot load the kubeconfig /nonexistent/kubeconfig",
    );
}

#[test]
fn a_broken_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken");
    std::fs::write(&path, "clusters: [this is: not\n  - valid").unwrap();
    expect_clear_error(
        eks_run().arg("--kubeconfig").arg(&path).args(["--context", "eks-1=a"]),
        "cannot load the kubeconfig",
    );
}

fn kubeconfig_with_context(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: known\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: not-a-real-token\ncurrent-context: known\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn an_unknown_context_is_named_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeconfig_with_context(dir.path(), "https://127.0.0.1:1");
    expect_clear_error(
        eks_run().arg("--kubeconfig").arg(&path).args(["--context", "eks-1=nope"]),
        "no context \"nope\" in the kubeconfig (contexts: known)",
    );
}

#[test]
fn an_unreachable_api_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = kubeconfig_with_context(dir.path(), &format!("https://127.0.0.1:{port}"));
    expect_clear_error(
        eks_run().arg("--kubeconfig").arg(&path).args(["--context", "eks-1=known"]),
        &format!(
            "the API server of eks-1 (context \"known\") at https://127.0.0.1:{port}/ does not answer: connection refused"
        ),
    );
}

#[test]
fn an_unreachable_aws_endpoint_is_named() {
    let port = free_port();
    expect_clear_error(
        eks_run()
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_REGION", "us-west-2"),
        &format!("the AWS endpoint http://127.0.0.1:{port} does not answer ListClusters: connection refused"),
    );
}

#[test]
fn bad_aws_credentials_are_named_and_never_printed() {
    init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt.block_on(TwinTarget::start(1000.0));
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGSECRET";
    let bad_credentials = || {
        let mut cmd = eks_run();
        cmd.env("AWS_ENDPOINT_URL", target.twin.aws_endpoint())
            .env("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-west-2");
        cmd
    };
    expect_clear_error(&mut bad_credentials(), "UnrecognizedClientException");
    let reports = tempfile::tempdir().unwrap();
    let out = run_bounded(bad_credentials().arg("--report-dir").arg(reports.path()), LIMIT);
    assert!(!text(&out.stderr).contains(secret) && !text(&out.stdout).contains(secret));
    rt.block_on(target.twin.shutdown());
}

#[test]
fn a_bad_tag_expression_and_missing_features_are_named() {
    expect_clear_error(meshspec().args(["run", "--tags", "@a and and"]), "bad tag expression");
    expect_clear_error(
        meshspec().args(["run", "--features", "/nonexistent/features"]),
        "no features at /nonexistent/features",
    );
}

#[test]
fn a_broken_topology_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topology.yaml");
    std::fs::write(
        &path,
        "region: us-west-2\nmesh_id: m\nkubernetes_version: '1.28'\nistio_version: '1.20.2'\nclusters: []\n",
    )
    .unwrap();
    expect_clear_error(meshspec().args(["run", "--topology"]).arg(&path), "exactly two clusters");
}

/// Runs the twin target on one feature text; returns (exit code, stdout).
fn run_feature(feature: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.feature"), feature).unwrap();
    let out = run_bounded(
        meshspec().args(["run", "--features"]).arg(dir.path()).arg("--report-dir").arg(dir.path().join("reports")),
        LIMIT,
    );
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn an_undefined_step_fails_the_run() {
    let (code, stdout, stderr) =
        run_feature("Feature: probe\n  Scenario: undefined\n    Given a step meshspec does not define\n");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l == "0 passed, 1 failed"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_malformed_feature_is_named_with_its_line_before_anything_runs() {
    let (code, stdout, stderr) = run_feature(
        "Feature: probe\n  Scenario: broken\n    Given the mesh topology:\n  | a |\n nonsense here\n   Examples:\n",
    );
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("probe.feature:5:"), "{stderr}");
    assert!(stderr.contains("not valid Gherkin"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_empty_feature_set_is_an_error_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    expect_clear_error(meshspec().args(["run", "--features"]).arg(&features), "no .feature file in");
    expect_clear_error(meshspec().args(["run", "--tags", "@no-such-tag"]), "selects none of the");
}

#[test]
fn docs_without_a_run_to_render_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bounded(meshspec().args(["docs", "--from"]).arg(dir.path()).arg("--out").arg(dir.path()), LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("no run to render") && errors[0].contains("cucumber.json"), "{stderr}");
    // The catalog alone needs no run.
    let out = run_bounded(meshspec().args(["docs", "--catalog", "--out"]).arg(dir.path()), LIMIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("steps.md").exists() && !dir.path().join("report.html").exists());
}

#[test]
fn a_run_id_that_is_a_path_is_refused() {
    let ledgers = tempfile::tempdir().unwrap();
    // A file the traversal would reach if the id were joined to the ledger directory.
    std::fs::write(ledgers.path().join("x.jsonl"), "").unwrap();
    let inner = ledgers.path().join("a").join("b");
    std::fs::create_dir_all(&inner).unwrap();
    let mut cmd = meshspec();
    cmd.args(["reap", "--target", "eks", "--run-id", "../../x", "--ledger-dir"]).arg(&inner);
    let out = run_bounded(&mut cmd, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"../../x\" is not a run id meshspec writes"), "{stderr}");
}

#[test]
fn a_misspelt_topology_key_is_named_with_file_line_and_the_meant_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topology.yaml");
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/topology.yaml")).unwrap();
    let text = seed.replacen("    network: network1\n", "    network: network1\n    netwrok: network9\n", 1);
    let line = text.lines().position(|l| l.contains("netwrok")).unwrap() + 1;
    std::fs::write(&path, text).unwrap();
    expect_clear_error(
        meshspec().args(["run", "--topology"]).arg(&path),
        &format!("{}:{line}: unknown key `netwrok` in clusters[0]; did you mean `network`?", path.display()),
    );
}

#[test]
fn a_mesh_root_ca_that_cannot_issue_is_named_without_its_key() {
    expect_clear_error(
        meshspec().args(["run", "--mesh-root-ca", "/nonexistent/certs"]),
        "--mesh-root-ca: cannot read /nonexistent/certs/root-cert.pem",
    );
    // A certificate with another root's key.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    super::terraform::openssl_root(a.path(), "Root CA");
    super::terraform::openssl_root(b.path(), "Root CA");
    std::fs::copy(b.path().join("root-key.pem"), a.path().join("root-key.pem")).unwrap();
    let key = std::fs::read_to_string(a.path().join("root-key.pem")).unwrap();
    let mut cmd = meshspec();
    cmd.args(["run", "--mesh-root-ca"]).arg(a.path());
    expect_clear_error(&mut cmd, "root-key.pem does not match root-cert.pem");
    let out = run_bounded(meshspec().args(["run", "--mesh-root-ca"]).arg(a.path()), LIMIT);
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !text(&out.stderr).contains(&body[..40]) && !text(&out.stdout).contains(&body[..40]),
        "the key is never printed"
    );
}
