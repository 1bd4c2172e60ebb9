//! Identity headers for upstreams: strip every client-sent copy, then set the gateway's. It must
//! never let a client-supplied identity header through, in any letter case or `_` spelling, and
//! never put an unvalidated value into a header.

use http::header::{HeaderMap, HeaderName};

use crate::config::{ConfigError, HeadersConfig, Parsed};
use crate::session::Session;

pub struct IdentityHeaders {
    account: Option<HeaderName>,
    network: Option<HeaderName>,
    user: Vec<HeaderName>,
    /// Where the signed assertion goes (None: switched off).
    pub assertion: Option<HeaderName>,
    /// Where the broker's user-token handle goes (None: switched off).
    pub user_token: Option<HeaderName>,
    /// xApp sessions: the wallet's account access and theme.
    account_access: Option<HeaderName>,
    xapp_style: Option<HeaderName>,
    /// Where the verified client certificate's subject goes (None: switched off).
    pub client_subject: Option<HeaderName>,
    /// Names removed from every request, lowercase with '-' (compared treating '_' as '-').
    strip: Vec<String>,
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
    /// From checked `[headers]` (a name that skipped the check is an error here: dropping it
    /// from the strip list would let clients send that header through).
    pub fn new(cfg: &HeadersConfig) -> Result<IdentityHeaders, ConfigError> {
        let [account, network, user_token, assertion, account_access, xapp_style, client_subject] = cfg.singles().map(|(key, v)| v.checked(key).cloned());
        let (account, network, user_token, assertion, account_access, xapp_style, client_subject) =
            (account?, network?, user_token?, assertion?, account_access?, xapp_style?, client_subject?);
        let user = Parsed::all("headers.user", &cfg.user)?;
        let extra = Parsed::all("headers.strip", &cfg.strip)?;
        // Defaults are stripped even when renamed or switched off: an upstream may still read them.
        let defaults = HeadersConfig::default();
        let default_names = defaults.singles().into_iter().filter_map(|(_, v)| v.get()?.clone()).chain(defaults.user.iter().filter_map(|u| u.get().cloned()));
        let configured = [&account, &network, &user_token, &assertion, &account_access, &xapp_style, &client_subject].into_iter().flatten().chain(&user).chain(&extra).cloned();
        let mut strip: Vec<String> = configured.chain(default_names).map(|n| canonical(n.as_str())).collect();
        strip.sort();
        strip.dedup();
        Ok(IdentityHeaders { account, network, user, assertion, user_token, account_access, xapp_style, client_subject, strip })
    }

    /// Also removes `names` from every request (the headers route conditions fill).
    pub fn strip_also(&mut self, names: &[HeaderName]) {
        self.strip.extend(names.iter().map(|n| canonical(n.as_str())));
        self.strip.sort();
        self.strip.dedup();
    }

    /// True when `name` (any letter case, `_` or `-`) is an identity header clients may not send.
    pub fn is_stripped(&self, name: &str) -> bool {
        self.strip.iter().any(|s| same_name(name, s))
    }

    /// Sets the identity headers for a signed-in user as (name, value) pairs, in `inject`'s order.
    pub fn values<'a>(&'a self, s: &'a Session) -> impl Iterator<Item = (&'a HeaderName, &'a http::HeaderValue)> {
        let account = self.account.iter().chain(self.user.iter()).map(|n| (n, &s.account_header));
        let xapp = s.xapp.as_ref();
        let access = self.account_access.iter().zip(xapp.map(|x| &x.access_header));
        let style = self.xapp_style.iter().zip(xapp.and_then(|x| x.style_header.as_ref()));
        account.chain(self.network.iter().zip(s.network_header.iter())).chain(access).chain(style)
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
        self.account.iter().chain(self.network.iter()).chain(self.user.iter()).chain(self.account_access.iter()).chain(self.xapp_style.iter())
    }
}

/// True for the gateway's own cookies (the session cookie, pending logins), compared as bytes.
pub fn is_own_cookie(name: &[u8], cookie_name: &str) -> bool {
    let own = cookie_name.as_bytes();
    name == own || name.strip_prefix(own).is_some_and(|r| r.starts_with(b"_login_"))
}

/// The cookie pairs of `pairs` that are not the gateway's own, joined as a Cookie header value
/// (bytes as the client sent them).
pub fn foreign_cookies<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, cookie_name: &str) -> Vec<u8> {
    let mut kept = Vec::new();
    for (n, v) in pairs.filter(|(n, _)| !is_own_cookie(n, cookie_name)) {
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(n);
        kept.push(b'=');
        kept.extend_from_slice(v);
    }
    kept
}

/// Removes the gateway's own cookies (the session cookie, pending logins) from the Cookie
/// headers, whatever bytes the other pairs hold; the others are kept in one header.
pub fn strip_own_cookies(h: &mut HeaderMap, cookie_name: &str) {
    if !crate::session::cookie::cookies(h).any(|(n, _)| is_own_cookie(n, cookie_name)) {
        return;
    }
    let kept = foreign_cookies(crate::session::cookie::cookies(h), cookie_name);
    h.remove(http::header::COOKIE);
    if !kept.is_empty() {
        // Bytes of valid header values joined by "; ": a valid header value again.
        if let Ok(v) = http::HeaderValue::from_bytes(&kept) {
            h.insert(http::header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever bytes the other pairs hold (UTF-8, Latin-1, stray '=' or spaces), every one
        /// of the gateway's cookies is removed and the others stay, in order.
        #[test]
        fn own_cookies_go_whatever_bytes_the_others_hold(
            others in proptest::collection::vec(("[a-z][a-z0-9]{0,5}", proptest::collection::vec(proptest::prop_oneof![0x21u8..=0x3a, 0x3cu8..=0x7e, 0x80u8..=0xff], 0..8)), 0..5),
            own_at in proptest::collection::vec(0usize..6, 1..3),
        ) {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = others.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.clone())).collect();
            for (k, at) in own_at.iter().enumerate() {
                let name = if k == 0 { b"_gw".to_vec() } else { b"_gw_login_s".to_vec() };
                pairs.insert((*at).min(pairs.len()), (name, b"sealed".to_vec()));
            }
            let joined: Vec<u8> = pairs.iter().map(|(n, v)| [n.as_slice(), b"=", v.as_slice()].concat()).collect::<Vec<_>>().join(&b"; "[..]);
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, http::HeaderValue::from_bytes(&joined).unwrap());
            strip_own_cookies(&mut h, "_gw");
            let left: Vec<(Vec<u8>, Vec<u8>)> = crate::session::cookie::cookies(&h).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = others.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.trim_ascii().to_vec())).collect();
            proptest::prop_assert_eq!(left, want);
        }
    }
}
