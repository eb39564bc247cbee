//! The Docker side of the k3s target against the machine's real engine: what
//! a failed start says, and that a run's labelled networks and containers go.

use std::sync::Mutex;
use std::time::Duration;

use meshspec::containers::k3s::{ClusterSpec, Fleet};
use meshspec::containers::standin_image::ImageRef;

use super::harness::whole_runs;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn run_id() -> String {
    format!("{}-{:08x}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), rand::random::<u32>())
}

fn spec(cluster: &str) -> ClusterSpec {
    ClusterSpec { cluster: cluster.into(), pod_cidr: "10.0.0.0/16".into(), service_cidr: "10.101.0.0/16".into() }
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_the_registry_error_and_nothing_is_left() {
    // Building a stand-in image removes the other ones not in use: one test at a time.
    let _turn = whole_runs();
    runtime().block_on(async {
        let docker =
            meshspec::containers::engine().await.expect("the tests need a Docker engine (scripts/test checks)");
        let run = run_id();
        // No registry answers here, and no image of this name was ever built.
        let image = ImageRef::parse("meshspec-test/absent-k3s:v0.0.0").unwrap();
        let fleet = Fleet::new(docker.clone(), &run, image, Duration::from_secs(60)).unwrap();
        let recorded = Mutex::new(Vec::new());
        let record = |cluster: &str, kind: &str, name: &str| {
            recorded.lock().unwrap().push(format!("{cluster}|{kind}|{name}"));
            Ok(())
        };
        let err = fleet.start(0, &spec("cluster1"), &record).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("meshspec-test/absent-k3s:v0.0.0"), "{text}");
        assert!(text.contains("cannot be pulled"), "{text}");
        assert!(!text.to_lowercase().contains("timed out") && !text.to_lowercase().contains("timeout"), "{text}");
        // Each network and the container were in the ledger before their create.
        let recorded = recorded.into_inner().unwrap();
        let docker_names: Vec<&str> =
            recorded.iter().filter(|l| l.contains("|docker ")).map(|l| l.rsplit('|').next().unwrap()).collect();
        let prefix = meshspec::containers::name(&run, "");
        assert_eq!(docker_names.len(), 3, "two networks and the container: {recorded:?}");
        assert!(docker_names.iter().all(|n| n.starts_with(&prefix)), "{docker_names:?}");
        assert!(recorded.iter().any(|l| l.contains("|k3s files|")), "{recorded:?}");
        let found = meshspec::containers::find(&docker, &run).await.unwrap();
        assert_eq!(found.networks.len(), 2, "the shared and cluster1's networks, labelled: {found:?}");
        let left = fleet.remove_all().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
        assert!(meshspec::containers::find(&docker, &run).await.unwrap().is_empty());
    })
}

#[test]
fn two_standin_clusters_start_on_their_own_networks_joined_by_the_shared_one_and_go() {
    // Building a stand-in image removes the other ones not in use: one test at a time.
    let _turn = whole_runs();
    runtime().block_on(async {
        let docker =
            meshspec::containers::engine().await.expect("the tests need a Docker engine (scripts/test checks)");
        let binary = std::path::Path::new(env!("CARGO_BIN_EXE_meshspec"));
        let image = meshspec::containers::standin_image::build(&docker, binary).await.unwrap();
        let run = run_id();
        let fleet = Fleet::new(docker.clone(), &run, image, Duration::from_secs(120)).unwrap();
        let record = |_: &str, _: &str, _: &str| Ok(());
        let mut started = Vec::new();
        for (i, c) in ["cluster1", "cluster2"].iter().enumerate() {
            let mut s = spec(c);
            s.pod_cidr = format!("10.{i}.0.0/16");
            s.service_cidr = format!("10.10{}.0.0/16", i + 1);
            started.push(fleet.start(i, &s, &record).await.unwrap());
        }
        // A failed assertion must not leave the containers behind: caught, cleaned, re-raised.
        let checked = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
            assert_ne!(started[0].shared_ip, started[1].shared_ip);
            for s in &started {
                let kc = kube::config::Kubeconfig::from_yaml(&s.kubeconfig).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
                let client = kube::Client::try_from(config).unwrap();
                let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
                let node = nodes.get(&s.cluster).await.unwrap();
                let addresses = node.status.unwrap().addresses.unwrap();
                let external = addresses.iter().find(|a| a.type_ == "ExternalIP").map(|a| a.address.clone());
                assert_eq!(external, Some(s.shared_ip.to_string()), "{addresses:?}");
            }
            // Each container is on its own network and the shared one, nothing else.
            for s in &started {
                let inspect = docker.inspect_container(&s.container, None).await.unwrap();
                let mut nets: Vec<String> =
                    inspect.network_settings.unwrap().networks.unwrap().keys().cloned().collect();
                nets.sort();
                let mut want =
                    vec![meshspec::containers::name(&run, &s.cluster), meshspec::containers::name(&run, "shared")];
                want.sort();
                assert_eq!(nets, want);
            }
        }))
        .await;
        let left = fleet.remove_all().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
        if let Err(panic) = checked {
            std::panic::resume_unwind(panic);
        }
    })
}

#[test]
fn a_new_standin_image_replaces_the_one_of_an_earlier_binary() {
    // Building a stand-in image removes the other ones not in use: one test at a time.
    let _turn = whole_runs();
    runtime().block_on(async {
        let docker =
            meshspec::containers::engine().await.expect("the tests need a Docker engine (scripts/test checks)");
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::copy(env!("CARGO_BIN_EXE_meshspec"), &a).unwrap();
        let first = meshspec::containers::standin_image::build(&docker, &a).await.unwrap();
        // Another binary (another size and mtime): another tag.
        std::fs::copy(env!("CARGO_BIN_EXE_meshspec"), &b).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&b)
            .map(|mut f| std::io::Write::write_all(&mut f, b"\0"))
            .unwrap()
            .unwrap();
        let second = meshspec::containers::standin_image::build(&docker, &b).await.unwrap();
        assert_ne!(first, second);
        let first_there = docker.inspect_image(&first.to_string()).await.is_ok();
        let second_there = docker.inspect_image(&second.to_string()).await.is_ok();
        let _ = docker
            .remove_image(
                &second.to_string(),
                None::<testcontainers::bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
        assert!(!first_there, "{first} is left");
        assert!(second_there, "{second} is not there");
    })
}
