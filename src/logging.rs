//! Tracing setup. It must never enable a layer that records request headers or bodies.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Installs the global subscriber: text or JSON, level from config unless RUST_LOG is set.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a log file, journald or a container log
    // collector would get escape sequences in every line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if cfg.format.get() == crate::config::LogFormat::Json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
}
