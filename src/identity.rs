//! Identity headers for upstreams: strip every client-sent copy, then set the gateway's. It must
//! never let a client-supplied identity header through, in any letter case or `_` spelling, and
//! never put an unvalidated value into a header.

use http::header::{HeaderMap, HeaderName};

use crate::config::HeadersConfig;
use crate::session::Session;

pub struct IdentityHeaders {
    account: Option<HeaderName>,
    network: Option<HeaderName>,
    user: Vec<HeaderName>,
    /// Where the signed assertion goes (None: switched off).
    pub assertion: Option<HeaderName>,
    /// Where the broker's user-token handle goes (None: switched off).
    pub user_token: Option<HeaderName>,
    /// Names removed from every request, lowercase with '-' (compared treating '_' as '-').
    strip: Vec<String>,
}

fn name(v: &str) -> Option<HeaderName> {
    if v.is_empty() { None } else { HeaderName::from_bytes(v.as_bytes()).ok() }
}

fn canonical(v: &str) -> String {
    v.to_ascii_lowercase().replace('_', "-")
}

/// `a` equals `b` ignoring ASCII case and treating '_' as '-' (`b` is canonical already).
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let x = if x == b'_' { b'-' } else { x.to_ascii_lowercase() };
            x == y
        })
}

impl IdentityHeaders {
    pub fn new(cfg: &HeadersConfig) -> IdentityHeaders {
        let mut strip: Vec<String> = cfg.all_names().map(canonical).collect();
        // Defaults are stripped even when renamed or switched off: an upstream may still read them.
        strip.extend(HeadersConfig::default().all_names().map(canonical));
        strip.extend(cfg.strip.iter().map(|s| canonical(s)));
        strip.sort();
        strip.dedup();
        strip.retain(|s| !s.is_empty());
        IdentityHeaders {
            account: name(&cfg.account),
            network: name(&cfg.network),
            user: cfg.user.iter().filter_map(|u| name(u)).collect(),
            assertion: name(&cfg.assertion),
            user_token: name(&cfg.user_token),
            strip,
        }
    }

    /// Removes every identity header the client sent, however spelled and however often.
    pub fn strip(&self, h: &mut HeaderMap) {
        let mut found: Vec<HeaderName> = Vec::new();
        for k in h.keys() {
            if self.strip.iter().any(|s| same_name(k.as_str(), s)) {
                found.push(k.clone());
            }
        }
        for k in found {
            h.remove(k);
        }
    }

    /// Sets the identity headers for a signed-in user (after `strip`).
    pub fn inject(&self, h: &mut HeaderMap, s: &Session) {
        if let Some(n) = &self.account {
            h.insert(n.clone(), s.account_header.clone());
        }
        for n in &self.user {
            h.insert(n.clone(), s.account_header.clone());
        }
        if let (Some(n), Some(v)) = (&self.network, &s.network_header) {
            h.insert(n.clone(), v.clone());
        }
    }

    /// Sets the identity headers on a forward-auth response.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.account.iter().chain(self.network.iter()).chain(self.user.iter())
    }
}

/// Removes the gateway's own cookies (the session cookie, pending logins) from the Cookie header.
pub fn strip_own_cookies(h: &mut HeaderMap, cookie_name: &str) {
    let own = |n: &str| n == cookie_name || n.strip_prefix(cookie_name).is_some_and(|r| r.starts_with("_login_"));
    if !crate::session::cookie::cookies(h).any(|(n, _)| own(n)) {
        return;
    }
    let mut kept = String::new();
    for (n, v) in crate::session::cookie::cookies(h).filter(|(n, _)| !own(n)) {
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(n);
        kept.push('=');
        kept.push_str(v);
    }
    h.remove(http::header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = http::HeaderValue::from_str(&kept) {
            h.insert(http::header::COOKIE, v);
        }
    }
}
