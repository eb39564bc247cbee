//! The done-criterion of the twin's fidelity: a script of what an operator
//! types (kubectl create/label/annotate/rollout/wait/get/auth/logs/events/
//! delete, the aws CLI, meshspec proxy-config live and from a saved dump) runs
//! against `meshspec twin up` and gets, at every step, what a real cluster
//! answers. The script (operator-script.sh) checks each answer itself and
//! stops at the first that differs.

use std::time::Duration;

use super::harness::{run_bounded, text, TwinUp};

const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn an_operator_script_gets_real_answers_from_twin_up() {
    let up = TwinUp::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/operator-script.sh");
    let out = run_bounded(
        up.command("bash")
            .arg(script)
            .env("MESHSPEC", env!("CARGO_BIN_EXE_meshspec"))
            .env("HOME", up.dir.path())
            .env("KUBECACHEDIR", up.dir.path().join("kube-cache")),
        SCRIPT_LIMIT,
    );
    let transcript = text(&out.stderr);
    assert!(out.status.success(), "the operator script failed:\n{transcript}");
    assert!(transcript.contains("every answer as a real cluster gives it"), "{transcript}");
    up.stop("TERM");
}
