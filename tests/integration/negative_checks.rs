//! Every check fails on a real break: one row per (check, break, what the
//! failure must say). Each break is made on a healthy `meshspec twin up`
//! deployment through the real APIs, with kubectl and the aws CLI, as an
//! operator would make it; then `meshspec run --target eks` runs the scenarios
//! holding that check, which must fail and say what broke.

use std::time::Duration;

use super::harness::{run_bounded, text, whole_runs, TwinUp};

/// One break and how it must be caught.
struct Row {
    /// The check that must catch it (for the reader).
    check: &'static str,
    /// The scenarios to run.
    tags: &'static str,
    /// The break, made against twin up.
    make: fn(&TwinUp),
    /// What the run's output must say (a diagnosis wherever the check has one).
    says: &'static [&'static str],
}

fn ctx1(up: &TwinUp) -> String {
    up.env["CTX_CLUSTER1"].clone()
}

fn kubectl1(up: &TwinUp, args: &[&str]) {
    let ctx = ctx1(up);
    let mut all = vec!["--context", ctx.as_str()];
    all.extend_from_slice(args);
    up.kubectl(&all);
}

fn kubectl1_stdin(up: &TwinUp, args: &[&str], manifest: &str) {
    let file = up.dir.path().join("break.yaml");
    std::fs::write(&file, manifest).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let path = file.to_str().unwrap().to_string();
    all.extend(["-f", &path]);
    kubectl1(up, &all);
}

/// An aws CLI call that prints nothing when it succeeds.
fn aws_quiet(up: &TwinUp, args: &[&str]) {
    let out = run_bounded(up.command("aws").args(args), Duration::from_secs(60));
    assert!(out.status.success(), "aws {args:?}: {}", text(&out.stderr));
}

/// A JSON patch of cluster 2's istio-reader ClusterRole, through kubectl.
fn patch_reader_role_of_cluster2(up: &TwinUp, patch: &str) {
    let ctx2 = up.env["CTX_CLUSTER2"].clone();
    up.kubectl(&[
        "--context",
        &ctx2,
        "patch",
        "clusterrole",
        "istio-reader-clusterrole-istio-system",
        "--type=json",
        patch,
    ]);
}

fn vpc_id(up: &TwinUp, name: &str) -> String {
    let vpcs = up.aws(&["ec2", "describe-vpcs", "--filters", &format!("Name=tag:Name,Values={name}")]);
    vpcs["Vpcs"][0]["VpcId"].as_str().unwrap().to_string()
}

/// cacerts of cluster 1 replaced by one from a root of its own (no restart).
fn foreign_cacerts(up: &TwinUp) {
    let root = meshspec::mesh::cacerts::RootCa::generate().unwrap();
    let ca = root.intermediate("cluster1").unwrap();
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "cacerts", "namespace": "istio-system"},
        "stringData": {"ca-cert.pem": ca.ca_cert_pem, "ca-key.pem": ca.ca_key_pem,
                       "root-cert.pem": ca.root_cert_pem, "cert-chain.pem": ca.cert_chain_pem}});
    kubectl1(up, &["delete", "secret", "cacerts", "-n", "istio-system"]);
    kubectl1_stdin(up, &["create"], &secret.to_string());
}

