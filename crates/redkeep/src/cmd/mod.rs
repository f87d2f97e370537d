//! One module per subcommand.

/// Runs a future on a fresh multi-threaded tokio runtime: most commands are short-lived
/// clients, the proxy builds its own runtimes.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
        .block_on(future)
}
