//! The endpoint table, JSON and YAML against outputs derived by hand from istioctl 1.20.2's
//! writer (fixtures/envoy/README.md says how), for dumps in both field-name styles.

use super::*;
use crate::mesh::envoy_dump::Out;
use crate::mesh::goyaml::json_to_yaml;

const ADMIN: &str = include_str!("../../fixtures/envoy/clusters-admin.json");
const ISTIOCTL_OUTPUT: &str = include_str!("../../fixtures/envoy/clusters-istioctl.json");
const CAMEL: &str = include_str!("../../fixtures/envoy/dump-camel.json");
const SNAKE: &str = include_str!("../../fixtures/envoy/dump-snake.json");
const ALL_TXT: &str = include_str!("../../fixtures/envoy/expected/all.txt");
const ALL_JSON: &str = include_str!("../../fixtures/envoy/expected/all.json");
const ALL_YAML: &str = include_str!("../../fixtures/envoy/expected/all.yaml");
const CO_TXT: &str = include_str!("../../fixtures/envoy/expected/cluster-connect_originate.txt");
const ADDR_JSON: &str = include_str!("../../fixtures/envoy/expected/address-44.227.39.238.json");
const NONE_TXT: &str = include_str!("../../fixtures/envoy/expected/none.txt");
const NONE_JSON: &str = include_str!("../../fixtures/envoy/expected/none.json");
const NONE_YAML: &str = include_str!("../../fixtures/envoy/expected/none.yaml");
const HELLO: &str = "outbound|5000||helloworld.sample.svc.cluster.local";

fn dump(body: &str) -> Dump {
    Dump::parse(body.as_bytes()).unwrap()
}

fn render(body: &str, filter: &EndpointFilter, format: Format) -> String {
    dump(body).render(filter, format)
}

fn none() -> EndpointFilter {
    EndpointFilter::default()
}

/// The ENDPOINT cells of the table's rows (header left out).
fn endpoints(table: &str) -> Vec<String> {
    table.lines().skip(1).map(|l| l.split_whitespace().next().unwrap_or_default().to_string()).collect()
}

#[test]
fn snake_and_camel_dumps_print_istioctls_table() {
    for body in [CAMEL, SNAKE] {
        assert_eq!(render(body, &none(), Format::Short), ALL_TXT);
    }
}

#[test]
fn snake_and_camel_dumps_print_istioctls_json() {
    for body in [CAMEL, SNAKE] {
        assert_eq!(render(body, &none(), Format::Json), ALL_JSON);
    }
}

#[test]
fn snake_and_camel_dumps_print_istioctls_yaml() {
    for body in [CAMEL, SNAKE] {
        assert_eq!(render(body, &none(), Format::Yaml), ALL_YAML);
    }
}

#[test]
fn pipe_internal_named_port_and_missing_addresses_render_as_istioctl_does() {
    let rows = dump(CAMEL).rows();
    let cells: Vec<String> = rows.iter().map(EndpointRow::endpoint).collect();
    assert!(cells.contains(&"unix:///var/run/app/app.sock".to_string()), "{cells:?}");
    assert!(cells.contains(&"envoy://connect_originate/10.1.24.17:5000".to_string()), "{cells:?}");
    // No server_listener_name: unknown. A named port: the address alone.
    assert!(cells.contains(&"unknown".to_string()) && cells.contains(&"10.1.24.18".to_string()), "{cells:?}");
    // An enum number with no name prints an empty STATUS.
    let internal = rows.iter().find(|r| r.address.starts_with("envoy://")).unwrap();
    assert_eq!(internal.status, "");
}

#[test]
fn the_address_filter_ignores_case_and_matches_the_printed_address() {
    let f = EndpointFilter { address: "UNIX:///VAR/RUN/APP/APP.SOCK".into(), ..none() };
    assert_eq!(endpoints(&render(CAMEL, &f, Format::Short)), ["unix:///var/run/app/app.sock"]);
    let f = EndpointFilter { address: "envoy://connect_originate/10.1.24.17:5000".into(), ..none() };
    assert_eq!(endpoints(&render(CAMEL, &f, Format::Short)), ["envoy://connect_originate/10.1.24.17:5000"]);
    // The address, not the ENDPOINT cell with its port.
    let f = EndpointFilter { address: "10.1.24.17:5000".into(), ..none() };
    assert_eq!(render(CAMEL, &f, Format::Short), NONE_TXT);
}

