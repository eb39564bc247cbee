//! The scheduler and the kubelets of a cluster, for every pod however it was
//! made: a new pod is bound to a node (`spec.nodeName`) and gets an IP from
//! that node's subnet (Pending, ContainerCreating), then after
//! `delays.pod_ready` of simulated time its programs start (the cluster's
//! pod hooks) and it is Running with every container started and Ready; a
//! program that exits at start leaves its container in CrashLoopBackOff,
//! restarted with the kubelet's back-off. A pod for which no node or IP is
//! left stays Pending and Unschedulable.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::task::AbortHandle;

use super::events::{self, Source, NORMAL, WARNING};
use super::network::Placement;
use super::objects::{self, pod};
use super::runtime::{timestamp, Cluster, ContainerExit, Reconciler};
use crate::kube::{Part, Resource, StoreEvent};

pub struct Kubelet {
    /// Pods (by uid) whose containers are starting: the timer that makes them Ready.
    starting: HashMap<String, AbortHandle>,
}

impl Kubelet {
    pub fn new() -> Kubelet {
        Kubelet { starting: HashMap::new() }
    }
}

impl Default for Kubelet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for timer in self.starting.values() {
            timer.abort();
        }
    }
}

fn pod_key(p: &Value) -> String {
    format!("{}/{}", objects::namespace(p), objects::name(p))
}

fn condition(kind: &str, ok: bool, now: &str) -> Value {
    json!({"type": kind, "status": if ok {"True"} else {"False"}, "lastProbeTime": null, "lastTransitionTime": now})
}

/// A deterministic fake digest, so that the same image always shows the same ID.
fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Status of a pod bound to its node whose containers are being created.
pub fn pending_status(p: &Value, at: &Placement, now: &str) -> Value {
    let waiting = |c: &Value| {
        json!({"name": c.get("name").cloned().unwrap_or(Value::Null), "image": pod::image(c), "imageID": "",
               "ready": false, "started": false, "restartCount": 0,
               "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}})
    };
    let mut status = json!({
        "phase": "Pending",
        "hostIP": at.host_ip.to_string(), "hostIPs": [{"ip": at.host_ip.to_string()}],
        "podIP": at.pod_ip.to_string(), "podIPs": [{"ip": at.pod_ip.to_string()}],
        "startTime": now,
        "qosClass": p.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
        "conditions": [
            condition("PodReadyToStartContainers", false, now),
            condition("Initialized", true, now),
            condition("Ready", false, now),
            condition("ContainersReady", false, now),
            condition("PodScheduled", true, now),
        ],
        "containerStatuses": pod::containers(p).iter().map(waiting).collect::<Vec<_>>(),
    });
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
            c["reason"] = json!("ContainersNotReady");
        }
    }
    status
}

/// Status of the same pod once all its containers run and are ready.
pub fn running_status(p: &Value, now: &str) -> Value {
    let mut status = p.get("status").cloned().unwrap_or_else(|| json!({}));
    let uid = objects::uid(p);
    let running = |c: &Value| {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let image = pod::image(c);
        json!({"name": name, "image": image, "imageID": format!("{image}@sha256:{}", digest(image)),
               "containerID": format!("containerd://{}", digest(&format!("{uid}/{name}"))),
               "ready": true, "started": true, "restartCount": 0,
               "state": {"running": {"startedAt": now}}, "lastState": {}})
    };
    let completed = |c: &Value| {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let image = pod::image(c);
        json!({"name": name, "image": image, "imageID": format!("{image}@sha256:{}", digest(image)),
               "containerID": format!("containerd://{}", digest(&format!("{uid}/init/{name}"))),
               "ready": true, "started": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
               "lastState": {}})
    };
    status["phase"] = json!("Running");
    status["conditions"] = json!([
        condition("PodReadyToStartContainers", true, now),
        condition("Initialized", true, now),
        condition("Ready", true, now),
        condition("ContainersReady", true, now),
        condition("PodScheduled", true, now),
    ]);
    status["containerStatuses"] = Value::Array(pod::containers(p).iter().map(running).collect());
    if let Some(init) = p.pointer("/spec/initContainers").and_then(Value::as_array) {
        status["initContainerStatuses"] = Value::Array(init.iter().map(completed).collect());
    }
    status
}

