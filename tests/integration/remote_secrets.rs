//! Remote secrets made by others: every shape `istioctl create-remote-secret`
//! (1.20 and 1.28+) and the seed's Terraform chart write, and shapes a user may
//! write by hand (other names, an unused context, insecure-skip-tls-verify), are
//! put into cluster 1 of `twin up` with kubectl; the sync feature then passes
//! against it (`run --target eks`). And what istiod refuses or cannot use (an
//! exec credential, a server of the wrong cluster) fails the check by name.

use std::process::Command;
use std::time::Duration;

use base64::Engine;

use super::harness::{run_bounded, text, TwinUp};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the kubeconfig inside is made of.
struct Peer {
    server: String,
    ca_data: String,
    token: String,
}

fn peer(up: &TwinUp, eks: &str, ctx: &str) -> Peer {
    let cluster = &up.aws(&["eks", "describe-cluster", "--name", eks])["cluster"];
    let token = up.kubectl(&[
        "--context",
        ctx,
        "get",
        "secret",
        "istio-reader-service-account-istio-remote-secret-token",
        "-n",
        "istio-system",
        "-o",
        "jsonpath={.data.token}",
    ]);
    Peer {
        server: cluster["endpoint"].as_str().unwrap().to_string(),
        ca_data: cluster["certificateAuthority"]["data"].as_str().unwrap().to_string(),
        token: String::from_utf8(B64.decode(token.trim()).unwrap()).unwrap(),
    }
}

/// istioctl create-remote-secret --name cluster2 (istio 1.20.2 golden output; 1.28+ drops `preferences`).
/// The seed's chart (multicluster-deploy templates/remote-secret.yaml) renders the 1.20 shape.
fn istioctl(p: &Peer, preferences: bool) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: cluster2\ncontexts:\n- context:\n    cluster: cluster2\n    user: cluster2\n  name: cluster2\ncurrent-context: cluster2\nkind: Config\n{}users:\n- name: cluster2\n  user:\n    token: {}\n",
        p.ca_data,
        p.server,
        if preferences { "preferences: {}\n" } else { "" },
        p.token
    )
}

/// By hand: an ARN context, other cluster and user names, an unused context, a trailing slash, no CA.
fn by_hand(p: &Peer) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: arn:aws:eks:us-west-2:123456789012:cluster/eks-2\nclusters:\n- name: eks-2\n  cluster:\n    server: {}/\n    insecure-skip-tls-verify: true\n- name: elsewhere\n  cluster:\n    server: https://192.0.2.1\ncontexts:\n- name: unused\n  context: {{cluster: elsewhere, user: nobody}}\n- name: arn:aws:eks:us-west-2:123456789012:cluster/eks-2\n  context: {{cluster: eks-2, user: reader}}\nusers:\n- name: nobody\n  user: {{token: nothing}}\n- name: reader\n  user: {{token: {}}}\n",
        p.server, p.token
    )
}

/// A Secret holding `kubeconfig` for cluster2, as istiod looks for it.
fn secret(name: &str, annotated: bool, kubeconfig: &str) -> String {
    let annotations = if annotated { r#","annotations": {"networking.istio.io/cluster": "cluster2"}"# } else { "" };
    format!(
        r#"{{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {{"name": "{name}", "namespace": "istio-system", "labels": {{"istio/multiCluster": "true"}}{annotations}}},
            "stringData": {{"cluster2": {}}}}}"#,
        serde_json::to_string(kubeconfig).unwrap()
    )
}

/// Replace cluster 1's remote secrets with `manifest`, then run the sync feature against twin up.
fn sync_run(up: &TwinUp, manifest: &str) -> (bool, String) {
    let ctx1 = &up.env["CTX_CLUSTER1"];
    up.kubectl(&["--context", ctx1, "delete", "secret", "-n", "istio-system", "-l", "istio/multiCluster=true"]);
    let file = up.dir.path().join("remote-secret.json");
    std::fs::write(&file, manifest).unwrap();
    up.kubectl(&["--context", ctx1, "apply", "-f", file.to_str().unwrap()]);
    let reports = tempfile::tempdir().unwrap();
    let mut run: Command = up.meshspec();
    run.args(["run", "--target", "eks", "--tags", "@sync", "--timeout-scale", "0.05", "--report-dir"])
        .arg(reports.path())
        .arg("--trend")
        .arg(reports.path().join("trend.jsonl"));
    let out = run_bounded(&mut run, Duration::from_secs(300));
    (out.status.success(), format!("{}\n{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn every_remote_secret_shape_istio_accepts_is_read_and_what_it_refuses_is_named() {
    let up = TwinUp::start();
    let cluster2 = peer(&up, "eks-2", &up.env["CTX_CLUSTER2"]);
    for (shape, manifest) in [
        ("istioctl 1.20 / the seed's chart", secret("istio-remote-secret-cluster2", true, &istioctl(&cluster2, true))),
        ("istioctl 1.28+", secret("istio-remote-secret-cluster2", true, &istioctl(&cluster2, false))),
        ("by hand, other names, no annotation", secret("cluster2-reader", false, &by_hand(&cluster2))),
    ] {
        let (ok, out) = sync_run(&up, &manifest);
        assert!(ok, "{shape}:\n{out}");
        assert!(out.contains("4 passed, 0 failed"), "{shape}:\n{out}");
    }

    // An exec credential: istiod refuses it by default (PILOT_INSECURE_MULTICLUSTER_KUBECONFIG_OPTIONS).
    let exec = istioctl(&cluster2, false).replace(
        &format!("    token: {}\n", cluster2.token),
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --cluster-name, eks-2]\n",
    );
    let (ok, out) = sync_run(&up, &secret("istio-remote-secret-cluster2", true, &exec));
    assert!(!ok, "{out}");
    assert!(out.contains("diagnosis: istiod refuses the remote secret for cluster2: exec is not allowed"), "{out}");

    // Cluster 1's own server and reader token under cluster 2's name: it answers, but it is the wrong cluster.
    let cluster1 = peer(&up, "eks-1", &up.env["CTX_CLUSTER1"]);
    let (ok, out) = sync_run(&up, &secret("istio-remote-secret-cluster2", true, &istioctl(&cluster1, false)));
    assert!(!ok, "{out}");
    assert!(
        out.contains("diagnosis: the remote secret for cluster2 in eks-1 points at another cluster's API server"),
        "{out}"
    );
    assert!(!out.contains(&cluster1.token) && !out.contains(&cluster2.token), "a token reached the output");
}
