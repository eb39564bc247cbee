//! HTTP/1.1 on a real byte stream, as far as the twin's programs speak it:
//! one request, one response, then the connection closes.

use tokio::io::AsyncReadExt;

use super::apps::{self, HttpRequest, HttpResponse};

/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;

/// Reads one HTTP/1.1 request (head and a Content-Length body); `None` on a clean close.
pub async fn read_request<R: tokio::io::AsyncRead + Unpin>(conn: &mut R) -> std::io::Result<Option<HttpRequest>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or("/").to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(64 * 1024)];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let authority = header("host").unwrap_or_default();
    Ok(Some(HttpRequest { method, authority, path, headers, body }))
}

/// An HTTP/1.1 response on the wire (the connection closes after it).
pub fn write_response(r: &HttpResponse) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, apps::reason(r.status)).into_bytes();
    for (k, v) in &r.headers {
        if !k.eq_ignore_ascii_case("connection") {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&r.body);
    out
}

/// Parses an HTTP/1.1 response as [`write_response`] writes it (and as the
/// twin's own pods answer): status, headers, Content-Length body.
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(conn: &mut R) -> std::io::Result<HttpResponse> {
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| k != "connection")
        .collect();
    Ok(HttpResponse { status, headers, body: buf[head_end + 4..].to_vec() })
}

/// A request on the wire (Host first, then the other headers, then the body).
pub fn write_request(req: &HttpRequest) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, req.path).into_bytes();
    if !req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(format!("host: {}\r\n", req.authority).as_bytes());
    }
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("connection") {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", req.body.len()).as_bytes());
    out.extend_from_slice(&req.body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::apps::HttpResponse;

    #[tokio::test]
    async fn requests_and_responses_round_trip_on_the_wire() {
        let raw = b"GET /hello HTTP/1.1\r\nHost: helloworld.sample:5000\r\nContent-Length: 2\r\n\r\nhi";
        let mut r: &[u8] = raw;
        let req = read_request(&mut r).await.expect("read").expect("a request");
        assert_eq!(
            (req.method.as_str(), req.path.as_str(), req.authority.as_str()),
            ("GET", "/hello", "helloworld.sample:5000")
        );
        assert_eq!(req.body, b"hi");
        let again = write_request(&req);
        let back_req = read_request(&mut again.as_slice()).await.expect("read").expect("a request");
        assert_eq!(back_req.body, b"hi");
        assert_eq!(back_req.authority, "helloworld.sample:5000");
        let mut empty: &[u8] = b"";
        assert!(read_request(&mut empty).await.expect("read").is_none());
        let resp = HttpResponse::new(200, "text/plain", "Hello version: v1\n").with_header("server", "envoy");
        let wire = write_response(&resp);
        let back = read_response(&mut wire.as_slice()).await.expect("parse");
        assert_eq!(back.status, 200);
        assert_eq!(back.body, resp.body);
        assert_eq!(back.header("server"), Some("envoy"));
    }
}
