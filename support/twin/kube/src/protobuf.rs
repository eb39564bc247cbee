//! Kubernetes' protobuf wire format for the built-in kinds: the `k8s\0` envelope
//! around a `runtime.Unknown`, and the conversion between the message inside and
//! the Kubernetes JSON the store keeps.
//!
//! The messages are not written by hand: `proto/k8s-v0.32.4.binpb` is a
//! FileDescriptorSet compiled from Kubernetes' own `generated.proto` files
//! (k8s.io/api and k8s.io/apimachinery v0.32.4, see `proto/regen.sh`), read with
//! prost-reflect. One generic walker maps fields by name (the proto field names
//! are the JSON names) and knows only Kubernetes' few special types, whose JSON
//! differs from their message.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use base64::Engine as _;
use prost_reflect::prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage};
use serde_json::{Map, Number, Value};

/// The media type of Kubernetes protobuf (apimachinery runtime.ContentTypeProtobuf).
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// apimachinery v0.32.4 pkg/runtime/serializer/protobuf/protobuf.go, `protoEncodingPrefix`:
/// "k8s" then 0x00, the only encoding style defined (the rest is a runtime.Unknown).
pub const MAGIC: [u8; 4] = [0x6b, 0x38, 0x73, 0x00];

static POOL: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(&include_bytes!("../proto/k8s-v0.32.4.binpb")[..]).ok());

/// Per message, the JSON fields whose zero value Kubernetes JSON still writes
/// (pointer or non-`omitempty` Go fields); read from the Go types by `proto/regen.sh`.
static ZERO_KEPT: LazyLock<HashMap<&'static str, HashSet<&'static str>>> = LazyLock::new(|| {
    include_str!("../proto/zero-kept-v0.32.4.txt")
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.collect()))
        })
        .collect()
});

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// Why a body or an object could not be converted; the text is the inner part
/// of the 400 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// protobuf.go: `empty data` (no bytes at all) and `empty body` (only the prefix).
    Empty(&'static str),
    /// The first four bytes are not `k8s\0`.
    BadPrefix,
    /// The envelope (runtime.Unknown) does not decode.
    Envelope(String),
    /// runtime/error.go: `Object 'Kind' is missing in '...'` (and `apiVersion`).
    Missing { field: &'static str, type_meta: String },
    /// The envelope names a kind this server has no message for.
    NotRegistered { api_version: String, kind: String },
    /// The message inside (`raw`) does not decode as the kind the envelope names.
    Raw { api_version: String, kind: String, message: String },
    /// A message (or a JSON object on its way out) does not fit the schema.
    Message(String),
}

impl ProtoError {
    /// The (apiVersion, kind) the data named, where it got that far.
    pub fn data_kind(&self) -> Option<(&str, &str)> {
        match self {
            ProtoError::NotRegistered { api_version, kind } | ProtoError::Raw { api_version, kind, .. } => {
                Some((api_version, kind))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::Empty(what) => f.write_str(what),
            // Go prints the byte slice as `[107 56 115 0]`.
            ProtoError::BadPrefix => {
                f.write_str("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
            }
            ProtoError::Envelope(e) | ProtoError::Message(e) | ProtoError::Raw { message: e, .. } => f.write_str(e),
            ProtoError::Missing { field, type_meta } => write!(f, "Object '{field}' is missing in '{type_meta}'"),
            ProtoError::NotRegistered { api_version, kind } => {
                let version = api_version.rsplit('/').next().unwrap_or_default();
                write!(f, "no kind \"{kind}\" is registered for version \"{version}\"")
            }
        }
    }
}

impl std::error::Error for ProtoError {}

/// A decoded request body: the type the envelope names and the object as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub api_version: String,
    pub kind: String,
    pub object: Value,
}

fn pool() -> Option<&'static DescriptorPool> {
    POOL.as_ref()
}

/// The protobuf package of an API group's version, as Kubernetes' generated.proto
/// files declare it (`package k8s.io.api.<dir>.<version>`): the core group is
/// `core`, the four legacy unsuffixed groups keep their name, `*.k8s.io` groups
/// use their first label. Anything else (Istio's groups, CRDs) has none.
fn package(api_version: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let dir = match group {
        "" => "core",
        "apps" | "autoscaling" | "batch" | "policy" => group,
        g => g.strip_suffix(".k8s.io")?.split('.').next()?,
    };
    Some(format!("k8s.io.api.{dir}.{version}"))
}

/// The message of a top-level kind: a built-in kind, its List, or `v1` Status.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let pool = pool()?;
    // Status, like every meta kind, is written with apiVersion `v1` (metav1.Status).
    // DeleteOptions comes as `meta.k8s.io/v1` (or `v1`) from client-go.
    if matches!(kind, "Status" | "DeleteOptions") && (api_version == "v1" || api_version == "meta.k8s.io/v1") {
        return pool.get_message_by_name(&format!("{META}.{kind}"));
    }
    pool.get_message_by_name(&format!("{}.{kind}", package(api_version)?))
}