fn unschedulable_status(p: &Value, nodes: usize, now: &str) -> Value {
    let mut status = p.get("status").cloned().unwrap_or_else(|| json!({}));
    status["phase"] = json!("Pending");
    let mut scheduled = condition("PodScheduled", false, now);
    scheduled["reason"] = json!("Unschedulable");
    scheduled["message"] = json!(format!("0/{nodes} nodes are available: no free IP address in their subnets."));
    status["conditions"] = json!([scheduled]);
    status
}

impl Reconciler for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    fn interested(&self, event: &StoreEvent) -> bool {
        event.resource.plural == "pods"
    }

    fn reconcile(&mut self, cluster: &Arc<Cluster>) {
        let pods = cluster.list(&Resource::pods());
        let now = timestamp();
        let mut network = cluster.network();
        let Some(network) = network.as_mut() else {
            return;
        };

        // Forget pods that are gone: their IPs and start timers.
        let live: HashSet<String> = pods.iter().map(pod_key).collect();
        let uids: HashSet<&str> = pods.iter().map(objects::uid).collect();
        network.retain(|key| live.contains(key));
        // A deleted pod's logs go with it (kubelet removes its containers).
        cluster.store.logs().retain(|uid| uids.contains(uid));
        self.starting.retain(|uid, timer| {
            let keep = uids.contains(uid.as_str()) && !timer.is_finished();
            if !keep {
                timer.abort();
            }
            keep
        });

        for p in &pods {
            if objects::is_terminating(p) || matches!(pod::phase(p), "Running" | "Succeeded" | "Failed") {
                continue;
            }
            let key = pod_key(p);
            let ns = objects::namespace(p).to_owned();
            let name = objects::name(p).to_owned();
            match (pod::node_name(p), pod::ip(p)) {
                (Some(node), Some(ip)) => {
                    if let Ok(ip) = ip.parse() {
                        network.adopt(&key, node, ip);
                    }
                }
                _ => {
                    let Some(at) = network.place(&key) else {
                        if !pod::condition_false_with_reason(p, "PodScheduled", "Unschedulable") {
                            let mut updated = p.clone();
                            updated["status"] = unschedulable_status(p, network.nodes().len(), &now);
                            let why = updated.pointer("/status/conditions/0/message").and_then(Value::as_str);
                            let why = why.unwrap_or_default().to_owned();
                            cluster.set_status(&Resource::pods(), &updated);
                            // kube-scheduler pkg/scheduler/schedule_one.go handleSchedulingFailure.
                            let pod_ref = events::reference(&Resource::pods(), p, None);
                            events::record_v1(
                                cluster,
                                pod_ref,
                                WARNING,
                                "FailedScheduling",
                                "Scheduling",
                                &why,
                                SCHEDULER,
                            );
                        }
                        continue;
                    };
                    if pod::node_name(p).is_none()
                        && cluster
                            .merge_patch(
                                &Resource::pods(),
                                Some(&ns),
                                &name,
                                json!({"spec": {"nodeName": at.node_name}}),
                            )
                            .is_none()
                    {
                        continue;
                    }
                    if pod::node_name(p).is_none() {
                        // kube-scheduler pkg/scheduler/schedule_one.go finishBinding.
                        let msg = format!("Successfully assigned {ns}/{name} to {}", at.node_name);
                        let pod_ref = events::reference(&Resource::pods(), p, None);
                        events::record_v1(cluster, pod_ref, NORMAL, "Scheduled", "Binding", &msg, SCHEDULER);
                    }
                    let mut updated = p.clone();
                    updated["status"] = pending_status(p, &at, &now);
                    cluster.set_status(&Resource::pods(), &updated);
                }
            }
            let uid = objects::uid(p).to_owned();
            if let Entry::Vacant(slot) = self.starting.entry(uid.clone()) {
                slot.insert(tokio::spawn(start_containers(cluster.clone(), ns, name, uid)).abort_handle());
            }
        }
    }
}

/// The scheduler's reportingController (its default profile's name).
const SCHEDULER: &str = "default-scheduler";

/// The fieldPath of a container's events (`spec.containers{name}`), kubelet's
/// pkg/kubelet/container/ref.go GenerateContainerRef.
fn container_field_path(p: &Value, container: &str) -> String {
    let init = p
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(container)));
    let list = if init { "initContainers" } else { "containers" };
    format!("spec.{list}{{{container}}}")
}

