//! What a cluster's own programs ask of AWS: the AWS Load Balancer Controller
//! (EC2 subnets and security groups, ELBv2 load balancers, target groups,
//! listeners and targets), the pod network (the VPC's subnets), istiod (the
//! VPC's DNS support) and the API server's EKS token check (STS).
//!
//! In one process these are calls on the twin's [`AwsState`]; with a cluster
//! in a process of its own they go over the wire to the AWS endpoint through
//! [`RemoteAws`], as the real controller and aws-iam-authenticator reach AWS.
//! Both answer alike: asking after a load balancer or target group that does
//! not exist is the service's not-found error, and every call can fail, so a
//! program never mistakes an unanswered lookup for "nothing there" (the
//! controller would create a second NLB, or let a Service go with its NLB
//! still in AWS).

pub mod remote;

use std::sync::Arc;

use crate::aws::{
    AwsError, AwsState, CallerIdentity, Clock, LoadBalancerInfo, NewLoadBalancer, NewTargetGroup, SubnetInfo,
    TargetGroupInfo,
};

pub use remote::{RemoteAws, RemoteAwsConfig};

/// The AWS operations of one cluster's programs. Calls block until AWS
/// answered (reconcile passes are synchronous).
pub trait AwsApi: Send + Sync + 'static {
    /// The simulated clock the AWS side keeps (token caches expire by it).
    fn clock(&self) -> Clock;

    /// Whether a call may wait on the network (an endpoint in another
    /// process): callers on an async runtime then make room for other tasks.
    fn blocks(&self) -> bool {
        false
    }

    // --- EC2 -------------------------------------------------------------

    /// DescribeSubnets with the filter `vpc-id`.
    fn subnets_of_vpc(&self, vpc_id: &str) -> Result<Vec<SubnetInfo>, AwsError>;
    /// DescribeVpcAttribute `enableDnsSupport`.
    fn vpc_dns_support(&self, vpc_id: &str) -> Result<bool, AwsError>;
    /// DescribeSecurityGroups with the filter `tag:<key>=<value>`: the group ids.
    fn security_groups_tagged(&self, key: &str, value: &str) -> Result<Vec<String>, AwsError>;
    /// CreateSecurityGroup with its tags (a TagSpecification): the group id.
    fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError>;
    fn delete_security_group(&self, id: &str) -> Result<(), AwsError>;

    // --- ELBv2 -----------------------------------------------------------

    /// The load balancers tagged `key=value` (DescribeLoadBalancers + DescribeTags).
    fn load_balancers_tagged(&self, key: &str, value: &str) -> Result<Vec<LoadBalancerInfo>, AwsError>;
    /// CreateLoadBalancer of type `network`.
    fn create_load_balancer(&self, req: NewLoadBalancer) -> Result<LoadBalancerInfo, AwsError>;
    fn delete_load_balancer(&self, arn: &str) -> Result<(), AwsError>;
    fn modify_load_balancer_attributes(&self, arn: &str, attributes: &[(String, String)]) -> Result<(), AwsError>;
    /// The target groups the load balancer's listeners forward to, with their tags.
    fn target_groups_of(&self, lb_arn: &str) -> Result<Vec<TargetGroupInfo>, AwsError>;
    /// CreateTargetGroup (TCP, target type `ip`): the group's ARN.
    fn create_target_group(&self, req: NewTargetGroup) -> Result<String, AwsError>;
    /// ModifyTargetGroup's health-check port (None: `traffic-port`).
    fn set_health_check_port(&self, tg_arn: &str, port: Option<u16>) -> Result<(), AwsError>;
    fn delete_target_group(&self, arn: &str) -> Result<(), AwsError>;
    /// A TCP listener forwarding to one target group: the listener's ARN.
    fn create_listener(
        &self,
        lb_arn: &str,
        port: u16,
        target_group_arn: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError>;
    /// The registered targets that are not draining (DescribeTargetHealth).
    fn registered_targets(&self, tg_arn: &str) -> Result<Vec<(String, u16)>, AwsError>;
    fn register_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError>;
    fn deregister_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError>;

    // --- STS -------------------------------------------------------------

    /// Checks an EKS token's presigned GetCallerIdentity URL for the cluster
    /// named `cluster_header`, as aws-iam-authenticator does: who signed it.
    fn verify_presigned_sts(&self, url: &str, cluster_header: &str) -> Result<CallerIdentity, String>;
}

