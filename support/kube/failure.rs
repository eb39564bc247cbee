//! Why a call to an API server got no answer, named from the error's causes
//! (not from its text): refused, timed out, TLS, not HTTP, closed. hyper and
//! kube-rs show all of these as "client error (Connect)"; the user needs the
//! endpoint and the cause.

use std::error::Error as StdError;

/// The cause at the bottom of a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Refused,
    TimedOut,
    /// Name resolution failed.
    Dns(String),
    Tls(String),
    /// Something answered, but not HTTP.
    NotHttp(String),
    /// The connection closed before an answer.
    Closed,
    /// The API server answered with an error status.
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    Other(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Refused => f.write_str("connection refused (nothing listens there)"),
            Cause::TimedOut => f.write_str("timed out (nothing answered in time)"),
            Cause::Dns(d) => write!(f, "the name does not resolve ({d})"),
            Cause::Tls(d) => write!(f, "TLS failed ({d})"),
            Cause::NotHttp(d) => write!(f, "the answer is not HTTP ({d})"),
            Cause::Closed => f.write_str("the connection closed before an answer"),
            Cause::Status { code, reason, message } => write!(f, "{code} {reason}: {message}"),
            Cause::Other(d) => f.write_str(d),
        }
    }
}

impl Cause {
    /// Whether the request may not have reached the server's handler, so that
    /// retrying a read cannot do anything twice (client-go retries GETs on
    /// connection resets and EOF: rest/request.go, IsConnectionReset/IsProbableEOF).
    pub fn is_dropped_connection(&self) -> bool {
        matches!(self, Cause::Closed)
    }
}

/// The cause of `err`, from its source chain.
pub fn cause_of(err: &(dyn StdError + 'static)) -> Cause {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = current {
        if let Some(c) = node_cause(e) {
            return c;
        }
        let text = e.to_string();
        // hyper-util's resolver says "dns error"; its error type is private.
        if text.starts_with("dns error") {
            return Cause::Dns(e.source().map(|s| s.to_string()).unwrap_or(text));
        }
        last = text;
        current = e.source();
    }
    Cause::Other(last)
}

/// What one error of a chain says by its type. An io::Error's `source` skips
/// the error it wraps (hyper-rustls wraps rustls' in one or two), so that is
/// opened here.
fn node_cause(e: &(dyn StdError + 'static)) -> Option<Cause> {
    if let Some(kube::Error::Api(s)) = e.downcast_ref::<kube::Error>() {
        return Some(Cause::Status { code: s.code, reason: s.reason.clone(), message: s.message.clone() });
    }
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls_cause(tls));
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if let Some(c) = io.get_ref().and_then(|inner| node_cause(inner)) {
            return Some(c);
        }
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => Some(Cause::Refused),
            std::io::ErrorKind::TimedOut => Some(Cause::TimedOut),
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof => Some(Cause::Closed),
            _ => None,
        };
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_parse() {
            return Some(Cause::NotHttp(h.to_string()));
        }
        if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
            return Some(Cause::Closed);
        }
        if h.is_timeout() {
            return Some(Cause::TimedOut);
        }
    }
    if e.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
        return Some(Cause::TimedOut);
    }
    None
}

fn tls_cause(tls: &rustls::Error) -> Cause {
    match tls {
        // What a plain-HTTP or other non-TLS server sends back to a ClientHello.
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            Cause::NotHttp(format!("no TLS server there: {tls}"))
        }
        other => Cause::Tls(other.to_string()),
    }
}

/// An API server call that failed: who (context or cluster), where, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the API server of {who} at {url} {}", match .cause { Cause::Status { .. } => format!("refused the request: {}", .cause), c => format!("does not answer: {c}") })]
pub struct ApiFailure {
    pub who: String,
    pub url: String,
    pub cause: Cause,
}

impl ApiFailure {
    pub fn of(who: impl Into<String>, url: impl Into<String>, err: &kube::Error) -> ApiFailure {
        ApiFailure { who: who.into(), url: url.into(), cause: cause_of(err) }
    }
}

/// An error chain as one line for the user. kube-rs shows an API error with
/// its Rust Debug form and a transport error as "client error (Connect)": from
/// the first kube error on, the chain is said by its cause instead.
pub fn render(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in err.chain() {
        if let Some(k) = e.downcast_ref::<kube::Error>() {
            parts.push(cause_of(k).to_string());
            break;
        }
        let text = e.to_string();
        // thiserror's transparent wrappers repeat their source's text.
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_kinds_are_named() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(cause_of(&refused), Cause::Refused);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(cause_of(&reset).is_dropped_connection());
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(cause_of(&tls), Cause::Tls(_)));
    }

    #[test]
    fn the_failure_names_who_where_and_why() {
        let f =
            ApiFailure { who: "context \"a\"".into(), url: "https://127.0.0.1:6443/".into(), cause: Cause::Refused };
        assert_eq!(
            f.to_string(),
            "the API server of context \"a\" at https://127.0.0.1:6443/ does not answer: connection refused (nothing listens there)"
        );
    }
}
