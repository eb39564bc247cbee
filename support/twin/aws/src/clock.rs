//! Simulated time. Real EKS and NLB delays are minutes; the twin runs them
//! compressed by a scale factor so that a whole suite takes seconds, while every
//! delay is still written in the units the real system uses.

use std::time::{Duration, Instant};

/// How fast simulated time runs compared with wall time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Simulated seconds per wall-clock second (1 = real time).
    pub scale: f64,
    origin: Instant,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        Clock { scale, origin: Instant::now() }
    }

    /// Wall time that a simulated duration takes.
    /// Simulated seconds per wall-clock second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    pub fn compress(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.scale)
    }

    /// Sleep for a simulated duration.
    pub async fn sleep(&self, simulated: Duration) {
        tokio::time::sleep(self.compress(simulated)).await
    }

    /// Simulated time elapsed since a wall-clock instant.
    pub fn since(&self, then: Instant) -> Duration {
        Instant::now().saturating_duration_since(then).mul_f64(self.scale)
    }

    /// Simulated time since the twin started.
    pub fn now(&self) -> Duration {
        self.since(self.origin)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(Delays::DEFAULT_SCALE)
    }
}

/// The real system's delays, in simulated time (reference/istio-multinetwork.md).
#[derive(Clone, Debug)]
pub struct Delays {
    /// EKS CreateCluster: CREATING -> ACTIVE.
    pub cluster_create: Duration,
    /// EKS DeleteCluster: DELETING -> gone.
    pub cluster_delete: Duration,
    /// EC2 CreateVpc: pending -> available.
    pub vpc_available: Duration,
    /// NLB: provisioning -> active.
    pub nlb_provision: Duration,
    /// Target registration before the first health check (Elb.RegistrationInProgress).
    pub target_registration: Duration,
    /// NLB TCP health check interval (the controller's default: 10 s).
    pub health_check_interval: Duration,
    /// Consecutive results needed to turn healthy / unhealthy.
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Pod scheduled -> Running and Ready.
    pub pod_ready: Duration,
}

impl Delays {
    /// Default compression: 10 simulated minutes take 0.6 s.
    pub const DEFAULT_SCALE: f64 = 1000.0;
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            cluster_create: Duration::from_secs(600),
            cluster_delete: Duration::from_secs(300),
            vpc_available: Duration::from_secs(2),
            nlb_provision: Duration::from_secs(180),
            target_registration: Duration::from_secs(60),
            health_check_interval: Duration::from_secs(10),
            healthy_threshold: 3,
            unhealthy_threshold: 3,
            pod_ready: Duration::from_secs(15),
        }
    }
}
