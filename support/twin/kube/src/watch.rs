//! Watch streams: newline-delimited JSON events over a chunked 200 answer,
//! filtered by namespace and selectors (an object that stops matching is sent
//! as DELETED, one that starts matching as ADDED), with periodic BOOKMARKs when
//! asked and a 410 ERROR event for a resourceVersion older than the log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::resources::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventKind, LogEntry, Store, WatchStart};
use crate::table::{self, IncludeObject};

/// How often an idle watch sends a BOOKMARK (when the client allows them).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(2);
/// A watch without `timeoutSeconds` ends after this long, as real servers end theirs.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch request asked for.
pub struct WatchRequest {
    /// The resource at the version the client asked for.
    pub resource: Resource,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub start: WatchStart,
    pub bookmarks: bool,
    /// Streaming list: a final BOOKMARK marks the end of the initial ADDEDs.
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// Each event's object as a one-row Table (`kubectl get -w`).
    pub table: Option<IncludeObject>,
}

/// The lines of a watch, ending when the timeout expires, the client goes away
/// or the live feed overflows (the client then re-watches from its last RV).
pub fn stream(store: &Arc<Store>, req: WatchRequest) -> impl Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    match store.watch(&req.resource, req.start) {
        Ok(feed) => {
            tokio::spawn(run(feed, req, tx));
        }
        Err(e) => {
            // Expired: one ERROR event, then the stream closes.
            let line = line(&json!({"type": "ERROR", "object": e.to_status()}));
            let _ = tx.try_send(line);
        }
    }
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

fn line(v: &Value) -> Bytes {
    let mut text = v.to_string();
    text.push('\n');
    Bytes::from(text)
}

