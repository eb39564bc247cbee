//! Remote secrets: what istiod reads to watch another cluster, found and read
//! the way istiod reads them (Istio 1.20.2 pkg/kube/multicluster/secretcontroller.go),
//! so that every shape `istioctl create-remote-secret` and the seed's Terraform
//! chart produce is accepted, and what istiod refuses is refused:
//! - any Secret in istio-system labelled `istio/multiCluster=true`; each data key
//!   is a cluster ID (the name and the `networking.istio.io/cluster` annotation
//!   are not read by istiod);
//! - its kubeconfig's `current-context` (no other context is ever used);
//! - users with exec, tokenFile, client certificate or key files, or an auth
//!   provider other than oidc are refused unless istiod is started with
//!   PILOT_INSECURE_MULTICLUSTER_KUBECONFIG_OPTIONS (default empty).

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;

use crate::checks::check::Diagnosis;
use crate::topology::names;

pub const LABEL: &str = "istio/multiCluster";
/// Written by `istioctl create-remote-secret` and the seed's chart; istiod never reads it.
pub const ANNOTATION: &str = "networking.istio.io/cluster";

/// The name `istioctl create-remote-secret --name CLUSTER` gives its Secret.
pub fn secret_name(remote_cluster: &str) -> String {
    format!("istio-remote-secret-{remote_cluster}")
}

/// What a remote secret tells istiod about one cluster (never the credential).
#[derive(Clone, Debug, Serialize)]
pub struct RemoteSecret {
    pub name: String,
    pub cluster: String,
    pub context: String,
    pub server: String,
    /// `bearer token`, `client certificate` or `oidc`.
    pub auth: String,
    /// `certificate-authority-data`, or `insecure-skip-tls-verify` when the server is not verified.
    pub tls: String,
}

/// The remote secret istiod in this cluster would use for `remote_cluster`: a
/// labelled Secret with a data key of that cluster ID. None when there is no
/// trace of one; an error with its diagnosis when one is there but istiod
/// would not use it (unlabelled, keyed by another ID) or several compete.
pub async fn find(client: &kube::Client, remote_cluster: &str) -> Result<Option<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), names::ISTIO_SYSTEM);
    let labelled = api.list(&ListParams::default().labels(&format!("{LABEL}=true"))).await?.items;
    let keyed: Vec<&Secret> =
        labelled.iter().filter(|s| s.data.as_ref().is_some_and(|d| d.contains_key(remote_cluster))).collect();
    match keyed.as_slice() {
        [one] => return Ok(Some((*one).clone())),
        [] => {}
        several => {
            return Err(anyhow::anyhow!(
                "secrets {:?} all hold {remote_cluster}",
                several.iter().map(|s| s.metadata.name.clone().unwrap_or_default()).collect::<Vec<_>>()
            )
            .context(Diagnosis::new(
                format!("several remote secrets name the cluster {remote_cluster}; istiod uses the first it sees and warns 'cluster has already been registered' for the others"),
                "keep one remote secret per cluster ID",
            )))
        }
    }
    let named = api.get_opt(&secret_name(remote_cluster)).await?;
    let is_labelled =
        |s: &Secret| s.metadata.labels.as_ref().and_then(|l| l.get(LABEL)).map(String::as_str) == Some("true");
    if let Some(unlabelled) = named.filter(|s| !is_labelled(s)) {
        return Err(anyhow::anyhow!(
            "{} has labels {:?}",
            secret_name(remote_cluster),
            unlabelled.metadata.labels.unwrap_or_default()
        )
        .context(Diagnosis::new(
            format!("the remote secret for {remote_cluster} lacks the label {LABEL}=true, so istiod ignores it"),
            format!("kubectl label secret {} -n istio-system {LABEL}=true", secret_name(remote_cluster)),
        )));
    }
    let other_keys: Vec<String> = labelled
        .iter()
        .flat_map(|s| {
            let name = s.metadata.name.clone().unwrap_or_default();
            s.data.iter().flat_map(|d| d.keys()).map(move |k| format!("{name}: {k}")).collect::<Vec<_>>()
        })
        .collect();
    if !other_keys.is_empty() {
        return Err(anyhow::anyhow!(
            "labelled remote secrets hold {other_keys:?}; istiod takes each data key as a cluster ID"
        )
        .context(Diagnosis::new(
            format!("the remote secret's data key is not the cluster ID {remote_cluster}, so istiod never reads that cluster"),
            format!("recreate it with istioctl create-remote-secret --name={remote_cluster}"),
        )));
    }
    Ok(None)
}

