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
use crate::admission::{Verdict, Wait};
use crate::error::Accepts;
use crate::metrics::RouteMetrics;
use crate::proxy::Upstream;
use crate::request_id::RequestId;
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
    /// What error bodies the client reads (as the general path negotiates them).
    pub accepts: Accepts,
    /// The request target, checked as the general path's URI parser checks it.
    pub target: PathAndQuery,
    pub route: Arc<RouteMetrics>,
    pub request_id: RequestId,
    /// With tracing on: the request's span and its upstream step's.
    pub trace: Option<(crate::telemetry::Traced, crate::telemetry::Child)>,
}

pub enum Planned<'g> {
    /// The head is not complete yet.
    Partial,
    /// Not the fast path's request: the general path answers it.
    Handover,
    /// A session cookie whose session is not in this process (the Redis store's L1): the
    /// connection task fetches it (awaiting the store) and plans again, so one L1 refresh does
    /// not move a keep-alive connection off the fast path for good.
    Lookup(Arc<str>),
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
    /// Replaced by the request's id (a trusted proxy's, or one made here).
    RequestId,
    /// Replaced by the gateway's own when it traces.
    TraceParent,
    /// Kept only beside a trusted proxy's own trace (it belongs to that trace), else dropped
    /// when the gateway traces.
    TraceState,
    /// Never forwarded for a signed-in request (the upstream gets identity headers instead).
    Authorization,
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
        13 if is("authorization") => Name::Authorization,
        12 if is("x-request-id") => Name::RequestId,
        11 if is("traceparent") => Name::TraceParent,
        10 if is("tracestate") => Name::TraceState,
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
    let mut lookup = None;
    match take(gw, &req, &target, peer, out, &mut lookup) {
        Some((up, method, close, accepts, route, request_id, trace)) => Planned::Ready(Plan { head_len, up, method, close, accepts, target, route, request_id, trace }),
        None => lookup.map_or(Planned::Handover, Planned::Lookup),
    }
}

type Taken<'g> = (&'g Upstream, Method, bool, Accepts, Arc<RouteMetrics>, RequestId, Option<(crate::telemetry::Traced, crate::telemetry::Child)>);

/// The fast path's decision on a parsed request, and the upstream head when it takes it. A
/// session that only the shared store may hold is named in `lookup`.
fn take<'g>(gw: &'g Gateway, req: &httparse::Request<'_, '_>, target: &PathAndQuery, peer: &Peer, out: &mut Vec<u8>, lookup: &mut Option<Arc<str>>) -> Option<Taken<'g>> {
    // CORS answers vary by Origin and decorate every response: the general path's work.
    if req.version != Some(1) || req.headers.len() > gw.server.max_headers || gw.endpoints.cors.enabled() {
        return None;
    }
    let method = match req.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    let path = target.path();
    // Strict path mode's refusals (and a route's opt-out of them) are the general path's.
    if !target.as_str().starts_with('/') || !crate::path::is_normal(path) || !crate::path::strict_ok_normal(path) || crate::path::has_prefix(path, &gw.server.prefix) {
        return None;
    }
    let scan = scan(gw, req.headers)?;
    // The one admission decision; the fast path relays what passes and hands the rest over
    // (the general path renders the same decision), or fetches a session from the shared store
    // first.
    let host = scan.host.and_then(|h| std::str::from_utf8(h).ok());
    // (Tracing on: the decision's start, for its span, recorded once the request is taken.)
    let decided_from = crate::telemetry::enabled().then(std::time::SystemTime::now);
    let admitted = match gw.admission.admit_now(&crate::policy::Target { path, method: method.as_str(), host }, target.query(), req.headers) {
        Ok(a) => a,
        Err(Wait::Store(id)) => {
            *lookup = Some(id);
            return None;
        }
        Err(Wait::Token | Wait::Ledger) => return None,
    };
    let Verdict::Pass { who, upstream: Some(up), granted } = admitted.verdict else { return None };
    if !up.is_plain_http() {
        return None;
    }
    let id = RequestId::of(peer.trusted, scan.request_id);
    let route = admitted.decision.route.map(|r| r.metrics.clone()).unwrap_or_else(|| gw.admission.default_route.clone());
    let trace = decided_from.and_then(|at| trace(&scan, peer, &method, &id, &route.label, at));
    let sampled_tp = trace.as_ref().and_then(|(_, up)| up.traceparent());
    let traceparent = sampled_tp.as_ref().map(String::as_bytes).or_else(|| trace.as_ref().and_then(|(t, _)| t.unsampled_traceparent()));
    let tracestate_kept = trace.as_ref().is_some_and(|(t, _)| t.keeps_tracestate());
    write_head(gw, out, &method, target, up, req.headers, &scan, peer, who.as_deref().map(|s| (s, &granted)), &id, traceparent, tracestate_kept);
    route.decided(crate::metrics::Outcome::Allowed);
    Some((up, method, scan.close, scan.accepts, route, id, trace))
}

