//! The target rules: how what a user asked for on the command line becomes
//! `TargetOptions`. Which clusters `--allow-provision` must name, which kube
//! context each cluster of a target kind is reached through, which provisioner
//! a target kind gets by default and which combinations are refused. The CLI
//! only parses flags and calls these, so that tests reach every rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use super::{TargetKind, TargetOptions};
use crate::provision::Provisioner;
use crate::tools::terraform::TerraformConfig;
use crate::topology::Topology;

/// Which provisioner the user asked for (`--provisioner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProvisionerKind {
    Api,
    Terraform,
}

/// What the user asked for, as the command line says it.
#[derive(Clone, Debug)]
pub struct TargetRequest {
    pub target: TargetKind,
    /// A topology file; None: the seed topology.
    pub topology: Option<PathBuf>,
    pub fixtures: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    /// `CLUSTER=CONTEXT` pairs.
    pub contexts: Vec<String>,
    pub time_scale: Option<f64>,
    pub timeout_scale: f64,
    pub fault: Option<String>,
    pub api_faults: Option<crate::api_faults::ApiFaultRates>,
    /// The comma-separated cluster names of `--allow-provision`.
    pub allow_provision: Option<String>,
    pub ledger_dir: Option<PathBuf>,
    pub provisioner: Option<ProvisionerKind>,
    pub terraform_dir: Option<PathBuf>,
    pub terraform_bin: String,
    pub var_files: Vec<PathBuf>,
    pub plan: Option<String>,
    /// The k3s target's image (`--k3s-image`).
    pub k3s_image: String,
    /// Where the k3s target's clusters run (`--k3s-runtime`).
    pub k3s_runtime: crate::provision::k3s::K3sRuntime,
    /// Where the twin target's twin runs (`--twin-runtime`).
    pub twin_runtime: super::twin::TwinRuntime,
    /// A directory holding the mesh's `root-cert.pem` and `root-key.pem` (`--mesh-root-ca`).
    pub mesh_root_ca: Option<PathBuf>,
}

impl TargetRequest {
    /// A request for `target` with nothing else said.
    pub fn new(target: TargetKind) -> Self {
        TargetRequest {
            target,
            topology: None,
            fixtures: None,
            kubeconfig: None,
            contexts: Vec::new(),
            time_scale: None,
            timeout_scale: 1.0,
            fault: None,
            api_faults: None,
            allow_provision: None,
            ledger_dir: None,
            provisioner: None,
            terraform_dir: None,
            terraform_bin: "terraform".into(),
            var_files: Vec::new(),
            plan: None,
            k3s_image: crate::containers::k3s::DEFAULT_IMAGE.to_string(),
            k3s_runtime: crate::provision::k3s::K3sRuntime::Docker,
            twin_runtime: super::twin::TwinRuntime::InProcess,
            mesh_root_ca: None,
        }
    }
}

/// The environment the rules read (CTX_CLUSTER1, KUBECONFIG, HOME); a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's own environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The target options `req` asks for, or why they are refused.
pub fn target_options(req: &TargetRequest, env: Env) -> Result<TargetOptions> {
    let topology = match &req.topology {
        Some(p) => Topology::load(p)?,
        None => Topology::seed(),
    };
    let mut opts = TargetOptions::new(req.target, topology);
    if let Some(dir) = &req.fixtures {
        opts.fixtures = crate::fixtures::Fixtures::from_dir(dir.clone());
    }
    opts.kubeconfig = req.kubeconfig.clone();
    opts.fault = req.fault.as_deref().map(crate::faults::Fault::parse).transpose()?;
    opts.api_fault_rate = req.api_faults;
    opts.ledger_dir = Some(req.ledger_dir.clone().unwrap_or_else(crate::ledger::default_dir));
    if let Some(list) = &req.allow_provision {
        check_allow_provision(&opts.topology, list)?;
        opts.allow_provision = true;
    }
    opts.time_scale = req.time_scale;
    opts.timeout_scale = req.timeout_scale;
    ensure!(
        req.twin_runtime == super::twin::TwinRuntime::InProcess || req.target == TargetKind::Twin,
        "--twin-runtime is for the twin target, not {}",
        req.target
    );
    opts.twin_runtime = req.twin_runtime;
    if let Some(dir) = &req.mesh_root_ca {
        let root = crate::mesh::cacerts::RootCa::load(dir).context("--mesh-root-ca")?;
        opts.mesh_root_ca = Some(std::sync::Arc::new(root));
    }
    opts.plan = plan(req);
    opts.provisioner = provisioner(req, env)?;
    if let Provisioner::Kind(p) = &opts.provisioner {
        opts.kubeconfig = Some(p.kubeconfig.clone());
    }
    if let Some(k) = match &opts.provisioner {
        Provisioner::Own(p) => p.kubeconfig(),
        _ => None,
    } {
        opts.kubeconfig = Some(k);
    }
    opts.contexts = contexts(req, &opts.topology, env)?;
    Ok(opts)
}

