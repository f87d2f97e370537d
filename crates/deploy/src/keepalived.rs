//! keepalived configuration for a floating IP over redkeep proxies: a VRRP instance whose
//! health script is `redkeep health --proxy ...` (the VIP leaves a host whose proxy does not
//! answer or has lost part of the slot map) and whose notify hook logs every transition.
//! Pure: [`render`] returns the text; the caller writes it.

use std::fmt::Write as _;

/// What one load-balancer host's keepalived needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpSpec {
    /// The floating address with its prefix, e.g. `198.18.0.100/24`.
    pub vip: String,
    /// The interface the VIP lives on.
    pub interface: String,
    /// Higher wins; give each LB host a different one (e.g. 150 and 100).
    pub priority: u8,
    /// The VRRP router id (1-255), the same on every host of this VIP.
    pub virtual_router_id: u8,
    /// `PASS` authentication (at most 8 characters), the same on every host.
    pub auth_pass: Option<String>,
    /// Seconds between adverts.
    pub advert_int: u32,
    /// The redkeep binary, absolute, for the health and notify scripts.
    pub redkeep: String,
    /// The proxy to check, HOST:PORT.
    pub proxy: String,
    /// Where the notify hook appends transitions.
    pub notify_log: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    #[error("--vip `{0}` is not ADDRESS/PREFIX (e.g. 198.18.0.100/24)")]
    BadVip(String),
    #[error("--auth-pass is longer than the 8 characters VRRP PASS authentication uses")]
    PassTooLong,
    #[error("--router-id must be between 1 and 255")]
    BadRouterId,
    #[error("`{0}` must not contain spaces or quotes (keepalived splits script lines on them)")]
    BadPath(String),
}

/// The keepalived.conf of one host.
pub fn render(spec: &VrrpSpec) -> Result<String, VrrpError> {
    validate(spec)?;
    let mut out = String::new();
    let _ = writeln!(out, "# Written by `redkeep keepalived render`; the same VIP, router id and");
    let _ = writeln!(out, "# password on every load-balancer host, a different priority on each.");
    let _ = writeln!(out, "global_defs {{\n    enable_script_security\n    script_user root\n}}\n");
    let _ = writeln!(
        out,
        "vrrp_script chk_redkeep_proxy {{\n    script \"{} health --proxy {}\"\n    interval 1\n    timeout 2\n    fall 2\n    rise 2\n}}\n",
        spec.redkeep, spec.proxy
    );
    let _ = writeln!(out, "vrrp_instance redkeep_vip {{");
    let _ = writeln!(out, "    state BACKUP");
    let _ = writeln!(out, "    interface {}", spec.interface);
    let _ = writeln!(out, "    virtual_router_id {}", spec.virtual_router_id);
    let _ = writeln!(out, "    priority {}", spec.priority);
    let _ = writeln!(out, "    advert_int {}", spec.advert_int);
    if let Some(pass) = &spec.auth_pass {
        let _ = writeln!(
            out,
            "    authentication {{\n        auth_type PASS\n        auth_pass {pass}\n    }}"
        );
    }
    let _ = writeln!(
        out,
        "    virtual_ipaddress {{\n        {} dev {}\n    }}",
        spec.vip, spec.interface
    );
    let _ = writeln!(out, "    track_script {{\n        chk_redkeep_proxy\n    }}");
    let _ = writeln!(
        out,
        "    notify \"{} keepalived notify --file {}\"",
        spec.redkeep, spec.notify_log
    );
    let _ = writeln!(out, "}}");
    Ok(out)
}

fn validate(spec: &VrrpSpec) -> Result<(), VrrpError> {
    let (addr, prefix) =
        spec.vip.split_once('/').ok_or_else(|| VrrpError::BadVip(spec.vip.clone()))?;
    let prefix_ok = prefix.parse::<u8>().is_ok_and(|p| p <= 32);
    if addr.parse::<std::net::Ipv4Addr>().is_err() || !prefix_ok {
        return Err(VrrpError::BadVip(spec.vip.clone()));
    }
    if spec.auth_pass.as_ref().is_some_and(|p| p.len() > 8) {
        return Err(VrrpError::PassTooLong);
    }
    if spec.virtual_router_id == 0 {
        return Err(VrrpError::BadRouterId);
    }
    for text in [&spec.redkeep, &spec.proxy, &spec.notify_log, &spec.interface] {
        if text.is_empty() || text.contains([' ', '"', '\'']) {
            return Err(VrrpError::BadPath(text.clone()));
        }
    }
    Ok(())
}

/// One line of the transition log, from the arguments keepalived gives a notify script:
/// `TYPE NAME STATE PRIORITY` (e.g. `INSTANCE redkeep_vip MASTER 150`).
pub fn notify_line(unix_secs: u64, args: &[String]) -> String {
    format!("{unix_secs} {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VrrpSpec {
        VrrpSpec {
            vip: "198.18.0.100/24".into(),
            interface: "eth0".into(),
            priority: 150,
            virtual_router_id: 51,
            auth_pass: Some("s3cret".into()),
            advert_int: 1,
            redkeep: "/usr/local/bin/redkeep".into(),
            proxy: "127.0.0.1:7010".into(),
            notify_log: "/var/log/redkeep-vrrp.log".into(),
        }
    }

    #[test]
    fn the_config_tracks_the_proxy_health_and_logs_transitions() {
        let text = render(&spec()).unwrap();
        assert!(text.contains("script \"/usr/local/bin/redkeep health --proxy 127.0.0.1:7010\""));
        assert!(text.contains("198.18.0.100/24 dev eth0"));
        assert!(text.contains("priority 150") && text.contains("virtual_router_id 51"));
        assert!(text.contains("auth_pass s3cret") && text.contains("chk_redkeep_proxy"));
        assert!(text.contains(
            "notify \"/usr/local/bin/redkeep keepalived notify --file /var/log/redkeep-vrrp.log\""
        ));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let bad = |f: fn(&mut VrrpSpec)| {
            let mut s = spec();
            f(&mut s);
            render(&s).unwrap_err()
        };
        assert_eq!(
            bad(|s| s.vip = "198.18.0.100".into()),
            VrrpError::BadVip("198.18.0.100".into())
        );
        assert_eq!(bad(|s| s.vip = "x/24".into()), VrrpError::BadVip("x/24".into()));
        assert_eq!(bad(|s| s.auth_pass = Some("toolongpass".into())), VrrpError::PassTooLong);
        assert_eq!(bad(|s| s.virtual_router_id = 0), VrrpError::BadRouterId);
        assert!(matches!(bad(|s| s.redkeep = "/my path/redkeep".into()), VrrpError::BadPath(_)));
    }
}
