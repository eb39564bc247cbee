//! Envoy's admin API (localhost:15000) as far as the mesh's checks read it:
//! `/clusters?format=json` (snake_case, defaults omitted, what `istioctl
//! proxy-config endpoint` parses), `/clusters` as text, `/ready`,
//! `/server_info`. Reached by `pilot-agent request GET <path>` in the proxy
//! container, or by curl to localhost:15000 from inside the pod.

use serde_json::Value;

use super::istiod::xds::{ClusterLoadAssignment, LbEndpoint};

pub const ADMIN_PORT: u16 = 15000;

/// Clusters every proxy has besides the outbound ones (no EDS hosts).
const STATIC_CLUSTERS: [&str; 3] = ["BlackHoleCluster", "InboundPassthroughClusterIpv4", "PassthroughCluster"];
/// Clusters of the bootstrap (not added via the API), with their one host.
const BOOTSTRAP_CLUSTERS: [(&str, &str, u16); 2] =
    [("agent", "127.0.0.1", 15020), ("prometheus_stats", "127.0.0.1", 15000)];

fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// A JSON object of already-rendered values, in the order given.
fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", quoted(k))).collect();
    format!("{{{}}}", body.join(","))
}

fn host_json(address: &str, port: u16, weight: u32, region: &str, zone: &str) -> String {
    let mut locality = Vec::new();
    if !region.is_empty() {
        locality.push(("region", quoted(region)));
    }
    if !zone.is_empty() {
        locality.push(("zone", quoted(zone)));
    }
    object(&[
        (
            "address",
            object(&[("socket_address", object(&[("address", quoted(address)), ("port_value", port.to_string())]))]),
        ),
        ("health_status", object(&[("eds_health_status", quoted("HEALTHY"))])),
        ("weight", weight.to_string()),
        ("locality", object(&locality)),
    ])
}

fn lb_host_json(e: &LbEndpoint) -> String {
    host_json(&e.address, e.port, e.weight, &e.locality.region, &e.locality.zone)
}

/// `GET /clusters?format=json`.
pub fn clusters_json(config: &[ClusterLoadAssignment]) -> String {
    let mut clusters: Vec<(String, String)> = Vec::new();
    for c in config {
        let mut fields = vec![("name", quoted(&c.cluster_name)), ("added_via_api", "true".to_owned())];
        if !c.endpoints.is_empty() {
            let hosts: Vec<String> = c.endpoints.iter().map(lb_host_json).collect();
            fields.push(("host_statuses", format!("[{}]", hosts.join(","))));
        }
        clusters.push((c.cluster_name.clone(), object(&fields)));
    }
    for name in STATIC_CLUSTERS {
        clusters.push((name.to_owned(), object(&[("name", quoted(name)), ("added_via_api", "true".to_owned())])));
    }
    for (name, addr, port) in BOOTSTRAP_CLUSTERS {
        let host = host_json(addr, port, 1, "", "");
        clusters.push((name.to_owned(), object(&[("name", quoted(name)), ("host_statuses", format!("[{host}]"))])));
    }
    clusters.sort();
    let body: Vec<String> = clusters.into_iter().map(|(_, c)| c).collect();
    format!("{{\"cluster_statuses\":[{}]}}\n", body.join(","))
}

/// `GET /clusters`: one `cluster::host::stat::value` line per fact.
pub fn clusters_text(config: &[ClusterLoadAssignment]) -> String {
    let mut out = String::new();
    let mut line = |cluster: &str, rest: &str| {
        out.push_str(cluster);
        out.push_str("::");
        out.push_str(rest);
        out.push('\n');
    };
    for c in config {
        let name = c.cluster_name.as_str();
        line(name, "observability_name::");
        line(name, "default_priority::max_connections::4294967295");
        line(name, "added_via_api::true");
        for e in &c.endpoints {
            let host = format!("{}:{}", e.address, e.port);
            for stat in [
                "cx_active",
                "cx_connect_fail",
                "cx_total",
                "rq_active",
                "rq_error",
                "rq_success",
                "rq_timeout",
                "rq_total",
            ] {
                line(name, &format!("{host}::{stat}::0"));
            }
            line(name, &format!("{host}::hostname::"));
            line(name, &format!("{host}::health_flags::healthy"));
            line(name, &format!("{host}::weight::{}", e.weight));
            line(name, &format!("{host}::region::{}", e.locality.region));
            line(name, &format!("{host}::zone::{}", e.locality.zone));
            line(name, &format!("{host}::sub_zone::"));
            line(name, &format!("{host}::canary::false"));
            line(name, &format!("{host}::priority::0"));
            line(name, &format!("{host}::success_rate::-1"));
            line(name, &format!("{host}::local_origin_success_rate::-1"));
        }
    }
    out
}

/// Whether an admin path asks for the SDS secrets (`config_dump?resource=dynamic_active_secrets`,
/// what `istioctl proxy-config secret` reads).
pub fn is_secrets_dump(path: &str) -> bool {
    let path = path.trim().trim_matches(|c| c == '\'' || c == '"');
    let path = path.strip_prefix('/').unwrap_or(path);
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    route == "config_dump" && query.split('&').any(|kv| kv == "resource=dynamic_active_secrets")
}

