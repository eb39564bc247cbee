//! Signatures made with `aws-sigv4` the way the real clients make them:
//! - EKS bearer tokens: presigned STS GetCallerIdentity URLs as `aws eks
//!   get-token` makes them (X-Amz-Expires=60, the cluster name signed in
//!   `x-k8s-aws-id`), checked by `verify_presigned_sts` and by the endpoint
//!   itself as aws-iam-authenticator calls it;
//! - header-signed requests shaped like aws-sdk-rust's (signed
//!   `x-amz-user-agent`, `amz-sdk-*`, `content-length`, no charset), and the
//!   protocol-specific envelopes of the answers and errors.

mod common;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::*;
use meshspec_twin_aws::Delays;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn presign(endpoint: &str, cluster: &str, key: &str, secret: &str, at: SystemTime, expires: u64) -> String {
    let identity: Identity = Credentials::new(key, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-west-2")
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15");
    let signable =
        SignableRequest::new("GET", url.clone(), [("x-k8s-aws-id", cluster)].into_iter(), SignableBody::Bytes(b""))
            .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().uri(url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    request.uri().to_string()
}

const STS: &str = "https://sts.us-west-2.amazonaws.com";

#[tokio::test]
async fn verify_presigned_sts_accepts_only_the_right_cluster_key_and_time() {
    let (state, server) = start(1000.0, Delays::default()).await;
    let now = SystemTime::now();
    let url = presign(STS, "eks-1", AKID, SECRET, now, 60);
    assert!(url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id") && url.contains("X-Amz-Expires=60"), "{url}");

    let identity = state.verify_presigned_sts(&url, "eks-1").expect("valid token");
    assert_eq!(identity.account, "123456789012");
    assert_eq!(identity.arn, "arn:aws:iam::123456789012:user/meshspec");

    // Bound to its cluster.
    assert!(state.verify_presigned_sts(&url, "eks-2").is_err());
    // Valid for 15 minutes whatever X-Amz-Expires says, not longer.
    assert!(state.verify_presigned_sts_at(&url, "eks-1", now + Duration::from_secs(14 * 60)).is_ok());
    assert!(state
        .verify_presigned_sts_at(&url, "eks-1", now + Duration::from_secs(16 * 60))
        .unwrap_err()
        .contains("expired"));
    let old = presign(STS, "eks-1", AKID, SECRET, now - Duration::from_secs(16 * 60), 60);
    assert!(state.verify_presigned_sts(&old, "eks-1").is_err());
    // Signed with the wrong secret, or by a key the twin does not know.
    assert!(state.verify_presigned_sts(&presign(STS, "eks-1", AKID, "not-the-secret", now, 60), "eks-1").is_err());
    assert!(state
        .verify_presigned_sts(&presign(STS, "eks-1", "AKIAUNKNOWN000000000", SECRET, now, 60), "eks-1")
        .is_err());
    // Out-of-range expiry, other hosts, tampering.
    assert!(state.verify_presigned_sts(&presign(STS, "eks-1", AKID, SECRET, now, 901), "eks-1").is_err());
    assert!(state
        .verify_presigned_sts(&presign("https://sts.example.com", "eks-1", AKID, SECRET, now, 60), "eks-1")
        .is_err());
    assert!(state
        .verify_presigned_sts(&presign("http://127.0.0.1:1", "eks-1", AKID, SECRET, now, 60), "eks-1")
        .is_err());
    assert!(state.verify_presigned_sts(&url.replace("Version=2011-06-15", "Version=2011-06-16"), "eks-1").is_err());
    assert!(state.verify_presigned_sts(&format!("{url}&Foo=bar"), "eks-1").is_err());
    assert!(state.verify_presigned_sts("not a url", "eks-1").is_err());

    // A token for this endpoint itself (what `aws eks get-token` makes with AWS_ENDPOINT_URL).
    let own = presign(&server.url, "eks-1", AKID, SECRET, now, 60);
    assert!(state.verify_presigned_sts(&own, "eks-1").is_ok());
}

/// GET `url` as aws-iam-authenticator does: cluster header, JSON wanted.
async fn get(url: &str, cluster: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nx-k8s-aws-id: {cluster}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn the_endpoint_answers_a_token_url_like_sts() {
    let (_state, server) = start(1000.0, Delays::default()).await;
    let url = presign(&server.url, "eks-1", AKID, SECRET, SystemTime::now(), 60);

    let (status, body) = get(&url, "eks-1").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let result = &v["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
    assert_eq!(result["Arn"], "arn:aws:iam::123456789012:user/meshspec");
    assert_eq!(result["Account"], "123456789012");
    assert!(v["GetCallerIdentityResponse"]["ResponseMetadata"]["RequestId"].is_string());

    let (status, body) = get(&url, "eks-2").await;
    assert_eq!(status, 403);
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");

    let unknown = presign(&server.url, "eks-1", "AKIAUNKNOWN000000000", SECRET, SystemTime::now(), 60);
    let (status, body) = get(&unknown, "eks-1").await;
    assert_eq!(status, 403);
    assert!(body.contains("InvalidClientTokenId"), "{body}");
}

/// A raw HTTP/1.1 exchange: (status, lower-case headers, body).
async fn exchange(addr: &str, request: &http::Request<Vec<u8>>) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri().path_and_query().unwrap());
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(request.body()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A request signed in the Authorization header like aws-sdk-rust signs it.
fn sdk_request(
    addr: &str,
    service: &str,
    region: &str,
    method: &str,
    path: &str,
    body: &str,
) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", addr)
        .header("x-amz-user-agent", "aws-sdk-rust/1.3.9 ua/2.1 api/test/1.0 os/linux lang/rust/1.95.0")
        .header("amz-sdk-invocation-id", "3f5b2b1e-0c3d-4a4f-9a43-7c1d2f7e9a10")
        .header("amz-sdk-request", "attempt=1; max=1");
    if !body.is_empty() {
        builder = builder
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", body.len().to_string());
    }
    let mut request = builder.body(body.as_bytes().to_vec()).unwrap();
    let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers: Vec<(&str, &str)> = request.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).collect();
    let uri = request.uri().to_string();
    let signable =
        SignableRequest::new(method, uri, headers.into_iter(), SignableBody::Bytes(body.as_bytes())).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(&mut request);
    request
}

#[tokio::test]
async fn sdk_shaped_requests_and_protocol_envelopes() {
    let (_state, server) = start(1000.0, Delays::default()).await;
    let addr = server.addr.to_string();

    let elb = sdk_request(
        &addr,
        "elasticloadbalancing",
        "us-west-2",
        "POST",
        "/",
        "Action=DescribeLoadBalancers&Version=2015-12-01",
    );
    let (status, headers, body) = exchange(&addr, &elb).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("text/xml"));
    assert!(header(&headers, "x-amzn-requestid").is_some_and(|id| id.len() == 36));
    assert!(body.contains("<DescribeLoadBalancersResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeLoadBalancersResult><LoadBalancers/></DescribeLoadBalancersResult>"), "{body}");

    let eks = sdk_request(&addr, "eks", "us-west-2", "GET", "/clusters?maxResults=5", "");
    let (status, headers, body) = exchange(&addr, &eks).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(body, r#"{"clusters":[]}"#);

    let missing = sdk_request(&addr, "eks", "us-west-2", "GET", "/clusters/eks-9", "");
    let (status, headers, body) = exchange(&addr, &missing).await;
    assert_eq!(status, 404);
    assert_eq!(header(&headers, "x-amzn-errortype"), Some("ResourceNotFoundException"));
    assert_eq!(body, r#"{"message":"No cluster found for name: eks-9."}"#);

    let unknown_tg = sdk_request(&addr, "elasticloadbalancing", "us-west-2", "POST", "/", "Action=DescribeTargetHealth&Version=2015-12-01&TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing%3Aus-west-2%3A123456789012%3Atargetgroup%2Fx%2F0123456789abcdef");
    let (status, _, body) = exchange(&addr, &unknown_tg).await;
    assert_eq!(status, 400);
    assert!(body.contains("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>"), "{body}");

    let ec2 = sdk_request(
        &addr,
        "ec2",
        "us-west-2",
        "POST",
        "/",
        "Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-0123456789abcdef0",
    );
    let (status, _, body) = exchange(&addr, &ec2).await;
    assert_eq!(status, 400);
    assert!(body.contains("<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code>"), "{body}");

    // A body changed after signing, another region, no signature at all.
    let mut tampered = sdk_request(&addr, "ec2", "us-west-2", "POST", "/", "Action=DescribeVpcs&Version=2016-11-15");
    // Same length, so that Content-Length still holds.
    *tampered.body_mut() = b"Action=DescribeVpcs&Version=2016-11-16".to_vec();
    let (status, _, body) = exchange(&addr, &tampered).await;
    assert_eq!(status, 401);
    assert!(body.contains("<Code>AuthFailure</Code>"), "{body}");
    let elsewhere = sdk_request(
        &addr,
        "elasticloadbalancing",
        "eu-west-1",
        "POST",
        "/",
        "Action=DescribeLoadBalancers&Version=2015-12-01",
    );
    let (status, _, body) = exchange(&addr, &elsewhere).await;
    assert_eq!(status, 403);
    assert!(body.contains("<Code>SignatureDoesNotMatch</Code>"), "{body}");
    let anonymous =
        http::Request::builder().method("GET").uri("/clusters").header("host", addr.as_str()).body(Vec::new()).unwrap();
    let (status, headers, _) = exchange(&addr, &anonymous).await;
    assert_eq!(status, 403);
    assert_eq!(header(&headers, "x-amzn-errortype"), Some("MissingAuthenticationTokenException"));
}