#[test]
fn the_port_filter_matches_socket_ports_only() {
    let f = EndpointFilter { port: 15443, ..none() };
    assert_eq!(endpoints(&render(SNAKE, &f, Format::Short)), ["44.227.39.238:15443"]);
    let f = EndpointFilter { port: 5000, address: "10.1.24.17".into(), ..none() };
    assert_eq!(endpoints(&render(SNAKE, &f, Format::Short)), ["10.1.24.17:5000"]);
    let f = EndpointFilter { port: 1, ..none() };
    assert_eq!(render(SNAKE, &f, Format::Short), NONE_TXT);
}

#[test]
fn the_cluster_filter_ignores_case() {
    let f = EndpointFilter { cluster: "CONNECT_ORIGINATE".into(), ..none() };
    assert_eq!(render(CAMEL, &f, Format::Short), CO_TXT);
    let f = EndpointFilter { cluster: "connect".into(), ..none() };
    assert_eq!(render(CAMEL, &f, Format::Short), NONE_TXT);
}

#[test]
fn the_status_filter_ignores_case_and_compares_names() {
    let f = EndpointFilter { status: "draining".into(), ..none() };
    assert_eq!(endpoints(&render(CAMEL, &f, Format::Short)), ["10.1.24.18"]);
    // UNKNOWN (no status) matches; the unnamed number 9 does not.
    let f = EndpointFilter { status: "Unknown".into(), ..none() };
    assert_eq!(endpoints(&render(CAMEL, &f, Format::Short)), ["unknown"]);
    let f = EndpointFilter { status: "healthy".into(), ..none() };
    assert_eq!(
        endpoints(&render(CAMEL, &f, Format::Short)),
        ["10.1.24.17:5000", "unix://./etc/istio/proxy/XDS", "unix:///var/run/app/app.sock"]
    );
}

#[test]
fn json_and_yaml_keep_whole_clusters_that_have_a_matching_host() {
    let f = EndpointFilter { address: "44.227.39.238".into(), ..none() };
    assert_eq!(render(CAMEL, &f, Format::Json), ADDR_JSON);
    let f = EndpointFilter { status: "nothing".into(), ..none() };
    assert_eq!(render(CAMEL, &f, Format::Json), NONE_JSON);
    assert_eq!(render(CAMEL, &f, Format::Yaml), NONE_YAML);
    assert_eq!(render(CAMEL, &f, Format::Short), NONE_TXT);
}

#[test]
fn the_json_name_wins_over_the_proto_name_and_a_repeated_key_over_the_first() {
    let body = r#"{"cluster_statuses": [{"name": "a", "host_statuses": [{"address": {"socket_address": {"address": "1.1.1.1"}}}]}],
                   "clusterStatuses": [{"name": "b", "name": "c", "hostStatuses": [{"address": {"socketAddress": {"address": "2.2.2.2", "port_value": 7, "portValue": 8}}}]}]}"#;
    let rows = dump(body).rows();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].endpoint(), rows[0].cluster.as_str()), ("2.2.2.2:8".to_string(), "c"));
}

#[test]
fn quoted_numbers_null_and_unknown_fields_are_read_like_jsonpb() {
    let body = r#"{"cluster_statuses": [{"name": "q", "unknown": [1, {"x": null}], "host_statuses": [
        {"address": {"socket_address": {"address": "3.3.3.3", "port_value": "80"}}, "weight": "2", "priority": null,
         "health_status": {"eds_health_status": 1, "failed_outlier_check": null}}]}]}"#;
    let rows = dump(body).rows();
    assert_eq!((rows[0].endpoint(), rows[0].weight, rows[0].status.as_str()), ("3.3.3.3:80".into(), 2, "HEALTHY"));
    assert_eq!(
        render(body, &none(), Format::Json),
        "[\n    {\n        \"name\": \"q\",\n        \"hostStatuses\": [\n            {\n                \"address\": {\n                    \"socketAddress\": {\n                        \"address\": \"3.3.3.3\",\n                        \"portValue\": 80\n                    }\n                },\n                \"healthStatus\": {\n                    \"edsHealthStatus\": \"HEALTHY\"\n                },\n                \"weight\": 2\n            }\n        ]\n    }\n]\n"
    );
}

