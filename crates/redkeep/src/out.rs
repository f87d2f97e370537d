//! Standard output for every command, through `print!` and `println!`.
//!
//! The macros below shadow std's (they are declared before `mod cmd`, so every command, also
//! one added later, uses them without knowing). They differ in one thing: when stdout is a
//! closed pipe (`redkeep status --json | head`), std's panic "failed printing to stdout" (exit
//! 101 and a backtrace hint) becomes the quiet end other Unix tools have: redkeep dies of
//! SIGPIPE, as `cat` does, so the shell and `set -o pipefail` see what they expect.
//!
//! Why not restore SIGPIPE's default action at start, the usual one-liner: redkeep also serves
//! sockets (`proxy`, and `up` runs the proxy in its own process), and with the default action a
//! client that hangs up while the proxy writes to it would kill the proxy. Here only a write to
//! stdout can end the process.

use std::io::Write;

/// `print!` for the commands: see the module docs.
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!($($arg)*)) };
}

/// `println!` for the commands: see the module docs.
macro_rules! println {
    () => { $crate::out::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to stdout; a closed pipe ends the process by SIGPIPE, any other failure panics as
/// std's `print!` does.
pub fn write_stdout(args: std::fmt::Arguments) {
    if let Err(error) = std::io::stdout().lock().write_fmt(args) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            end_by_sigpipe();
        }
        panic!("failed printing to stdout: {error}");
    }
}

/// Flushes stdout (after a `print!` without a newline, e.g. a question), as [`write_stdout`]
/// handles a closed pipe.
pub fn flush_stdout() {
    if let Err(error) = std::io::stdout().lock().flush() {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            end_by_sigpipe();
        }
        panic!("failed flushing stdout: {error}");
    }
}

/// Ends the process the way a Unix tool ends when its reader has gone.
fn end_by_sigpipe() -> ! {
    // SAFETY: signal(2) and raise(3) with constant arguments have no memory-safety
    // preconditions; Rust set SIGPIPE to ignored at start, this puts the default back first.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: SIGPIPE's default action ends the process. 128 + 13, as a shell reports it.
    std::process::exit(141)
}