const ROWS: &[Row] = &[
    Row {
        check: "istio-system carries the cluster's network",
        tags: "@provisioning and not @aws",
        make: |up| kubectl1(up, &["label", "namespace", "istio-system", "topology.istio.io/network-"]),
        says: &["istio-system", "topology.istio.io/network"],
    },
    Row {
        check: "the sample namespace has injection on",
        tags: "@provisioning and not @aws",
        make: |up| kubectl1(up, &["label", "namespace", "sample", "istio-injection-"]),
        says: &["istio-injection"],
    },
    Row {
        check: "cacerts present with its four keys",
        tags: "@provisioning and not @aws",
        make: |up| kubectl1(up, &["delete", "secret", "cacerts", "-n", "istio-system"]),
        says: &["diagnosis: cacerts is missing from istio-system"],
    },
    Row {
        check: "one root in both clusters' cacerts",
        tags: "@provisioning and not @aws",
        make: foreign_cacerts,
        says: &["diagnosis: the clusters' cacerts come from different roots"],
    },
    Row {
        check: "istiod serves cacerts' root",
        tags: "@ordering and not @twin",
        make: foreign_cacerts,
        says: &["diagnosis: istiod started before cacerts existed", "istiod serves the root"],
    },
    Row {
        check: "the load balancer controller is available",
        tags: "@provisioning",
        make: |up| {
            kubectl1(up, &["scale", "deployment", "aws-load-balancer-controller", "-n", "kube-system", "--replicas=0"])
        },
        says: &["aws-load-balancer-controller", "is not available"],
    },
    Row {
        check: "istiod is configured with its Istio cluster name",
        tags: "@provisioning and not @aws",
        make: |up| kubectl1(up, &["set", "env", "deployment/istiod", "-n", "istio-system", "CLUSTER_ID=wrong"]),
        says: &["eks-1: istiod's cluster ID (istiod's CLUSTER_ID) is \"wrong\", expected \"cluster1\""],
    },
    Row {
        check: "the east-west gateway is labelled with its network",
        tags: "@sync",
        make: |up| {
            kubectl1(
                up,
                &["label", "service", "istio-eastwestgateway", "-n", "istio-ingress", "topology.istio.io/network-"],
            )
        },
        says: &["diagnosis: the east-west gateway Service of eks-1 lacks topology.istio.io/network"],
    },
    Row {
        check: "the cross-network Gateway exists",
        tags: "@provisioning and not @aws",
        make: |up| {
            kubectl1(up, &["delete", "gateways.networking.istio.io", "cross-network-gateway", "-n", "istio-ingress"])
        },
        says: &["diagnosis: the Gateway istio-ingress/cross-network-gateway is missing"],
    },
    Row {
        check: "the cross-network Gateway passes TLS through (AUTO_PASSTHROUGH) on 15443",
        tags: "@provisioning and not @aws",
        make: |up| {
            let patch = r#"{"spec":{"servers":[{"port":{"number":15443,"name":"tls","protocol":"TLS"},"tls":{"mode":"PASSTHROUGH"},"hosts":["*.local"]}]}}"#;
            kubectl1(
                up,
                &[
                    "patch",
                    "gateways.networking.istio.io",
                    "cross-network-gateway",
                    "-n",
                    "istio-ingress",
                    "--type",
                    "merge",
                    "-p",
                    patch,
                ],
            )
        },
        says: &["eks-1: Gateway cross-network-gateway has no TLS AUTO_PASSTHROUGH server on 15443 for *.local"],
    },
    Row {
        check: "the sample apps run",
        tags: "@provisioning and not @aws",
        make: |up| kubectl1(up, &["scale", "deployment", "sleep", "-n", "sample", "--replicas=0"]),
        says: &["deployment sample/sleep is not available", "(scaled to zero)"],
    },
    Row {
        check: "every target behind 15443 healthy",
        tags: "@readiness",
        make: |up| {
            kubectl1(
                up,
                &[
                    "annotate",
                    "service",
                    "istio-eastwestgateway",
                    "-n",
                    "istio-ingress",
                    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port=80",
                ],
            )
        },
        says: &["diagnosis: targets behind the 15443 listener are not healthy: their health checks go to port 80"],
    },
    Row {
        check: "both EKS clusters are ACTIVE with the topology's Kubernetes version",
        tags: "@provisioning and @aws",
        make: |up| {
            // An upgrade the topology does not know of: UPDATING (still serving 1.28), then ACTIVE at 1.29.
            let out = up.aws(&["eks", "update-cluster-version", "--name", "eks-1", "--kubernetes-version", "1.29"]);
            assert_eq!(out["update"]["type"], "VersionUpdate", "{out}");
            let start = std::time::Instant::now();
            while up.aws(&["eks", "describe-cluster", "--name", "eks-1"])["cluster"]["version"] != "1.29" {
                assert!(start.elapsed() < Duration::from_secs(60), "the upgrade never finished");
                std::thread::sleep(Duration::from_millis(200));
            }
        },
        says: &["EKS cluster eks-1 runs Kubernetes 1.29, expected 1.28"],
    },
    Row {
        check: "each VPC has its public subnets tagged for load balancers",
        tags: "@provisioning and @aws",
        make: |up| {
            let vpc = vpc_id(up, "eks-1-vpc");
            let subnets = up.aws(&[
                "ec2",
                "describe-subnets",
                "--filters",
                &format!("Name=vpc-id,Values={vpc}"),
                "Name=tag:kubernetes.io/role/elb,Values=1",
            ]);
            let id = subnets["Subnets"][0]["SubnetId"].as_str().unwrap().to_string();
            aws_quiet(up, &["ec2", "delete-tags", "--resources", &id, "--tags", "Key=kubernetes.io/role/elb"]);
        },
        says: &["kubernetes.io/role/elb"],
    },
    Row {
        check: "the sleep pod's Envoy holds the other network's gateway (hostname resolved by istiod)",
        tags: "@sync",
        make: |up| {
            // DNS resolution off in cluster 1's VPC, then the gateway of cluster 2 replaced (a new NLB name).
            let vpc = vpc_id(up, "eks-1-vpc");
            aws_quiet(up, &["ec2", "modify-vpc-attribute", "--vpc-id", &vpc, "--no-enable-dns-support"]);
            let ctx2 = up.env["CTX_CLUSTER2"].clone();
            let svc = up.kubectl(&[
                "--context",
                &ctx2,
                "get",
                "service",
                "istio-eastwestgateway",
                "-n",
                "istio-ingress",
                "-o",
                "json",
            ]);
            let mut svc: serde_json::Value = serde_json::from_str(&svc).unwrap();
            for f in ["uid", "resourceVersion", "creationTimestamp", "finalizers", "managedFields"] {
                svc["metadata"].as_object_mut().unwrap().remove(f);
            }
            svc.as_object_mut().unwrap().remove("status");
            svc["spec"].as_object_mut().unwrap().retain(|k, _| matches!(k.as_str(), "type" | "ports" | "selector"));
            up.kubectl(&["--context", &ctx2, "delete", "service", "istio-eastwestgateway", "-n", "istio-ingress"]);
            let file = up.dir.path().join("svc.json");
            std::fs::write(&file, svc.to_string()).unwrap();
            up.kubectl(&["--context", &ctx2, "create", "-f", file.to_str().unwrap()]);
        },
        says: &["diagnosis: the hostname", "does not resolve in eks-1's VPC eks-1-vpc"],
    },
    Row {
        check: "a remote secret for the other cluster",
        tags: "@sync",
        make: |up| kubectl1(up, &["delete", "secret", "istio-remote-secret-cluster2", "-n", "istio-system"]),
        says: &["diagnosis: istiod in eks-1 has no remote secret for cluster2"],
    },
    Row {
        check: "the remote secret is labelled for istiod",
        tags: "@sync",
        make: |up| {
            kubectl1(
                up,
                &["label", "secret", "istio-remote-secret-cluster2", "-n", "istio-system", "istio/multiCluster-"],
            )
        },
        says: &[
            "diagnosis: the remote secret for cluster2 lacks the label istio/multiCluster=true",
            // istiod's own line about it, read through pods/log and quoted in the failure.
            "info\tDeleting cluster_id=cluster2 configured by secret=istio-system/istio-remote-secret-cluster2",
        ],
    },
    Row {
        check: "the remote secret's token is accepted",
        tags: "@sync",
        make: |up| {
            // The reader token of cluster 2 revoked: its Secret deleted (the token dies with it).
            let ctx2 = up.env["CTX_CLUSTER2"].clone();
            up.kubectl(&[
                "--context",
                &ctx2,
                "delete",
                "secret",
                "istio-reader-service-account-istio-remote-secret-token",
                "-n",
                "istio-system",
            ]);
        },
        says: &["diagnosis: the API server of cluster2 rejects the remote secret's token"],
    },
    Row {
        check: "the remote secret's credentials may read what istiod reads",
        tags: "@sync",
        make: |up| {
            // cluster 2's reader role loses `pods`: rule 1 of the chart's role is the core group's.
            patch_reader_role_of_cluster2(
                up,
                r#"-p=[{"op": "replace", "path": "/rules/1/resources", "value": ["endpoints", "services", "nodes", "namespaces", "secrets"]}]"#,
            );
        },
        says: &["diagnosis: the remote secret's service account in cluster2 is not allowed to list pods cluster-wide"],
    },
    Row {
        check: "the remote secret's credentials may read EndpointSlices (istiod 1.20 reads them, not Endpoints)",
        tags: "@sync",
        make: |up| {
            // Rule 5 of the chart's role is discovery.k8s.io's.
            patch_reader_role_of_cluster2(
                up,
                r#"-p=[{"op": "test", "path": "/rules/5/apiGroups/0", "value": "discovery.k8s.io"}, {"op": "remove", "path": "/rules/5"}]"#,
            );
        },
        says: &["is not allowed to list endpointslices.discovery.k8s.io cluster-wide"],
    },
];

