//! Every deadline meshspec uses, in one place, per kind of target. The twin
//! compresses real delays, so its deadlines are seconds; EKS needs minutes.

use std::time::Duration;

use crate::wait::WaitOptions;

#[derive(Clone, Debug)]
pub struct Timeouts {
    /// EKS cluster CREATING -> ACTIVE.
    pub cluster_active: Duration,
    /// A Deployment's pods Ready.
    pub rollout: Duration,
    /// LoadBalancer Service -> hostname in its status.
    pub load_balancer_hostname: Duration,
    /// NLB provisioning -> active.
    pub nlb_active: Duration,
    /// Every registered target healthy.
    pub targets_healthy: Duration,
    /// istiod syncing a remote cluster and pushing endpoints to sidecars.
    pub mesh_sync: Duration,
    /// One API call (Kubernetes or AWS).
    pub api_call: Duration,
    /// A kubeconfig's exec credential plugin (`aws eks get-token` takes about a second).
    pub credential_plugin: Duration,
    /// One staged `terraform apply` or `destroy` (EKS clusters and NLBs included).
    pub terraform_stage: Duration,
    /// Any other tool run: `terraform init`, `kind create cluster`, `helm install --wait`, docker.
    pub tool: Duration,
}

impl Timeouts {
    /// Real EKS: cluster creation takes 10-15 min, NLB targets 2-5 min.
    pub fn eks() -> Self {
        Timeouts {
            cluster_active: Duration::from_secs(25 * 60),
            rollout: Duration::from_secs(10 * 60),
            load_balancer_hostname: Duration::from_secs(5 * 60),
            nlb_active: Duration::from_secs(10 * 60),
            targets_healthy: Duration::from_secs(10 * 60),
            mesh_sync: Duration::from_secs(5 * 60),
            api_call: Duration::from_secs(30),
            credential_plugin: Duration::from_secs(30),
            terraform_stage: Duration::from_secs(90 * 60),
            tool: Duration::from_secs(15 * 60),
        }
    }

    /// The floor of the twin's deadlines: at its default compression every
    /// wait ends well within them.
    fn twin() -> Self {
        Timeouts {
            cluster_active: Duration::from_secs(30),
            rollout: Duration::from_secs(30),
            load_balancer_hostname: Duration::from_secs(30),
            nlb_active: Duration::from_secs(30),
            targets_healthy: Duration::from_secs(30),
            mesh_sync: Duration::from_secs(30),
            api_call: Duration::from_secs(10),
            credential_plugin: Duration::from_secs(30),
            // No tool runs against the twin: these only keep the struct whole.
            terraform_stage: Duration::from_secs(60),
            tool: Duration::from_secs(60),
        }
    }

    /// The twin runs EKS's delays compressed by `time_scale`: its deadlines are
    /// EKS's, compressed the same way, but never under the seconds a loaded
    /// machine may need for the work itself.
    pub fn for_twin(time_scale: f64) -> Self {
        let floor = Timeouts::twin();
        let eks = Timeouts::eks();
        let c = |e: Duration, f: Duration| e.div_f64(time_scale.max(f64::MIN_POSITIVE)).max(f);
        Timeouts {
            cluster_active: c(eks.cluster_active, floor.cluster_active),
            rollout: c(eks.rollout, floor.rollout),
            load_balancer_hostname: c(eks.load_balancer_hostname, floor.load_balancer_hostname),
            nlb_active: c(eks.nlb_active, floor.nlb_active),
            targets_healthy: c(eks.targets_healthy, floor.targets_healthy),
            mesh_sync: c(eks.mesh_sync, floor.mesh_sync),
            api_call: floor.api_call,
            credential_plugin: floor.credential_plugin,
            terraform_stage: floor.terraform_stage,
            tool: floor.tool,
        }
    }

    /// Scale every deadline (e.g. `--timeout-scale 0.1` to make a test fail fast).
    pub fn scaled(&self, factor: f64) -> Self {
        let s = |d: Duration| d.mul_f64(factor.max(0.0));
        Timeouts {
            cluster_active: s(self.cluster_active),
            rollout: s(self.rollout),
            load_balancer_hostname: s(self.load_balancer_hostname),
            nlb_active: s(self.nlb_active),
            targets_healthy: s(self.targets_healthy),
            mesh_sync: s(self.mesh_sync),
            api_call: self.api_call,
            credential_plugin: self.credential_plugin,
            terraform_stage: s(self.terraform_stage),
            tool: s(self.tool),
        }
    }

    pub fn wait(d: Duration) -> WaitOptions {
        WaitOptions::new(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_deadlines_follow_the_time_scale_with_a_floor() {
        let fast = Timeouts::for_twin(1000.0);
        assert_eq!(fast.cluster_active, Duration::from_secs(30));
        let slow = Timeouts::for_twin(10.0);
        assert_eq!(slow.cluster_active, Duration::from_secs(150));
        assert!(slow.targets_healthy > fast.targets_healthy);
    }
}
