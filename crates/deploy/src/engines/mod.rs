//! Deployments on other engines: Kubernetes manifests ([`kubernetes`]) and a Docker Swarm
//! stack ([`swarm`]), rendered as pure functions of one [`EngineSpec`], and the readiness
//! probe of a Redis node there ([`probe`]). The nodes of both are grouped in shards: shard
//! `s0` is a master and its replicas, kept apart from each other by the engine (pod
//! anti-affinity, placement constraints), and [`crate::controller`] forms the cluster from
//! them shard by shard and keeps it whole when they come back with new addresses.

pub mod kubernetes;
pub mod probe;
pub mod swarm;
pub mod yaml;

/// The port of every Redis node in an engine (its bus is +10000).
pub const REDIS_PORT: u16 = 6379;
/// The port the proxies listen on inside their containers.
pub const PROXY_PORT: u16 = 7010;
/// The proxies' stats page (HTTP).
pub const STATS_PORT: u16 = 7020;

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    /// Prefix of every object's name (`redkeep-s0`, `redkeep-nodes`, ...).
    pub name: String,
    /// Kubernetes namespace (unused by Swarm).
    pub namespace: String,
    /// The redkeep image (see deploy/Containerfile): redis-server and the redkeep binary.
    pub image: String,
    pub masters: usize,
    pub replicas: usize,
    pub proxies: usize,
    /// Size of each node's volume (Kubernetes PVC request), e.g. `1Gi`.
    pub storage: String,
    pub node_timeout_ms: u64,
    /// Swarm hosts the nodes are pinned to (labelled `redkeep.host=h1..hN`).
    pub hosts: usize,
}

impl Default for EngineSpec {
    fn default() -> Self {
        EngineSpec {
            name: "redkeep".into(),
            namespace: "redkeep".into(),
            image: format!("redkeep:{}", env!("CARGO_PKG_VERSION")),
            masters: 3,
            replicas: 1,
            proxies: 2,
            storage: "1Gi".into(),
            node_timeout_ms: 5000,
            hosts: 3,
        }
    }
}

/// Why a spec cannot be rendered; each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "--{flag} `{value}` is not a DNS label: use 1-{max} lowercase letters, digits or `-`, \
         starting with a letter and not ending with `-`"
    )]
    BadName { flag: &'static str, value: String, max: usize },
    #[error("Redis Cluster needs at least 3 masters, got --masters {0}")]
    TooFewMasters(usize),
    #[error("--proxies {0}: at least 2, so that one proxy can be restarted while another serves")]
    TooFewProxies(usize),
    #[error("--image must name an image (e.g. redkeep:0.1.0), got `{0}`")]
    BadImage(String),
    #[error("--storage `{0}` is not a size like 512Mi, 1Gi or 10G")]
    BadStorage(String),
    #[error(
        "--hosts {hosts}: a shard's {per_shard} nodes must each have a host of their own; use \
         --hosts {per_shard} or more, or fewer --replicas"
    )]
    TooFewHosts { hosts: usize, per_shard: usize },
    #[error("--node-timeout must be at least 1 s (Redis counts it in milliseconds), got {0} ms")]
    BadNodeTimeout(u64),
}

/// One Redis node of the deployment: its shard and its place in it (0 is the first master).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSlot {
    pub shard: usize,
    pub ordinal: usize,
}

