//! `curl` as the sleep pod runs it (curl 8): the options the mesh's checks
//! use, output where curl writes it, and curl's exit codes and messages
//! (6 could not resolve host, 7 could not connect, 28 timeout, 56 reset,
//! 22 with `--fail`, 2/3 for bad command lines and URLs).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::apps::{reason, HttpRequest, HttpResponse};
use super::dataplane::{Delivery, Outcome};
use crate::aws::Clock;
use crate::kube::exec::ExecOutput;

/// How curl reaches the network from the pod it runs in.
pub trait PodNetwork: Send + Sync {
    fn resolve(&self, host: &str) -> Option<Ipv4Addr>;
    fn send(&self, ip: Ipv4Addr, port: u16, req: &HttpRequest) -> Delivery;
    /// As `send`, for a network where a request may leave the process (a
    /// real connection to wait for); by default, `send`.
    fn send_async<'a>(
        &'a self,
        ip: Ipv4Addr,
        port: u16,
        req: &'a HttpRequest,
    ) -> futures::future::BoxFuture<'a, Delivery> {
        Box::pin(async move { self.send(ip, port, req) })
    }
}

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub silent: bool,
    pub show_error: bool,
    pub verbose: bool,
    pub include: bool,
    pub fail: bool,
    pub head: bool,
    pub output: Option<String>,
    pub write_out: Option<String>,
    pub max_time: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub method: Option<String>,
    pub headers: Vec<(String, String)>,
    pub data: Option<String>,
    pub urls: Vec<String>,
}

/// A command-line error: curl's message and exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    pub code: i32,
    pub message: String,
}

fn seconds(text: &str, option: &str) -> Result<Duration, UsageError> {
    text.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64).ok_or_else(|| {
        UsageError { code: 2, message: format!("option {option}: expected a proper numerical parameter") }
    })
}

/// Parses curl's arguments (short flags may be combined: `-sS`, `-so /dev/null`).
pub fn parse(args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options::default();
    let mut i = 0;
    let unknown = |opt: &str| UsageError { code: 2, message: format!("option {opt}: is unknown") };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let mut value = |name: &str, inline: Option<&str>| -> Result<String, UsageError> {
            if let Some(v) = inline.filter(|v| !v.is_empty()) {
                return Ok(v.to_owned());
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| UsageError { code: 2, message: format!("option {name}: requires parameter") })?;
            i += 1;
            Ok(v)
        };
        if let Some(long) = arg.strip_prefix("--") {
            match long {
                "silent" => o.silent = true,
                "show-error" => o.show_error = true,
                "verbose" => o.verbose = true,
                "include" => o.include = true,
                "fail" => o.fail = true,
                "head" => o.head = true,
                "location" | "insecure" | "no-progress-meter" | "http1.1" | "compressed" => {
                    if long == "no-progress-meter" {
                        o.show_error = true;
                    }
                }
                "output" => o.output = Some(value("--output", None)?),
                "write-out" => o.write_out = Some(value("--write-out", None)?),
                "max-time" => o.max_time = Some(seconds(&value("--max-time", None)?, "--max-time")?),
                "connect-timeout" => {
                    o.connect_timeout = Some(seconds(&value("--connect-timeout", None)?, "--connect-timeout")?)
                }
                "request" => o.method = Some(value("--request", None)?),
                "header" => o.headers.push(header(&value("--header", None)?)),
                "data" | "data-raw" => o.data = Some(value("--data", None)?),
                "user-agent" => o.headers.push(("User-Agent".into(), value("--user-agent", None)?)),
                "url" => o.urls.push(value("--url", None)?),
                _ => return Err(unknown(arg)),
            }
            continue;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.urls.push(arg.clone());
            continue;
        };
        for (pos, flag) in flags.char_indices() {
            let rest = &flags[pos + flag.len_utf8()..];
            match flag {
                's' => o.silent = true,
                'S' => o.show_error = true,
                'v' => o.verbose = true,
                'i' => o.include = true,
                'f' => o.fail = true,
                'I' => o.head = true,
                'L' | 'k' => {}
                // Options with a value take the rest of the word, or the next word.
                'o' | 'w' | 'm' | 'X' | 'H' | 'd' | 'A' => {
                    let v = value(&format!("-{flag}"), Some(rest))?;
                    match flag {
                        'o' => o.output = Some(v),
                        'w' => o.write_out = Some(v),
                        'm' => o.max_time = Some(seconds(&v, "-m")?),
                        'X' => o.method = Some(v),
                        'H' => o.headers.push(header(&v)),
                        'd' => o.data = Some(v),
                        _ => o.headers.push(("User-Agent".into(), v)),
                    }
                    break;
                }
                _ => return Err(unknown(&format!("-{flag}"))),
            }
        }
    }
    if o.urls.is_empty() {
        return Err(UsageError { code: 2, message: "no URL specified".into() });
    }
    Ok(o)
}