/// Runs `f`, which may wait on a remote AWS endpoint, so that the other tasks
/// of a multi-threaded runtime go on meanwhile (a reconcile pass or an EKS
/// token check would otherwise hold a worker thread, and with two workers the
/// API server would stop answering). Elsewhere `f` simply runs.
pub fn allowing_others<R>(aws: &dyn AwsApi, f: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if aws.blocks() && multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// The twin's AWS model in this process, as a cluster's programs see it.
pub fn in_process(state: &AwsState) -> Arc<dyn AwsApi> {
    Arc::new(state.clone())
}

/// The not-found errors the wire answers with where the model's own lookups
/// answer "nothing" (elbv2/ops.rs of the twin's AWS crate words them alike).
fn lb_not_found() -> AwsError {
    AwsError::bad("LoadBalancerNotFound", "One or more load balancers not found")
}

fn tg_not_found() -> AwsError {
    AwsError::bad("TargetGroupNotFound", "One or more target groups not found")
}

impl AwsApi for AwsState {
    fn clock(&self) -> Clock {
        self.config().clock
    }

    fn subnets_of_vpc(&self, vpc_id: &str) -> Result<Vec<SubnetInfo>, AwsError> {
        Ok(AwsState::subnets_of_vpc(self, vpc_id))
    }

    /// False for a VPC that does not exist (the wire says InvalidVpcID.NotFound;
    /// both mean no DNS answers in it).
    fn vpc_dns_support(&self, vpc_id: &str) -> Result<bool, AwsError> {
        Ok(AwsState::vpc_dns_support(self, vpc_id))
    }

    fn security_groups_tagged(&self, key: &str, value: &str) -> Result<Vec<String>, AwsError> {
        Ok(AwsState::security_groups_tagged(self, key, value))
    }

    fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        AwsState::create_security_group(self, vpc_id, name, description, tags)
    }

    fn delete_security_group(&self, id: &str) -> Result<(), AwsError> {
        AwsState::delete_security_group(self, id)
    }

    fn load_balancers_tagged(&self, key: &str, value: &str) -> Result<Vec<LoadBalancerInfo>, AwsError> {
        Ok(AwsState::load_balancers_tagged(self, key, value))
    }

    fn create_load_balancer(&self, req: NewLoadBalancer) -> Result<LoadBalancerInfo, AwsError> {
        AwsState::create_load_balancer(self, req)
    }

    fn delete_load_balancer(&self, arn: &str) -> Result<(), AwsError> {
        AwsState::delete_load_balancer(self, arn)
    }

    fn modify_load_balancer_attributes(&self, arn: &str, attributes: &[(String, String)]) -> Result<(), AwsError> {
        AwsState::modify_load_balancer_attributes(self, arn, attributes)
    }

    fn target_groups_of(&self, lb_arn: &str) -> Result<Vec<TargetGroupInfo>, AwsError> {
        if self.load_balancer(lb_arn).is_none() {
            return Err(lb_not_found());
        }
        Ok(AwsState::target_groups_of(self, lb_arn))
    }

    fn create_target_group(&self, req: NewTargetGroup) -> Result<String, AwsError> {
        AwsState::create_target_group(self, req)
    }

    fn set_health_check_port(&self, tg_arn: &str, port: Option<u16>) -> Result<(), AwsError> {
        AwsState::set_health_check_port(self, tg_arn, port)
    }

    fn delete_target_group(&self, arn: &str) -> Result<(), AwsError> {
        AwsState::delete_target_group(self, arn)
    }

    fn create_listener(
        &self,
        lb_arn: &str,
        port: u16,
        target_group_arn: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        AwsState::create_listener(self, lb_arn, port, target_group_arn, tags)
    }

    fn registered_targets(&self, tg_arn: &str) -> Result<Vec<(String, u16)>, AwsError> {
        if self.target_group(tg_arn).is_none() {
            return Err(tg_not_found());
        }
        Ok(AwsState::registered_targets(self, tg_arn))
    }

    fn register_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError> {
        AwsState::register_targets(self, tg_arn, targets)
    }

    fn deregister_targets(&self, tg_arn: &str, targets: &[(String, u16)]) -> Result<(), AwsError> {
        AwsState::deregister_targets(self, tg_arn, targets)
    }

    fn verify_presigned_sts(&self, url: &str, cluster_header: &str) -> Result<CallerIdentity, String> {
        AwsState::verify_presigned_sts(self, url, cluster_header)
    }
}