/// A duration as Go prints it, at millisecond precision (`6s`, `1.25s`, `850ms`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// The kubelet's events for a container it starts (Pulling/Pulled, Created,
/// Started), from pkg/kubelet/images/image_manager.go (the message before
/// kubelet 1.30 added the image size, which the twin does not know) and
/// pkg/kubelet/kuberuntime/kuberuntime_container.go startContainer.
fn container_start_events(cluster: &Cluster, p: &Value, container: &str, first: bool) {
    let node = pod::node_name(p).unwrap_or_default().to_owned();
    let source = Source { component: "kubelet", host: Some(&node) };
    let image = pod::containers(p)
        .iter()
        .chain(p.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten())
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
        .map(pod::image)
        .unwrap_or_default()
        .to_owned();
    let path = container_field_path(p, container);
    let at = || events::reference(&Resource::pods(), p, Some(&path));
    if first {
        events::record(cluster, at(), NORMAL, "Pulling", &format!("Pulling image {image:?}"), source);
        // A pull takes part of the pod's start-up time (simulated).
        let pull = go_duration(cluster.delays.pod_ready.mul_f64(0.4));
        let msg = format!("Successfully pulled image {image:?} in {pull} ({pull} including waiting)");
        events::record(cluster, at(), NORMAL, "Pulled", &msg, source);
    } else {
        let msg = format!("Container image {image:?} already present on machine");
        events::record(cluster, at(), NORMAL, "Pulled", &msg, source);
    }
    events::record(cluster, at(), NORMAL, "Created", &format!("Created container {container}"), source);
    events::record(cluster, at(), NORMAL, "Started", &format!("Started container {container}"), source);
}

