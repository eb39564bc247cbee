//! Waits on Kubernetes objects, each with a deadline and the last state seen.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Api;

use crate::wait::{self, Poll, WaitOptions};

/// How a Deployment stands, in one line.
pub fn deployment_state(d: &Deployment) -> String {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    format!(
        "{}/{} available, {} ready, {} updated{}",
        st.available_replicas.unwrap_or(0),
        want,
        st.ready_replicas.unwrap_or(0),
        st.updated_replicas.unwrap_or(0),
        if want == 0 { " (scaled to zero)" } else { "" }
    )
}

/// Whether every wanted replica of the current generation is available.
/// A Deployment with at least one pod available and every replica updated and
/// available. Scaled to zero it is not: Kubernetes calls it Available, but the
/// program it runs (the controller, istiod) does not run.
pub fn deployment_available(d: &Deployment) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(1);
    let st = d.status.clone().unwrap_or_default();
    let observed = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    observed && st.available_replicas.unwrap_or(0) >= want && st.updated_replicas.unwrap_or(0) >= want
}

pub async fn wait_deployment_available(
    client: &kube::Client,
    ns: &str,
    name: &str,
    opts: WaitOptions,
) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    Ok(wait::until(format!("deployment {ns}/{name} to be available"), opts, || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("not found".into()),
            Some(d) if deployment_available(&d) => Poll::Ready(d),
            Some(d) => Poll::Pending(deployment_state(&d)),
        })
    })
    .await?)
}

/// Wait until a service-account token secret carries its token.
pub async fn wait_token(client: &kube::Client, ns: &str, name: &str, opts: WaitOptions) -> Result<Secret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    Ok(wait::until(format!("secret {ns}/{name} to carry a token"), opts, || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("not found".into()),
            Some(s) if s.data.as_ref().is_some_and(|d| d.get("token").is_some_and(|t| !t.0.is_empty())) => {
                Poll::Ready(s)
            }
            Some(_) => Poll::Pending("no token in data yet".into()),
        })
    })
    .await?)
}

/// The load balancer hostname of a Service, once it has one.
pub async fn wait_load_balancer_hostname(
    client: &kube::Client,
    ns: &str,
    name: &str,
    opts: WaitOptions,
) -> Result<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    Ok(wait::until(format!("Service {ns}/{name} to get a load balancer hostname"), opts, || async {
        Ok::<_, kube::Error>(match api.get_opt(name).await? {
            None => Poll::Pending("Service not found".into()),
            Some(svc) => {
                let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
                match ingress.first().and_then(|i| i.hostname.clone()) {
                    Some(h) if !h.is_empty() => Poll::Ready(h),
                    _ => Poll::Pending(format!("EXTERNAL-IP <pending> (status.loadBalancer.ingress = {ingress:?})")),
                }
            }
        })
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(replicas: i32, available: i32) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(DeploymentStatus {
                available_replicas: Some(available),
                updated_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_deployment_scaled_to_zero_runs_nothing_and_is_not_available() {
        assert!(deployment_available(&deployment(2, 2)));
        assert!(!deployment_available(&deployment(2, 1)));
        assert!(!deployment_available(&deployment(0, 0)));
        assert!(deployment_state(&deployment(0, 0)).ends_with("(scaled to zero)"));
    }
}