/// What the failed steps said (not the step texts, which name what is checked
/// whatever happens): each captured failure with its continuation lines, and the
/// diagnoses the run repeats before its closing line.
fn failures(output: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in output.lines() {
        let t = line.trim_start();
        if let Some(i) = line.find("Captured output:") {
            inside = true;
            out.push(line[i..].to_string());
        } else if inside
            && !t.is_empty()
            && !t.starts_with(['✔', '✘'])
            && !t.starts_with("Scenario")
            && !t.starts_with("Feature")
        {
            out.push(t.to_string());
        } else {
            inside = false;
            if t.starts_with("diagnosis:") {
                out.push(t.to_string());
            }
        }
    }
    out.join("\n")
}

#[test]
fn every_check_fails_on_a_real_break_and_says_what_broke() {
    let _turn = whole_runs();
    let mut wrong = Vec::new();
    let mut bundles = 0;
    for row in ROWS {
        let up = TwinUp::start();
        (row.make)(&up);
        let reports = tempfile::tempdir().unwrap();
        let mut run = up.meshspec();
        run.args(["run", "--target", "eks", "--tags", row.tags, "--timeout-scale", "0.05", "--report-dir"])
            .arg(reports.path())
            .arg("--trend")
            .arg(reports.path().join("trend.jsonl"));
        let out = run_bounded(&mut run, Duration::from_secs(300));
        let said = failures(&format!("{}\n{}", text(&out.stdout), text(&out.stderr)));
        if out.status.success() {
            wrong.push(format!("{}: the run passed on the break", row.check));
        } else if let Some(missing) = row.says.iter().find(|s| !said.contains(**s)) {
            wrong.push(format!("{}: the failure does not say {missing:?}; it said:\n{said}", row.check));
        }
        bundles += bundle_problems(row.check, &reports.path().join("evidence.json"), &mut wrong);
        drop(up);
    }
    assert!(bundles > 0, "no failed scenario carried a failure bundle");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// Every failure bundle of a run holds, for eks-1, the Events of the sample
/// namespace (the scheduler's and the kubelet's among them) and the end of
/// istiod's log; returns how many bundles there were.
fn bundle_problems(check: &str, evidence: &std::path::Path, wrong: &mut Vec<String>) -> usize {
    let Ok(text) = std::fs::read_to_string(evidence) else { return 0 };
    let items: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    let bundles: Vec<&serde_json::Value> = items.iter().filter(|e| e["name"] == "failure bundle").collect();
    for b in &bundles {
        let cluster = &b["data"]["eks-1"];
        let reasons: Vec<&str> = cluster["objects"]["sample"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["reason"].as_str())
            .collect();
        if !["Scheduled", "Pulling", "Started", "SuccessfulCreate"].iter().all(|r| reasons.contains(r)) {
            wrong.push(format!("{check}: the bundle's sample events lack the controllers' ones: {reasons:?}"));
        }
        let log = cluster["istiod_log"].as_str().unwrap_or_default();
        if !log.contains("Starting multicluster remote secrets controller") {
            wrong.push(format!("{check}: the bundle's istiod log is {:?}", cluster["istiod_log"]));
        }
    }
    bundles.len()
}
