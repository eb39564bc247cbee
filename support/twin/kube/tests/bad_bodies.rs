//! Malformed and truncated bodies (JSON, YAML, protobuf): every answer is a 4xx
//! Status naming the problem (or a success, where a mutation happens to be a
//! valid object), within a deadline, and the server keeps answering.

mod common;

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use meshspec_twin_kube::protobuf;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// One answer may take this long at most (debug build, shared cores).
const DEADLINE: Duration = Duration::from_secs(10);

struct Answer {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The answer as a Status, whichever encoding it came in.
    fn status_object(&self) -> Value {
        if self.content_type == PROTOBUF {
            protobuf::decode(&self.bytes, ("v1", "Status")).map(|d| d.object).unwrap_or(Value::Null)
        } else {
            self.json()
        }
    }
}

async fn send(client: &kube::Client, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut req = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(kube::client::Body::from(body)).expect("request");
    let call = async {
        let resp = client.send(req).await.expect("sent");
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        Answer { status, content_type, bytes }
    };
    tokio::time::timeout(DEADLINE, call)
        .await
        .unwrap_or_else(|_| panic!("{method} {uri}: no answer within {DEADLINE:?}"))
}

/// A well-formed failure: a Status whose code is the HTTP status, with a reason and a message.
fn assert_status(a: &Answer, code: u16, reason: &str, what: &str) -> String {
    let s = a.status_object();
    assert_eq!(a.status, code, "{what}: {s}");
    assert_eq!(
        (s["kind"].as_str(), s["apiVersion"].as_str(), s["status"].as_str(), s["code"].as_u64()),
        (Some("Status"), Some("v1"), Some("Failure"), Some(u64::from(code))),
        "{what}: {s}"
    );
    assert_eq!(s["reason"], reason, "{what}: {s}");
    let message = s["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{what}: {s}");
    message
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "x"}},
           "data": {"mode": "fast", "conf": "a = 1\nb = 2\n"}})
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx",
                                          "ports": [{"containerPort": 80}],
                                          "resources": {"limits": {"cpu": "500m"}}}]}}}})
}

fn proto(object: &Value) -> Vec<u8> {
    protobuf::encode(object).expect("a built-in kind").expect("encodes")
}

/// A protobuf body with the envelope written field by field: typeMeta
/// {apiVersion, kind} and raw.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2);
        let mut n = bytes.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(bytes);
    }
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, api_version.as_bytes());
    field(&mut type_meta, 2, kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    field(&mut out, 1, &type_meta);
    field(&mut out, 2, raw);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_bad_bodies_get_the_apiservers_400s() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let post = |ct: &'static str, body: Vec<u8>| {
        let client = client.clone();
        async move { send(&client, "POST", cms, &[("content-type", ct), ("accept", "application/json")], body).await }
    };
    let unrecognized = "the object provided is unrecognized (must be of type ConfigMap): ";

    // JSON
    let m = assert_status(
        &post("application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"na"#.to_vec()).await,
        400,
        "BadRequest",
        "truncated JSON",
    );
    assert!(m.starts_with(&format!("{unrecognized}couldn't get version/kind; json parse error: ")), "{m}");
    assert!(m.ends_with("({\"apiVersion\":\"v1\",\"kind\":\"Con ...)"), "the body's summary: {m}");
    let m = assert_status(&post("application/json", b"".to_vec()).await, 400, "BadRequest", "empty JSON");
    assert!(m.ends_with("(<empty>)"), "{m}");
    assert_status(&post("application/json", b"[1,2]".to_vec()).await, 400, "BadRequest", "a JSON array");
    assert_status(&post("application/json", b"\xff\xfe{}".to_vec()).await, 400, "BadRequest", "not UTF-8");

    // YAML is read (kube-apiserver's codecs offer application/yaml for create).
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: \"1\"\n";
    let a = post("application/yaml", yaml.as_bytes().to_vec()).await;
    assert_eq!((a.status, a.json()["data"]["a"].as_str()), (201, Some("1")), "{}", a.json());
    let m =
        assert_status(&post("application/yaml", b"metadata: [name: x\n".to_vec()).await, 400, "BadRequest", "bad YAML");
    assert!(m.starts_with(&format!("{unrecognized}error converting YAML to JSON: ")), "{m}");
    assert_status(&post("application/yaml", b"- a\n- b\n".to_vec()).await, 400, "BadRequest", "a YAML list");

    // Protobuf
    let good = proto(&configmap("good"));
    let a = post(PROTOBUF, good.clone()).await;
    assert_eq!((a.status, a.json()["data"]["mode"].as_str()), (201, Some("fast")), "{}", a.json());
    let mut bad_magic = good.clone();
    bad_magic[1] = b'9';
    let m = assert_status(&post(PROTOBUF, bad_magic).await, 400, "BadRequest", "bad magic");
    let expected = "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]";
    assert!(m.starts_with(&format!("{unrecognized}{expected} (6b397300")) && m.ends_with(" ...)"), "{m}");
    let m = assert_status(&post(PROTOBUF, b"k8s\0".to_vec()).await, 400, "BadRequest", "only the prefix");
    assert_eq!(m, format!("{unrecognized}empty body (6b387300)"));
    let m = assert_status(&post(PROTOBUF, Vec::new()).await, 400, "BadRequest", "empty");
    assert_eq!(m, format!("{unrecognized}empty data (<empty>)"));
    // A length varint cut in the middle.
    assert_status(&post(PROTOBUF, b"k8s\0\x0a\xff".to_vec()).await, 400, "BadRequest", "truncated varint");
    assert_status(&post(PROTOBUF, good[..good.len() - 3].to_vec()).await, 400, "BadRequest", "truncated body");
    // A Secret's bytes sent to configmaps, and a kind no group has.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "AA=="}});
    let m = assert_status(&post(PROTOBUF, proto(&secret)).await, 400, "BadRequest", "wrong kind");
    assert!(m.contains("Secret") && m.contains("ConfigMap"), "{m}");
    let raw = envelope("apps/v1", "ConfigMap", b"");
    let m = assert_status(&post(PROTOBUF, raw).await, 400, "BadRequest", "wrong apiVersion");
    assert_eq!(m, "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: no kind \"ConfigMap\" is registered for version \"v1\"");
    let m = assert_status(&post(PROTOBUF, envelope("v1", "ConfigMap", b"\x0a\x05ab")).await, 400, "BadRequest", "raw");
    assert!(m.starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: "), "{m}");

    // Custom resources are JSON only, as in Kubernetes: 415 for a protobuf body, 406 for a protobuf-only Accept.
    let gws = "/apis/networking.istio.io/v1/namespaces/default/gateways";
    let a = send(&client, "POST", gws, &[("content-type", PROTOBUF)], good.clone()).await;
    let m = assert_status(&a, 415, "UnsupportedMediaType", "protobuf to a CRD");
    assert_eq!(m, "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml");
    let a = send(&client, "GET", gws, &[("accept", PROTOBUF)], Vec::new()).await;
    assert_status(&a, 406, "NotAcceptable", "protobuf-only Accept for a CRD");
    let a =
        send(&client, "GET", gws, &[("accept", "application/vnd.kubernetes.protobuf,application/json")], Vec::new())
            .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "application/json"));

    // Errors are answered in protobuf to a client that prefers it.
    let a = send(&client, "GET", &format!("{cms}/nope"), &[("accept", PROTOBUF)], Vec::new()).await;
    assert_eq!(a.content_type, PROTOBUF);
    assert_eq!(assert_status(&a, 404, "NotFound", "a protobuf Status"), "configmaps \"nope\" not found");
    let a = send(&client, "POST", cms, &[("content-type", PROTOBUF), ("accept", PROTOBUF)], b"k8s\0".to_vec()).await;
    assert_eq!(a.content_type, PROTOBUF);
    assert_status(&a, 400, "BadRequest", "a protobuf 400");
}