/// Envoy's `config_dump?resource=dynamic_active_secrets`: Istio's two SDS secrets,
/// `default` (the workload chain, PEM, base64 as Envoy dumps bytes; the key
/// redacted as Envoy redacts it) and `ROOTCA` (the trusted root). Shape:
/// envoy admin v3 SecretsConfigDump.DynamicSecret, extensions.transport_sockets.tls.v3.Secret.
pub fn secrets_dump(chain: &[rustls::pki_types::CertificateDer<'_>], root_pem: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let pem: String = chain
        .iter()
        .map(|der| {
            let b64 = STANDARD.encode(der.as_ref());
            let lines: Vec<&str> =
                b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
        })
        .collect();
    let dynamic = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump.DynamicSecret";
    let secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let body = serde_json::json!({"configs": [
        {"@type": dynamic, "name": "default", "secret": {"@type": secret, "name": "default",
            "tls_certificate": {"certificate_chain": {"inline_bytes": STANDARD.encode(pem)},
                                "private_key": {"inline_bytes": STANDARD.encode("[redacted]")}}}},
        {"@type": dynamic, "name": "ROOTCA", "secret": {"@type": secret, "name": "ROOTCA",
            "validation_context": {"trusted_ca": {"inline_bytes": STANDARD.encode(root_pem)}}}},
    ]});
    format!("{body}\n")
}

/// An admin answer: status and body.
pub fn admin(path: &str, config: &[ClusterLoadAssignment], pod_name: &str) -> (u16, String) {
    let path = path.trim().trim_matches(|c| c == '\'' || c == '"');
    let path = path.strip_prefix('/').unwrap_or(path);
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let json = query.split('&').any(|kv| kv == "format=json");
    match route {
        "clusters" if json => (200, clusters_json(config)),
        "clusters" => (200, clusters_text(config)),
        "ready" => (200, "LIVE\n".to_owned()),
        "server_info" => (
            200,
            format!(
                "{{\"version\":\"istio-proxy 1.20.2/1.28.1-dev/Clean/RELEASE/BoringSSL\",\"state\":\"LIVE\",\"hot_restart_version\":\"disabled\",\"command_line_options\":{{\"service_node\":{}}}}}\n",
                quoted(&format!("sidecar~{pod_name}"))
            ),
        ),
        _ => (404, "invalid path. admin commands are:\n  /clusters: upstream cluster status\n  /ready: print server state, return 200 if LIVE, otherwise return 503\n  /server_info: print server version/status information\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::istiod::xds::Locality;

    fn config() -> Vec<ClusterLoadAssignment> {
        let loc = Locality { region: "us-west-2".into(), zone: "us-west-2a".into() };
        vec![ClusterLoadAssignment {
            cluster_name: "outbound|5000||helloworld.sample.svc.cluster.local".into(),
            endpoints: vec![
                LbEndpoint { address: "10.1.8.162".into(), port: 5000, weight: 3, locality: loc.clone() },
                LbEndpoint { address: "44.227.39.238".into(), port: 15443, weight: 1, locality: loc },
            ],
        }]
    }

    #[test]
    fn clusters_json_is_envoys_admin_shape() {
        let text = clusters_json(&config());
        let v: Value = serde_json::from_str(&text).unwrap();
        let statuses = v["cluster_statuses"].as_array().unwrap();
        let hw = statuses.iter().find(|c| c["name"] == "outbound|5000||helloworld.sample.svc.cluster.local").unwrap();
        assert_eq!(hw["added_via_api"], true);
        let host = &hw["host_statuses"][0];
        assert_eq!(host["address"]["socket_address"]["address"], "10.1.8.162");
        assert_eq!(host["address"]["socket_address"]["port_value"], 5000);
        assert_eq!(host["health_status"]["eds_health_status"], "HEALTHY");
        assert_eq!(host["weight"], 3);
        assert_eq!(host["locality"]["zone"], "us-west-2a");
        assert!(text.starts_with(r#"{"cluster_statuses":[{"name":"#), "field order as Envoy writes it: {text}");
        let black_hole = statuses.iter().find(|c| c["name"] == "BlackHoleCluster").unwrap();
        assert!(black_hole.get("host_statuses").is_none(), "defaults omitted");
        assert!(statuses.iter().any(|c| c["name"] == "agent" && c.get("added_via_api").is_none()));
    }

    #[test]
    fn admin_paths_take_quotes_and_slashes_and_unknown_ones_are_404() {
        for path in ["clusters?format=json", "/clusters?format=json", "'clusters?format=json'"] {
            let (status, body) = admin(path, &config(), "sleep-1");
            assert_eq!(status, 200, "{path}");
            assert!(body.contains("cluster_statuses"), "{path}");
        }
        let (_, text) = admin("clusters", &config(), "sleep-1");
        assert!(text.contains("outbound|5000||helloworld.sample.svc.cluster.local::44.227.39.238:15443::weight::1\n"));
        assert_eq!(admin("/nope", &config(), "sleep-1").0, 404);
    }
}
