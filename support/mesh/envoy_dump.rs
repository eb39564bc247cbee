//! An Envoy clusters dump (`GET /clusters?format=json`, message `envoy.admin.v3.Clusters`)
//! read and written the way istioctl 1.20.2 reads and writes it, so that
//! `proxy-config endpoint` prints what istioctl prints, byte for byte.
//!
//! Sources (read at the tags named, facts only, no code carried over):
//! - istio/istio 1.20.2 `istioctl/pkg/writer/envoy/clusters/clusters.go`: `Prime` runs
//!   `encoding/json.Unmarshal` on the body into `clusters.Wrapper`, whose `UnmarshalJSON`
//!   (`istioctl/pkg/util/clusters/wrapper.go`) calls `protomarshal.UnmarshalAllowUnknown`
//!   (`pkg/util/protomarshal/protomarshal.go`): the legacy `jsonpb.Unmarshaler{AllowUnknownFields: true}`.
//! - golang/protobuf v1.5.3 (istio's go.mod) `jsonpb/decode.go`: every object is read as a
//!   Go map (a repeated key: the last one wins); each field is looked up by its proto name,
//!   then by its JSON (lowerCamelCase) name, which wins when both are there; `null` leaves a
//!   field unset; unknown keys are dropped; integers and doubles may be quoted (`trimQuote`);
//!   an enum is its exact name in quotes or a number; 64-bit integers are quoted on output.
//! - golang/protobuf v1.5.3 `jsonpb/encode.go`: fields in declaration order, JSON names,
//!   unpopulated fields left out (proto3 zero scalars, empty lists, unset messages; a set
//!   oneof member is written even when zero), enums by name (a number when unknown), 64-bit
//!   integers as quoted decimals, NaN/Infinity as strings, other scalars via `encoding/json`.
//! - envoyproxy/go-control-plane v0.11.2-0.20231019082134-6e4589f570e1 (istio's go.mod):
//!   the field lists below, from `envoy/admin/v3/clusters.pb.go`, `envoy/admin/v3/metrics.pb.go`,
//!   `envoy/config/core/v3/{address,base,health_check}.pb.go`, `envoy/type/v3/percent.pb.go`,
//!   `envoy/config/cluster/v3/circuit_breaker.pb.go`.

use std::fmt;

/// Why a body is not a clusters dump, said once, with where in the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error(
        "a JSON list, not Envoy's {{\"cluster_statuses\": [...]}} object (istioctl's own -o json output is not a dump: istioctl rejects it too)"
    )]
    List,
    #[error("no cluster_statuses (nor clusterStatuses) in the object (keys: {0}): not an Envoy clusters dump")]
    NotClusters(String),
    #[error("{path}: {problem}")]
    Field { path: String, problem: String },
}

// ---------------------------------------------------------------------------------------
// JSON as Go's encoding/json reads it: strict grammar, one value with white space around,
// invalid UTF-8 inside strings replaced rune by rune with U+FFFD, numbers kept as text.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number's text as written.
    Num(String),
    /// The decoded string and its text between the quotes as written.
    Str(String, String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(..) => "a string",
            Json::Arr(_) => "a list",
            Json::Obj(_) => "an object",
        }
    }

    /// The value of a key; a repeated key gives the last value, as a Go map does.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

