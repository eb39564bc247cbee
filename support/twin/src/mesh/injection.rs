//! Sidecar injection, as istiod's webhook does it to a pod being created in a
//! namespace labelled `istio-injection=enabled`: an `istio-init` init
//! container, an `istio-proxy` container (proxyv2, Envoy's Prometheus port
//! 15090), the network label and the proxy's metadata env (network, cluster,
//! mesh), and the annotations kubectl reads to pick the app container.

use serde_json::{json, Value};

use crate::programs::objects::{self, pod};

pub const INJECTION_LABEL: &str = "istio-injection";
pub const INJECT_OPT: &str = "sidecar.istio.io/inject";
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
pub const NETWORK_LABEL: &str = "topology.istio.io/network";
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
pub const PROXY_CONTAINER: &str = "istio-proxy";
pub const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";

/// The injector's `values` (helm values of the istiod chart) that matter here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectorValues {
    pub network: String,
    pub mesh_id: String,
    pub cluster_name: String,
    /// `<hub>/<proxy.image>:<tag>`.
    pub proxy_image: String,
}

impl InjectorValues {
    /// From the `values` JSON of `istio-sidecar-injector`; missing fields fall
    /// back to the chart's defaults (`tag`: the one istiod runs with).
    pub fn parse(values_json: Option<&str>, default_tag: &str) -> InjectorValues {
        let v: Value = values_json.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
        let text = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).unwrap_or("").to_owned();
        let or = |s: String, d: &str| if s.is_empty() { d.to_owned() } else { s };
        let hub = or(text("/global/hub"), "docker.io/istio");
        let image = or(text("/global/proxy/image"), "proxyv2");
        let tag = or(text("/global/tag"), default_tag);
        InjectorValues {
            network: text("/global/network"),
            mesh_id: text("/global/meshID"),
            cluster_name: or(text("/global/multiCluster/clusterName"), "Kubernetes"),
            proxy_image: if image.contains('/') { format!("{image}:{tag}") } else { format!("{hub}/{image}:{tag}") },
        }
    }
}

/// Whether the webhook selects the pod: its namespace has injection on and the
/// pod does not opt out (label or annotation), and it is not injected yet.
pub fn wants_injection(namespace: Option<&Value>, p: &Value) -> bool {
    let enabled =
        namespace.is_some_and(|ns| objects::labels(ns).get(INJECTION_LABEL).map(String::as_str) == Some("enabled"));
    let opted_out = objects::labels(p).get(INJECT_OPT).map(String::as_str) == Some("false")
        || objects::annotation(p, INJECT_OPT) == Some("false");
    let injected = objects::annotation(p, STATUS_ANNOTATION).is_some()
        || pod::containers(p).iter().any(|c| c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER));
    let host_network = p.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
    enabled && !opted_out && !injected && !host_network
}

