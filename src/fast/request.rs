//! Decides whether a parsed request head is the fast path's, and writes the head the upstream
//! gets. It must never accept a request whose meaning it does not fully own (a body, an upgrade,
//! an expectation, a Connection option, a path that is not normal, a visitor without a live
//! cookie session, CORS): those are handed to the general path, which answers them.

use std::mem::MaybeUninit;
use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method};

use super::header_line as line;
use crate::Gateway;
use crate::metrics::RouteMetrics;
use crate::proxy::Upstream;
use crate::session::Session;

/// Request heads with more headers than this go to the general path (which applies
/// `server.max_headers` and answers 431).
const MAX_HEADERS: usize = 128;

/// What the client connection knows about its peer, computed once per connection.
pub struct Peer {
    pub trusted: bool,
    /// The peer's address as an X-Forwarded-For element.
    pub ip: HeaderValue,
}

/// A request the fast path takes, its upstream head already written.
pub struct Plan<'g> {
    /// Length of the client's request head in the read buffer.
    pub head_len: usize,
    pub up: &'g Upstream,
    pub method: Method,
    /// The client asked to close the connection after this response.
    pub close: bool,
    /// The client accepts JSON (for error bodies).
    pub json: bool,
    /// The request target, checked as the general path's URI parser checks it.
    pub target: PathAndQuery,
    pub route: Arc<RouteMetrics>,
}

pub enum Planned<'g> {
    /// The head is not complete yet.
    Partial,
    /// Not the fast path's request: the general path answers it.
    Handover,
    Ready(Plan<'g>),
}

/// The headers the fast path treats specially, recognised in any letter case.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Host,
    Cookie,
    Accept,
    Connection,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
    /// Keep-Alive, Proxy-*, TE, Trailer: hop-by-hop, never forwarded.
    Hop,
    /// Content-Length, Transfer-Encoding, Upgrade, Expect: the general path's.
    General,
    Other,
}

fn classify(n: &str) -> Name {
    let is = |s: &str| n.eq_ignore_ascii_case(s);
    match n.len() {
        4 if is("host") => Name::Host,
        6 if is("cookie") => Name::Cookie,
        6 if is("accept") => Name::Accept,
        6 if is("expect") => Name::General,
        10 if is("connection") => Name::Connection,
        10 if is("keep-alive") => Name::Hop,
        2 if is("te") => Name::Hop,
        7 if is("trailer") => Name::Hop,
        7 if is("upgrade") => Name::General,
        14 if is("content-length") => Name::General,
        17 if is("transfer-encoding") => Name::General,
        15 if is("x-forwarded-for") => Name::ForwardedFor,
        16 if is("x-forwarded-host") => Name::ForwardedHost,
        17 if is("x-forwarded-proto") => Name::ForwardedProto,
        _ if n.len() > 6 && n[..6].eq_ignore_ascii_case("proxy-") => Name::Hop,
        _ => Name::Other,
    }
}

/// Parses the head at the start of `buf` and, when the request is the fast path's, writes the
/// upstream's request head into `out`.
pub fn plan<'g>(gw: &'g Gateway, buf: &[u8], peer: &Peer, out: &mut Vec<u8>) -> Planned<'g> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Planned::Partial,
        // Malformed, too many headers, or not HTTP/1 at all (the h2c preface): hyper's to answer.
        Err(_) => return Planned::Handover,
    };
    // The target as the general path's URI parser reads it; one it reads differently (a
    // fragment it drops, a character it refuses) is left to it.
    let Some(target) = req.path.and_then(|t| PathAndQuery::try_from(t).ok().filter(|pq| pq.as_str() == t)) else {
        return Planned::Handover;
    };
    match take(gw, &req, &target, peer, out) {
        Some((up, method, close, json, route)) => Planned::Ready(Plan { head_len, up, method, close, json, target, route }),
        None => Planned::Handover,
    }
}

type Taken<'g> = (&'g Upstream, Method, bool, bool, Arc<RouteMetrics>);

