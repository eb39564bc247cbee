//! Envoy's endpoint table, as `istioctl proxy-config endpoint` shows it: parsed
//! from the admin `/clusters?format=json` body (snake_case, what `pilot-agent
//! request GET clusters?format=json` prints) or istioctl's `-o json` (camelCase).

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};

/// One host of one Envoy cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointRow {
    pub address: String,
    pub port: u16,
    /// The EDS health status name (UNKNOWN when absent).
    pub status: String,
    pub outlier_failed: bool,
    pub cluster: String,
    pub weight: u32,
    pub zone: Option<String>,
}

impl EndpointRow {
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    pub fn outlier_check(&self) -> &'static str {
        if self.outlier_failed {
            "FAILED"
        } else {
            "OK"
        }
    }
}

/// The clusters of a body in either shape, with their keys in snake_case.
pub fn clusters(body: &str) -> Result<Vec<Value>> {
    let v: Value = serde_json::from_str(body.trim()).context("the Envoy clusters body is not JSON")?;
    let list = match &v {
        Value::Array(items) => items.clone(),
        Value::Object(o) => match o.get("cluster_statuses").or_else(|| o.get("clusterStatuses")) {
            Some(Value::Array(items)) => items.clone(),
            Some(_) => bail!("cluster_statuses is not a list"),
            // An Envoy without clusters omits the field.
            None if o.is_empty() => Vec::new(),
            None => bail!("no cluster_statuses in the Envoy clusters body"),
        },
        _ => bail!("the Envoy clusters body is neither an object nor a list"),
    };
    Ok(list.into_iter().map(|c| rename_keys(c, &camel_to_snake)).collect())
}

/// Every host of every cluster, sorted as istioctl sorts: address, port, cluster.
pub fn endpoint_rows(body: &str) -> Result<Vec<EndpointRow>> {
    let mut rows = Vec::new();
    for c in clusters(body)? {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        for h in c["host_statuses"].as_array().into_iter().flatten() {
            let sa = &h["address"]["socket_address"];
            let Some(address) = sa["address"].as_str() else { continue };
            let port = sa["port_value"].as_u64().unwrap_or(0);
            let health = &h["health_status"];
            rows.push(EndpointRow {
                address: address.to_string(),
                port: u16::try_from(port).with_context(|| format!("port {port} of {address} is out of range"))?,
                status: health["eds_health_status"].as_str().unwrap_or("UNKNOWN").to_string(),
                outlier_failed: health["failed_outlier_check"].as_bool().unwrap_or(false),
                cluster: name.clone(),
                weight: h["weight"].as_u64().unwrap_or(1) as u32,
                zone: h["locality"]["zone"].as_str().map(str::to_string),
            });
        }
    }
    rows.sort_by(|a, b| (&a.address, a.port, &a.cluster).cmp(&(&b.address, b.port, &b.cluster)));
    Ok(rows)
}

/// istioctl's endpoint filters.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter {
    pub address: Option<String>,
    pub cluster: Option<String>,
    pub port: Option<u16>,
    pub status: Option<String>,
}

impl EndpointFilter {
    pub fn matches(&self, r: &EndpointRow) -> bool {
        self.address.as_ref().is_none_or(|a| *a == r.address)
            && self.cluster.as_ref().is_none_or(|c| *c == r.cluster)
            && self.port.is_none_or(|p| p == r.port)
            && self.status.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(&r.status))
    }
}

/// The table istioctl prints: columns padded like its tabwriter (width of the
/// widest cell plus 5 spaces), the last column unpadded.
pub fn render_table(rows: &[EndpointRow]) -> String {
    let header = ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| [r.endpoint(), r.status.clone(), r.outlier_check().to_string(), r.cluster.clone()])
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; 4]| {
        for (i, cell) in cols.iter().enumerate() {
            if i == 3 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[i] + 5));
            }
        }
        out.push('\n');
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

/// istioctl's `-o json`: the clusters that have matching hosts, only those hosts, in camelCase.
pub fn render_json(body: &str, filter: &EndpointFilter) -> Result<String> {
    let mut out = Vec::new();
    for mut c in clusters(body)? {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        let hosts: Vec<Value> = c["host_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| {
                let sa = &h["address"]["socket_address"];
                let row = EndpointRow {
                    address: sa["address"].as_str().unwrap_or_default().to_string(),
                    port: sa["port_value"].as_u64().unwrap_or(0) as u16,
                    status: h["health_status"]["eds_health_status"].as_str().unwrap_or("UNKNOWN").to_string(),
                    outlier_failed: false,
                    cluster: name.clone(),
                    weight: 0,
                    zone: None,
                };
                filter.matches(&row)
            })
            .cloned()
            .collect();
        if hosts.is_empty() {
            continue;
        }
        c["host_statuses"] = Value::Array(hosts);
        out.push(rename_keys(c, &snake_to_camel));
    }
    Ok(serde_json::to_string_pretty(&Value::Array(out))?)
}

fn rename_keys(v: Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (f(&k), rename_keys(v, f))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| rename_keys(v, f)).collect()),
        other => other,
    }
}

