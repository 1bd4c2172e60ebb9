//! Route conditions on what an account holds, against a rippled JSON-RPC stand-in
//! (tests/browser/ledger.mjs, its data built with xrpl.js): every condition true and false at its
//! boundary, the session's network, failover, fail-closed 503s, the hot path never asking the
//! ledger, one query for concurrent misses, background refresh, forward auth.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::js::LedgerNode;
use common::*;
use http::StatusCode;
use xumm_gate::demo::platform::DevPlatform;

const XUMM_KEY: &str = "aaaaaaaa-1111-4222-8333-444444444444";
const XUMM_SECRET: &str = "bbbbbbbb-5555-4666-8777-888888888888";

/// The routes of these tests, for the stand-in's accounts and codes.
fn routes(node: &LedgerNode) -> String {
    let issuer = node.account("issuer");
    let (solo, ctype, mpt) = (node.data["solo"].as_str().unwrap(), "KYC-Basic", node.data["mpt"].as_str().unwrap());
    let (nft_issuer, org) = (node.account("nft_issuer"), node.account("org"));
    format!(
        r#"
[[route]]
path = "/solo"
require = {{ trustline = {{ currency = "{solo}", issuer = "{issuer}", min_balance = "100", header = "X-Solo-Balance" }} }}

[[route]]
path = "/usd"
require = {{ trustline = {{ currency = "USD", issuer = "{issuer}", min_balance = "5" }} }}

[[route]]
path = "/nft"
require = {{ nft = {{ issuer = "{nft_issuer}", taxon = 7 }} }}

[[route]]
path = "/xrp"
require = {{ xrp_balance = {{ min = 23600000, spendable = true, header = "X-Xrp-Spendable" }} }}

[[route]]
path = "/xrp-more"
require = {{ xrp_balance = {{ min = 23600001, spendable = true }} }}

[[route]]
path = "/mpt"
require = {{ mpt = {{ issuance_id = "{mpt}", min = 500, header = "X-Mpt" }} }}

[[route]]
path = "/cred"
require = {{ credential = {{ issuer = "{issuer}", type = "{ctype}" }} }}

[[route]]
path = "/signers"
require = {{ signer_of = {{ account = "{org}" }} }}

[[route]]
path = "/kyc"
require = {{ kyc = true }}

[[route]]
path = "/two"
[route.require]
all = [
  {{ trustline = {{ currency = "{solo}", issuer = "{issuer}", min_balance = "100", header = "X-Solo-Balance" }} }},
  {{ trustline = {{ currency = "USD", issuer = "{issuer}" }} }},
]

[[route]]
path = "/either"
[route.require]
any = [ {{ nft = {{ issuer = "{nft_issuer}" }} }}, {{ trustline = {{ currency = "USD", issuer = "{issuer}", min_balance = "5" }} }} ]
"#
    )
}

struct Setup {
    gw: xumm_gate::Running,
    idp: xumm_gate::demo::idp::DevIdp,
    platform: DevPlatform,
    node: LedgerNode,
}

/// A gateway whose MAINNET ledger is a dead endpoint, then the stand-in; `ledger` adds keys to
/// `[ledger.MAINNET]`.
async fn setup(ledger: &str) -> Setup {
    setup_with(ledger, upstream().await).await
}

async fn setup_with(ledger: &str, up: SocketAddr) -> Setup {
    let node = LedgerNode::start();
    let idp = idp().await;
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), XUMM_KEY, XUMM_SECRET).await.unwrap();
    let dead = free_port();
    let more = format!(
        "{}\n[xumm]\napi_url = \"{}\"\napi_key = \"{XUMM_KEY}\"\napi_secret = \"{XUMM_SECRET}\"\n\n[ledger.MAINNET]\nurls = [\"http://127.0.0.1:{dead}/\", \"{}\"]\n{ledger}\n",
        routes(&node),
        platform.url,
        node.url
    );
    // (Many sign-ins from one address in these tests.)
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "sign_in_per_minute = 10000", &more)).await;
    Setup { gw, idp, platform, node }
}

async fn cookie(gw: SocketAddr, account: &str, network: &str) -> String {
    let (n, v) = login(gw, account, network).await;
    format!("{n}={v}")
}

