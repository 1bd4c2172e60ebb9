//! Tracing setup, and the writer that keeps log lines off the request path. It must never enable
//! a layer that records request headers or bodies, never make a request pay a write system call
//! for an access line, and never lose a line (buffers are written out at least every 200 ms and
//! at exit).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogConfig;

/// Bytes of lines a thread gathers before it writes them out itself (nginx's `access_log ...
/// buffer=` does the same).
const BUFFER: usize = 64 * 1024;
/// How often gathered lines are written out at the latest (nginx's `flush=`).
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Writes out what is buffered when dropped. Hold it until exit.
pub struct Flush(Arc<Batched>);

impl Drop for Flush {
    fn drop(&mut self) {
        self.0.flush_all();
    }
}

/// Where access lines go when `init` set up the process's logging: straight into the thread's
/// buffer, formatted as the subscriber would (without it, e.g. the gateway run as a library in
/// tests, they are ordinary tracing events).
static ACCESS: std::sync::OnceLock<AccessOut> = std::sync::OnceLock::new();

struct AccessOut {
    batched: Arc<Batched>,
    format: LineFormat,
}

/// How an access line is written, matching the subscriber's lines.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    Text { ansi: bool },
    Json,
}

/// Appends one access line to this thread's buffer, written by `render`; false when `init` did
/// not set logging up (the caller then logs a tracing event). Call only when the access target
/// is enabled at info.
pub fn access_line(render: impl FnOnce(&mut Vec<u8>, LineFormat)) -> bool {
    match ACCESS.get() {
        Some(out) => {
            out.batched.append(false, |buf| render(buf, out.format));
            true
        }
        None => false,
    }
}

/// Installs the global subscriber: text or JSON, level from config unless RUST_LOG is set.
pub fn init(cfg: &LogConfig) -> Flush {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a log file, journald or a container log
    // collector would get escape sequences in every line.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let batched = Batched::start();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Writer(batched.clone())).with_ansi(ansi);
    let json = cfg.format.get() == crate::config::LogFormat::Json;
    // Access lines skip tracing's per-field formatting (the bulk of what a line cost): the
    // request writes its fields straight into the buffer, in the same shape.
    let _ = ACCESS.set(AccessOut { batched: batched.clone(), format: if json { LineFormat::Json } else { LineFormat::Text { ansi } } });
    let _ = if json {
        // The request's span (its id) on each line, once; not the list of every span around it.
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
    Flush(batched)
}

/// Lines to stderr, gathered per thread: info and below (the access log) are appended to the
/// thread's own buffer, written out in one call when it fills or by the flusher thread; warnings
/// and errors are written at once (after the thread's earlier lines, to keep their order).
pub struct Batched {
    /// Every thread's buffer, for the flusher and for exit.
    buffers: Mutex<Vec<Arc<Mutex<Vec<u8>>>>>,
    /// Serializes writes, so lines of different threads never interleave.
    out: Mutex<std::io::Stderr>,
}

thread_local! {
    static MINE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

impl Batched {
    fn start() -> Arc<Batched> {
        let b = Arc::new(Batched { buffers: Mutex::new(Vec::new()), out: Mutex::new(std::io::stderr()) });
        let weak = Arc::downgrade(&b);
        let _ = std::thread::Builder::new().name("xumm-gate-log".into()).spawn(move || {
            while let Some(b) = weak.upgrade() {
                b.flush_all();
                drop(b);
                std::thread::sleep(FLUSH_EVERY);
            }
        });
        b
    }

    /// Adds to this thread's buffer with `fill`, and writes the buffer out when it is full or
    /// the line is `urgent`.
    fn append(&self, urgent: bool, fill: impl FnOnce(&mut Vec<u8>)) {
        MINE.with(|m| {
            let mut mine = m.borrow_mut();
            let buf = mine.get_or_insert_with(|| {
                let buf = Arc::new(Mutex::new(fresh()));
                self.buffers.lock().unwrap_or_else(|p| p.into_inner()).push(buf.clone());
                buf
            });
            let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
            fill(&mut b);
            if urgent || b.len() >= BUFFER {
                let full = std::mem::replace(&mut *b, fresh());
                drop(b);
                self.write_out(&full);
            }
        })
    }

    fn write_out(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // Nowhere to report a failed write to stderr.
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Writes out every thread's lines; forgets the buffers of threads that ended.
    fn flush_all(&self) {
        let buffers: Vec<_> = self.buffers.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for buf in &buffers {
            let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
            let taken = if buf.is_empty() { Vec::new() } else { std::mem::replace(&mut *buf, fresh()) };
            drop(buf);
            self.write_out(&taken);
        }
        drop(buffers);
        // Held only here (and by no thread): its thread ended, and its lines were written above.
        self.buffers.lock().unwrap_or_else(|p| p.into_inner()).retain(|b| Arc::strong_count(b) > 1 || !b.lock().map(|v| v.is_empty()).unwrap_or(true));
    }
}

/// A thread's next buffer, at its full size at once: grown line by line it would be copied
/// at every doubling.
fn fresh() -> Vec<u8> {
    Vec::with_capacity(BUFFER + 1024)
}

#[derive(Clone)]
struct Writer(Arc<Batched>);

/// One event's line (the fmt layer writes each event whole, with one call).
struct Line {
    batched: Arc<Batched>,
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.batched.append(self.urgent, |b| b.extend_from_slice(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { batched: self.0.clone(), urgent: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line { batched: self.0.clone(), urgent: *meta.level() <= tracing::Level::WARN }
    }
}
