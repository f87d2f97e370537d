//! The monitor's configuration: a TOML file whose every field has a default sensible for a
//! 3-master / 3-replica cluster, so an empty file (or none) is a working config.
//!
//! ```toml
//! interval = "1s"            # how often every node is polled
//! timeout = "500ms"          # per connect and per command
//! proxies = ["127.0.0.1:7010"]
//! webhooks = ["http://127.0.0.1:9099/hook"]   # Alertmanager-format receivers
//!
//! [vip]
//! address = "198.18.0.100"
//! [[vip.lbs]]
//! name = "lb1"
//! check = ["ip", "-n", "lab-lb1", "-o", "addr", "show", "dev", "eth0"]
//!
//! [rules.replication_lag_bytes]
//! for = "1m"
//! threshold = 50000000
//! [rules.master_replica_same_host]
//! enabled = false
//!
//! [heal]
//! max_actions = 3            # at most this many actions ...
//! window = "5m"              # ... per window
//! verify_timeout = "30s"
//! retries = 1
//! spares = ["10.0.0.9:6379"]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Everything `redkeep monitor` reads from `--config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// redkeep proxies to watch (`INFO proxy`).
    pub proxies: Vec<String>,
    pub vip: Option<VipConfig>,
    /// URLs that get every firing and resolved alarm, as Alertmanager webhooks do.
    pub webhooks: Vec<String>,
    /// Per-rule overrides, by rule name (see [`crate::rules::CATALOGUE`]).
    pub rules: BTreeMap<String, RuleOverride>,
    pub heal: HealConfig,
    /// How many transitions and healing events `/api/v1/events` keeps.
    pub events_kept: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipConfig {
    pub address: String,
    #[serde(default)]
    pub lbs: Vec<LbCheck>,
    /// The LB this monitor runs on: only the monitor whose LB holds the VIP heals, so that
    /// two monitors never act at once. Unset: this monitor heals regardless of the VIP.
    #[serde(default)]
    pub local_lb: Option<String>,
}

/// A command whose output lists the LB's addresses (`ip -o addr show`, over ssh if need be).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LbCheck {
    pub name: String,
    pub check: Vec<String>,
}

/// What a rule's defaults can be overridden with; fields left out keep the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub enabled: Option<bool>,
    #[serde(default, rename = "for", deserialize_with = "opt_duration")]
    pub for_: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub keep_firing_for: Option<Duration>,
    pub severity: Option<String>,
    pub threshold: Option<f64>,
}

/// A rule's settings after the overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSettings {
    pub enabled: bool,
    /// How long the condition must hold before the alarm fires.
    pub for_: Duration,
    /// How long a fired alarm stays firing after its condition went (for one-shot events).
    pub keep_firing_for: Duration,
    pub severity: String,
    pub threshold: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealConfig {
    /// At most `max_actions` healing actions per `window` (all shards together).
    pub max_actions: usize,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// How long an action has to show its effect in the polled model.
    #[serde(deserialize_with = "duration")]
    pub verify_timeout: Duration,
    /// Attempts after the first before the action is escalated (`healing_failed`).
    pub retries: u32,
    /// Nodes (running, empty cluster-mode redis-servers) that may be made replicas.
    pub spares: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            proxies: Vec::new(),
            vip: None,
            webhooks: Vec::new(),
            rules: BTreeMap::new(),
            heal: HealConfig::default(),
            events_kept: 1000,
        }
    }
}

impl Default for HealConfig {
    fn default() -> Self {
        HealConfig {
            max_actions: 3,
            window: Duration::from_secs(300),
            verify_timeout: Duration::from_secs(30),
            retries: 1,
            spares: Vec::new(),
        }
    }
}

impl Config {
    /// Parses a TOML config; unknown rule names are an error naming the known ones.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        for name in config.rules.keys() {
            if crate::rules::rule(name).is_none() {
                let known: Vec<&str> = crate::rules::CATALOGUE.iter().map(|r| r.name).collect();
                return Err(format!("unknown rule `{name}`; the rules are: {}", known.join(", ")));
            }
        }
        if config.interval.is_zero() {
            return Err("interval must be more than 0".into());
        }
        Ok(config)
    }

    /// The settings of rule `name`: its defaults with this config's overrides.
    pub fn rule(&self, name: &str) -> RuleSettings {
        let rule = crate::rules::rule(name).unwrap_or_else(|| panic!("rule {name} is defined"));
        let o = self.rules.get(name).cloned().unwrap_or_default();
        RuleSettings {
            enabled: o.enabled.unwrap_or(true),
            for_: o.for_.unwrap_or(rule.for_),
            keep_firing_for: o.keep_firing_for.unwrap_or(rule.keep_firing_for),
            severity: o.severity.unwrap_or_else(|| rule.severity.to_string()),
            threshold: o.threshold.unwrap_or(rule.threshold),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_the_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.rule("node_down").for_, Duration::from_secs(1));
        assert!(config.rule("node_down").enabled);
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let text = r#"
            interval = "2s"
            proxies = ["127.0.0.1:7010"]
            [rules.replication_lag_bytes]
            for = "1m"
            threshold = 5
            [rules.master_replica_same_host]
            enabled = false
            [heal]
            max_actions = 1
        "#;
        let config = Config::from_toml(text).unwrap();
        let lag = config.rule("replication_lag_bytes");
        assert_eq!((lag.for_, lag.threshold), (Duration::from_secs(60), 5.0));
        assert_eq!(lag.severity, "warning");
        assert!(!config.rule("master_replica_same_host").enabled);
        assert_eq!(config.heal.max_actions, 1);
        assert_eq!(config.heal.window, Duration::from_secs(300));
    }

    #[test]
    fn unknown_rules_and_fields_are_refused_with_their_name() {
        let err = Config::from_toml("[rules.nodes_down]\nfor = \"1s\"").unwrap_err();
        assert!(err.contains("unknown rule `nodes_down`") && err.contains("node_down"), "{err}");
        let err = Config::from_toml("intervall = \"1s\"").unwrap_err();
        assert!(err.contains("intervall"), "{err}");
        let err = Config::from_toml("interval = \"soon\"").unwrap_err();
        assert!(err.contains("interval") || err.contains("soon"), "{err}");
    }
}