fn header(text: &str) -> (String, String) {
    match text.split_once(':') {
        Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
        None => (text.trim().to_owned(), String::new()),
    }
}

/// An http URL: host, port, path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
}

pub fn parse_url(text: &str) -> Result<Url, (i32, String)> {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".to_owned(), text),
    };
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        other => return Err((1, format!("Protocol \"{other}\" not supported"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], rest[at..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let port = p.parse::<u16>().map_err(|_| {
                (3, "URL rejected: Port number was not a decimal number between 0 and 65535".to_owned())
            })?;
            (h, port)
        }
        None => (authority, default_port),
    };
    if host.is_empty() {
        return Err((3, "URL rejected: No host part in the URL".into()));
    }
    Ok(Url { scheme, host: host.to_owned(), port, path })
}

/// What one transfer ended with.
struct Transfer {
    response: Option<HttpResponse>,
    ip: Option<Ipv4Addr>,
    elapsed: Duration,
    error: Option<(i32, String)>,
}

/// Runs `curl <args>`; `tty`: a terminal was asked for (no progress meter).
pub async fn run(args: &[String], tty: bool, net: &dyn PodNetwork, clock: Clock) -> ExecOutput {
    let mut out = ExecOutput::default();
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            out.stderr =
                format!("curl: {}\ncurl: try 'curl --help' or 'curl --manual' for more information\n", e.message)
                    .into_bytes();
            out.exit_code = e.code;
            return out;
        }
    };
    for url in &opts.urls {
        let t = transfer(&opts, url, net, clock, &mut out.stderr).await;
        if let Some(r) = &t.response {
            if opts.include || opts.head {
                out.stdout.extend(status_and_headers(r).into_bytes());
            }
            let to_stdout = opts.output.is_none();
            if to_stdout && !opts.head && !(opts.fail && r.status >= 400) {
                out.stdout.extend(&r.body);
            }
            if !opts.silent && !tty {
                out.stderr.extend(progress_meter(r.body.len(), t.elapsed).into_bytes());
            }
        }
        if let Some(w) = &opts.write_out {
            out.stdout.extend(write_out(w, &t).into_bytes());
        }
        let error = t.error.or_else(|| match &t.response {
            Some(r) if opts.fail && r.status >= 400 => {
                Some((22, format!("The requested URL returned error: {}", r.status)))
            }
            _ => None,
        });
        if let Some((code, message)) = error {
            if !opts.silent || opts.show_error {
                out.stderr.extend(format!("curl: ({code}) {message}\n").into_bytes());
            }
            out.exit_code = code;
        }
    }
    out
}