/// Whether objects of this kind have a protobuf form.
pub fn has_message(api_version: &str, kind: &str) -> bool {
    message_for(api_version, kind).is_some()
}

/// Reads a `k8s\0` body. `default` is the (apiVersion, kind) of the URL, which
/// fills a missing type in the envelope as apimachinery's `copyKindDefaults` does.
pub fn decode(body: &[u8], default: (&str, &str)) -> Result<Decoded, ProtoError> {
    let unknown_desc =
        pool().and_then(|p| p.get_message_by_name(UNKNOWN)).ok_or_else(|| ProtoError::Message("no schema".into()))?;
    match body.len() {
        0 => return Err(ProtoError::Empty("empty data")),
        n if n < MAGIC.len() || body[..MAGIC.len()] != MAGIC => return Err(ProtoError::BadPrefix),
        n if n == MAGIC.len() => return Err(ProtoError::Empty("empty body")),
        _ => {}
    }
    let unknown = DynamicMessage::decode(unknown_desc, &body[MAGIC.len()..])
        .map_err(|e| ProtoError::Envelope(format!("runtime.Unknown: {e}")))?;
    let type_meta = unknown.get_field_by_name("typeMeta").and_then(|v| v.as_message().cloned());
    let type_str = |name: &str| {
        type_meta
            .as_ref()
            .and_then(|m| m.get_field_by_name(name).and_then(|v| v.as_str().map(String::from)))
            .unwrap_or_default()
    };
    let (mut api_version, mut kind) = (type_str("apiVersion"), type_str("kind"));
    let raw = unknown.get_field_by_name("raw").and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
    // copyKindDefaults: fill what the data left out from the URL's kind.
    let (default_av, default_kind) = default;
    if kind.is_empty() {
        kind = default_kind.to_string();
    }
    if api_version.is_empty() {
        api_version = default_av.to_string();
    }
    let missing = |field| ProtoError::Missing {
        field,
        type_meta: format!("{{apiVersion:{:?}, kind:{:?}}}", type_str("apiVersion"), type_str("kind")),
    };
    if kind.is_empty() {
        return Err(missing("Kind"));
    }
    if api_version.is_empty() {
        return Err(missing("apiVersion"));
    }
    let desc = message_for(&api_version, &kind)
        .ok_or_else(|| ProtoError::NotRegistered { api_version: api_version.clone(), kind: kind.clone() })?;
    let raw_error = |message: String| ProtoError::Raw { api_version: api_version.clone(), kind: kind.clone(), message };
    let message = DynamicMessage::decode(desc, raw.as_ref()).map_err(|e| raw_error(e.to_string()))?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(api_version.clone()));
    object.insert("kind".into(), Value::String(kind.clone()));
    match message_to_json(&message).map_err(|e| raw_error(e.to_string()))? {
        Value::Object(fields) => object.extend(fields),
        _ => return Err(raw_error(format!("{kind} is not an object"))),
    }
    Ok(Decoded { api_version, kind, object: Value::Object(object) })
}

/// Writes an object (a built-in kind, its List or a Status) as a `k8s\0` body;
/// `None` when the kind has no protobuf form.
pub fn encode(object: &Value) -> Option<Result<Vec<u8>, ProtoError>> {
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    let desc = message_for(api_version, kind)?;
    Some(encode_as(object, desc, api_version, kind))
}

