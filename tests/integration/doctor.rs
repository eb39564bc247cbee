//! `meshspec doctor` against `meshspec twin up` reached like EKS, and with
//! tools missing or broken (stand-ins), bad credentials and version drift.

use std::process::Command;
use std::time::Duration;

use super::harness::{run_bounded, text, TwinUp, CLI_LIMIT};
use super::standins::Standins;

const LIMIT: Duration = Duration::from_secs(120);

/// The seed's kubeconfig (update-kubeconfig) of twin up's clusters, and the contexts.
fn eks_kubeconfig(up: &TwinUp) -> (std::path::PathBuf, Vec<String>) {
    let path = up.dir.path().join("eks.kubeconfig");
    let mut contexts = Vec::new();
    for name in ["eks-1", "eks-2"] {
        let mut cmd = up.command("aws");
        cmd.args(["eks", "update-kubeconfig", "--name", name, "--kubeconfig"]).arg(&path);
        assert!(run_bounded(&mut cmd, CLI_LIMIT).status.success());
        contexts
            .push(up.aws(&["eks", "describe-cluster", "--name", name])["cluster"]["arn"].as_str().unwrap().to_string());
    }
    (path, contexts)
}

fn doctor(cmd: &mut Command) -> (Option<i32>, Vec<String>) {
    let out = run_bounded(cmd, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.stderr.is_empty() || !text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    (out.status.code(), stdout.lines().map(str::to_string).collect())
}

fn line<'a>(lines: &'a [String], start: &str) -> &'a str {
    lines.iter().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no line {start:?} in {lines:#?}"))
}

#[test]
fn doctor_passes_a_reachable_deployment_and_names_what_it_saw() {
    let up = TwinUp::start();
    let (kubeconfig, contexts) = eks_kubeconfig(&up);
    let mut cmd = up.meshspec();
    cmd.env("KUBECONFIG", &kubeconfig).env("CTX_CLUSTER1", &contexts[0]).env("CTX_CLUSTER2", &contexts[1]);
    cmd.args(["doctor", "--target", "eks"]);
    let (code, lines) = doctor(&mut cmd);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(line(&lines, "ok    AWS credentials: arn:aws:iam::").contains("region us-west-2"));
    assert!(line(&lines, &format!("ok    context {}", contexts[0])).contains("`aws`"));
    assert!(line(&lines, "ok    EKS eks-2: ACTIVE, Kubernetes 1.28").contains("platform"));
    assert!(line(&lines, "ok    Istio eks-1: istiod runs").contains(":1.20.2"));
    assert_eq!(lines.last().unwrap(), "doctor: 10 ok, 0 warnings, 0 failed");
    let secret = &up.env["AWS_SECRET_ACCESS_KEY"];
    assert!(!lines.iter().any(|l| l.contains(secret.as_str())), "the secret key never shows");

    // The same target with the wrong secret: every AWS check fails with the service's own code.
    let mut bad = up.meshspec();
    bad.env("AWS_SECRET_ACCESS_KEY", "not-the-secret-key-at-all");
    bad.args(["doctor", "--target", "eks"]);
    let (code, lines) = doctor(&mut bad);
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(line(&lines, "FAIL  AWS credentials:").contains("SignatureDoesNotMatch"));
    assert!(!lines.iter().any(|l| l.contains("not-the-secret-key-at-all")));

    // An Istio version the topology does not expect is a warning, not a failure.
    let mut topology = meshspec::topology::Topology::seed();
    topology.istio_version = "1.21.0".into();
    let file = up.dir.path().join("topology.yaml");
    std::fs::write(&file, serde_yaml::to_string(&topology).unwrap()).unwrap();
    let mut drift = up.meshspec();
    drift.args(["doctor", "--target", "eks", "--topology"]).arg(&file);
    let (code, lines) = doctor(&mut drift);
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(line(&lines, "warn  Istio eks-1: istiod runs").contains("(topology: 1.21.0)"));
}

#[test]
fn doctor_names_every_missing_tool_before_a_kind_or_terraform_provisioning() {
    let up = TwinUp::start();
    let standins = Standins::install(
        &["docker", "terraform"],
        serde_json::json!([
            {"tool": "docker", "when": ["version"], "stderr": ["Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"], "exit": 1},
            {"tool": "terraform", "when": ["version"], "stdout": ["Terraform v1.11.4", "on linux_amd64"]},
        ]),
    );
    // Only the stand-ins and the system's own directories: no kind, no helm.
    let path = format!("{}:/usr/bin:/bin", standins.dir.path().display());
    let mut kind = up.meshspec();
    standins.apply(&mut kind);
    kind.env("PATH", &path).args(["doctor", "--target", "kind", "--allow-provision", "eks-1,eks-2"]);
    let (code, lines) = doctor(&mut kind);
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(line(&lines, "FAIL  tool kind: not found on PATH").contains("kind.sigs.k8s.io"));
    assert!(line(&lines, "FAIL  tool helm: not found on PATH").contains("helm.sh"));
    assert!(line(&lines, "FAIL  tool docker: does not work").contains("Is the docker daemon running?"), "{lines:#?}");

    let tf = tempfile::tempdir().unwrap();
    let mut terraform = up.meshspec();
    standins.apply(&mut terraform);
    terraform
        .env("PATH", &path)
        .args(["doctor", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir"])
        .arg(tf.path());
    let (code, lines) = doctor(&mut terraform);
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(line(&lines, "ok    tool terraform: Terraform v1.11.4").contains("to apply the stages"));
    assert!(line(&lines, "FAIL  terraform directory:").contains("holds no .tf file"));
    std::fs::write(tf.path().join("main.tf"), "").unwrap();
    let (code, lines) = doctor(&mut terraform);
    assert_eq!(code, Some(0), "{lines:#?}");
}

#[test]
fn doctor_compares_the_given_mesh_root_with_each_clusters_cacerts() {
    let (root, stranger) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    super::terraform::openssl_root(root.path(), "Root CA");
    super::terraform::openssl_root(stranger.path(), "Another Root CA");
    let up = TwinUp::with_args(&["--mesh-root-ca", root.path().to_str().unwrap()]);
    let (kubeconfig, contexts) = eks_kubeconfig(&up);
    let doctor_with = |dir: &std::path::Path| {
        let mut cmd = up.meshspec();
        cmd.env("KUBECONFIG", &kubeconfig).env("CTX_CLUSTER1", &contexts[0]).env("CTX_CLUSTER2", &contexts[1]);
        cmd.args(["doctor", "--target", "eks", "--mesh-root-ca"]).arg(dir);
        doctor(&mut cmd)
    };
    let (code, lines) = doctor_with(root.path());
    assert_eq!(code, Some(0), "{lines:#?}");
    for c in ["eks-1", "eks-2"] {
        assert!(line(&lines, &format!("ok    mesh root CA {c}: cacerts chain to the root of --mesh-root-ca"))
            .contains("SHA-256"));
    }
    let (code, lines) = doctor_with(stranger.path());
    assert_eq!(code, Some(1), "{lines:#?}");
    let failed = line(&lines, "FAIL  mesh root CA eks-1:");
    assert!(failed.contains("the held root is SHA-256") && failed.contains("--mesh-root-ca"), "{failed}");
}
