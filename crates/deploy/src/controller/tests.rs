//! The controller's decisions on recorded `CLUSTER NODES` / `CLUSTER MYID` output.

use super::decide::{Action, Observed, Want, decide, shard_of};
use cluster::topology::parse_cluster_nodes;

const HEALTHY: &str = include_str!("fixtures/healthy.txt");
const READDRESSED: &str = include_str!("fixtures/readdressed.txt");
const WANT: Want = Want { masters: 3, replicas: 1 };

/// The nodes of a fixture: `# ADDR STATE MYID` then that node's CLUSTER NODES.
fn fixture(text: &str) -> Vec<Observed> {
    let mut nodes: Vec<(String, String, String, String)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["#", addr, state, id] if addr.contains(':') => {
                nodes.push((addr.to_string(), state.to_string(), id.to_string(), String::new()))
            }
            ["#", ..] => {}
            _ => {
                let last = nodes.last_mut().expect("a header before the lines");
                last.3.push_str(line);
                last.3.push('\n');
            }
        }
    }
    nodes
        .into_iter()
        .map(|(addr, state, id, text)| Observed {
            addr,
            id,
            view: parse_cluster_nodes(&text).unwrap(),
            state,
        })
        .collect()
}

/// A node that never joined a cluster, as `CLUSTER NODES` prints it.
fn empty_node(addr: &str, id: &str, hostname: Option<&str>) -> Observed {
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let bus = u32::from(port) + 10000;
    let hostname = hostname.map(|h| format!(",{h}")).unwrap_or_default();
    let text = format!("{id} :{port}@{bus}{hostname} myself,master - 0 0 0 connected\n");
    Observed {
        addr: addr.into(),
        id: id.into(),
        view: parse_cluster_nodes(&text).unwrap(),
        state: "fail".into(),
    }
}

