//! EKS over restJson1 (2017-11-01): CreateCluster, DescribeCluster,
//! ListClusters, DeleteCluster. A cluster's control plane is started through
//! the EKS hooks; it turns ACTIVE once both the hook and `cluster_create`
//! (simulated) are done.

use crate::error::{AwsError, AwsResult};
use crate::model::{decode_token, encode_token, paginate, Cluster, ControlPlane, Ctx, Eni, EniOwner, Model, Tags};
use crate::state::AwsState;
use crate::{names, ClusterSpec};
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Instant;

/// Kubernetes versions EKS accepts (standard and extended support).
const VERSIONS: &[&str] = &["1.25", "1.26", "1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];
const DEFAULT_VERSION: &str = "1.33";

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::bad("InvalidParameterException", message)
}

fn not_found(name: &str) -> AwsError {
    AwsError::new(404, "ResourceNotFoundException", format!("No cluster found for name: {name}."))
}

/// A decoded EKS request: method, path below the endpoint, query, JSON body.
pub struct EksRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// Answers (status, JSON body).
pub async fn handle(state: &AwsState, req: EksRequest<'_>) -> AwsResult<(u16, Value)> {
    let segments: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method, segments.as_slice()) {
        ("GET", ["clusters"]) => state.with_model(|m| list_clusters(m, req.query)).map(|v| (200, v)),
        ("POST", ["clusters"]) => create_cluster(state, req.body).await.map(|v| (200, v)),
        ("GET", ["clusters", name]) => state
            .with_model(|m| m.clusters.get(*name).map(|c| json!({ "cluster": cluster_json(c, &m.ctx) })))
            .map(|v| (200, v))
            .ok_or_else(|| not_found(name)),
        ("DELETE", ["clusters", name]) => delete_cluster(state, name).map(|v| (200, v)),
        ("POST", ["clusters", name, "updates"]) => update_version(state, name, req.body).map(|v| (200, v)),
        _ => Err(AwsError::new(
            404,
            "UnknownOperationException",
            format!("No operation for {} {}", req.method, req.path),
        )),
    }
}

fn list_clusters(model: &Model, query: &str) -> AwsResult<Value> {
    let params = crate::query::Params::parse(query.as_bytes());
    let max: Option<i64> = params.int("maxResults", |v| invalid(format!("maxResults '{v}' is not a number")))?;
    if max.is_some_and(|m| !(1..=100).contains(&m)) {
        return Err(invalid("maxResults must be between 1 and 100"));
    }
    let after = match params.get("nextToken") {
        None | Some("") => None,
        Some(token) => Some(decode_token("eks", token).ok_or_else(|| invalid("The nextToken is not valid"))?),
    };
    let items = model.clusters.values().map(|c| (c.seq, c.name.clone())).collect();
    let (names, next) = paginate(items, after, max.map_or(100, |m| m as usize));
    let mut out = json!({ "clusters": names });
    if let Some(seq) = next {
        out["nextToken"] = json!(encode_token("eks", seq));
    }
    Ok(out)
}

fn cluster_json(c: &Cluster, ctx: &Ctx) -> Value {
    let status = c.status(ctx);
    let mut v = json!({
        "name": c.name,
        "arn": c.arn,
        // A JSON number (epoch seconds): aws-sdk-rust refuses a string here.
        "createdAt": c.created_at.timestamp_millis() as f64 / 1000.0,
        "version": c.version(ctx),
        "roleArn": c.role_arn,
        "resourcesVpcConfig": {
            "subnetIds": c.subnet_ids,
            "securityGroupIds": c.security_group_ids,
            "clusterSecurityGroupId": c.cluster_security_group_id,
            "vpcId": c.vpc_id,
            "endpointPublicAccess": c.endpoint_public_access,
            "endpointPrivateAccess": c.endpoint_private_access,
            "publicAccessCidrs": c.public_access_cidrs,
        },
        "kubernetesNetworkConfig": {
            "serviceIpv4Cidr": c.service_ipv4_cidr,
            "ipFamily": "ipv4",
            "elasticLoadBalancing": { "enabled": false },
        },
        "logging": { "clusterLogging": [{
            "types": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
            "enabled": false,
        }]},
        "identity": { "oidc": { "issuer": format!("https://oidc.eks.{}.amazonaws.com/id/{}", ctx.region, c.oidc_id) } },
        "status": status,
        "platformVersion": "eks.1",
        "tags": c.tags,
        "accessConfig": { "authenticationMode": "API_AND_CONFIG_MAP" },
        "health": { "issues": [] },
    });
    if let Some(endpoint) = c.endpoint(ctx) {
        v["endpoint"] = json!(endpoint.endpoint);
        v["certificateAuthority"] =
            json!({ "data": base64::engine::general_purpose::STANDARD.encode(endpoint.ca_pem.as_bytes()) });
    }
    if let ControlPlane::Failed(reason) = &c.control_plane {
        v["health"] = json!({ "issues": [{ "code": "InternalFailure", "message": reason, "resourceIds": [c.name] }] });
    }
    v
}

