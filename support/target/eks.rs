//! The eks target: real EKS clusters and AWS, verified as they are, or
//! provisioned by the user's Terraform stage by stage.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::driver::TargetDriver;
use super::rules::{terraform_config, Env, ProvisionerKind, TargetRequest};
use super::TargetKind;
use crate::provision::terraform::TerraformProvisioner;
use crate::provision::Provisioner;
use crate::topology::Topology;

pub struct EksTarget;

impl TargetDriver for EksTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Eks
    }

    fn has_aws(&self) -> bool {
        true
    }

    fn default_provisioner(&self) -> ProvisionerKind {
        ProvisionerKind::Terraform
    }

    fn provisioner(&self, choice: ProvisionerKind, req: &TargetRequest, _env: Env) -> Result<Provisioner> {
        match choice {
            // The API provisioner builds the seed the way the twin needs it (an EKS cluster
            // is ACTIVE with nodes and an OIDC-less controller); real EKS also needs IAM
            // roles, node groups, routes and the controller's IAM role, CRDs and webhook
            // certificates, which only the user's Terraform creates.
            ProvisionerKind::Api => bail!(
                "--provisioner api cannot build a working deployment on EKS (it creates no IAM roles, \
                 node groups, internet or NAT gateways and routes, nor the load balancer controller's \
                 IAM role, CRDs and webhook certificates): provision with your Terraform \
                 (--provisioner terraform --terraform-dir DIR, the default), or verify a deployment \
                 that is already there (no --allow-provision)"
            ),
            ProvisionerKind::Terraform => {
                if req.allow_provision.is_some() && req.terraform_dir.is_none() {
                    bail!(
                        "provisioning the eks target drives your Terraform: pass --terraform-dir DIR \
                         (the root module whose addresses the plan's -targets name)"
                    );
                }
                let tf = terraform_config(req, req.terraform_dir.clone().unwrap_or_else(|| PathBuf::from(".")));
                Ok(Provisioner::Terraform(TerraformProvisioner { terraform: tf, kubeconfig_out: None }))
            }
        }
    }

    /// CTX_CLUSTER1 / CTX_CLUSTER2 name the first and second cluster's contexts, as in the runbook.
    fn contexts(&self, topology: &Topology, env: Env) -> BTreeMap<String, String> {
        let mut contexts = BTreeMap::new();
        for (i, var) in ["CTX_CLUSTER1", "CTX_CLUSTER2"].iter().enumerate() {
            if let (Some(ctx), Some(c)) = (env(var), topology.clusters.get(i)) {
                if !ctx.is_empty() {
                    contexts.insert(c.name.clone(), ctx);
                }
            }
        }
        contexts
    }
}
