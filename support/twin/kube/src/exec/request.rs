//! The exec query (`command` repeated, `container`, the stream flags) checked
//! against the pod the way a real API server does before it dials the kubelet.

use serde_json::Value;

use super::ExecRequest;
use crate::error::ApiError;
use crate::resources::Resource;
use crate::store::Store;

/// Annotation naming the container `kubectl exec` and `logs` pick by default.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Which output streams the client reads; one it did not ask for gets no frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Streams {
    pub stdout: bool,
    pub stderr: bool,
}

pub(crate) fn parse(
    store: &Store,
    query: &[(String, String)],
    namespace: &str,
    pod: &str,
) -> Result<(ExecRequest, Streams), ApiError> {
    let flag = |key: &str, default: bool| -> Result<bool, ApiError> {
        match query.iter().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => parse_bool(v)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value {v:?} for {key}: expected a boolean"))),
        }
    };
    // kube-rs sends only the flags that are true: a missing stdout/stderr means "wanted".
    let stdin = flag("stdin", false)?;
    let stdout = flag("stdout", true)?;
    let stderr = flag("stderr", true)?;
    let tty = flag("tty", false)?;
    let command: Vec<String> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let requested = query.iter().find(|(k, _)| k == "container").map(|(_, v)| v.as_str()).filter(|c| !c.is_empty());

    let obj = store.get(&Resource::pods(), Some(namespace), pod).ok_or_else(|| ApiError::not_found("pods", pod))?;
    if let Some(phase @ ("Succeeded" | "Failed")) = obj.pointer("/status/phase").and_then(Value::as_str) {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let container = resolve_container(&obj, pod, requested)?;
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !stdin && !stdout && !stderr {
        return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
    }
    let exec = ExecRequest {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: Some(container),
        command,
        stdin,
        tty,
    };
    Ok((exec, Streams { stdout, stderr }))
}

/// Go's `strconv.ParseBool`, which the API server's query decoding uses.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn names<'a>(pod: &'a Value, list: &str) -> Vec<&'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect())
        .unwrap_or_default()
}

/// The container to exec in, with the real API server's messages when there is none.
fn resolve_container(obj: &Value, pod: &str, requested: Option<&str>) -> Result<String, ApiError> {
    let containers = names(obj, "containers");
    let init = names(obj, "initContainers");
    if let Some(name) = requested {
        let known = containers.iter().chain(&init).chain(&names(obj, "ephemeralContainers")).any(|c| *c == name);
        return if known {
            Ok(name.to_string())
        } else {
            Err(ApiError::bad_request(format!("container {name} is not valid for pod {pod}")))
        };
    }
    if let [only] = containers.as_slice() {
        return Ok(only.to_string());
    }
    let annotated = obj.pointer("/metadata/annotations").and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION));
    if let Some(name) = annotated.and_then(Value::as_str).filter(|n| containers.contains(n)) {
        return Ok(name.to_string());
    }
    if containers.is_empty() {
        return Err(ApiError::bad_request(format!("pod {pod} has no containers")));
    }
    let mut message =
        format!("a container name must be specified for pod {pod}, choose one of: [{}]", containers.join(" "));
    if !init.is_empty() {
        message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
    }
    Err(ApiError::bad_request(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn store_with(pod: Value) -> std::sync::Arc<Store> {
        let store = Store::new();
        store.create(&Resource::pods(), Some("default"), pod).expect("pod");
        store
    }

    fn pod(containers: &[&str], annotations: Value) -> Value {
        let containers: Vec<Value> = containers.iter().map(|n| json!({"name": n, "image": "x"})).collect();
        json!({"metadata": {"name": "p", "annotations": annotations},
               "spec": {"containers": containers, "initContainers": [{"name": "init", "image": "x"}]}})
    }

    #[test]
    fn defaults_streams_and_the_only_container() {
        let store = store_with(pod(&["app"], json!({})));
        let (req, streams) =
            parse(&store, &pairs(&[("command", "echo"), ("command", "a b")]), "default", "p").expect("valid");
        assert_eq!(req.command, vec!["echo", "a b"]);
        assert_eq!(req.container.as_deref(), Some("app"));
        assert!(!req.stdin && !req.tty);
        assert_eq!(streams, Streams { stdout: true, stderr: true });
        let (_, streams) =
            parse(&store, &pairs(&[("command", "x"), ("stderr", "false")]), "default", "p").expect("valid");
        assert_eq!(streams, Streams { stdout: true, stderr: false });
    }

    #[test]
    fn containers_by_name_annotation_or_refusal() {
        let store = store_with(pod(&["a", "b"], json!({DEFAULT_CONTAINER_ANNOTATION: "b"})));
        let q = pairs(&[("command", "x")]);
        assert_eq!(parse(&store, &q, "default", "p").expect("annotated").0.container.as_deref(), Some("b"));
        let q = pairs(&[("command", "x"), ("container", "init")]);
        assert_eq!(parse(&store, &q, "default", "p").expect("init").0.container.as_deref(), Some("init"));
        let e = parse(&store, &pairs(&[("command", "x"), ("container", "c")]), "default", "p").expect_err("bad");
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (400, "BadRequest", "container c is not valid for pod p")
        );

        let store = store_with(pod(&["a", "b"], json!({})));
        let e = parse(&store, &pairs(&[("command", "x")]), "default", "p").expect_err("ambiguous");
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
    }

    #[test]
    fn refusals() {
        let store = store_with(pod(&["app"], json!({})));
        let e = parse(&store, &pairs(&[("command", "x")]), "default", "nope").expect_err("missing");
        assert_eq!((e.code, e.message.as_str()), (404, "pods \"nope\" not found"));
        let e = parse(&store, &pairs(&[]), "default", "p").expect_err("no command");
        assert_eq!((e.code, e.message.as_str()), (400, "you must specify at least 1 command"));
        let q = pairs(&[("command", "x"), ("stdout", "false"), ("stderr", "0")]);
        assert_eq!(parse(&store, &q, "default", "p").expect_err("no streams").code, 400);
        let e = parse(&store, &pairs(&[("command", "x"), ("tty", "yes")]), "default", "p").expect_err("flag");
        assert_eq!(e.code, 400);
        store.update_status(&Resource::pods(), Some("default"), "p", json!({"phase": "Succeeded"})).expect("status");
        let e = parse(&store, &pairs(&[("command", "x")]), "default", "p").expect_err("completed");
        assert_eq!(e.message, "cannot exec into a container in a completed pod; current phase is Succeeded");
    }
}
