//! Reading Kubernetes objects as JSON: the few fields the programs look at.
//! Objects come from users (kubectl, kube-rs), so every accessor tolerates a
//! missing or mistyped field instead of assuming the schema.

use std::collections::BTreeMap;

use serde_json::Value;

pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.deletionTimestamp` is set: the object waits for its finalizers.
pub fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(obj.pointer("/metadata/labels"))
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A JSON object of strings as a map; non-string values are skipped.
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
        .unwrap_or_default()
}

/// `true` when every `key: value` of `selector` is among `labels`. An empty
/// selector selects everything, as for Service selectors and matchLabels.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// An `ownerReferences` entry pointing at `owner`, as a controller.
pub fn owner_reference(owner: &Value, api_version: &str, kind: &str) -> Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The uid of the object's controller of the given kind, if any.
pub fn controller_uid<'a>(obj: &'a Value, kind: &str) -> Option<&'a str> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| {
            r.get("kind").and_then(Value::as_str) == Some(kind)
                && r.get("controller").and_then(Value::as_bool) == Some(true)
        })?
        .get("uid")?
        .as_str()
}

pub mod pod {
    //! Pod fields.
    use super::*;

    pub fn ip(pod: &Value) -> Option<&str> {
        pod.pointer("/status/podIP").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    pub fn phase(pod: &Value) -> &str {
        pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
    }

    pub fn node_name(pod: &Value) -> Option<&str> {
        pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// Condition `Ready` is `True`.
    pub fn is_ready(pod: &Value) -> bool {
        condition_true(pod, "Ready")
    }

    /// Running, Ready and not being deleted: what controllers count as serving.
    pub fn is_serving(pod: &Value) -> bool {
        phase(pod) == "Running" && is_ready(pod) && !is_terminating(pod)
    }

    pub fn condition_true(obj: &Value, kind: &str) -> bool {
        obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
    }

    /// Condition `kind` is `False` for `reason`.
    pub fn condition_false_with_reason(obj: &Value, kind: &str, reason: &str) -> bool {
        obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status").and_then(Value::as_str) == Some("False")
                    && c.get("reason").and_then(Value::as_str) == Some(reason)
            })
        })
    }

    pub fn containers(pod: &Value) -> &[Value] {
        pod.pointer("/spec/containers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn image(container: &Value) -> &str {
        container.get("image").and_then(Value::as_str).unwrap_or("")
    }

    /// `containerPort`s a container declares, with their names.
    pub fn container_ports(container: &Value) -> Vec<(Option<String>, u16)> {
        container
            .get("ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        let number = p.get("containerPort")?.as_u64()?;
                        let number = u16::try_from(number).ok()?;
                        let name = p.get("name").and_then(Value::as_str).map(str::to_owned);
                        Some((name, number))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The number behind a named container port, over all containers.
    pub fn named_port(pod: &Value, port_name: &str) -> Option<u16> {
        containers(pod)
            .iter()
            .flat_map(container_ports)
            .find(|(name, _)| name.as_deref() == Some(port_name))
            .map(|(_, n)| n)
    }

    /// The value of `--flag=value` (or `--flag value`) in a container's args or command.
    pub fn flag_value(container: &Value, flag: &str) -> Option<String> {
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| container.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let prefix = format!("{flag}=");
        for (i, w) in words.iter().enumerate() {
            if let Some(v) = w.strip_prefix(&prefix) {
                return Some(v.to_owned());
            }
            if *w == flag {
                return words.get(i + 1).map(|v| (*v).to_owned());
            }
        }
        None
    }
}

pub mod service {
    //! Service fields.
    use super::*;

    /// One entry of `spec.ports`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ServicePort {
        pub name: Option<String>,
        pub port: u16,
        pub protocol: String,
        pub target_port: TargetPort,
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum TargetPort {
        Number(u16),
        Name(String),
    }

    impl ServicePort {
        /// The port on `pod` that traffic for this Service port goes to;
        /// `None` when a named target port is not declared by the pod.
        pub fn resolve_on(&self, pod_obj: &Value) -> Option<u16> {
            match &self.target_port {
                TargetPort::Number(n) => Some(*n),
                TargetPort::Name(n) => pod::named_port(pod_obj, n),
            }
        }
    }

    pub fn type_(svc: &Value) -> &str {
        svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
    }

    /// `spec.selector`; `None` for a Service without one (an empty one counts
    /// as none, as in Kubernetes): its Endpoints are the user's to write.
    pub fn selector(svc: &Value) -> Option<BTreeMap<String, String>> {
        let sel = string_map(svc.pointer("/spec/selector"));
        (!sel.is_empty()).then_some(sel)
    }

    pub fn ports(svc: &Value) -> Vec<ServicePort> {
        svc.pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(|ports| ports.iter().filter_map(parse_port).collect())
            .unwrap_or_default()
    }

    fn parse_port(p: &Value) -> Option<ServicePort> {
        let port = u16::try_from(p.get("port")?.as_u64()?).ok()?;
        let target_port = match p.get("targetPort") {
            None | Some(Value::Null) => TargetPort::Number(port),
            Some(Value::Number(n)) => TargetPort::Number(u16::try_from(n.as_u64()?).ok()?),
            // IntOrString: a string of digits is a number.
            Some(Value::String(s)) => match s.parse::<u16>() {
                Ok(n) => TargetPort::Number(n),
                Err(_) => TargetPort::Name(s.clone()),
            },
            Some(_) => return None,
        };
        Some(ServicePort {
            name: p.get("name").and_then(Value::as_str).map(str::to_owned),
            port,
            protocol: p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_owned(),
            target_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selectors_need_every_label_and_empty_ones_select_all() {
        let labels = map(&[("app", "helloworld"), ("version", "v1")]);
        assert!(selects(&map(&[("app", "helloworld")]), &labels));
        assert!(!selects(&map(&[("app", "helloworld"), ("version", "v2")]), &labels));
        assert!(!selects(&map(&[("app", "sleep")]), &labels));
        assert!(selects(&BTreeMap::new(), &labels));
    }

    #[test]
    fn service_ports_resolve_named_and_numeric_target_ports() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 5000, "targetPort": "http-alt"},
            {"port": 80},
            {"name": "tls", "port": 15443, "targetPort": "15443"}]}});
        let pod_obj = json!({"spec": {"containers": [{"ports": [{"name": "http-alt", "containerPort": 8080}]}]}});
        let ports = service::ports(&svc);
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[0].resolve_on(&pod_obj), Some(8080));
        assert_eq!(ports[1].resolve_on(&pod_obj), Some(80));
        assert_eq!(ports[2].target_port, service::TargetPort::Number(15443));
        assert_eq!(ports[0].resolve_on(&json!({})), None);
    }

    #[test]
    fn flags_are_read_in_both_spellings() {
        let c = json!({"args": ["--cluster-name=eks-1", "--ingress-class", "alb"]});
        assert_eq!(pod::flag_value(&c, "--cluster-name").as_deref(), Some("eks-1"));
        assert_eq!(pod::flag_value(&c, "--ingress-class").as_deref(), Some("alb"));
        assert_eq!(pod::flag_value(&c, "--aws-vpc-id"), None);
    }
}
