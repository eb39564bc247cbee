//! The WebSocket opening handshake (RFC 6455) with Kubernetes' channel
//! subprotocols: v5 when offered (it can half-close stdin), else v4.

use http::{header, HeaderMap, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::ApiError;
use crate::server::Response;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    V4,
    V5,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }
}

/// An acceptable upgrade request.
#[derive(Debug)]
pub(crate) struct Handshake {
    key: String,
    pub protocol: Protocol,
}

/// Whether a comma-separated header has `token` (case-insensitive), across repeated headers.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    tokens(headers, name).iter().any(|t| t.eq_ignore_ascii_case(token))
}

fn tokens(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

pub(crate) fn accept(headers: &HeaderMap) -> Result<Handshake, ApiError> {
    if !has_token(headers, header::UPGRADE, "websocket") || !has_token(headers, header::CONNECTION, "upgrade") {
        // SPDY (kubectl's fallback) lands here too: the twin streams over WebSocket only.
        return Err(ApiError::bad_request(
            "Upgrade request required: this API server streams exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io)",
        ));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if version.trim() != "13" {
        return Err(ApiError::bad_request(format!("unsupported WebSocket version {version:?}: expected 13")));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?
        .to_string();
    let offered = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let protocol = [Protocol::V5, Protocol::V4]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p.name()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no acceptable WebSocket subprotocol in {offered:?}: this server speaks v5.channel.k8s.io and v4.channel.k8s.io"
            ))
        })?;
    Ok(Handshake { key, protocol })
}

/// The 101 answer. `Connection` is exactly `Upgrade`: kube-rs rejects anything else.
pub(crate) fn switching_protocols(h: &Handshake) -> Response {
    let mut resp = http::Response::new(crate::server::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(h.protocol.name()));
    // The accept key is base64: always a valid header value.
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(h.key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    const BASE: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn with(extra: &[(&str, &str)]) -> HeaderMap {
        headers(&[BASE, extra].concat())
    }

    #[test]
    fn prefers_v5_and_falls_back_to_v4() {
        let h = accept(&with(&[("sec-websocket-protocol", "v4.channel.k8s.io, v5.channel.k8s.io")])).expect("ok");
        assert_eq!(h.protocol, Protocol::V5);
        let h = accept(&with(&[("sec-websocket-protocol", "v4.channel.k8s.io")])).expect("ok");
        assert_eq!(h.protocol, Protocol::V4);
        let h = accept(&with(&[
            ("sec-websocket-protocol", "base64.channel.k8s.io"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]))
        .expect("repeated headers");
        assert_eq!(h.protocol, Protocol::V5);
        let e = accept(&with(&[("sec-websocket-protocol", "channel.k8s.io")])).expect_err("v1 only");
        assert_eq!(e.code, 400);
        assert_eq!(accept(&with(&[])).expect_err("none").code, 400);
    }

    #[test]
    fn answers_rfc6455_accept_key_and_exact_connection() {
        let h = accept(&with(&[("sec-websocket-protocol", "v5.channel.k8s.io")])).expect("ok");
        let resp = switching_protocols(&h);
        assert_eq!(resp.status(), 101);
        // The RFC 6455 example key and answer.
        assert_eq!(resp.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(resp.headers()["connection"], "Upgrade");
        assert_eq!(resp.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    #[test]
    fn refuses_non_websocket_upgrades() {
        let spdy = headers(&[("upgrade", "SPDY/3.1"), ("connection", "Upgrade")]);
        assert_eq!(accept(&spdy).expect_err("spdy").code, 400);
        let old = headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-key", "x"),
        ]);
        assert!(accept(&old).expect_err("version").message.contains("version"));
    }
}
