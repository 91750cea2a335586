//! What the binaries share and a library user does not need (feature `cli`): logging set-up.

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`): the binaries call
/// it first, so the driver fallback, pinning failures and protocol errors are seen.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: not in a log file, a journal or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