async fn run(mut feed: crate::store::WatchFeed, req: WatchRequest, tx: mpsc::Sender<Bytes>) {
    let deadline = tokio::time::sleep(req.timeout.unwrap_or(DEFAULT_TIMEOUT));
    tokio::pin!(deadline);
    let mut last_rv = feed.rv;
    if let WatchStart::After(n) = req.start {
        last_rv = last_rv.max(n);
    }
    for entry in std::mem::take(&mut feed.initial) {
        if let Some(event) = render(&req, &entry) {
            if tx.send(line(&event)).await.is_err() {
                return;
            }
        }
    }
    if req.send_initial_events && req.bookmarks {
        let mut mark = bookmark(&req.resource, last_rv);
        mark["object"]["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        if tx.send(line(&mark)).await.is_err() {
            return;
        }
    }
    let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = ticker.tick() => {
                if req.bookmarks && tx.send(line(&bookmark(&req.resource, last_rv))).await.is_err() {
                    return;
                }
            }
            msg = feed.live.recv() => match msg {
                Ok(entry) => {
                    last_rv = last_rv.max(entry.rv);
                    if let Some(event) = render(&req, &entry) {
                        if tx.send(line(&event)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

fn bookmark(r: &Resource, rv: u64) -> Value {
    json!({"type": "BOOKMARK", "object": {"kind": r.kind, "apiVersion": r.api_version(), "metadata": {"resourceVersion": rv.to_string()}}})
}

/// The event this watcher sees for a log entry, if any.
fn render(req: &WatchRequest, entry: &LogEntry) -> Option<Value> {
    let r = &req.resource;
    if entry.resource.group != r.group || entry.resource.plural != r.plural {
        return None;
    }
    let in_scope = |o: &Value| {
        let ns_ok = match (&req.namespace, r.namespaced) {
            (Some(ns), true) => crate::object::namespace(o) == Some(ns.as_str()),
            _ => true,
        };
        ns_ok && req.labels.matches(o) && req.fields.matches(o)
    };
    let now = in_scope(&entry.object);
    let before = entry.old.as_ref().map(in_scope);
    let kind = match (entry.kind, before, now) {
        (EventKind::Added, _, true) => EventKind::Added,
        (EventKind::Modified, Some(true), true) => EventKind::Modified,
        (EventKind::Modified, Some(false) | None, true) => EventKind::Added,
        (EventKind::Modified, Some(true), false) => EventKind::Deleted,
        (EventKind::Deleted, Some(true), _) | (EventKind::Deleted, None, true) => EventKind::Deleted,
        _ => return None,
    };
    let mut object = entry.object.as_ref().clone();
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(r.api_version()));
    }
    let object = match req.table {
        Some(include) => table::table(r, &[object], entry.rv, include),
        None => object,
    };
    Some(json!({"type": kind.as_str(), "object": object}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn request(start: WatchStart, labels: &str) -> WatchRequest {
        WatchRequest {
            resource: Resource::configmaps(),
            namespace: Some("default".into()),
            labels: LabelSelector::parse(labels).expect("selector"),
            fields: FieldSelector::default(),
            start,
            bookmarks: false,
            send_initial_events: false,
            timeout: Some(Duration::from_secs(5)),
            table: None,
        }
    }

    async fn next(s: &mut (impl Stream<Item = Bytes> + Unpin)) -> Value {
        let b = tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("in time").expect("a line");
        assert!(b.ends_with(b"\n"));
        serde_json::from_slice(&b).expect("json")
    }

    #[tokio::test]
    async fn selector_transitions_become_added_and_deleted() {
        let store = Store::new();
        let r = Resource::configmaps();
        let mut s = Box::pin(stream(&store, request(WatchStart::After(store.resource_version()), "app=x")));
        store.create(&r, Some("default"), json!({"metadata": {"name": "c", "labels": {"app": "y"}}})).expect("create");
        store
            .merge_patch(&r, Some("default"), "c", json!({"metadata": {"labels": {"app": "x"}}}))
            .expect("now matches");
        let e = next(&mut s).await;
        assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("c")));
        store.merge_patch(&r, Some("default"), "c", json!({"data": {"k": "v"}})).expect("still matches");
        assert_eq!(next(&mut s).await["type"], "MODIFIED");
        store
            .merge_patch(&r, Some("default"), "c", json!({"metadata": {"labels": {"app": "z"}}}))
            .expect("stops matching");
        assert_eq!(next(&mut s).await["type"], "DELETED");
    }

    #[tokio::test]
    async fn expired_resource_version_yields_a_410_error_event() {
        let store = Store::with_log_capacity(1);
        let r = Resource::configmaps();
        for n in ["a", "b", "c"] {
            store.create(&r, Some("default"), json!({"metadata": {"name": n}})).expect("create");
        }
        let mut s = Box::pin(stream(&store, request(WatchStart::After(1), "")));
        let e = next(&mut s).await;
        assert_eq!(e["type"], "ERROR");
        assert_eq!(e["object"]["code"], 410);
        assert_eq!(e["object"]["reason"], "Expired");
        assert!(s.next().await.is_none(), "closed after the error");
    }

    #[tokio::test]
    async fn initial_events_then_bookmark_and_tables() {
        let store = Store::new();
        let r = Resource::configmaps();
        store.create(&r, Some("default"), json!({"metadata": {"name": "a"}})).expect("create");
        let mut req = request(WatchStart::Now, "");
        req.bookmarks = true;
        req.send_initial_events = true;
        req.table = Some(IncludeObject::Metadata);
        let mut s = Box::pin(stream(&store, req));
        let added = next(&mut s).await;
        assert_eq!(added["type"], "ADDED");
        assert_eq!(added["object"]["kind"], "Table");
        assert_eq!(added["object"]["rows"][0]["cells"][0], "a");
        let mark = next(&mut s).await;
        assert_eq!(mark["type"], "BOOKMARK");
        assert_eq!(mark["object"]["kind"], "ConfigMap");
        assert_eq!(mark["object"]["apiVersion"], "v1");
        assert_eq!(mark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
        assert_eq!(mark["object"]["metadata"]["resourceVersion"], store.resource_version().to_string());
    }
}