/// Read a remote secret's kubeconfig for `remote_cluster` as istiod reads it.
pub fn parse(secret: &Secret, remote_cluster: &str) -> Result<(RemoteSecret, Kubeconfig)> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get(remote_cluster))
        .with_context(|| format!("{name} has no data key {remote_cluster}"))?;
    let text = String::from_utf8(raw.0.clone()).with_context(|| format!("{name}: the kubeconfig is not text"))?;
    let kubeconfig = Kubeconfig::from_yaml(&text).with_context(|| format!("{name}: kubeconfig cannot be loaded"))?;
    let context = kubeconfig
        .current_context
        .clone()
        .filter(|c| !c.is_empty())
        .with_context(|| format!("{name}: the kubeconfig has no current-context, the only context istiod uses"))?;
    let ctx_body = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .with_context(|| format!("{name}: current-context {context:?} names no context"))?;
    let user = kubeconfig
        .auth_infos
        .iter()
        .find(|u| Some(&u.name) == ctx_body.user.as_ref())
        .and_then(|u| u.auth_info.as_ref())
        .with_context(|| format!("{name}: the context's user {:?} is missing", ctx_body.user))?;
    let refused = [
        (user.exec.is_some(), "exec"),
        (user.token_file.is_some(), "tokenFile"),
        (user.client_certificate.is_some(), "clientCertificate"),
        (user.client_key.is_some(), "clientKey"),
        (user.auth_provider.as_ref().is_some_and(|p| p.name != "oidc"), "an auth provider other than oidc"),
    ];
    if let Some((_, what)) = refused.iter().find(|(is, _)| *is) {
        return Err(anyhow::anyhow!("{name}").context(Diagnosis::new(
            format!("istiod refuses the remote secret for {remote_cluster}: {what} is not allowed in its kubeconfig"),
            "recreate it with a bearer token (istioctl create-remote-secret --auth-type bearer-token), or allow it with PILOT_INSECURE_MULTICLUSTER_KUBECONFIG_OPTIONS",
        )));
    }
    let auth = if user.token.is_some() {
        "bearer token"
    } else if user.client_certificate_data.is_some() && user.client_key_data.is_some() {
        "client certificate"
    } else if user.auth_provider.is_some() {
        "oidc"
    } else {
        bail!(
            "{name}: the user of context {context:?} has no credential istiod can use (token, client certificate data)"
        )
    };
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx_body.cluster)
        .and_then(|c| c.cluster.as_ref())
        .with_context(|| format!("{name}: the context's cluster {:?} is missing", ctx_body.cluster))?;
    let server = cluster
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("{name}: the cluster has no server"))?;
    let tls = if cluster.insecure_skip_tls_verify == Some(true) {
        "insecure-skip-tls-verify"
    } else {
        // A certificate-authority file path would be read on istiod's file system, where it is not.
        ensure!(
            cluster.certificate_authority_data.is_some(),
            "{name}: no certificate-authority-data for {server} (and insecure-skip-tls-verify is not set)"
        );
        "certificate-authority-data"
    };
    let parsed = RemoteSecret {
        name,
        cluster: remote_cluster.to_string(),
        context,
        server,
        auth: auth.to_string(),
        tls: tls.to_string(),
    };
    Ok((parsed, kubeconfig))
}

/// The bearer token of the kubeconfig's current-context user (kept in memory only).
pub fn bearer_token(kubeconfig: &Kubeconfig) -> Option<String> {
    use secrecy::ExposeSecret;
    let context = kubeconfig.current_context.as_ref()?;
    let user = kubeconfig.contexts.iter().find(|c| &c.name == context)?.context.as_ref()?.user.clone()?;
    let auth = kubeconfig.auth_infos.iter().find(|u| u.name == user)?.auth_info.as_ref()?;
    auth.token.as_ref().map(|t| t.expose_secret().to_string())
}

/// The claims a legacy service-account token names its Secret by
/// (kubernetes pkg/serviceaccount/legacy.go, `legacyPrivateClaims`):
/// `(namespace, secret name)`. Read without checking the signature: only to
/// say which Secret a token came from, never to trust it.
pub fn legacy_token_secret(token: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let field = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some((field("kubernetes.io/serviceaccount/namespace")?, field("kubernetes.io/serviceaccount/secret.name")?))
}

/// Where a token the peer's API server rejected came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    /// The Secret it names is gone: the token was revoked (a stale token).
    Revoked { secret: String },
    /// The Secret it names holds another token now (altered in the remote
    /// secret, or the Secret was refilled).
    NotHeld { secret: String },
    /// The Secret it names holds it still.
    Held { secret: String },
    /// Not a legacy service-account token (no claims naming a Secret).
    Unknown,
}

