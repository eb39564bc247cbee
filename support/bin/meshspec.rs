//! The meshspec command line: a thin shell over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use meshspec::provision::Provisioner;
use meshspec::run::Session;
use meshspec::runner::{self, RunOptions};
use meshspec::target::rules::{self, ProvisionerKind, TargetRequest};
use meshspec::target::{TargetKind, TargetOptions};
use meshspec::topology::Topology;

#[derive(Parser)]
#[command(name = "meshspec", version, about = "The Istio multi-primary, multi-network runbook as executable Gherkin")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the features against a target and write JUnit XML, Cucumber JSON, the HTML page and the conformance report.
    Run(RunArgs),
    /// Render a previous run's page again, and the step catalog.
    Docs(DocsArgs),
    /// What istioctl proxy-config shows, read from a pod's Envoy through exec or from a saved dump.
    ProxyConfig {
        #[command(subcommand)]
        command: ProxyConfigCommand,
    },
    /// Benchmarks (measured, never asserted).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// List the faults the twin can be provisioned with (`run --fault NAME`).
    Faults,
    /// Provision the deployment on a target (no features run): `--allow-provision` is required.
    Provision(ProvisionArgs),
    /// Tear down a deployment meshspec provisioned, in the runbook's order.
    Destroy(DestroyArgs),
    /// Remove what an interrupted run created, from its ledger.
    Reap(ReapArgs),
    /// Check tools, credentials, contexts and versions of a target before anything costs money.
    Doctor(DoctorArgs),
    /// The embedded twin.
    Twin {
        #[command(subcommand)]
        command: TwinCommand,
    },
    /// K3s clusters in Docker (the k3s target).
    K3s {
        #[command(subcommand)]
        command: K3sCommand,
    },
}