#[test]
fn floats_are_written_as_go_writes_them() {
    let body = r#"{"cluster_statuses": [{"name": "f", "success_rate_ejection_threshold": {"value": 1234567.5},
        "local_origin_success_rate_ejection_threshold": {"value": "1e-7"},
        "host_statuses": [{"success_rate": {"value": 0.000001}, "local_origin_success_rate": {"value": 1e21}}]}]}"#;
    let json = render(body, &none(), Format::Json);
    for text in ["\"value\": 1234567.5", "\"value\": 1e-7", "\"value\": 0.000001", "\"value\": 1e+21"] {
        assert!(json.contains(text), "{text} in {json}");
    }
    let yaml = render(body, &none(), Format::Yaml);
    for text in ["value: 1.2345675e+06", "value: 1e-07", "value: 1e-06", "value: 1e+21"] {
        assert!(yaml.contains(text), "{text} in {yaml}");
    }
}

#[test]
fn an_empty_envoy_prints_the_header_only() {
    assert_eq!(render("{}", &none(), Format::Short), NONE_TXT);
    assert_eq!(render(" {\"cluster_statuses\": []}\n", &none(), Format::Json), NONE_JSON);
}

#[test]
fn bad_bodies_are_errors_that_say_where() {
    let err = |body: &str| Dump::parse(body.as_bytes()).unwrap_err().to_string();
    assert!(err("").contains("empty"), "{}", err(""));
    assert_eq!(err("not json"), "not JSON: invalid literal at line 1 column 1");
    assert_eq!(err("{\n  x"), "not JSON: expected a string key at line 2 column 3");
    assert!(err("{\"cluster_statuses\": []} x").contains("data after the top-level value"));
    assert!(err(ISTIOCTL_OUTPUT).starts_with("a JSON list"), "{}", err(ISTIOCTL_OUTPUT));
    assert!(err("{\"configs\": []}").contains("no cluster_statuses"), "{}", err("{\"configs\": []}"));
    assert!(err("null").contains("null is not an object"), "{}", err("null"));
    assert_eq!(err("{\"cluster_statuses\": 3}"), "cluster_statuses: expected a list, found a number");
    assert_eq!(
        err(r#"{"cluster_statuses": [{"host_statuses": [{"weight": -1}]}]}"#),
        "cluster_statuses[0].host_statuses[0].weight: -1 is not an unsigned integer of at most 4294967295"
    );
    assert_eq!(
        err(r#"{"cluster_statuses": [{"host_statuses": [{"address": {"socket_address": {"port_value": 4294967296}}}]}]}"#),
        "cluster_statuses[0].host_statuses[0].address.socket_address.port_value: 4294967296 is not an unsigned integer of at most 4294967295"
    );
    assert!(err(r#"{"cluster_statuses": [{"host_statuses": [{"health_status": {"eds_health_status": "healthy"}}]}]}"#)
        .contains("unknown value \"healthy\""));
    assert!(err(r#"{"cluster_statuses": [{"name": 5}]}"#).contains("cluster_statuses[0].name: expected a string"));
    assert!(err("[[[[").starts_with("a JSON list") || err("[[[[").starts_with("not JSON"));
    assert!(err(&"[".repeat(100_000)).starts_with("not JSON: nesting too deep"));
    assert!(err("{\"a\": \"\u{1}\"}").contains("control character"));
}

#[test]
fn the_admin_body_gives_sorted_rows_with_weights_and_outlier_state() {
    let rows = endpoint_rows(ADMIN).unwrap();
    let hello: Vec<_> = rows.iter().filter(|r| r.cluster == HELLO).collect();
    let cells: Vec<_> = hello.iter().map(|r| r.endpoint()).collect();
    assert_eq!(cells, ["10.1.8.162:5000", "100.21.48.49:15443", "34.209.120.99:15443", "52.36.169.59:15443"]);
    assert_eq!(hello[0].weight, 3);
    assert_eq!(hello[1].zone.as_deref(), Some("us-west-2a"));
    assert!(hello[3].outlier_failed && !hello[0].outlier_failed);
    let sleep = rows.iter().find(|r| r.cluster.contains("sleep")).unwrap();
    assert_eq!(sleep.status, "UNKNOWN");
    assert!(rows.iter().all(|r| r.cluster != "BlackHoleCluster"));
}

#[test]
fn the_admin_table_has_istioctls_layout() {
    let f = EndpointFilter { cluster: HELLO.into(), ..none() };
    let table = render(ADMIN, &f, Format::Short);
    let lines: Vec<_> = table.lines().collect();
    // The widest cell, 34.209.120.99:15443, is 19 wide: its column is 24.
    assert_eq!(lines[0], "ENDPOINT                STATUS      OUTLIER CHECK     CLUSTER");
    assert_eq!(lines[1], format!("10.1.8.162:5000         HEALTHY     OK                {HELLO}"));
    assert_eq!(lines[4], format!("52.36.169.59:15443      HEALTHY     FAILED            {HELLO}"));
    assert_eq!(lines.len(), 5);
}

#[test]
fn tabwriter_columns_are_blocks_of_lines_that_have_the_cell() {
    // A line with one cell ends the block: the next block has its own width.
    assert_eq!(go_tabwriter("aaaa\tb\nc\nd\te\n", 0, 5), "aaaa     b\nc\nd     e\n");
    // Cells are counted in runes; the last cell is never padded.
    assert_eq!(go_tabwriter("é\tx\nab\ty  \n", 0, 5), "é      x\nab     y  \n");
    // A tab inside a cluster name makes one more cell, as in Go.
    assert_eq!(go_tabwriter("A\tB\nx\ty\tz\n", 0, 5), "A     B\nx     y     z\n");
}

fn host_yaml(hostname: &str) -> String {
    json_to_yaml(&Out::Arr(vec![Out::Obj(vec![("hostname".into(), Out::Str(hostname.into()))])]))
}

#[test]
fn yaml_quotes_strings_as_go_yaml_v2_does() {
    let cases = [
        ("plain|text||x", "plain|text||x"),
        ("123", "\"123\""),
        ("yes", "\"yes\""),
        ("", "\"\""),
        ("~", "\"~\""),
        ("1:20", "\"1:20\""),
        ("2024-01-02", "\"2024-01-02\""),
        ("0x1F", "\"0x1F\""),
        ("1e3", "\"1e3\""),
        ("10.1.24.17:5000", "10.1.24.17:5000"),
        ("- x", "'- x'"),
        ("a: b", "'a: b'"),
        ("it's: x", "'it''s: x'"),
        ("a #b", "'a #b'"),
        (" lead", "' lead'"),
        ("a\tb", "\"a\\tb\""),
        ("é ok", "é ok"),
    ];
    for (s, want) in cases {
        assert_eq!(host_yaml(s), format!("- hostname: {want}\n"), "for {s:?}");
    }
    assert_eq!(host_yaml("line1\nline2"), "- hostname: |-\n    line1\n    line2\n");
}

#[test]
fn yaml_folds_long_plain_strings_after_column_80() {
    let s = vec!["word"; 20].join(" ");
    let want = format!("- hostname: {}word\n    {}word\n", "word ".repeat(13), "word ".repeat(5));
    assert_eq!(host_yaml(&s), want);
}

#[test]
fn yaml_sorts_keys_with_digit_runs_as_numbers() {
    let obj = Out::Obj(["b", "a10", "a9", "B"].iter().map(|k| (k.to_string(), Out::Bool(true))).collect());
    assert_eq!(json_to_yaml(&obj), "B: true\na9: true\na10: true\nb: true\n");
}

#[test]
fn zero_values_are_left_out_but_a_zero_oneof_port_is_kept() {
    let body = r#"{"cluster_statuses": [{"name": "z", "added_via_api": false, "host_statuses": [
        {"address": {"socket_address": {"address": "1.2.3.4", "port_value": 0, "resolver_name": ""}},
         "health_status": {"eds_health_status": "UNKNOWN", "failed_outlier_check": false},
         "weight": 0, "priority": 0, "hostname": "", "stats": []}]}]}"#;
    let want = "[\n    {\n        \"name\": \"z\",\n        \"hostStatuses\": [\n            {\n                \"address\": {\n                    \"socketAddress\": {\n                        \"address\": \"1.2.3.4\",\n                        \"portValue\": 0\n                    }\n                },\n                \"healthStatus\": {}\n            }\n        ]\n    }\n]\n";
    assert_eq!(render(body, &none(), Format::Json), want);
    // Port 0 prints no port.
    assert_eq!(endpoints(&render(body, &none(), Format::Short)), ["1.2.3.4"]);
}
