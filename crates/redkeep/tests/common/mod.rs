//! What the tests of the redkeep binary share: running `redkeep`, describing what it did, and
//! a guard that stops what a test's `up` left running in its dir.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

/// The environment variables that give redkeep secrets: a test's redkeep gets none of the
/// caller's, only those the test passes.
const SECRET_VARS: [&str; 5] = [
    "REDKEEP_PASSWORD",
    "REDKEEP_NODE_PASSWORD",
    "REDKEEP_CLIENT_PASSWORD",
    "REDKEEP_STATS_TOKEN",
    "REDKEEP_NODE_TLS_CA",
];

/// `redkeep ARGS`, bounded so that a hung command fails its test instead of hanging it.
pub fn redkeep(args: &[&str]) -> Output {
    redkeep_with_env(args, &[])
}

/// [`redkeep`] with `env` added to an environment without the caller's secrets.
pub fn redkeep_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::cargo_bin("redkeep").unwrap();
    command.args(args);
    for var in SECRET_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied()).timeout(Duration::from_secs(300)).output().unwrap()
}

/// [`redkeep`] that must succeed; what it printed.
pub fn ok(args: &[&str]) -> String {
    let output = redkeep(args);
    assert!(output.status.success(), "redkeep {args:?}: {}", describe(&output));
    stdout(&output)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit status and both outputs, for an assertion's message.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

/// Stops whatever a test's `up` left running in its dir (the monitor, the proxy, the nodes,
/// each by its verified pid) and deletes the dir, also when an assertion failed.
pub struct DirGuard(pub PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Ok(dir) = deploy::local::open(&self.0) {
            // The monitor first: its healing would restart the nodes being stopped.
            for pid in [dir.monitor_pid(), dir.proxy_pid()].into_iter().flatten() {
                kill(pid);
            }
            for &port in &dir.manifest.ports {
                if let Some(pid) = dir.running_pid(port) {
                    kill(pid);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kill(pid: u32) {
    deploy::process::signal(pid, libc::SIGKILL);
    deploy::process::wait_gone(pid, Duration::from_secs(5));
}