fn meets(actions: &[Action]) -> Vec<(&str, &str, &str)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Meet { on, peer_id, peer_addr, .. } => {
                Some((on.as_str(), &peer_id[..8], peer_addr.as_str()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_healthy_cluster_needs_nothing() {
    let decision = decide(&fixture(HEALTHY), WANT);
    assert_eq!(decision.actions, vec![]);
    assert_eq!(decision.waiting, Vec::<String>::new());
}

#[test]
fn every_stale_address_is_met_at_the_address_its_node_answers_now() {
    let observed = fixture(READDRESSED);
    assert_eq!(observed.len(), 6);
    assert!(observed.iter().all(|o| o.state == "fail"));
    let decision = decide(&observed, WANT);
    let meets = meets(&decision.actions);
    // Each of the six knows the five others at their old ports.
    assert_eq!(meets.len(), 6 * 5, "{meets:?}");
    assert_eq!(meets.len(), decision.actions.len(), "only MEETs while addresses are stale");
    assert!(meets.contains(&("127.0.0.1:40197", "a5379fa1", "127.0.0.1:40198")), "{meets:?}");
    for (_, id, addr) in &meets {
        let peer = observed.iter().find(|o| o.id.starts_with(id)).unwrap();
        assert_eq!(*addr, peer.addr, "MEET names where the node answers now");
    }
    let was = decision.actions.iter().find_map(|a| match a {
        Action::Meet { on, peer_addr, was, .. }
            if on == "127.0.0.1:40197" && peer_addr == "127.0.0.1:40198" =>
        {
            Some(was.clone())
        }
        _ => None,
    });
    assert_eq!(was.as_deref(), Some("127.0.0.1:43901"));
}

#[test]
fn a_node_not_found_yet_is_waited_for_and_the_others_are_met() {
    let mut observed = fixture(READDRESSED);
    let gone = observed.remove(5);
    let decision = decide(&observed, WANT);
    let meets = meets(&decision.actions);
    assert_eq!(meets.len(), 5 * 4);
    assert!(meets.iter().all(|(_, _, addr)| *addr != gone.addr));
    assert_eq!(decision.waiting.len(), 1, "{:?}", decision.waiting);
    assert!(decision.waiting[0].contains(&gone.id[..8]), "{:?}", decision.waiting);
}

#[test]
fn once_addresses_agree_only_a_node_s_own_old_address_is_fixed() {
    // Every view names the others at their new address; one node still holds its old one.
    let mut observed = fixture(HEALTHY);
    let stale = observed[2].clone();
    observed[2].addr = "127.0.0.1:49999".into();
    for other in observed.iter_mut().filter(|o| o.id != stale.id) {
        let node = other.view.nodes.iter_mut().find(|n| n.id == stale.id).unwrap();
        node.port = 49999;
    }
    let decision = decide(&observed, WANT);
    assert_eq!(
        meets(&decision.actions),
        vec![("127.0.0.1:43900", &stale.id[..8], "127.0.0.1:49999")]
    );
}

#[test]
fn empty_nodes_are_formed_once_all_answer() {
    let nodes: Vec<Observed> = (0..6)
        .map(|i| empty_node(&format!("10.0.0.{}:6379", i + 1), &format!("{i:040}"), None))
        .collect();
    let early = decide(&nodes[..5], WANT);
    assert_eq!(early.actions, vec![]);
    assert!(early.waiting[0].contains("5 of 6"), "{:?}", early.waiting);
    let decision = decide(&nodes, WANT);
    let [Action::Form(formation)] = decision.actions.as_slice() else { panic!("{decision:?}") };
    assert_eq!(formation.masters.len(), 3);
    assert_eq!(formation.replicas.len(), 3);
    let slots: u32 = formation
        .masters
        .iter()
        .flat_map(|(_, ranges)| ranges)
        .map(|(start, end)| u32::from(end - start) + 1)
        .sum();
    assert_eq!(slots, 16384);
}

#[test]
fn statefulset_pods_are_formed_shard_by_shard() {
    let domain = "redkeep-nodes.redkeep.svc.cluster.local";
    // Pod IPs in an order unrelated to the shards, as a scheduler hands them out.
    let pods = [
        ("10.1.0.9", "redkeep-s1-1"),
        ("10.1.0.3", "redkeep-s0-0"),
        ("10.1.0.7", "redkeep-s2-0"),
        ("10.1.0.2", "redkeep-s1-0"),
        ("10.1.0.5", "redkeep-s2-1"),
        ("10.1.0.4", "redkeep-s0-1"),
    ];
    let nodes: Vec<Observed> = pods
        .iter()
        .enumerate()
        .map(|(i, (ip, pod))| {
            empty_node(&format!("{ip}:6379"), &format!("{i:040}"), Some(&format!("{pod}.{domain}")))
        })
        .collect();
    assert_eq!(shard_of(&nodes[0]), Some(("redkeep-s1".into(), 1)));
    let decision = decide(&nodes, WANT);
    let [Action::Form(formation)] = decision.actions.as_slice() else { panic!("{decision:?}") };
    let masters: Vec<&str> = formation.masters.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(masters, ["10.1.0.3:6379", "10.1.0.2:6379", "10.1.0.7:6379"], "each shard's pod 0");
    let mut replicas = formation.replicas.clone();
    replicas.sort();
    assert_eq!(
        replicas,
        [
            ("10.1.0.4:6379".to_string(), "10.1.0.3:6379".to_string()),
            ("10.1.0.5:6379".to_string(), "10.1.0.7:6379".to_string()),
            ("10.1.0.9:6379".to_string(), "10.1.0.2:6379".to_string()),
        ],
        "replicas stay in their shard, which Kubernetes keeps on other nodes"
    );
}

#[test]
fn an_empty_node_replaces_a_lost_replica_once_the_cluster_is_ok() {
    let mut observed = fixture(HEALTHY);
    // The replica of 5ee1d645 lost its volume: every view lists it without address (Redis
    // drops the address when another ID answers there), and it is gone from the observed.
    let lost = observed.iter().position(|o| o.id.starts_with("012db3f1")).unwrap();
    observed.remove(lost);
    for node in observed.iter_mut().flat_map(|o| o.view.nodes.iter_mut()) {
        if node.id.starts_with("012db3f1") {
            node.flags.noaddr = true;
        }
    }
    observed.push(empty_node("127.0.0.1:43903", &"f".repeat(40), None));
    let decision = decide(&observed, WANT);
    let joins: Vec<(&str, &str)> = decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Join { node, master_id, .. } => Some((node.as_str(), &master_id[..8])),
            _ => None,
        })
        .collect();
    assert_eq!(joins, [("127.0.0.1:43903", "5ee1d645")]);

    // Not while the cluster is down, and not while addresses are stale.
    let mut down = observed.clone();
    down.iter_mut().for_each(|o| o.state = "fail".into());
    assert_eq!(decide(&down, WANT).actions, vec![]);
    let mut readdressed = fixture(READDRESSED);
    readdressed.push(empty_node("127.0.0.1:43999", &"e".repeat(40), None));
    let decision = decide(&readdressed, WANT);
    assert!(decision.actions.iter().all(|a| matches!(a, Action::Meet { .. })));
}

#[test]
fn an_empty_node_no_master_needs_is_left_alone() {
    let mut observed = fixture(HEALTHY);
    observed.push(empty_node("127.0.0.1:43999", &"e".repeat(40), None));
    let decision = decide(&observed, WANT);
    assert_eq!(decision.actions, vec![]);
    assert!(decision.waiting[0].contains("left alone"), "{:?}", decision.waiting);
}
