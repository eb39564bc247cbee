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
            json!({"level": "info", "ts": ts, "logger": "controllers.service", "msg": "successfully deployed model",
                   "service": {"name": name, "namespace": ns}})
        }
        Err(e) => {
            let (reason, message) = match e {
                Failure::Build(e) => ("FailedBuildModel", format!("Failed build model due to {e}")),
                Failure::Deploy(e) => ("FailedDeployModel", format!("Failed deploy model due to {e}")),
            };
            events::record(pass.cluster, at, WARNING, reason, &message, source);
            json!({"level": "error", "ts": ts, "msg": "Reconciler error", "controller": "service",
                   "object": {"name": name, "namespace": ns}, "namespace": ns, "name": name,
                   "reconcileID": reconcile_id(), "error": e.to_string()})
        }
    };
    let logs = pass.cluster.store.logs();
    logs.write(&pass.instance.pod_uid, &pass.instance.container, &line.to_string());
}

/// A random UUID, as controller-runtime gives each reconcile.
fn reconcile_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}
