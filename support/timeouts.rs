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
    /// One API call (Kubernetes or AWS).
    pub api_call: Duration,
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
            api_call: Duration::from_secs(30),
        }
    }

    /// The twin at its default time compression runs the same waits in seconds.
    pub fn twin() -> Self {
        Timeouts {
            cluster_active: Duration::from_secs(30),
            rollout: Duration::from_secs(30),
            load_balancer_hostname: Duration::from_secs(30),
            nlb_active: Duration::from_secs(30),
            targets_healthy: Duration::from_secs(30),
            api_call: Duration::from_secs(10),
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
            api_call: self.api_call,
        }
    }

    pub fn wait(d: Duration) -> WaitOptions {
        WaitOptions::new(d)
    }
}