fn take<'g>(gw: &'g Gateway, req: &httparse::Request<'_, '_>, target: &PathAndQuery, peer: &Peer, out: &mut Vec<u8>) -> Option<Taken<'g>> {
    // CORS answers vary by Origin and decorate every response: the general path's work.
    if req.version != Some(1) || req.headers.len() > gw.server.max_headers || gw.cors.enabled() {
        return None;
    }
    let method = match req.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    let (path, query) = (target.path(), target.query());
    if !target.as_str().starts_with('/') || !crate::path::is_normal(path) || crate::path::has_prefix(path, &gw.server.prefix) {
        return None;
    }

    let decision = gw.routes.decide(path);
    let want_session = gw.auth.is_some() && !decision.public;

    // First pass: anything that needs the general path, the values used below, and the Cookie
    // headers read once: which carry the gateway's own cookies, and the session id.
    let mut kinds = [Name::Other; MAX_HEADERS];
    let (mut close, mut json, mut host, mut xff, mut has_xfp, mut has_xfh) = (false, false, None, None, false, false);
    let (mut own, mut sid) = (0u128, None);
    for (i, h) in req.headers.iter().enumerate() {
        kinds[i] = classify(h.name);
        match kinds[i] {
            Name::General => return None,
            Name::Connection => {
                for t in crate::proxy::connection_tokens(std::str::from_utf8(h.value).ok()?) {
                    if t.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if !t.eq_ignore_ascii_case("keep-alive") {
                        return None; // names a header to drop: the general path's
                    }
                }
            }
            Name::Accept => {
                let a = std::str::from_utf8(h.value).unwrap_or_default();
                json |= a.contains("application/json") || a.contains("+json");
            }
            Name::Host if host.is_none() => host = Some(h.value),
            Name::ForwardedFor if xff.is_none() => xff = Some(h.value),
            Name::ForwardedProto => has_xfp = true,
            Name::ForwardedHost => has_xfh = true,
            Name::Cookie => {
                let value = std::str::from_utf8(h.value).ok()?;
                let Some(auth) = &gw.auth else { continue };
                for (n, v) in crate::session::cookie::pairs(value) {
                    if crate::identity::is_own_cookie(n, &auth.cookie_name) {
                        own |= 1 << i;
                        // The first session cookie that opens, as `Auth::session_id` reads it.
                        if want_session && sid.is_none() && n == auth.cookie_name {
                            sid = auth.open_session_cookie(v);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    let session: Option<Arc<Session>> = match (&gw.auth, want_session) {
        (Some(auth), true) => {
            let s = auth.store.get_now(&sid?)?;
            if !crate::router::allowed(decision.route, &s) {
                return None;
            }
            Some(s)
        }
        (_, false) if decision.public => None,
        _ => return None, // no [provider]: protected routes stay closed (the general path says so)
    };
    let up = gw.proxy.select(path)?;
    if !up.is_plain_http() {
        return None;
    }
    let route = decision.route.map(|r| r.metrics.clone()).unwrap_or_else(|| gw.default_route.clone());

    // Second pass: the upstream's head.
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    if up.passes_path_through() {
        out.extend_from_slice(target.as_str().as_bytes());
    } else {
        up.path_pieces(path).iter().for_each(|p| out.extend_from_slice(p.as_bytes()));
        if let Some(q) = query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    line(out, b"host", up.host.as_bytes());
    for (i, h) in req.headers.iter().enumerate() {
        let kind = kinds[i];
        if matches!(kind, Name::Host | Name::Hop | Name::Connection | Name::ForwardedFor) || gw.identity.is_stripped(h.name) {
            continue;
        }
        if matches!(kind, Name::ForwardedProto | Name::ForwardedHost) && !peer.trusted {
            continue;
        }
        if let (Name::Cookie, Some(auth), true) = (kind, &gw.auth, own & (1 << i) != 0) {
            let value = std::str::from_utf8(h.value).unwrap_or_default();
            let kept = crate::identity::foreign_cookies(crate::session::cookie::pairs(value), &auth.cookie_name);
            if !kept.is_empty() {
                line(out, b"cookie", kept.as_bytes());
            }
            continue;
        }
        line(out, h.name.as_bytes(), h.value);
    }
    // X-Forwarded-*: a trusted peer's values are kept (and appended to); anyone else's replaced.
    out.extend_from_slice(b"x-forwarded-for: ");
    if let (true, Some(prev)) = (peer.trusted, xff.filter(|v| !v.is_empty())) {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer.ip.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !(peer.trusted && has_xfp) {
        line(out, b"x-forwarded-proto", gw.proxy.proto.as_bytes());
    }
    if let (false, Some(h)) = (peer.trusted && has_xfh, host) {
        line(out, b"x-forwarded-host", h);
    }
    line(out, b"via", b"1.1 xumm-gate");
    if let Some(s) = &session {
        for (n, v) in gw.identity.values(s) {
            line(out, n.as_str().as_bytes(), v.as_bytes());
        }
        if let (Some(a), Some(name)) = (&gw.asserter, &gw.identity.assertion) {
            if let Some(v) = a.header_for(s, &up.audience) {
                line(out, name.as_str().as_bytes(), v.as_bytes());
            }
        }
        if let (Some(app), Some(name), Some(auth)) = (&up.broker_app, &gw.identity.user_token, &gw.auth) {
            if let Some(v) = crate::xumm::handle::for_session(auth, s, app) {
                line(out, name.as_str().as_bytes(), v.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    Some((up, method, close, json, route))
}
