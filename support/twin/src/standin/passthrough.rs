//! A gateway's TLS passthrough port on the node (filled in below).

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpStream;

use crate::aws::Clock;
use crate::mesh::{Mesh, MeshCluster};

pub async fn serve(
    _mesh: Arc<Mesh>,
    _at: Arc<MeshCluster>,
    _clock: Clock,
    _svc: &Value,
    _port: u16,
    _conn: TcpStream,
) -> std::io::Result<()> {
    Ok(())
}