fn string_list(v: Option<&Value>, field: &str) -> AwsResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| invalid(format!("{field} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(invalid(format!("{field} must be a list of strings"))),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 100
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What CreateCluster asked for, validated against the model.
struct Request {
    name: String,
    role_arn: String,
    version: String,
    subnet_ids: Vec<String>,
    security_group_ids: Vec<String>,
    endpoint_public_access: bool,
    endpoint_private_access: bool,
    public_access_cidrs: Vec<String>,
    service_ipv4_cidr: String,
    tags: Tags,
}

fn parse_create(body: &[u8]) -> AwsResult<Request> {
    // A body that is not a JSON object is an invalid parameter: CreateCluster's
    // modeled errors do not include InvalidRequestException (botocore 1.43.11
    // data/eks/2017-11-01/service-2.json.gz, operations.CreateCluster.errors).
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("Could not parse request body: {e}")))?;
    let obj = v.as_object().ok_or_else(|| invalid("The request body must be a JSON object"))?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str);
    let name = text("name").ok_or_else(|| invalid("name is required"))?.to_string();
    if !valid_name(&name) {
        return Err(invalid(format!(
            "The cluster name '{name}' is not valid: it must start with an alphanumeric character and contain only alphanumerics, hyphens and underscores (at most 100)"
        )));
    }
    let role_arn = text("roleArn").ok_or_else(|| invalid("roleArn is required"))?.to_string();
    if !role_arn.starts_with("arn:aws:iam::") || !role_arn.contains(":role/") {
        return Err(invalid(format!("Role ARN '{role_arn}' is not valid")));
    }
    let version = text("version").unwrap_or(DEFAULT_VERSION).to_string();
    if !VERSIONS.contains(&version.as_str()) {
        return Err(invalid(format!("unsupported Kubernetes version {version}")));
    }
    let vpc = obj
        .get("resourcesVpcConfig")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("resourcesVpcConfig is required"))?;
    let flag = |key: &str, default: bool| vpc.get(key).and_then(Value::as_bool).unwrap_or(default);
    let mut public_access_cidrs = string_list(vpc.get("publicAccessCidrs"), "publicAccessCidrs")?;
    if public_access_cidrs.is_empty() {
        public_access_cidrs.push("0.0.0.0/0".into());
    }
    let service_ipv4_cidr = obj
        .get("kubernetesNetworkConfig")
        .and_then(|n| n.get("serviceIpv4Cidr"))
        .and_then(Value::as_str)
        .unwrap_or("172.20.0.0/16")
        .to_string();
    let tags = match obj.get("tags") {
        None | Some(Value::Null) => Tags::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                v.as_str().map(|v| (k.clone(), v.to_string())).ok_or_else(|| invalid("tag values must be strings"))
            })
            .collect::<AwsResult<Tags>>()?,
        Some(_) => return Err(invalid("tags must be a map of strings")),
    };
    Ok(Request {
        name,
        role_arn,
        version,
        subnet_ids: string_list(vpc.get("subnetIds"), "subnetIds")?,
        security_group_ids: string_list(vpc.get("securityGroupIds"), "securityGroupIds")?,
        endpoint_public_access: flag("endpointPublicAccess", true),
        endpoint_private_access: flag("endpointPrivateAccess", false),
        public_access_cidrs,
        service_ipv4_cidr,
        tags,
    })
}