/// The spans of a request the fast path takes: the request, its admission (from `at` to now)
/// and the upstream step, whose context the upstream gets.
fn trace(sc: &Scan<'_>, peer: &Peer, method: &Method, id: &RequestId, route: &str, at: std::time::SystemTime) -> Option<(crate::telemetry::Traced, crate::telemetry::Child)> {
    use opentelemetry::trace::SpanKind;
    fn text(v: Option<&[u8]>) -> Option<&str> {
        v.and_then(|v| std::str::from_utf8(v).ok())
    }
    let parent = crate::telemetry::Parent { traceparent: text(sc.traceparent), tracestate: text(sc.tracestate) };
    let traced = crate::telemetry::begin(peer.trusted, parent, method.as_str(), id, at)?;
    if !traced.sampled() {
        return Some((traced, crate::telemetry::Child::none()));
    }
    crate::telemetry::route_of(&traced, route);
    drop(traced.child("admission", SpanKind::Internal, at));
    let up = traced.child("upstream", SpanKind::Client, std::time::SystemTime::now());
    Some((traced, up))
}

/// What one pass over the request headers found.
struct Scan<'b> {
    kinds: [Name; MAX_HEADERS],
    /// The client asked to close the connection.
    close: bool,
    /// What error bodies the client reads.
    accepts: Accepts,
    host: Option<&'b [u8]>,
    xff: Option<&'b [u8]>,
    request_id: Option<&'b [u8]>,
    traceparent: Option<&'b [u8]>,
    tracestate: Option<&'b [u8]>,
    has_xfp: bool,
    has_xfh: bool,
    /// Bit i: header i is a Cookie header carrying one of the gateway's own cookies.
    own: u128,
    /// Bit i: header i is a Cookie header carrying someone else's cookie too.
    foreign: u128,
}

/// One pass over the headers; None when one of them is the general path's.
fn scan<'b>(gw: &Gateway, headers: &[httparse::Header<'b>]) -> Option<Scan<'b>> {
    let mut sc = Scan { kinds: [Name::Other; MAX_HEADERS], close: false, accepts: Accepts::Other, host: None, xff: None, request_id: None, traceparent: None, tracestate: None, has_xfp: false, has_xfh: false, own: 0, foreign: 0 };
    for (i, h) in headers.iter().enumerate() {
        sc.kinds[i] = classify(h.name);
        match sc.kinds[i] {
            Name::General => return None,
            Name::Connection => {
                for t in crate::proxy::connection_tokens(std::str::from_utf8(h.value).ok()?) {
                    if t.eq_ignore_ascii_case("close") {
                        sc.close = true;
                    } else if !t.eq_ignore_ascii_case("keep-alive") {
                        return None; // names a header to drop: the general path's
                    }
                }
            }
            Name::Accept => {
                // Several Accept headers: JSON anywhere wins, then HTML.
                match Accepts::of(std::str::from_utf8(h.value).unwrap_or_default()) {
                    Accepts::Json => sc.accepts = Accepts::Json,
                    Accepts::Html if sc.accepts == Accepts::Other => sc.accepts = Accepts::Html,
                    _ => {}
                }
            }
            Name::Host if sc.host.is_none() => sc.host = Some(h.value),
            Name::ForwardedFor if sc.xff.is_none() => sc.xff = Some(h.value),
            Name::RequestId if sc.request_id.is_none() => sc.request_id = Some(h.value),
            Name::TraceParent if sc.traceparent.is_none() => sc.traceparent = Some(h.value),
            Name::TraceState if sc.tracestate.is_none() => sc.tracestate = Some(h.value),
            Name::ForwardedProto => sc.has_xfp = true,
            Name::ForwardedHost => sc.has_xfh = true,
            Name::Cookie => {
                let Some(auth) = &gw.admission.auth else { continue };
                for (n, _) in crate::session::cookie::pairs(h.value) {
                    if crate::identity::is_own_cookie(n, &auth.cookie_name) {
                        sc.own |= 1 << i;
                    } else {
                        sc.foreign |= 1 << i;
                    }
                }
            }
            _ => {}
        }
    }
    Some(sc)
}