/// Mutations of valid bodies: truncations, flipped, inserted and dropped bytes.
fn mutate(rng: &mut impl Rng, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    match rng.random_range(0..6) {
        0 => out.truncate(rng.random_range(0..body.len())),
        1 => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..out.len());
                out[i] = rng.random();
            }
        }
        2 => {
            let i = rng.random_range(0..=out.len());
            out.insert(i, rng.random());
        }
        3 => {
            out.remove(rng.random_range(0..out.len()));
        }
        4 => {
            // Keep the head (the prefix, the envelope's start), garble the tail.
            let keep = rng.random_range(0..out.len());
            for b in &mut out[keep..] {
                *b = rng.random();
            }
        }
        _ => {
            let i = rng.random_range(0..out.len());
            let j = rng.random_range(i..out.len());
            let slice = out[i..=j].to_vec();
            out.splice(i..i, slice);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_mutated_bodies_never_break_the_server() {
    let twin = common::start().await;
    let client = twin.kube_client("kubeconfig").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let cms = "/api/v1/namespaces/default/configmaps";
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let bases: Vec<(&str, &str, Vec<u8>)> = vec![
        (cms, PROTOBUF, proto(&configmap("m"))),
        (deploys, PROTOBUF, proto(&deployment("m"))),
        (cms, "application/json", configmap("m").to_string().into_bytes()),
        (deploys, "application/json", deployment("m").to_string().into_bytes()),
        (
            cms,
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  a: \"1\"\n".to_vec(),
        ),
    ];
    const PER_BASE: usize = 600;
    let started = Instant::now();
    let (mut failures, mut created) = (0, 0);
    for (uri, content_type, body) in &bases {
        for n in 0..PER_BASE {
            let mutated = mutate(&mut rng, body);
            // Every tenth asks for a protobuf answer (Status errors too).
            let accept =
                if n % 10 == 0 { "application/vnd.kubernetes.protobuf,application/json" } else { "application/json" };
            let a = send(&client, "POST", uri, &[("content-type", content_type), ("accept", accept)], mutated.clone())
                .await;
            let what = format!("{content_type} {} bytes {:02x?}", mutated.len(), &mutated[..mutated.len().min(48)]);
            match a.status {
                // A mutation that is still a valid object (or a valid name's duplicate).
                200 | 201 => created += 1,
                400..=499 => {
                    let s = a.status_object();
                    let reason = s["reason"].as_str().unwrap_or_default().to_string();
                    assert_status(&a, a.status, &reason, &what);
                    failures += 1;
                }
                other => panic!("{what}: answered {other}: {}", String::from_utf8_lossy(&a.bytes)),
            }
        }
    }
    let total = bases.len() * PER_BASE;
    assert_eq!(failures + created, total);
    assert!(failures > total / 2, "most mutations are refused ({failures} of {total})");
    eprintln!("{total} mutated bodies in {:?}: {failures} refused, {created} accepted", started.elapsed());
    // Still answering.
    let a = send(&client, "GET", cms, &[], Vec::new()).await;
    assert_eq!((a.status, a.json()["kind"].as_str()), (200, Some("ConfigMapList")));
}
