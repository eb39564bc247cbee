//! HTTP as the mesh's data plane carries it (in-process, nothing crosses a
//! socket), and what the sample apps answer: helloworld (Flask under
//! gunicorn, port 5000) answers `/hello` with its version and instance, and
//! `/health`; any other listening program answers 404.

use serde_json::Value;

use super::injection::env_value;
use crate::programs::objects::{self, pod};

pub const HELLOWORLD_IMAGE: &str = "examples-helloworld";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The Host header (`helloworld.sample:5000`).
    pub authority: String,
    /// Path and query (`/hello`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        let body = body.into();
        HttpResponse {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("content-length".into(), body.len().to_string()),
                ("date".into(), chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
            ],
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) a header.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// The helloworld container of a pod, if it runs one.
fn helloworld(p: &Value) -> Option<&Value> {
    pod::containers(p).iter().find(|c| pod::image(c).contains(HELLOWORLD_IMAGE))
}

/// helloworld's version: `SERVICE_VERSION` (the image sets it), else the
/// image name's suffix, else the pod's `version` label.
pub fn helloworld_version(p: &Value) -> Option<String> {
    let c = helloworld(p)?;
    if let Some(v) = env_value(c, "SERVICE_VERSION").filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let image = pod::image(c);
    let repo = image.split(['@', ':']).next().unwrap_or(image);
    let from_image = repo.rsplit('/').next().and_then(|n| n.strip_prefix(&format!("{HELLOWORLD_IMAGE}-")));
    from_image.map(str::to_owned).or_else(|| objects::labels(p).get("version").cloned())
}

/// What the pod's program answers on `port` (it is known to listen there).
pub fn answer(p: &Value, port: u16, req: &HttpRequest) -> HttpResponse {
    let path = req.path.split('?').next().unwrap_or("/");
    if helloworld(p).is_some() && port == 5000 {
        let version = helloworld_version(p).unwrap_or_else(|| "None".into());
        let html = "text/html; charset=utf-8";
        let response = match (req.method.as_str(), path) {
            ("GET" | "HEAD", "/hello") => {
                HttpResponse::new(200, html, format!("Hello version: {version}, instance: {}\n", objects::name(p)))
            }
            ("GET" | "HEAD", "/health") => HttpResponse::new(200, html, "Helloworld is healthy"),
            (_, "/hello" | "/health") => HttpResponse::new(405, html, FLASK_405),
            _ => HttpResponse::new(404, html, FLASK_404),
        };
        return response.with_header("server", "gunicorn");
    }
    HttpResponse::new(404, "text/plain; charset=utf-8", "404 page not found\n")
}

const FLASK_404: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n";
const FLASK_405: &str = "<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            authority: "helloworld.sample:5000".into(),
            path: path.into(),
            headers: vec![],
            body: vec![],
        }
    }

    fn hw(image: &str, env: Value, labels: Value) -> Value {
        json!({"metadata": {"name": "helloworld-v1-867747c89-7vzwl", "labels": labels},
               "spec": {"containers": [{"name": "helloworld", "image": image, "env": env}]}})
    }

    #[test]
    fn helloworld_says_its_version_and_instance() {
        let p = hw("docker.io/istio/examples-helloworld-v1", json!([]), json!({}));
        let r = answer(&p, 5000, &get("/hello"));
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap(), "Hello version: v1, instance: helloworld-v1-867747c89-7vzwl\n");
        assert_eq!(answer(&p, 5000, &get("/health")).status, 200);
        assert_eq!(answer(&p, 5000, &get("/nope")).status, 404);
        assert_eq!(answer(&p, 8080, &get("/hello")).status, 404, "only on 5000");
    }

    #[test]
    fn the_version_comes_from_env_then_image_then_label() {
        let env = hw(
            "docker.io/istio/examples-helloworld-v1:1.0",
            json!([{"name": "SERVICE_VERSION", "value": "v9"}]),
            json!({}),
        );
        assert_eq!(helloworld_version(&env).as_deref(), Some("v9"));
        let image = hw("docker.io/istio/examples-helloworld-v2:1.0", json!([]), json!({"version": "v3"}));
        assert_eq!(helloworld_version(&image).as_deref(), Some("v2"));
        let label = hw("example.com/examples-helloworld", json!([]), json!({"version": "v3"}));
        assert_eq!(helloworld_version(&label).as_deref(), Some("v3"));
    }
}
