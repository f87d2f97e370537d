//! keepalived configuration for a floating IP over redkeep proxies: a VRRP instance whose
//! health script is `redkeep health --proxy ...` (the VIP leaves a host whose proxy does not
//! answer or has lost part of the slot map) and whose notify hook logs every transition.
//! [`render`] is pure (it returns the text; the caller writes it); [`Supervisor`] runs the real
//! keepalived with such a config beside a proxy.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    /// A file holding the password the proxy wants of its clients, for the health script
    /// (`--password-file`: the password itself would show in the config and the process list).
    pub health_password_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VrrpError {
    #[error("--vip `{0}` is not ADDRESS/PREFIX (e.g. 198.18.0.100/24)")]
    BadVip(String),
    #[error("--auth-pass is longer than the 8 characters VRRP PASS authentication uses")]
    PassTooLong,
    #[error("--router-id must be between 1 and 255")]
    BadRouterId,
    #[error("--priority must be between 1 and 255 (keepalived refuses 0)")]
    BadPriority,
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
    let password = match &spec.health_password_file {
        Some(file) => format!(" --password-file {file}"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "vrrp_script chk_redkeep_proxy {{\n    script \"{} health --proxy {}{password}\"\n    interval 1\n    timeout 2\n    fall 2\n    rise 2\n}}\n",
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
    if spec.priority == 0 {
        return Err(VrrpError::BadPriority);
    }
    let texts = [&spec.redkeep, &spec.proxy, &spec.notify_log, &spec.interface];
    for text in texts.into_iter().chain(&spec.health_password_file) {
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

/// keepalived run by redkeep (`redkeep proxy --vip ...`): started in the foreground
/// (`-n`), restarted when it dies, stopped with [`Supervisor::stop`].
///
/// keepalived gets SIGTERM when the supervising thread goes away (`PR_SET_PDEATHSIG`): if the
/// proxy itself is killed, keepalived leaves too and, stopping cleanly, hands the VIP over at
/// once with a priority-0 advert instead of holding it until its health script fails.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a dead keepalived waits before it is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Starts keepalived with `conf`, keeping its pid files and log (`keepalived.log`) in
    /// `dir`. Fails when keepalived is not installed or exits at once (a bad config, no
    /// privileges); the error carries the end of its log.
    pub fn start(conf: &Path, dir: &Path) -> Result<Supervisor, SupervisorError> {
        let files = Files::new(conf, dir)?;
        let mut child = files.spawn()?;
        // keepalived reads its config and checks the interface before it settles; one that
        // cannot run exits within this pause.
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SupervisorError::Exited {
                status: status.to_string(),
                log: files.log_tail(),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("keepalived".into())
            .spawn(move || supervise(files, child, &stop_flag))
            .map_err(|e| SupervisorError::Io("starting the supervising thread".into(), e))?;
        Ok(Supervisor { stop, thread: Some(thread) })
    }

    /// Stops keepalived (SIGTERM: it releases the VIP) and waits for it; dropping does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("keepalived is not on PATH: install it with `apt-get install keepalived`")]
    Missing,
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("keepalived exited at once ({status}); the end of its log:\n{log}")]
    Exited { status: String, log: String },
}

/// The files of one supervised keepalived.
struct Files {
    binary: PathBuf,
    conf: PathBuf,
    dir: PathBuf,
}

impl Files {
    fn new(conf: &Path, dir: &Path) -> Result<Files, SupervisorError> {
        let binary = find_on_path("keepalived").ok_or(SupervisorError::Missing)?;
        let absolute = |p: &Path| {
            p.canonicalize()
                .map_err(|e| SupervisorError::Io(format!("resolving {}", p.display()), e))
        };
        Ok(Files { binary, conf: absolute(conf)?, dir: absolute(dir)? })
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("keepalived.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// `keepalived -n -l -D -f CONF -p PID -r VRRP_PID -c CHECK_PID` (the Debian build has no
    /// `--log-file`: `-l` logs to the console, which is the log file here).
    fn spawn(&self) -> Result<Child, SupervisorError> {
        let pid_files = ["keepalived.pid", "vrrp.pid", "checkers.pid"].map(|f| self.dir.join(f));
        for stale in &pid_files {
            // keepalived refuses to start over the pid file of a dead earlier run.
            let _ = std::fs::remove_file(stale);
        }
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).map_err(
                |e| SupervisorError::Io(format!("opening {}", self.log_path().display()), e),
            )?;
        let log_err =
            log.try_clone().map_err(|e| SupervisorError::Io("the log handle".into(), e))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["-n", "-l", "-D", "-f"])
            .arg(&self.conf)
            .arg("-p")
            .arg(&pid_files[0])
            .arg("-r")
            .arg(&pid_files[1])
            .arg("-c")
            .arg(&pid_files[2])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        command
            .spawn()
            .map_err(|e| SupervisorError::Io(format!("starting {}", self.binary.display()), e))
    }
}

/// Waits on keepalived, starting it again when it dies, until `stop` is set.
fn supervise(files: Files, mut child: Child, stop: &AtomicBool) {
    loop {
        if stop.load(Ordering::SeqCst) {
            crate::process::terminate(child.id(), Duration::from_secs(5));
            let _ = child.wait();
            return;
        }
        match child.try_wait() {
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Ok(Some(_)) | Err(_) => {
                tracing::warn!(
                    "keepalived exited; starting it again in {RESTART_PAUSE:?} (log: {})",
                    files.log_path().display()
                );
                std::thread::sleep(RESTART_PAUSE);
                match files.spawn() {
                    Ok(next) => child = next,
                    Err(e) => tracing::error!("keepalived did not start again: {e}"),
                }
            }
        }
    }
}

/// `name` in a PATH directory.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    // keepalived lives in /usr/sbin, which a non-login root shell may not have on PATH.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
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
            health_password_file: None,
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
    fn the_health_script_reads_the_password_from_its_file() {
        let with_file =
            VrrpSpec { health_password_file: Some("/srv/lab/password".into()), ..spec() };
        let text = render(&with_file).unwrap();
        let script = "/usr/local/bin/redkeep health --proxy 127.0.0.1:7010 --password-file /srv/lab/password";
        assert!(text.contains(&format!("script \"{script}\"")), "{text}");
        let spaced = VrrpSpec { health_password_file: Some("/a b".into()), ..spec() };
        assert_eq!(render(&spaced).unwrap_err(), VrrpError::BadPath("/a b".into()));
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
        assert!(matches!(bad(|s| s.priority = 0), VrrpError::BadPriority));
    }
}