fn encode_as(object: &Value, desc: MessageDescriptor, api_version: &str, kind: &str) -> Result<Vec<u8>, ProtoError> {
    let raw = json_to_message(object, desc)?.encode_to_vec();
    let unknown_desc =
        pool().and_then(|p| p.get_message_by_name(UNKNOWN)).ok_or_else(|| ProtoError::Message("no schema".into()))?;
    let type_meta_desc = match unknown_desc.get_field_by_name("typeMeta").map(|f| f.kind()) {
        Some(Kind::Message(m)) => m,
        _ => return Err(ProtoError::Message("no schema".into())),
    };
    let type_meta = json_to_message(&serde_json::json!({"apiVersion": api_version, "kind": kind}), type_meta_desc)?;
    let mut unknown = DynamicMessage::new(unknown_desc);
    set(&mut unknown, "typeMeta", prost_reflect::Value::Message(type_meta))?;
    set(&mut unknown, "raw", prost_reflect::Value::Bytes(raw.into()))?;
    // Go's Unknown always writes its two string fields, empty here.
    set(&mut unknown, "contentEncoding", prost_reflect::Value::String(String::new()))?;
    set(&mut unknown, "contentType", prost_reflect::Value::String(String::new()))?;
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    Ok(out)
}

fn set(message: &mut DynamicMessage, name: &str, value: prost_reflect::Value) -> Result<(), ProtoError> {
    message.try_set_field_by_name(name, value).map_err(|e| ProtoError::Message(e.to_string()))
}

// ---- message -> JSON ----

fn message_to_json(message: &DynamicMessage) -> Result<Value, ProtoError> {
    special_to_json(message)?.map_or_else(|| plain_message_to_json(message), Ok)
}

fn plain_message_to_json(message: &DynamicMessage) -> Result<Value, ProtoError> {
    let desc = message.descriptor();
    let kept = ZERO_KEPT.get(desc.full_name());
    let mut out = Map::new();
    for (field, value) in message.fields() {
        let keep_zero = kept.is_some_and(|k| k.contains(field.name()));
        if let Some(json) = field_to_json(value, keep_zero)? {
            out.insert(field.name().to_string(), json);
        }
    }
    Ok(Value::Object(out))
}

/// A field's JSON, or `None` where Kubernetes JSON leaves it out.
fn field_to_json(value: &prost_reflect::Value, keep_zero: bool) -> Result<Option<Value>, ProtoError> {
    use prost_reflect::Value as V;
    match value {
        V::List(items) => {
            if items.is_empty() {
                return Ok(None);
            }
            let items: Result<Vec<_>, _> =
                items.iter().map(|v| single_to_json(v).map(|j| j.unwrap_or(Value::Null))).collect();
            Ok(Some(Value::Array(items?)))
        }
        V::Map(entries) => {
            if entries.is_empty() {
                return Ok(None);
            }
            let mut out = Map::new();
            for (key, v) in entries {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                out.insert(key, single_to_json(v)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Object(out)))
        }
        V::Message(_) => single_to_json(value),
        scalar => {
            let json = single_to_json(scalar)?;
            let zero = match &json {
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Bool(b)) => !b,
                Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                _ => false,
            };
            // A zero in a Go value field with `omitempty` is not written in JSON.
            Ok(if zero && !keep_zero { None } else { json })
        }
    }
}

fn single_to_json(value: &prost_reflect::Value) -> Result<Option<Value>, ProtoError> {
    use prost_reflect::Value as V;
    Ok(Some(match value {
        V::Bool(b) => Value::Bool(*b),
        V::I32(n) => Value::from(*n),
        V::I64(n) => Value::from(*n),
        V::U32(n) => Value::from(*n),
        V::U64(n) => Value::from(*n),
        V::F32(n) => Number::from_f64(f64::from(*n)).map(Value::Number).unwrap_or(Value::Null),
        V::F64(n) => Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
        V::String(s) => Value::String(s.clone()),
        // []byte is base64 in Go's JSON (Secret.data, ConfigMap.binaryData).
        V::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        V::EnumNumber(n) => Value::from(*n),
        V::Message(m) => {
            return special_to_json(m)?
                .map_or_else(|| plain_message_to_json(m).map(Some), |v| Ok(Some(v)))
                .map(|v| v.filter(|v| !v.is_null()))
        }
        V::List(_) | V::Map(_) => return Err(ProtoError::Message("nested list".into())),
    }))
}

