//! The Docker Swarm stack, as data: an overlay network, one service per Redis node pinned by
//! a placement constraint to the host that keeps its volume (a shard's nodes on different
//! hosts), the proxies publishing the cluster's one port, and the controller. Node services
//! use DNS round robin (`endpoint_mode: dnsrr`): their name resolves to the task's own IP,
//! which the cluster bus needs, and which changes whenever the task is replaced.
//!
//! Hosts are labelled by the operator: `docker node update --label-add redkeep.host=h1 NODE`.

use serde_json::{Map, Value, json};

use super::{EngineSpec, NodeSlot, PROXY_PORT, REDIS_PORT, STATS_PORT, SpecError, yaml};

const NETWORK: &str = "redkeep";

/// The stack file (`docker stack deploy -c stack.yml NAME`).
pub fn render(spec: &EngineSpec) -> Result<String, SpecError> {
    Ok(yaml::document(&stack(spec)?))
}

/// The stack as a value, for tests and [`render`].
pub fn stack(spec: &EngineSpec) -> Result<Value, SpecError> {
    spec.validate_for_swarm()?;
    let mut services = Map::new();
    let mut volumes = Map::new();
    for node in spec.nodes() {
        let name = spec.node_name(&node);
        services.insert(name.clone(), node_service(spec, &node));
        volumes.insert(name, json!({}));
    }
    services.insert(format!("{}-proxy", spec.name), proxy_service(spec));
    services.insert(format!("{}-controller", spec.name), controller_service(spec));
    Ok(json!({
        "version": "3.8",
        "networks": {NETWORK: {"driver": "overlay", "attachable": true}},
        "volumes": volumes,
        "services": services,
    }))
}

/// The host label a node's task is pinned to: `h1`..`hN`. A shard's nodes take consecutive
/// hosts, so with at least as many hosts as nodes per shard no two share one.
pub fn host_of(spec: &EngineSpec, node: &NodeSlot) -> String {
    format!("h{}", (node.shard + node.ordinal) % spec.hosts + 1)
}

/// The nodes' `host:port` list, as the proxies and the controller are given it.
pub fn node_addrs(spec: &EngineSpec) -> Vec<String> {
    spec.nodes().iter().map(|n| format!("{}:{REDIS_PORT}", spec.node_name(n))).collect()
}

/// `redis.conf`'s settings as `redis-server` flags (a stack file carries no config file).
fn redis_flags(spec: &EngineSpec) -> Vec<String> {
    let conf = spec.redis_conf();
    let settings = conf.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    settings
        .flat_map(|line| {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            [format!("--{key}"), value.to_string()]
        })
        .collect()
}

/// A health check that only asks "does it answer": Swarm replaces an unhealthy task, and a
/// node or proxy waiting for its cluster to recover must not be replaced for it.
fn answers_check(port: u16) -> Value {
    json!({
        "test": ["CMD", "redkeep", "deploy", "probe", "--live", "--node", format!("127.0.0.1:{port}")],
        "interval": "5s",
        "timeout": "3s",
        "retries": 5,
        "start_period": "60s",
    })
}

fn node_service(spec: &EngineSpec, node: &NodeSlot) -> Value {
    let name = spec.node_name(node);
    let mut command = vec!["redis-server".to_string()];
    command.extend(redis_flags(spec));
    command.extend(["--cluster-announce-hostname".to_string(), name.clone()]);
    json!({
        "image": spec.image,
        "hostname": name,
        "command": command,
        "networks": [NETWORK],
        "volumes": [format!("{name}:/data")],
        "healthcheck": answers_check(REDIS_PORT),
        "stop_grace_period": "30s",
        "deploy": {
            "replicas": 1,
            "endpoint_mode": "dnsrr",
            "placement": {"constraints": [format!("node.labels.redkeep.host == {}", host_of(spec, node))]},
            "restart_policy": {"condition": "any", "delay": "2s"},
        },
    })
}

fn proxy_service(spec: &EngineSpec) -> Value {
    let mut command: Vec<String> = vec!["redkeep".into(), "proxy".into()];
    for addr in node_addrs(spec) {
        command.extend(["--seed".into(), addr]);
    }
    command.extend(["--listen".into(), format!("0.0.0.0:{PROXY_PORT}")]);
    command.extend(["--stats".into(), format!("0.0.0.0:{STATS_PORT}")]);
    json!({
        "image": spec.image,
        "command": command,
        "networks": [NETWORK],
        // The routing mesh publishes the port on every host: the VIP's role on Swarm.
        "ports": [
            {"target": PROXY_PORT, "published": REDIS_PORT, "protocol": "tcp", "mode": "ingress"},
            {"target": STATS_PORT, "published": STATS_PORT, "protocol": "tcp", "mode": "ingress"},
        ],
        "healthcheck": answers_check(PROXY_PORT),
        "deploy": {
            "replicas": spec.proxies,
            "placement": {"max_replicas_per_node": 1},
            "update_config": {"parallelism": 1, "delay": "5s", "order": "start-first"},
            "restart_policy": {"condition": "any", "delay": "2s"},
        },
    })
}