/// `--allow-provision` is consent to create and delete: it must name every
/// cluster of the topology, in any order, and nothing else.
pub fn check_allow_provision(topology: &Topology, list: &str) -> Result<()> {
    let mut allowed: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut all: Vec<&str> = topology.clusters.iter().map(|c| c.name.as_str()).collect();
    allowed.sort();
    all.sort();
    ensure!(
        allowed == all,
        "--allow-provision must name every cluster of the topology ({}), got {list:?}: refusing to create or delete anything",
        all.join(",")
    );
    Ok(())
}

/// The stage plan: the user's, else the target kind's own.
pub fn plan(req: &TargetRequest) -> String {
    req.plan.clone().unwrap_or_else(|| req.target.driver().default_plan().to_string())
}

/// The kube context of each cluster: the target kind's own (on eks from
/// CTX_CLUSTER1 / CTX_CLUSTER2, on kind kind's `kind-<name>`);
/// `--context CLUSTER=CONTEXT` wins over both.
pub fn contexts(req: &TargetRequest, topology: &Topology, env: Env) -> Result<BTreeMap<String, String>> {
    let mut contexts = req.target.driver().contexts(topology, env);
    for pair in &req.contexts {
        let (cluster, ctx) =
            pair.split_once('=').with_context(|| format!("--context {pair:?}: expected CLUSTER=CONTEXT"))?;
        let name = topology.cluster(cluster)?.name.clone();
        contexts.insert(name, ctx.to_string());
    }
    Ok(contexts)
}

/// The kubeconfig of kind clusters: --kubeconfig, else where kind writes by
/// default (the first file of KUBECONFIG, else ~/.kube/config).
pub fn kind_kubeconfig(req: &TargetRequest, env: Env) -> PathBuf {
    if let Some(k) = &req.kubeconfig {
        return k.clone();
    }
    let from_env =
        env("KUBECONFIG").and_then(|v| std::env::split_paths(&v).next()).filter(|p| !p.as_os_str().is_empty());
    from_env.unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".kube").join("config"))
}

/// The Terraform a request names (directory, binary, var files).
pub fn terraform_config(req: &TargetRequest, dir: PathBuf) -> TerraformConfig {
    let mut tf = TerraformConfig::new(dir);
    tf.binary = req.terraform_bin.clone();
    tf.var_files = req.var_files.clone();
    tf
}

/// The provisioner of a target: `--provisioner` as the target kind reads it,
/// else the kind's default (the twin through its APIs, eks through the user's
/// Terraform, kind with kind and Helm).
pub fn provisioner(req: &TargetRequest, env: Env) -> Result<Provisioner> {
    let driver = req.target.driver();
    driver.provisioner(req.provisioner.unwrap_or(driver.default_provisioner()), req, env)
}

/// The commands that provision or tear down, each refused on an in-process twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Provision,
    Destroy,
    Reap,
}

/// Whether `command` may run on the target `opts` describe.
pub fn check_command(command: Command, opts: &TargetOptions) -> Result<()> {
    match command {
        Command::Provision => {
            ensure!(
                !opts.kind.driver().in_process(),
                "an in-process twin ends with the command: use `meshspec twin up` for a twin that stays"
            );
            ensure!(opts.allow_provision, "provision needs --allow-provision with every cluster of the topology");
        }
        Command::Destroy => {
            ensure!(!opts.kind.driver().in_process(), "an in-process twin ends with its command; nothing to destroy");
            ensure!(
                opts.allow_provision,
                "destroy deletes cloud resources: pass --allow-provision with every cluster of the topology"
            );
        }
        Command::Reap => ensure!(
            !opts.kind.driver().in_process(),
            "reap needs the target the interrupted run used (an in-process twin ends with its run), e.g. --target eks with the env of `twin up`"
        ),
    }
    Ok(())
}