/// The JSON of Kubernetes' special types (`Some(Null)` for a value JSON writes as
/// null, i.e. leaves out here); `None` for ordinary messages.
fn special_to_json(message: &DynamicMessage) -> Result<Option<Value>, ProtoError> {
    let int = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)));
    let string = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_str().map(String::from));
    let bytes = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_bytes().cloned()).unwrap_or_default();
    let raw_json = |name: &str| -> Result<Value, ProtoError> {
        let raw = bytes(name);
        if raw.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&raw).map_err(|e| ProtoError::Message(format!("{}: {e}", message.descriptor().name())))
    };
    let name = message.descriptor().full_name().to_string();
    Ok(Some(match name.as_str() {
        // meta/v1 time_proto.go: only seconds travel, an empty message is the zero
        // time, which time.go writes as null; JSON is RFC 3339 in UTC.
        TIME => match message.has_field_by_name("seconds") || message.has_field_by_name("nanos") {
            false => Value::Null,
            true => Value::String(
                chrono::DateTime::from_timestamp(int("seconds").unwrap_or(0), 0)
                    .ok_or_else(|| ProtoError::Message("Time: seconds out of range".into()))?
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            ),
        },
        // micro_time.go: RFC3339Micro, "2006-01-02T15:04:05.000000Z07:00", in UTC.
        MICRO_TIME => match message.has_field_by_name("seconds") || message.has_field_by_name("nanos") {
            false => Value::Null,
            true => {
                let nanos = u32::try_from(int("nanos").unwrap_or(0))
                    .ok()
                    .filter(|n| *n < 1_000_000_000)
                    .ok_or_else(|| ProtoError::Message("MicroTime: nanos out of range".into()))?;
                Value::String(
                    chrono::DateTime::from_timestamp(int("seconds").unwrap_or(0), nanos / 1000 * 1000)
                        .ok_or_else(|| ProtoError::Message("MicroTime: seconds out of range".into()))?
                        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                        .to_string(),
                )
            }
        },
        // duration.go: JSON is Go's time.Duration String().
        DURATION => Value::String(go_duration(int("duration").unwrap_or(0))),
        QUANTITY => Value::String(string("string").unwrap_or_default()),
        // intstr: type 0 is an int, 1 a string.
        INT_OR_STRING => match int("type").unwrap_or(0) {
            0 => Value::from(int("intVal").unwrap_or(0)),
            _ => Value::String(string("strVal").unwrap_or_default()),
        },
        RAW_EXTENSION => raw_json("raw")?,
        FIELDS_V1 => raw_json("Raw")?,
        // Go string slices that travel as a message with `items` (+protobuf.nullable=true).
        n if n.ends_with(".ExtraValue") || n == "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs" => {
            let items = message.get_field_by_name("items").map(|v| v.into_owned());
            match items {
                Some(prost_reflect::Value::List(items)) => {
                    Value::Array(items.iter().filter_map(|v| v.as_str().map(|s| Value::String(s.into()))).collect())
                }
                _ => Value::Array(vec![]),
            }
        }
        _ => return Ok(None),
    }))
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let frac = |value: u64, unit: u64| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let s = format!("{whole}.{rest:0digits$}");
            s.trim_end_matches('0').to_string()
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let s = frac(rest, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// Parses Go's duration syntax ("1h30m", "2.5s", "300ms").
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * unit;
    }
    let total = if neg { -total } else { total };
    (total.abs() < 9.2e18).then_some(total as i64)
}

// ---- JSON -> message ----

