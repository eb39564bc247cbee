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
    /// The traffic probe's pace: one request per cluster per interval.
    pub probe_interval: Duration,
    /// The least wall time a duration a feature states ("within 5 minutes")
    /// is given where time is compressed (see [`Timeouts::stated`]).
    pub stated_floor: Duration,
    /// Simulated seconds per wall-clock second where the target compresses
    /// time (the twin); None where time is real.
    pub time_scale: Option<f64>,
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
            // An operator's probe: fine enough to time a failover of seconds,
            // light on the API servers it execs through (a few requests a second).
            probe_interval: Duration::from_millis(250),
            stated_floor: Duration::ZERO,
            time_scale: None,
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
            // An exec and its curl take 5-20 ms here: the probe keeps to a few
            // requests in flight per second, leaving the machine to the twin it observes.
            probe_interval: Duration::from_millis(50),
            // What a loaded 2-core machine may take for a handful of execs (the
            // whole suite at once: up to 0.7 s each): a stated duration
            // compressed below it would measure the machine, not the mesh.
            stated_floor: Duration::from_secs(10),
            time_scale: None,
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
            probe_interval: c(eks.probe_interval, floor.probe_interval),
            stated_floor: floor.stated_floor,
            time_scale: Some(time_scale),
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
            // The pace and the target's clock are not deadlines.
            probe_interval: self.probe_interval,
            stated_floor: self.stated_floor,
            time_scale: self.time_scale,
        }
    }

    /// The wall time a duration of the real system, stated in a feature
    /// ("within 5 minutes"), is given on this target: itself where time is
    /// real; on the twin compressed by its time scale, as its deadlines are,
    /// but never under [`Timeouts::stated_floor`].
    pub fn stated(&self, real: Duration) -> Duration {
        match self.time_scale {
            Some(scale) => real.div_f64(scale.max(f64::MIN_POSITIVE)).max(self.stated_floor),
            None => real,
        }
    }

    /// A wall-clock span as the target's clock counts it: simulated seconds
    /// on the twin, None where time is real.
    pub fn simulated(&self, wall: Duration) -> Option<f64> {
        self.time_scale.map(|scale| wall.as_secs_f64() * scale)
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

    #[test]
    fn stated_durations_and_the_probe_pace_follow_the_target_clock() {
        let eks = Timeouts::eks();
        assert_eq!(eks.stated(Duration::from_secs(300)), Duration::from_secs(300));
        assert_eq!(eks.simulated(Duration::from_secs(3)), None);
        let twin = Timeouts::for_twin(1000.0);
        // 5 minutes compress to 0.3 s, under the floor; 5 hours to 18 s.
        assert_eq!(twin.stated(Duration::from_secs(300)), Duration::from_secs(10));
        assert_eq!(twin.stated(Duration::from_secs(18000)), Duration::from_secs(18));
        assert_eq!(twin.simulated(Duration::from_millis(1500)), Some(1500.0));
        assert_eq!(twin.probe_interval, Duration::from_millis(50));
        assert_eq!(Timeouts::for_twin(1.0).probe_interval, Duration::from_millis(250));
        // A run told to fail fast keeps the pace and the clock.
        let quick = twin.scaled(0.1);
        assert_eq!((quick.probe_interval, quick.time_scale), (twin.probe_interval, Some(1000.0)));
    }
}
