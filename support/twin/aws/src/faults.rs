//! What AWS answers when it throttles or is briefly unavailable, injected at a
//! rate set per run. Codes and statuses, per service and protocol:
//! - EC2: `RequestLimitExceeded`, HTTP 503 (botocore data/_retry.json "ec2"),
//!   message "Request limit exceeded." as EC2 answers it (503 bodies quoted in
//!   jclouds/legacy-jclouds#1214 and cloudfoundry/bosh-aws-cpi-release#61), and
//!   `Unavailable`, 503 (EC2 API reference, common errors; its message here is
//!   not from a source);
//! - ELBv2 and STS (query protocol): `Throttling`, HTTP 400, "Rate exceeded"
//!   (botocore _retry.json "throttling"; "Rate exceeded" as field reports quote
//!   ELBv2's answer, e.g. zalando-stups/senza#81), and `ServiceUnavailable`, 503
//!   (AWS common errors; its message here is not from a source);
//! - EKS (rest-json): `ThrottlingException` 429 and `ServiceUnavailableException`
//!   503 (botocore data/eks/2017-11-01/service-2.json; their messages here are
//!   not from a source);
//! - for all: a slow answer, and a connection closed before any answer.
//!
//! The SDKs retry every one of these (aws-runtime retries/classifiers.rs
//! THROTTLING_ERRORS; aws-smithy-runtime TRANSIENT_ERROR_STATUS_CODES 500-504
//! and I/O errors), which is what a run at a low rate shows.

use std::time::Duration;

use rand::Rng;

use crate::error::AwsError;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ApiFaults {
    rate: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Error(AwsError),
    Slow(Duration),
    Dropped,
}

/// The service a request is for, as far as its faults go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ec2,
    Query,
    Eks,
}

impl ApiFaults {
    pub fn at_rate(rate: f64) -> Self {
        ApiFaults { rate: rate.clamp(0.0, 1.0) }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn pick(&self, family: Family) -> Option<Fault> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut rng = rand::rng();
        if !rng.random_bool(self.rate) {
            return None;
        }
        let (throttled, unavailable) = match family {
            Family::Ec2 => (
                AwsError::new(503, "RequestLimitExceeded", "Request limit exceeded."),
                AwsError::new(503, "Unavailable", "The server is overloaded and can't handle the request."),
            ),
            Family::Query => (
                AwsError::new(400, "Throttling", "Rate exceeded"),
                AwsError::new(503, "ServiceUnavailable", "Service Unavailable"),
            ),
            Family::Eks => (
                AwsError::new(429, "ThrottlingException", "Rate exceeded"),
                AwsError::new(503, "ServiceUnavailableException", "Service Unavailable"),
            ),
        };
        Some(match rng.random_range(0..4) {
            0 => Fault::Error(throttled),
            1 => Fault::Error(unavailable),
            2 => Fault::Slow(Duration::from_millis(rng.random_range(500..=1500))),
            _ => Fault::Dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_throttles_with_its_own_code() {
        assert_eq!(ApiFaults::default().pick(Family::Ec2), None);
        let all = ApiFaults::at_rate(1.0);
        let codes = |f: Family| -> Vec<String> {
            (0..400)
                .filter_map(|_| match all.pick(f) {
                    Some(Fault::Error(e)) => Some(e.code),
                    _ => None,
                })
                .collect()
        };
        assert!(codes(Family::Ec2).iter().any(|c| c == "RequestLimitExceeded"));
        assert!(codes(Family::Query).iter().any(|c| c == "Throttling"));
        assert!(codes(Family::Eks).iter().all(|c| c.ends_with("Exception")));
    }
}
