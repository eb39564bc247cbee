//! No credential reaches a report or a log: full runs (the diagnosis feature
//! provisions a twin with every fault; one more run has a fault of its own and
//! debug logs), every file they write (the page, the conformance report, the
//! trend line and the step catalog included) and everything they print, scanned.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::harness::{run_bounded, text, whole_runs};

/// Marks of credentials: PEM private keys (also base64-encoded, as in Secret
/// data or kubeconfigs), EKS tokens and presigned URLs, kubeconfig client keys.
const MARKS: &[&str] = &[
    "PRIVATE KEY-----",
    "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS",
    "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVk",
    "k8s-aws-v1.",
    "X-Amz-Signature",
    "client-key-data",
];

fn scan(what: &str, text: &str) {
    for m in MARKS {
        assert!(!text.contains(m), "{what} contains {m:?}");
    }
    // A bearer token as a JSON or YAML value.
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("\"token\":").or_else(|| l.strip_prefix("token:")) {
            let v = v.trim().trim_matches(|c| c == '"' || c == ',');
            assert!(v.is_empty() || v == "<redacted>", "{what} has a token: {l}");
        }
    }
}

fn scan_dir(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let content = std::fs::read_to_string(&path).unwrap();
        scan(&path.display().to_string(), &content);
        // Embeddings are base64: decode and scan them too.
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value = serde_json::from_str(&content).unwrap();
            for data in embedded(&v) {
                scan(&format!("an embedding in {}", path.display()), &data);
            }
        }
        files += 1;
    }
    files
}

fn embedded(v: &serde_json::Value) -> Vec<String> {
    use base64::Engine;
    let mut out = Vec::new();
    match v {
        serde_json::Value::Object(o) => {
            if let (Some(serde_json::Value::String(d)), Some(_)) = (o.get("data"), o.get("mime_type")) {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(d) {
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            o.values().for_each(|x| out.extend(embedded(x)));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| out.extend(embedded(x))),
        _ => {}
    }
    out
}

#[test]
fn no_report_or_log_of_a_full_run_holds_a_credential() {
    let _turn = whole_runs();
    for (args, expect_ok) in
        [(vec!["run"], true), (vec!["run", "--fault", "bad-reader-token", "--timeout-scale", "0.2"], false)]
    {
        let reports = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("MESHSPEC_LOG", "debug")
            .args(&args)
            .arg("--report-dir")
            .arg(reports.path());
        let out = run_bounded(&mut cmd, Duration::from_secs(300));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.success(), expect_ok, "{args:?}: {stdout}\n{stderr}");
        scan(&format!("stdout of {args:?}"), &stdout);
        scan(&format!("stderr of {args:?}"), &stderr);
        assert!(
            scan_dir(reports.path()) >= 8,
            "junit.xml, cucumber.json, evidence.json, run.json, report.html, conformance.json/.yaml and trend.jsonl are written"
        );
        // The documents `meshspec docs` renders from these reports, the step catalog among them.
        let docs = reports.path().join("docs");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshspec"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("docs")
            .arg("--from")
            .arg(reports.path())
            .arg("--out")
            .arg(&docs);
        let out = run_bounded(&mut cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(scan_dir(&docs), 3, "report.html, steps.html and steps.md");
        if !expect_ok {
            assert!(stdout.contains("diagnosis: "), "a failed run names its diagnosis: {stdout}");
            let evidence = std::fs::read_to_string(reports.path().join("evidence.json")).unwrap();
            assert!(evidence.contains("failure bundle"), "failed scenarios carry their evidence bundle");
        }
    }
}
