//! Property test of the fast path's request planner: whatever head a client sends, planning never
//! panics, and a head the fast path takes becomes an upstream head that parses whole and carries
//! none of the client's hop-by-hop, framing, forwarding-spoof or identity headers, and none of
//! the gateway's cookies.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Header names the fast path may take (and must clean up): identity spoofs in odd spellings,
/// hop-by-hop it strips, forwarding headers, cookies, ordinary ones.
const TAME_NAMES: &[&str] = &[
    "Host", "Authorization", "X-Xumm-Account", "x_xumm_account", "X-XUMM-NETWORK", "X_Forwarded_User", "X-Auth-Request-User",
    "Keep-Alive", "TE", "Trailer", "Proxy-Authorization", "X-Forwarded-For", "X-Forwarded-Proto",
    "X-Forwarded-Host", "Via", "Cookie", "Accept", "Connection",
];
/// More names: framing and upgrade headers (the general path's), and other spellings.
const WILD_NAMES: &[&str] =
    &["host", "cookie", "Proxy-Connection", "Upgrade", "Transfer-Encoding", "Content-Length", "Expect", "X-Requested-With", "Origin"];
/// Header values; `{S}` stands for a valid sealed session cookie value.
const TAME_VALUES: &[&str] = &[
    "close", "keep-alive", "_xumm_gate={S}", "theme=dark; _xumm_gate={S}; b=2", "_xumm_gate=garbage",
    "_xumm_gate_login_abc=1; x=y", "a=1", "rEvil", "caf\u{e9}=\u{2615}; _xumm_gate={S}; \u{fc}=1", "Bearer abc.def.ghi",
];
const WILD_VALUES: &[&str] = &[
    "Keep-Alive, Upgrade", "keep-alive, close", "text/html", "application/json", "_xumm_gate={S}; _xumm_gate={S}", "5",
    "chunked", "100-continue", "websocket", "10.0.0.9",
];

fn pick(lists: &[&[&'static str]]) -> impl Strategy<Value = String> {
    prop::sample::select(lists.concat()).prop_map(String::from)
}

/// Any header name a client might send.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![6 => pick(&[TAME_NAMES, WILD_NAMES]), 3 => "[A-Za-z0-9_-]{1,12}", 1 => "[ -~]{0,6}"]
}

/// Any header value, control bytes included.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![6 => pick(&[TAME_VALUES, WILD_VALUES]), 3 => "[ -~]{0,24}", 1 => "[\\x00-\\x1f\\x7f-\\xff]{0,3}"]
}

/// Headers the fast path may take, with printable values.
fn tame() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![3 => pick(&[TAME_NAMES]), 1 => "[A-Za-z0-9-]{1,12}"];
    let value = prop_oneof![2 => pick(&[TAME_VALUES]), 1 => "[!-~][ -~]{0,20}"];
    (name, value)
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(vec![
            "/", "/public/x", "/admin", "/mainnet/y", "/public/../admin", "//admin", "/public%2Fadmin", "/a?b=1#f",
            "*", "http://h.example/x", "/a b", "/%zz", "/.xumm/userinfo", "/p?q=%0d%0a",
            "/public/..;/admin", "/public;x=1/y", "/admin.", "/admin./x", "/public/%252e%252e/admin", "/admin%20",
        ])
        .prop_map(String::from),
        1 => "/[a-zA-Z0-9/._%?=&~-]{0,24}",
        2 => "/(public/|admin/|mainnet/)?[a-z0-9]{0,8}(\\?[a-z=&]{0,8})?",
    ]
}

