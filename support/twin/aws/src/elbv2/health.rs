//! Target health as DescribeTargetHealth reports it. Results come only from
//! the twin's health checker through `record_health_check`; the endpoint never
//! invents them. What it adds is the lifecycle around them: registration in
//! progress, unused target groups, draining after deregistration.

use crate::model::{Health, Model, Target, TargetGroup};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthView {
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<&'static str>,
}

impl HealthView {
    fn new(state: &'static str, reason: &'static str, description: &'static str) -> Self {
        HealthView { state, reason: Some(reason), description: Some(description) }
    }
}

pub const NOT_REGISTERED: HealthView = HealthView {
    state: "unused",
    reason: Some("Target.NotRegistered"),
    description: Some("Target is not registered to the target group"),
};

impl Model {
    /// Whether the load balancers in front of a target group are all active.
    fn front_active(&self, tg_arn: &str) -> bool {
        self.load_balancers_of_target_group(tg_arn)
            .iter()
            .all(|lb| self.load_balancers.get(lb).is_some_and(|lb| lb.active))
    }

    /// Whether a health-check result for this target counts: the target is
    /// registered, its group in use behind an active NLB, and registration done.
    fn checks_count(&self, tg: &TargetGroup, t: &Target) -> bool {
        t.deregistered.is_none()
            && self.target_group_in_use(&tg.arn)
            && self.front_active(&tg.arn)
            && self.ctx.elapsed(t.registered, self.ctx.delays.target_registration)
    }