/// The kubelet's restart back-off for a crashing container: 10 s, doubling, at most 5 minutes.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// After the simulated start-up time the pod's programs start (see
/// `Cluster::start_pod`); if the pod is still the same one, it then runs and
/// is Ready, or its crashing container is restarted with back-off until it
/// starts (each start is a new start: istiod reads `cacerts` again).
async fn start_containers(cluster: Arc<Cluster>, ns: String, name: String, uid: String) {
    cluster.clock.sleep(cluster.delays.pod_ready).await;
    let mut restarts = 0u32;
    let mut last_exit: Option<ContainerExit> = None;
    let mut backoff = BACKOFF_START;
    let logs = cluster.store.logs().clone();
    loop {
        let Some(current) = cluster.get(&Resource::pods(), Some(&ns), &name) else {
            return;
        };
        if objects::uid(&current) != uid || objects::is_terminating(&current) {
            return;
        }
        // All containers at first (init containers run to completion before
        // them); after a crash only the crashed one starts again.
        let starting: Vec<String> = match &last_exit {
            None => {
                let init = current.pointer("/spec/initContainers").and_then(Value::as_array);
                for c in init.into_iter().flatten().filter_map(|c| c.get("name").and_then(Value::as_str)) {
                    container_start_events(&cluster, &current, c, true);
                    logs.start(&uid, c);
                    logs.exit(&uid, c);
                }
                pod::containers(&current)
                    .iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                    .collect()
            }
            Some(exit) => vec![exit.container.clone()],
        };
        for c in &starting {
            container_start_events(&cluster, &current, c, last_exit.is_none());
            logs.start(&uid, c);
        }
        let started = cluster.start_pod(&current, &starting);
        if let Err(exit) = &started {
            tracing::info!(cluster = %cluster.eks_name, "pod {ns}/{name}: container {} exited: {}", exit.container, exit.message);
            logs.exit(&uid, &exit.container);
            // pkg/kubelet/kuberuntime/kuberuntime_manager.go doBackOff (format.Pod: name_namespace(uid)).
            let node = pod::node_name(&current).unwrap_or_default().to_owned();
            let path = container_field_path(&current, &exit.container);
            events::record(
                &cluster,
                events::reference(&Resource::pods(), &current, Some(&path)),
                WARNING,
                "BackOff",
                &format!("Back-off restarting failed container {} in pod {name}_{ns}({uid})", exit.container),
                Source { component: "kubelet", host: Some(&node) },
            );
        }
        let result = cluster.store.modify(&Resource::pods(), Some(&ns), &name, Part::Status, |current| {
            let mut next = current.clone();
            if objects::uid(current) == uid && pod::ip(current).is_some() && !pod::is_ready(current) {
                let now = timestamp();
                next["status"] = match &started {
                    Ok(()) => with_restarts(running_status(current, &now), restarts, last_exit.as_ref(), &now),
                    Err(exit) => crashed_status(current, exit, restarts + 1, backoff, &now),
                };
            }
            Ok(next)
        });
        if let Err(e) = result {
            tracing::debug!(cluster = %cluster.eks_name, "pod {ns}/{name} did not start: {e}");
            return;
        }
        let Err(exit) = started else {
            return;
        };
        last_exit = Some(exit);
        restarts += 1;
        cluster.clock.sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The crashed container's `restartCount` and its last exit in `lastState`.
fn with_restarts(mut status: Value, restarts: u32, crashed: Option<&ContainerExit>, now: &str) -> Value {
    let Some(exit) = crashed else {
        return status;
    };
    for c in status["containerStatuses"].as_array_mut().into_iter().flatten() {
        if c["name"] == exit.container.as_str() {
            c["restartCount"] = json!(restarts);
            c["lastState"] = json!({"terminated": {"exitCode": exit.exit_code, "reason": "Error",
                                                   "message": exit.message, "startedAt": now, "finishedAt": now}});
        }
    }
    status
}

/// A pod whose container exited at start: Running, not Ready, the container
/// waiting in CrashLoopBackOff with its exit as the last state.
pub fn crashed_status(p: &Value, exit: &ContainerExit, restarts: u32, backoff: Duration, now: &str) -> Value {
    let mut status = with_restarts(running_status(p, now), restarts, Some(exit), now);
    let pod_name = objects::name(p);
    for c in status["containerStatuses"].as_array_mut().into_iter().flatten() {
        if c["name"] == exit.container.as_str() {
            c["ready"] = json!(false);
            c["started"] = json!(false);
            c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!(
                "back-off {}s restarting failed container={} pod={pod_name}_{}({})",
                backoff.as_secs(), exit.container, objects::namespace(p), objects::uid(p))}});
        }
    }
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        if matches!(c["type"].as_str(), Some("Ready" | "ContainersReady")) {
            c["status"] = json!("False");
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!("containers with unready status: [{}]", exit.container));
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn placement() -> Placement {
        Placement {
            node_name: "ip-10-1-3-7.us-west-2.compute.internal".into(),
            host_ip: Ipv4Addr::new(10, 1, 3, 7),
            pod_ip: Ipv4Addr::new(10, 1, 9, 33),
            az: "us-west-2a".into(),
        }
    }

    fn a_pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "sample", "uid": "u1"},
               "spec": {"containers": [{"name": "helloworld", "image": "docker.io/istio/examples-helloworld-v1"},
                                       {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.20.2"}]},
               "status": {"phase": "Pending", "qosClass": "BestEffort"}})
    }

    #[test]
    fn a_placed_pod_is_pending_with_its_ip_and_not_ready() {
        let s = pending_status(&a_pod(), &placement(), "2026-11-25T18:09:48Z");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["podIP"], "10.1.9.33");
        assert_eq!(s["hostIP"], "10.1.3.7");
        let mut p = a_pod();
        p["status"] = s;
        assert!(!pod::is_ready(&p));
        assert_eq!(p["status"]["containerStatuses"][1]["state"]["waiting"]["reason"], "ContainerCreating");
    }

    #[test]
    fn a_started_pod_runs_every_container_ready() {
        let mut p = a_pod();
        p["status"] = pending_status(&p, &placement(), "2026-11-25T18:09:48Z");
        p["status"] = running_status(&p, "2026-11-25T18:10:03Z");
        assert!(pod::is_serving(&p));
        assert!(pod::condition_true(&p, "ContainersReady"));
        assert_eq!(p["status"]["podIP"], "10.1.9.33", "the IP is kept");
        let exit = ContainerExit { container: "istio-proxy".into(), exit_code: 1, message: "boom".into() };
        let crashed = crashed_status(&p, &exit, 2, Duration::from_secs(20), "2026-11-25T18:10:33Z");
        let mut c = p.clone();
        c["status"] = crashed;
        assert!(!pod::is_ready(&c) && pod::phase(&c) == "Running");
        let proxy = &c["status"]["containerStatuses"][1];
        assert_eq!(proxy["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!((proxy["restartCount"].as_u64(), proxy["ready"].as_bool()), (Some(2), Some(false)));
        assert_eq!(proxy["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["status"]["containerStatuses"][0]["ready"], true, "the other container runs");
        let statuses = p["status"]["containerStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 2);
        for s in statuses {
            assert_eq!(s["ready"], true);
            assert_eq!(s["started"], true);
            assert_eq!(s["state"]["running"]["startedAt"], "2026-11-25T18:10:03Z");
        }
    }
}
