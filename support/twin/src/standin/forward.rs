//! What a ServiceLB port does with a connection: what k3s' svclb pod and
//! kube-proxy do (DNAT to the Service's cluster IP, then to one endpoint),
//! with the endpoint simulated in-process: an HTTP request is answered by
//! the pod's program through the mesh's data plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::servicelb::Forward;
use crate::aws::Clock;
use crate::kube::Resource;
use crate::mesh::dataplane::Outcome;
use crate::mesh::wire::{read_request, write_response};
use crate::mesh::Mesh;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections accepted per Service port (`namespace/name:port`).
#[derive(Debug, Default)]
pub struct ConnectionLog(Mutex<BTreeMap<String, u64>>);

impl ConnectionLog {
    fn record(&self, key: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
    }

    /// How many connections the port of `namespace/name` accepted.
    pub fn count(&self, namespace: &str, name: &str, port: u16) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{namespace}/{name}:{port}"))
            .copied()
            .unwrap_or(0)
    }
}

/// The node's forwarding into the cluster.
pub struct NodeForward {
    mesh: Weak<Mesh>,
    cluster: String,
    clock: Clock,
    log: Arc<ConnectionLog>,
}

impl NodeForward {
    pub fn new(mesh: &Arc<Mesh>, cluster: &str, clock: Clock, log: Arc<ConnectionLog>) -> NodeForward {
        NodeForward { mesh: Arc::downgrade(mesh), cluster: cluster.to_owned(), clock, log }
    }
}

impl Forward for NodeForward {
    fn forward(&self, namespace: String, service: String, port: u16, conn: TcpStream) {
        self.log.record(format!("{namespace}/{service}:{port}"));
        let (mesh, cluster, clock) = (self.mesh.clone(), self.cluster.clone(), self.clock);
        tokio::spawn(async move {
            let Some(mesh) = mesh.upgrade() else { return };
            if let Err(e) = serve_connection(mesh, &cluster, clock, &namespace, &service, port, conn).await {
                tracing::debug!(service = %format!("{namespace}/{service}:{port}"), "node port connection: {e}");
            }
        });
    }
}

async fn serve_connection(
    mesh: Arc<Mesh>,
    cluster: &str,
    clock: Clock,
    namespace: &str,
    service: &str,
    port: u16,
    mut conn: TcpStream,
) -> std::io::Result<()> {
    let Some(mc) = mesh.cluster(cluster) else { return Ok(()) };
    let Some(svc) = mc.cluster.get(&Resource::services(), Some(namespace), service) else {
        return Ok(());
    };
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(READ_TIMEOUT, conn.peek(&mut first)).await.map_err(|_| timed_out())??;
    if n == 1 && first[0] == 0x16 {
        // A TLS ClientHello: for a gateway's passthrough port.
        return super::passthrough::serve(mesh, mc, clock, &svc, port, conn).await;
    }
    let Some(req) = tokio::time::timeout(READ_TIMEOUT, read_request(&mut conn)).await.map_err(|_| timed_out())?? else {
        return Ok(());
    };
    let delivery = mesh.from_node(&mc, &svc, port, &req);
    tokio::time::sleep(clock.compress(delivery.after)).await;
    match delivery.outcome {
        Outcome::Response(r) => conn.write_all(&write_response(&r)).await,
        // Refused, unreachable or reset inside the cluster: the client sees the connection end.
        _ => Ok(()),
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "client sent no request in time")
}
