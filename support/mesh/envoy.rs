//! Envoy's endpoint table, as `istioctl proxy-config endpoint` (Istio 1.20.2) shows it, from
//! a clusters dump: the admin `/clusters?format=json` body that `pilot-agent request GET
//! clusters?format=json` prints in a pod, or the same body saved to a file (`--file`).
//! Both paths read the dump with `envoy_dump::read` and print with `Dump::render`.
//!
//! Every rule below is istio/istio 1.20.2 `istioctl/pkg/writer/envoy/clusters/clusters.go`
//! unless another source is named:
//! - the ENDPOINT cell (`retrieveEndpointAddress`, `retrieveEndpointPort`): a socket address
//!   is `address:port_value` (just the address when the port is 0 or a named port); a pipe
//!   is `unix://` + path; an internal address is `envoy://<server_listener_name>/<endpoint_id>`;
//!   anything else `unknown`;
//! - STATUS is `HealthStatus_name[eds_health_status]` ("" for a number with no name);
//!   OUTLIER CHECK is `FAILED` when `failed_outlier_check`, else `OK`;
//! - rows are sorted by address, then port, then cluster name (`retrieveSortedEndpointClusterSlice`);
//! - the table goes through `tabwriter.NewWriter(out, 0, 8, 5, ' ', 0)`: minwidth 0, padding 5,
//!   spaces, no flags (`PrintEndpointsSummary`);
//! - filters (`EndpointFilter.Verify`): `--address` equals the ENDPOINT address text ignoring
//!   case (`strings.EqualFold`), `--port` equals the socket port (0: no filter), `--cluster`
//!   equals the cluster name ignoring case, `--status` equals the status name ignoring case;
//! - `-o json|yaml` (`PrintEndpoints`): every cluster with at least one host that passes the
//!   filters, whole (all its hosts), as jsonpb writes it, through `json.MarshalIndent(.., "", "    ")`;
//!   yaml is `sigs.k8s.io/yaml.JSONToYAML` of that JSON; both end with `fmt.Fprintln`'s newline.

use anyhow::Result;
use serde::Serialize;

pub use super::envoy_dump::DumpError;
use super::envoy_dump::{self, Msg, Val};

/// One host of one Envoy cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointRow {
    /// The address as istioctl prints it: an IP, `unix://PATH`, `envoy://LISTENER/ID` or `unknown`.
    pub address: String,
    /// The socket address's port; 0 for other addresses and named ports.
    pub port: u32,
    /// The EDS health status name ("" for a number Envoy's enum has no name for).
    pub status: String,
    pub outlier_failed: bool,
    pub cluster: String,
    pub weight: u32,
    pub zone: Option<String>,
}

impl EndpointRow {
    /// The ENDPOINT cell: `address:port`, or the address alone when the port is 0.
    pub fn endpoint(&self) -> String {
        if self.port != 0 {
            format!("{}:{}", self.address, self.port)
        } else {
            self.address.clone()
        }
    }

    pub fn outlier_check(&self) -> &'static str {
        if self.outlier_failed {
            "FAILED"
        } else {
            "OK"
        }
    }
}

/// The output formats of `proxy-config endpoint -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Short,
    Json,
    Yaml,
}

/// istioctl's endpoint filters: an empty text or port 0 filters nothing.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter {
    pub address: String,
    pub port: u32,
    pub cluster: String,
    pub status: String,
}

impl EndpointFilter {
    pub fn matches(&self, r: &EndpointRow) -> bool {
        (self.address.is_empty() || go_equal_fold(&r.address, &self.address))
            && (self.port == 0 || r.port == self.port)
            && (self.cluster.is_empty() || go_equal_fold(&r.cluster, &self.cluster))
            && (self.status.is_empty() || go_equal_fold(&r.status, &self.status))
    }
}