pub(crate) fn parse_json(text: &[u8]) -> Result<Json, String> {
    let mut p = Parser { s: text, i: 0, depth: 0 };
    p.ws();
    if p.i == p.s.len() {
        return Err("the body is empty".into());
    }
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("data after the top-level value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("{what} at line {line} column {col}")
    }

    fn ws(&mut self) {
        // Go's JSON white space: space, tab, CR, LF (no BOM).
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Json, String> {
        // Deep nesting is refused rather than overflowing the stack (Go allows 10000 levels).
        if self.depth > 512 {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of JSON input")),
            Some(b'{') => {
                self.i += 1;
                self.depth += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    let (key, _) = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("expected ':' after an object key"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value()?;
                    members.push((key, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => return Err(self.err("expected ',' or '}' in an object")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.depth += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    self.ws();
                    items.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            self.depth -= 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(self.err("expected ',' or ']' in a list")),
                    }
                }
            }
            Some(b'"') => {
                let (s, raw) = self.string()?;
                Ok(Json::Str(s, raw))
            }
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(c) => Err(self.err(&format!("invalid character {:?}", c as char))),
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(Json::Num(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        let h = std::str::from_utf8(h).map_err(|_| self.err("bad \\u escape"))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(v)
    }

    /// A string: (decoded, raw text between the quotes).
    fn string(&mut self) -> Result<(String, String), String> {
        self.i += 1;
        let start = self.i;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else { return Err(self.err("unterminated string")) };
            match c {
                b'"' => {
                    let raw = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.i += 1;
                    return Ok((out, raw));
                }
                0..=0x1f => return Err(self.err("control character in a string")),
                b'\\' => {
                    self.i += 1;
                    let e = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u) && self.s[self.i..].starts_with(b"\\u") {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let c = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                    continue;
                                }
                                // Not a pair: Go writes U+FFFD and reads the second escape on its own.
                                self.i = save;
                                out.push('\u{FFFD}');
                                continue;
                            }
                            out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.err("invalid escape in a string")),
                    }
                }
                0x20..=0x7f => {
                    out.push(c as char);
                    self.i += 1;
                }
                _ => {
                    // Go decodes rune by rune: each byte that starts no valid rune is one U+FFFD.
                    let width = match c {
                        0xC2..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF4 => 4,
                        _ => 1,
                    };
                    match self.s.get(self.i..self.i + width).and_then(|b| std::str::from_utf8(b).ok()) {
                        Some(s) if width > 1 => {
                            out.push_str(s);
                            self.i += width;
                        }
                        _ => {
                            out.push('\u{FFFD}');
                            self.i += 1;
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The messages of a clusters dump (go-control-plane at istio 1.20.2's pin), fields in
// declaration order (the order jsonpb writes them), with their proto and JSON names.

#[derive(Debug)]
pub enum Kind {
    Bool,
    U32,
    U64,
    F64,
    Str,
    Enum(&'static [(&'static str, i32)]),
    Msg(&'static MsgDesc),
    /// google.protobuf.UInt32Value: written as its bare value.
    U32Wrapper,
}

#[derive(Debug)]
pub struct FieldDesc {
    pub name: &'static str,
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
    /// Members of one oneof share its name: setting one clears the others.
    pub oneof: Option<&'static str>,
}

#[derive(Debug)]
pub struct MsgDesc {
    pub name: &'static str,
    pub fields: &'static [FieldDesc],
}

const fn f(name: &'static str, json: &'static str, kind: Kind) -> FieldDesc {
    FieldDesc { name, json, kind, repeated: false, oneof: None }
}
const fn rep(name: &'static str, json: &'static str, kind: Kind) -> FieldDesc {
    FieldDesc { name, json, kind, repeated: true, oneof: None }
}
const fn one(name: &'static str, json: &'static str, kind: Kind, oneof: &'static str) -> FieldDesc {
    FieldDesc { name, json, kind, repeated: false, oneof: Some(oneof) }
}

/// envoy.config.core.v3.HealthStatus (health_check.pb.go `HealthStatus_name`).
pub const HEALTH_STATUS: &[(&str, i32)] =
    &[("UNKNOWN", 0), ("HEALTHY", 1), ("UNHEALTHY", 2), ("DRAINING", 3), ("TIMEOUT", 4), ("DEGRADED", 5)];
const METRIC_TYPE: &[(&str, i32)] = &[("COUNTER", 0), ("GAUGE", 1)];
const PROTOCOL: &[(&str, i32)] = &[("TCP", 0), ("UDP", 1)];
const ROUTING_PRIORITY: &[(&str, i32)] = &[("DEFAULT", 0), ("HIGH", 1)];

pub static CLUSTERS: MsgDesc = MsgDesc {
    name: "envoy.admin.v3.Clusters",
    fields: &[rep("cluster_statuses", "clusterStatuses", Kind::Msg(&CLUSTER_STATUS))],
};
pub static CLUSTER_STATUS: MsgDesc = MsgDesc {
    name: "envoy.admin.v3.ClusterStatus",
    fields: &[
        f("name", "name", Kind::Str),
        f("added_via_api", "addedViaApi", Kind::Bool),
        f("success_rate_ejection_threshold", "successRateEjectionThreshold", Kind::Msg(&PERCENT)),
        rep("host_statuses", "hostStatuses", Kind::Msg(&HOST_STATUS)),
        f(
            "local_origin_success_rate_ejection_threshold",
            "localOriginSuccessRateEjectionThreshold",
            Kind::Msg(&PERCENT),
        ),
        f("circuit_breakers", "circuitBreakers", Kind::Msg(&CIRCUIT_BREAKERS)),
        f("observability_name", "observabilityName", Kind::Str),
        f("eds_service_name", "edsServiceName", Kind::Str),
    ],
};
pub static HOST_STATUS: MsgDesc = MsgDesc {
    name: "envoy.admin.v3.HostStatus",
    fields: &[
        f("address", "address", Kind::Msg(&ADDRESS)),
        rep("stats", "stats", Kind::Msg(&SIMPLE_METRIC)),
        f("health_status", "healthStatus", Kind::Msg(&HOST_HEALTH_STATUS)),
        f("success_rate", "successRate", Kind::Msg(&PERCENT)),
        f("weight", "weight", Kind::U32),
        f("hostname", "hostname", Kind::Str),
        f("priority", "priority", Kind::U32),
        f("local_origin_success_rate", "localOriginSuccessRate", Kind::Msg(&PERCENT)),
        f("locality", "locality", Kind::Msg(&LOCALITY)),
    ],
};
pub static HOST_HEALTH_STATUS: MsgDesc = MsgDesc {
    name: "envoy.admin.v3.HostHealthStatus",
    // eds_health_status (field 3) is declared last.
    fields: &[
        f("failed_active_health_check", "failedActiveHealthCheck", Kind::Bool),
        f("failed_outlier_check", "failedOutlierCheck", Kind::Bool),
        f("failed_active_degraded_check", "failedActiveDegradedCheck", Kind::Bool),
        f("pending_dynamic_removal", "pendingDynamicRemoval", Kind::Bool),
        f("pending_active_hc", "pendingActiveHc", Kind::Bool),
        f("excluded_via_immediate_hc_fail", "excludedViaImmediateHcFail", Kind::Bool),
        f("active_hc_timeout", "activeHcTimeout", Kind::Bool),
        f("eds_health_status", "edsHealthStatus", Kind::Enum(HEALTH_STATUS)),
    ],
};
pub static SIMPLE_METRIC: MsgDesc = MsgDesc {
    name: "envoy.admin.v3.SimpleMetric",
    fields: &[f("type", "type", Kind::Enum(METRIC_TYPE)), f("value", "value", Kind::U64), f("name", "name", Kind::Str)],
};
pub static PERCENT: MsgDesc = MsgDesc { name: "envoy.type.v3.Percent", fields: &[f("value", "value", Kind::F64)] };
pub static ADDRESS: MsgDesc = MsgDesc {
    name: "envoy.config.core.v3.Address",
    fields: &[
        one("socket_address", "socketAddress", Kind::Msg(&SOCKET_ADDRESS), "address"),
        one("pipe", "pipe", Kind::Msg(&PIPE), "address"),
        one("envoy_internal_address", "envoyInternalAddress", Kind::Msg(&INTERNAL_ADDRESS), "address"),
    ],
};
pub static SOCKET_ADDRESS: MsgDesc = MsgDesc {
    name: "envoy.config.core.v3.SocketAddress",
    fields: &[
        f("protocol", "protocol", Kind::Enum(PROTOCOL)),
        f("address", "address", Kind::Str),
        one("port_value", "portValue", Kind::U32, "port_specifier"),
        one("named_port", "namedPort", Kind::Str, "port_specifier"),
        f("resolver_name", "resolverName", Kind::Str),
        f("ipv4_compat", "ipv4Compat", Kind::Bool),
    ],
};
pub static PIPE: MsgDesc = MsgDesc {
    name: "envoy.config.core.v3.Pipe",
    fields: &[f("path", "path", Kind::Str), f("mode", "mode", Kind::U32)],
};
pub static INTERNAL_ADDRESS: MsgDesc = MsgDesc {
    name: "envoy.config.core.v3.EnvoyInternalAddress",
    fields: &[
        one("server_listener_name", "serverListenerName", Kind::Str, "address_name_specifier"),
        f("endpoint_id", "endpointId", Kind::Str),
    ],
};
pub static LOCALITY: MsgDesc = MsgDesc {
    name: "envoy.config.core.v3.Locality",
    fields: &[f("region", "region", Kind::Str), f("zone", "zone", Kind::Str), f("sub_zone", "subZone", Kind::Str)],
};
pub static CIRCUIT_BREAKERS: MsgDesc = MsgDesc {
    name: "envoy.config.cluster.v3.CircuitBreakers",
    fields: &[
        rep("thresholds", "thresholds", Kind::Msg(&THRESHOLDS)),
        rep("per_host_thresholds", "perHostThresholds", Kind::Msg(&THRESHOLDS)),
    ],
};
pub static THRESHOLDS: MsgDesc = MsgDesc {
    name: "envoy.config.cluster.v3.CircuitBreakers.Thresholds",
    // retry_budget (8) is declared before track_remaining (6) and max_connection_pools (7).
    fields: &[
        f("priority", "priority", Kind::Enum(ROUTING_PRIORITY)),
        f("max_connections", "maxConnections", Kind::U32Wrapper),
        f("max_pending_requests", "maxPendingRequests", Kind::U32Wrapper),
        f("max_requests", "maxRequests", Kind::U32Wrapper),
        f("max_retries", "maxRetries", Kind::U32Wrapper),
        f("retry_budget", "retryBudget", Kind::Msg(&RETRY_BUDGET)),
        f("track_remaining", "trackRemaining", Kind::Bool),
        f("max_connection_pools", "maxConnectionPools", Kind::U32Wrapper),
    ],
};
pub static RETRY_BUDGET: MsgDesc = MsgDesc {
    name: "envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget",
    fields: &[
        f("budget_percent", "budgetPercent", Kind::Msg(&PERCENT)),
        f("min_retry_concurrency", "minRetryConcurrency", Kind::U32Wrapper),
    ],
};

/// A field's value once read.
#[derive(Debug, Clone)]
pub enum Val {
    Bool(bool),
    U32(u32),
    U64(u64),
    F64(f64),
    Str(String),
    Enum(i32),
    Msg(Msg),
    /// A present UInt32Value wrapper.
    Wrapped(u32),
    List(Vec<Val>),
}

/// A message: one slot per declared field, `None` when unpopulated.
#[derive(Debug, Clone)]
pub struct Msg {
    pub desc: &'static MsgDesc,
    vals: Vec<Option<Val>>,
}

impl Msg {
    fn new(desc: &'static MsgDesc) -> Msg {
        Msg { desc, vals: vec![None; desc.fields.len()] }
    }

    /// A populated field, by proto name.
    pub fn get(&self, name: &str) -> Option<&Val> {
        let i = self.desc.fields.iter().position(|f| f.name == name)?;
        self.vals[i].as_ref()
    }

    pub fn msg(&self, name: &str) -> Option<&Msg> {
        match self.get(name) {
            Some(Val::Msg(m)) => Some(m),
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> &str {
        match self.get(name) {
            Some(Val::Str(s)) => s,
            _ => "",
        }
    }

    pub fn list(&self, name: &str) -> &[Val] {
        match self.get(name) {
            Some(Val::List(l)) => l,
            _ => &[],
        }
    }

    /// Sets a field as protobuf-go's `Message.Set` does: a proto3 zero scalar outside a
    /// oneof and an empty list leave the field unpopulated; a oneof member clears the others.
    fn set(&mut self, i: usize, v: Val) {
        let fd = &self.desc.fields[i];
        if let Some(group) = fd.oneof {
            for (j, other) in self.desc.fields.iter().enumerate() {
                if other.oneof == Some(group) {
                    self.vals[j] = None;
                }
            }
            self.vals[i] = Some(v);
            return;
        }
        let zero = match &v {
            Val::Bool(b) => !b,
            Val::U32(n) => *n == 0,
            Val::U64(n) => *n == 0,
            // protobuf-go tests a double's bits: -0.0 is populated.
            Val::F64(x) => x.to_bits() == 0,
            Val::Str(s) => s.is_empty(),
            Val::Enum(n) => *n == 0,
            Val::List(l) => l.is_empty(),
            Val::Msg(_) | Val::Wrapped(_) => false,
        };
        self.vals[i] = if zero { None } else { Some(v) };
    }
}

/// Reads a clusters dump: the body istioctl's `-f FILE` and the admin endpoint give.
pub fn read(body: &[u8]) -> Result<Msg, DumpError> {
    let json = parse_json(body).map_err(DumpError::NotJson)?;
    match &json {
        Json::Arr(_) => return Err(DumpError::List),
        Json::Obj(members) => {
            // Stricter than istioctl, which reads any object (a config_dump too) as no
            // clusters: an object with keys but no cluster list is named for what it is not.
            // `{}` stays valid: Envoy omits an empty list.
            if !members.is_empty() && json.get("cluster_statuses").is_none() && json.get("clusterStatuses").is_none() {
                let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                keys.dedup();
                keys.truncate(5);
                return Err(DumpError::NotClusters(keys.join(", ")));
            }
        }
        other => {
            return Err(DumpError::Field {
                path: "the body".into(),
                problem: format!("{} is not an object", other.kind()),
            })
        }
    }
    message(&CLUSTERS, &json, "")
}

fn field_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn problem(path: &str, problem: impl fmt::Display) -> DumpError {
    DumpError::Field { path: path.to_string(), problem: problem.to_string() }
}

fn message(desc: &'static MsgDesc, json: &Json, path: &str) -> Result<Msg, DumpError> {
    let mut m = Msg::new(desc);
    match json {
        Json::Null => return Ok(m),
        Json::Obj(_) => {}
        other => {
            let at = if path.is_empty() { "the body" } else { path };
            return Err(problem(at, format!("expected an object ({}), found {}", desc.name, other.kind())));
        }
    }
    for (i, fd) in desc.fields.iter().enumerate() {
        // The JSON name is looked up second and wins, as in jsonpb.
        let raw = json.get(fd.json).or_else(|| json.get(fd.name));
        let Some(raw) = raw else { continue };
        if *raw == Json::Null {
            continue;
        }
        let p = field_path(path, fd.name);
        let v = if fd.repeated {
            let Json::Arr(items) = raw else {
                return Err(problem(&p, format!("expected a list, found {}", raw.kind())));
            };
            let mut out = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                out.push(singular(fd, item, &format!("{p}[{k}]"))?);
            }
            Val::List(out)
        } else {
            singular(fd, raw, &p)?
        };
        m.set(i, v);
    }
    Ok(m)
}

/// jsonpb's `trimQuote` then `json.Unmarshal` of what is left: the number inside.
fn quoted_number(raw: &Json, path: &str) -> Result<Option<String>, DumpError> {
    match raw {
        Json::Num(n) => Ok(Some(n.clone())),
        Json::Null => Ok(None),
        Json::Str(_, inner) => match parse_json(inner.as_bytes()) {
            Ok(Json::Num(n)) => Ok(Some(n)),
            Ok(Json::Null) => Ok(None),
            Ok(other) => Err(problem(path, format!("expected a number, found {} in quotes", other.kind()))),
            Err(_) => Err(problem(path, format!("expected a number, found the string {inner:?}"))),
        },
        other => Err(problem(path, format!("expected a number, found {}", other.kind()))),
    }
}

fn unsigned(raw: &Json, path: &str, max: u64) -> Result<u64, DumpError> {
    let Some(n) = quoted_number(raw, path)? else { return Ok(0) };
    // encoding/json reads an unsigned integer with ParseUint: no sign, fraction or exponent.
    match n.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(problem(path, format!("{n} is not an unsigned integer of at most {max}"))),
    }
}

fn singular(fd: &FieldDesc, raw: &Json, path: &str) -> Result<Val, DumpError> {
    Ok(match &fd.kind {
        Kind::Bool => match raw {
            Json::Bool(b) => Val::Bool(*b),
            Json::Null => Val::Bool(false),
            other => return Err(problem(path, format!("expected true or false, found {}", other.kind()))),
        },
        Kind::Str => match raw {
            Json::Str(s, _) => Val::Str(s.clone()),
            Json::Null => Val::Str(String::new()),
            other => return Err(problem(path, format!("expected a string, found {}", other.kind()))),
        },
        Kind::U32 => Val::U32(unsigned(raw, path, u32::MAX as u64)? as u32),
        Kind::U64 => Val::U64(unsigned(raw, path, u64::MAX)?),
        Kind::U32Wrapper => match raw {
            Json::Null => Val::Wrapped(0),
            _ => Val::Wrapped(unsigned(raw, path, u32::MAX as u64)? as u32),
        },
        Kind::F64 => {
            if let Json::Str(_, inner) = raw {
                match inner.as_str() {
                    "NaN" => return Ok(Val::F64(f64::NAN)),
                    "Infinity" => return Ok(Val::F64(f64::INFINITY)),
                    "-Infinity" => return Ok(Val::F64(f64::NEG_INFINITY)),
                    _ => {}
                }
            }
            match quoted_number(raw, path)? {
                None => Val::F64(0.0),
                Some(n) => match n.parse::<f64>() {
                    Ok(x) if x.is_finite() => Val::F64(x),
                    _ => return Err(problem(path, format!("{n} is out of range for a double"))),
                },
            }
        }
        Kind::Enum(values) => match raw {
            // The name between the quotes as written, matched exactly.
            Json::Str(_, inner) => match values.iter().find(|(name, _)| name == inner) {
                Some((_, n)) => Val::Enum(*n),
                None => {
                    let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                    return Err(problem(path, format!("unknown value {inner:?} (one of {})", names.join(", "))));
                }
            },
            Json::Num(n) => match n.parse::<i32>() {
                Ok(v) => Val::Enum(v),
                Err(_) => return Err(problem(path, format!("{n} is not an enum number"))),
            },
            Json::Null => Val::Enum(0),
            other => return Err(problem(path, format!("expected an enum name or number, found {}", other.kind()))),
        },
        Kind::Msg(desc) => Val::Msg(message(desc, raw, path)?),
    })
}

// ---------------------------------------------------------------------------------------
// Output: what jsonpb writes, as a JSON tree. The texts istioctl prints are made from it by
// `go_json_indent` (JSON) and `super::goyaml` (YAML).

/// A JSON value as written: numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Obj(Vec<(String, Out)>),
    Arr(Vec<Out>),
    Str(String),
    Num(String),
    Bool(bool),
}

pub fn to_out(m: &Msg) -> Out {
    let mut members = Vec::new();
    for (fd, v) in m.desc.fields.iter().zip(&m.vals) {
        if let Some(v) = v {
            members.push((fd.json.to_string(), val_out(fd, v)));
        }
    }
    Out::Obj(members)
}

fn val_out(fd: &FieldDesc, v: &Val) -> Out {
    match v {
        Val::Bool(b) => Out::Bool(*b),
        Val::U32(n) | Val::Wrapped(n) => Out::Num(n.to_string()),
        // jsonpb writes 64-bit integers as quoted decimals.
        Val::U64(n) => Out::Str(n.to_string()),
        Val::F64(x) if x.is_nan() => Out::Str("NaN".into()),
        Val::F64(x) if x.is_infinite() => Out::Str(if *x > 0.0 { "Infinity" } else { "-Infinity" }.into()),
        Val::F64(x) => Out::Num(go_json_float(*x)),
        Val::Str(s) => Out::Str(s.clone()),
        Val::Enum(n) => match &fd.kind {
            Kind::Enum(values) => match values.iter().find(|(_, v)| v == n) {
                Some((name, _)) => Out::Str((*name).to_string()),
                None => Out::Num(n.to_string()),
            },
            _ => Out::Num(n.to_string()),
        },
        Val::Msg(m) => to_out(m),
        Val::List(items) => Out::Arr(items.iter().map(|i| val_out(fd, i)).collect()),
    }
}

/// A float64 as Go's encoding/json writes it: shortest digits, plain notation unless the
/// magnitude is under 1e-6 or from 1e21 up, then exponent notation with `e-7`, `e+21`
/// (go/src/encoding/json/encode.go `floatEncoder`).
pub fn go_json_float(x: f64) -> String {
    let abs = x.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = shortest_e(x);
        if exp < 0 {
            format!("{mantissa}e-{}", -exp)
        } else {
            format!("{mantissa}e+{exp:02}")
        }
    } else {
        format!("{x}")
    }
}

/// The shortest round-trip mantissa ("-1.5") and decimal exponent of a finite float.
pub(crate) fn shortest_e(x: f64) -> (String, i32) {
    let s = format!("{x:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    (m.to_string(), e.parse().unwrap_or(0))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, then 0x/0o/0b prefixes or a leading 0 for octal.
pub fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint(body)?;
    if neg {
        if u <= i64::MAX as u64 + 1 {
            Some((u as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (underscores already removed by the caller).
pub fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &s[2..]),
        Some("0o") => (8, &s[2..]),
        Some("0b") => (2, &s[2..]),
        _ if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A string as Go's encoding/json writes it (Go 1.21, istio 1.20.2's toolchain, HTML
/// escaping on as in `json.Marshal`): `\"`, `\\`, `\n`, `\r`, `\t`, other control
/// characters and `<`, `>`, `&`, U+2028, U+2029 as `\u00XX`-style escapes.
pub fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `json.MarshalIndent(v, "", "    ")`: four spaces a level, `": "` after keys, empty
/// lists and objects as `[]` and `{}` (go/src/encoding/json/indent.go).
pub fn go_json_indent(v: &Out) -> String {
    let mut out = String::new();
    write_indented(v, 0, &mut out);
    out
}

fn newline(depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn write_indented(v: &Out, depth: usize, out: &mut String) {
    match v {
        Out::Obj(members) if members.is_empty() => out.push_str("{}"),
        Out::Arr(items) if items.is_empty() => out.push_str("[]"),
        Out::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(depth + 1, out);
                go_json_string(k, out);
                out.push_str(": ");
                write_indented(v, depth + 1, out);
            }
            newline(depth, out);
            out.push('}');
        }
        Out::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(depth + 1, out);
                write_indented(v, depth + 1, out);
            }
            newline(depth, out);
            out.push(']');
        }
        Out::Str(s) => go_json_string(s, out),
        Out::Num(n) => out.push_str(n),
        Out::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}
