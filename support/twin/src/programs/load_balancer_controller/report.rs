//! What the controller tells about a reconcile: an Event on the Service and
//! a line in its log.
//!
//! Sources (kubernetes-sigs/aws-load-balancer-controller v2.7.1):
//! controllers/service/service_controller.go (`Failed build model due to
//! %v` as FailedBuildModel, `Failed deploy model due to %v` as
//! FailedDeployModel, `Successfully reconciled` as SuccessfullyReconciled,
//! all from the recorder of component `service`, main.go;
//! `successfully deployed model` logged by `controllers.service`),
//! pkg/k8s/events.go (the reasons). The log is JSON from controller-runtime's
//! zap logger in production mode (main.go `zap.New(zap.UseDevMode(false))`):
//! keys `level`, `ts` (RFC 3339, controller-runtime pkg/log/zap addDefaults),
//! `logger`, `msg`; a failed reconcile is controller-runtime's `Reconciler
//! error` with `controller`, `object`, `namespace`, `name`, `reconcileID`,
//! `error` (v0.14, internal/controller reconcileHandler; read from memory
//! of that code, not from its source here).

use serde_json::{json, Value};

use super::{Failure, Pass};
use crate::kube::Resource;
use crate::programs::events::{self, Source, NORMAL, WARNING};
use crate::programs::objects;

/// The recorder's component (main.go: `mgr.GetEventRecorderFor("service")`).
const COMPONENT: &str = "service";

pub(super) fn outcome(pass: &Pass, svc: &Value, result: &Result<(), Failure>) {
    let (ns, name) = (objects::namespace(svc), objects::name(svc));
    let at = events::reference(&Resource::services(), svc, None);
    let source = Source::component(COMPONENT);
    let ts = pass.cluster.store.logs().now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let line = match result {
        Ok(()) => {
            events::record(pass.cluster, at, NORMAL, "SuccessfullyReconciled", "Successfully reconciled", source);
            ordered(&[
                ("level", Field::V(json!("info"))),
                ("ts", Field::V(json!(ts))),
                ("logger", Field::V(json!("controllers.service"))),
                ("msg", Field::V(json!("successfully deployed model"))),
                ("service", ordered_object(&[("name", name), ("namespace", ns)])),
            ])
        }
        Err(e) => {
            let (reason, message) = match e {
                Failure::Build(e) => ("FailedBuildModel", format!("Failed build model due to {e}")),
                Failure::Deploy(e) => ("FailedDeployModel", format!("Failed deploy model due to {e}")),
            };
            events::record(pass.cluster, at, WARNING, reason, &message, source);
            ordered(&[
                ("level", Field::V(json!("error"))),
                ("ts", Field::V(json!(ts))),
                ("msg", Field::V(json!("Reconciler error"))),
                ("controller", Field::V(json!("service"))),
                ("object", ordered_object(&[("name", name), ("namespace", ns)])),
                ("namespace", Field::V(json!(ns))),
                ("name", Field::V(json!(name))),
                ("reconcileID", Field::V(json!(reconcile_id()))),
                ("error", Field::V(json!(e.to_string()))),
            ])
        }
    };
    let logs = pass.cluster.store.logs();
    logs.write(&pass.instance.pod_uid, &pass.instance.container, &line);
}

/// A field's value: JSON, or an object already written in order.
enum Field {
    V(Value),
    Obj(String),
}

/// A JSON object with its keys in zap's order (serde_json's map sorts them).
fn ordered(fields: &[(&str, Field)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| match v {
            Field::V(v) => format!("{}:{v}", json!(k)),
            Field::Obj(text) => format!("{}:{text}", json!(k)),
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A nested object kept in order.
fn ordered_object(fields: &[(&str, &str)]) -> Field {
    let pairs: Vec<(&str, Field)> = fields.iter().map(|(k, v)| (*k, Field::V(json!(v)))).collect();
    Field::Obj(ordered(&pairs))
}

/// A random UUID, as controller-runtime gives each reconcile.
fn reconcile_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}