/// Writes the upstream's request head: the request line, the client's headers without
/// hop-by-hop, identity or (untrusted) forwarding headers and without the gateway's cookies,
/// then X-Forwarded-*, Via and the identity headers, as the hyper path sets them.
#[allow(clippy::too_many_arguments)]
fn write_head(
    gw: &Gateway,
    out: &mut Vec<u8>,
    method: &Method,
    target: &PathAndQuery,
    up: &Upstream,
    headers: &[httparse::Header<'_>],
    sc: &Scan<'_>,
    peer: &Peer,
    session: Option<(&Session, &crate::admission::Granted)>,
    id: &RequestId,
    traceparent: Option<&[u8]>,
    tracestate_kept: bool,
) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    if up.passes_path_through() {
        out.extend_from_slice(target.as_str().as_bytes());
    } else {
        up.path_pieces(target.path()).iter().for_each(|p| out.extend_from_slice(p.as_bytes()));
        if let Some(q) = target.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    line(out, b"host", up.host.as_bytes());
    for (i, h) in headers.iter().enumerate() {
        let kind = sc.kinds[i];
        if matches!(kind, Name::Host | Name::Hop | Name::Connection | Name::ForwardedFor | Name::RequestId) || gw.admission.identity.is_stripped(h.name) {
            continue;
        }
        if matches!(kind, Name::ForwardedProto | Name::ForwardedHost) && !peer.trusted {
            continue;
        }
        // The gateway's own trace context replaces the client's.
        if traceparent.is_some() && (kind == Name::TraceParent || (kind == Name::TraceState && !tracestate_kept)) {
            continue;
        }
        if kind == Name::Authorization && session.is_some() {
            continue; // as on the general path: no credential goes up beside the identity
        }
        if let (Name::Cookie, Some(auth), true) = (kind, &gw.admission.auth, sc.own & (1 << i) != 0) {
            if sc.foreign & (1 << i) == 0 {
                continue; // only the gateway's cookies: the header goes
            }
            let kept = crate::identity::foreign_cookies(crate::session::cookie::pairs(h.value), &auth.cookie_name);
            if !kept.is_empty() {
                line(out, b"cookie", &kept);
            }
            continue;
        }
        line(out, h.name.as_bytes(), h.value);
    }
    // X-Forwarded-*: a trusted peer's values are kept (and appended to); anyone else's replaced.
    out.extend_from_slice(b"x-forwarded-for: ");
    crate::proxy::forwarded_for(peer.trusted, sc.xff, peer.ip.as_bytes()).iter().for_each(|p| out.extend_from_slice(p));
    out.extend_from_slice(b"\r\n");
    if crate::proxy::sets_own(peer.trusted, sc.has_xfp) {
        line(out, b"x-forwarded-proto", gw.proxy.proto.as_bytes());
    }
    if let (true, Some(h)) = (crate::proxy::sets_own(peer.trusted, sc.has_xfh), sc.host) {
        line(out, b"x-forwarded-host", h);
    }
    line(out, b"via", b"1.1 xumm-gate");
    line(out, b"x-request-id", id.as_bytes());
    if let Some(tp) = traceparent {
        line(out, b"traceparent", tp);
    }
    if let Some((s, granted)) = session {
        gw.admission.identity_for_upstream(s, up, granted, |n, v| line(out, n.as_str().as_bytes(), v.as_bytes()));
    }
    out.extend_from_slice(b"\r\n");
}