/// The pod with its sidecar.
pub fn inject(mut p: Value, values: &InjectorValues) -> Value {
    let app = pod::containers(&p).first().and_then(|c| c.get("name")).and_then(Value::as_str).unwrap_or("").to_owned();
    let labels = objects::labels(&p);
    let canonical_name = labels
        .get("app.kubernetes.io/name")
        .or_else(|| labels.get("app"))
        .cloned()
        .unwrap_or_else(|| workload_name(&p));
    let canonical_revision = labels
        .get("app.kubernetes.io/version")
        .or_else(|| labels.get("version"))
        .cloned()
        .unwrap_or_else(|| "latest".into());

    if !p.get("metadata").is_some_and(Value::is_object) {
        p["metadata"] = json!({});
    }
    let meta = &mut p["metadata"];
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    meta["labels"][TLS_MODE_LABEL] = json!("istio");
    meta["labels"]["service.istio.io/canonical-name"] = json!(canonical_name);
    meta["labels"]["service.istio.io/canonical-revision"] = json!(canonical_revision);
    if !values.network.is_empty() && meta["labels"].get(NETWORK_LABEL).is_none() {
        meta["labels"][NETWORK_LABEL] = json!(values.network);
    }
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta["annotations"] = json!({});
    }
    let status = json!({"initContainers": ["istio-init"], "containers": [PROXY_CONTAINER],
                        "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy",
                                    "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
                        "imagePullSecrets": null, "revision": "default"});
    meta["annotations"][STATUS_ANNOTATION] = json!(status.to_string());
    meta["annotations"]["istio.io/rev"] = json!("default");
    meta["annotations"]["prometheus.io/scrape"] = json!("true");
    meta["annotations"]["prometheus.io/port"] = json!("15020");
    meta["annotations"]["prometheus.io/path"] = json!("/stats/prometheus");
    if !app.is_empty() {
        meta["annotations"]["kubectl.kubernetes.io/default-container"] = json!(app);
        meta["annotations"]["kubectl.kubernetes.io/default-logs-container"] = json!(app);
    }

    if !p.get("spec").is_some_and(Value::is_object) {
        p["spec"] = json!({});
    }
    let spec = &mut p["spec"];
    push(spec, "initContainers", init_container(values));
    push(spec, "containers", proxy_container(values));
    for volume in volumes() {
        push(spec, "volumes", volume);
    }
    p
}

fn push(spec: &mut Value, field: &str, item: Value) {
    match spec.get_mut(field).and_then(Value::as_array_mut) {
        Some(items) => items.push(item),
        None => spec[field] = json!([item]),
    }
}

/// The Deployment's name for a ReplicaSet pod (`<deploy>-<hash>-<suffix>`), else the pod's.
fn workload_name(p: &Value) -> String {
    let name = objects::name(p);
    let generate = p.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or("");
    let base = generate.trim_end_matches('-');
    match (objects::labels(p).get("pod-template-hash"), base.rsplit_once('-')) {
        (Some(hash), Some((deploy, h))) if h == hash => deploy.to_owned(),
        _ if !base.is_empty() => base.to_owned(),
        _ => name.to_owned(),
    }
}

fn init_container(values: &InjectorValues) -> Value {
    json!({
        "name": "istio-init",
        "image": values.proxy_image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*",
                 "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"],
                            "drop": ["ALL"]}, "runAsGroup": 0, "runAsNonRoot": false, "runAsUser": 0},
    })
}

fn proxy_container(values: &InjectorValues) -> Value {
    let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
    json!({
        "name": PROXY_CONTAINER,
        "image": values.proxy_image,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                 "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "INSTANCE_IP", "valueFrom": field("status.podIP")},
            {"name": "SERVICE_ACCOUNT", "valueFrom": field("spec.serviceAccountName")},
            {"name": "HOST_IP", "valueFrom": field("status.hostIP")},
            {"name": "ISTIO_META_MESH_ID", "value": values.mesh_id},
            {"name": "ISTIO_META_CLUSTER_ID", "value": values.cluster_name},
            {"name": "ISTIO_META_NETWORK", "value": values.network},
            {"name": "TRUST_DOMAIN", "value": "cluster.local"},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15,
                           "failureThreshold": 4, "timeoutSeconds": 3},
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
        ],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                            "privileged": false, "readOnlyRootFilesystem": true, "runAsGroup": 1337,
                            "runAsNonRoot": true, "runAsUser": 1337},
    })
}

