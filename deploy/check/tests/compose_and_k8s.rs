//! docker-compose and Kubernetes files: they parse, and images, ports, mounts and names agree
//! with each other, the Dockerfile and the node configs. (`tandem config check` of the configs
//! themselves: node/src/devnet/compose.rs's tests.)

use std::{collections::BTreeSet, path::Path, process::Command};

use tandem_deploy_check::repo_root;
use yaml_serde::Value;

const P2P: u64 = 40400;
const RPC: u64 = 8080;
const METRICS: u64 = 9464;
const NODES: [&str; 5] = [
    "validator-0",
    "validator-1",
    "validator-2",
    "validator-3",
    "fullnode-0",
];

fn yaml(path: &Path) -> Value {
    let mut value: Value = yaml_serde::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    value.apply_merge().unwrap();
    value
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        })
        .collect()
}

fn strs(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The ports the Dockerfile exposes.
fn exposed_ports(root: &Path) -> BTreeSet<u64> {
    let dockerfile = std::fs::read_to_string(root.join("deploy/docker/Dockerfile")).unwrap();
    dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace())
        .map(|port| port.trim_end_matches("/tcp").parse().unwrap())
        .collect()
}

#[test]
fn compose_stack_is_consistent() {
    let root = repo_root();
    let dir = root.join("deploy/compose");
    let compose = yaml(&dir.join("docker-compose.yml"));
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    let mut expected: BTreeSet<&str> = NODES.into_iter().collect();
    expected.extend(["anvil", "deploy", "prometheus", "grafana"]);
    assert_eq!(names, expected);
    assert_eq!(exposed_ports(&root), BTreeSet::from([P2P, RPC, METRICS]));

    let image = compose["services"]["deploy"]["image"].as_str().unwrap();
    assert_eq!(
        compose["services"]["deploy"]["build"]["dockerfile"],
        "deploy/docker/Dockerfile"
    );
    assert!(
        dir.join(
            compose["services"]["deploy"]["build"]["context"]
                .as_str()
                .unwrap()
        )
        .join("deploy/docker/Dockerfile")
        .is_file()
    );
    let mut addresses = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let address = service["networks"]["tandem"]["ipv4_address"]
            .as_str()
            .unwrap();
        assert!(address.starts_with("172.30.0."), "{name}: {address}");
        assert!(
            addresses.insert(address.to_string()),
            "{name}: {address} twice"
        );
        for volume in strs(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            if source.starts_with("..") {
                assert!(dir.join(source).exists(), "{name}: mounts missing {source}");
            } else if !source.starts_with('$') {
                assert!(
                    compose["volumes"]
                        .as_mapping()
                        .unwrap()
                        .contains_key(source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
    }
    assert_eq!(
        compose["networks"]["tandem"]["ipam"]["config"][0]["subnet"],
        "172.30.0.0/24"
    );
    for node in NODES {
        let service = &compose["services"][node];
        assert_eq!(service["image"], image, "{node}: one image for every node");
        assert_eq!(
            strs(&service["command"]),
            ["run", "--config", &format!("/devnet/{node}/node.toml")],
            "{node}"
        );
        assert_eq!(
            service["environment"]["TANDEM_NODE_KEY_FILE"],
            format!("/devnet/{node}/p2p/node.key").as_str()
        );
        let volumes = strs(&service["volumes"]);
        assert!(
            volumes.contains(&format!("{node}-data:/data")),
            "{node}: {volumes:?}"
        );
        assert!(volumes.iter().any(|v| v.ends_with(":/devnet:ro")), "{node}");
        assert!(
            volumes.contains(&"deployment:/shared:ro".to_string()),
            "{node}"
        );
        let check = strs(&service["healthcheck"]["test"]).join(" ");
        assert!(
            check.contains(&format!("127.0.0.1:{METRICS}/health")),
            "{node}: {check}"
        );
    }

    // Prometheus scrapes exactly the nodes, on the metrics port, with the rules mounted.
    let prometheus = yaml(&root.join("deploy/prometheus/prometheus.compose.yml"));
    let mut targets = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_sequence().unwrap() {
        for group in job["static_configs"].as_sequence().unwrap() {
            targets.extend(strs(&group["targets"]));
        }
    }
    let expected: BTreeSet<String> = NODES.iter().map(|n| format!("{n}:{METRICS}")).collect();
    assert_eq!(targets, expected);
    assert_eq!(strs(&prometheus["rule_files"]), ["rules/tandem.rules.yml"]);
    let prom_volumes = strs(&compose["services"]["prometheus"]["volumes"]);
    assert!(prom_volumes.contains(&"../prometheus/rules:/etc/prometheus/rules:ro".to_string()));

    // Grafana's provisioning points at the mounted dashboards and the compose Prometheus.
    let provider = yaml(&root.join("deploy/grafana/provisioning/dashboards/tandem.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana_volumes = strs(&compose["services"]["grafana"]["volumes"]);
    assert!(
        grafana_volumes.contains(&format!("../grafana/dashboards:{path}:ro")),
        "{grafana_volumes:?}"
    );
    let datasource = yaml(&root.join("deploy/grafana/provisioning/datasources/compose.yml"));
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );

    // `docker compose config` where the compose plugin exists (not on every CI machine).
    let available = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if available {
        let generated = tempfile::tempdir().unwrap();
        std::fs::write(generated.path().join("compose.env"), "L1_BLOCK_TIME=2\n").unwrap();
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(dir.join("docker-compose.yml"))
            .args(["config", "--quiet"])
            .env("TANDEM_COMPOSE_DIR", generated.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("docker compose is not installed: `docker compose config` not run");
    }
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let root = repo_root();
    let dir = root.join("deploy/k8s");
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let resources = strs(&kustomization["resources"]);
    let mut docs = Vec::new();
    for resource in &resources {
        docs.extend(yaml_docs(&dir.join(resource)));
    }
    let generated: BTreeSet<String> = kustomization["configMapGenerator"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    let config_files: Vec<String> = strs(&kustomization["configMapGenerator"][0]["files"]);
    for file in &config_files {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let exposed = exposed_ports(&root);
    let services: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Service").collect();
    let sets: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "StatefulSet").collect();
    assert_eq!(sets.len(), 2, "one StatefulSet per role");
    let mut images = BTreeSet::new();
    for set in &sets {
        let name = set["metadata"]["name"].as_str().unwrap();
        let pod = &set["spec"]["template"];
        let labels = &pod["metadata"]["labels"];
        assert_eq!(set["spec"]["selector"]["matchLabels"], *labels, "{name}");
        // Readiness needs p2p.min_peers peers, i.e. the other pods: OrderedReady would stop at
        // pod 0 for ever.
        assert_eq!(set["spec"]["podManagementPolicy"], "Parallel", "{name}");
        let container = &pod["spec"]["containers"][0];
        images.insert(container["image"].as_str().unwrap().to_string());
        // Ports: the Dockerfile's, named for the probes and Services.
        let ports: BTreeSet<(String, u64)> = container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            BTreeSet::from([
                ("p2p".into(), P2P),
                ("rpc".into(), RPC),
                ("metrics".into(), METRICS)
            ]),
            "{name}"
        );
        assert_eq!(ports.iter().map(|p| p.1).collect::<BTreeSet<_>>(), exposed);
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/ready",
            "{name}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/health",
            "{name}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["port"], "metrics",
            "{name}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["port"], "metrics",
            "{name}"
        );
        // Config from the generated ConfigMap, a file it holds; keys from a Secret; data on a PVC.
        let args = strs(&container["args"]);
        let config = args.last().unwrap();
        let file = config.strip_prefix("/etc/tandem/").unwrap();
        assert!(
            config_files.iter().any(|f| f.ends_with(file)),
            "{name}: {config}"
        );
        let volumes = pod["spec"]["volumes"].as_sequence().unwrap();
        let config_map = volumes.iter().find(|v| v["name"] == "config").unwrap();
        assert!(generated.contains(config_map["configMap"]["name"].as_str().unwrap()));
        let keys = volumes.iter().find(|v| v["name"] == "keys").unwrap();
        assert!(keys["secret"]["secretName"].as_str().is_some(), "{name}");
        let claim = &set["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "data", "{name}");
        let mounts = container["volumeMounts"].as_sequence().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "data" && m["mountPath"] == "/data")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == "keys" && m["mountPath"] == "/keys")
        );
        assert_eq!(
            pod["spec"]["securityContext"]["runAsNonRoot"], true,
            "{name}"
        );
        // The governing Service is headless and exists; a p2p and an RPC/metrics Service
        // select these pods.
        let governing = set["spec"]["serviceName"].as_str().unwrap();
        let selecting: Vec<&&Value> = services
            .iter()
            .filter(|s| s["spec"]["selector"] == *labels)
            .collect();
        let p2p = selecting
            .iter()
            .find(|s| s["metadata"]["name"] == governing)
            .unwrap_or_else(|| panic!("{name}: no Service {governing}"));
        assert_eq!(p2p["spec"]["clusterIP"], "None");
        assert_eq!(p2p["spec"]["ports"][0]["targetPort"], "p2p");
        let rpc = selecting
            .iter()
            .find(|s| s["metadata"]["name"] != governing)
            .unwrap_or_else(|| panic!("{name}: no RPC/metrics Service"));
        let targets: BTreeSet<&str> = rpc["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["targetPort"].as_str().unwrap())
            .collect();
        assert_eq!(targets, BTreeSet::from(["rpc", "metrics"]), "{name}");
    }
    assert_eq!(images.len(), 1, "one image: {images:?}");
    // …which the kustomization maps to the built and pushed one.
    let mapped: BTreeSet<String> = kustomization["images"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mapped, images, "kustomization `images:`");
    // The ConfigMap's TOML listens where the pods' ports are.
    for file in &config_files {
        let config: toml::Table = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .parse()
            .unwrap();
        for (section, port) in [("p2p", P2P), ("rpc", RPC), ("metrics", METRICS)] {
            let addr = config[section]["listen_addr"].as_str().unwrap();
            assert_eq!(addr, format!("0.0.0.0:{port}"), "{file}: {section}");
        }
    }
}