impl Model {
    /// Records a new cluster (CREATING) with its security group and control
    /// plane ENIs; returns what the hook needs to start it.
    fn eks_create_cluster(&mut self, req: Request) -> AwsResult<(ClusterSpec, u64)> {
        if self.clusters.contains_key(&req.name) {
            return Err(AwsError::new(
                409,
                "ResourceInUseException",
                format!("Cluster already exists with name: {}", req.name),
            ));
        }
        if req.subnet_ids.is_empty() {
            return Err(invalid("resourcesVpcConfig.subnetIds is required"));
        }
        let mut vpc_id: Option<String> = None;
        let mut zones = BTreeSet::new();
        for id in &req.subnet_ids {
            let subnet = self
                .subnets
                .get(id)
                .ok_or_else(|| invalid(format!("The subnet ID '{id}' does not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidSubnetID.NotFound)")))?;
            if vpc_id.as_ref().is_some_and(|v| v != &subnet.vpc_id) {
                return Err(invalid("Subnets specified must belong to the same VPC"));
            }
            vpc_id = Some(subnet.vpc_id.clone());
            zones.insert(subnet.az.clone());
        }
        if zones.len() < 2 {
            return Err(invalid("Subnets specified must be in at least two different AZs"));
        }
        let vpc_id = vpc_id.unwrap_or_default();
        for sg in &req.security_group_ids {
            if self.security_groups.get(sg).is_none_or(|g| g.vpc_id != vpc_id) {
                return Err(invalid(format!("The security group '{sg}' does not exist")));
            }
        }
        let vpc_cidr = self.vpcs.get(&vpc_id).map(|v| v.cidr.to_string()).unwrap_or_default();
        let group_name = format!("eks-cluster-sg-{}-{}", req.name, rand_digits(10));
        let group_tags: Tags = [
            ("Name".to_string(), group_name.clone()),
            ("aws:eks:cluster-name".to_string(), req.name.clone()),
            (format!("kubernetes.io/cluster/{}", req.name), "owned".to_string()),
        ]
        .into();
        let cluster_sg = self.insert_security_group(
            &vpc_id,
            &group_name,
            "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.",
            group_tags,
            false,
        );
        // The control plane's cross-account ENIs live in (up to four of) the subnets.
        let mut groups = vec![cluster_sg.clone()];
        groups.extend(req.security_group_ids.iter().cloned());
        for subnet_id in req.subnet_ids.iter().take(4) {
            let Some(private_ip) = self.allocate_private_ip(subnet_id) else {
                continue;
            };
            let az = self.subnets.get(subnet_id).map(|s| s.az.clone()).unwrap_or_default();
            let id = names::ec2_id("eni");
            let seq = self.next_seq();
            self.enis.insert(
                id.clone(),
                Eni {
                    id,
                    seq,
                    subnet_id: subnet_id.clone(),
                    vpc_id: vpc_id.clone(),
                    az,
                    description: format!("Amazon EKS {}", req.name),
                    private_ip,
                    public_ip: None,
                    interface_type: "interface".into(),
                    requester_id: "amazon-eks".into(),
                    group_ids: groups.clone(),
                    owner: EniOwner::Cluster(req.name.clone()),
                    tags: Tags::new(),
                },
            );
        }
        let arn = names::eks_cluster_arn(&self.ctx.region, &self.ctx.account, &req.name);
        let seq = self.next_seq();
        let spec = ClusterSpec {
            name: req.name.clone(),
            arn: arn.clone(),
            version: req.version.clone(),
            vpc_id: vpc_id.clone(),
            vpc_cidr: vpc_cidr.clone(),
            subnet_ids: req.subnet_ids.clone(),
        };
        self.clusters.insert(
            req.name.clone(),
            Cluster {
                name: req.name,
                arn,
                seq,
                version: req.version,
                role_arn: req.role_arn,
                vpc_id,
                subnet_ids: req.subnet_ids,
                security_group_ids: req.security_group_ids,
                cluster_security_group_id: cluster_sg,
                endpoint_public_access: req.endpoint_public_access,
                endpoint_private_access: req.endpoint_private_access,
                public_access_cidrs: req.public_access_cidrs,
                service_ipv4_cidr: req.service_ipv4_cidr,
                oidc_id: names::hex(32).to_ascii_uppercase(),
                created_at: Utc::now(),
                created: Instant::now(),
                control_plane: ControlPlane::Starting,
                deleting: None,
                version_update: None,
                tags: req.tags,
            },
        );
        Ok((spec, seq))
    }
}

fn rand_digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

async fn create_cluster(state: &AwsState, body: &[u8]) -> AwsResult<Value> {
    let req = parse_create(body)?;
    let name = req.name.clone();
    let (spec, seq) = state.with_model(|m| m.eks_create_cluster(req))?;
    match state.eks_hooks() {
        Some(hooks) => {
            let starting = hooks.start_cluster(spec);
            let state = state.clone();
            let cluster = name.clone();
            tokio::spawn(async move {
                let result = starting.await;
                if let Err(e) = &result {
                    tracing::warn!(cluster = %cluster, error = %e, "control plane failed to start");
                }
                state.with_model(|m| match m.clusters.get_mut(&cluster) {
                    Some(c) if c.seq == seq => {
                        c.control_plane = match result {
                            Ok(endpoint) => ControlPlane::Ready(Some(endpoint)),
                            Err(e) => ControlPlane::Failed(e.to_string()),
                        }
                    }
                    _ => {}
                });
            });
        }
        // Without a Kubernetes side the cluster still becomes ACTIVE, with no endpoint.
        None => state.with_model(|m| {
            if let Some(c) = m.clusters.get_mut(&name) {
                c.control_plane = ControlPlane::Ready(None);
            }
        }),
    }
    state
        .with_model(|m| m.clusters.get(&name).map(|c| json!({ "cluster": cluster_json(c, &m.ctx) })))
        .ok_or_else(|| not_found(&name))
}

