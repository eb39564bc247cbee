//! The error every operation returns: a service error code as the real API
//! spells it, a message, and the HTTP status the protocol sends it with.

/// A service error (`InvalidVpcID.NotFound`, `LoadBalancerNotFound`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl AwsError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError { code: code.into(), message: message.into(), status }
    }

    /// A client error (400): what every query-protocol service uses for
    /// validation and not-found errors alike.
    pub fn bad(code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError::new(400, code, message)
    }

    /// EC2's error for a missing required parameter.
    pub(crate) fn ec2_missing(name: &str) -> Self {
        AwsError::bad("MissingParameter", format!("The request must contain the parameter {name}"))
    }

    /// ELBv2's (smithy-style) error for a missing required member.
    pub(crate) fn elb_missing(name: &str) -> Self {
        AwsError::bad(
            "ValidationError",
            format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"),
        )
    }

    pub(crate) fn elb_validation(message: impl Into<String>) -> Self {
        AwsError::bad("ValidationError", message)
    }
}

pub type AwsResult<T> = Result<T, AwsError>;