/// The options of a reap of the run whose ledger holds `entries`: the ledger is
/// the user's consent for what that run created (no new ledger for the reap),
/// and what made the resources decides how they go: kind on the kind target,
/// the run's Terraform root module, else meshspec's API calls.
pub fn reap_options(
    req: &TargetRequest,
    mut opts: TargetOptions,
    entries: &[crate::ledger::Entry],
    env: Env,
) -> Result<TargetOptions> {
    check_command(Command::Reap, &opts)?;
    for e in entries {
        opts.topology
            .cluster(&e.cluster)
            .with_context(|| format!("the ledger names a cluster outside the topology: {}", e.cluster))?;
    }
    opts.allow_provision = true;
    opts.ledger_dir = None;
    opts.provisioner = opts.kind.driver().reap_provisioner(req, entries, env);
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn refusal(req: &TargetRequest) -> String {
        format!("{:#}", target_options(req, &no_env).unwrap_err())
    }

    #[test]
    fn allow_provision_must_name_every_cluster_in_any_order() {
        let seed = Topology::seed();
        check_allow_provision(&seed, "eks-2, eks-1").unwrap();
        for list in ["eks-1", "eks-1,eks-2,eks-3", "", "eks-1,eks-1"] {
            assert_eq!(
                check_allow_provision(&seed, list).unwrap_err().to_string(),
                format!(
                    "--allow-provision must name every cluster of the topology (eks-1,eks-2), got {list:?}: \
                     refusing to create or delete anything"
                )
            );
        }
        let mut req = TargetRequest::new(TargetKind::Twin);
        req.allow_provision = Some("eks-1".into());
        assert!(refusal(&req).starts_with("--allow-provision must name every cluster"));
        req.allow_provision = Some("eks-1,eks-2".into());
        assert!(target_options(&req, &no_env).unwrap().allow_provision);
    }

    #[test]
    fn only_the_twin_may_be_provisioned_without_being_asked() {
        for (kind, allowed) in [(TargetKind::Twin, true), (TargetKind::Kind, false), (TargetKind::Eks, false)] {
            assert_eq!(target_options(&TargetRequest::new(kind), &no_env).unwrap().allow_provision, allowed, "{kind}");
        }
    }

    #[test]
    fn eks_contexts_come_from_ctx_cluster_vars_and_context_flags_win() {
        let env = |k: &str| match k {
            "CTX_CLUSTER1" => Some("arn:one".to_string()),
            "CTX_CLUSTER2" => Some(String::new()),
            _ => None,
        };
        let mut req = TargetRequest::new(TargetKind::Eks);
        let got = contexts(&req, &Topology::seed(), &env).unwrap();
        assert_eq!(got, BTreeMap::from([("eks-1".to_string(), "arn:one".to_string())]), "an empty var names nothing");
        req.contexts = vec!["eks-1=mine".into(), "eks-2=theirs".into()];
        let got = contexts(&req, &Topology::seed(), &env).unwrap();
        assert_eq!(got["eks-1"], "mine");
        assert_eq!(got["eks-2"], "theirs");
        // The twin reads no CTX_CLUSTER vars.
        assert!(contexts(&TargetRequest::new(TargetKind::Twin), &Topology::seed(), &env).unwrap().is_empty());
    }

    #[test]
    fn kind_contexts_are_kinds_own_names() {
        let seed = Topology::seed();
        let got = contexts(&TargetRequest::new(TargetKind::Kind), &seed, &no_env).unwrap();
        for c in &seed.clusters {
            assert_eq!(got[&c.name], crate::tools::kind::context(&seed.kind_cluster(c).name));
        }
    }

    #[test]
    fn a_context_flag_must_be_a_pair_naming_a_cluster_of_the_topology() {
        let mut req = TargetRequest::new(TargetKind::Eks);
        req.contexts = vec!["eks-1".into()];
        assert_eq!(refusal(&req), "--context \"eks-1\": expected CLUSTER=CONTEXT");
        req.contexts = vec!["eks-9=x".into()];
        assert_eq!(refusal(&req), "no cluster \"eks-9\" in the topology (clusters: eks-1, eks-2)");
    }

    #[test]
    fn the_k3s_target_provisions_its_own_clusters_into_a_kubeconfig_of_its_own() {
        let opts = target_options(&TargetRequest::new(TargetKind::K3s), &no_env).unwrap();
        assert!(opts.allow_provision, "its clusters are the run's own: no --allow-provision needed");
        assert_eq!(opts.plan, crate::provision::k3s::PLAN);
        let Provisioner::Own(p) = &opts.provisioner else { panic!("{:?}", opts.provisioner) };
        assert_eq!(opts.kubeconfig, p.kubeconfig(), "the clients read the kubeconfig the provisioner writes");
        let contexts: Vec<&str> = opts.contexts.values().map(String::as_str).collect();
        assert_eq!(contexts, ["k3s-eks-1", "k3s-eks-2"]);
        let mut req = TargetRequest::new(TargetKind::K3s);
        req.k3s_image = "rancher/k3s latest".into();
        assert!(refusal(&req).contains("is not an image reference"), "{}", refusal(&req));
        req.k3s_image = crate::containers::k3s::DEFAULT_IMAGE.into();
        req.provisioner = Some(ProvisionerKind::Terraform);
        assert_eq!(refusal(&req), "--provisioner terraform is for the eks target, not k3s");
    }

    #[test]
    fn each_kind_gets_its_provisioner_and_plan_by_default() {
        let home = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        let opts = target_options(&TargetRequest::new(TargetKind::Twin), &home).unwrap();
        assert!(matches!(opts.provisioner, Provisioner::Api));
        assert_eq!(opts.plan, crate::provision::plan::DEFAULT_PLAN);
        let opts = target_options(&TargetRequest::new(TargetKind::Kind), &home).unwrap();
        let Provisioner::Kind(p) = &opts.provisioner else { panic!("{:?}", opts.provisioner) };
        assert_eq!(p.kubeconfig, PathBuf::from("/home/u/.kube/config"));
        assert_eq!(opts.kubeconfig.as_deref(), Some(p.kubeconfig.as_path()), "the clients read kind's kubeconfig");
        assert_eq!(opts.plan, crate::provision::kind::PLAN);
        let opts = target_options(&TargetRequest::new(TargetKind::Eks), &home).unwrap();
        let Provisioner::Terraform(p) = &opts.provisioner else { panic!("{:?}", opts.provisioner) };
        assert_eq!(p.terraform.dir, PathBuf::from("."));
        let mut req = TargetRequest::new(TargetKind::Kind);
        req.plan = Some("mine.yaml".into());
        assert_eq!(target_options(&req, &home).unwrap().plan, "mine.yaml", "the user's plan wins");
    }

    #[test]
    fn kinds_kubeconfig_is_the_flag_else_the_first_kubeconfig_file_else_home() {
        let mut req = TargetRequest::new(TargetKind::Kind);
        let env = |k: &str| match k {
            "KUBECONFIG" => Some("/a/first:/b/second".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(kind_kubeconfig(&req, &env), PathBuf::from("/a/first"));
        req.kubeconfig = Some("/flag".into());
        assert_eq!(kind_kubeconfig(&req, &env), PathBuf::from("/flag"));
    }

    #[test]
    fn the_api_provisioner_is_refused_on_eks() {
        let mut req = TargetRequest::new(TargetKind::Eks);
        req.provisioner = Some(ProvisionerKind::Api);
        assert!(refusal(&req).starts_with("--provisioner api cannot build a working deployment on EKS"));
    }

    #[test]
    fn terraform_is_for_eks_only() {
        for kind in [TargetKind::Twin, TargetKind::Kind] {
            let mut req = TargetRequest::new(kind);
            req.provisioner = Some(ProvisionerKind::Terraform);
            assert_eq!(refusal(&req), format!("--provisioner terraform is for the eks target, not {kind}"));
        }
    }

    #[test]
    fn provisioning_eks_needs_a_terraform_dir() {
        let mut req = TargetRequest::new(TargetKind::Eks);
        req.allow_provision = Some("eks-1,eks-2".into());
        assert_eq!(
            refusal(&req),
            "provisioning the eks target drives your Terraform: pass --terraform-dir DIR \
             (the root module whose addresses the plan's -targets name)"
        );
        req.terraform_dir = Some("/tf".into());
        req.terraform_bin = "tofu".into();
        req.var_files = vec!["a.tfvars".into()];
        let Provisioner::Terraform(p) = target_options(&req, &no_env).unwrap().provisioner else { panic!() };
        assert_eq!(
            (p.terraform.dir, p.terraform.binary, p.terraform.var_files),
            ("/tf".into(), "tofu".into(), vec!["a.tfvars".into()])
        );
    }

    #[test]
    fn provision_destroy_and_reap_are_refused_on_the_twin() {
        let twin = target_options(&TargetRequest::new(TargetKind::Twin), &no_env).unwrap();
        assert_eq!(
            check_command(Command::Provision, &twin).unwrap_err().to_string(),
            "an in-process twin ends with the command: use `meshspec twin up` for a twin that stays"
        );
        assert_eq!(
            check_command(Command::Destroy, &twin).unwrap_err().to_string(),
            "an in-process twin ends with its command; nothing to destroy"
        );
        assert!(check_command(Command::Reap, &twin).unwrap_err().to_string().starts_with("reap needs the target"));
        let eks = target_options(&TargetRequest::new(TargetKind::Eks), &no_env).unwrap();
        assert_eq!(
            check_command(Command::Provision, &eks).unwrap_err().to_string(),
            "provision needs --allow-provision with every cluster of the topology"
        );
        assert_eq!(
            check_command(Command::Destroy, &eks).unwrap_err().to_string(),
            "destroy deletes cloud resources: pass --allow-provision with every cluster of the topology"
        );
        check_command(Command::Reap, &eks).unwrap();
    }

    fn entry(cluster: &str, kind: &str, name: &str, tags: Vec<(String, String)>) -> crate::ledger::Entry {
        crate::ledger::Entry {
            run_id: "r".into(),
            target: "eks".into(),
            cluster: cluster.into(),
            kind: kind.into(),
            name: name.into(),
            tags,
        }
    }

    #[test]
    fn a_reap_goes_the_way_the_ledger_says_the_resources_were_made() {
        let req = TargetRequest::new(TargetKind::Eks);
        let open = || target_options(&req, &no_env).unwrap();
        let tf = entry("eks-1", crate::provision::terraform::LEDGER_KIND, "/tf", vec![("dir".into(), "/tf".into())]);
        let opts = reap_options(&req, open(), &[tf], &no_env).unwrap();
        assert!(opts.allow_provision && opts.ledger_dir.is_none());
        let Provisioner::Terraform(p) = opts.provisioner else { panic!() };
        assert_eq!(p.terraform.dir, PathBuf::from("/tf"));
        let vpc = entry("eks-1", "VPC", "v", vec![]);
        assert!(matches!(reap_options(&req, open(), &[vpc], &no_env).unwrap().provisioner, Provisioner::Api));
        let outside = entry("eks-9", "VPC", "v", vec![]);
        assert_eq!(
            format!("{:#}", reap_options(&req, open(), &[outside], &no_env).unwrap_err()),
            "the ledger names a cluster outside the topology: eks-9: no cluster \"eks-9\" in the topology (clusters: eks-1, eks-2)"
        );
        let kind_req = TargetRequest::new(TargetKind::Kind);
        let made = entry("eks-1", crate::provision::kind::LEDGER_KIND, "cluster1", vec![]);
        let opts = reap_options(&kind_req, target_options(&kind_req, &no_env).unwrap(), &[made], &no_env).unwrap();
        let Provisioner::Kind(p) = opts.provisioner else { panic!() };
        assert_eq!(p.created_per_ledger, BTreeSet::from(["cluster1".to_string()]));
    }
}
