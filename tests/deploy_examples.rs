//! The Kubernetes example (`deploy/kubernetes/cdcd-ha.yaml`) is what docs/operations.md says it is:
//! two replicas, no volume, probes on `/health` and `/ready`, the stop grace the drain needs,
//! and a connector file that cdcd loads with the Kafka store and exactly-once delivery.
//! Kubernetes itself does not run here; the manifest is read with PyYAML (an independent
//! parser), not applied.

use std::process::Command;

use serde_json::Value;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/cdcd-ha.yaml");

/// The manifest's documents, as JSON.
fn documents() -> Vec<Value> {
    let out = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
        .arg(EXAMPLE)
        .output()
        .expect("python3 with PyYAML (scripts/deps.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the example"))
}

#[test]
fn the_kubernetes_example_runs_two_stateless_replicas_with_probes_and_a_drain_grace() {
    let docs = documents();
    let deployment = kind(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 60, "the drain needs up to 30 s and a margin");
    for volume in pod["volumes"].as_array().unwrap() {
        assert!(
            volume.get("configMap").is_some() || volume.get("secret").is_some(),
            "a volume that keeps state: {volume}"
        );
    }
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(kind(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1);
    let mounts: Vec<&str> =
        container["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert!(mounts.contains(&"/etc/cdcd/connectors"), "{mounts:?}");
}

#[test]
fn the_kubernetes_example_connector_loads_with_the_kafka_store_and_exactly_once() {
    let docs = documents();
    let files = kind(&docs, "ConfigMap")["data"].as_object().unwrap().clone();
    let secrets = kind(&docs, "Secret")["stringData"].as_object().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in &secrets {
        std::fs::write(dir.path().join(name), value.as_str().unwrap()).unwrap();
    }
    let connectors = dir.path().join("connectors");
    std::fs::create_dir(&connectors).unwrap();
    for (name, text) in &files {
        // The pod mounts the secret at /run/secrets/cdcd; here it is the temporary directory.
        let text = text.as_str().unwrap().replace("/run/secrets/cdcd", dir.path().to_str().unwrap());
        std::fs::write(connectors.join(name), text).unwrap();
    }
    let loaded = cdcd::config::load(&connectors).expect("the example's connector files load");
    assert!(!loaded.is_empty());
    for cfg in &loaded {
        assert!(cfg.kafka_store().is_some(), "{}: the example needs no volume only with the Kafka store", cfg.name);
        assert_eq!(cfg.delivery(), cdcd::config::Delivery::ExactlyOnce, "{}", cfg.name);
    }
}
