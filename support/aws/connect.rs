//! Building the aws-sdk clients, and turning SDK errors into one clear line.

use std::time::Duration;

use anyhow::Result;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;

/// Where and as whom to reach AWS. Empty fields fall back to the SDK's default
/// chain (environment, profiles, IMDS), which also honours `AWS_ENDPOINT_URL`.
#[derive(Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub credentials: Option<(String, String)>,
    pub api_timeout: Option<Duration>,
}

impl std::fmt::Debug for AwsSettings {
    // The secret key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

/// The AWS clients of one target.
#[derive(Clone, Debug)]
pub struct AwsAccess {
    pub config: SdkConfig,
    pub region: String,
    pub endpoint: Option<String>,
    pub eks: aws_sdk_eks::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

impl AwsAccess {
    pub async fn connect(settings: &AwsSettings) -> Result<AwsAccess> {
        let timeout = settings.api_timeout.unwrap_or(Duration::from_secs(30));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout * 3)
                    .build(),
            )
            // Five attempts, as botocore's legacy mode (the aws CLI v1 default) makes:
            // standard mode's three let one call in ~25 000 fail outright when 5% of
            // calls are throttled or cut, and a run makes thousands.
            .retry_config(RetryConfig::standard().with_max_attempts(5));
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "meshspec"));
        }
        let config = loader.load().await;
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            anyhow::anyhow!("no AWS region: set AWS_REGION (the seed uses us-west-2) or pass --region")
        })?;
        if config.credentials_provider().is_none() {
            anyhow::bail!("no AWS credentials provider could be configured");
        }
        let endpoint = settings.endpoint.clone().or_else(|| config.endpoint_url().map(str::to_string));
        Ok(AwsAccess {
            eks: aws_sdk_eks::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            config,
            region,
            endpoint,
        })
    }

    /// Fail early, with the service's own words, when credentials or the
    /// endpoint are wrong (one cheap read-only call, bounded more tightly than
    /// other calls: a run should not wait minutes to learn that nothing answers).
    pub async fn preflight(&self) -> Result<()> {
        self.eks
            .list_clusters()
            .max_results(1)
            .customize()
            .config_override(aws_sdk_eks::config::Builder::default().timeout_config(quick_timeouts()))
            .send()
            .await
            .map_err(|e| self.failure("eks", "ListClusters", &e).context("AWS preflight failed"))?;
        Ok(())
    }

    /// Where a service's calls go: the configured endpoint, or AWS's regional one.
    pub fn endpoint_of(&self, service: &str) -> String {
        self.endpoint.clone().unwrap_or_else(|| format!("https://{service}.{}.amazonaws.com", self.region))
    }

    /// A failed call as one error: `AwsUnreachable` when no answer came, else
    /// the service's code and message.
    pub fn failure<E, R>(&self, service: &str, operation: &'static str, err: &SdkError<E, R>) -> anyhow::Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let unanswered = match err {
            SdkError::TimeoutError(_) => Some(crate::kube::failure::Cause::TimedOut),
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => Some(crate::kube::failure::cause_of(err)),
            _ => None,
        };
        match unanswered {
            Some(cause) => AwsUnreachable { endpoint: self.endpoint_of(service), operation, cause }.into(),
            None => anyhow::anyhow!("{service} {operation}: {}", explain(err)),
        }
    }
}

/// Two attempts of 10 s each at most, for the calls that tell whether AWS answers at all.
fn quick_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(20))
        .build()
}

/// No answer from an AWS endpoint: who, which call, and why.
#[derive(Debug, thiserror::Error)]
#[error("the AWS endpoint {endpoint} does not answer {operation}: {cause}")]
pub struct AwsUnreachable {
    pub endpoint: String,
    pub operation: &'static str,
    pub cause: crate::kube::failure::Cause,
}

/// One line that says what went wrong with an AWS call: the service's error code
/// and message, or why the request never got an answer.
pub fn explain<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
            }
        }
        SdkError::TimeoutError(_) => "the AWS endpoint did not answer in time".to_string(),
        SdkError::DispatchFailure(d) => {
            if d.is_io() || d.is_timeout() {
                format!("cannot reach the AWS endpoint: {}", aws_smithy_types::error::display::DisplayErrorContext(err))
            } else {
                format!("request failed: {}", aws_smithy_types::error::display::DisplayErrorContext(err))
            }
        }
        SdkError::ConstructionFailure(_) => format!(
            "could not build the request (credentials or region missing?): {}",
            aws_smithy_types::error::display::DisplayErrorContext(err)
        ),
        _ => aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    }
}

/// The service error code of a failed call, for typed decisions (never string-matching messages).
pub fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The account of the caller (STS GetCallerIdentity).
pub async fn account_id(aws: &AwsAccess) -> Result<String> {
    Ok(caller_identity(aws).await?.0)
}

/// Who the credentials are: account and ARN (STS GetCallerIdentity).
pub async fn caller_identity(aws: &AwsAccess) -> Result<(String, String)> {
    let sts = aws_sdk_sts::Client::new(&aws.config);
    let me = sts
        .get_caller_identity()
        .customize()
        .config_override(aws_sdk_sts::config::Builder::default().timeout_config(quick_timeouts()))
        .send()
        .await
        .map_err(|e| aws.failure("sts", "GetCallerIdentity", &e))?;
    let account = me
        .account()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("GetCallerIdentity answered without an account"))?;
    Ok((account, me.arn().unwrap_or_default().to_string()))
}

/// A service's refusal, kept typed so callers decide on the code (e.g.
/// DependencyViolation), never on the message text.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: String,
    pub message: String,
}

impl ServiceError {
    pub fn of<E, R>(err: &SdkError<E, R>) -> ServiceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        ServiceError {
            code: error_code(err).unwrap_or("RequestFailed").to_string(),
            message: match err {
                SdkError::ServiceError(se) => se.err().message().unwrap_or_default().to_string(),
                _ => explain(err),
            },
        }
    }
}

/// A failed AWS call, typed: which service and operation, and the service's
/// code when it answered (None when no answer came).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation}: {detail}")]
pub struct AwsCallError {
    pub service: &'static str,
    /// The operation and what it was about, e.g. "CreateVpc 10.1.0.0/16".
    pub operation: String,
    pub code: Option<String>,
    pub detail: String,
}

impl AwsCallError {
    pub fn of<E, R>(service: &'static str, operation: impl Into<String>, err: &SdkError<E, R>) -> AwsCallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        AwsCallError {
            service,
            operation: operation.into(),
            code: error_code(err).map(str::to_string),
            detail: explain(err),
        }
    }

    /// The API kept refusing for its own reasons (throttling, a server error, no
    /// answer), not because of what was asked: a retry later may pass.
    pub fn is_service_trouble(&self) -> bool {
        // aws-runtime's THROTTLING_ERRORS and the 5xx codes services send (retries/classifiers.rs).
        const TROUBLE: &[&str] = &[
            "Throttling",
            "ThrottlingException",
            "RequestLimitExceeded",
            "RequestThrottled",
            "TooManyRequestsException",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "Unavailable",
            "InternalError",
            "InternalFailure",
            "ServerException",
        ];
        match &self.code {
            None => true,
            Some(c) => TROUBLE.contains(&c.as_str()),
        }
    }
}