fn volumes() -> Vec<Value> {
    vec![
        json!({"name": "workload-socket", "emptyDir": {}}),
        json!({"name": "credential-socket", "emptyDir": {}}),
        json!({"name": "workload-certs", "emptyDir": {}}),
        json!({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-data", "emptyDir": {}}),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}),
        json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
    ]
}

/// A container's plain env value (`valueFrom` entries are not resolved).
pub fn env_value(container: &Value, name: &str) -> Option<String> {
    container
        .get("env")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
        .map(str::to_owned)
}

/// The pod's Envoy container (an injected sidecar or a gateway's proxy).
pub fn proxy_container_of(p: &Value) -> Option<&Value> {
    pod::containers(p).iter().find(|c| {
        c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER)
            || crate::programs::listening::is_istio_proxy(pod::image(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> InjectorValues {
        InjectorValues::parse(
            Some(
                r#"{"global":{"meshID":"mesh1","multiCluster":{"clusterName":"cluster1"},"network":"network1","proxy":{"image":"proxyv2"},"hub":"docker.io/istio","tag":"1.20.2"}}"#,
            ),
            "1.19.0",
        )
    }

    fn sleep_pod() -> Value {
        json!({"metadata": {"name": "sleep-5d8b9c6f4-x2x4z", "generateName": "sleep-5d8b9c6f4-", "namespace": "sample",
                            "labels": {"app": "sleep", "pod-template-hash": "5d8b9c6f4"}},
               "spec": {"containers": [{"name": "sleep", "image": "curlimages/curl"}]}})
    }

    #[test]
    fn values_come_from_the_injector_config_with_chart_defaults() {
        let v = values();
        assert_eq!(v.proxy_image, "docker.io/istio/proxyv2:1.20.2");
        assert_eq!(
            (v.network.as_str(), v.mesh_id.as_str(), v.cluster_name.as_str()),
            ("network1", "mesh1", "cluster1")
        );
        let d = InjectorValues::parse(Some("not json"), "1.20.2");
        assert_eq!(d.proxy_image, "docker.io/istio/proxyv2:1.20.2");
        assert_eq!(d.cluster_name, "Kubernetes");
        assert_eq!(d.network, "");
    }

    #[test]
    fn an_injected_pod_has_the_proxy_the_network_label_and_env() {
        let p = inject(sleep_pod(), &values());
        let containers = pod::containers(&p);
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0]["name"], "sleep", "the app stays first");
        let proxy = &containers[1];
        assert_eq!(proxy["name"], "istio-proxy");
        assert_eq!(proxy["image"], "docker.io/istio/proxyv2:1.20.2");
        assert_eq!(proxy["ports"][0], json!({"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}));
        assert_eq!(env_value(proxy, "ISTIO_META_NETWORK").as_deref(), Some("network1"));
        assert_eq!(env_value(proxy, "ISTIO_META_CLUSTER_ID").as_deref(), Some("cluster1"));
        let labels = objects::labels(&p);
        assert_eq!(labels[NETWORK_LABEL], "network1");
        assert_eq!(labels[TLS_MODE_LABEL], "istio");
        assert_eq!(labels["service.istio.io/canonical-name"], "sleep");
        assert_eq!(labels["service.istio.io/canonical-revision"], "latest");
        assert_eq!(objects::annotation(&p, "kubectl.kubernetes.io/default-container"), Some("sleep"));
        assert_eq!(p["spec"]["initContainers"][0]["name"], "istio-init");
        assert!(objects::annotation(&p, STATUS_ANNOTATION).is_some());
        assert_eq!(proxy_container_of(&p).map(|c| &c["name"]), Some(&json!("istio-proxy")));
        assert_eq!(workload_name(&p), "sleep");
    }

    #[test]
    fn injection_needs_the_namespace_label_and_respects_opt_out() {
        let on = json!({"metadata": {"name": "sample", "labels": {"istio-injection": "enabled"}}});
        let off = json!({"metadata": {"name": "istio-ingress"}});
        let p = sleep_pod();
        assert!(wants_injection(Some(&on), &p));
        assert!(!wants_injection(Some(&off), &p));
        assert!(!wants_injection(None, &p));
        let mut out = p.clone();
        out["metadata"]["labels"][INJECT_OPT] = json!("false");
        assert!(!wants_injection(Some(&on), &out));
        let mut out = p.clone();
        out["metadata"]["annotations"] = json!({INJECT_OPT: "false"});
        assert!(!wants_injection(Some(&on), &out));
        assert!(!wants_injection(Some(&on), &inject(p, &values())), "never twice");
    }
}
