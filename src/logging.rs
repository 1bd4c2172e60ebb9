//! Tracing setup. It must never enable a layer that records request headers or bodies, and never
//! make a request wait for a log line to reach the disk or the terminal.

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;

/// Bytes of log lines gathered before one write (nginx's `access_log ... buffer=` does the same).
const BUFFER: usize = 64 * 1024;

/// Keeps the log writer running; dropping it writes out what is buffered. Hold it until exit.
pub struct Flush(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber: text or JSON, level from config unless RUST_LOG is set. Lines
/// go to stderr from a writer thread: a request only hands its line over (an access line per
/// request must not cost a write system call on the request path), and the thread writes what
/// has gathered, up to 64 KiB at once, as soon as no more lines wait. Never lossy: when the
/// writer falls far behind, callers wait rather than drop lines.
pub fn init(cfg: &LogConfig) -> Flush {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a log file, journald or a container log
    // collector would get escape sequences in every line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("xumm-gate-log")
        .finish(std::io::BufWriter::with_capacity(BUFFER, std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let _ = if cfg.format.get() == crate::config::LogFormat::Json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    Flush(guard)
}