async fn transfer(opts: &Options, url: &str, net: &dyn PodNetwork, clock: Clock, stderr: &mut Vec<u8>) -> Transfer {
    let fail =
        |code, message| Transfer { response: None, ip: None, elapsed: Duration::ZERO, error: Some((code, message)) };
    let url = match parse_url(url) {
        Ok(u) => u,
        Err((code, message)) => return fail(code, message),
    };
    let Some(ip) = net.resolve(&url.host) else {
        return fail(6, format!("Could not resolve host: {}", url.host));
    };
    let method = opts.method.clone().unwrap_or_else(|| {
        if opts.head {
            "HEAD".into()
        } else if opts.data.is_some() {
            "POST".into()
        } else {
            "GET".into()
        }
    });
    let authority = if url.port == 80 { url.host.clone() } else { format!("{}:{}", url.host, url.port) };
    let mut headers = vec![
        ("Host".to_owned(), authority.clone()),
        ("User-Agent".to_owned(), "curl/8.5.0".to_owned()),
        ("Accept".to_owned(), "*/*".to_owned()),
    ];
    for (k, v) in &opts.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    let req = HttpRequest {
        method: method.clone(),
        authority,
        path: url.path.clone(),
        headers: headers.clone(),
        body: opts.data.clone().unwrap_or_default().into_bytes(),
    };
    if opts.verbose {
        let _ = writeln!(Verbose(stderr), "*   Trying {ip}:{}...", url.port);
    }
    let delivery = if url.scheme == "https" {
        // No TLS here: whatever answers, the handshake does not complete.
        Delivery { after: Duration::ZERO, outcome: Outcome::Reset }
    } else {
        net.send_async(ip, url.port, &req).await
    };
    let ms = |d: Duration| d.as_millis();
    let connected = matches!(delivery.outcome, Outcome::Response(_) | Outcome::Reset);
    // A limit that ends the transfer before the outcome: curl gives up (28).
    let connect_limit = opts.connect_timeout.filter(|_| !connected);
    let limit = [opts.max_time, connect_limit].into_iter().flatten().min();
    if let Some(limit) = limit.filter(|l| *l < delivery.after) {
        clock.sleep(limit).await;
        let message = if connected {
            format!("Operation timed out after {} milliseconds with 0 bytes received", ms(limit))
        } else {
            format!("Connection timed out after {} milliseconds", ms(limit))
        };
        return Transfer { response: None, ip: Some(ip), elapsed: limit, error: Some((28, message)) };
    }
    clock.sleep(delivery.after).await;
    let elapsed = delivery.after;
    let failed = |code, message| Transfer { response: None, ip: Some(ip), elapsed, error: Some((code, message)) };
    match delivery.outcome {
        Outcome::Response(r) => {
            if opts.verbose {
                let _ = writeln!(Verbose(stderr), "* Connected to {} ({ip}) port {}", url.host, url.port);
                let _ = writeln!(Verbose(stderr), "> {method} {} HTTP/1.1", url.path);
                for (k, v) in &headers {
                    let _ = writeln!(Verbose(stderr), "> {k}: {v}");
                }
                let _ = writeln!(Verbose(stderr), ">");
                for line in status_and_headers(&r).lines().filter(|l| !l.is_empty()) {
                    let _ = writeln!(Verbose(stderr), "< {line}");
                }
                let _ = writeln!(Verbose(stderr), "<");
            }
            Transfer { response: Some(r), ip: Some(ip), elapsed, error: None }
        }
        Outcome::Refused => failed(
            7,
            format!(
                "Failed to connect to {} port {} after {} ms: Couldn't connect to server",
                url.host,
                url.port,
                ms(elapsed)
            ),
        ),
        Outcome::Unreachable => failed(
            28,
            format!(
                "Failed to connect to {} port {} after {} ms: Couldn't connect to server",
                url.host,
                url.port,
                ms(elapsed)
            ),
        ),
        Outcome::Reset if url.scheme == "https" => failed(35, "Recv failure: Connection reset by peer".into()),
        Outcome::Reset => failed(56, "Recv failure: Connection reset by peer".into()),
    }
}

/// Writes lines to curl's verbose output.
struct Verbose<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Verbose<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend(s.as_bytes());
        Ok(())
    }
}