impl EngineSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        // Object names get suffixes such as `-nodes` and `-s12-3`: keep room for them.
        dns_label("name", &self.name, 40)?;
        dns_label("namespace", &self.namespace, 63)?;
        if self.masters < 3 {
            return Err(SpecError::TooFewMasters(self.masters));
        }
        if self.proxies < 2 {
            return Err(SpecError::TooFewProxies(self.proxies));
        }
        let image_ok = !self.image.is_empty()
            && !self.image.starts_with(['-', ':', '/'])
            && !self.image.contains(char::is_whitespace);
        if !image_ok {
            return Err(SpecError::BadImage(self.image.clone()));
        }
        if !is_quantity(&self.storage) {
            return Err(SpecError::BadStorage(self.storage.clone()));
        }
        if self.node_timeout_ms < 1000 {
            return Err(SpecError::BadNodeTimeout(self.node_timeout_ms));
        }
        Ok(())
    }

    /// [`EngineSpec::validate`], and enough Swarm hosts to keep a shard's nodes apart.
    pub fn validate_for_swarm(&self) -> Result<(), SpecError> {
        self.validate()?;
        let per_shard = self.nodes_per_shard();
        if self.hosts < per_shard {
            return Err(SpecError::TooFewHosts { hosts: self.hosts, per_shard });
        }
        Ok(())
    }

    pub fn nodes_per_shard(&self) -> usize {
        1 + self.replicas
    }

    /// The shard's name: `redkeep-s0`. Its nodes are `redkeep-s0-0`, `redkeep-s0-1`, ...
    /// (a StatefulSet's pod names), which [`crate::controller`] reads back to form shards.
    pub fn shard_name(&self, shard: usize) -> String {
        format!("{}-s{shard}", self.name)
    }

    pub fn node_name(&self, node: &NodeSlot) -> String {
        format!("{}-{}", self.shard_name(node.shard), node.ordinal)
    }

    /// Every node, shard by shard.
    pub fn nodes(&self) -> Vec<NodeSlot> {
        (0..self.masters)
            .flat_map(|shard| {
                (0..self.nodes_per_shard()).map(move |ordinal| NodeSlot { shard, ordinal })
            })
            .collect()
    }

    /// The headless Service (Kubernetes) whose DNS name lists every node.
    pub fn nodes_service(&self) -> String {
        format!("{}-nodes", self.name)
    }

    /// The `redis.conf` every node starts from; the engine adds the node's own
    /// `cluster-announce-hostname` on the command line.
    pub fn redis_conf(&self) -> String {
        format!(
            "# Rendered by `redkeep deploy render`: one Redis Cluster node of {name}.\n\
             port {REDIS_PORT}\nbind 0.0.0.0\n\
             # The engine's network is the boundary: no password is set (see the README).\n\
             protected-mode no\ndaemonize no\n\
             dir /data\ncluster-enabled yes\ncluster-config-file /data/nodes.conf\n\
             cluster-node-timeout {timeout}\nappendonly yes\n\
             # Redirects and CLUSTER SHARDS name nodes by their stable DNS name, not the IP\n\
             # of the moment.\ncluster-preferred-endpoint-type hostname\n",
            name = self.name,
            timeout = self.node_timeout_ms,
        )
    }
}

fn dns_label(flag: &'static str, value: &str, max: usize) -> Result<(), SpecError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    match ok {
        true => Ok(()),
        false => Err(SpecError::BadName { flag, value: value.to_string(), max }),
    }
}

/// `512Mi`, `1Gi`, `10G`, `1073741824`: digits and an optional binary or decimal suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"];
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
        && SUFFIXES.contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_is_valid_and_names_its_nodes_by_shard() {
        let spec = EngineSpec::default();
        assert_eq!(spec.validate(), Ok(()));
        let names: Vec<String> = spec.nodes().iter().map(|n| spec.node_name(n)).collect();
        assert_eq!(
            names,
            [
                "redkeep-s0-0",
                "redkeep-s0-1",
                "redkeep-s1-0",
                "redkeep-s1-1",
                "redkeep-s2-0",
                "redkeep-s2-1"
            ]
        );
    }

    #[test]
    fn bad_specs_say_what_to_change() {
        let with = |f: fn(&mut EngineSpec)| {
            let mut spec = EngineSpec::default();
            f(&mut spec);
            spec.validate().unwrap_err()
        };
        assert!(matches!(with(|s| s.name = "Red_keep".into()), SpecError::BadName { .. }));
        assert!(matches!(with(|s| s.namespace = "ns-".into()), SpecError::BadName { .. }));
        assert_eq!(with(|s| s.masters = 2), SpecError::TooFewMasters(2));
        assert_eq!(with(|s| s.proxies = 1), SpecError::TooFewProxies(1));
        assert!(matches!(with(|s| s.image = "a b".into()), SpecError::BadImage(_)));
        assert!(matches!(with(|s| s.storage = "1GB".into()), SpecError::BadStorage(_)));
        assert!(matches!(with(|s| s.storage = "0Gi".into()), SpecError::BadStorage(_)));
        let mut wide = EngineSpec { replicas: 3, ..EngineSpec::default() };
        assert_eq!(wide.validate(), Ok(()), "Kubernetes has no --hosts");
        assert_eq!(
            wide.validate_for_swarm(),
            Err(SpecError::TooFewHosts { hosts: 3, per_shard: 4 })
        );
        wide.hosts = 4;
        assert_eq!(wide.validate_for_swarm(), Ok(()));
        assert_eq!(with(|s| s.node_timeout_ms = 10), SpecError::BadNodeTimeout(10));
        assert!(with(|s| s.proxies = 0).to_string().contains("at least 2"));
    }
}