/// Which of the peer's token Secrets a rejected token came from, read with
/// meshspec's own access to the peer. Kubernetes accepts a legacy token only
/// while the Secret its claims name exists and holds exactly that token
/// (pkg/serviceaccount/legacy.go `legacyValidator.Validate`: "Token has been
/// invalidated" when the Secret is gone, "Token does not match server's copy").
pub async fn token_origin(peer: &kube::Client, token: &str) -> Result<TokenOrigin> {
    let Some((namespace, name)) = legacy_token_secret(token) else {
        return Ok(TokenOrigin::Unknown);
    };
    let secret = format!("{namespace}/{name}");
    let api: Api<Secret> = Api::namespaced(peer.clone(), &namespace);
    Ok(match api.get_opt(&name).await? {
        None => TokenOrigin::Revoked { secret },
        Some(s) if s.data.as_ref().and_then(|d| d.get("token")).map(|t| t.0.as_slice()) == Some(token.as_bytes()) => {
            TokenOrigin::Held { secret }
        }
        Some(_) => TokenOrigin::NotHeld { secret },
    })
}

/// What the remote cluster's API server answered to a remote secret's credentials.
#[derive(Debug)]
pub enum Answer {
    /// It answered: the UID of the `kube-system` namespace it reaches (which cluster it is).
    Cluster(String),
    /// It refused the credentials (401 or 403): the Status it returned.
    Rejected(String),
    /// No answer (refused connection, timeout, TLS, DNS): what went wrong.
    Unreachable(String),
}

/// Read the remote cluster with the secret's own credentials, as istiod would.
pub async fn server_answers(kubeconfig: Kubeconfig) -> Result<Answer> {
    Ok(connect(kubeconfig).await?.0)
}

/// What istiod lists and watches in a remote cluster, cluster-wide: its
/// Kubernetes registry's informers (istio/istio 1.20.2
/// pilot/pkg/serviceregistry/kube/controller/controller.go `NewController`:
/// namespaces, services, nodes, pods; endpointslice.go: endpointslices).
pub const ISTIOD_REMOTE_READS: &[(&str, &str)] =
    &[("", "namespaces"), ("", "services"), ("", "nodes"), ("", "pods"), ("discovery.k8s.io", "endpointslices")];

/// One read istiod needs that the credentials are not allowed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Denied {
    pub verb: String,
    /// `pods`, or `endpointslices.discovery.k8s.io`.
    pub resource: String,
    /// The API server's reason, when it gave one.
    pub reason: String,
}

/// Reads the remote cluster with the secret's credentials and asks the API
/// server (SelfSubjectAccessReview, as `kubectl auth can-i` does) whether they
/// may list and watch everything istiod reads there. Reviews the server does
/// not answer are left out: only a definite "no" is a denial.
pub async fn server_answers_with_access(kubeconfig: Kubeconfig) -> Result<(Answer, Vec<Denied>)> {
    let (answer, client) = connect(kubeconfig).await?;
    let mut denied = Vec::new();
    if matches!(answer, Answer::Cluster(_)) {
        for (group, resource) in ISTIOD_REMOTE_READS {
            for verb in ["list", "watch"] {
                if let Some(reason) = can_not(&client, verb, group, resource).await {
                    let resource = if group.is_empty() { resource.to_string() } else { format!("{resource}.{group}") };
                    denied.push(Denied { verb: verb.into(), resource, reason });
                }
            }
        }
    }
    Ok((answer, denied))
}

async fn connect(kubeconfig: Kubeconfig) -> Result<(Answer, kube::Client)> {
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(15));
    let client = kube::Client::try_from(config)?;
    let answer = match kube_system(&client).await {
        Ok(ns) => match ns.metadata.uid {
            Some(uid) => Answer::Cluster(uid),
            None => Answer::Unreachable("the namespace kube-system has no uid".into()),
        },
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
            Answer::Rejected(status.to_string())
        }
        Err(e) => Answer::Unreachable(e.to_string()),
    };
    Ok((answer, client))
}

/// `Some(reason)` when the server says the client may not `verb` the resource
/// cluster-wide.
async fn can_not(client: &kube::Client, verb: &str, group: &str, resource: &str) -> Option<String> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&kube::api::PostParams::default(), &review)
        .await
        .ok()?;
    let status = answer.status?;
    (!status.allowed).then(|| status.reason.unwrap_or_default())
}

/// The UID of a cluster's `kube-system` namespace: what identifies a cluster
/// (`istioctl create-remote-secret` names a cluster by it when --name is not given).
pub async fn cluster_uid(client: &kube::Client) -> Result<String> {
    kube_system(client).await?.metadata.uid.context("kube-system has no uid")
}

