//! Kubernetes manifests, as data: one StatefulSet per shard (a master and its replicas, each
//! pod with its own PersistentVolumeClaim holding `nodes.conf` and the append-only file), a
//! headless Service that gives every pod a stable DNS name and lists them all (ready or not:
//! the controller must find nodes whose cluster is broken), pod anti-affinity so that no two
//! pods of a shard share a Kubernetes node, a PodDisruptionBudget per shard, the proxies (a
//! Deployment behind a Service that takes the floating IP's role), and the controller.
//!
//! The controller talks to Redis only and finds the nodes through DNS, so it needs no
//! Kubernetes API access: no RBAC objects, and no service-account token in its pod.

use serde_json::{Value, json};

use super::{EngineSpec, NodeSlot, PROXY_PORT, REDIS_PORT, STATS_PORT, SpecError, yaml};

/// A file of the rendered directory and the objects it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFile {
    pub name: String,
    pub objects: Vec<Value>,
}

impl ManifestFile {
    pub fn yaml(&self) -> String {
        yaml::stream(&self.objects)
    }
}

/// Every manifest, in the order `kubectl apply -f DIR` reads them (by file name).
pub fn render(spec: &EngineSpec) -> Result<Vec<ManifestFile>, SpecError> {
    spec.validate()?;
    let file = |name: &str, objects: Vec<Value>| ManifestFile { name: name.into(), objects };
    let mut files = vec![
        file("00-namespace.yaml", vec![namespace(spec)]),
        file("10-redis-config.yaml", vec![redis_config(spec)]),
        file("20-nodes-service.yaml", vec![nodes_service(spec)]),
    ];
    for shard in 0..spec.masters {
        let objects = vec![shard_statefulset(spec, shard), shard_budget(spec, shard)];
        files.push(file(&format!("30-shard-{shard}.yaml"), objects));
    }
    files.push(file("40-proxy.yaml", proxy_objects(spec)));
    files.push(file("50-controller.yaml", vec![controller_deployment(spec)]));
    Ok(files)
}

/// The labels every object of the deployment carries, with its component.
fn labels(spec: &EngineSpec, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "redkeep",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "redkeep-render",
    })
}

/// What selects a component's pods (the stable subset of [`labels`]).
fn selector(spec: &EngineSpec, component: &str) -> Value {
    json!({"app.kubernetes.io/instance": spec.name, "app.kubernetes.io/component": component})
}

fn metadata(spec: &EngineSpec, name: &str, component: &str) -> Value {
    json!({"name": name, "namespace": spec.namespace, "labels": labels(spec, component)})
}

fn namespace(spec: &EngineSpec) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace}})
}

fn config_name(spec: &EngineSpec) -> String {
    format!("{}-redis-config", spec.name)
}

fn redis_config(spec: &EngineSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec, &config_name(spec), "node"),
        "data": {"redis.conf": spec.redis_conf()},
    })
}

/// The nodes' stable DNS names end with this (the cluster's default domain).
fn nodes_domain(spec: &EngineSpec) -> String {
    format!("{}.{}.svc.cluster.local", spec.nodes_service(), spec.namespace)
}

/// `host:port` the proxies and the controller use to find the nodes.
pub fn nodes_dns(spec: &EngineSpec) -> String {
    format!("{}:{REDIS_PORT}", nodes_domain(spec))
}

fn nodes_service(spec: &EngineSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec, &spec.nodes_service(), "node"),
        "spec": {
            "clusterIP": "None",
            // A node whose cluster is broken is not ready, and is exactly what the
            // controller must find: list every pod.
            "publishNotReadyAddresses": true,
            "selector": selector(spec, "node"),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT},
                {"name": "bus", "port": REDIS_PORT + 10000, "targetPort": REDIS_PORT + 10000},
            ],
        },
    })
}

fn shard_selector(spec: &EngineSpec, shard: usize) -> Value {
    let mut labels = selector(spec, "node");
    labels["redkeep.io/shard"] = json!(spec.shard_name(shard));
    labels
}