fn json_to_message(json: &Value, desc: MessageDescriptor) -> Result<DynamicMessage, ProtoError> {
    let name = desc.full_name().to_string();
    let mut message = DynamicMessage::new(desc.clone());
    let bad = |what: &str| ProtoError::Message(format!("{}: {what}", desc.name()));
    let int = prost_reflect::Value::I64;
    match name.as_str() {
        TIME | MICRO_TIME => {
            let s = json.as_str().ok_or_else(|| bad("expected an RFC 3339 string"))?;
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| bad(&e.to_string()))?;
            set(&mut message, "seconds", int(t.timestamp()))?;
            if name == MICRO_TIME {
                set(&mut message, "nanos", prost_reflect::Value::I32(t.timestamp_subsec_micros() as i32 * 1000))?;
            }
        }
        DURATION => {
            let s = json.as_str().ok_or_else(|| bad("expected a duration string"))?;
            set(&mut message, "duration", int(parse_go_duration(s).ok_or_else(|| bad("bad duration"))?))?;
        }
        QUANTITY => {
            let s = match json {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad("expected a string or a number")),
            };
            set(&mut message, "string", prost_reflect::Value::String(s))?;
        }
        INT_OR_STRING => match json {
            Value::Number(n) => {
                let n = n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad("out of range"))?;
                set(&mut message, "type", int(0))?;
                set(&mut message, "intVal", prost_reflect::Value::I32(n))?;
            }
            Value::String(s) => {
                set(&mut message, "type", int(1))?;
                set(&mut message, "strVal", prost_reflect::Value::String(s.clone()))?;
            }
            _ => return Err(bad("expected an int or a string")),
        },
        RAW_EXTENSION | FIELDS_V1 => {
            let field = if name == FIELDS_V1 { "Raw" } else { "raw" };
            let raw = serde_json::to_vec(json).map_err(|e| bad(&e.to_string()))?;
            set(&mut message, field, prost_reflect::Value::Bytes(raw.into()))?;
        }
        n if n.ends_with(".ExtraValue") || n.ends_with("meta.v1.Verbs") => {
            let items = json.as_array().ok_or_else(|| bad("expected a list"))?;
            let items: Option<Vec<_>> =
                items.iter().map(|v| v.as_str().map(|s| prost_reflect::Value::String(s.into()))).collect();
            set(&mut message, "items", prost_reflect::Value::List(items.ok_or_else(|| bad("expected strings"))?))?;
        }
        _ => {
            let object = json.as_object().ok_or_else(|| bad("expected an object"))?;
            for (key, value) in object {
                // Fields this schema does not know (apiVersion/kind of TypeMeta,
                // newer fields) have no place in the message.
                let Some(field) = desc.get_field_by_name(key) else { continue };
                if value.is_null() {
                    continue;
                }
                let converted = json_to_field(&field, value).map_err(|e| match e {
                    ProtoError::Message(m) => ProtoError::Message(format!("{key}: {m}")),
                    other => other,
                })?;
                set(&mut message, key, converted)?;
            }
        }
    }
    Ok(message)
}

fn json_to_field(field: &FieldDescriptor, json: &Value) -> Result<prost_reflect::Value, ProtoError> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { return Err(ProtoError::Message("map".into())) };
        let value_field = entry.map_entry_value_field();
        let object = json.as_object().ok_or_else(|| ProtoError::Message("expected an object".into()))?;
        let mut map = HashMap::new();
        for (k, v) in object {
            if v.is_null() {
                continue;
            }
            map.insert(MapKey::String(k.clone()), json_to_single(&value_field.kind(), v)?);
        }
        return Ok(prost_reflect::Value::Map(map));
    }
    if field.is_list() {
        let items = json.as_array().ok_or_else(|| ProtoError::Message("expected a list".into()))?;
        let kind = field.kind();
        let items: Result<Vec<_>, _> = items.iter().map(|v| json_to_single(&kind, v)).collect();
        return Ok(prost_reflect::Value::List(items?));
    }
    json_to_single(&field.kind(), json)
}