fn camel_to_snake(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn snake_to_camel(k: &str) -> String {
    let mut s = String::with_capacity(k.len());
    let mut upper = false;
    for c in k.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            s.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = include_str!("../../fixtures/envoy/clusters-admin.json");
    const ISTIOCTL: &str = include_str!("../../fixtures/envoy/clusters-istioctl.json");
    const HELLO: &str = "outbound|5000||helloworld.sample.svc.cluster.local";

    #[test]
    fn admin_json_gives_sorted_rows_with_weights_and_outlier_state() {
        let rows = endpoint_rows(ADMIN).unwrap();
        let hello: Vec<_> = rows.iter().filter(|r| r.cluster == HELLO).collect();
        let endpoints: Vec<_> = hello.iter().map(|r| r.endpoint()).collect();
        assert_eq!(endpoints, ["10.1.8.162:5000", "100.21.48.49:15443", "34.209.120.99:15443", "52.36.169.59:15443"]);
        assert_eq!(hello[0].weight, 3);
        assert_eq!(hello[1].zone.as_deref(), Some("us-west-2a"));
        assert!(hello[3].outlier_failed && !hello[0].outlier_failed);
        let sleep = rows.iter().find(|r| r.cluster.contains("sleep")).unwrap();
        assert_eq!(sleep.status, "UNKNOWN");
        // A cluster without hosts (BlackHoleCluster) has no rows.
        assert!(rows.iter().all(|r| r.cluster != "BlackHoleCluster"));
    }

    #[test]
    fn istioctl_camel_case_json_parses_to_the_same_rows() {
        let rows = endpoint_rows(ISTIOCTL).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].endpoint(), "10.1.24.17:5000");
        let bad = rows.iter().find(|r| r.address == "44.227.39.238").unwrap();
        assert_eq!((bad.status.as_str(), bad.outlier_check()), ("UNHEALTHY", "FAILED"));
    }

    #[test]
    fn the_table_matches_istioctls_layout() {
        let rows: Vec<_> = endpoint_rows(ADMIN).unwrap().into_iter().filter(|r| r.cluster == HELLO).collect();
        let table = render_table(&rows);
        let lines: Vec<_> = table.lines().collect();
        // The widest endpoint, 34.209.120.99:15443, is 19 wide: its column is 24.
        assert_eq!(lines[0], "ENDPOINT                STATUS      OUTLIER CHECK     CLUSTER");
        assert_eq!(lines[1], format!("10.1.8.162:5000         HEALTHY     OK                {HELLO}"));
        assert_eq!(lines[4], format!("52.36.169.59:15443      HEALTHY     FAILED            {HELLO}"));
    }

    #[test]
    fn filters_and_json_output_keep_only_matching_hosts_in_camel_case() {
        let filter = EndpointFilter { port: Some(15443), cluster: Some(HELLO.into()), ..Default::default() };
        let rows: Vec<_> = endpoint_rows(ADMIN).unwrap().into_iter().filter(|r| filter.matches(r)).collect();
        assert_eq!(rows.len(), 3);
        let json: Value = serde_json::from_str(&render_json(ADMIN, &filter).unwrap()).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        let hosts = json[0]["hostStatuses"].as_array().unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0]["address"]["socketAddress"]["portValue"], 15443);
        // Round trip: our JSON output is istioctl's shape, which the parser reads back.
        assert_eq!(endpoint_rows(&json.to_string()).unwrap(), rows);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(endpoint_rows("not json").is_err());
        assert!(endpoint_rows("{\"something\": 1}").is_err());
        assert!(endpoint_rows("{}").unwrap().is_empty());
        assert!(endpoint_rows("{\"cluster_statuses\": 3}").is_err());
    }
}

/// Why a pod's Envoy cannot be read, said about the first thing missing:
/// the namespace, the pod, or its sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("no namespace {namespace:?} in {who}")]
    NoNamespace { namespace: String, who: String },
    #[error("no pod {pod:?} in namespace {namespace:?} ({who}); pods there: {}", list(.pods))]
    NoPod { pod: String, namespace: String, who: String, pods: Vec<String> },
    #[error("pod {namespace}/{pod} has no istio-proxy container (containers: {}): it is not in the mesh", list(.containers))]
    NoSidecar { pod: String, namespace: String, containers: Vec<String> },
    #[error(transparent)]
    Api(#[from] crate::kube::failure::ApiFailure),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Check that `namespace/pod` exists and carries an istio-proxy container.
pub async fn sidecar_pod(access: &crate::kube::KubeAccess, namespace: &str, pod: &str) -> Result<(), SidecarError> {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::Api;
    let namespaces: Api<Namespace> = Api::all(access.client.clone());
    if namespaces.get_opt(namespace).await.map_err(|e| access.failure(&e))?.is_none() {
        return Err(SidecarError::NoNamespace { namespace: namespace.into(), who: access.who.clone() });
    }
    let pods: Api<Pod> = Api::namespaced(access.client.clone(), namespace);
    let Some(found) = pods.get_opt(pod).await.map_err(|e| access.failure(&e))? else {
        let list = pods.list(&Default::default()).await.map_err(|e| access.failure(&e))?;
        let mut names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
        names.truncate(10);
        return Err(SidecarError::NoPod {
            pod: pod.into(),
            namespace: namespace.into(),
            who: access.who.clone(),
            pods: names,
        });
    };
    let spec = found.spec.unwrap_or_default();
    // A native sidecar (Istio 1.19+ with ENABLE_NATIVE_SIDECARS) is an init container.
    let all: Vec<String> =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(|c| c.name.clone()).collect();
    if all.iter().any(|c| c == "istio-proxy") {
        Ok(())
    } else {
        Err(SidecarError::NoSidecar { pod: pod.into(), namespace: namespace.into(), containers: all })
    }
}
