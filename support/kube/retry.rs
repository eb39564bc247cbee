//! Retrying Kubernetes API calls the way client-go does, within a bound.
//!
//! client-go (rest/with_retry.go, checkWait; rest/request.go) retries a 429 or
//! any 5xx that carries an integer Retry-After, up to 10 times, and a GET whose
//! connection was reset or closed early. kube-rs' own default retries only 429,
//! 503 and 504, never a dropped connection, and up to 15 times with a backoff
//! that grows to minutes; it is turned off in favour of this one, whose every
//! wait is capped so that a call against a failing server ends within seconds.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tower::retry::Policy;
use tower::BoxError;

use super::failure::cause_of;

/// At most this many retries per call.
const MAX_RETRIES: u32 = 4;
/// A server's Retry-After is honoured up to this (the API server asks 1 to 32 s;
/// a run's deadlines are what bounds the total, not a promise of the server).
const MAX_WAIT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default)]
pub struct RetryPolicy {
    attempt: u32,
}

/// The Retry-After of a response, in whole seconds (as the API server sends it).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Whether a response says "try again": client-go's rule, and kube-rs' 503/504.
pub fn retryable_status(status: StatusCode, headers: &http::HeaderMap) -> bool {
    let asks = retry_after(headers).is_some();
    (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) && asks
        || matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        )
}

impl RetryPolicy {
    fn backoff(&self, server: Option<Duration>) -> Duration {
        let own = FIRST_BACKOFF * 2u32.saturating_pow(self.attempt.saturating_sub(1));
        server.unwrap_or_default().max(own).min(MAX_WAIT)
    }
}

impl<B> Policy<Request<kube::client::Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<kube::client::Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        if self.attempt >= MAX_RETRIES {
            return None;
        }
        let server = match result {
            Ok(r) if retryable_status(r.status(), r.headers()) => retry_after(r.headers()),
            // A read whose connection dropped did nothing; a write may have been done.
            Err(e) if req.method() == Method::GET && cause_of(e.as_ref()).is_dropped_connection() => None,
            _ => return None,
        };
        self.attempt += 1;
        Some(tokio::time::sleep(self.backoff(server)))
    }

    fn clone_request(&mut self, req: &Request<kube::client::Body>) -> Option<Request<kube::client::Body>> {
        let body = req.body().try_clone()?;
        let mut clone = Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
        if let Some(h) = clone.headers_mut() {
            h.extend(req.headers().clone());
        }
        let mut clone = clone.body(body).ok()?;
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(r) = retry {
            h.insert(http::header::RETRY_AFTER, r.parse().unwrap());
        }
        h
    }

    #[test]
    fn statuses_are_retried_as_client_go_and_kube_rs_do() {
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS, &headers(Some("1"))));
        assert!(retryable_status(StatusCode::INTERNAL_SERVER_ERROR, &headers(Some("2"))));
        assert!(!retryable_status(StatusCode::INTERNAL_SERVER_ERROR, &headers(None)));
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE, &headers(None)));
        assert!(!retryable_status(StatusCode::NOT_FOUND, &headers(Some("1"))));
        assert!(!retryable_status(StatusCode::CONFLICT, &headers(None)));
    }

    #[test]
    fn every_wait_is_capped() {
        let mut p = RetryPolicy { attempt: 1 };
        assert_eq!(p.backoff(Some(Duration::from_secs(32))), MAX_WAIT);
        assert_eq!(p.backoff(None), FIRST_BACKOFF);
        p.attempt = 3;
        assert_eq!(p.backoff(Some(Duration::from_secs(1))), Duration::from_secs(1));
    }
}
