//! The admin kubeconfig k3s writes (k3s pkg/clientaccess/kubeconfig.go
//! WriteClientKubeConfig, called from pkg/cli/server/server.go
//! writeKubeConfig): one cluster, context and user all named `default`, the
//! server `https://<bind address or 127.0.0.1>:<https-listen-port>`, the
//! server CA inline, and the admin client certificate (CN system:admin, O
//! system:masters, signed by the client CA: pkg/daemons/control/deps/deps.go
//! genClientCerts) with its key. Written with mode 0600 unless asked otherwise.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// k3s' default when neither `--write-kubeconfig-mode` nor K3S_KUBECONFIG_MODE is set.
pub const DEFAULT_MODE: u32 = 0o600;
/// Where k3s writes it when run as root (pkg/datadir GlobalConfig).
pub const DEFAULT_PATH: &str = "/etc/rancher/k3s/k3s.yaml";

/// The kubeconfig's text.
pub fn render(server: &str, server_ca_pem: &str, client_cert_pem: &str, client_key_pem: &str) -> String {
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": server, "certificate-authority-data": b64(server_ca_pem)}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "preferences": {},
        "users": [{"name": "default", "user": {
            "client-certificate-data": b64(client_cert_pem),
            "client-key-data": b64(client_key_pem),
        }}],
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Writes `text` to `path` with `mode` (parent directories made as needed).
pub fn write(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_has_k3s_names_and_inline_credentials() {
        let text = render("https://127.0.0.1:6443", "CA", "CERT", "KEY");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        assert_eq!(doc["current-context"], "default");
        assert_eq!(doc["clusters"][0]["name"], "default");
        assert_eq!(doc["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(doc["clusters"][0]["cluster"]["certificate-authority-data"], STANDARD.encode("CA"));
        assert_eq!(doc["contexts"][0]["context"]["cluster"], "default");
        assert_eq!(doc["contexts"][0]["context"]["user"], "default");
        assert_eq!(doc["users"][0]["name"], "default");
        assert_eq!(doc["users"][0]["user"]["client-certificate-data"], STANDARD.encode("CERT"));
        assert_eq!(doc["users"][0]["user"]["client-key-data"], STANDARD.encode("KEY"));
        assert!(doc["users"][0]["user"].get("token").is_none());
    }

    #[test]
    fn the_file_gets_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("etc/rancher/k3s/k3s.yaml");
        write(&path, "x", 0o644).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o644);
        write(&path, "y", DEFAULT_MODE).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
}
