//! How fresh the proxy's slot map is. The refresher reads the topology every refresh interval;
//! when no node answers (all unreachable, or they demand AUTH the proxy does not have), the
//! proxy keeps serving from the old map, which goes stale: `INFO proxy` says for how long and
//! why, and `redkeep health` fails once it is older than [`stale_after`]. Pure: the clock is
//! passed in.

use std::time::{Duration, Instant};

/// The refresher's record.
#[derive(Debug, Clone)]
pub struct Freshness {
    /// When a node last answered `CLUSTER NODES` (the map learned at start counts).
    last_ok: Instant,
    /// Refreshes failed in a row since then.
    failures: u32,
    /// What the last failed refresh heard (kept after a success, for the operator).
    last_error: Option<String>,
}

/// What `INFO proxy` shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub age: Duration,
    pub failures: u32,
    pub last_error: Option<String>,
    pub stale_after: Duration,
    pub stale: bool,
}

/// How old the map may get before the proxy is unfit to serve: three refresh intervals, plus
/// the time one unanswered node costs a refresh (a node behind a partition answers nothing
/// until the admin timeout).
pub fn stale_after(refresh_interval: Duration, admin_timeout: Duration) -> Duration {
    refresh_interval * 3 + admin_timeout
}

impl Freshness {
    pub fn new(now: Instant) -> Freshness {
        Freshness { last_ok: now, failures: 0, last_error: None }
    }

    pub fn refreshed(&mut self, now: Instant) {
        self.last_ok = now;
        self.failures = 0;
    }

    /// A refresh found no node to answer; `error` is what the last one tried said. Returns
    /// true for the first failure in a row (worth a warning; the next ones are not).
    pub fn failed(&mut self, error: &str) -> bool {
        self.failures += 1;
        // One line: it goes into INFO.
        self.last_error = Some(error.replace(['\r', '\n'], " "));
        self.failures == 1
    }

    pub fn report(&self, now: Instant, stale_after: Duration) -> Report {
        let age = now.saturating_duration_since(self.last_ok);
        Report {
            age,
            failures: self.failures,
            last_error: self.last_error.clone(),
            stale_after,
            stale: self.failures > 0 && age > stale_after,
        }
    }
}

impl Report {
    /// The `topology_*` lines of `INFO proxy`.
    pub fn info_lines(&self) -> String {
        format!(
            "topology_age_ms:{}\r\ntopology_refresh_failures:{}\r\ntopology_stale_after_ms:{}\r\n\
             topology_stale:{}\r\ntopology_last_error:{}\r\n",
            self.age.as_millis(),
            self.failures,
            self.stale_after.as_millis(),
            u8::from(self.stale),
            self.last_error.as_deref().unwrap_or(""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_stale_only_after_failures_for_longer_than_the_bound() {
        let start = Instant::now();
        let bound = stale_after(Duration::from_secs(2), Duration::from_secs(2));
        assert_eq!(bound, Duration::from_secs(8));
        let mut freshness = Freshness::new(start);
        // Old but refreshed: an idle refresher is not a stale map.
        assert!(!freshness.report(start + Duration::from_secs(60), bound).stale);
        assert!(freshness.failed("127.0.0.1:7001: NOAUTH Authentication required.\r\n"));
        assert!(!freshness.failed("127.0.0.1:7001: NOAUTH Authentication required."));
        let soon = freshness.report(start + Duration::from_secs(5), bound);
        assert!(!soon.stale, "within the bound");
        let late = freshness.report(start + Duration::from_secs(9), bound);
        assert!(late.stale && late.failures == 2);
        let lines = late.info_lines();
        assert!(lines.contains("topology_stale:1\r\n"), "{lines}");
        assert!(lines.contains("topology_age_ms:9000\r\n"), "{lines}");
        assert!(
            lines.contains(
                "topology_last_error:127.0.0.1:7001: NOAUTH Authentication required.\r\n"
            )
        );
        assert_eq!(lines.matches("\r\n").count(), 5, "one line each: {lines}");
        freshness.refreshed(start + Duration::from_secs(10));
        let after = freshness.report(start + Duration::from_secs(11), bound);
        assert!(!after.stale && after.failures == 0 && after.age == Duration::from_secs(1));
        assert!(after.last_error.is_some(), "the last error stays for the operator");
    }
}
