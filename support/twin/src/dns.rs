//! The twin's DNS server: answers A queries for NLB hostnames the way Route 53
//! answers for `*.elb.<region>.amazonaws.com`, so that istiod-like resolvers
//! (and meshspec's checks) resolve the twin's NLBs to their per-AZ public IPs.
//!
//! It knows only the names its lookup function knows: unknown names are
//! NXDOMAIN; a known name asked for another type (AAAA) is NOERROR without
//! answers, as for a real IPv4-only NLB.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::ServerFuture;
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every answer, in seconds (what Route 53 gives NLB records).
pub const ANSWER_TTL: u32 = 60;

/// How the server finds the addresses of a name (lower case, no trailing dot).
/// `None` means the name does not exist.
pub type Lookup = Arc<dyn Fn(&str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;

/// A running DNS server on 127.0.0.1 (UDP and TCP on the same port).
pub struct DnsServer {
    addr: SocketAddr,
    server: ServerFuture<Handler>,
}

impl DnsServer {
    /// Binds UDP on 127.0.0.1:0 and TCP on the same port, then serves.
    pub async fn start(lookup: Lookup) -> anyhow::Result<DnsServer> {
        // The TCP port must equal the UDP one; a free UDP port may be taken for
        // TCP by someone else, so try a few.
        let mut last_err = None;
        for _ in 0..16 {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let addr = udp.local_addr()?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => {
                    let mut server = ServerFuture::new(Handler { lookup: lookup.clone() });
                    server.register_socket(udp);
                    server.register_listener(tcp, Duration::from_secs(5));
                    return Ok(DnsServer { addr, server });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(anyhow::anyhow!(
            "no port free for both UDP and TCP on 127.0.0.1: {}",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// The address both UDP and TCP listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and waits for the server's tasks to end.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!("dns server shutdown: {e}");
        }
    }
}

struct Handler {
    lookup: Lookup,
}

/// What the server answers for one question.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Addresses(Vec<Ipv4Addr>),
    NoData,
    NxDomain,
    Refused,
}

impl Handler {
    fn answer(&self, name: &str, rtype: RecordType) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match (self.lookup)(&name) {
            None => Answer::NxDomain,
            Some(ips) if rtype == RecordType::A => Answer::Addresses(ips),
            Some(_) => Answer::NoData,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(&self, request: &Request, mut response_handle: R) -> ResponseInfo {
        let answer = if request.message_type() != MessageType::Query
            || request.op_code() != OpCode::Query
            || request.queries().len() != 1
        {
            Answer::Refused
        } else {
            let query = &request.queries()[0];
            self.answer(&query.name().to_string(), query.query_type())
        };

        let mut header = Header::response_from_request(request.header());
        header.set_authoritative(true);
        header.set_recursion_available(false);
        let records: Vec<Record> = match &answer {
            Answer::Addresses(ips) => {
                // Echo the name as asked (resolvers may randomise its case).
                let name = request.queries()[0].original().name().clone();
                ips.iter().map(|ip| Record::from_rdata(name.clone(), ANSWER_TTL, RData::A(A(*ip)))).collect()
            }
            _ => Vec::new(),
        };
        header.set_response_code(match answer {
            Answer::NxDomain => ResponseCode::NXDomain,
            Answer::Refused => ResponseCode::Refused,
            Answer::Addresses(_) | Answer::NoData => ResponseCode::NoError,
        });
        let response = MessageResponseBuilder::from_message_request(request).build(
            header,
            records.iter(),
            None.iter(),
            None.iter(),
            None.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns response not sent: {e}");
                let mut failed = Header::new();
                failed.set_response_code(ResponseCode::ServFail);
                failed.into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> Handler {
        Handler {
            lookup: Arc::new(|name: &str| {
                (name == "k8s-a-b-1234567890-0123456789abcdef.elb.us-west-2.amazonaws.com")
                    .then(|| vec![Ipv4Addr::new(44, 1, 2, 3), Ipv4Addr::new(44, 1, 2, 4)])
            }),
        }
    }

    #[test]
    fn known_name_is_found_in_any_case_with_or_without_the_root_dot() {
        let h = handler();
        let want = Answer::Addresses(vec![Ipv4Addr::new(44, 1, 2, 3), Ipv4Addr::new(44, 1, 2, 4)]);
        assert_eq!(h.answer("K8S-a-b-1234567890-0123456789ABCDEF.elb.us-west-2.amazonaws.com.", RecordType::A), want);
        assert_eq!(h.answer("k8s-a-b-1234567890-0123456789abcdef.elb.us-west-2.amazonaws.com", RecordType::A), want);
    }

    fn query(name: &str, rtype: RecordType) -> hickory_proto::op::Message {
        use hickory_proto::op::{Message, Query};
        let mut msg = Message::new();
        msg.set_id(4242)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(hickory_proto::rr::Name::from_ascii(name).unwrap(), rtype));
        msg
    }

    fn addresses(m: &hickory_proto::op::Message) -> Vec<Ipv4Addr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_server_answers_over_udp_and_tcp_on_one_port() {
        use hickory_proto::op::Message;
        use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let server = DnsServer::start(handler().lookup).await.unwrap();
        let name = "k8s-a-b-1234567890-0123456789abcdef.elb.us-west-2.amazonaws.com.";
        let want = vec![Ipv4Addr::new(44, 1, 2, 3), Ipv4Addr::new(44, 1, 2, 4)];

        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(&query(name, RecordType::A).to_bytes().unwrap(), server.addr()).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = udp.recv_from(&mut buf).await.unwrap();
        let answer = Message::from_bytes(&buf[..n]).unwrap();
        assert_eq!((answer.id(), answer.response_code()), (4242, ResponseCode::NoError));
        assert_eq!(addresses(&answer), want);
        assert!(answer.answers().iter().all(|r| r.ttl() == ANSWER_TTL));

        // TCP: two-byte length, then the message.
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let bytes = query("nope.elb.us-west-2.amazonaws.com.", RecordType::A).to_bytes().unwrap();
        tcp.write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes()).await.unwrap();
        tcp.write_all(&bytes).await.unwrap();
        let len = tcp.read_u16().await.unwrap();
        let mut body = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut body).await.unwrap();
        let answer = Message::from_bytes(&body).unwrap();
        assert_eq!(answer.response_code(), ResponseCode::NXDomain);

        let addr = server.addr();
        server.shutdown().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "TCP closed after shutdown");
    }

    #[test]
    fn aaaa_for_a_known_name_has_no_data_and_unknown_names_do_not_exist() {
        let h = handler();
        assert_eq!(
            h.answer("k8s-a-b-1234567890-0123456789abcdef.elb.us-west-2.amazonaws.com.", RecordType::AAAA),
            Answer::NoData
        );
        assert_eq!(h.answer("nope.elb.us-west-2.amazonaws.com.", RecordType::A), Answer::NxDomain);
        assert_eq!(h.answer("nope.elb.us-west-2.amazonaws.com.", RecordType::AAAA), Answer::NxDomain);
    }
}