async fn kube_system(client: &kube::Client) -> kube::Result<Namespace> {
    Api::<Namespace>::all(client.clone()).get(names::KUBE_SYSTEM).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(key: &str, kubeconfig: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("istio-remote-secret-cluster2".into());
        s.data = Some([(key.to_string(), ByteString(kubeconfig.as_bytes().to_vec()))].into());
        s
    }

    /// What istioctl create-remote-secret --name cluster2 writes (1.20.2 golden output:
    /// preferences {}, every name the --name value), and what 1.28+ writes (no preferences).
    fn istioctl(preferences: bool, user: &str) -> String {
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Zm9v\n    server: https://ABC.gr7.us-west-2.eks.amazonaws.com\n  name: cluster2\ncontexts:\n- context:\n    cluster: cluster2\n    user: cluster2\n  name: cluster2\ncurrent-context: cluster2\nkind: Config\n{}users:\n- name: cluster2\n  user:\n{user}\n",
            if preferences { "preferences: {}\n" } else { "" }
        )
    }

    #[test]
    fn every_shape_istioctl_and_the_seeds_chart_write_is_read() {
        for kc in [istioctl(true, "    token: abc"), istioctl(false, "    token: abc")] {
            let (p, _) = parse(&secret("cluster2", &kc), "cluster2").unwrap();
            assert_eq!(
                (p.context.as_str(), p.auth.as_str(), p.tls.as_str()),
                ("cluster2", "bearer token", "certificate-authority-data")
            );
        }
        // Other names for the context, cluster and user, a server with a port, an insecure flag.
        let other = "apiVersion: v1\nkind: Config\ncurrent-context: arn:aws:eks:us-west-2:1:cluster/eks-2\nclusters:\n- name: eks-2\n  cluster:\n    server: https://10.0.0.1:443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: arn:aws:eks:us-west-2:1:cluster/eks-2\n  context: {cluster: eks-2, user: reader}\n- name: unused\n  context: {cluster: nowhere, user: nobody}\nusers:\n- name: reader\n  user: {token: abc}\n";
        let (p, _) = parse(&secret("cluster2", other), "cluster2").unwrap();
        assert_eq!(p.server, "https://10.0.0.1:443");
        assert_eq!(p.tls, "insecure-skip-tls-verify");
        // Inline client certificates and oidc are allowed by istiod.
        let cert = istioctl(false, "    client-certificate-data: Zm9v\n    client-key-data: Zm9v");
        assert_eq!(parse(&secret("cluster2", &cert), "cluster2").unwrap().0.auth, "client certificate");
        let oidc = istioctl(false, "    auth-provider: {name: oidc, config: {idp-issuer-url: https://x}}");
        assert_eq!(parse(&secret("cluster2", &oidc), "cluster2").unwrap().0.auth, "oidc");
    }

    #[test]
    fn what_istiod_refuses_is_refused() {
        for (user, what) in [
            ("    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}", "exec"),
            ("    tokenFile: /var/run/token", "tokenFile"),
            ("    client-certificate: /tmp/c.pem\n    client-key: /tmp/k.pem", "clientCertificate"),
            ("    auth-provider: {name: gcp}", "auth provider other than oidc"),
        ] {
            let e = parse(&secret("cluster2", &istioctl(false, user)), "cluster2").unwrap_err();
            assert!(format!("{e:#}").contains(what), "{what}: {e:#}");
        }
        let no_current = istioctl(false, "    token: abc").replace("current-context: cluster2\n", "");
        assert!(format!("{:#}", parse(&secret("cluster2", &no_current), "cluster2").unwrap_err())
            .contains("no current-context"));
        let no_ca = istioctl(false, "    token: abc").replace("    certificate-authority-data: Zm9v\n", "");
        assert!(format!("{:#}", parse(&secret("cluster2", &no_ca), "cluster2").unwrap_err())
            .contains("certificate-authority-data"));
    }

    #[test]
    fn a_legacy_token_names_its_secret_and_other_tokens_name_none() {
        use base64::Engine as _;
        let enc = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = serde_json::json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "istio-system",
            "kubernetes.io/serviceaccount/secret.name": "istio-reader-service-account-istio-remote-secret-token",
        });
        let token = format!("{}.{}.c2ln", enc(&serde_json::json!({"alg": "RS256"})), enc(&claims));
        assert_eq!(
            legacy_token_secret(&token),
            Some(("istio-system".into(), "istio-reader-service-account-istio-remote-secret-token".into()))
        );
        assert_eq!(legacy_token_secret("abc"), None);
        assert_eq!(legacy_token_secret("a.bm90IGpzb24.c"), None);
        // A bound token (TokenRequest) names no Secret.
        let bound = format!("x.{}.y", enc(&serde_json::json!({"kubernetes.io": {"namespace": "istio-system"}})));
        assert_eq!(legacy_token_secret(&bound), None);
    }

    #[test]
    fn the_bearer_token_is_the_current_contexts_users() {
        let kc = Kubeconfig::from_yaml(&istioctl(true, "    token: abc")).unwrap();
        assert_eq!(bearer_token(&kc).as_deref(), Some("abc"));
    }
}