#[derive(Subcommand)]
enum K3sCommand {
    /// Build (through testcontainers, FROM scratch, nothing pulled) an image that answers at
    /// K3s' interface with one cluster of the twin, and print its name for `--k3s-image`.
    StandinImage,
    /// One twin cluster as a K3s stand-in: `k3s serve server [K3S SERVER FLAGS]` (the stand-in image's entrypoint).
    #[command(hide = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The whole suite on the twin, once: wall time, provisioning, each fault's time to
    /// diagnosis, convergence points, peak memory; next to `--baseline` if given.
    Suite {
        #[arg(long, default_value = "features")]
        features: PathBuf,
        /// Where the suite's reports go.
        #[arg(long, default_value = "target/meshspec/bench")]
        report_dir: PathBuf,
        /// A previous `--json` file to compare with.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also time `meshspec run --fault NAME` for every fault, one after the other.
        #[arg(long)]
        each_fault: bool,
    },
    /// The k3s target, once: the stand-in image, the run's wall time and provisioning, peak
    /// memory, and whether anything of it was left.
    K3s {
        #[arg(long, default_value = "features")]
        features: PathBuf,
        #[arg(long, default_value = "target/meshspec/bench-k3s")]
        report_dir: PathBuf,
        #[arg(long, value_enum, default_value = "docker")]
        runtime: meshspec::provision::k3s::K3sRuntime,
        /// An image to run instead of building the stand-in (docker runtime).
        #[arg(long)]
        k3s_image: Option<String>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The load-balancing check vs the runbook's kubectl loop, against the twin.
    LoadBalancing {
        #[arg(long, default_value_t = 100)]
        requests: usize,
        #[arg(long, env = "MESHSPEC_TIME_SCALE")]
        time_scale: Option<f64>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ProxyConfigCommand {
    /// The endpoints of a pod's Envoy, as `istioctl proxy-config endpoint` prints them.
    #[command(alias = "endpoints", alias = "ep")]
    Endpoint(EndpointArgs),
}

#[derive(Args)]
struct EndpointArgs {
    /// The pod (NAME or NAME.NAMESPACE); not with --file.
    pod: Option<String>,
    /// A saved clusters dump (`curl localhost:15000/clusters?format=json`), "-" for stdin:
    /// read it instead of a pod's Envoy, with no cluster needed (istioctl's -f/--file).
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Kube context (default: the kubeconfig's current context).
    #[arg(long)]
    context: Option<String>,
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Only endpoints of this Envoy cluster (any case), e.g. "outbound|5000||helloworld.sample.svc.cluster.local".
    #[arg(long, default_value = "", hide_default_value = true)]
    cluster: String,
    /// Only endpoints on this port (0: any). Read like istioctl's int flag: 0x.. and 0o.. too,
    /// and a value past 32 bits wraps as Go's uint32 conversion does.
    #[arg(long, default_value = "0", value_parser = go_port)]
    port: u32,
    /// Only endpoints with this address (any case): an IP, unix://PATH or envoy://LISTENER/ID.
    #[arg(long, default_value = "", hide_default_value = true)]
    address: String,
    /// Only endpoints with this health status (any case), e.g. HEALTHY.
    #[arg(long, default_value = "", hide_default_value = true)]
    status: String,
    /// Output format.
    #[arg(short = 'o', long, value_parser = ["short", "json", "yaml"], default_value = "short")]
    output: String,
}

/// istioctl's `--port` is a pflag int (`strconv.ParseInt(s, 0, 64)`) turned into `uint32(port)`
/// (istio/istio 1.20.2 istioctl/pkg/proxyconfig/proxyconfig.go `endpointConfigCmd`).
fn go_port(s: &str) -> Result<u32, String> {
    let plain = s.replace('_', "");
    meshspec::mesh::envoy_dump::go_parse_int(&plain)
        .map(|n| n as u32)
        .ok_or_else(|| format!("invalid port {s:?}: not an integer"))
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Start the twin, provision the seed deployment, write an env file, serve until interrupted.
    Up(TwinUpArgs),
    /// The twin's AWS side as a process of its own (`--twin-runtime processes`).
    #[command(hide = true)]
    ServeAws(ServeAwsArgs),
    /// One EKS cluster of the twin as a process of its own, started by `serve-aws`.
    #[command(hide = true)]
    ServeCluster(ServeClusterArgs),
}

/// The credentials of `twin serve-aws` and `twin serve-cluster` come in their
/// environment, never on the command line.
fn twin_credentials() -> Result<(String, String)> {
    use meshspec_twin::processes::{ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY};
    let id = std::env::var(ENV_ACCESS_KEY_ID).with_context(|| format!("{ENV_ACCESS_KEY_ID} is not set"))?;
    let secret = std::env::var(ENV_SECRET_ACCESS_KEY).with_context(|| format!("{ENV_SECRET_ACCESS_KEY} is not set"))?;
    Ok((id, secret))
}

#[derive(Args)]
struct ServeAwsArgs {
    #[arg(long)]
    region: String,
    #[arg(long)]
    account_id: String,
    #[arg(long)]
    time_scale: f64,
    #[arg(long)]
    istio_version: String,
    #[arg(long, default_value_t = 0.0)]
    aws_fault_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    kube_fault_rate: f64,
    /// 127.A.B: where the clusters (127.A.B.10+) and the NLBs (127.A.B+1.0/24) listen.
    #[arg(long)]
    base: std::net::Ipv4Addr,
    #[arg(long)]
    log_dir: PathBuf,
}

#[derive(Args)]
struct ServeClusterArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    version: String,
    #[arg(long)]
    vpc_id: String,
    #[arg(long)]
    region: String,
    #[arg(long)]
    aws_endpoint: String,
    #[arg(long)]
    dns: std::net::SocketAddr,
    #[arg(long)]
    address: std::net::Ipv4Addr,
    #[arg(long)]
    time_scale: f64,
    #[arg(long)]
    istio_version: String,
    #[arg(long, default_value_t = 0.0)]
    kube_fault_rate: f64,
}

async fn serve_aws(args: ServeAwsArgs) -> Result<ExitCode> {
    let (access_key_id, secret_access_key) = twin_credentials()?;
    let me = std::env::current_exe().context("cannot find this binary to start the clusters with")?;
    let [a, b, c, _] = args.base.octets();
    let opts = meshspec_twin::processes::aws_host::AwsHostOptions {
        region: args.region,
        account_id: args.account_id,
        access_key_id,
        secret_access_key,
        time_scale: args.time_scale,
        istio_version: args.istio_version,
        aws_fault_rate: args.aws_fault_rate,
        kube_fault_rate: args.kube_fault_rate,
        base: [a, b, c],
        cluster_command: vec![me.display().to_string(), "twin".into(), "serve-cluster".into()],
        log_dir: args.log_dir,
    };
    let code = meshspec_twin::processes::aws_host::serve(opts).await;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

async fn serve_cluster(args: ServeClusterArgs) -> Result<ExitCode> {
    let (access_key_id, secret_access_key) = twin_credentials()?;
    let opts = meshspec_twin::processes::cluster_host::ClusterHostOptions {
        name: args.name,
        version: args.version,
        vpc_id: args.vpc_id,
        region: args.region,
        aws_endpoint: args.aws_endpoint,
        access_key_id,
        secret_access_key,
        dns: args.dns,
        address: args.address,
        time_scale: args.time_scale,
        istio_version: args.istio_version,
        kube_fault_rate: args.kube_fault_rate,
    };
    let code = meshspec_twin::processes::cluster_host::serve(opts).await;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

#[derive(Args, Clone)]
struct TargetArgs {
    /// Where the features run.
    #[arg(long, value_enum, default_value_t = TargetKind::Twin)]
    target: TargetKind,
    /// Topology file (default: the seed topology in fixtures/topology.yaml).
    #[arg(long, env = "MESHSPEC_TOPOLOGY")]
    topology: Option<PathBuf>,
    /// A fixtures directory to use instead of the built-in one.
    #[arg(long, env = "MESHSPEC_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kube context of a cluster, as CLUSTER=CONTEXT (repeatable). CTX_CLUSTER1 / CTX_CLUSTER2
    /// name the contexts of the first and second cluster on the eks target.
    #[arg(long = "context", value_name = "CLUSTER=CONTEXT")]
    contexts: Vec<String>,
    /// Twin time compression: simulated seconds per wall-clock second.
    #[arg(long, env = "MESHSPEC_TIME_SCALE")]
    time_scale: Option<f64>,
    /// Multiply every deadline (e.g. 0.5 to fail faster).
    #[arg(long, default_value_t = 1.0)]
    timeout_scale: f64,
    /// Provision the twin with a named misconfiguration (see `meshspec faults`).
    #[arg(long)]
    fault: Option<String>,
    /// The twin's Kubernetes and AWS APIs throttle, fail, slow down or cut this
    /// share of requests, as real services do under load: 0.05, or kube=1,aws=0.05.
    #[arg(long, value_name = "RATES")]
    api_faults: Option<meshspec::api_faults::ApiFaultRates>,
    /// Let meshspec create and delete resources on an eks target: the names of
    /// every cluster of the topology, comma-separated (e.g. eks-1,eks-2).
    #[arg(long, value_name = "CLUSTERS")]
    allow_provision: Option<String>,
    /// Where run ledgers are written (default: $MESHSPEC_LEDGER_DIR or the temp dir's meshspec-ledger).
    #[arg(long)]
    ledger_dir: Option<PathBuf>,
    /// How a target is provisioned: `terraform` (eks: the user's Terraform, staged) or `api`
    /// (the twin's and kind's default: meshspec's own calls; refused on eks).
    #[arg(long, value_enum)]
    provisioner: Option<ProvisionerKind>,
    /// The Terraform root module the eks provisioner applies in stages.
    #[arg(long, env = "MESHSPEC_TERRAFORM_DIR", value_name = "DIR")]
    terraform_dir: Option<PathBuf>,
    /// The Terraform binary (e.g. tofu).
    #[arg(long, env = "MESHSPEC_TERRAFORM", default_value = "terraform")]
    terraform_bin: String,
    /// A -var-file for every Terraform run (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    var_files: Vec<PathBuf>,
    /// The k3s target's image (NAME[:TAG]): K3s as testcontainers-modules pins it, or a local
    /// image such as `meshspec k3s standin-image` prints.
    #[arg(long, env = "MESHSPEC_K3S_IMAGE", default_value = meshspec::containers::k3s::DEFAULT_IMAGE)]
    k3s_image: String,
    /// Where the k3s target's clusters run: `docker` (containers of --k3s-image) or
    /// `processes` (the stand-in as local processes on loopback addresses; no Docker).
    #[arg(long, value_enum, default_value = "docker")]
    k3s_runtime: meshspec::provision::k3s::K3sRuntime,
    /// Where the twin target's twin runs: `in-process`, or `processes` (AWS in one process,
    /// each EKS cluster in its own on a loopback address: everything between them crosses TCP).
    #[arg(long, value_enum, default_value = "in-process")]
    twin_runtime: meshspec::target::twin::TwinRuntime,
    /// A directory with the mesh's root CA, `root-cert.pem` and `root-key.pem`, as Istio's
    /// tools/certs Makefile writes them: provisioning issues each cluster's intermediate from
    /// it, and the same-root CA rotation (@root-key) a new one. Needed for that rotation when
    /// meshspec did not make cacerts itself (Terraform made them).
    #[arg(long, value_name = "DIR", env = "MESHSPEC_MESH_ROOT_CA")]
    mesh_root_ca: Option<PathBuf>,
    /// The stage plan: a file, or a name under fixtures/ (default stages.yaml).
    #[arg(long, env = "MESHSPEC_PLAN")]
    plan: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Tag expression selecting scenarios, e.g. "@readiness".
    #[arg(long)]
    tags: Option<String>,
    /// Where reports go.
    #[arg(long, default_value = "target/meshspec")]
    report_dir: PathBuf,
    /// The features directory (or one .feature file).
    #[arg(long, default_value = "features")]
    features: PathBuf,
    /// Tear down what the run provisioned once the features ran (kind clusters; eks in the
    /// runbook's destroy order), whatever their outcome.
    #[arg(long)]
    teardown: bool,
    /// Append this run's line to this trend file (default: $MESHSPEC_TREND, else REPORT_DIR/trend.jsonl).
    #[arg(long, value_name = "FILE")]
    trend: Option<PathBuf>,
}

#[derive(Args)]
struct ProvisionArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Where to write the kubeconfig of the provisioned clusters (eks), like `aws eks update-kubeconfig`.
    #[arg(long, default_value = "meshspec.kubeconfig")]
    kubeconfig_out: PathBuf,
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct DestroyArgs {
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
struct DocsArgs {
    /// A previous run's report directory, or its cucumber.json (run.json beside it is used when there).
    #[arg(long, default_value = "target/meshspec")]
    from: PathBuf,
    /// Where report.html, steps.html and steps.md go.
    #[arg(long, default_value = "target/meshspec/docs")]
    out: PathBuf,
    /// The features: the catalog's scenarios, and the page's text when the run left no run.json.
    #[arg(long, default_value = "features")]
    features: PathBuf,
    /// Only the step catalog (needs no run).
    #[arg(long)]
    catalog: bool,
}

#[derive(Args)]
struct ReapArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The run id the interrupted run printed.
    #[arg(long)]
    run_id: String,
}

#[derive(Args)]
struct TwinUpArgs {
    /// Serve the twin's AWS endpoint and DNS only, without provisioning anything.
    #[arg(long)]
    bare: bool,
    /// Env file to write once the deployment is ready (KEY=VALUE lines).
    #[arg(long, default_value = "twin.env")]
    env_file: PathBuf,
    #[arg(long, env = "MESHSPEC_TIME_SCALE")]
    time_scale: Option<f64>,
    /// Topology file, as for `run` (its istio_version decides the Istio release the twin runs).
    #[arg(long, env = "MESHSPEC_TOPOLOGY")]
    topology: Option<PathBuf>,
    /// The share of API requests the twin throttles, fails, slows or cuts: 0.05, or kube=1,aws=0.05.
    #[arg(long, value_name = "RATES")]
    api_faults: Option<meshspec::api_faults::ApiFaultRates>,
    /// The mesh's root CA (`root-cert.pem`, `root-key.pem`) to issue the clusters' intermediates from.
    #[arg(long, value_name = "DIR")]
    mesh_root_ca: Option<PathBuf>,
}

impl TargetArgs {
    /// The flags as the target rules read them.
    fn request(&self) -> TargetRequest {
        TargetRequest {
            target: self.target,
            topology: self.topology.clone(),
            fixtures: self.fixtures.clone(),
            kubeconfig: self.kubeconfig.clone(),
            contexts: self.contexts.clone(),
            time_scale: self.time_scale,
            timeout_scale: self.timeout_scale,
            fault: self.fault.clone(),
            api_faults: self.api_faults,
            allow_provision: self.allow_provision.clone(),
            ledger_dir: self.ledger_dir.clone(),
            provisioner: self.provisioner,
            terraform_dir: self.terraform_dir.clone(),
            terraform_bin: self.terraform_bin.clone(),
            var_files: self.var_files.clone(),
            plan: self.plan.clone(),
            k3s_image: self.k3s_image.clone(),
            k3s_runtime: self.k3s_runtime,
            twin_runtime: self.twin_runtime,
            mesh_root_ca: self.mesh_root_ca.clone(),
        }
    }
}

fn target_options(args: &TargetArgs) -> Result<TargetOptions> {
    rules::target_options(&args.request(), &rules::process_env)
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let mut target = target_options(&args.target)?;
    let args_kind = target.kind;
    if let Provisioner::Terraform(p) = &mut target.provisioner {
        p.kubeconfig_out = Some(args.report_dir.join("kubeconfig"));
    }
    let mut opts = RunOptions::new(target);
    opts.tags = args.tags;
    opts.report_dir = args.report_dir;
    opts.features = args.features;
    opts.teardown = args.teardown;
    opts.trend = args.trend;
    meshspec::interrupt::install().context("cannot listen for SIGINT and SIGTERM")?;
    meshspec::interrupt::quiet_panic_hook();
    let summary = runner::run(opts).await?;
    let d = &summary.documents;
    println!(
        "reports: {} {} {} {}",
        d.page.display(),
        summary.junit.display(),
        summary.json.display(),
        d.conformance.display()
    );
    println!("trend: {}", d.trend.display());
    println!("wall time: {:.2?}", summary.wall_time);
    for d in &summary.diagnoses {
        println!("{d}");
    }
    match &summary.teardown {
        None => {}
        Some(Ok(left)) if left.is_empty() => println!("teardown: nothing left"),
        Some(Ok(left)) => {
            for l in left {
                println!("teardown left: {} {} {}", l.kind, l.id, l.detail);
            }
        }
        Some(Err(e)) => println!("teardown failed: {e}"),
    }
    println!("{}", runner::closing_line(&summary.tally));
    if summary.interrupted {
        println!("interrupted: the scenarios not started are reported as failed");
        if let Some(id) = summary.run_id.as_ref().filter(|_| !args_kind.driver().in_process()) {
            println!("{}", runner::reap_hint(id, args_kind));
        }
        return Ok(ExitCode::from(130));
    }
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn docs(args: DocsArgs) -> Result<ExitCode> {
    use meshspec::report::documents;
    if !args.catalog {
        let page = documents::page(&args.from, &args.features)?;
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        let path = args.out.join(meshspec::report::html::FILE);
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
        println!("page: {}", path.display());
    }
    let (html, md) = documents::catalog(&args.features, &args.out)?;
    println!("step catalog: {} {}", html.display(), md.display());
    Ok(ExitCode::SUCCESS)
}

/// Why `proxy-config endpoint` was given no dump, or two.
#[derive(Debug, thiserror::Error)]
enum EndpointSourceError {
    #[error("proxy-config endpoint needs a pod or --file DUMP, not both")]
    Both,
    #[error("proxy-config endpoint needs a pod or --file DUMP")]
    Neither,
}

async fn proxy_config_endpoint(args: EndpointArgs) -> Result<ExitCode> {
    use meshspec::mesh::envoy::{Dump, EndpointFilter, Format};
    let format = match args.output.as_str() {
        "json" => Format::Json,
        "yaml" => Format::Yaml,
        _ => Format::Short,
    };
    let filter = EndpointFilter { address: args.address, port: args.port, cluster: args.cluster, status: args.status };
    // istioctl: `(len(args) == 1) != (configDumpFile == "")` is a usage error.
    let (body, source) = match (&args.pod, &args.file) {
        (Some(_), Some(_)) => return Err(EndpointSourceError::Both.into()),
        (None, None) => return Err(EndpointSourceError::Neither.into()),
        // No kube client at all on this path: istioctl 1.20.2 builds one before reading -f
        // (`ctx.CLIClient()` in `endpointConfigCmd`), so it needs a kubeconfig; meshspec does not.
        (None, Some(file)) => (read_dump(file)?, file.display().to_string()),
        (Some(pod), None) => {
            let (pod, namespace) = match pod.split_once('.') {
                Some((p, ns)) => (p.to_string(), ns.to_string()),
                None => (pod.clone(), args.namespace.clone()),
            };
            (
                pod_clusters(&pod, &namespace, args.context.as_deref(), args.kubeconfig.as_deref()).await?,
                format!("the Envoy of {namespace}/{pod}"),
            )
        }
    };
    let dump = Dump::parse(&body).with_context(|| format!("{source} is not an Envoy clusters dump"))?;
    let text = dump.render(&filter, format);
    // A reader that stops early (`| head`) ends the output, not in a panic as print! would.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// A dump file, or stdin for "-" as istioctl's `readFile` does.
fn read_dump(file: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body).context("cannot read the clusters dump from stdin")?;
    } else {
        body = std::fs::read(file).with_context(|| format!("cannot read the clusters dump {}", file.display()))?;
    }
    Ok(body)
}

/// The clusters body of a pod's Envoy, through `pilot-agent request` in its istio-proxy container.
async fn pod_clusters(
    pod: &str,
    namespace: &str,
    context: Option<&str>,
    kubeconfig: Option<&std::path::Path>,
) -> Result<Vec<u8>> {
    let timeouts = meshspec::kube::KubeTimeouts::default();
    let access = match context {
        Some(ctx) => meshspec::kube::client_from_kubeconfig(kubeconfig, ctx, timeouts).await?,
        None => meshspec::kube::access::client_from_current_context(kubeconfig, timeouts).await?,
    };
    meshspec::mesh::envoy::sidecar_pod(&access, namespace, pod).await?;
    let body = meshspec::mesh::envoy::pilot_agent_get(
        &access.client,
        namespace,
        pod,
        "clusters?format=json",
        std::time::Duration::from_secs(30),
    )
    .await?;
    Ok(body.into_bytes())
}

async fn provision(args: ProvisionArgs) -> Result<ExitCode> {
    let mut opts = target_options(&args.target)?;
    rules::check_command(rules::Command::Provision, &opts)?;
    if let Provisioner::Terraform(p) = &mut opts.provisioner {
        p.kubeconfig_out = Some(args.kubeconfig_out.clone());
    }
    let session = Session::open(opts).await?;
    if let Some(l) = &session.run.ledger {
        println!("run id: {} (ledger {})", l.run_id, l.path.display());
    }
    let result = meshspec::provision::deploy(&session).await;
    session.close().await;
    let record = result?;
    for s in &record.stages {
        println!(
            "stage {} {}: {} in {:.1}s",
            s.number,
            s.name,
            s.created.len(),
            (s.finished_at - s.started_at).num_milliseconds() as f64 / 1000.0
        );
    }
    println!("provisioned by {:?} in {} stages", record.by, record.stages.len());
    Ok(ExitCode::SUCCESS)
}

async fn destroy(args: DestroyArgs) -> Result<ExitCode> {
    let opts = target_options(&args.target)?;
    rules::check_command(rules::Command::Destroy, &opts)?;
    let session = Session::open(opts).await?;
    let result = meshspec::provision::teardown(&session).await;
    session.close().await;
    let left = result?;
    for l in &left {
        println!("left: {} {} {}", l.kind, l.id, l.detail);
    }
    println!("destroyed; {} resources left", left.len());
    Ok(if left.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn reap(args: ReapArgs) -> Result<ExitCode> {
    let opts = target_options(&args.target)?;
    rules::check_command(rules::Command::Reap, &opts)?;
    let dir = opts.ledger_dir.clone().unwrap_or_else(meshspec::ledger::default_dir);
    let read = meshspec::ledger::read(&dir, &args.run_id)?;
    for d in &read.damaged {
        eprintln!("warning: {d}");
    }
    let entries = read.entries;
    let opts = rules::reap_options(&args.target.request(), opts, &entries, &rules::process_env)?;
    let session = Session::open(opts).await?;
    let result = meshspec::provision::teardown(&session).await;
    session.close().await;
    let left = result?;
    println!("reaped run {}: {} ledger entries", args.run_id, entries.len());
    for l in &left {
        println!("left: {} {} {}", l.kind, l.id, l.detail);
    }
    // A line is written before its create call, so a cut last line is a create
    // that never started; a damaged line before others is not explained that way.
    for d in &read.damaged {
        println!("not reaped: {d}");
    }
    let unexplained = read.damaged.iter().any(|d| !d.last);
    Ok(if left.is_empty() && !unexplained { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn twin_up(args: TwinUpArgs) -> Result<ExitCode> {
    let topology = match &args.topology {
        Some(p) => Topology::load(p)?,
        None => Topology::seed(),
    };
    let mut opts = TargetOptions::new(TargetKind::Twin, topology);
    opts.time_scale = args.time_scale;
    opts.api_fault_rate = args.api_faults;
    if let Some(dir) = &args.mesh_root_ca {
        opts.mesh_root_ca =
            Some(std::sync::Arc::new(meshspec::mesh::cacerts::RootCa::load(dir).context("--mesh-root-ca")?));
    }
    let files = meshspec::twin_env::TwinEnvFiles::for_env_file(&args.env_file);
    let session = Session::open(opts).await?;
    let result = async {
        if args.bare {
            return meshspec::twin_env::write_bare(&session, &files).await;
        }
        meshspec::twin_up::bring_up(&session).await?;
        meshspec::twin_env::write(&session, &files).await
    }
    .await;
    if let Err(e) = result {
        session.close().await;
        files.remove();
        return Err(e);
    }
    println!("twin is ready; for a shell: set -a; . {}; set +a", args.env_file.display());
    wait_for_stop_signal().await?;
    eprintln!("stopping the twin");
    session.close().await;
    files.remove();
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

fn main() -> ExitCode {
    meshspec::install_crypto_provider();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESHSPEC_LOG")
                // kube-rs logs every failed connection of the twin's simulated istiod (an
                // unreachable remote is a fault some scenarios inject); meshspec's own
                // failures reach the user as errors; kube-runtime's watcher warns on every
                // list the simulated istiod is refused (a fault trims the reader's role).
                // MESHSPEC_LOG shows them all.
                .unwrap_or_else(|_| {
                    "warn,kube_client=off,kube_runtime::watcher=off,meshspec_twin::mesh::log=error".into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Docs(args) => docs(args),
            Command::Twin { command: TwinCommand::Up(args) } => twin_up(args).await,
            Command::Twin { command: TwinCommand::ServeAws(args) } => serve_aws(args).await,
            Command::Twin { command: TwinCommand::ServeCluster(args) } => serve_cluster(args).await,
            Command::K3s { command: K3sCommand::Serve { args } } => {
                Ok(ExitCode::from(u8::try_from(meshspec_twin::standin::serve(args).await).unwrap_or(1)))
            }
            Command::Bench { command: BenchCommand::Suite { features, report_dir, baseline, json, each_fault } } => {
                let base = baseline.as_ref().map(meshspec::bench_suite::read_baseline).transpose()?;
                let figures = meshspec::bench_suite::measure(&features, &report_dir, each_fault).await?;
                print!("{}", meshspec::bench_suite::render(&figures, base.as_ref()));
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_vec_pretty(&figures)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Bench { command: BenchCommand::K3s { features, report_dir, runtime, k3s_image, json } } => {
                let figures = meshspec::bench_k3s::measure(&features, &report_dir, runtime, k3s_image).await?;
                print!("{}", meshspec::bench_k3s::render(&figures));
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_vec_pretty(&figures)?)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Ok(if figures.failed == 0 && figures.left_behind == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Command::Bench { command: BenchCommand::LoadBalancing { requests, time_scale, json } } => {
                let figures = meshspec::bench::load_balancing(requests, time_scale).await?;
                for m in [&figures.meshspec, &figures.runbook] {
                    println!(
                        "{:<50} {:>4} requests  {:>8.2} s  {:>8.1} ms/request  {} answered",
                        m.method, m.requests, m.wall_time_s, m.per_request_ms, m.answers_ok
                    );
                }
                println!("speedup per request: {:.1}x", figures.speedup);
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_vec_pretty(&figures)?)?;
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Reap(args) => reap(args).await,
            Command::Provision(args) => provision(args).await,
            Command::Destroy(args) => destroy(args).await,
            Command::Doctor(args) => {
                let findings =
                    meshspec::doctor::examine_showing(target_options(&args.target)?, &mut |f| println!("{f}")).await;
                let (line, ok) = meshspec::doctor::summary(&findings);
                println!("{line}");
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            Command::K3s { command: K3sCommand::StandinImage } => {
                let docker = meshspec::containers::engine().await?;
                let me = std::env::current_exe().context("cannot find this binary to put into the image")?;
                let image = meshspec::containers::standin_image::build(&docker, &me).await?;
                println!("{image}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Faults => {
                for f in meshspec::faults::ALL {
                    println!("{:<34} {}", f.name(), f.summary());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::ProxyConfig { command: ProxyConfigCommand::Endpoint(args) } => proxy_config_endpoint(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", meshspec::kube::failure::render(&e));
            ExitCode::from(2)
        }
    }
}
