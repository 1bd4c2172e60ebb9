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

    /// True when `name` (any letter case, `_` or `-`) is an identity header clients may not send.
    pub fn is_stripped(&self, name: &str) -> bool {
        self.strip.iter().any(|s| same_name(name, s))
    }

    /// Sets the identity headers for a signed-in user as (name, value) pairs, in `inject`'s order.
    pub fn values<'a>(&'a self, s: &'a Session) -> impl Iterator<Item = (&'a HeaderName, &'a http::HeaderValue)> {
        let account = self.account.iter().chain(self.user.iter()).map(|n| (n, &s.account_header));
        account.chain(self.network.iter().zip(s.network_header.iter()))
    }

    /// Removes every identity header the client sent, however spelled and however often.
    pub fn strip(&self, h: &mut HeaderMap) {
        let mut found: Vec<HeaderName> = Vec::new();
        for k in h.keys() {
            if self.is_stripped(k.as_str()) {
                found.push(k.clone());
            }
        }
        for k in found {
            h.remove(k);
        }
    }

    /// Sets the identity headers for a signed-in user (after `strip`).
    pub fn inject(&self, h: &mut HeaderMap, s: &Session) {
        for (n, v) in self.values(s) {
            h.insert(n.clone(), v.clone());
        }
    }

    /// Sets the identity headers on a forward-auth response.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.account.iter().chain(self.network.iter()).chain(self.user.iter())
    }
}

/// True for the gateway's own cookies (the session cookie, pending logins).
pub fn is_own_cookie(name: &str, cookie_name: &str) -> bool {
    name == cookie_name || name.strip_prefix(cookie_name).is_some_and(|r| r.starts_with("_login_"))
}

/// The cookie pairs of `pairs` that are not the gateway's own, joined as a Cookie header value.
pub fn foreign_cookies<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, cookie_name: &str) -> String {
    let mut kept = String::new();
    for (n, v) in pairs.filter(|(n, _)| !is_own_cookie(n, cookie_name)) {
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(n);
        kept.push('=');
        kept.push_str(v);
    }
    kept
}

/// Removes the gateway's own cookies (the session cookie, pending logins) from the Cookie header.
pub fn strip_own_cookies(h: &mut HeaderMap, cookie_name: &str) {
    if !crate::session::cookie::cookies(h).any(|(n, _)| is_own_cookie(n, cookie_name)) {
        return;
    }
    let kept = foreign_cookies(crate::session::cookie::cookies(h), cookie_name);
    h.remove(http::header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = http::HeaderValue::from_str(&kept) {
            h.insert(http::header::COOKIE, v);
        }
    }
}
