//! `meshspec proxy-config endpoint --file DUMP`: a saved clusters dump printed as istioctl
//! 1.20.2 prints it (expected outputs in fixtures/envoy/expected/, derived by hand from
//! istioctl's writer), with no cluster; bad dumps and bad usage give one clear error line.

use std::process::Command;
use std::time::Duration;

use super::bad_input::meshspec;
use super::harness::{run_bounded, text};

const LIMIT: Duration = Duration::from_secs(60);

fn expected(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/envoy/expected/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Runs `meshspec proxy-config endpoint ARGS` and returns its stdout, expecting success.
fn endpoint(args: &[&str]) -> String {
    let out = run_bounded(meshspec().args(["proxy-config", "endpoint"]).args(args), LIMIT);
    assert_eq!(out.status.code(), Some(0), "{args:?}: stderr {}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing on stderr for {args:?}");
    text(&out.stdout)
}

/// Runs meshspec with ARGS and expects exit 2 and `needle` in its single `error:` line.
fn fails(args: &[&str], needle: &str) {
    let out = run_bounded(meshspec().args(args), LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{args:?}: stdout {stdout}\nstderr {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    assert_eq!(stdout, "", "nothing printed for {args:?}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert!(errors[0].contains(needle), "expected {needle:?} in {:?}", errors[0]);
}

#[test]
fn a_dump_in_either_field_style_prints_istioctls_table_json_and_yaml() {
    for dump in ["fixtures/envoy/dump-camel.json", "fixtures/envoy/dump-snake.json"] {
        assert_eq!(endpoint(&["--file", dump]), expected("all.txt"), "{dump}");
        assert_eq!(endpoint(&["-f", dump, "-o", "json"]), expected("all.json"), "{dump}");
        assert_eq!(endpoint(&["-f", dump, "--output", "yaml"]), expected("all.yaml"), "{dump}");
    }
}

#[test]
fn filters_apply_to_a_dump() {
    let dump = "fixtures/envoy/dump-camel.json";
    assert_eq!(endpoint(&["-f", dump, "--cluster", "CONNECT_ORIGINATE"]), expected("cluster-connect_originate.txt"));
    assert_eq!(
        endpoint(&["-f", dump, "--address", "44.227.39.238", "-o", "json"]),
        expected("address-44.227.39.238.json")
    );
    assert_eq!(endpoint(&["-f", dump, "--status", "nothing", "-o", "yaml"]), expected("none.yaml"));
    // istioctl's --port is a Go int flag: 0x3C53 is 15443.
    let table = endpoint(&["-f", dump, "--port", "0x3C53"]);
    let cells: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(cells, ["44.227.39.238:15443"]);
    let table = endpoint(&["-f", dump, "--address", "UNIX:///var/run/app/app.sock", "--status", "Healthy"]);
    let cells: Vec<&str> = table.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(cells, ["unix:///var/run/app/app.sock"]);
}

#[test]
fn a_dump_on_stdin_with_file_dash_and_the_ep_alias() {
    let mut cmd = Command::new("sh");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "-c",
        "exec \"$0\" proxy-config ep --file - < fixtures/envoy/dump-snake.json",
        env!("CARGO_BIN_EXE_meshspec"),
    ]);
    let out = run_bounded(&mut cmd, LIMIT);
    assert_eq!(out.status.code(), Some(0), "stderr {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected("all.txt"));
}

#[test]
fn bad_dumps_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let pe = ["proxy-config", "endpoint", "--file"];
    fails(
        &[&pe[..], &["/nonexistent/clusters.json"]].concat(),
        "cannot read the clusters dump /nonexistent/clusters.json",
    );
    fails(&[&pe[..], &[dir.path().to_str().unwrap()]].concat(), "cannot read the clusters dump");
    let bad = path("bad.json", "<html>not json</html>");
    fails(&[&pe[..], &[bad.as_str()]].concat(), "is not an Envoy clusters dump: not JSON: invalid character '<'");
    let empty = path("empty.json", "");
    fails(&[&pe[..], &[empty.as_str()]].concat(), "not JSON: the body is empty");
    fails(&[&pe[..], &["fixtures/envoy/clusters-istioctl.json"]].concat(), "a JSON list, not Envoy's");
    let config_dump = path("config_dump.json", "{\"configs\": [{\"@type\": \"x\"}]}");
    fails(
        &[&pe[..], &[config_dump.as_str()]].concat(),
        "no cluster_statuses (nor clusterStatuses) in the object (keys: configs)",
    );
    let typed = path("typed.json", "{\"cluster_statuses\": [{\"host_statuses\": [{\"weight\": \"heavy\"}]}]}");
    fails(&[&pe[..], &[typed.as_str()]].concat(), "cluster_statuses[0].host_statuses[0].weight: expected a number");
}

#[test]
fn a_pod_and_a_file_together_or_neither_is_a_usage_error() {
    fails(
        &["proxy-config", "endpoint", "sleep-abc.sample", "--file", "fixtures/envoy/dump-camel.json"],
        "needs a pod or --file DUMP, not both",
    );
    fails(&["proxy-config", "endpoint"], "needs a pod or --file DUMP");
}
