//! The twin as `meshspec twin up` serves it, used by clients nobody here wrote:
//! kubectl and the aws CLI, and the seed runbook's readiness commands as written.

use std::time::Duration;

use super::harness::{run_bounded, text, TwinUp, CLI_LIMIT};

#[test]
fn twin_up_serves_kubectl_the_aws_cli_and_the_seed_readiness_commands() {
    let up = TwinUp::start();
    for key in [
        "KUBECONFIG",
        "CTX_CLUSTER1",
        "CTX_CLUSTER2",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MESHSPEC_DNS",
    ] {
        assert!(up.env.get(key).is_some_and(|v| !v.is_empty()), "{key} missing from the env file: {:?}", up.env.keys());
    }
    let ctx1 = up.env["CTX_CLUSTER1"].clone();
    assert!(ctx1.starts_with("arn:aws:eks:us-west-2:") && ctx1.ends_with(":cluster/eks-1"), "{ctx1}");

    // kubectl: get -o jsonpath, get -l, apply -f.
    let hostname = up.kubectl(&[
        "get",
        "svc",
        "istio-eastwestgateway",
        "-n",
        "istio-ingress",
        "--context",
        &ctx1,
        "-o=jsonpath={.status.loadBalancer.ingress[0].hostname}",
    ]);
    assert!(hostname.ends_with(".elb.us-west-2.amazonaws.com"), "{hostname}");
    let pod = up.kubectl(&[
        "get",
        "pod",
        "--context",
        &ctx1,
        "-l",
        "app=sleep",
        "-o",
        "jsonpath={.items[0].metadata.name}",
        "-n",
        "sample",
    ]);
    assert!(pod.starts_with("sleep-"), "{pod}");
    let manifest = up.dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\n  namespace: sample\ndata:\n  k: v\n",
    )
    .unwrap();
    let applied = up.kubectl(&["apply", "-f", manifest.to_str().unwrap(), "--context", &ctx1]);
    assert!(applied.contains("configmap/from-kubectl created"), "{applied}");
    assert_eq!(
        up.kubectl(&["get", "cm", "from-kubectl", "-n", "sample", "--context", &ctx1, "-o", "jsonpath={.data.k}"]),
        "v"
    );

    // kubectl logs and events: what an operator reads first (issue 13: istiod's log was empty).
    let log = up.kubectl(&["logs", "deploy/istiod", "-n", "istio-system", "--context", &ctx1]);
    assert!(
        log.lines()
            .any(|l| l
                .ends_with("info\tAdding cluster\tcluster=cluster2 secret=istio-system/istio-remote-secret-cluster2")),
        "{log}"
    );
    let tail = up.kubectl(&["logs", "deploy/istiod", "-n", "istio-system", "--context", &ctx1, "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let events = up.kubectl(&["get", "events", "-A", "--context", &ctx1]);
    let header: Vec<&str> = events.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{events}");
    assert!(events.contains("Scheduled") && events.contains("ScalingReplicaSet"), "{events}");

    // The aws CLI.
    let cluster = up.aws(&["eks", "describe-cluster", "--name", "eks-1"]);
    assert_eq!(cluster["cluster"]["status"], "ACTIVE");
    assert_eq!(cluster["cluster"]["arn"], ctx1.as_str());
    let lbs = up.aws(&["elbv2", "describe-load-balancers"]);
    let lb = lbs["LoadBalancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["DNSName"] == hostname.as_str())
        .expect("the NLB is listed");
    assert_eq!(
        (lb["Type"].as_str(), lb["Scheme"].as_str(), lb["State"]["Code"].as_str()),
        (Some("network"), Some("internet-facing"), Some("active"))
    );
    let listeners =
        up.aws(&["elbv2", "describe-listeners", "--load-balancer-arn", lb["LoadBalancerArn"].as_str().unwrap()]);
    let tg = listeners["Listeners"].as_array().unwrap().iter().find(|l| l["Port"] == 15443).expect("a 15443 listener")
        ["DefaultActions"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    let health = up.aws(&["elbv2", "describe-target-health", "--target-group-arn", &tg]);
    let targets = health["TargetHealthDescriptions"].as_array().unwrap();
    assert!(!targets.is_empty() && targets.iter().all(|t| t["TargetHealth"]["State"] == "healthy"), "{targets:?}");

    // The runbook's readiness commands, as written (with its `k` alias), for each cluster.
    for ctx in ["CTX_CLUSTER1", "CTX_CLUSTER2"] {
        let script = format!(
            r#"set -eo pipefail
k() {{ kubectl --cache-dir "$HOME/kube-cache" "$@"; }}
CTX_CLUSTER1="${ctx}"
EW_LB_NAME=$(k get svc istio-eastwestgateway -n istio-ingress --context $CTX_CLUSTER1 -o=jsonpath='{{.status.loadBalancer.ingress[0].hostname}}')

EW_LB_ARN=$(aws elbv2 describe-load-balancers | \
jq -r --arg EW_LB_NAME "$EW_LB_NAME" \
'.LoadBalancers[] | select(.DNSName == $EW_LB_NAME) | .LoadBalancerArn')

TG_ARN=$(aws elbv2 describe-listeners --load-balancer-arn $EW_LB_ARN | jq -r '.Listeners[] | select(.Port == 15443) | .DefaultActions[0].TargetGroupArn')

aws elbv2 describe-target-health --target-group-arn $TG_ARN | jq -r '.TargetHealthDescriptions[0]'
"#
        );
        let out = run_bounded(up.command("bash").args(["-c", &script]), CLI_LIMIT);
        assert!(out.status.success(), "the seed's readiness script failed: {}", text(&out.stderr));
        let first: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the script prints one target as JSON");
        assert_eq!(first["TargetHealth"]["State"], "healthy", "{first}");
        assert_eq!(first["Target"]["Port"], 15443);
        assert_eq!(first["HealthCheckPort"], "15443");
        assert!(first["Target"]["AvailabilityZone"].as_str().unwrap().starts_with("us-west-2"));
    }
    up.stop("TERM");
}

#[test]
fn twin_up_bare_serves_aws_and_dns_with_nothing_provisioned() {
    let bare = TwinUp::bare();
    assert_eq!(bare.aws(&["eks", "list-clusters"])["clusters"], serde_json::json!([]));
    assert_eq!(bare.aws(&["ec2", "describe-vpcs"])["Vpcs"], serde_json::json!([]));
    assert!(bare.env.contains_key("MESHSPEC_DNS") && !bare.env.contains_key("CTX_CLUSTER1"), "{:?}", bare.env);
    bare.stop("TERM");
}

#[test]
fn twin_up_cleans_up_on_sigint() {
    let up = TwinUp::start();
    assert!(up.env_file.exists());
    up.stop("INT");
}

#[test]
fn the_seed_load_balancing_loop_reaches_both_versions_from_each_cluster() {
    let up = TwinUp::start();
    for ctx in ["CTX_CLUSTER1", "CTX_CLUSTER2"] {
        // The runbook's loop, as written (kubectl reads the env file's KUBECONFIG).
        let script = format!(
            r#"set -e
kubectl() {{ command kubectl --cache-dir "$HOME/kube-cache" "$@"; }}
CTX_CLUSTER1="${ctx}"
for i in {{1..10}}
do 
kubectl exec --context="${{CTX_CLUSTER1}}" -n sample -c sleep \
    "$(kubectl get pod --context="${{CTX_CLUSTER1}}" -n sample -l \
    app=sleep -o jsonpath='{{.items[0].metadata.name}}')" \
    -- curl -sS helloworld.sample:5000/hello
done
"#
        );
        // Ten requests at p = 1/2 show one version only once in 512 runs: a
        // second (and third) run of the loop makes a false failure negligible.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let out = run_bounded(up.command("bash").args(["-c", &script]), Duration::from_secs(120));
            assert!(out.status.success(), "the runbook's loop failed from {ctx}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
            assert_eq!(lines.len(), 10, "{stdout}");
            assert!(
                lines.iter().all(|l| l.starts_with("Hello version: v1, instance: helloworld-v1-")
                    || l.starts_with("Hello version: v2, instance: helloworld-v2-")),
                "{stdout}"
            );
            seen.extend(lines);
            if seen.iter().any(|l| l.contains("v1,")) && seen.iter().any(|l| l.contains("v2,")) {
                break;
            }
        }
        assert!(
            seen.iter().any(|l| l.contains("v1,")) && seen.iter().any(|l| l.contains("v2,")),
            "{ctx}: one version only: {seen:?}"
        );
    }
    // `meshspec proxy-config endpoint` prints what istioctl prints, from the same kubeconfig.
    let pod = up.kubectl(&[
        "get",
        "pod",
        "--context",
        &up.env["CTX_CLUSTER1"],
        "-n",
        "sample",
        "-l",
        "app=sleep",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let proxy_config = |extra: &[&str]| {
        let mut cmd = up.command(env!("CARGO_BIN_EXE_meshspec"));
        cmd.args(["proxy-config", "endpoint", &pod, "-n", "sample", "--context", &up.env["CTX_CLUSTER1"]]).args(extra);
        let out = run_bounded(&mut cmd, CLI_LIMIT);
        assert!(out.status.success(), "proxy-config {extra:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let hello = "outbound|5000||helloworld.sample.svc.cluster.local";
    let table = proxy_config(&["--cluster", hello]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ENDPOINT")
            && lines[0].contains("STATUS")
            && lines[0].contains("OUTLIER CHECK")
            && lines[0].ends_with("CLUSTER"),
        "{table}"
    );
    assert_eq!(lines.len(), 5, "one local pod and three gateway addresses:\n{table}");
    assert_eq!(lines.iter().filter(|l| l.contains(":15443 ")).count(), 3, "{table}");
    assert!(lines[1..].iter().all(|l| l.contains(" HEALTHY ") && l.contains(" OK ") && l.ends_with(hello)), "{table}");
    // istioctl's -o json keeps a matching cluster whole: all four hosts, not only the 15443 ones.
    let json: serde_json::Value =
        serde_json::from_str(&proxy_config(&["--cluster", hello, "--port", "15443", "-o", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["hostStatuses"].as_array().unwrap().len(), 4);
    // What is missing is named: the namespace, the pod, the sidecar; never a Rust Debug struct.
    let refused = |pod: &str, ns: &str| {
        let mut cmd = up.command(env!("CARGO_BIN_EXE_meshspec"));
        cmd.args(["proxy-config", "endpoint", pod, "-n", ns, "--context", &up.env["CTX_CLUSTER1"]]);
        let out = run_bounded(&mut cmd, CLI_LIMIT);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("Status {") && !stderr.contains("ErrorResponse"), "{stderr}");
        stderr
    };
    let e = refused(&pod, "no-such-namespace");
    assert!(e.contains("no namespace \"no-such-namespace\" in context"), "{e}");
    let e = refused("no-such-pod", "sample");
    assert!(e.contains("no pod \"no-such-pod\" in namespace \"sample\"") && e.contains(&pod), "{e}");
    let istiod = up.kubectl(&[
        "get",
        "pod",
        "--context",
        &up.env["CTX_CLUSTER1"],
        "-n",
        "istio-system",
        "-l",
        "app=istiod",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let e = refused(&istiod, "istio-system");
    assert!(e.contains("has no istio-proxy container") && e.contains("it is not in the mesh"), "{e}");
    up.stop("TERM");
}
