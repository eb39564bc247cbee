//! The twin as several OS processes: each EKS cluster in its own (API
//! server, controllers, istiod, sidecars, gateways), the AWS endpoint in
//! another. What joins them is the host's real network:
//!
//! - `vpc`: the VPC fabric, how a connection from outside a cluster's
//!   process (an NLB node, a health check) reaches one of its pod IPs.
//! - `nlb`: the NLBs' data plane, run by the AWS process: a listener on each
//!   zone address and listener port, forwarding to targets over the fabric.
//!
//! The NLBs' health checks over the fabric are
//! `programs::health_checker::run_over_fabric`.

pub mod nlb;
pub mod vpc;