#[test]
fn any_request_head_plans_safely() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Nothing listens at the upstream or the issuer: planning touches neither.
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let running = rt.block_on(gateway(&auth_config(upstream, "http://127.0.0.1:1", "", "")));
    let gw = running.gateway.clone();
    let auth = gw.admission.auth.as_ref().unwrap();
    assert_eq!(auth.cookie_name, "_xumm_gate", "the strategies spell the default cookie name");
    let id = xumm_gate::session::new_id();
    let account = xumm_gate::account::Account::parse(ACCOUNT).unwrap();
    let session = xumm_gate::session::Session::new(account, Some("MAINNET".into()), None, xumm_gate::session::Source::Session, xumm_gate::session::now() + 3600);
    rt.block_on(xumm_gate::session::SessionStore::put(&auth.store, id.clone(), Arc::new(session))).unwrap();
    let sealed = auth.sealer.seal(&auth.cookie_name, &id);

    let head = (
        prop::sample::select(vec!["GET", "GET", "GET", "HEAD", "POST", "get", "OPTIONS"]),
        target(),
        prop::sample::select(vec!["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"]),
        prop_oneof![3 => prop::collection::vec(tame(), 0..8), 1 => prop::collection::vec((name(), value()), 0..8)],
        any::<Option<prop::sample::Index>>(), // where a plain session cookie goes, if anywhere
    );
    let mut runner = TestRunner::new(Config { cases: 4000, failure_persistence: None, ..Config::default() });
    let taken = [std::cell::Cell::new(0usize), std::cell::Cell::new(0)]; // [public, signed in]
    runner
        .run(&head, |(method, target, version, mut headers, cookie_at)| {
            if let Some(i) = cookie_at {
                headers.insert(i.index(headers.len() + 1), ("Cookie".into(), "_xumm_gate={S}".into()));
            }
            let mut raw = format!("{method} {target} {version}\r\n").into_bytes();
            let mut sent_session = false;
            for (n, v) in &headers {
                sent_session |= n.eq_ignore_ascii_case("cookie") && v.contains("_xumm_gate={S}");
                raw.extend_from_slice(format!("{n}: {}\r\n", v.replace("{S}", &sealed)).as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            let mut out = Vec::new();
            let Some(len) = xumm_gate::fast::plan_head(&gw, &raw, &mut out) else { return Ok(()) };
            let shown = String::from_utf8_lossy(&out).into_owned();
            prop_assert_eq!(len, out.len());
            let mut slots = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut slots);
            prop_assert_eq!(req.parse(&out), Ok(httparse::Status::Complete(out.len())), "{}", shown);
            prop_assert!(matches!(req.method, Some("GET" | "HEAD")), "{}", shown);
            prop_assert_eq!(req.version, Some(1));
            prop_assert_eq!(req.path, Some(target.as_str()), "the target passes through unchanged");

            let norm = |n: &str| n.to_ascii_lowercase().replace('_', "-");
            let count = |n: &str| req.headers.iter().filter(|h| norm(h.name) == n).count();
            for gone in ["connection", "keep-alive", "te", "trailer", "upgrade", "transfer-encoding", "content-length", "expect"] {
                prop_assert_eq!(count(gone), 0, "{} passed: {}", gone, shown);
            }
            prop_assert!(req.headers.iter().all(|h| !norm(h.name).starts_with("proxy-")), "{}", shown);
            for one in ["host", "x-forwarded-for", "x-forwarded-proto"] {
                prop_assert_eq!(count(one), 1, "{}: {}", one, shown);
            }
            let xff = req.headers.iter().find(|h| norm(h.name) == "x-forwarded-for").unwrap();
            prop_assert_eq!(xff.value, b"192.0.2.1", "an untrusted peer's X-Forwarded-For is replaced");

            // Identity headers: only the gateway's, once each, and only for a real session.
            let mut identity = 0;
            for n in ["x-xumm-account", "x-forwarded-user", "x-auth-request-user", "x-xumm-network"] {
                for h in req.headers.iter().filter(|h| norm(h.name) == n) {
                    identity += 1;
                    let want: &[u8] = if n == "x-xumm-network" { b"MAINNET" } else { ACCOUNT.as_bytes() };
                    prop_assert_eq!(h.value, want, "{}", shown);
                }
                prop_assert!(count(n) <= 1, "{}", shown);
            }
            prop_assert!(identity == 0 || sent_session, "identity without a session: {}", shown);
            for h in req.headers.iter().filter(|h| norm(h.name) == "cookie") {
                let v = String::from_utf8_lossy(h.value);
                prop_assert!(!v.contains("_xumm_gate"), "the gateway's cookie went upstream: {}", shown);
            }
            prop_assert!(identity == 0 || count("authorization") == 0, "a credential went up beside the identity: {}", shown);
            let path = target.split('?').next().unwrap_or_default();
            prop_assert!(xumm_gate::path::strict_check(path, false).is_ok(), "strict path mode bypassed: {}", shown);
            let t = &taken[usize::from(identity > 0)];
            t.set(t.get() + 1);
            Ok(())
        })
        .unwrap();
    // The strategies must actually reach both kinds of fast-path request.
    let taken = taken.map(|t| t.get());
    assert!(taken[0] > 50 && taken[1] > 100, "fast path taken (public, signed in): {taken:?}");
    drop(gw);
    rt.block_on(running.shutdown());
}