fn controller_service(spec: &EngineSpec) -> Value {
    let mut command: Vec<String> = vec!["redkeep".into(), "controller".into()];
    command.extend(["--nodes".into(), node_addrs(spec).join(",")]);
    command.extend(["--masters".into(), spec.masters.to_string()]);
    command.extend(["--replicas".into(), spec.replicas.to_string()]);
    json!({
        "image": spec.image,
        "command": command,
        "networks": [NETWORK],
        "deploy": {"replicas": 1, "restart_policy": {"condition": "any", "delay": "2s"}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_is_a_service_pinned_to_a_host_with_its_volume() {
        let spec = EngineSpec::default();
        let stack = stack(&spec).unwrap();
        assert_eq!(stack["networks"]["redkeep"]["driver"], "overlay");
        let services = stack["services"].as_object().unwrap();
        assert_eq!(services.len(), 6 + 2, "six nodes, the proxies, the controller");
        for node in spec.nodes() {
            let name = spec.node_name(&node);
            let service = &services[&name];
            assert_eq!(service["deploy"]["endpoint_mode"], "dnsrr");
            assert_eq!(service["volumes"][0], format!("{name}:/data"));
            assert!(stack["volumes"].get(&name).is_some());
            let constraint = &service["deploy"]["placement"]["constraints"][0];
            assert_eq!(
                *constraint,
                format!("node.labels.redkeep.host == {}", host_of(&spec, &node))
            );
            let command: Vec<&str> =
                service["command"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            assert_eq!(&command[command.len() - 2..], ["--cluster-announce-hostname", &name]);
            assert!(command.windows(2).any(|w| w == ["--cluster-enabled", "yes"]));
            assert!(
                command.windows(2).any(|w| w == ["--cluster-preferred-endpoint-type", "hostname"])
            );
        }
    }

    #[test]
    fn no_two_nodes_of_a_shard_share_a_host() {
        for (replicas, hosts) in [(1, 3), (2, 3), (2, 5), (3, 4)] {
            let spec = EngineSpec { masters: 5, replicas, hosts, ..EngineSpec::default() };
            for shard in 0..spec.masters {
                let mut used: Vec<String> = (0..spec.nodes_per_shard())
                    .map(|ordinal| host_of(&spec, &NodeSlot { shard, ordinal }))
                    .collect();
                used.sort();
                used.dedup();
                assert_eq!(
                    used.len(),
                    spec.nodes_per_shard(),
                    "{replicas} replicas on {hosts} hosts"
                );
            }
        }
        let crowded = EngineSpec { replicas: 2, hosts: 2, ..EngineSpec::default() };
        assert!(matches!(stack(&crowded), Err(SpecError::TooFewHosts { .. })));
    }

    #[test]
    fn proxies_publish_the_port_and_the_controller_lists_every_node() {
        let spec = EngineSpec { proxies: 3, ..EngineSpec::default() };
        let stack = stack(&spec).unwrap();
        let proxy = &stack["services"]["redkeep-proxy"];
        assert_eq!(proxy["deploy"]["replicas"], 3);
        assert_eq!(proxy["deploy"]["placement"]["max_replicas_per_node"], 1);
        assert_eq!(proxy["ports"][0]["published"], 6379);
        assert_eq!(proxy["ports"][0]["target"], 7010);
        let seeds = proxy["command"].as_array().unwrap().iter().filter(|a| *a == "--seed").count();
        assert_eq!(seeds, 6);
        let controller = &stack["services"]["redkeep-controller"];
        assert_eq!(controller["deploy"]["replicas"], 1);
        let nodes = controller["command"][3].as_str().unwrap();
        assert_eq!(nodes.split(',').count(), 6);
        assert!(nodes.starts_with("redkeep-s0-0:6379,redkeep-s0-1:6379,"), "{nodes}");
        let text = render(&spec).unwrap();
        assert!(text.starts_with("networks:\n"), "{text}");
    }
}