async fn ask(gw: SocketAddr, path: &str, cookie: &str) -> Got {
    get_with(gw, path, &[("cookie", cookie), ("accept", "application/json")]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_condition_holds_or_fails_at_its_boundary() {
    let s = setup("").await;
    let gw = s.gw.addr;
    s.platform.approve_kyc(&s.node.account("exact"));
    // (account, path, passes, what the 403 says or the header the upstream gets)
    let cases: &[(&str, &str, bool, &str)] = &[
        ("rich", "/solo", true, "1000.5"),
        ("exact", "/solo", true, "100"),
        ("poor", "/solo", false, "holds 9999999999999999e-14"),
        ("frozen", "/solo", false, "frozen"),
        ("paged", "/solo", true, "1.5e3"),
        ("missing", "/solo", false, "no such trust line"),
        ("rich", "/usd", true, ""),
        ("exact", "/usd", false, "no such trust line"),
        ("nft_holder", "/nft", true, ""),
        ("rich", "/nft", false, "none held"),
        ("reserve", "/xrp", true, "23600000"),
        ("reserve", "/xrp-more", false, "has 23600000"),
        ("rich", "/xrp", false, "has 19000000"),
        ("missing", "/xrp", false, "has 0"),
        ("mpt_holder", "/mpt", true, "500"),
        ("mpt_locked", "/mpt", false, "locked"),
        ("rich", "/mpt", false, "none held"),
        ("cred_ok", "/cred", true, ""),
        ("cred_expired", "/cred", false, "expired"),
        ("cred_unaccepted", "/cred", false, "not accepted"),
        ("rich", "/cred", false, "none issued"),
        ("signer", "/signers", true, ""),
        ("rich", "/signers", true, ""),
        ("exact", "/signers", false, "not in its signer list"),
        ("exact", "/kyc", true, ""),
        ("rich", "/kyc", false, "not approved"),
        ("rich", "/two", true, "1000.5"),
        ("exact", "/two", false, "USD trust line"),
        ("nft_holder", "/either", true, ""),
        ("rich", "/either", true, ""),
        ("exact", "/either", false, "one of:"),
    ];
    let mut jar = std::collections::HashMap::new();
    for (who, path, passes, says) in cases {
        if !jar.contains_key(who) {
            jar.insert(*who, cookie(gw, &s.node.account(who), "MAINNET").await);
        }
        let got = ask(gw, path, &jar[who]).await;
        if *passes {
            assert_eq!(got.status, StatusCode::OK, "{who} {path}: {}", got.text());
            let header = match *path {
                "/solo" | "/two" => got.upstream_header("x-solo-balance"),
                "/xrp" => got.upstream_header("x-xrp-spendable"),
                "/mpt" => got.upstream_header("x-mpt"),
                _ => vec![],
            };
            assert_eq!(header.join(","), *says, "{who} {path}");
        } else {
            assert_eq!(got.status, StatusCode::FORBIDDEN, "{who} {path}: {}", got.text());
            let body = got.json();
            assert_eq!(body["error"], "forbidden");
            assert!(body["unmet"].as_str().unwrap().contains(says), "{who} {path}: {body}");
        }
    }
    // A browser is told what the page needs, on the forbidden page.
    let page = get_with(gw, "/solo", &[("cookie", &jar["poor"]), ("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("id=\"unmet\"") && page.text().contains("at least 100 SOLO from"), "{}", page.text());
    // A client's own copy of a header the conditions fill never reaches the upstream.
    let spoofed = get_with(gw, "/solo", &[("cookie", &jar["rich"]), ("x-solo-balance", "999999"), ("X_Solo_Balance", "1")]).await;
    assert_eq!(spoofed.upstream_header("x-solo-balance"), vec!["1000.5"]);
    // The first endpoint is dead: everything above came through the second.
    assert!(s.node.calls().await.0 > 0);
    drop(s.idp);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_checked_on_its_own_network_only() {
    let s = setup("").await;
    let gw = s.gw.addr;
    let rich = s.node.account("rich");
    let before = s.node.calls().await.0;
    let testnet = cookie(gw, &rich, "TESTNET").await;
    let got = ask(gw, "/solo", &testnet).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(got.json()["unmet"].as_str().unwrap().contains("no [ledger.TESTNET]"), "{}", got.text());
    // A token that names no network fails closed too.
    let token = s.idp.issue_token(CLIENT_ID, &rich, "", serde_json::json!({}));
    let got = get_with(gw, "/solo", &[("authorization", &format!("Bearer {token}")), ("accept", "application/json")]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(got.json()["unmet"].as_str().unwrap().contains("network is unknown"), "{}", got.text());
    assert_eq!(s.node.calls().await.0, before, "a TESTNET session never reads the MAINNET ledger");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_no_endpoint_answers_the_check_fails_closed_with_503() {
    let s = setup("timeout = \"300ms\"").await;
    let gw = s.gw.addr;
    for (i, mode) in ["down", "slowDown", "lgrNotFound", "unvalidated", "timeout"].into_iter().enumerate() {
        s.node.control(serde_json::json!({"mode": mode})).await;
        // A fresh sign-in each time: nothing cached for it.
        let who = ["rich", "exact", "paged", "frozen", "poor"][i];
        let c = cookie(gw, &s.node.account(who), "MAINNET").await;
        let got = ask(gw, "/solo", &c).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{mode}: {}", got.text());
        assert_eq!(got.json()["error"], "ledger_unavailable", "{mode}");
        assert!(got.headers.contains_key("retry-after"), "{mode}");
        let page = get_with(gw, "/solo", &[("cookie", &c), ("accept", "text/html")]).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.text().contains("temporarily unavailable"), "{mode}: {}", page.text());
        // Back up: the failure was not cached as a "no".
        s.node.control(serde_json::json!({"mode": "ok"})).await;
        let got = ask(gw, "/solo", &c).await;
        let want = if who == "frozen" || who == "poor" { StatusCode::FORBIDDEN } else { StatusCode::OK };
        assert_eq!(got.status, want, "{mode} then ok: {}", got.text());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signed_in_hot_path_never_asks_the_ledger() {
    let s = setup("").await;
    let gw = s.gw.addr;
    let c = cookie(gw, &s.node.account("rich"), "MAINNET").await;
    // Sign-in read the conditions in the background; wait for that to finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(gw, "/two", &c).await.status != StatusCode::OK && Instant::now() < deadline {}
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.node.control(serde_json::json!({"reset": true})).await;
    // Under load, on the fast path (plain GETs) and the general path (POST), on two routes with
    // conditions (two on one of them): not one call.
    let mut all = Vec::new();
    for i in 0..400 {
        let c = c.clone();
        all.push(tokio::spawn(async move {
            let path = if i % 2 == 0 { "/two" } else { "/solo" };
            let method = if i % 5 == 0 { "POST" } else { "GET" };
            let req = http::Request::builder().method(method).uri(format!("http://{gw}{path}")).header("cookie", c).body(full("")).unwrap();
            send(req).await.status
        }));
    }
    for h in all {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.node.calls().await.0, 0, "the hot path asked the ledger");
}

/// The upstream answers with a mixed-case header name, which the fast path relays as sent and
/// hyper writes in lower case: that shows which path served.
fn mixed_case(_: &str) -> (Vec<u8>, bool) {
    (b"HTTP/1.1 200 OK\r\nX-Case: Mixed\r\nContent-Length: 2\r\n\r\nok".to_vec(), false)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_with_cached_conditions_stays_on_the_fast_path() {
    let s = setup_with("", raw_upstream(mixed_case).await).await;
    let gw = s.gw.addr;
    let c = cookie(gw, &s.node.account("rich"), "MAINNET").await;
    let head = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: app\r\nCookie: {c}\r\nConnection: close\r\n\r\n");
    // Until the facts are cached, the general path reads them; from then on, the fast path.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = raw(gw, head("/two").as_bytes(), Duration::from_secs(5)).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        if got.contains("X-Case: Mixed") {
            break;
        }
        assert!(Instant::now() < deadline, "never on the fast path: {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = raw(gw, format!("GET /kyc HTTP/1.1\r\nHost: app\r\nCookie: {c}\r\nAccept: application/json\r\nConnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_share_one_query() {
    let s = setup("").await;
    let gw = s.gw.addr;
    // A Bearer token: no sign-in, so nothing was read ahead.
    let token = s.idp.issue_token(CLIENT_ID, &s.node.account("exact"), "MAINNET", serde_json::json!({}));
    let bearer = format!("Bearer {token}");
    s.node.control(serde_json::json!({"reset": true})).await;
    let mut all = Vec::new();
    for _ in 0..30 {
        let b = bearer.clone();
        all.push(tokio::spawn(async move { get_with(gw, "/solo", &[("authorization", &b)]).await.status }));
    }
    for h in all {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    let (total, methods) = s.node.calls().await;
    assert_eq!(total, 1, "{methods}");
    assert_eq!(methods["account_lines"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn results_are_refreshed_in_the_background_before_they_expire() {
    let s = setup("cache_ttl = \"2s\"").await;
    let gw = s.gw.addr;
    let rich = s.node.account("rich");
    let c = cookie(gw, &rich, "MAINNET").await;
    let solo = s.node.data["solo"].as_str().unwrap().to_string();
    assert_eq!(ask(gw, "/solo", &c).await.upstream_header("x-solo-balance"), vec!["1000.5"]);
    s.node.control(serde_json::json!({"set_line": {"account": rich, "currency": solo, "balance": "2000"}})).await;
    // In the last quarter of its life, a request gets the cached answer at once and starts a
    // refresh; soon after, the new balance, and never a wait.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    s.node.control(serde_json::json!({"reset": true})).await;
    let got = ask(gw, "/solo", &c).await;
    assert_eq!(got.upstream_header("x-solo-balance"), vec!["1000.5"], "served from the cache while refreshing");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = ask(gw, "/solo", &c).await;
        if got.upstream_header("x-solo-balance") == vec!["2000"] {
            break;
        }
        assert!(Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.node.calls().await.1["account_lines"], 1, "one refresh, however many requests");
    // The balance falls below the minimum: the next refresh closes the route.
    s.node.control(serde_json::json!({"set_line": {"account": rich, "currency": solo, "balance": "99"}})).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(gw, "/solo", &c).await.status != StatusCode::FORBIDDEN {
        assert!(Instant::now() < deadline, "a lower balance never closed the route");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_renders_the_same_ledger_decision() {
    let s = setup("").await;
    let gw = s.gw.addr;
    let rich = cookie(gw, &s.node.account("rich"), "MAINNET").await;
    let poor = cookie(gw, &s.node.account("poor"), "MAINNET").await;
    let fa = |c: String| async move { get_with(gw, "/.xumm/auth", &[("cookie", &c), ("x-original-uri", "/solo/x")]).await };
    let ok = fa(rich).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.headers["x-solo-balance"], "1000.5");
    let no = fa(poor).await;
    assert_eq!(no.status, StatusCode::FORBIDDEN);
    assert!(no.json()["unmet"].as_str().unwrap().contains("at least 100 SOLO"), "{}", no.text());
}

#[test]
fn condition_mistakes_are_config_errors_naming_the_key() {
    let base = |more: &str| format!("[server]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:9\"\n{more}");
    let ledger = "[ledger.MAINNET]\nurls = [\"http://127.0.0.1:5005/\"]\n";
    let issuer = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh";
    let cases = [
        (format!("[[route]]\npath = \"/a\"\nrequire = {{ trustline = {{ currency = \"USD\", issuer = \"{issuer}\" }} }}"), "route[0].require: reads the XRP Ledger: add a [ledger.MAINNET]"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ trustline = {{ currency = \"SOLO\", issuer = \"{issuer}\" }} }}"), "route[0].require.trustline.currency: must be a 3-character code"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ trustline = {{ currency = \"XRP\", issuer = \"{issuer}\" }} }}"), "XRP is not an issued currency"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ trustline = {{ currency = \"USD\", issuer = \"{issuer}\", min_balance = \"1,5\" }} }}"), "route[0].require.trustline.min_balance: must be a decimal number"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ all = [] }}"), "route[0].require.all: lists no condition"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ any = [ {{ nft = {{ issuer = \"rNope\" }} }} ] }}"), "route[0].require.any[0].nft.issuer"),
        (format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ mpt = {{ issuance_id = \"12\" }} }}"), "route[0].require.mpt.issuance_id: must be 48 hex digits"),
        ("[[route]]\npath = \"/a\"\nrequire = { kyc = true }".to_string(), "route[0].require.kyc: needs [xumm]"),
        (format!("{ledger}[[route]]\npath = \"/a\"\npublic = true\nrequire = {{ signer_of = {{ account = \"{issuer}\" }} }}"), "route[0].require: needs a signed-in account"),
        ("[ledger.MAINNET]\nurls = []".to_string(), "ledger.MAINNET.urls: lists no endpoint"),
        ("[ledger.MAINNET]\nurls = [\"ftp://127.0.0.1:6006\"]".to_string(), "ledger.MAINNET.urls[0]: must be an http(s):// (JSON-RPC) or ws(s):// (WebSocket) URL"),
        ("[ledger.main-net]\nurls = [\"http://127.0.0.1:5005\"]".to_string(), "ledger.main-net: must be a network name"),
    ];
    for (more, want) in cases {
        let e = xumm_gate::config::Config::from_toml(&base(&more), &no_env).unwrap_err().to_string();
        assert!(e.contains(want), "{more}\n  gave: {e}\n  want: {want}");
    }
    // Hex codes: a standard code written in hex is the same code.
    let hex_usd = format!("{ledger}[[route]]\npath = \"/a\"\nrequire = {{ trustline = {{ currency = \"0000000000000000000000005553440000000000\", issuer = \"{issuer}\" }} }}");
    xumm_gate::config::Config::from_toml(&base(&hex_usd), &no_env).unwrap();
}

#[test]
fn policy_explain_names_the_rule_and_each_condition() {
    let node = LedgerNode::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:9\"\n[[route]]\npath = \"/open\"\npublic = true\n{}\n[ledger.MAINNET]\nurls = [\"{}\"]\ntimeout = \"500ms\"\n",
        routes(&node).replace("\n[[route]]\npath = \"/kyc\"\nrequire = { kyc = true }\n", ""),
        node.url
    );
    std::fs::write(&config, text).unwrap();
    let explain = |account: &str, path: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xumm-gate"))
            .args(["policy", "explain", "--config"])
            .arg(&config)
            .args(["--account", account, "--path", path])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, out, err) = explain(&node.account("rich"), "/two/page");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rule:    [[route]] path = \"/two\""), "{out}");
    assert!(out.contains("[held ] at least 100 SOLO from") && out.contains("x-solo-balance: 1000.5"), "{out}");
    assert!(out.contains("[held ] a USD trust line to"), "{out}");
    assert!(out.ends_with("verdict: passes\n"), "{out}");
    let (_, out, _) = explain(&node.account("exact"), "/either");
    assert!(out.contains("[unmet] an NFT by") && out.contains("[unmet] at least 5 USD from"), "{out}");
    assert!(out.contains("verdict: refused (403): one of:"), "{out}");
    let (_, out, _) = explain(&node.account("rich"), "/open/x");
    assert!(out.contains("verdict: passes without sign-in (public)"), "{out}");
    let (_, out, _) = explain(&node.account("rich"), "/elsewhere");
    assert!(out.contains("none matches; [policy] default = \"authenticated\""), "{out}");
    drop(node);
    let (code, out, _) = explain(common::ACCOUNT, "/solo");
    assert_eq!(code, Some(0));
    assert!(out.contains("verdict: unavailable (503)"), "{out}");
    let (code, _, err) = explain("rNotAnAccount", "/solo");
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a valid XRPL r-address"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_websocket_api_works_like_json_rpc() {
    let node = LedgerNode::start();
    let up = upstream().await;
    let idp = idp().await;
    let ws = node.url.replace("http://", "ws://");
    // A dead WebSocket endpoint first: failover to the live one.
    let more = format!("{}\n[ledger.MAINNET]\nurls = [\"ws://127.0.0.1:{}/\", \"{ws}\"]\ntimeout = \"1s\"\n", routes(&node).replace("\n[[route]]\npath = \"/kyc\"\nrequire = { kyc = true }\n", ""), free_port());
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "sign_in_per_minute = 10000", &more)).await;
    let token = |who: &str| format!("Bearer {}", idp.issue_token(CLIENT_ID, &node.account(who), "MAINNET", serde_json::json!({})));
    let got = get_with(gw.addr, "/two", &[("authorization", &token("rich"))]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.upstream_header("x-solo-balance"), vec!["1000.5"]);
    // Paged answers, absent accounts and error answers arrive the same way.
    assert_eq!(get_with(gw.addr, "/solo", &[("authorization", &token("paged"))]).await.status, StatusCode::OK);
    assert_eq!(get_with(gw.addr, "/nft", &[("authorization", &token("nft_holder"))]).await.status, StatusCode::OK);
    assert_eq!(get_with(gw.addr, "/solo", &[("authorization", &token("missing"))]).await.status, StatusCode::FORBIDDEN);
    node.control(serde_json::json!({"mode": "slowDown"})).await;
    assert_eq!(get_with(gw.addr, "/solo", &[("authorization", &token("exact"))]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, methods) = node.calls().await;
    assert!(methods["account_lines"].as_u64().unwrap() >= 5, "{methods}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_new_conditions_and_keeps_what_was_read() {
    let node = LedgerNode::start();
    let up = upstream().await;
    let idp = idp().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gate.toml");
    let more = format!("{}\n[ledger.MAINNET]\nurls = [\"{}\"]\n", routes(&node).replace("\n[[route]]\npath = \"/kyc\"\nrequire = { kyc = true }\n", ""), node.url);
    let text = auth_config(up, &idp.issuer, "", &more);
    std::fs::write(&path, &text).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gw = xumm_gate::start(xumm_gate::config::Config::load(&path, &no_env).unwrap()).await.unwrap();
    gw.live.set_source(path.clone());
    while !gw.gateway.life.ready.load(std::sync::atomic::Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = cookie(gw.addr, &node.account("rich"), "MAINNET").await;
    assert_eq!(ask(gw.addr, "/solo", &c).await.status, StatusCode::OK);
    node.control(serde_json::json!({"reset": true})).await;
    // The route now needs more SOLO than the account holds.
    std::fs::write(&path, text.replacen("min_balance = \"100\"", "min_balance = \"2000\"", 1)).unwrap();
    let reloaded = send(http::Request::post(format!("http://{}/config/reload", gw.admin_addr.unwrap())).body(full("")).unwrap()).await;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.text());
    let got = ask(gw.addr, "/solo", &c).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(got.json()["unmet"].as_str().unwrap().contains("at least 2000 SOLO"), "{}", got.text());
    assert_eq!(node.calls().await.0, 0, "the reloaded gateway judged from what was already read");
}

/// The same request on a ledger route gets the same answer on the fast path, the general path
/// (a hop-by-hop option only it handles), HTTP/2 and forward auth.
#[tokio::test(flavor = "multi_thread")]
async fn every_entry_point_renders_the_same_ledger_decision() {
    let s = setup_with("", raw_upstream(mixed_case).await).await;
    let gw = s.gw.addr;
    let h2: hyper_util::client::legacy::Client<_, TestBody> = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    for (who, path, want) in [("rich", "/two", 200), ("exact", "/two", 403), ("poor", "/solo", 403), ("nobody", "/usd", 403)] {
        let c = cookie(gw, &s.node.account(who), "MAINNET").await;
        // Until the sign-in's reading is cached, the general path answers; then the fast path.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let fast = raw(gw, format!("GET {path} HTTP/1.1\r\nHost: app\r\nCookie: {c}\r\nConnection: close\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
            if want != 200 || fast.contains("X-Case: Mixed") {
                assert!(fast.starts_with(&format!("HTTP/1.1 {want}")), "{who} {path} fast: {fast}");
                break;
            }
            assert!(Instant::now() < deadline, "{who} {path}: never on the fast path");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let general = raw(gw, format!("GET {path} HTTP/1.1\r\nHost: app\r\nCookie: {c}\r\nConnection: close, x-general\r\nX-General: 1\r\n\r\n").as_bytes(), Duration::from_secs(5)).await;
        assert!(general.starts_with(&format!("HTTP/1.1 {want}")) && !general.contains("X-Case: Mixed"), "{who} {path} general: {general}");
        let req = http::Request::get(format!("http://{gw}{path}")).header("cookie", &c).body(full("")).unwrap();
        assert_eq!(h2.request(req).await.unwrap().status().as_u16(), want, "{who} {path} HTTP/2");
        let fa = get_with(gw, "/.xumm/auth", &[("cookie", &c), ("x-original-uri", path)]).await;
        assert_eq!(fa.status.as_u16(), want, "{who} {path} forward auth: {}", fa.text());
    }
}
