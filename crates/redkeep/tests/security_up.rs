//! `redkeep up --auth` with real redis-server processes: the nodes and the proxy require the
//! password, replicas replicate with it, later commands given `--dir` find it, and it shows in
//! no log and on no command line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{DirGuard, describe, redkeep_with_env as redkeep};

/// `redis-cli -p PORT ARGS` (the password, when given, through REDISCLI_AUTH: not on the
/// command line); what it printed, trimmed.
fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    redis_cli_with(&[], port, password, args)
}

/// [`redis_cli`] with `options` (`--tls ...`) before the port.
fn redis_cli_with(options: &[&str], port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut command = std::process::Command::new("redis-cli");
    command.args(options).args(["-p", &port.to_string()]).args(args).env_remove("REDISCLI_AUTH");
    if let Some(password) = password {
        command.env("REDISCLI_AUTH", password);
    }
    let output = command.output().expect("redis-cli runs");
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    text.trim().to_string()
}

/// Polls `done` until it holds; fails with `what` and the last value after a minute.
fn wait_until(what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match done() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Every replica (`role:slave`) reports `master_link_status:up`: it authenticated to its
/// master with masterauth and synced.
fn replicas_in_sync(ports: &[u16], password: &str) -> Result<(), String> {
    replicas_in_sync_with(&[], ports, Some(password))
}

/// [`replicas_in_sync`], asking with the redis-cli `options` (TLS).
fn replicas_in_sync_with(
    options: &[&str],
    ports: &[u16],
    password: Option<&str>,
) -> Result<(), String> {
    let mut replicas = 0;
    for &port in ports {
        let info = redis_cli_with(options, port, password, &["INFO", "replication"]);
        if info.contains("role:slave") {
            replicas += 1;
            if !info.contains("master_link_status:up") {
                return Err(format!("node {port}: {info}"));
            }
        }
    }
    if replicas == 0 {
        return Err("no replica found".into());
    }
    Ok(())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The command lines of every process of this machine that holds `needle` (as `ps` shows).
fn command_lines_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(line) = std::fs::read(entry.path().join("cmdline"))
            && contains(&line, needle.as_bytes())
        {
            found.push(String::from_utf8_lossy(&line).replace('\0', " "));
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn up_auth_protects_nodes_and_proxy_and_keeps_the_password_private() {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let ports: Vec<u16> = (base_port..base_port + 6).collect();
    let proxy_port = deploy::ports::free_port();
    let stats_port = deploy::ports::free_port().to_string();
    let dir = std::env::temp_dir().join(format!("redkeep-security-up-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    let dir_arg = dir.to_str().unwrap();
    let (base, proxy) = (base_port.to_string(), proxy_port.to_string());
    let up_args = [
        "up",
        "--detach",
        "--dir",
        dir_arg,
        "--base-port",
        &base,
        "--node-timeout",
        "2s",
        "--proxy-port",
        &proxy,
        "--stats-port",
        &stats_port,
    ];
    let mut with_auth = up_args.to_vec();
    with_auth.push("--auth");
    let up = redkeep(&with_auth, &[]);
    assert!(up.status.success(), "up --auth failed: {}", describe(&up));

    // A generated password, printed once, kept in a 0600 file of the 0700 dir.
    let password_file = dir.join("password");
    let password = std::fs::read_to_string(&password_file).expect("the password is kept");
    let password = password.trim();
    assert!(password.len() >= 32, "{password:?}");
    assert_eq!(mode(&password_file), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let printed = String::from_utf8_lossy(&up.stdout);
    assert_eq!(printed.matches(password).count(), 1, "printed once: {}", describe(&up));

    // Each node refuses a client without the password and serves one with it.
    for &port in &ports {
        let refused = redis_cli(port, None, &["PING"]);
        assert!(refused.contains("NOAUTH"), "node {port} without AUTH: {refused}");
        assert_eq!(redis_cli(port, Some(password), &["PING"]), "PONG", "node {port}");
        let wrong = redis_cli(port, Some("not-the-password"), &["PING"]);
        assert!(!wrong.contains("PONG"), "node {port} with a wrong password: {wrong}");
    }
    // The replicas authenticated to their masters (masterauth) and are in sync.
    wait_until("every replica in sync", || replicas_in_sync(&ports, password));

    // The proxy wants AUTH too (user `default`, the same password), then serves.
    let refused = redis_cli(proxy_port, None, &["SET", "k", "v"]);
    assert!(refused.contains("NOAUTH"), "proxy without AUTH: {refused}");
    assert_eq!(redis_cli(proxy_port, Some(password), &["SET", "k", "v"]), "OK");
    assert_eq!(redis_cli(proxy_port, Some(password), &["GET", "k"]), "v");

    // Later commands given --dir find the stored password.
    let status = redkeep(&["status", "--dir", dir_arg], &[]);
    assert!(status.status.success(), "status --dir: {}", describe(&status));
    let check = redkeep(&["check", "--dir", dir_arg], &[]);
    assert!(check.status.success(), "check --dir: {}", describe(&check));

    // The password is in no log (nor any other file but its own and the nodes' configs), and
    // on no command line: the detached proxy got it in its environment.
    for file in files_under(&dir) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if file == password_file || name == "redis.conf" {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(!contains(&bytes, password.as_bytes()), "the password is in {}", file.display());
    }
    assert!(dir.join("proxy/proxy.log").exists(), "the proxy logs in its dir");
    for port in &ports {
        assert_eq!(mode(&dir.join(format!("node-{port}/redis.conf"))), 0o600);
    }
    assert_eq!(command_lines_with(password), Vec::<String>::new(), "on a command line");

    // A failover on the auth cluster (failover takes no --dir: the password from the
    // environment).
    let replica = ports
        .iter()
        .copied()
        .find(|&p| redis_cli(p, Some(password), &["ROLE"]).starts_with("slave"))
        .expect("a replica");
    let replica_addr = format!("127.0.0.1:{replica}");
    let failover = redkeep(&["failover", &replica_addr], &[("REDKEEP_PASSWORD", password)]);
    assert!(failover.status.success(), "failover: {}", describe(&failover));
    assert!(redis_cli(replica, Some(password), &["ROLE"]).starts_with("master"));
    wait_until("every replica in sync after the failover", || replicas_in_sync(&ports, password));
    assert_eq!(redis_cli(proxy_port, Some(password), &["GET", "k"]), "v");

    // A later `up` without --auth keeps the cluster's password, and says so.
    let again = redkeep(&up_args, &[]);
    assert!(again.status.success(), "up again: {}", describe(&again));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("was made with --auth"), "{}", describe(&again));
    assert!(!said.contains(password), "printed only when generated: {}", describe(&again));

    // `down --dir` stops every node (SHUTDOWN needs the password too).
    let down = redkeep(&["down", "--dir", dir_arg], &[]);
    assert!(down.status.success(), "down: {}", describe(&down));
    let local = deploy::local::open(&dir).unwrap();
    for &port in &ports {
        assert_eq!(local.running_pid(port), None, "node {port} stopped");
    }
    assert_eq!(local.proxy_pid(), None);

    // Up again: the nodes restart from their configs with the same password.
    let restarted = redkeep(&up_args, &[]);
    assert!(restarted.status.success(), "up after down: {}", describe(&restarted));
    assert!(redis_cli(base_port, None, &["PING"]).contains("NOAUTH"));
    assert_eq!(redis_cli(proxy_port, Some(password), &["GET", "k"]), "v");
}

#[test]
fn up_auth_uses_the_given_password_and_refuses_another_later() {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let dir = std::env::temp_dir().join(format!("redkeep-security-given-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    let dir_arg = dir.to_str().unwrap();
    let base = base_port.to_string();
    let up_args =
        ["up", "--detach", "--auth", "--no-proxy", "--dir", dir_arg, "--base-port", &base];
    let password = "given pass \"with\" spaces";
    let up = redkeep(&up_args, &[("REDKEEP_PASSWORD", password)]);
    assert!(up.status.success(), "up --auth: {}", describe(&up));
    assert!(!String::from_utf8_lossy(&up.stdout).contains(password), "{}", describe(&up));
    assert_eq!(std::fs::read_to_string(dir.join("password")).unwrap().trim_end(), password);
    assert_eq!(redis_cli(base_port, Some(password), &["PING"]), "PONG");

    let other = redkeep(&up_args, &[("REDKEEP_PASSWORD", "another")]);
    assert!(!other.status.success(), "{}", describe(&other));
    assert!(String::from_utf8_lossy(&other.stderr).contains("gives another one"));

    // `down --purge` takes the password file with the rest.
    let down = redkeep(&["down", "--dir", dir_arg, "--purge"], &[]);
    assert!(down.status.success(), "down --purge: {}", describe(&down));
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[test]
fn up_tls_speaks_tls_to_clients_nodes_and_replicas_and_nothing_plain() {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let ports: Vec<u16> = (base_port..base_port + 6).collect();
    let [proxy_port, stats_port, monitor_port] = [(); 3].map(|_| deploy::ports::free_port());
    let dir = std::env::temp_dir().join(format!("redkeep-security-tls-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    let dir_arg = dir.to_str().unwrap();
    let [base, proxy, stats, monitor] =
        [base_port, proxy_port, stats_port, monitor_port].map(|p| p.to_string());
    let up = redkeep(
        &[
            "up",
            "--tls",
            "--detach",
            "--dir",
            dir_arg,
            "--base-port",
            &base,
            "--node-timeout",
            "2s",
            "--proxy-port",
            &proxy,
            "--stats-port",
            &stats,
            "--monitor-port",
            &monitor,
        ],
        &[],
    );
    assert!(up.status.success(), "up --tls failed: {}", describe(&up));

    // The CA and certificates, private; the CA's key is not kept.
    let tls = dir.join("tls");
    assert_eq!(mode(&tls), 0o700);
    let mut names: Vec<String> = std::fs::read_dir(&tls)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let wanted = ["ca.crt", "client.crt", "client.key", "node.crt", "node.key", "proxy.crt"];
    assert_eq!(names, [&wanted[..], &["proxy.key"]].concat());
    for name in &names {
        assert_eq!(mode(&tls.join(name)), 0o600, "{name}");
    }
    let file = |name: &str| tls.join(name).to_str().unwrap().to_string();
    let (ca, cert, key) = (file("ca.crt"), file("client.crt"), file("client.key"));

    // Through the proxy with the real redis-cli --tls: keys on every master.
    let to_proxy = ["--tls", "--cacert", &ca];
    for i in 0..30 {
        let key = format!("key:{i}");
        assert_eq!(redis_cli_with(&to_proxy, proxy_port, None, &["SET", &key, "v"]), "OK");
    }
    for i in 0..30 {
        let key = format!("key:{i}");
        assert_eq!(redis_cli_with(&to_proxy, proxy_port, None, &["GET", &key]), "v");
    }
    let plain = redis_cli(proxy_port, None, &["PING"]);
    assert!(plain.contains("this port speaks TLS"), "a plain client of the proxy: {plain}");

    // The nodes speak TLS only, want a client certificate, and replicate over TLS.
    let to_node = ["--tls", "--cacert", &ca, "--cert", &cert, "--key", &key];
    wait_until("every replica in sync over TLS", || replicas_in_sync_with(&to_node, &ports, None));
    for &port in &ports {
        let plain = redis_cli(port, None, &["PING"]);
        assert!(!plain.contains("PONG"), "node {port} answered plain RESP: {plain}");
        let no_cert = redis_cli_with(&to_proxy, port, None, &["PING"]);
        assert!(!no_cert.contains("PONG"), "node {port} without a client cert: {no_cert}");
        // Refused cleanly: the node is still there for TLS clients.
        assert_eq!(redis_cli_with(&to_node, port, None, &["PING"]), "PONG", "node {port}");
        let conf = std::fs::read_to_string(dir.join(format!("node-{port}/redis.conf"))).unwrap();
        for line in ["port 0", "tls-replication yes", "tls-cluster yes"] {
            assert!(conf.lines().any(|l| l == line), "node {port} lacks {line:?}:\n{conf}");
        }
    }

    // `status --dir` finds the certificates: it reaches the nodes and the proxy over TLS.
    let proxy_addr = format!("127.0.0.1:{proxy_port}");
    let status = redkeep(&["status", "--dir", dir_arg, "--proxy", &proxy_addr], &[]);
    assert!(status.status.success(), "status --dir: {}", describe(&status));
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("cluster_state: ok"), "{}", describe(&status));
    assert!(said.contains(&format!("proxy {proxy_addr}: up")), "{}", describe(&status));
    let check = redkeep(&["check", "--dir", dir_arg], &[]);
    assert!(check.status.success(), "check --dir: {}", describe(&check));

    // `down` stops the monitor, the proxy and every node (SHUTDOWN over TLS).
    let local = deploy::local::open(&dir).unwrap();
    assert!(local.monitor_pid().is_some(), "the detached monitor runs");
    let down = redkeep(&["down", "--dir", dir_arg], &[]);
    assert!(down.status.success(), "down: {}", describe(&down));
    for &port in &ports {
        assert_eq!(local.running_pid(port), None, "node {port} stopped");
    }
    assert_eq!((local.proxy_pid(), local.monitor_pid()), (None, None));
}

/// A foreground `up`, stopped (by its pid) when the test ends.
struct Foreground(std::process::Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        deploy::process::terminate(self.0.id(), Duration::from_secs(20));
        let _ = self.0.wait();
    }
}

#[test]
fn up_tls_auth_in_the_foreground_with_a_relative_dir_serves_tls_until_down() {
    use std::io::{BufRead, BufReader};
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let [proxy_port, stats_port, monitor_port] = [(); 3].map(|_| deploy::ports::free_port());
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cluster");
    let _guard = DirGuard(dir.clone());
    let [base, proxy, stats, monitor] =
        [base_port, proxy_port, stats_port, monitor_port].map(|p| p.to_string());
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("redkeep"));
    // A relative --dir: the nodes and the proxy must still find the certificates.
    command.current_dir(parent.path()).args([
        "up",
        "--tls",
        "--auth",
        "--dir",
        "cluster",
        "--base-port",
        &base,
        "--node-timeout",
        "2s",
        "--proxy-port",
        &proxy,
        "--stats-port",
        &stats,
        "--monitor-port",
        &monitor,
    ]);
    command.env_remove("REDKEEP_PASSWORD").env_remove("REDKEEP_NODE_TLS_CA");
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut up = Foreground(command.spawn().unwrap());
    let mut lines = BufReader::new(up.0.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("Running in the foreground") {
        let line = lines.next().unwrap_or_else(|| panic!("up ended: {seen}")).unwrap();
        seen.push_str(&line);
        seen.push('\n');
    }

    let password = std::fs::read_to_string(dir.join("password")).unwrap();
    let password = password.trim();
    let ca = dir.join("tls/ca.crt");
    let to_proxy = ["--tls", "--cacert", ca.to_str().unwrap()];
    assert_eq!(redis_cli_with(&to_proxy, proxy_port, Some(password), &["SET", "fg", "v"]), "OK");
    assert_eq!(redis_cli_with(&to_proxy, proxy_port, Some(password), &["GET", "fg"]), "v");
    let refused = redis_cli_with(&to_proxy, proxy_port, None, &["GET", "fg"]);
    assert!(refused.contains("NOAUTH"), "TLS without the password: {refused}");

    // `down` stops the foreground `up`, which stops its proxy and nodes.
    let dir_arg = dir.to_str().unwrap();
    let down = redkeep(&["down", "--dir", dir_arg], &[]);
    assert!(down.status.success(), "down: {}", describe(&down));
    assert!(up.0.wait().unwrap().success(), "up ends cleanly: {seen}");
    let local = deploy::local::open(&dir).unwrap();
    for port in base_port..base_port + 6 {
        assert_eq!(local.running_pid(port), None, "node {port} stopped");
    }
}
