//! [`AwsApi`] over the wire: a cluster's programs reach an AWS endpoint (the
//! twin's, moto, or AWS) with aws-sdk-rust, as the real AWS Load Balancer
//! Controller reaches EC2 and ELBv2, and check EKS tokens by calling the
//! presigned STS URL, as aws-iam-authenticator does.
//!
//! The trait is synchronous (reconcile passes are), the SDK is async: the SDK
//! runs on a thread of its own with its own tokio runtime, and each call sends
//! its request there and waits for the answer on a std channel. So a call
//! works from any thread, inside a runtime (multi- or current-thread) or not,
//! without `block_in_place` and without needing the caller's runtime to run
//! the SDK; a caller inside a runtime blocks its thread for the call, like any
//! synchronous reconcile work.
//!
//! Finding resources follows the controller (kubernetes-sigs/aws-load-balancer-controller
//! v2.7.1): load balancers by DescribeLoadBalancers then DescribeTags in
//! batches of 20 ARNs, the ELBv2 limit (pkg/deploy/elbv2/tagging_manager.go
//! listLoadBalancersNative, describeResourceTagsFromAWS); security groups by
//! DescribeSecurityGroups with `tag:` filters (pkg/deploy/ec2/tagging_manager.go);
//! subnets by DescribeSubnets with a `vpc-id` filter (pkg/networking/subnet_resolver.go);
//! registered targets by DescribeTargetHealth, draining ones left out
//! (pkg/targetgroupbinding/targets_manager.go ListTargets).

use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_credential_types::Credentials;
use aws_sdk_ec2 as ec2;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::AwsApi;
use crate::aws::{
    AwsError, CallerIdentity, Clock, LoadBalancerInfo, NewLoadBalancer, NewTargetGroup, SubnetInfo, TargetGroupInfo,
};

/// A connection that does not open within this is a failed attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one call.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// One call with its retries.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Five attempts, as meshspec's own AWS clients make (support/aws/connect.rs:
/// standard mode's three fail too many calls when the endpoint throttles).
const MAX_ATTEMPTS: u32 = 5;
/// How long a caller waits for the SDK thread's answer: past the SDK's own
/// operation timeout, so this fires only when that thread is stuck.
const CALL_DEADLINE: Duration = Duration::from_secs(75);
/// The GET of a token's presigned URL, connection included. aws-iam-authenticator
/// sets no timeout of its own (pkg/token/token.go NewVerifier); a token check
/// holds up an API request, so the twin bounds it.
const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// ELBv2 DescribeTags takes at most 20 resource ARNs.
const DESCRIBE_TAGS_BATCH: usize = 20;

/// Where the AWS endpoint is, and as whom to call it.
#[derive(Clone)]
pub struct RemoteAwsConfig {
    /// `http://127.0.0.1:PORT` (the twin's endpoint or moto), or an https URL.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The simulated clock of the twin (what token caches expire by).
    pub clock: Clock,
}

/// The secret stays out of debug output.
impl fmt::Debug for RemoteAwsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAwsConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// The SDK's clients, cloned into each call (they share their connections).
#[derive(Clone)]
struct Clients {
    ec2: ec2::Client,
    elb: elb::Client,
    /// The SDK's own HTTP connector (plain http, or https with the system's roots):
    /// for the token URL, which no SDK operation sends.
    http: SharedHttpConnector,
}

type Job = Box<dyn FnOnce(Clients) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// An AWS endpoint in another process. Dropping the last handle stops its
/// SDK thread (calls under way are abandoned).
pub struct RemoteAws {
    endpoint: String,
    region: String,
    access_key_id: String,
    clock: Clock,
    /// The endpoint's scheme and lower-case `host[:port]`: the one STS host an
    /// EKS token may point at (aws-iam-authenticator allows the partition's STS
    /// hosts; the twin's clusters use their AWS endpoint's STS).
    sts_scheme: String,
    sts_authority: String,
    jobs: UnboundedSender<Job>,
}

