//! The entry points render one admission decision: for generated requests (methods, paths with
//! normalization tricks, public / protected / allow-listed routes, session cookies valid, of
//! another account, tampered, ended or absent, Bearer tokens valid, invalid or absent, Accept and
//! Sec-Fetch-Mode variants, spoofed identity and forwarding headers, from trusted and untrusted
//! peers, host and method rules, deny rules), the fast path, the general path and forward auth reach the same verdict, and the
//! upstream receives the same head from both proxy paths; over HTTP/2 the same request gets the
//! same answer too.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The upstream answers with the head it received (and a mixed-case header, which the fast path
/// relays as sent and hyper writes in lower case: that shows which path served).
fn echo(head: &str) -> (Vec<u8>, bool) {
    let mut out = format!("HTTP/1.1 200 OK\r\nX-Case: Mixed\r\nContent-Length: {}\r\n\r\n", head.len()).into_bytes();
    out.extend_from_slice(head.as_bytes());
    (out, false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Passed; the upstream's head as (lower-case name, value) pairs, sorted, and the request line.
    Pass(String, Vec<(String, String)>),
    Challenge,
    Forbidden,
    BadPath,
    InvalidToken,
    Other(u16, String),
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(raw: &str) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_string(), v.trim().to_string())).collect();
        Answer { status, headers, body: body.to_string() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the fast path served it (it relays the upstream's header names as sent).
    fn fast(&self) -> bool {
        self.headers.iter().any(|(n, _)| n == "X-Case")
    }

    /// The verdict a proxied answer shows.
    fn proxied(&self) -> Verdict {
        let error = serde_json::from_str::<serde_json::Value>(&self.body).ok().and_then(|v| v["error"].as_str().map(String::from)).unwrap_or_default();
        match self.status {
            200 => {
                let mut lines = self.body.lines();
                let request_line = lines.next().unwrap_or_default().to_string();
                let mut head: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())).collect();
                // Every request has its own id: the paths agree when each sends one, of its form.
                for (n, v) in head.iter_mut().filter(|(n, _)| n == "x-request-id") {
                    assert!(v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()), "{n}: {v}");
                    *v = "<id>".into();
                }
                head.sort();
                Verdict::Pass(request_line, head)
            }
            302 if self.header("location").is_some_and(|l| l.contains("/.xumm/start")) => Verdict::Challenge,
            // (HEAD answers have no body: the challenge header tells them apart.)
            401 if self.header("www-authenticate") == Some("Bearer") => Verdict::Challenge,
            401 if error == "invalid_token" || self.header("www-authenticate").is_some_and(|w| w.contains("invalid_token")) => Verdict::InvalidToken,
            403 => Verdict::Forbidden,
            400 => Verdict::BadPath,
            s => Verdict::Other(s, self.body.chars().take(120).collect()),
        }
    }

    /// The verdict a forward-auth answer shows (no head: forward auth passes none).
    fn forward_auth(&self) -> Verdict {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        let error = v["error"].as_str().unwrap_or_default();
        match (self.status, error) {
            (200, _) => Verdict::Pass(String::new(), vec![]),
            (302 | 303, _) => Verdict::Challenge,
            (401, "unauthorized") if v["reason"] == "malformed original URI" => Verdict::BadPath,
            (401, "unauthorized") => Verdict::Challenge,
            (401, "invalid_token") => Verdict::InvalidToken,
            (403, "bad_path") => Verdict::BadPath,
            (403, "forbidden" | "denied") => Verdict::Forbidden,
            (s, _) => Verdict::Other(s, self.body.chars().take(120).collect()),
        }
    }
}

async fn send(addr: SocketAddr, head: String) -> Answer {
    Answer::parse(&raw(addr, head.as_bytes(), Duration::from_secs(5)).await)
}

type H2Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, TestBody>;

async fn send_h2(client: &H2Client, req: http::Request<TestBody>) -> Answer {
    let resp = client.request(req).await.expect("an HTTP/2 answer");
    let status = resp.status().as_u16();
    let headers = resp.headers().iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|c| c.to_bytes()).unwrap_or_default();
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