    pub fn target_health(&self, tg: &TargetGroup, t: &Target) -> HealthView {
        if t.deregistered.is_some() {
            return HealthView::new(
                "draining",
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress",
            );
        }
        if !self.target_group_in_use(&tg.arn) {
            return HealthView::new(
                "unused",
                "Target.NotInUse",
                "Target group is not configured to receive traffic from the load balancer",
            );
        }
        if !self.checks_count(tg, t) {
            return HealthView::new("initial", "Elb.RegistrationInProgress", "Target registration is in progress");
        }
        match t.health {
            Health::Initial => {
                HealthView::new("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
            }
            Health::Healthy => HealthView { state: "healthy", reason: None, description: None },
            Health::Unhealthy => HealthView::new("unhealthy", "Target.FailedHealthChecks", "Health checks failed"),
        }
    }

    /// One health-check result from the checker. Consecutive results reaching
    /// the group's thresholds flip the state; results that would not count on
    /// a real NLB (unused group, registration in progress) are dropped.
    pub fn record_health_check(&mut self, tg_arn: &str, ip: &str, port: u16, passed: bool) {
        let Some(tg) = self.target_groups.get(tg_arn) else {
            return;
        };
        let Some(index) = tg.targets.iter().position(|t| t.id == ip && t.port == port && t.deregistered.is_none())
        else {
            return;
        };
        if !self.checks_count(tg, &tg.targets[index]) {
            return;
        }
        let (healthy_at, unhealthy_at) = (tg.health_check.healthy_threshold, tg.health_check.unhealthy_threshold);
        let Some(t) = self.target_groups.get_mut(tg_arn).and_then(|tg| tg.targets.get_mut(index)) else {
            return;
        };
        if passed {
            t.failures = 0;
            t.passes = t.passes.saturating_add(1);
            if t.passes >= healthy_at {
                t.health = Health::Healthy;
            }
        } else {
            t.passes = 0;
            t.failures = t.failures.saturating_add(1);
            if t.failures >= unhealthy_at {
                t.health = Health::Unhealthy;
            }
        }
    }

    /// Availability zones with at least one healthy target behind a load balancer
    /// (`all` for targets outside the VPC's subnets).
    pub fn healthy_zones(&self, lb_arn: &str) -> Vec<String> {
        let mut zones = Vec::new();
        for listener in self.listeners.values().filter(|l| l.lb_arn == lb_arn) {
            for (tg_arn, _) in &listener.forward {
                let Some(tg) = self.target_groups.get(tg_arn) else {
                    continue;
                };
                for t in &tg.targets {
                    if self.target_health(tg, t).state == "healthy" && !zones.contains(&t.az) {
                        zones.push(t.az.clone());
                    }
                }
            }
        }
        zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elbv2::ops::tests::network;
    use crate::elbv2::ops::TargetGroupRequest;
    use crate::{Clock, NewLoadBalancer};
    use std::time::Duration;

    /// An NLB with a TCP listener forwarding to a target group with one target;
    /// `scale` sets how fast simulated time runs.
    fn setup(scale: f64, registration: Duration) -> (Model, String, String) {
        let (mut m, vpc, subnets) = network();
        m.ctx.clock = Clock::new(scale);
        m.ctx.delays.nlb_provision = Duration::ZERO;
        m.ctx.delays.target_registration = registration;
        let lb = m
            .elb_create_load_balancer(&NewLoadBalancer {
                name: "gw".into(),
                scheme: "internet-facing".into(),
                subnet_ids: subnets,
                ..Default::default()
            })
            .unwrap();
        let tg = m.elb_create_target_group(TargetGroupRequest::tcp_ip("gw-15443".into(), 15443, vpc, vec![])).unwrap();
        m.elb_register_targets(&tg, &[("10.1.48.10".into(), None)]).unwrap();
        m.settle();
        (m, lb, tg)
    }

    fn state(m: &Model, tg: &str) -> HealthView {
        let tg = &m.target_groups[tg];
        m.target_health(tg, &tg.targets[0])
    }

    #[test]
    fn unused_until_a_listener_forwards_then_initial_checking() {
        let (mut m, lb, tg) = setup(1.0, Duration::ZERO);
        assert_eq!(state(&m, &tg).reason, Some("Target.NotInUse"));
        m.record_health_check(&tg, "10.1.48.10", 15443, true);
        assert_eq!(m.target_groups[&tg].targets[0].passes, 0, "unused groups are not checked");
        m.elb_create_listener(&lb, 15443, "TCP", vec![(tg.clone(), 1)], vec![]).unwrap();
        assert_eq!(state(&m, &tg).reason, Some("Elb.InitialHealthChecking"));
    }

    #[test]
    fn registration_in_progress_ignores_results() {
        let (mut m, lb, tg) = setup(1.0, Duration::from_secs(3600));
        m.elb_create_listener(&lb, 15443, "TCP", vec![(tg.clone(), 1)], vec![]).unwrap();
        for _ in 0..5 {
            m.record_health_check(&tg, "10.1.48.10", 15443, true);
        }
        let view = state(&m, &tg);
        assert_eq!((view.state, view.reason), ("initial", Some("Elb.RegistrationInProgress")));
    }

    #[test]
    fn thresholds_turn_healthy_then_unhealthy_then_healthy() {
        let (mut m, lb, tg) = setup(1.0, Duration::ZERO);
        m.elb_create_listener(&lb, 15443, "TCP", vec![(tg.clone(), 1)], vec![]).unwrap();
        m.record_health_check(&tg, "10.1.48.10", 15443, true);
        m.record_health_check(&tg, "10.1.48.10", 15443, true);
        assert_eq!(state(&m, &tg).state, "initial");
        assert!(m.healthy_zones(&lb).is_empty());
        m.record_health_check(&tg, "10.1.48.10", 15443, true);
        assert_eq!(state(&m, &tg), HealthView { state: "healthy", reason: None, description: None });
        assert_eq!(m.healthy_zones(&lb), vec!["us-west-2a".to_string()]);
        m.record_health_check(&tg, "10.1.48.10", 15443, false);
        m.record_health_check(&tg, "10.1.48.10", 15443, false);
        assert_eq!(state(&m, &tg).state, "healthy", "two failures are below the threshold");
        m.record_health_check(&tg, "10.1.48.10", 15443, true);
        for _ in 0..3 {
            m.record_health_check(&tg, "10.1.48.10", 15443, false);
        }
        assert_eq!(state(&m, &tg).reason, Some("Target.FailedHealthChecks"));
        // Unknown targets and ports are ignored.
        m.record_health_check(&tg, "10.1.48.11", 15443, true);
        m.record_health_check(&tg, "10.1.48.10", 1, true);
        m.record_health_check("arn:none", "10.1.48.10", 15443, true);
        assert_eq!(state(&m, &tg).state, "unhealthy");
    }

    #[test]
    fn deregistered_targets_drain_then_disappear() {
        let (mut m, lb, tg) = setup(1000.0, Duration::ZERO);
        m.elb_create_listener(&lb, 15443, "TCP", vec![(tg.clone(), 1)], vec![]).unwrap();
        m.elb_deregister_targets(&tg, &[("10.1.48.10".into(), None)]).unwrap();
        assert_eq!(state(&m, &tg).state, "draining");
        // 300 simulated seconds of deregistration delay = 0.3 s at scale 1000.
        std::thread::sleep(Duration::from_millis(400));
        m.settle();
        assert!(m.target_groups[&tg].targets.is_empty());
    }

    #[test]
    fn provisioning_nlb_keeps_targets_in_registration() {
        let (mut m, lb, tg) = setup(1.0, Duration::ZERO);
        m.elb_create_listener(&lb, 15443, "TCP", vec![(tg.clone(), 1)], vec![]).unwrap();
        m.load_balancers.get_mut(&lb).unwrap().active = false;
        assert_eq!(state(&m, &tg).reason, Some("Elb.RegistrationInProgress"));
    }
}