impl fmt::Debug for RemoteAws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAws")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RemoteAws {
    /// Starts the SDK thread for `cfg.endpoint`. Nothing is sent yet: the
    /// endpoint need not be up until the first call.
    pub fn connect(cfg: RemoteAwsConfig) -> anyhow::Result<Arc<RemoteAws>> {
        let uri: http::Uri = cfg.endpoint.parse().with_context(|| format!("the AWS endpoint {:?}", cfg.endpoint))?;
        let sts_scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => anyhow::bail!("the AWS endpoint {:?} is not an http(s) URL", cfg.endpoint),
        };
        let sts_authority = uri
            .authority()
            .with_context(|| format!("the AWS endpoint {:?} has no host", cfg.endpoint))?
            .as_str()
            .to_ascii_lowercase();
        anyhow::ensure!(!cfg.region.is_empty(), "no AWS region");
        anyhow::ensure!(!cfg.access_key_id.is_empty() && !cfg.secret_access_key.is_empty(), "no AWS access key pair");

        let (jobs, mut queue) = unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = sync_channel::<anyhow::Result<()>>(1);
        let settings = cfg.clone();
        std::thread::Builder::new()
            .name("remote-aws".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e).context("starting the AWS client runtime")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let clients = match Clients::new(&settings) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // Each call is a task: one slow call does not hold up the others.
                    // Ends when the last RemoteAws handle is dropped.
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job(clients.clone()));
                    }
                });
            })
            .context("starting the AWS client thread")?;
        ready_rx.recv().context("the AWS client thread stopped while starting")??;
        Ok(Arc::new(RemoteAws {
            endpoint: cfg.endpoint,
            region: cfg.region,
            access_key_id: cfg.access_key_id,
            clock: cfg.clock,
            sts_scheme,
            sts_authority,
            jobs,
        }))
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Runs `f` on the SDK thread and waits for what it returns.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, AwsError>
    where
        T: Send + 'static,
        F: FnOnce(Clients) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |clients| {
            Box::pin(async move {
                let _ = tx.send(f(clients).await);
            })
        });
        self.jobs.send(job).map_err(|_| unanswered("ClientStopped", "the AWS client thread has stopped"))?;
        rx.recv_timeout(CALL_DEADLINE).map_err(|e| match e {
            RecvTimeoutError::Timeout => {
                unanswered("TimeoutError", format!("no answer from the AWS client thread within {CALL_DEADLINE:?}"))
            }
            RecvTimeoutError::Disconnected => unanswered("ClientStopped", "the AWS client thread dropped the call"),
        })
    }

    /// [`Self::call`] for an SDK operation.
    fn api<T, F, Fut>(&self, f: F) -> Result<T, AwsError>
    where
        T: Send + 'static,
        F: FnOnce(Clients) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, AwsError>> + Send + 'static,
    {
        self.call(f)?
    }
}

impl Clients {
    fn new(cfg: &RemoteAwsConfig) -> anyhow::Result<Clients> {
        // Built from the given settings only: no environment variable or profile
        // (AWS_ENDPOINT_URL_*, AWS_PROFILE) redirects a cluster's calls.
        let credentials = Credentials::new(&cfg.access_key_id, &cfg.secret_access_key, None, None, "meshspec-twin");
        let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let ec2 = ec2::Client::from_conf(
            ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(cfg.region.clone()))
                .endpoint_url(cfg.endpoint.clone())
                .credentials_provider(credentials.clone())
                .retry_config(retry.clone())
                .timeout_config(timeouts.clone())
                .build(),
        );
        let elb = elb::Client::from_conf(
            elb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(cfg.region.clone()))
                .endpoint_url(cfg.endpoint.clone())
                .credentials_provider(credentials)
                .retry_config(retry)
                .timeout_config(timeouts)
                .build(),
        );
        let http = aws_smithy_http_client::default_connector(&HttpConnectorSettings::default(), None)
            .context("the SDK has no default HTTP connector")?;
        Ok(Clients { ec2, elb, http })
    }
}

/// A call that got no answer from AWS (status 0: nothing came back).
fn unanswered(code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(0, code, message)
}

/// An SDK failure as the twin's error: AWS's own code, message and status
/// when AWS answered, else what kept the answer from coming.
fn aws_error<E>(err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    match &err {
        SdkError::ServiceError(_) => AwsError::new(
            status,
            err.code().unwrap_or("Unknown"),
            err.message().map(str::to_owned).unwrap_or_else(|| DisplayErrorContext(&err).to_string()),
        ),
        SdkError::TimeoutError(_) => unanswered("TimeoutError", DisplayErrorContext(&err).to_string()),
        SdkError::DispatchFailure(_) => unanswered("DispatchFailure", DisplayErrorContext(&err).to_string()),
        SdkError::ResponseError(_) => AwsError::new(status, "ResponseError", DisplayErrorContext(&err).to_string()),
        _ => unanswered("ConstructionFailure", DisplayErrorContext(&err).to_string()),
    }
}