fn shard_statefulset(spec: &EngineSpec, shard: usize) -> Value {
    let name = spec.shard_name(shard);
    let mut pod_labels = labels(spec, "node");
    pod_labels["redkeep.io/shard"] = json!(name);
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(spec, &name, "node"),
        "spec": {
            "serviceName": spec.nodes_service(),
            "replicas": spec.nodes_per_shard(),
            // All pods at once: a node is ready only in a formed cluster, so ordered start
            // would wait forever for the first one.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": shard_selector(spec, shard)},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": node_pod_spec(spec, shard),
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": spec.storage}},
                },
            }],
        },
    })
}

fn node_pod_spec(spec: &EngineSpec, shard: usize) -> Value {
    let hostname = format!("$(POD_NAME).{}", nodes_domain(spec));
    json!({
        "terminationGracePeriodSeconds": 30,
        "automountServiceAccountToken": false,
        // The image's redis user (deploy/Containerfile); fsGroup makes the volume its own.
        "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
        "affinity": {"podAntiAffinity": {
            // A master and its replicas never share a Kubernetes node: losing one node
            // never takes a whole shard.
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": shard_selector(spec, shard)},
                "topologyKey": "kubernetes.io/hostname",
            }],
            // And shards spread over the nodes as far as they allow.
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 50,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": selector(spec, "node")},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }],
        }},
        "containers": [{
            "name": "redis",
            "image": spec.image,
            "command": [
                "redis-server", "/etc/redkeep/redis.conf",
                "--cluster-announce-hostname", hostname,
            ],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "ports": [
                {"name": "redis", "containerPort": REDIS_PORT},
                {"name": "bus", "containerPort": REDIS_PORT + 10000},
            ],
            "readinessProbe": {
                "exec": {"command": [
                    "redkeep", "deploy", "probe", "--node", format!("127.0.0.1:{REDIS_PORT}"),
                ]},
                "periodSeconds": 5,
                "timeoutSeconds": 3,
            },
            // Alive while it listens: a node loading a large AOF is alive but not ready.
            "livenessProbe": {
                "tcpSocket": {"port": REDIS_PORT},
                "initialDelaySeconds": 15,
                "periodSeconds": 10,
            },
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "config", "mountPath": "/etc/redkeep"},
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }],
        "volumes": [{"name": "config", "configMap": {"name": config_name(spec)}}],
    })
}

/// At most one pod of a shard away at a time by choice (drains, upgrades).
fn shard_budget(spec: &EngineSpec, shard: usize) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(spec, &spec.shard_name(shard), "node"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": shard_selector(spec, shard)}},
    })
}

fn proxy_name(spec: &EngineSpec) -> String {
    format!("{}-proxy", spec.name)
}

fn proxy_objects(spec: &EngineSpec) -> Vec<Value> {
    let name = proxy_name(spec);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, &name, "proxy"),
        "spec": {
            "replicas": spec.proxies,
            "selector": {"matchLabels": selector(spec, "proxy")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels(spec, "proxy")},
                "spec": proxy_pod_spec(spec),
            },
        },
    });
    // The Service is the one address of the cluster: the VIP's role on Kubernetes.
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(spec, &spec.name, "proxy"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec, "proxy"),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": PROXY_PORT},
                {"name": "stats", "port": STATS_PORT, "targetPort": STATS_PORT},
            ],
        },
    });
    let budget = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(spec, &name, "proxy"),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(spec, "proxy")}},
    });
    vec![deployment, service, budget]
}

fn proxy_pod_spec(spec: &EngineSpec) -> Value {
    json!({
        "automountServiceAccountToken": false,
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": selector(spec, "proxy")},
                "topologyKey": "kubernetes.io/hostname",
            },
        }]}},
        "containers": [{
            "name": "proxy",
            "image": spec.image,
            // The seed is a DNS name, resolved again whenever the proxy has lost every
            // node it knew: after a full restart the pods' new IPs are found through it.
            "command": [
                "redkeep", "proxy", "--seed", nodes_dns(spec),
                "--listen", format!("0.0.0.0:{PROXY_PORT}"),
                "--stats", format!("0.0.0.0:{STATS_PORT}"),
            ],
            "ports": [
                {"name": "redis", "containerPort": PROXY_PORT},
                {"name": "stats", "containerPort": STATS_PORT},
            ],
            "readinessProbe": {
                "exec": {"command": [
                    "redkeep", "health", "--proxy", format!("127.0.0.1:{PROXY_PORT}"),
                ]},
                "periodSeconds": 2,
                "failureThreshold": 2,
            },
            "livenessProbe": {
                "tcpSocket": {"port": PROXY_PORT},
                "initialDelaySeconds": 10,
                "periodSeconds": 10,
            },
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        }],
    })
}