fn status_and_headers(r: &HttpResponse) -> String {
    let mut s = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    for (k, v) in &r.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// `-w`: the variables the checks use, and `\n`/`\t` escapes.
fn write_out(format: &str, t: &Transfer) -> String {
    let code = t.response.as_ref().map_or("000".to_owned(), |r| format!("{:03}", r.status));
    let size = t.response.as_ref().map_or(0, |r| r.body.len());
    let remote_ip = t.ip.map(|ip| ip.to_string()).unwrap_or_default();
    format
        .replace("%{http_code}", &code)
        .replace("%{response_code}", &code)
        .replace("%{size_download}", &size.to_string())
        .replace("%{time_total}", &format!("{:.6}", t.elapsed.as_secs_f64()))
        .replace("%{remote_ip}", &remote_ip)
        .replace("%{exitcode}", &t.error.as_ref().map_or(0, |(c, _)| *c).to_string())
        .replace("\\n", "\n")
        .replace("\\t", "\t")
}

/// curl's progress meter (stderr, when not silent and not on a terminal).
fn progress_meter(bytes: usize, elapsed: Duration) -> String {
    let speed = if elapsed.is_zero() { bytes } else { (bytes as f64 / elapsed.as_secs_f64()) as usize };
    format!(
        "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\r100 {bytes:>5}  100 {bytes:>5}    0     0 {speed:>6}      0 --:--:-- --:--:-- --:--:-- {speed:>5}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::dataplane::KERNEL_CONNECT_TIMEOUT;
    use std::sync::Mutex;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse_in_curls_spellings() {
        let o = parse(&args(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "helloworld.sample:5000/hello",
        ]))
        .unwrap();
        assert!(o.silent && o.show_error);
        assert_eq!(o.output.as_deref(), Some("/dev/null"));
        assert_eq!(o.write_out.as_deref(), Some("%{http_code}"));
        assert_eq!(o.max_time, Some(Duration::from_secs(5)));
        assert_eq!(o.urls, ["helloworld.sample:5000/hello"]);
        let o = parse(&args(&["-so/dev/null", "-m2.5", "-vf", "http://x/"])).unwrap();
        assert_eq!(o.output.as_deref(), Some("/dev/null"));
        assert_eq!(o.max_time, Some(Duration::from_millis(2500)));
        assert!(o.verbose && o.fail && o.silent);
        assert_eq!(parse(&args(&["-s"])).unwrap_err().message, "no URL specified");
        assert_eq!(parse(&args(&["--bogus", "x"])).unwrap_err().code, 2);
        assert_eq!(parse(&args(&["-Z", "x"])).unwrap_err().message, "option -Z: is unknown");
        assert_eq!(parse(&args(&["-o"])).unwrap_err().message, "option -o: requires parameter");
        assert!(parse(&args(&["--max-time", "soon", "x"])).is_err());
    }

    #[test]
    fn urls_with_and_without_scheme() {
        let u = parse_url("helloworld.sample:5000/hello").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("helloworld.sample", 5000, "/hello"));
        let u = parse_url("http://helloworld.sample:5000/hello?x=1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (5000, "/hello?x=1"));
        assert_eq!(parse_url("http://sleep").unwrap().port, 80);
        assert_eq!(parse_url("http://sleep").unwrap().path, "/");
        assert_eq!(parse_url("h:99999/").unwrap_err().0, 3);
        assert_eq!(parse_url("gopher://h/").unwrap_err().0, 1);
    }

    /// A network that resolves `helloworld.sample` and answers with a fixed delivery.
    struct Fake {
        delivery: Delivery,
        sent: Mutex<Vec<(Ipv4Addr, u16, HttpRequest)>>,
    }

    impl PodNetwork for Fake {
        fn resolve(&self, host: &str) -> Option<Ipv4Addr> {
            (host == "helloworld.sample").then_some(Ipv4Addr::new(172, 20, 0, 9))
        }
        fn send(&self, ip: Ipv4Addr, port: u16, req: &HttpRequest) -> Delivery {
            self.sent.lock().unwrap().push((ip, port, req.clone()));
            self.delivery.clone()
        }
    }

    fn fake(after: Duration, outcome: Outcome) -> Fake {
        Fake { delivery: Delivery { after, outcome }, sent: Mutex::new(vec![]) }
    }

    fn hello() -> Outcome {
        Outcome::Response(HttpResponse::new(200, "text/html", "Hello version: v1, instance: hw-1\n"))
    }

    async fn curl(net: &Fake, a: &[&str]) -> ExecOutput {
        run(&args(a), false, net, Clock::new(1_000_000.0)).await
    }

    #[tokio::test]
    async fn a_response_goes_to_stdout_and_the_request_names_the_host() {
        let net = fake(Duration::ZERO, hello());
        let out = curl(&net, &["-sS", "helloworld.sample:5000/hello"]).await;
        assert_eq!(
            (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
            (0, &b"Hello version: v1, instance: hw-1\n"[..], &b""[..])
        );
        let (ip, port, req) = net.sent.lock().unwrap()[0].clone();
        assert_eq!((ip, port), (Ipv4Addr::new(172, 20, 0, 9), 5000));
        assert_eq!(req.path, "/hello");
        assert_eq!(req.authority, "helloworld.sample:5000");
        let out =
            curl(&net, &["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://helloworld.sample:5000/hello"]).await;
        assert_eq!(out.stdout, b"200");
        let out = curl(&net, &["helloworld.sample:5000/hello"]).await;
        assert!(String::from_utf8_lossy(&out.stderr).contains("% Total"), "progress meter without -s");
    }

    #[tokio::test]
    async fn failures_exit_like_curl() {
        let out = curl(&fake(Duration::ZERO, hello()), &["-sS", "nowhere:5000/"]).await;
        assert_eq!(out.exit_code, 6);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "curl: (6) Could not resolve host: nowhere\n");
        let out = curl(&fake(Duration::ZERO, hello()), &["-s", "nowhere:5000/"]).await;
        assert_eq!((out.exit_code, out.stderr.len()), (6, 0), "-s alone hides the error");

        let out = curl(&fake(Duration::ZERO, Outcome::Refused), &["-sS", "helloworld.sample:5000/"]).await;
        assert_eq!(out.exit_code, 7);
        assert!(String::from_utf8_lossy(&out.stderr)
            .starts_with("curl: (7) Failed to connect to helloworld.sample port 5000 after 0 ms"));

        let out = curl(&fake(Duration::ZERO, Outcome::Reset), &["-sS", "helloworld.sample:5000/"]).await;
        assert_eq!(out.exit_code, 56);

        let slow = fake(
            Duration::from_secs(10),
            Outcome::Response(HttpResponse::new(503, "text/plain", "no healthy upstream")),
        );
        let out = curl(&slow, &["-sS", "--max-time", "2", "helloworld.sample:5000/"]).await;
        assert_eq!(out.exit_code, 28);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "curl: (28) Operation timed out after 2000 milliseconds with 0 bytes received\n"
        );
        let out = curl(&slow, &["-sS", "helloworld.sample:5000/"]).await;
        assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"no healthy upstream"[..]), "a 503 is not an error");
        let out = curl(&slow, &["-sSf", "helloworld.sample:5000/"]).await;
        assert_eq!(out.exit_code, 22);
        assert!(out.stdout.is_empty());

        let out = curl(
            &fake(KERNEL_CONNECT_TIMEOUT, Outcome::Unreachable),
            &["-sS", "-w", "%{http_code}", "helloworld.sample:5000/"],
        )
        .await;
        assert_eq!((out.exit_code, out.stdout.as_slice()), (28, &b"000"[..]));
        let out = curl(&fake(Duration::ZERO, hello()), &["-sS"]).await;
        assert_eq!(out.exit_code, 2);
    }

    #[tokio::test]
    async fn verbose_and_include_show_the_exchange() {
        let net = fake(Duration::ZERO, hello());
        let out = curl(&net, &["-sv", "helloworld.sample:5000/hello"]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("> GET /hello HTTP/1.1") && err.contains("< HTTP/1.1 200 OK"), "{err}");
        let out = curl(&net, &["-si", "helloworld.sample:5000/hello"]).await;
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200 OK\r\n"));
    }
}
