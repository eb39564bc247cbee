//! The kind provisioner, checked against recording stand-ins for kind, helm
//! and docker (arguments, order, the files they get, a failure midway, what
//! teardown deletes). The clusters kind "creates" are the clusters of
//! `meshspec twin up`, so that what meshspec applies itself (cacerts, the
//! MetalLB pools, reader tokens, samples, remote secrets) really lands on an
//! API server and can be read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::harness::{expect_error, run_bounded, run_id, text, TwinUp};
use super::standins::{Call, Standins};

const LIMIT: Duration = Duration::from_secs(300);
const KIND_NAMES: [&str; 2] = ["cluster1", "cluster2"];

/// A twin up whose clusters pose as two kind clusters.
struct KindWorld {
    up: TwinUp,
    /// The kubeconfig kind writes (meshspec's --kubeconfig).
    kubeconfig: PathBuf,
    /// What `kind create` puts there: contexts kind-cluster1/2 for the twin's clusters.
    prepared: PathBuf,
    /// The clusters `kind get clusters` lists, one a line.
    listed: PathBuf,
    /// The twin's API server port per kind cluster.
    ports: Vec<u16>,
}

impl KindWorld {
    fn new() -> KindWorld {
        let up = TwinUp::start();
        let twin: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&up.env["KUBECONFIG"]).unwrap()).unwrap();
        let mut doc = twin.clone();
        let mut ports = Vec::new();
        for (i, ctx) in doc["contexts"].as_array_mut().unwrap().iter_mut().enumerate() {
            ctx["name"] = format!("kind-{}", KIND_NAMES[i]).into();
        }
        doc["current-context"] = "kind-cluster1".into();
        for c in twin["clusters"].as_array().unwrap() {
            let url: url::Url = c["cluster"]["server"].as_str().unwrap().parse().unwrap();
            ports.push(url.port().unwrap());
        }
        let dir = up.dir.path().to_path_buf();
        let prepared = dir.join("prepared.kubeconfig");
        std::fs::write(&prepared, serde_yaml::to_string(&doc).unwrap()).unwrap();
        // The internal kubeconfigs kind would print: the node's name, the API port, the CA.
        for (i, c) in twin["clusters"].as_array().unwrap().iter().enumerate() {
            let name = KIND_NAMES[i];
            let internal = serde_json::json!({"apiVersion": "v1", "kind": "Config", "clusters": [{"name": format!("kind-{name}"),
                "cluster": {"server": format!("https://{name}-control-plane:{}", ports[i]),
                            "certificate-authority-data": c["cluster"]["certificate-authority-data"]}}]});
            std::fs::write(dir.join(format!("internal-{name}.yaml")), serde_yaml::to_string(&internal).unwrap())
                .unwrap();
        }
        std::fs::write(
            dir.join("metallb.yaml"),
            r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ipaddresspools.metallb.io}
