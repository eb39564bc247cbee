//! A bearer token that changes while its clients live. EKS refuses a token 15
//! minutes after it was signed, and a client may be held by a wait for longer
//! than that: every request reads the current token from a shared slot, which
//! a background task re-signs well before it expires.

use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderValue, AUTHORIZATION};
use http::Request;

/// The token every request of the clients built on it sends.
#[derive(Clone)]
pub struct BearerSlot(Arc<RwLock<String>>);

impl std::fmt::Debug for BearerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSlot(..)")
    }
}

impl BearerSlot {
    pub fn new(token: String) -> Self {
        BearerSlot(Arc::new(RwLock::new(token)))
    }

    pub fn set(&self, token: String) {
        *self.0.write().expect("bearer lock") = token;
    }

    fn header(&self) -> Option<HeaderValue> {
        let token = self.0.read().expect("bearer lock");
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// A handle that does not keep the slot alive (for the refresher).
    pub fn downgrade(&self) -> Weak<RwLock<String>> {
        Arc::downgrade(&self.0)
    }

    /// Re-sign the token every `every` with `sign` (retrying sooner after a
    /// failure), for as long as a client still holds the slot.
    pub fn refresh_with<F, Fut>(&self, every: Duration, retry: Duration, mut sign: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<String>> + Send,
    {
        let weak = self.downgrade();
        tokio::spawn(async move {
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                let Some(slot) = weak.upgrade() else { return };
                drop(slot);
                match sign().await {
                    Ok(token) => {
                        let Some(slot) = weak.upgrade() else { return };
                        *slot.write().expect("bearer lock") = token;
                        wait = every;
                    }
                    Err(e) => {
                        tracing::warn!("cannot refresh an EKS token, retrying in {retry:?}: {e:#}");
                        wait = retry;
                    }
                }
            }
        })
    }
}

/// Sets `Authorization: Bearer <current token>` on every request.
#[derive(Clone, Debug)]
pub struct BearerLayer(pub BearerSlot);

impl<S> tower::Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService { inner, slot: self.0.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    slot: BearerSlot,
}

impl<S, B> tower::Service<Request<B>> for BearerService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(value) = self.slot.header() {
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service};

    /// Answers each request with the Authorization header it got.
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = Option<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Option<String>, std::convert::Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<()>) -> Self::Future {
            let auth = req.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap().to_string());
            std::future::ready(Ok(auth))
        }
    }

    #[tokio::test]
    async fn every_request_carries_the_current_token() {
        let slot = BearerSlot::new("one".into());
        let mut svc = BearerLayer(slot.clone()).layer(Echo);
        assert_eq!(svc.call(Request::new(())).await.unwrap().as_deref(), Some("Bearer one"));
        slot.set("two".into());
        assert_eq!(svc.call(Request::new(())).await.unwrap().as_deref(), Some("Bearer two"));
        assert!(slot.header().unwrap().is_sensitive(), "kept out of debug output");
        assert_eq!(format!("{slot:?}"), "BearerSlot(..)");
    }

    /// Poll until `cond` holds, failing with what was seen after 10 s.
    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn the_refresher_re_signs_keeps_the_token_through_failures_and_stops_with_its_clients() {
        let slot = BearerSlot::new("t0".into());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let task = slot.refresh_with(Duration::from_millis(20), Duration::from_millis(5), move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                if n == 2 {
                    anyhow::bail!("STS is down")
                }
                Ok(format!("t{n}"))
            }
        });
        let read = || slot.0.read().unwrap().clone();
        eventually("the first re-signing", || read() == "t1").await;
        // The second signing fails: the slot keeps t1 until the third succeeds.
        eventually("a re-signing after the failure", || read() == "t3").await;
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 3);
        drop(slot);
        eventually("the refresher to stop once no client holds the slot", || task.is_finished()).await;
    }
}
