//! The audit log: one JSON line per security event (sign-ins, sign-outs, revocations, forbidden
//! decisions, brokered payloads, refused webhooks, reloads), apart from the diagnostic log. It
//! must never write a secret, token, cookie, session id or query string: events carry accounts,
//! kinds, reasons, configured names, payload uuids, the client's address and the request id.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::metrics::{SignInFailure, SignInKind};

/// One security event. Each also moves its metric (`Audit::record` is the one place both
/// happen, so the counters and the trail never disagree).
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    SignInSucceeded { kind: SignInKind, account: &'a str, network: Option<&'a str> },
    SignInFailed { kind: SignInKind, reason: SignInFailure, #[serde(skip_serializing_if = "Option::is_none")] account: Option<&'a str> },
    SignedOut { #[serde(skip_serializing_if = "Option::is_none")] account: Option<&'a str> },
    SessionsRevoked { account: &'a str, sessions: usize },
    Forbidden { account: Option<&'a str>, route: &'a str, reason: &'a str },
    /// A sign request brokered for a protected app (`app`) or a signed-in user (`account`).
    PayloadCreated { app: Option<&'a str>, account: Option<&'a str>, tx_type: &'a str, uuid: &'a str },
    /// Its outcome (`signed`, `rejected`, `expired`, ...), and how the gateway learnt it.
    PayloadResolved { app: Option<&'a str>, account: Option<&'a str>, tx_type: &'a str, uuid: &'a str, outcome: &'static str, via: &'static str },
    WebhookRefused { reason: &'static str },
    ConfigReloaded { ok: bool, #[serde(skip_serializing_if = "Option::is_none")] error: Option<&'a str> },
}

/// Where audit lines go (`log.audit`).
pub struct Audit {
    out: Output,
}

enum Output {
    Off,
    Stdout,
    Stderr,
    File(Mutex<std::fs::File>),
}

#[derive(Serialize)]
struct Line<'a> {
    /// The marker that tells audit lines apart where they share a stream with others.
    log: &'static str,
    time: String,
    #[serde(flatten)]
    event: &'a Event<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<String>,
}

impl Audit {
    /// From `log.audit`: `off`, `stdout`, `stderr` or a file path (appended to, created 0600).
    pub fn open(setting: &str) -> Result<Audit, crate::config::ConfigError> {
        let out = match setting {
            "off" => Output::Off,
            "stdout" | "" => Output::Stdout,
            "stderr" => Output::Stderr,
            path => {
                let mut o = std::fs::OpenOptions::new();
                o.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                let f = o.open(path).map_err(|e| crate::config::err("log.audit", format!("cannot open {path}: {e}")))?;
                Output::File(Mutex::new(f))
            }
        };
        Ok(Audit { out })
    }

    /// A sink that writes nothing (tools and tests that build a gateway without one).
    pub fn off() -> Audit {
        Audit { out: Output::Off }
    }

    /// Moves the event's metric and writes its line, with the request's id and client address
    /// when it happens while answering one.
    pub fn record(&self, event: Event<'_>) {
        count(&event);
        if matches!(self.out, Output::Off) {
            return;
        }
        let line = Line {
            log: "audit",
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            event: &event,
            request_id: crate::request_id::current().map(|id| id.to_string()),
            client_ip: crate::request_id::client().map(|ip| ip.to_string()),
        };
        let Ok(mut text) = serde_json::to_vec(&line) else { return };
        text.push(b'\n');
        // One write per line: lines of different threads never interleave. Nowhere to report a
        // failed write but the diagnostic log.
        let written = match &self.out {
            Output::Off => Ok(()),
            Output::Stdout => std::io::stdout().lock().write_all(&text),
            Output::Stderr => std::io::stderr().lock().write_all(&text),
            Output::File(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(&text),
        };
        if let Err(e) = written {
            tracing::error!(cause = %e, "cannot write the audit log");
        }
    }
}

fn count(event: &Event<'_>) {
    match event {
        Event::SignInSucceeded { kind, .. } => crate::metrics::sign_in_completed(*kind),
        Event::SignInFailed { kind, reason, .. } => crate::metrics::sign_in_failed(*kind, *reason),
        Event::PayloadCreated { app, tx_type, .. } => crate::metrics::broker_payload(app.unwrap_or("-"), tx_type, "created"),
        Event::PayloadResolved { app, tx_type, outcome, .. } => crate::metrics::broker_payload(app.unwrap_or("-"), tx_type, outcome),
        Event::WebhookRefused { reason } => crate::metrics::webhook(reason),
        Event::SignedOut { .. } | Event::SessionsRevoked { .. } | Event::Forbidden { .. } | Event::ConfigReloaded { .. } => {}
    }
}