spec:
  group: metallb.io
  scope: Namespaced
  names: {plural: ipaddresspools, singular: ipaddresspool, kind: IPAddressPool, listKind: IPAddressPoolList}
  versions: [{name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: l2advertisements.metallb.io}
spec:
  group: metallb.io
  scope: Namespaced
  names: {plural: l2advertisements, singular: l2advertisement, kind: L2Advertisement, listKind: L2AdvertisementList}
  versions: [{name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
---
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: metallb-controller, namespace: metallb-system}
spec:
  replicas: 1
  selector: {matchLabels: {app: metallb}}
  template:
    metadata: {labels: {app: metallb}}
    spec: {containers: [{name: controller, image: quay.io/metallb/controller:v0.14.8}]}
"#,
        )
        .unwrap();
        let kubeconfig = dir.join("kind.kubeconfig");
        let listed = dir.join("kind-clusters.txt");
        KindWorld { up, kubeconfig, prepared, listed, ports }
    }

    fn kubectl(&self) -> String {
        format!("kubectl --cache-dir {}/kc --kubeconfig {}", self.up.dir.path().display(), self.prepared.display())
    }

    /// What kind, helm and docker do here. `fail` is one more rule that wins over the others.
    fn standins(&self, fail: Option<serde_json::Value>) -> Standins {
        let dir = self.up.dir.path();
        let listed = self.listed.display();
        let mut rules: Vec<serde_json::Value> = fail.into_iter().collect();
        rules.push(serde_json::json!({"tool": "kind", "when": ["get clusters"], "stdout_file": self.listed}));
        for name in KIND_NAMES {
            rules.push(serde_json::json!({"tool": "kind", "when": ["create cluster", name],
                "stdout": [format!("Creating cluster \"{name}\" ...")],
                "run": format!("echo {name} >> {listed}; cp {} {}; {} --context kind-{name} label nodes --all meshspec.io/managed-by=meshspec --overwrite >/dev/null",
                    self.prepared.display(), self.kubeconfig.display(), self.kubectl())}));
            rules.push(serde_json::json!({"tool": "kind", "when": ["delete cluster", name],
                "stdout": [format!("Deleting cluster \"{name}\" ...")], "run": format!("sed -i '/^{name}$/d' {listed}")}));
            rules.push(serde_json::json!({"tool": "kind", "when": ["get kubeconfig", name],
                "stdout_file": dir.join(format!("internal-{name}.yaml"))}));
            rules.push(serde_json::json!({"tool": "docker", "when": ["inspect", &format!("{name}-control-plane")], "stdout": ["127.0.0.1"]}));
            rules.push(serde_json::json!({"tool": "helm", "when": ["metallb", &format!("kind-{name}")],
                "run": format!("{} --context kind-{name} apply -f {} >/dev/null", self.kubectl(), dir.join("metallb.yaml").display())}));
        }
        rules.push(serde_json::json!({"tool": "docker", "when": ["network inspect kind"],
            "stdout": [r#"[{"Subnet":"fc00:f853:ccd:e793::/64"},{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]"#]}));
        rules.push(serde_json::json!({"tool": "helm", "when": ["upgrade --install"], "stdout": ["STATUS: deployed"]}));
        Standins::install(&["kind", "helm", "docker"], serde_json::Value::Array(rules))
    }

    fn meshspec(&self, standins: &Standins, args: &[&str]) -> Command {
        let mut cmd = self.up.meshspec();
        for var in [
            "KUBECONFIG",
            "CTX_CLUSTER1",
            "CTX_CLUSTER2",
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            cmd.env_remove(var);
        }
        standins.apply(&mut cmd);
        cmd.args(args).arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    fn listed(&self) -> Vec<String> {
        std::fs::read_to_string(&self.listed).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

fn position(calls: &[Call], wanted: &[&str]) -> usize {
    calls
        .iter()
        .position(|c| wanted.iter().all(|w| c.line().contains(w)))
        .unwrap_or_else(|| panic!("no call with {wanted:?} in {:#?}", lines(calls)))
}

fn values_of(call: &Call) -> String {
    let i = call.args.iter().position(|a| a == "--values").expect("--values");
    call.files.get(&call.args[i + 1]).cloned().expect("the values file existed when helm ran")
}

#[test]
fn kind_provisioning_runs_kind_helm_and_docker_in_the_seeds_order_and_teardown_deletes_both() {
    let w = KindWorld::new();
    let standins = w.standins(None);
    let ledgers = tempfile::tempdir().unwrap();
    let mut provision = w.meshspec(&standins, &["provision", "--target", "kind", "--allow-provision", "eks-1,eks-2"]);
    provision.arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut provision, LIMIT);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("[kind create cluster1] Creating cluster \"cluster1\" ..."),
        "tool output is streamed: {stderr}"
    );
    let calls = standins.calls();

    // Stage 1 before 2 before 3, as in the seed: clusters, MetalLB; istiod; the gateways, then what needs them.
    let order = [
        position(&calls, &["kind create cluster --name cluster1"]),
        position(&calls, &["kind create cluster --name cluster2"]),
        position(&calls, &["docker network inspect kind"]),
        position(&calls, &["helm upgrade --install metallb", "kind-cluster2"]),
        position(&calls, &["helm upgrade --install istio-base", "kind-cluster1"]),
        position(&calls, &["helm upgrade --install istiod istiod", "kind-cluster2"]),
        position(&calls, &["helm upgrade --install istio-eastwestgateway gateway", "kind-cluster2"]),
        position(&calls, &["kind get kubeconfig --name cluster2 --internal"]),
        position(&calls, &["docker inspect", "cluster2-control-plane"]),
    ];
    assert!(order.windows(2).all(|p| p[0] < p[1]), "out of order {order:?}: {:#?}", lines(&calls));

    // Each cluster's kind config: its name, its own subnets, meshspec's node label.
    for (name, pods, services) in
        [("cluster1", "10.1.0.0/16", "10.101.0.0/16"), ("cluster2", "10.2.0.0/16", "10.102.0.0/16")]
    {
        let create = &calls[position(&calls, &["kind create cluster --name", name])];
        assert!(create.args.windows(2).any(|a| a[0] == "--kubeconfig" && Path::new(&a[1]) == w.kubeconfig));
        let i = create.args.iter().position(|a| a == "--config").unwrap();
        let config = &create.files[&create.args[i + 1]];
        for said in [
            format!("name: {name}"),
            format!("podSubnet: {pods}"),
            format!("serviceSubnet: {services}"),
            "meshspec.io/managed-by: meshspec".into(),
        ] {
            assert!(config.contains(&said), "{said} not in {config}");
        }
    }
    // Helm: the seed's charts and values, each in its cluster's context, waiting for readiness.
    let istiod = &calls[position(&calls, &["helm upgrade --install istiod istiod", "kind-cluster2"])];
    for said in ["meshID: mesh1", "clusterName: cluster2", "network: network2", "accessLogFile: /dev/stdout"] {
        assert!(values_of(istiod).contains(said), "{said} not in {}", values_of(istiod));
    }
    assert!(istiod.args.iter().any(|a| a == "--wait") && istiod.line().contains("--version 1.20.2"));
    let eastwest =
        values_of(&calls[position(&calls, &["helm upgrade --install istio-eastwestgateway", "kind-cluster1"])]);
    for said in [
        "topology.istio.io/network: network1",
        "ISTIO_META_REQUESTED_NETWORK_VIEW: network1",
        "port: 15443",
        "port: 15012",
        "port: 15017",
    ] {
        assert!(eastwest.contains(said), "{said} not in {eastwest}");
    }
    assert!(
        calls.iter().all(|c| !c.line().contains("k8s-aws-v1.") && !c.line().contains("BEGIN")),
        "no credential in an argument"
    );

    // What meshspec applied itself is on the API servers: distinct MetalLB pools, remote secrets
    // whose server is the peer's node address on the kind network with its API port.
    let kubectl = |ctx: &str, args: &str| {
        let out = run_bounded(
            Command::new("bash").args(["-c", &format!("{} --context {ctx} {args}", w.kubectl())]),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{args}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let pool1 = kubectl(
        "kind-cluster1",
        "get ipaddresspools.metallb.io meshspec -n metallb-system -o jsonpath={.spec.addresses[0]}",
    );
    let pool2 = kubectl(
        "kind-cluster2",
        "get ipaddresspools.metallb.io meshspec -n metallb-system -o jsonpath={.spec.addresses[0]}",
    );
    assert_eq!((pool1.as_str(), pool2.as_str()), ("172.18.255.200-172.18.255.219", "172.18.255.220-172.18.255.239"));
    let remote = kubectl(
        "kind-cluster1",
        "get secret istio-remote-secret-cluster2 -n istio-system -o jsonpath={.data.cluster2}",
    );
    use base64::Engine;
    let remote = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(remote.trim()).unwrap()).unwrap();
    assert!(remote.contains(&format!("server: https://127.0.0.1:{}", w.ports[1])), "{remote}");

    // Teardown: both clusters, which their nodes' label proves meshspec made.
    let mut destroy = w.meshspec(&standins, &["destroy", "--target", "kind", "--allow-provision", "eks-1,eks-2"]);
    let out = run_bounded(&mut destroy, LIMIT);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let deletes: Vec<String> = lines(&standins.calls()).into_iter().filter(|l| l.contains("delete cluster")).collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(w.listed().is_empty(), "{:?}", w.listed());
}

#[test]
fn a_helm_failure_midway_stops_provisioning_and_reap_deletes_the_clusters_it_made() {
    let w = KindWorld::new();
    let fail = serde_json::json!({"tool": "helm", "when": ["istiod istiod", "kind-cluster2"],
        "stderr": ["Error: INSTALLATION FAILED: context deadline exceeded"], "exit": 1});
    let standins = w.standins(Some(fail));
    let ledgers = tempfile::tempdir().unwrap();
    let mut provision = w.meshspec(&standins, &["provision", "--target", "kind", "--allow-provision", "eks-1,eks-2"]);
    provision.arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut provision, LIMIT);
    let (stdout, stderr) = expect_error(
        &out,
        &[
            "stage 2 (control-plane), step istiod; the stages after it did not run",
            "helm istiod cluster2 failed",
            "exited with code 1",
        ],
    );
    assert!(stderr.contains("INSTALLATION FAILED: context deadline exceeded"), "helm's own words: {stderr}");
    assert!(!lines(&standins.calls()).iter().any(|l| l.contains("gateway")), "stage 3 never ran");
    assert_eq!(w.listed(), KIND_NAMES, "the clusters stay for inspection");

    let run_id = run_id(&stdout);
    let mut reap = w.meshspec(&standins, &["reap", "--target", "kind", "--run-id", &run_id]);
    reap.arg("--ledger-dir").arg(ledgers.path());
    let out = run_bounded(&mut reap, LIMIT);
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(w.listed().is_empty(), "{:?}", w.listed());
}

#[test]
fn kind_never_takes_over_or_deletes_clusters_it_did_not_make() {
    let w = KindWorld::new();
    let standins = w.standins(None);
    // A cluster of that name exists already: provisioning refuses before creating anything.
    std::fs::write(&w.listed, "cluster1\n").unwrap();
    let out = run_bounded(
        &mut w.meshspec(&standins, &["provision", "--target", "kind", "--allow-provision", "eks-1,eks-2"]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a kind cluster \"cluster1\" exists already and this run did not create it"), "{stderr}");
    assert!(!lines(&standins.calls()).iter().any(|l| l.contains("create cluster")));

    // Both exist, unlabelled and without a ledger: destroy deletes neither.
    std::fs::write(&w.listed, "cluster1\ncluster2\n").unwrap();
    std::fs::copy(&w.prepared, &w.kubeconfig).unwrap();
    let out = run_bounded(
        &mut w.meshspec(&standins, &["destroy", "--target", "kind", "--allow-provision", "eks-1,eks-2"]),
        LIMIT,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot prove it made it"), "{stderr}");
    assert!(!lines(&standins.calls()).iter().any(|l| l.contains("delete cluster")));
    assert_eq!(w.listed(), KIND_NAMES);
}

#[test]
fn a_kind_run_provisions_verifies_and_tears_down_with_teardown() {
    let w = KindWorld::new();
    let standins = w.standins(None);
    let reports = tempfile::tempdir().unwrap();
    let mut run = w.meshspec(
        &standins,
        &["run", "--target", "kind", "--allow-provision", "eks-1,eks-2", "--teardown", "--tags", "@sync"],
    );
    run.arg("--report-dir").arg(reports.path());
    let out = run_bounded(&mut run, LIMIT);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.lines().any(|l| l == "4 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("teardown: nothing left"), "{stdout}");
    assert!(w.listed().is_empty(), "{:?}", w.listed());
    let calls = lines(&standins.calls());
    let created = calls.iter().position(|l| l.contains("create cluster --name cluster2")).unwrap();
    let deleted = calls.iter().position(|l| l.contains("delete cluster --name cluster1")).unwrap();
    assert!(created < deleted, "{calls:#?}");
}
