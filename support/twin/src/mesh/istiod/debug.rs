//! istiod's debug endpoints (port 15014; `pilot-discovery request GET
//! /debug/...` in its container): `/debug/clusterz` lists the clusters and
//! their sync status, `/debug/networkz` the resolved network gateways.

use serde_json::Value;

use super::remote::SyncStatus;
use super::xds::NetworkGateway;

/// A JSON string literal.
fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

/// `[{"id","secretName","syncStatus"}]`: istiod's own cluster first (no
/// secret, always synced), then the remote ones. Written by hand to keep
/// istiod's field order.
pub fn clusterz(own_id: &str, remotes: &[(String, String, SyncStatus)]) -> String {
    let own = (own_id.to_owned(), String::new(), SyncStatus::Synced);
    let items: Vec<String> = std::iter::once(&own)
        .chain(remotes)
        .map(|(id, secret, status)| {
            format!(
                r#"{{"id":{},"secretName":{},"syncStatus":{}}}"#,
                quoted(id),
                quoted(secret),
                quoted(status.as_str())
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// `[{"Network","Cluster","Addr","Port"}]`, sorted.
pub fn networkz(gateways: &[NetworkGateway]) -> String {
    let mut gws = gateways.to_vec();
    gws.sort();
    let items: Vec<String> = gws
        .iter()
        .map(|g| {
            format!(
                r#"{{"Network":{},"Cluster":{},"Addr":{},"Port":{}}}"#,
                quoted(&g.network),
                quoted(&g.cluster),
                quoted(&g.addr),
                g.port
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusterz_and_networkz_have_istiods_shape() {
        let z = clusterz(
            "cluster1",
            &[("cluster2".into(), "istio-system/istio-remote-secret-cluster2".into(), SyncStatus::Synced)],
        );
        assert_eq!(
            z,
            r#"[{"id":"cluster1","secretName":"","syncStatus":"synced"},{"id":"cluster2","secretName":"istio-system/istio-remote-secret-cluster2","syncStatus":"synced"}]"#
        );
        let n = networkz(&[NetworkGateway {
            network: "network2".into(),
            cluster: "cluster2".into(),
            addr: "44.227.39.238".into(),
            port: 15443,
        }]);
        assert_eq!(n, r#"[{"Network":"network2","Cluster":"cluster2","Addr":"44.227.39.238","Port":15443}]"#);
    }
}