fn ec2_filter(name: &str, value: &str) -> ec2::types::Filter {
    ec2::types::Filter::builder().name(name).values(value).build()
}

fn ec2_tags(tags: &[ec2::types::Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned())).collect()
}

fn elb_tags_of(tags: &[elb::types::Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned())).collect()
}

fn elb_tags(tags: Vec<(String, String)>) -> Option<Vec<elb::types::Tag>> {
    (!tags.is_empty())
        .then(|| tags.into_iter().map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build()).collect())
}

fn targets(targets: &[(String, u16)]) -> Vec<elb::types::TargetDescription> {
    targets
        .iter()
        .map(|(ip, port)| elb::types::TargetDescription::builder().id(ip).port(i32::from(*port)).build())
        .collect()
}

/// `traffic-port` or a port number, as ELBv2 spells a health-check port.
fn health_check_port(port: Option<u16>) -> String {
    port.map_or_else(|| "traffic-port".to_owned(), |p| p.to_string())
}

fn port_of(n: Option<i32>) -> u16 {
    n.and_then(|p| u16::try_from(p).ok()).unwrap_or(0)
}

/// The tags of each ARN (DescribeTags, 20 ARNs at a time).
async fn elb_tags_by_arn(c: &Clients, arns: &[String]) -> Result<Vec<(String, Vec<(String, String)>)>, AwsError> {
    let mut out = Vec::new();
    for batch in arns.chunks(DESCRIBE_TAGS_BATCH) {
        let described =
            c.elb.describe_tags().set_resource_arns(Some(batch.to_vec())).send().await.map_err(aws_error)?;
        for d in described.tag_descriptions() {
            out.push((d.resource_arn().unwrap_or_default().to_owned(), elb_tags_of(d.tags())));
        }
    }
    Ok(out)
}

fn tags_of(all: &[(String, Vec<(String, String)>)], arn: &str) -> Vec<(String, String)> {
    all.iter().find(|(a, _)| a == arn).map(|(_, t)| t.clone()).unwrap_or_default()
}

fn lb_info(lb: &elb::types::LoadBalancer, tags: Vec<(String, String)>) -> LoadBalancerInfo {
    let zones = lb
        .availability_zones()
        .iter()
        .map(|z| {
            // DescribeLoadBalancers lists a zone's address only for an Elastic IP
            // given through SubnetMappings or an internal NLB's chosen private
            // address (ELBv2 API reference, LoadBalancerAddress); an NLB made from
            // Subnets alone, as the controller makes them, has its addresses on its
            // ENIs only. No cluster program reads them: unspecified then.
            let address = z
                .load_balancer_addresses()
                .iter()
                .find_map(|a| a.ip_address().or(a.private_ipv4_address()))
                .and_then(|a| a.parse().ok())
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            (z.zone_name().unwrap_or_default().to_owned(), z.subnet_id().unwrap_or_default().to_owned(), address)
        })
        .collect();
    LoadBalancerInfo {
        arn: lb.load_balancer_arn().unwrap_or_default().to_owned(),
        name: lb.load_balancer_name().unwrap_or_default().to_owned(),
        dns_name: lb.dns_name().unwrap_or_default().to_owned(),
        vpc_id: lb.vpc_id().unwrap_or_default().to_owned(),
        scheme: lb.scheme().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        state: lb.state().and_then(|s| s.code()).map(|c| c.as_str().to_owned()).unwrap_or_default(),
        zones,
        security_group_ids: lb.security_groups().to_vec(),
        tags,
    }
}

fn tg_info(tg: &elb::types::TargetGroup, tags: Vec<(String, String)>) -> TargetGroupInfo {
    TargetGroupInfo {
        arn: tg.target_group_arn().unwrap_or_default().to_owned(),
        name: tg.target_group_name().unwrap_or_default().to_owned(),
        port: port_of(tg.port()),
        protocol: tg.protocol().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        vpc_id: tg.vpc_id().unwrap_or_default().to_owned(),
        target_type: tg.target_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
        health_check_port: tg.health_check_port().and_then(|p| p.parse().ok()),
        health_check_interval_seconds: tg
            .health_check_interval_seconds()
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or_default(),
        load_balancer_arns: tg.load_balancer_arns().to_vec(),
        tags,
    }
}