/// UpdateClusterVersion (botocore eks 2017-11-01: POST /clusters/{name}/updates,
/// `version` required, answers an `Update` of type VersionUpdate): one minor
/// version up, on an ACTIVE cluster; the cluster is UPDATING, then ACTIVE at it.
fn update_version(state: &AwsState, name: &str, body: &[u8]) -> AwsResult<Value> {
    let req: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("the request body is not JSON: {e}")))?;
    let to = req.get("version").and_then(Value::as_str).ok_or_else(|| invalid("version is required"))?.to_string();
    state.with_model(|m| {
        let ctx = m.ctx.clone();
        let cluster = m.clusters.get_mut(name).ok_or_else(|| not_found(name))?;
        let status = cluster.status(&ctx);
        if status != "ACTIVE" {
            return Err(AwsError::new(
                409,
                "ResourceInUseException",
                format!("Cluster {name} is in {status} state and cannot be updated"),
            ));
        }
        let from = cluster.version(&ctx).to_string();
        let minor = |v: &str| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok());
        match (minor(&from), minor(&to)) {
            (Some(a), Some(b)) if b == a + 1 && to.starts_with("1.") => {}
            _ => return Err(invalid(format!("Unsupported Kubernetes minor version update from {from} to {to}"))),
        }
        cluster.version_update = Some((Instant::now(), to.clone()));
        Ok(json!({"update": {
            "id": uuid_v4(),
            "status": "InProgress",
            "type": "VersionUpdate",
            "params": [{"type": "Version", "value": to}, {"type": "PlatformVersion", "value": "eks.1"}],
            "createdAt": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            "errors": [],
        }}))
    })
}

/// A random UUID in the 8-4-4-4-12 form EKS gives update ids.
fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-{}-{}", &h[..8], &h[8..12], &h[13..16], &h[16..20], &h[20..32])
}

fn delete_cluster(state: &AwsState, name: &str) -> AwsResult<Value> {
    let answer = state.with_model(|m| {
        let ctx = m.ctx.clone();
        let cluster = m.clusters.get_mut(name).ok_or_else(|| not_found(name))?;
        match cluster.status(&ctx) {
            "CREATING" => {
                return Err(AwsError::new(
                    409,
                    "ResourceInUseException",
                    format!("Cluster {name} is currently being created and cannot be deleted"),
                ))
            }
            "DELETING" => {
                return Err(AwsError::new(
                    409,
                    "ResourceInUseException",
                    format!("Cluster {name} is already being deleted"),
                ))
            }
            _ => {}
        }
        cluster.deleting = Some(Instant::now());
        Ok(json!({ "cluster": cluster_json(cluster, &ctx) }))
    })?;
    // The API server goes away with the deletion (outside the model lock: the
    // hook may call back into the state).
    if let Some(hooks) = state.eks_hooks() {
        hooks.stop_cluster(name);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bodies_are_validated() {
        assert!(valid_name("eks-1") && valid_name("A_b-9"));
        assert!(!valid_name("-eks") && !valid_name("") && !valid_name("eks.1") && !valid_name(&"a".repeat(101)));
        let code = |body: &str| parse_create(body.as_bytes()).err().map(|e| e.code);
        assert_eq!(code("not json"), Some("InvalidParameterException".into()));
        assert_eq!(code("[1]"), Some("InvalidParameterException".into()));
        assert_eq!(code(r#"{"name":"eks-1"}"#), Some("InvalidParameterException".into()));
        assert_eq!(
            code(
                r#"{"name":"eks-1","roleArn":"arn:aws:iam::123456789012:role/r","version":"1.12","resourcesVpcConfig":{"subnetIds":[]}}"#
            ),
            Some("InvalidParameterException".into())
        );
        let ok = parse_create(
            br#"{"name":"eks-1","roleArn":"arn:aws:iam::123456789012:role/r","version":"1.28","resourcesVpcConfig":{"subnetIds":["subnet-1"]},"tags":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!((ok.version.as_str(), ok.endpoint_public_access, ok.tags["a"].as_str()), ("1.28", true, "b"));
        assert_eq!(ok.public_access_cidrs, vec!["0.0.0.0/0"]);
    }
}