fn controller_deployment(spec: &EngineSpec) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, &format!("{}-controller", spec.name), "controller"),
        "spec": {
            // One controller: two would MEET and REPLICATE over each other.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(spec, "controller")},
            "template": {
                "metadata": {"labels": labels(spec, "controller")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "controller",
                        "image": spec.image,
                        "command": controller_command(spec, &nodes_dns(spec)),
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                    }],
                },
            },
        },
    })
}

/// `redkeep controller --seed-dns NAME ...` as the engines run it.
pub fn controller_command(spec: &EngineSpec, seed_dns: &str) -> Vec<String> {
    let mut command: Vec<String> =
        ["redkeep", "controller", "--seed-dns", seed_dns].map(String::from).to_vec();
    command.extend(["--masters".into(), spec.masters.to_string()]);
    command.extend(["--replicas".into(), spec.replicas.to_string()]);
    command
}

/// The pod names of a shard, as its StatefulSet creates them.
pub fn pod_names(spec: &EngineSpec, shard: usize) -> Vec<String> {
    (0..spec.nodes_per_shard())
        .map(|ordinal| spec.node_name(&NodeSlot { shard, ordinal }))
        .collect()
}

/// Writes the files into `dir` (created when missing); returns their paths.
pub fn write_dir(
    files: &[ManifestFile],
    dir: &std::path::Path,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for file in files {
        let path = dir.join(&file.name);
        std::fs::write(&path, file.yaml())?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_objects(files: &[ManifestFile]) -> Vec<&Value> {
        files.iter().flat_map(|f| &f.objects).collect()
    }

    fn of_kind<'a>(files: &'a [ManifestFile], kind: &str) -> Vec<&'a Value> {
        all_objects(files).into_iter().filter(|o| o["kind"] == kind).collect()
    }

    #[test]
    fn one_statefulset_with_volumes_and_a_budget_per_shard() {
        let spec = EngineSpec { masters: 4, replicas: 2, ..EngineSpec::default() };
        let files = render(&spec).unwrap();
        let sets = of_kind(&files, "StatefulSet");
        assert_eq!(sets.len(), 4);
        for (shard, set) in sets.iter().enumerate() {
            assert_eq!(set["metadata"]["name"], format!("redkeep-s{shard}"));
            assert_eq!(set["spec"]["replicas"], 3, "a master and 2 replicas");
            assert_eq!(set["spec"]["serviceName"], "redkeep-nodes");
            assert_eq!(set["spec"]["podManagementPolicy"], "Parallel");
            let claim = &set["spec"]["volumeClaimTemplates"][0];
            assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
            let mounts = &set["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
            assert!(
                mounts
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == "data" && m["mountPath"] == "/data")
            );
            // The selector picks exactly the template's pods.
            let wanted = set["spec"]["selector"]["matchLabels"].as_object().unwrap();
            let has = set["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
            for (k, v) in wanted {
                assert_eq!(has.get(k), Some(v), "{k}");
            }
        }
        let budgets = of_kind(&files, "PodDisruptionBudget");
        assert_eq!(budgets.len(), 4 + 1, "one per shard and one for the proxies");
        assert!(budgets.iter().take(4).all(|b| b["spec"]["maxUnavailable"] == 1));
        assert_eq!(pod_names(&spec, 1), ["redkeep-s1-0", "redkeep-s1-1", "redkeep-s1-2"]);
    }

    #[test]
    fn no_two_pods_of_a_shard_may_share_a_kubernetes_node() {
        let spec = EngineSpec::default();
        let files = render(&spec).unwrap();
        for (shard, set) in of_kind(&files, "StatefulSet").into_iter().enumerate() {
            let anti = &set["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
            let required = anti["requiredDuringSchedulingIgnoredDuringExecution"].as_array();
            let rule = &required.expect("a required anti-affinity rule")[0];
            assert_eq!(rule["topologyKey"], "kubernetes.io/hostname");
            let labels = rule["labelSelector"]["matchLabels"].as_object().unwrap();
            assert_eq!(labels["redkeep.io/shard"], format!("redkeep-s{shard}"));
            // The rule names this shard's pods only, or it would forbid more than it should.
            let pods = set["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
            assert!(labels.iter().all(|(k, v)| pods.get(k) == Some(v)));
        }
    }

    #[test]
    fn nodes_announce_stable_hostnames_and_the_service_lists_unready_pods() {
        let spec = EngineSpec { namespace: "cache".into(), ..EngineSpec::default() };
        let files = render(&spec).unwrap();
        let set = of_kind(&files, "StatefulSet")[0];
        let container = &set["spec"]["template"]["spec"]["containers"][0];
        let command: Vec<&str> =
            container["command"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let at = command.iter().position(|a| *a == "--cluster-announce-hostname").unwrap();
        assert_eq!(command[at + 1], "$(POD_NAME).redkeep-nodes.cache.svc.cluster.local");
        assert_eq!(container["env"][0]["name"], "POD_NAME");
        let probe = &container["readinessProbe"]["exec"]["command"];
        assert_eq!(probe[1], "deploy");
        let config = &of_kind(&files, "ConfigMap")[0]["data"]["redis.conf"];
        let conf = config.as_str().unwrap();
        assert!(conf.contains("cluster-preferred-endpoint-type hostname\n"), "{conf}");
        assert!(conf.contains("cluster-config-file /data/nodes.conf\n"), "{conf}");
        let services = of_kind(&files, "Service");
        let headless = services.iter().find(|s| s["metadata"]["name"] == "redkeep-nodes").unwrap();
        assert_eq!(headless["spec"]["clusterIP"], "None");
        assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
        assert!(
            all_objects(&files)
                .iter()
                .all(|o| o["kind"] == "Namespace" || o["metadata"]["namespace"] == "cache")
        );
    }

    #[test]
    fn proxies_behind_a_service_and_one_controller_without_api_access() {
        let spec = EngineSpec { proxies: 3, ..EngineSpec::default() };
        let files = render(&spec).unwrap();
        let deployments = of_kind(&files, "Deployment");
        let proxy = deployments.iter().find(|d| d["metadata"]["name"] == "redkeep-proxy").unwrap();
        assert_eq!(proxy["spec"]["replicas"], 3);
        let args = &proxy["spec"]["template"]["spec"]["containers"][0]["command"];
        assert_eq!(args[3], "redkeep-nodes.redkeep.svc.cluster.local:6379");
        let service = of_kind(&files, "Service")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "redkeep")
            .unwrap();
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 7010);
        assert_eq!(service["spec"]["selector"], selector(&spec, "proxy"));
        let controller =
            deployments.iter().find(|d| d["metadata"]["name"] == "redkeep-controller").unwrap();
        assert_eq!(controller["spec"]["replicas"], 1);
        assert_eq!(controller["spec"]["strategy"]["type"], "Recreate");
        let pod = &controller["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["containers"][0]["command"][1], "controller");
        for kind in ["Role", "ClusterRole", "RoleBinding", "ServiceAccount"] {
            assert!(of_kind(&files, kind).is_empty(), "{kind}: the controller needs no API");
        }
    }

    #[test]
    fn files_are_written_and_a_bad_spec_renders_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = render(&EngineSpec::default()).unwrap();
        let paths = write_dir(&files, dir.path()).unwrap();
        assert_eq!(paths.len(), 3 + 3 + 2);
        let text = std::fs::read_to_string(dir.path().join("30-shard-0.yaml")).unwrap();
        assert!(text.starts_with("---\napiVersion: \"apps/v1\"\n"), "{text}");
        assert_eq!(text.matches("\n---\n").count() + 1, 2, "StatefulSet and its budget");
        let bad = EngineSpec { masters: 1, ..EngineSpec::default() };
        assert_eq!(render(&bad), Err(SpecError::TooFewMasters(1)));
    }
}