impl AwsApi for RemoteAws {
    fn blocks(&self) -> bool {
        true
    }

    fn clock(&self) -> Clock {
        self.clock
    }

    fn subnets_of_vpc(&self, vpc_id: &str) -> Result<Vec<SubnetInfo>, AwsError> {
        let vpc_id = vpc_id.to_owned();
        self.api(move |c| async move {
            let subnets = c
                .ec2
                .describe_subnets()
                .filters(ec2_filter("vpc-id", &vpc_id))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(aws_error)?;
            Ok(subnets
                .iter()
                .map(|s| SubnetInfo {
                    id: s.subnet_id().unwrap_or_default().to_owned(),
                    vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                    cidr: s.cidr_block().unwrap_or_default().to_owned(),
                    az: s.availability_zone().unwrap_or_default().to_owned(),
                    tags: ec2_tags(s.tags()),
                })
                .collect())
        })
    }

    fn vpc_dns_support(&self, vpc_id: &str) -> Result<bool, AwsError> {
        let vpc_id = vpc_id.to_owned();
        self.api(move |c| async move {
            let out = c
                .ec2
                .describe_vpc_attribute()
                .vpc_id(vpc_id)
                .attribute(ec2::types::VpcAttributeName::EnableDnsSupport)
                .send()
                .await
                .map_err(aws_error)?;
            Ok(out.enable_dns_support().and_then(|v| v.value()).unwrap_or(false))
        })
    }

    fn security_groups_tagged(&self, key: &str, value: &str) -> Result<Vec<String>, AwsError> {
        let (filter, value) = (format!("tag:{key}"), value.to_owned());
        self.api(move |c| async move {
            let groups = c
                .ec2
                .describe_security_groups()
                .filters(ec2_filter(&filter, &value))
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(aws_error)?;
            Ok(groups.iter().filter_map(|g| g.group_id().map(str::to_owned)).collect())
        })
    }

    fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        let (vpc_id, name, description) = (vpc_id.to_owned(), name.to_owned(), description.to_owned());
        self.api(move |c| async move {
            let mut req = c.ec2.create_security_group().vpc_id(vpc_id).group_name(name).description(description);
            if !tags.is_empty() {
                let tags = tags.into_iter().map(|(k, v)| ec2::types::Tag::builder().key(k).value(v).build());
                req = req.tag_specifications(
                    ec2::types::TagSpecification::builder()
                        .resource_type(ec2::types::ResourceType::SecurityGroup)
                        .set_tags(Some(tags.collect()))
                        .build(),
                );
            }
            let out = req.send().await.map_err(aws_error)?;
            out.group_id().map(str::to_owned).ok_or_else(|| missing("CreateSecurityGroup", "groupId"))
        })
    }

    fn delete_security_group(&self, id: &str) -> Result<(), AwsError> {
        let id = id.to_owned();
        self.api(move |c| async move {
            c.ec2.delete_security_group().group_id(id).send().await.map_err(aws_error)?;
            Ok(())
        })
    }

    fn load_balancers_tagged(&self, key: &str, value: &str) -> Result<Vec<LoadBalancerInfo>, AwsError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.api(move |c| async move {
            let lbs = c
                .elb
                .describe_load_balancers()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(aws_error)?;
            let arns: Vec<String> = lbs.iter().filter_map(|lb| lb.load_balancer_arn().map(str::to_owned)).collect();
            let tags = elb_tags_by_arn(&c, &arns).await?;
            Ok(lbs
                .iter()
                .map(|lb| lb_info(lb, tags_of(&tags, lb.load_balancer_arn().unwrap_or_default())))
                .filter(|lb| lb.tags.iter().any(|(k, v)| *k == key && *v == value))
                .collect())
        })
    }

    fn create_load_balancer(&self, req: NewLoadBalancer) -> Result<LoadBalancerInfo, AwsError> {
        self.api(move |c| async move {
            let tags = req.tags.clone();
            let out = c
                .elb
                .create_load_balancer()
                .name(req.name)
                .r#type(elb::types::LoadBalancerTypeEnum::Network)
                .scheme(elb::types::LoadBalancerSchemeEnum::from(req.scheme.as_str()))
                .set_subnets(Some(req.subnet_ids))
                .set_security_groups((!req.security_group_ids.is_empty()).then_some(req.security_group_ids))
                .set_tags(elb_tags(req.tags))
                .send()
                .await
                .map_err(aws_error)?;
            // CreateLoadBalancer answers without the tags: they are the ones just set.
            let lb = out.load_balancers().first().ok_or_else(|| missing("CreateLoadBalancer", "LoadBalancers"))?;
            Ok(lb_info(lb, tags))
        })
    }

    fn delete_load_balancer(&self, arn: &str) -> Result<(), AwsError> {
        let arn = arn.to_owned();
        self.api(move |c| async move {
            c.elb.delete_load_balancer().load_balancer_arn(arn).send().await.map_err(aws_error)?;
            Ok(())
        })
    }

    fn modify_load_balancer_attributes(&self, arn: &str, attributes: &[(String, String)]) -> Result<(), AwsError> {
        let arn = arn.to_owned();
        let attributes: Vec<elb::types::LoadBalancerAttribute> = attributes
            .iter()
            .map(|(k, v)| elb::types::LoadBalancerAttribute::builder().key(k).value(v).build())
            .collect();
        self.api(move |c| async move {
            c.elb
                .modify_load_balancer_attributes()
                .load_balancer_arn(arn)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    fn target_groups_of(&self, lb_arn: &str) -> Result<Vec<TargetGroupInfo>, AwsError> {
        let lb_arn = lb_arn.to_owned();
        self.api(move |c| async move {
            let groups = c
                .elb
                .describe_target_groups()
                .load_balancer_arn(lb_arn)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(aws_error);
            // With no target group attached, moto (elbv2/models.py describe_target_groups)
            // answers TargetGroupNotFound where the twin answers an empty list; a missing
            // load balancer is LoadBalancerNotFound in both.
            let groups = match groups {
                Err(e) if e.code == "TargetGroupNotFound" => Vec::new(),
                other => other?,
            };
            let arns: Vec<String> = groups.iter().filter_map(|tg| tg.target_group_arn().map(str::to_owned)).collect();
            let tags = elb_tags_by_arn(&c, &arns).await?;
            Ok(groups.iter().map(|tg| tg_info(tg, tags_of(&tags, tg.target_group_arn().unwrap_or_default()))).collect())
        })
    }

    fn create_target_group(&self, req: NewTargetGroup) -> Result<String, AwsError> {
        self.api(move |c| async move {
            // TCP health checks on the traffic port unless told otherwise, as the
            // controller creates NLB target groups for IP targets
            // (pkg/service/model_build_target_group.go).
            let out = c
                .elb
                .create_target_group()
                .name(req.name)
                .protocol(elb::types::ProtocolEnum::Tcp)
                .port(i32::from(req.port))
                .vpc_id(req.vpc_id)
                .target_type(elb::types::TargetTypeEnum::Ip)
                .health_check_protocol(elb::types::ProtocolEnum::Tcp)
                .health_check_port(health_check_port(req.health_check_port))
                .set_tags(elb_tags(req.tags))
                .send()
                .await
                .map_err(aws_error)?;
            out.target_groups()
                .first()
                .and_then(|tg| tg.target_group_arn())
                .map(str::to_owned)
                .ok_or_else(|| missing("CreateTargetGroup", "TargetGroupArn"))
        })
    }

    fn set_health_check_port(&self, tg_arn: &str, port: Option<u16>) -> Result<(), AwsError> {
        let tg_arn = tg_arn.to_owned();
        self.api(move |c| async move {
            c.elb
                .modify_target_group()
                .target_group_arn(tg_arn)
                .health_check_port(health_check_port(port))
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    fn delete_target_group(&self, arn: &str) -> Result<(), AwsError> {
        let arn = arn.to_owned();
        self.api(move |c| async move {
            c.elb.delete_target_group().target_group_arn(arn).send().await.map_err(aws_error)?;
            Ok(())
        })
    }

    fn create_listener(
        &self,
        lb_arn: &str,
        port: u16,
        target_group_arn: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, AwsError> {
        let (lb_arn, target_group_arn) = (lb_arn.to_owned(), target_group_arn.to_owned());
        self.api(move |c| async move {
            let forward = elb::types::Action::builder()
                .r#type(elb::types::ActionTypeEnum::Forward)
                .target_group_arn(target_group_arn)
                .build();
            let out = c
                .elb
                .create_listener()
                .load_balancer_arn(lb_arn)
                .port(i32::from(port))
                .protocol(elb::types::ProtocolEnum::Tcp)
                .default_actions(forward)
                .set_tags(elb_tags(tags))
                .send()
                .await
                .map_err(aws_error)?;
            out.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .map(str::to_owned)
                .ok_or_else(|| missing("CreateListener", "ListenerArn"))
        })
    }

    fn registered_targets(&self, tg_arn: &str) -> Result<Vec<(String, u16)>, AwsError> {
        let tg_arn = tg_arn.to_owned();
        self.api(move |c| async move {
            let out = c.elb.describe_target_health().target_group_arn(tg_arn).send().await.map_err(aws_error)?;
            // A deregistered target stays listed as `draining` until its delay is over.
            Ok(out
                .target_health_descriptions()
                .iter()
                .filter(|d| {
                    d.target_health().and_then(|h| h.state()) != Some(&elb::types::TargetHealthStateEnum::Draining)
                })
                .filter_map(|d| {
                    let target = d.target()?;
                    Some((target.id()?.to_owned(), port_of(target.port())))
                })
                .collect())
        })
    }

    fn register_targets(&self, tg_arn: &str, list: &[(String, u16)]) -> Result<(), AwsError> {
        let (tg_arn, list) = (tg_arn.to_owned(), targets(list));
        self.api(move |c| async move {
            c.elb
                .register_targets()
                .target_group_arn(tg_arn)
                .set_targets(Some(list))
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    fn deregister_targets(&self, tg_arn: &str, list: &[(String, u16)]) -> Result<(), AwsError> {
        let (tg_arn, list) = (tg_arn.to_owned(), targets(list));
        self.api(move |c| async move {
            c.elb
                .deregister_targets()
                .target_group_arn(tg_arn)
                .set_targets(Some(list))
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    /// aws-iam-authenticator's Verify (pkg/token/token.go): the URL's shape
    /// first (host, path, query keys, action, signed cluster header, expiry),
    /// then a GET of it with `x-k8s-aws-id: <cluster>` and `Accept:
    /// application/json`; anything but 200 refuses the token, and the identity
    /// is read from the JSON answer. The URL is a bearer credential: it is
    /// never part of an error.
    fn verify_presigned_sts(&self, url: &str, cluster_header: &str) -> Result<CallerIdentity, String> {
        let (scheme, authority) = (self.sts_scheme.clone(), self.sts_authority.clone());
        crate::aws::check_eks_token_url(url, |s, h| s == scheme && h == authority, SystemTime::now())?;
        let request = http::Request::builder()
            .method("GET")
            .uri(url)
            .header("x-k8s-aws-id", cluster_header)
            .header("accept", "application/json")
            .body(SdkBody::empty())
            .map_err(|_| "the token URL cannot be requested".to_string())?;
        let request = HttpRequest::try_from(request).map_err(|_| "the token URL cannot be requested".to_string())?;
        let answer = self
            .call(move |c| async move {
                let response = tokio::time::timeout(STS_TIMEOUT, c.http.call(request))
                    .await
                    .map_err(|_| format!("STS did not answer within {STS_TIMEOUT:?}"))?
                    .map_err(|e| format!("error during GET: {}", DisplayErrorContext(&e)))?;
                let status = response.status().as_u16();
                let body = ByteStream::new(response.into_body())
                    .collect()
                    .await
                    .map_err(|e| format!("error reading the STS answer: {e}"))?
                    .into_bytes();
                Ok::<_, String>((status, body))
            })
            .map_err(|e| e.to_string())?;
        let (status, body) = answer?;
        let body = String::from_utf8_lossy(&body);
        if status != 200 {
            let excerpt: String = body.chars().take(512).collect();
            return Err(format!("error from AWS (expected 200, got {status}). Body: {excerpt}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("the STS answer is not JSON: {e}"))?;
        let result = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
        let field = |name: &str| result.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        match (field("Arn"), field("Account"), field("UserId")) {
            (Some(arn), Some(account), Some(user_id)) if arn.starts_with("arn:") => {
                Ok(CallerIdentity { account, arn, user_id })
            }
            _ => Err("the STS answer has no caller identity".into()),
        }
    }
}

/// An answer without a member the operation always returns.
fn missing(operation: &str, member: &str) -> AwsError {
    AwsError::new(0, "ResponseError", format!("{operation} answered without {member}"))
}
