//! The twin target: meshspec's embedded twin, started in-process for the run,
//! provisioned through its AWS and Kubernetes APIs, with compressed time.

use anyhow::{bail, Context, Result};
use futures::future::BoxFuture;

use super::driver::{terraform_refused, Opened, TargetDriver};
use super::rules::{Env, ProvisionerKind, TargetRequest};
use super::{TargetKind, TargetOptions};
use crate::dns::Dns;
use crate::provision::Provisioner;
use crate::timeouts::Timeouts;
use meshspec_twin::twin::{Twin, TwinConfig};

pub struct TwinTarget;

impl TargetDriver for TwinTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Twin
    }

    fn has_aws(&self) -> bool {
        true
    }

    /// The twin is made for the run: provisioning it needs no consent.
    fn provisions_unasked(&self) -> bool {
        true
    }

    fn in_process(&self) -> bool {
        true
    }

    fn injects_faults(&self) -> bool {
        true
    }

    fn provisioner(&self, choice: ProvisionerKind, _req: &TargetRequest, _env: Env) -> Result<Provisioner> {
        match choice {
            ProvisionerKind::Api => Ok(Provisioner::Api),
            ProvisionerKind::Terraform => terraform_refused(self.kind()),
        }
    }

    fn open<'a>(&'a self, opts: &'a TargetOptions) -> BoxFuture<'a, Result<Opened>> {
        Box::pin(async move {
            let mut cfg = TwinConfig {
                region: opts.topology.region.clone(),
                istio_version: opts.topology.istio_version.clone(),
                kube_fault_rate: opts.api_fault_rate.map_or(0.0, |r| r.kubernetes),
                aws_fault_rate: opts.api_fault_rate.map_or(0.0, |r| r.aws),
                ..TwinConfig::default()
            };
            if let Some(scale) = opts.time_scale {
                if !(scale.is_finite() && scale > 0.0) {
                    bail!("--time-scale must be a positive number, not {scale}");
                }
                cfg.time_scale = scale;
            }
            let timeouts = Timeouts::for_twin(cfg.time_scale);
            let started = Twin::start(cfg).await.context("cannot start the twin")?;
            let (id, secret) = started.credentials();
            let mut aws = opts.aws.clone();
            aws.endpoint = Some(started.aws_endpoint().to_string());
            aws.region = Some(started.region().to_string());
            aws.credentials = Some((id, secret));
            let dns = Dns::server(started.dns_addr());
            Ok(Opened { timeouts, dns, aws, twin: Some(started) })
        })
    }
}
