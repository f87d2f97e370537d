//! Network namespaces through iproute2 (`ip netns`, `ip -n NS ...`), and running our own code
//! inside one: a thread that joins a namespace opens its sockets there, so the lab's control
//! and load run on lab addresses without any route from the machine's own namespace.

use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "`ip` (iproute2) did not run: {0}; install it with `apt-get install iproute2` and run as \
         root"
    )]
    NoIp(std::io::Error),
    #[error("`ip {args}` failed: {stderr} (the lab needs root)")]
    Failed { args: String, stderr: String },
    #[error("cannot enter network namespace {name}: {source}")]
    Enter { name: String, source: std::io::Error },
}

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<(), NetnsError> {
    ip_output(args).map(drop)
}

/// Runs `ip ARGS...` and returns what it printed.
pub fn ip_output(args: &[&str]) -> Result<String, NetnsError> {
    let output = Command::new("ip").args(args).output().map_err(NetnsError::NoIp)?;
    if !output.status.success() {
        return Err(NetnsError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The names of every network namespace (`ip netns list`).
pub fn list() -> Vec<String> {
    let text = ip_output(&["netns", "list"]).unwrap_or_default();
    text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect()
}

pub fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name])
}

pub fn delete(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "delete", name])
}

/// The pids of the processes in namespace `name`.
pub fn pids(name: &str) -> Vec<u32> {
    let text = ip_output(&["netns", "pids", name]).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// A command that runs `program` inside namespace `name` (`ip netns exec`, which execs it: the
/// child's pid is the program's).
pub fn command(name: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", name]).arg(program);
    command
}

/// Runs `work` on a thread of its own that has joined namespace `name`; every socket it opens
/// lives there.
pub fn run_in<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    let file = open(name)?;
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || enter(&file).map(|()| work()));
        thread.join().expect("a thread in the namespace panicked")
    })
    .map_err(|source| NetnsError::Enter { name: name.to_string(), source })
}

/// Like [`run_in`], in the background.
pub fn spawn_in<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T, NetnsError>>, NetnsError> {
    let file = open(name)?;
    let name = name.to_string();
    Ok(std::thread::spawn(move || {
        enter(&file).map_err(|source| NetnsError::Enter { name, source })?;
        Ok(work())
    }))
}

fn open(name: &str) -> Result<std::fs::File, NetnsError> {
    std::fs::File::open(Path::new("/run/netns").join(name))
        .map_err(|source| NetnsError::Enter { name: name.to_string(), source })
}

/// Moves the calling thread into the namespace of `file`.
fn enter(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace file we hold open; it changes only this thread.
    match unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Runs a future made by `make` to completion on a runtime of its own inside namespace `name`.
pub fn block_on_in<T: Send, F: Future<Output = T>>(
    name: &str,
    make: impl FnOnce() -> F + Send,
) -> Result<T, NetnsError> {
    run_in(name, move || current_thread_runtime().block_on(make()))
}

/// Like [`block_on_in`], in the background.
pub fn spawn_block_on_in<T: Send + 'static, F: Future<Output = T>>(
    name: &str,
    make: impl FnOnce() -> F + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T, NetnsError>>, NetnsError> {
    spawn_in(name, move || current_thread_runtime().block_on(make()))
}