const TARGETS: &[&str] = &[
    "/", "/x", "/private/a", "/public/x", "/public", "/publicity", "/PUBLIC/x", "/Public/x", "/admin", "/admin/x", "/ADMIN/x", "/mainnet/y", "/members/x", "/MEMBERS",
    "/public/../admin", "/public/./x", "//admin", "/public//x", "/%70ublic/x", "/public%2Fadmin", "/public/%2e%2e/admin", "/public/..;/admin",
    "/public;x=1/y", "/admin.", "/admin./x", "/public/%252e%252e/admin", "/admin%20", "/a?b=1", "/public/x?rd=/admin", "/x/../../admin", "/X/y", "/x",
];

#[test]
fn the_fast_path_the_general_path_and_forward_auth_agree() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (gateways, cookies, tokens) = rt.block_on(async {
        let up = raw_upstream(echo).await;
        let idp = idp().await;
        // A route whose accounts come from a file (only ACCOUNT, one of the cookies' accounts).
        let members = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(members.path(), format!("# members\n{ACCOUNT}\n")).unwrap();
        let route = format!(
            r#"
[[route]]
path = "/members"
allow_accounts_file = "{}"

[[route]]
path = "/x"
methods = ["POST"]
deny = true

[[route]]
path = "/x"
hosts = ["*.example.com"]
allow_sources = ["bearer"]

[[route]]
path = "/public"
hosts = ["127.0.0.1"]
methods = ["GET"]
deny = true
"#,
            members.path().display()
        );
        let trusted = ready_gateway(&auth_config(up, &idp.issuer, "", &route)).await;
        let untrusted = ready_gateway(&auth_config(up, &idp.issuer, "trusted_proxies = [\"10.0.0.0/8\"]", &route)).await;
        std::mem::forget(members); // read again only on change, but kept for the whole run
        let mut cookies = Vec::new();
        for gw in [&trusted, &untrusted] {
            let mine = login(gw.addr, ACCOUNT, "MAINNET").await;
            let other = login(gw.addr, OTHER_ACCOUNT, "TESTNET").await;
            let ended = login(gw.addr, ACCOUNT, "MAINNET").await;
            let out = get_with(gw.addr, "/.xumm/sign_out", &[("cookie", &format!("{}={}", ended.0, ended.1))]).await;
            assert_eq!(out.status, http::StatusCode::OK);
            let mut tampered = mine.1.clone().into_bytes();
            let last = tampered.len() - 2;
            tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
            cookies.push([
                format!("_xumm_gate={}", mine.1),
                format!("_xumm_gate={}", other.1),
                format!("_xumm_gate={}", ended.1),
                format!("_xumm_gate={}", String::from_utf8(tampered).unwrap()),
                "_xumm_gate=junk".to_string(),
            ]);
        }
        let tokens = [idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({})), idp.issue_token(CLIENT_ID, OTHER_ACCOUNT, "TESTNET", serde_json::json!({}))];
        ((trusted, untrusted, idp), cookies, tokens)
    });
    let addrs = [gateways.0.addr, gateways.1.addr];
    let h2c: H2Client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());

    let case = (
        0..2usize,                                                            // trusted peer, or not
        prop::sample::select(vec!["GET", "GET", "GET", "HEAD", "POST"]),
        any::<bool>(),                                                        // Host: the gateway's address, or a name
        prop::sample::select(TARGETS.to_vec()),
        prop::option::of(0..5usize),                                          // which session cookie
        any::<bool>(),                                                        // a foreign cookie too
        prop::option::of(0..3usize),                                          // Bearer: mine, other's, invalid
        prop::sample::select(vec!["", "text/html", "application/json", "*/*", "text/html,application/json"]),
        prop::sample::select(vec!["", "navigate", "cors"]),
        prop::collection::vec(prop::sample::select(vec!["X-Xumm-Account: rEvil", "x_xumm_account: rEvil", "X-Forwarded-For: 10.9.9.9", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: gopher", "X-Forwarded-User: rEvil", "Via: 1.0 elsewhere"]), 0..3),
    );
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    let served = [std::cell::Cell::new(0usize), std::cell::Cell::new(0)]; // passes: fast, general only
    runner
        .run(&case, |(g, method, by_name, target, cookie, foreign, bearer, accept, fetch_mode, spoofs)| {
            let mut headers = String::new();
            let mut jar: Vec<String> = cookie.map(|c| cookies[g][c].clone()).into_iter().collect();
            if foreign {
                jar.insert(0, "theme=dark".into());
            }
            if !jar.is_empty() {
                headers += &format!("Cookie: {}\r\n", jar.join("; "));
            }
            if let Some(b) = bearer {
                let token = if b < 2 { tokens[b].as_str() } else { "abc.def.ghi" };
                headers += &format!("Authorization: Bearer {token}\r\n");
            }
            if !accept.is_empty() {
                headers += &format!("Accept: {accept}\r\n");
            }
            if !fetch_mode.is_empty() {
                headers += &format!("Sec-Fetch-Mode: {fetch_mode}\r\n");
            }
            for s in &spoofs {
                headers += &format!("{s}\r\n");
            }
            let host = if by_name { "app.example.com".to_string() } else { addrs[g].to_string() };
            let head = |connection: &str| format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}{connection}\r\n");
            // The same request, once as the fast path may take it, and once with a hop-by-hop
            // option that only the general path handles (it strips it before the upstream).
            let (fast, general) = rt.block_on(async {
                (send(addrs[g], head("Connection: close\r\n")).await, send(addrs[g], head("Connection: close, x-general\r\nX-General: 1\r\n")).await)
            });
            let shown = head("");
            prop_assert!(!general.fast(), "the general path's request went fast: {}", shown);
            let (f, v) = (fast.proxied(), general.proxied());
            prop_assert_eq!(&f, &v, "fast path and general path disagree on\n{}", shown);
            if matches!(f, Verdict::Pass(..)) {
                served[usize::from(!fast.fast())].set(served[usize::from(!fast.fast())].get() + 1);
            }
            // And over HTTP/2 (h2c), which only the general path serves: the same verdict, and
            // the same upstream head but for what the transport itself changes (the client's
            // Host is its :authority, so X-Forwarded-Host names the gateway's address; the
            // HTTP/2 client frames an empty POST with Content-Length: 0).
            // (Its :authority is the gateway's address, so only requests that named it compare.)
            if let Some(uri) = format!("http://{}{target}", addrs[g]).parse::<http::Uri>().ok().filter(|_| !by_name) {
                let mut b = http::Request::builder().method(method).uri(uri);
                for line in headers.lines() {
                    let (n, v) = line.split_once(": ").unwrap();
                    b = b.header(n, v);
                }
                let h2 = rt.block_on(send_h2(&h2c, b.body(full("")).unwrap()));
                let without_host = |v: &Verdict| match v {
                    Verdict::Pass(line, head) => Verdict::Pass(line.clone(), head.iter().filter(|(n, _)| n != "x-forwarded-host" && n != "content-length").cloned().collect()),
                    other => other.clone(),
                };
                prop_assert_eq!(without_host(&h2.proxied()), without_host(&v), "HTTP/2 and HTTP/1.1 disagree on\n{}", shown);
            }
            if g == 0 {
                // Forward auth for the same request, told by a trusted proxy what it was.
                let fa = format!(
                    "GET /.xumm/auth HTTP/1.1\r\nHost: gw\r\nX-Original-URI: {target}\r\nX-Forwarded-Method: {method}\r\nX-Forwarded-Host: {host}\r\n{headers}Connection: close\r\n\r\n"
                );
                let fa = rt.block_on(send(addrs[g], fa)).forward_auth();
                let same = match (&f, &fa) {
                    (Verdict::Pass(..), Verdict::Pass(..)) => true,
                    (a, b) => a == b,
                };
                prop_assert!(same, "proxy {:?} but forward auth {:?} for\n{}", f, fa, shown);
            }
            Ok(())
        })
        .unwrap();
    // Both proxy paths must actually have been compared. The cases are random (about 50 of the
    // 400 pass on the fast path); the bound only has to rule out "hardly ever", not be tight
    // (40 failed once in a few hundred runs).
    let served = served.map(|s| s.get());
    assert!(served[0] >= 20, "requests the fast path passed: {served:?}");
    rt.block_on(async {
        gateways.0.shutdown().await;
        gateways.1.shutdown().await;
    });
    drop(gateways.2);
}