/// Go's `strings.EqualFold` for the texts met here: rune by rune, equal when equal after
/// lower- or upper-casing (Unicode simple folding for all but a few exotic orbits).
fn go_equal_fold(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let same = p == q || p.to_lowercase().eq(q.to_lowercase()) || p.to_uppercase().eq(q.to_uppercase());
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A clusters dump, read as istioctl reads it.
#[derive(Clone, Debug)]
pub struct Dump(Msg);

impl Dump {
    pub fn parse(body: &[u8]) -> Result<Dump, DumpError> {
        envoy_dump::read(body).map(Dump)
    }

    fn clusters(&self) -> impl Iterator<Item = &Msg> {
        self.0.list("cluster_statuses").iter().filter_map(|v| match v {
            Val::Msg(m) => Some(m),
            _ => None,
        })
    }

    /// Every host of every cluster, sorted as istioctl sorts: address, port, cluster.
    pub fn rows(&self) -> Vec<EndpointRow> {
        let mut rows: Vec<EndpointRow> =
            self.clusters().flat_map(|c| hosts(c).map(move |h| row(h, c.str("name")))).collect();
        // Go's sort.Slice is an insertion sort (stable) up to 12 rows; above that its pdqsort
        // may order rows with equal address, port and cluster differently from this stable sort.
        rows.sort_by(|a, b| (&a.address, a.port, &a.cluster).cmp(&(&b.address, b.port, &b.cluster)));
        rows
    }

    /// Exactly what `istioctl proxy-config endpoint -f DUMP [filters] -o FORMAT` writes to stdout.
    pub fn render(&self, filter: &EndpointFilter, format: Format) -> String {
        match format {
            Format::Short => {
                let rows: Vec<EndpointRow> = self.rows().into_iter().filter(|r| filter.matches(r)).collect();
                render_table(&rows)
            }
            Format::Json | Format::Yaml => {
                let picked: Vec<envoy_dump::Out> = self
                    .clusters()
                    .filter(|c| hosts(c).any(|h| filter.matches(&row(h, c.str("name")))))
                    .map(envoy_dump::to_out)
                    .collect();
                let out = envoy_dump::Out::Arr(picked);
                let mut text = if format == Format::Json {
                    envoy_dump::go_json_indent(&out)
                } else {
                    super::goyaml::json_to_yaml(&out)
                };
                text.push('\n');
                text
            }
        }
    }
}

fn hosts(c: &Msg) -> impl Iterator<Item = &Msg> {
    c.list("host_statuses").iter().filter_map(|v| match v {
        Val::Msg(m) => Some(m),
        _ => None,
    })
}

fn row(h: &Msg, cluster: &str) -> EndpointRow {
    let address = h.msg("address");
    let socket = address.and_then(|a| a.msg("socket_address"));
    let (text, port) = if let Some(s) = socket {
        let port = match s.get("port_value") {
            Some(Val::U32(p)) => *p,
            _ => 0,
        };
        (s.str("address").to_string(), port)
    } else if let Some(p) = address.and_then(|a| a.msg("pipe")) {
        (format!("unix://{}", p.str("path")), 0)
    } else if let Some(i) = address.and_then(|a| a.msg("envoy_internal_address")) {
        match i.get("server_listener_name") {
            Some(Val::Str(l)) => (format!("envoy://{l}/{}", i.str("endpoint_id")), 0),
            _ => ("unknown".to_string(), 0),
        }
    } else {
        ("unknown".to_string(), 0)
    };
    let health = h.msg("health_status");
    let status = match health.and_then(|s| s.get("eds_health_status")) {
        Some(Val::Enum(n)) => envoy_dump::HEALTH_STATUS.iter().find(|(_, v)| v == n).map_or("", |(name, _)| name),
        _ => "UNKNOWN",
    };
    EndpointRow {
        address: text,
        port,
        status: status.to_string(),
        outlier_failed: matches!(health.and_then(|s| s.get("failed_outlier_check")), Some(Val::Bool(true))),
        cluster: cluster.to_string(),
        weight: match h.get("weight") {
            Some(Val::U32(w)) => *w,
            _ => 0,
        },
        zone: h.msg("locality").map(|l| l.str("zone").to_string()).filter(|z| !z.is_empty()),
    }
}

/// Every host of every cluster of an admin body, sorted as istioctl sorts.
pub fn endpoint_rows(body: &str) -> Result<Vec<EndpointRow>> {
    Ok(Dump::parse(body.as_bytes()).map_err(|e| anyhow::anyhow!("the Envoy clusters body is {e}"))?.rows())
}

/// The table istioctl prints for these rows (header included).
pub fn render_table(rows: &[EndpointRow]) -> String {
    let mut text = String::from("ENDPOINT\tSTATUS\tOUTLIER CHECK\tCLUSTER\n");
    for r in rows {
        text.push_str(&format!("{}\t{}\t{}\t{}\n", r.endpoint(), r.status, r.outlier_check(), r.cluster));
    }
    go_tabwriter(&text, 0, 5)
}

/// Go's `text/tabwriter` with padchar ' ' and no flags (go/src/text/tabwriter/tabwriter.go):
/// cells end at '\t' or '\v', lines at '\n' or '\f'; a column block is a run of lines with
/// a cell in that column; its width is the widest cell (in runes) plus `padding`, at least
/// `minwidth`; a line's last cell is not aligned.
pub fn go_tabwriter(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<String>> = vec![Vec::new()];
    let mut cell = String::new();
    for c in text.chars() {
        match c {
            '\t' | '\u{b}' => lines.last_mut().expect("a line").push(std::mem::take(&mut cell)),
            '\n' | '\u{c}' => {
                lines.last_mut().expect("a line").push(std::mem::take(&mut cell));
                lines.push(Vec::new());
            }
            c => cell.push(c),
        }
    }
    if !cell.is_empty() {
        lines.last_mut().expect("a line").push(cell);
    }
    let mut tw = Tab { lines, widths: Vec::new(), minwidth, padding, out: String::new() };
    let n = tw.lines.len();
    tw.format(0, n);
    tw.out
}

struct Tab {
    lines: Vec<Vec<String>>,
    widths: Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: String,
}

impl Tab {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
            // Go's loop steps past the line that ended the block.
            this += 1;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, c) in self.lines[i].iter().enumerate() {
                self.out.push_str(c);
                if let Some(w) = self.widths.get(j) {
                    let pad = w.saturating_sub(c.chars().count());
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // The last buffered line has no newline (it is the part after the final '\n').
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

#[cfg(test)]
#[path = "envoy_tests.rs"]
mod tests;

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

/// What the sidecar's Envoy admin answers at `path`, asked as istioctl asks
/// it: `pilot-agent request GET <path>` in the pod's `istio-proxy` container.
pub async fn pilot_agent_get(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    path: &str,
    within: std::time::Duration,
) -> Result<String> {
    let out = crate::kube::exec::exec(
        client,
        namespace,
        pod,
        "istio-proxy",
        &["pilot-agent", "request", "GET", path],
        within,
    )
    .await?;
    anyhow::ensure!(
        out.exit_code == 0,
        "pilot-agent in {namespace}/{pod} exited {}: {}",
        out.exit_code,
        out.stderr.trim()
    );
    Ok(out.stdout)
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