fn json_to_single(kind: &Kind, json: &Value) -> Result<prost_reflect::Value, ProtoError> {
    use prost_reflect::Value as V;
    let bad = |want: &str| ProtoError::Message(format!("expected {want}, got {json}"));
    let int = || json.as_i64().ok_or_else(|| bad("an integer"));
    let uint = || json.as_u64().ok_or_else(|| bad("an unsigned integer"));
    Ok(match kind {
        Kind::Message(desc) => V::Message(json_to_message(json, desc.clone())?),
        Kind::String => V::String(json.as_str().ok_or_else(|| bad("a string"))?.to_string()),
        Kind::Bytes => {
            let s = json.as_str().ok_or_else(|| bad("a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(|_| bad("base64"))?;
            V::Bytes(bytes.into())
        }
        Kind::Bool => V::Bool(json.as_bool().ok_or_else(|| bad("a boolean"))?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => V::I32(i32::try_from(int()?).map_err(|_| bad("an int32"))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => V::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => V::U32(u32::try_from(uint()?).map_err(|_| bad("a uint32"))?),
        Kind::Uint64 | Kind::Fixed64 => V::U64(uint()?),
        Kind::Double => V::F64(json.as_f64().ok_or_else(|| bad("a number"))?),
        Kind::Float => V::F32(json.as_f64().ok_or_else(|| bad("a number"))? as f32),
        Kind::Enum(_) => V::EnumNumber(i32::try_from(int()?).map_err(|_| bad("an enum"))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(object: Value) -> Value {
        let bytes = encode(&object).expect("has a message").expect("encodes");
        assert_eq!(bytes[..4], MAGIC);
        let av = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        decode(&bytes, (av, kind)).expect("decodes").object
    }

    #[test]
    fn the_schema_knows_the_catalog_kinds_and_the_rbac_kinds() {
        for (av, kind) in [
            ("v1", "Namespace"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("v1", "Pod"),
            ("v1", "Endpoints"),
            ("v1", "Event"),
            ("v1", "Node"),
            ("v1", "SecretList"),
            ("v1", "Status"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("autoscaling/v1", "Scale"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ] {
            assert!(has_message(av, kind), "{av} {kind}");
        }
        assert!(!has_message("networking.istio.io/v1", "Gateway"), "Istio's kinds are JSON only");
        assert!(!has_message("apps/v1", "Gateway"));
    }

    #[test]
    fn special_types_keep_their_kubernetes_json() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns", "creationTimestamp": "2026-11-25T18:09:48Z",
                         "labels": {"a": "b"}, "generation": 3,
                         "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:data": {"f:k": {}}}, "time": "2026-11-25T18:09:48Z"}]},
            "data": {"k": "aGVsbG8="}, "type": "Opaque", "immutable": false});
        assert_eq!(round_trip(secret.clone()), secret);
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx",
                                           "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                                           "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}});
        assert_eq!(round_trip(deploy.clone()), deploy);
        let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod"}, "eventTime": "2026-11-25T18:09:48.123456Z"});
        assert_eq!(round_trip(event.clone()), event);
    }

    #[test]
    fn zero_values_follow_go_json() {
        // replicas is *int32 (kept at 0); minReadySeconds is an omitempty int32 (dropped).
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                       "spec": {"replicas": 0, "minReadySeconds": 0, "paused": false}});
        let back = round_trip(d);
        assert_eq!(back["spec"], json!({"replicas": 0}));
    }

    #[test]
    fn envelope_errors_use_apimachinerys_words() {
        let cm = ("v1", "ConfigMap");
        assert_eq!(decode(b"", cm).unwrap_err().to_string(), "empty data");
        assert_eq!(decode(b"k8s\0", cm).unwrap_err().to_string(), "empty body");
        assert!(decode(b"{\"kind\":1}", cm).unwrap_err().to_string().contains("expected prefix [107 56 115 0]"));
        assert!(matches!(decode(b"k8s\0\x0a\xff", cm), Err(ProtoError::Envelope(_))));
    }

    #[test]
    fn a_missing_type_in_the_envelope_comes_from_the_url() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
        let raw = json_to_message(&cm, message_for("v1", "ConfigMap").unwrap()).unwrap().encode_to_vec();
        let unknown = DynamicMessage::decode(pool().unwrap().get_message_by_name(UNKNOWN).unwrap(), &[][..]).unwrap();
        let mut unknown = unknown;
        set(&mut unknown, "raw", prost_reflect::Value::Bytes(raw.into())).unwrap();
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert_eq!(decode(&body, ("v1", "ConfigMap")).unwrap().object, cm);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(3_723_500_000_000));
        assert_eq!(parse_go_duration("bad"), None);
    }
}
