//! The eks target's Terraform provisioner, checked against a recording
//! stand-in for `terraform` (arguments, order, environment, output and exit
//! handling, a stage failing midway), with `meshspec twin up` as the AWS and
//! Kubernetes side; and once against the real terraform binary on a root
//! module of `terraform_data` resources (no provider to download).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use meshspec::fixtures::Fixtures;
use meshspec::provision::plan::StagePlan;

use super::harness::{expect_error, run_bounded, run_id, text, TwinUp};
use super::standins::{Call, Standins};

const LIMIT: Duration = Duration::from_secs(300);

/// meshspec against twin up reached like EKS without kube contexts: kube access
/// comes from DescribeCluster and in-process tokens, as after a Terraform run.
pub(super) fn meshspec(up: &TwinUp, standins: &Standins, args: &[&str]) -> Command {
    let mut cmd = up.meshspec();
    cmd.env_remove("KUBECONFIG").env_remove("CTX_CLUSTER1").env_remove("CTX_CLUSTER2");
    standins.apply(&mut cmd);
    cmd.args(args);
    cmd
}

pub(super) fn seed_plan() -> StagePlan {
    StagePlan::load(&Fixtures::embedded(), "stages.yaml").unwrap()
}

pub(super) fn terraform_calls(standins: &Standins) -> Vec<Call> {
    standins.calls().into_iter().filter(|c| c.tool == "terraform").collect()
}

/// Every staged call runs in `dir`, unattended, with Terraform's machine-readable output.
fn assert_unattended(call: &Call, dir: &Path) {
    assert_eq!(call.args[0], format!("-chdir={}", dir.display()), "{}", call.line());
    assert_eq!(call.env.get("TF_IN_AUTOMATION").map(String::as_str), Some("1"), "{}", call.line());
    assert_eq!(call.env.get("TF_INPUT").map(String::as_str), Some("0"), "{}", call.line());
    if call.args[1] != "init" {
        for flag in ["-auto-approve", "-input=false", "-json"] {
            assert!(call.args.iter().any(|a| a == flag), "{flag} missing: {}", call.line());
        }
    }
}

/// A root CA as an operator makes one with openssl, after Istio's
/// tools/certs/Makefile.selfsigned.mk (`root-ca`: `openssl genrsa`, a request,
/// then `openssl x509 -req -signkey` with `basicConstraints = critical,
/// CA:true`), its key in PKCS#1 as Terraform's `tls_private_key` writes it.
pub(super) fn openssl_root(dir: &Path, cn: &str) {
    let conf = dir.join("root-ca.conf");
    std::fs::write(
        &conf,
        format!(
            "[ req ]\nencrypt_key = no\nprompt = no\nutf8 = yes\ndefault_md = sha256\nreq_extensions = req_ext\n\
             x509_extensions = req_ext\ndistinguished_name = req_dn\n[ req_ext ]\nsubjectKeyIdentifier = hash\n\
             basicConstraints = critical, CA:true\n\
             keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign\n\
             [ req_dn ]\nO = Istio\nCN = {cn}\n"
        ),
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
    };
    openssl(&["genrsa", "-traditional", "-out", "root-key.pem", "2048"]);
    openssl(&["req", "-sha256", "-new", "-key", "root-key.pem", "-config", "root-ca.conf", "-out", "root-cert.csr"]);
    openssl(&[
        "x509",
        "-req",
        "-sha256",
        "-days",
        "3650",
        "-signkey",
        "root-key.pem",
        "-extensions",
        "req_ext",
        "-extfile",
        "root-ca.conf",
        "-in",
        "root-cert.csr",
        "-out",
        "root-cert.pem",
    ]);
    let key = std::fs::read_to_string(dir.join("root-key.pem")).unwrap();
    let label = x509_parser::pem::Pem::iter_from_buffer(key.as_bytes()).next().unwrap().unwrap().label;
    assert_eq!(label, "RSA PRIVATE KEY", "PKCS#1, as Terraform writes RSA keys");
}

/// One key of a cluster's `cacerts` (`root-cert.pem`, `ca-cert.pem`), as PEM, read with kubectl.
fn cacerts_pem(up: &TwinUp, context: &str, key: &str) -> String {
    let key = key.replace('.', "\\.");
    let out = up
        .command("kubectl")
        .args(["--context", context, "get", "secret", "cacerts", "-n", "istio-system"])
        .args(["-o", &format!("jsonpath={{.data.{key}}}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    use base64::Engine as _;
    text(&base64::engine::general_purpose::STANDARD.decode(out.stdout.trim_ascii()).unwrap())
}

#[test]
fn a_run_on_eks_applies_the_seeds_stages_with_terraform_then_verifies_everything() {
    // The mesh's root, kept by its operator: the deployment's cacerts are issued
    // from it (by twin up, standing in for the user's Terraform), and meshspec
    // is given it to rotate an intermediate.
    let root_dir = tempfile::tempdir().unwrap();
    openssl_root(root_dir.path(), "Root CA");
    let root_dir_arg = root_dir.path().to_str().unwrap();
    let up = TwinUp::with_args(&["--mesh-root-ca", root_dir_arg]);
    let root_pem = std::fs::read_to_string(root_dir.path().join("root-cert.pem")).unwrap();
    let fingerprint = |pem: &str| meshspec::mesh::cacerts::root_fingerprint(pem).unwrap();
    let contexts = ["CTX_CLUSTER1", "CTX_CLUSTER2"].map(|c| up.env[c].clone());
    let intermediates_before = contexts.clone().map(|c| cacerts_pem(&up, &c, "ca-cert.pem"));
    for c in &contexts {
        let pem = cacerts_pem(&up, c, "root-cert.pem");
        assert_eq!(fingerprint(&pem), fingerprint(&root_pem), "cacerts issued from the operator's root");
    }
    let tf_dir = tempfile::tempdir().unwrap();
    let standins = Standins::install(
        &["terraform"],
        serde_json::json!([
            {"tool": "terraform", "when": ["init"], "stdout": ["Terraform has been successfully initialized!"]},
            {"tool": "terraform", "when": ["apply"], "emit": "terraform-json"},
        ]),
    );
    let reports = tempfile::tempdir().unwrap();
    let ledgers = tempfile::tempdir().unwrap();
    let dir = tf_dir.path().to_str().unwrap();
    let mut run = meshspec(
        &up,
        &standins,
        // Every scenario but those on a fresh twin of their own: the @disruptive operations run
        // on this deployment, the same-root CA rotation with the root given.
        &[
            "run",
            "--target",
            "eks",
            "--allow-provision",
            "eks-1,eks-2",
            "--terraform-dir",
            dir,
            "--mesh-root-ca",
            root_dir_arg,
            "--tags",
            "not @twin",
        ],
    );
    run.arg("--report-dir").arg(reports.path()).arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut run, LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("not run:"), "a provisioned eks target runs every scenario:\n{stdout}");

    // init, then one apply per stage of the plan, with exactly its -targets (the last one whole).
    let calls = terraform_calls(&standins);
    let plan = seed_plan();
    assert_eq!(calls.len(), 1 + plan.stages.len(), "{:#?}", calls.iter().map(Call::line).collect::<Vec<_>>());
    assert_eq!(calls[0].args[1], "init");
    for (call, stage) in calls[1..].iter().zip(&plan.stages) {
        assert_eq!(call.args[1], "apply", "{}", call.line());
        assert_eq!(call.targets(), stage.terraform_targets, "stage {}", stage.name);
    }
    assert!(calls.last().unwrap().targets().is_empty(), "the last apply is the whole configuration");
    for c in &calls {
        assert_unattended(c, &std::fs::canonicalize(tf_dir.path()).unwrap_or(tf_dir.path().into()));
    }
    // Terraform's messages are streamed with the stage and the resources done.
    assert!(
        stderr.contains("[terraform apply 1/3 infrastructure 1/6] module.vpc_1: Creation complete after 1s"),
        "{stderr}"
    );
    assert!(stderr.contains("[terraform apply 3/3 workloads 1/1] Apply complete! Resources: 1 added"), "{stderr}");
    // The contexts were built from EKS, and written for the user as update-kubeconfig would.
    let kubeconfig = std::fs::read_to_string(reports.path().join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains("cluster/eks-1") && kubeconfig.contains("get-token"), "{kubeconfig}");
    // The ledger names the root module, for `reap`.
    let ledger: String = std::fs::read_dir(ledgers.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(ledger.contains("terraform root module"), "{ledger}");
    // The operations ran here, and the CA rotation kept the operator's root.
    assert!(stdout.contains("A new intermediate from the same root"), "{stdout}");
    for (c, before) in contexts.iter().zip(&intermediates_before) {
        assert_eq!(fingerprint(&cacerts_pem(&up, c, "root-cert.pem")), fingerprint(&root_pem), "the root kept");
        assert_ne!(&cacerts_pem(&up, c, "ca-cert.pem"), before, "{c}: a new intermediate");
    }
    let intermediates_after = contexts.clone().map(|c| cacerts_pem(&up, &c, "ca-cert.pem"));

    // Without the root, the rotation is left out with its reason; the other operations still run.
    let mut without = meshspec(
        &up,
        &standins,
        &["run", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir", dir],
    );
    without.args(["--tags", "@operations and not @twin", "--report-dir"]).arg(reports.path().join("without"));
    without.arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut without, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("not run: Day-2 operations under continuous traffic / A new intermediate from the same root")
            && stdout.contains("@root-key: it issues an intermediate from the mesh's root CA")
            && stdout.contains("--mesh-root-ca DIR"),
        "{stdout}"
    );
    assert!(stdout.contains("4 passed, 0 failed"), "the baseline and the other 3 operations ran: {stdout}");

    // A root the clusters do not trust is refused before anything is patched.
    let stranger = tempfile::tempdir().unwrap();
    openssl_root(stranger.path(), "Another Root CA");
    let mut wrong = meshspec(
        &up,
        &standins,
        &["run", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir", dir],
    );
    wrong.args(["--tags", "@root-key", "--mesh-root-ca"]).arg(stranger.path());
    wrong.arg("--report-dir").arg(reports.path().join("wrong")).arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut wrong, LIMIT);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("refusing to issue an intermediate from the root meshspec holds"), "{stdout}");
    let unchanged = contexts.clone().map(|c| cacerts_pem(&up, &c, "ca-cert.pem"));
    assert_eq!(unchanged, intermediates_after, "nothing was patched");
}

/// Stand-in rules for the seed's two destroys, with Terraform's effects on the
/// twin: destroying the releases deletes the gateway Services (the controller
/// then deletes the NLBs); the rest deletes the clusters and their VPCs.
pub(super) fn seed_destroy_rules(up: &TwinUp) -> [serde_json::Value; 2] {
    let (kubeconfig, ctx1, ctx2) = (&up.env["KUBECONFIG"], &up.env["CTX_CLUSTER1"], &up.env["CTX_CLUSTER2"]);
    let delete_services = format!(
        "for c in {ctx1} {ctx2}; do kubectl --kubeconfig {kubeconfig} --context $c delete svc --all -n istio-ingress --wait=false; done"
    );
    let delete_rest = r#"set -e
for c in eks-1 eks-2; do aws eks delete-cluster --name $c >/dev/null; done
for i in $(seq 600); do [ "$(aws eks list-clusters --query 'length(clusters)')" = 0 ] && break; sleep 0.1; done
for vpc in $(aws ec2 describe-vpcs --query 'Vpcs[].VpcId' --output text); do
  for s in $(aws ec2 describe-subnets --filters Name=vpc-id,Values=$vpc --query 'Subnets[].SubnetId' --output text); do
    aws ec2 delete-subnet --subnet-id $s
  done
  aws ec2 delete-vpc --vpc-id $vpc
done"#;
    [
        serde_json::json!({"tool": "terraform", "when": ["destroy", "helm_release"], "emit": "terraform-json", "run": delete_services}),
        serde_json::json!({"tool": "terraform", "when": ["destroy"], "emit": "terraform-json", "run": delete_rest}),
    ]
}

#[test]
fn a_failed_stage_stops_provisioning_and_reap_destroys_in_the_seeds_order() {
    let up = TwinUp::start();
    let tf_dir = tempfile::tempdir().unwrap();
    let error =
        serde_json::json!({"@level": "error", "@message": "Error: installing istiod: context deadline exceeded",
        "type": "diagnostic", "diagnostic": {"severity": "error", "summary": "installing istiod",
        "detail": "context deadline exceeded\nmore"}})
        .to_string();
    let [destroy_releases, destroy_rest] = seed_destroy_rules(&up);
    let standins = Standins::install(
        &["terraform"],
        serde_json::json!([
            {"tool": "terraform", "when": ["apply", "istiod"], "stdout": [error], "exit": 1},
            {"tool": "terraform", "when": ["apply"], "emit": "terraform-json"},
            destroy_releases,
            destroy_rest,
        ]),
    );
    let ledgers = tempfile::tempdir().unwrap();
    let dir = tf_dir.path().to_str().unwrap();
    let mut provision = meshspec(
        &up,
        &standins,
        &["provision", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir", dir],
    );
    provision.arg("--ledger-dir").arg(ledgers.path()).arg("--kubeconfig-out").arg(tf_dir.path().join("kc"));
    let out = run_bounded(&mut provision, LIMIT);
    let (stdout, _) = expect_error(
        &out,
        &[
            "stage 2 (control-plane); the stages after it did not run",
            "Terraform reported: installing istiod: context deadline exceeded",
            "exited with code 1",
        ],
    );
    let calls = terraform_calls(&standins);
    assert_eq!(
        calls.len(),
        3,
        "init, stage 1, stage 2 and nothing after: {:#?}",
        calls.iter().map(Call::line).collect::<Vec<_>>()
    );
    let run_id = run_id(&stdout);

    // What the interrupted provisioning made goes the seed's way: releases, the wait, the rest, the sweep.
    let mut reap = meshspec(&up, &standins, &["reap", "--target", "eks", "--run-id", &run_id, "--ledger-dir"]);
    reap.arg(ledgers.path());
    let out = run_bounded(&mut reap, LIMIT);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let destroys: Vec<Call> =
        terraform_calls(&standins).into_iter().skip(3).filter(|c| c.args[1] == "destroy").collect();
    let plan = seed_plan();
    assert_eq!(destroys.len(), plan.destroy.len());
    for (call, stage) in destroys.iter().zip(&plan.destroy) {
        assert_eq!(call.targets(), stage.terraform_targets, "destroy stage {}", stage.name);
        assert_unattended(call, &std::fs::canonicalize(tf_dir.path()).unwrap());
    }
    assert_eq!(up.aws(&["elbv2", "describe-load-balancers"])["LoadBalancers"], serde_json::json!([]));
    assert_eq!(up.aws(&["eks", "list-clusters"])["clusters"], serde_json::json!([]));
    assert_eq!(up.aws(&["ec2", "describe-vpcs"])["Vpcs"], serde_json::json!([]));
}

#[test]
fn a_destroy_whose_load_balancers_stay_stops_before_the_rest() {
    let up = TwinUp::start();
    let tf_dir = tempfile::tempdir().unwrap();
    // Destroying the releases deletes nothing here: the NLBs stay.
    let standins = Standins::install(
        &["terraform"],
        serde_json::json!([{"tool": "terraform", "when": ["destroy"], "emit": "terraform-json"}]),
    );
    let dir = tf_dir.path().to_str().unwrap();
    let mut destroy = meshspec(
        &up,
        &standins,
        &[
            "destroy",
            "--target",
            "eks",
            "--allow-provision",
            "eks-1,eks-2",
            "--terraform-dir",
            dir,
            "--timeout-scale",
            "0.005",
        ],
    );
    let out = run_bounded(&mut destroy, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("waiting for no LoadBalancer Service"), "{stderr}");
    assert!(stderr.contains("istio-eastwestgateway"), "the wait names what it last saw: {stderr}");
    assert!(stderr.contains("diagnosis: the load balancer controller did not delete every NLB"), "{stderr}");
    let destroys: Vec<Call> = terraform_calls(&standins).into_iter().filter(|c| c.args[1] == "destroy").collect();
    assert_eq!(
        destroys.len(),
        1,
        "the second stage never ran: {:#?}",
        destroys.iter().map(Call::line).collect::<Vec<_>>()
    );
    assert_eq!(up.aws(&["eks", "list-clusters"])["clusters"].as_array().unwrap().len(), 2);
}

#[test]
fn provisioning_refuses_without_both_clusters_allowed_or_a_terraform_directory_or_with_the_api_provisioner() {
    let up = TwinUp::start();
    let standins = Standins::install(&["terraform"], serde_json::json!([]));
    for (args, said) in [
        (vec!["provision", "--target", "eks", "--terraform-dir", "/tmp"], "needs --allow-provision"),
        (
            vec!["provision", "--target", "eks", "--allow-provision", "eks-1", "--terraform-dir", "/tmp"],
            "must name every cluster",
        ),
        (vec!["provision", "--target", "eks", "--allow-provision", "eks-1,eks-2"], "pass --terraform-dir"),
        (vec!["destroy", "--target", "eks", "--terraform-dir", "/tmp"], "pass --allow-provision"),
        (
            vec!["provision", "--target", "eks", "--allow-provision", "eks-1,eks-2", "--terraform-dir", "/no/such/dir"],
            "does not exist",
        ),
        (
            vec!["run", "--target", "eks", "--provisioner", "api", "--allow-provision", "eks-1,eks-2"],
            "--provisioner api cannot build a working deployment on EKS",
        ),
    ] {
        let out = run_bounded(&mut meshspec(&up, &standins, &args), LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {said:?} not in {stderr}");
    }
    assert!(terraform_calls(&standins).is_empty(), "terraform never ran");
}

#[test]
fn real_terraform_applies_a_users_plan_stage_by_stage() {
    let up = TwinUp::start();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/terraform-fixture");
    let work = tempfile::tempdir().unwrap();
    for f in ["main.tf", "plan.yaml"] {
        std::fs::copy(fixture.join(f), work.path().join(f)).unwrap();
    }
    std::fs::create_dir_all(work.path().join("modules/addons")).unwrap();
    std::fs::copy(fixture.join("modules/addons/main.tf"), work.path().join("modules/addons/main.tf")).unwrap();
    let plan = work.path().join("plan.yaml");
    let standins = Standins::install(&[], serde_json::json!([]));
    let mut provision = meshspec(
        &up,
        &standins,
        &[
            "provision",
            "--target",
            "eks",
            "--allow-provision",
            "eks-1,eks-2",
            "--terraform-dir",
            work.path().to_str().unwrap(),
        ],
    );
    provision
        .arg("--plan")
        .arg(&plan)
        .arg("--kubeconfig-out")
        .arg(work.path().join("kc"))
        .env("TF_CLI_CONFIG_FILE", "/dev/null");
    let out = run_bounded(&mut provision, LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    // Stage 1 applied only its targets: its counter ends at its own resources.
    assert!(stderr.contains("[terraform apply 1/3 infrastructure 2/2]"), "{stderr}");
    assert!(stderr.contains("[terraform apply 2/3 control-plane 1/1]"), "{stderr}");
    assert!(stderr.contains("[terraform apply 3/3 workloads 1/1] Apply complete! Resources: 1 added"), "{stderr}");
    let state = run_bounded(
        Command::new("terraform").arg(format!("-chdir={}", work.path().display())).args(["state", "list"]),
        Duration::from_secs(60),
    );
    let listed = text(&state.stdout);
    for addr in ["terraform_data.vpc_1", "module.addons.terraform_data.this[\"istiod\"]", "terraform_data.samples"] {
        assert!(listed.contains(addr), "{addr} not in the state:\n{listed}");
    }
}
