//! xApp sessions: Xumm opens a protected URL with `?xAppToken=<one-time token>`; the gateway
//! resolves it at the development platform and opens a session. Real sockets throughout.

mod common;

use common::*;
use http::{Request, StatusCode};
use xumm_gate::demo::platform::DevPlatform;

const XUMM_KEY: &str = "aaaaaaaa-1111-4222-8333-444444444444";
const XUMM_SECRET: &str = "bbbbbbbb-5555-4666-8777-888888888888";
const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

async fn setup(extra: &str) -> (xumm_gate::Running, DevPlatform) {
    setup_with(extra, "").await
}

/// `xapp`: keys for the `[xapp]` table.
async fn setup_with(extra: &str, xapp: &str) -> (xumm_gate::Running, DevPlatform) {
    let up = upstream().await;
    let idp = idp().await;
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), XUMM_KEY, XUMM_SECRET).await.unwrap();
    let more = format!("\n[xumm]\napi_url = \"{}\"\napi_key = \"{XUMM_KEY}\"\napi_secret = \"{XUMM_SECRET}\"\n\n[xapp]\n{xapp}\n", platform.url);
    let gw = ready_gateway(&auth_config(up, &idp.issuer, extra, &more)).await;
    (gw, platform)
}

/// The gateway's session cookie among a response's Set-Cookie headers.
fn session_cookie(got: &Got) -> Option<String> {
    set_cookies(&got.headers).into_iter().find(|(n, v)| n == "_xumm_gate" && !v.is_empty()).map(|(n, v)| format!("{n}={v}"))
}

#[tokio::test]
async fn an_xapp_launch_opens_a_session_and_the_token_never_reaches_the_upstream() {
    for fast_path in [true, false] {
        let (gw, platform) = setup(&format!("fast_path = {fast_path}")).await;
        let token = platform.issue_ott(ACCOUNT, "TESTNET", "READONLY");
        let launch = get_with(gw.addr, &format!("/app/page?x=1&xAppToken={token}&xAppStyle=DARK"), &[HTML]).await;
        assert_eq!(launch.status, StatusCode::FOUND, "{}", launch.text());
        assert_eq!(launch.headers["location"], "/app/page?x=1", "the same URL without the xApp parameters");
        let cookie = session_cookie(&launch).expect("a session cookie");
        assert!(cookie.len() > 40);
        assert!(platform.calls().iter().any(|c| c == &format!("GET /api/v1/platform/xapp/ott/{token}")), "{:?}", platform.calls());

        // A client's own copy of the xApp headers never passes.
        let page = get_with(gw.addr, "/app/page?x=1", &[HTML, ("cookie", &cookie), ("x-xumm-account-access", "FULL"), ("X_Xumm_Xapp_Style", "EVIL")]).await;
        assert_eq!(page.status, StatusCode::OK, "fast_path = {fast_path}");
        assert_eq!(page.json()["uri"], "/app/page?x=1");
        assert_eq!(page.upstream_header("x-xumm-account"), [ACCOUNT]);
        assert_eq!(page.upstream_header("x-xumm-network"), ["TESTNET"]);
        assert_eq!(page.upstream_header("x-xumm-account-access"), ["READONLY"]);
        assert_eq!(page.upstream_header("x-xumm-xapp-style"), ["DARK"]);
        assert!(!page.text().contains(&token), "the token reached the upstream");

        let who = get_with(gw.addr, "/.xumm/userinfo", &[("cookie", &cookie)]).await;
        assert_eq!(who.json()["source"], "xapp");
        assert_eq!(who.json()["account"], ACCOUNT);
    }
}

#[tokio::test]
async fn a_launch_on_a_public_route_or_with_a_session_already_opens_a_fresh_one() {
    let (gw, platform) = setup("").await;
    // Signed in through OAuth2 as another account: the xApp's account wins, with a new id.
    let (name, value) = login(gw.addr, OTHER_ACCOUNT, "MAINNET").await;
    let old = format!("{name}={value}");
    let token = platform.issue_ott(ACCOUNT, "MAINNET", "FULL");
    let launch = get_with(gw.addr, &format!("/public/x?xAppToken={token}"), &[HTML, ("cookie", &old)]).await;
    assert_eq!(launch.status, StatusCode::FOUND);
    assert_eq!(launch.headers["location"], "/public/x");
    let new = session_cookie(&launch).unwrap();
    assert_ne!(new, old);
    let page = get_with(gw.addr, "/admin", &[HTML, ("cookie", &new)]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.upstream_header("x-xumm-account-access"), ["FULL"]);
    assert!(page.upstream_header("x-xumm-xapp-style").is_empty() || page.upstream_header("x-xumm-xapp-style") == ["LIGHT"]);
    // The old session ended with the new sign-in.
    assert_eq!(get_with(gw.addr, "/.xumm/userinfo", &[("cookie", &old)]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn replayed_expired_unknown_foreign_and_malformed_tokens_open_nothing() {
    let (gw, platform) = setup("").await;
    let used = platform.issue_ott(ACCOUNT, "MAINNET", "FULL");
    assert_eq!(get_with(gw.addr, &format!("/app?xAppToken={used}"), &[HTML]).await.status, StatusCode::FOUND);
    let expired = platform.issue_ott(ACCOUNT, "MAINNET", "FULL");
    platform.expire_ott(&expired);
    let foreign = platform.issue_foreign_ott(ACCOUNT);
    let cases = [
        ("replayed", used),
        ("expired", expired),
        ("unknown", "0c4d4b52-7fd6-4f0e-9b0e-5a3b1f2c3d4e".to_string()),
        ("foreign app", foreign),
        ("malformed", "..%2F..%2Fpayload".to_string()),
    ];
    for (what, token) in cases {
        let got = get_with(gw.addr, &format!("/app?xAppToken={token}"), &[HTML]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{what}: {}", got.text());
        assert!(session_cookie(&got).is_none(), "{what}: no session");
        assert!(got.text().contains("This xApp link cannot be used") && got.text().contains("open it again"), "{what}: {}", got.text());
        let api = get_with(gw.addr, &format!("/app?xAppToken={token}"), &[("accept", "application/json")]).await;
        assert_eq!(api.json()["error"], "xapp_link_unusable", "{what}");
    }
    assert!(!platform.calls().iter().any(|c| c.contains("..")), "a malformed token is never sent to Xumm: {:?}", platform.calls());
    let m = scrape(gw.admin_addr.unwrap()).await;
    assert!(m.value("xumm_gate_sign_ins_completed_total", &[("kind", "xapp")]) >= 1.0);
    for reason in ["state", "expired"] {
        assert!(m.value("xumm_gate_sign_ins_failed_total", &[("kind", "xapp"), ("reason", reason)]) >= 1.0, "{reason}");
    }
    assert!(m.value("xumm_gate_xumm_api_requests_total", &[("endpoint", "xapp/ott")]) >= 1.0);
}

#[tokio::test]
async fn xumm_failing_gives_a_retryable_page_never_a_sign_in_loop() {
    let (gw, platform) = setup("").await;
    let token = platform.issue_ott(ACCOUNT, "MAINNET", "FULL");
    let path = format!("/app?xAppToken={token}");
    platform.fail_next(&[StatusCode::SERVICE_UNAVAILABLE]);
    let down = get_with(gw.addr, &path, &[HTML]).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.text());
    assert!(down.headers.contains_key("retry-after"));
    assert!(down.headers.get("location").is_none(), "not sent to sign-in");
    assert!(down.text().contains("try again"), "{}", down.text());
    assert!(session_cookie(&down).is_none());
    platform.fail_next(&[StatusCode::TOO_MANY_REQUESTS]);
    let limited = get_with(gw.addr, &path, &[("accept", "application/json")]).await;
    assert_eq!(limited.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(limited.json()["error"], "xumm_unavailable");
    assert_eq!(limited.headers["retry-after"], xumm_gate::demo::platform::INJECTED_RETRY_AFTER.to_string().as_str());
    // Xumm back (and its pause over): the same link works, it was never spent.
    tokio::time::sleep(std::time::Duration::from_secs(xumm_gate::demo::platform::INJECTED_RETRY_AFTER)).await;
    let ok = get_with(gw.addr, &path, &[HTML]).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text());
    assert!(session_cookie(&ok).is_some());
}

#[tokio::test]
async fn forward_auth_hands_an_xapp_launch_to_the_xapp_endpoint() {
    let (gw, platform) = setup("").await;
    // Redirect mode: straight to {prefix}/xapp, which opens the session and returns to the app.
    let token = platform.issue_ott(ACCOUNT, "MAINNET", "FULL");
    let uri = format!("/p?a=1&xAppToken={token}&xAppStyle=ROYAL");
    let fa = send(
        Request::get(format!("http://{}/.xumm/auth?mode=redirect", gw.addr))
            .header("accept", "text/html")
            .header("x-original-uri", &uri)
            .header("x-forwarded-uri", &uri)
            .header("x-forwarded-host", "app.example.com")
            .header("x-forwarded-proto", "https")
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(fa.status, StatusCode::FOUND);
    let location = fa.headers["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("http://127.0.0.1:4180/.xumm/start?rd="), "{location}");
    // start sees the token in the return URL and sends the browser to the xApp endpoint.
    let start = get_with(gw.addr, location.trim_start_matches("http://127.0.0.1:4180"), &[HTML]).await;
    assert_eq!(start.status, StatusCode::FOUND);
    let xapp = start.headers["location"].to_str().unwrap().to_string();
    assert!(xapp.starts_with("http://127.0.0.1:4180/.xumm/xapp?xAppToken="), "{xapp}");
    let opened = get_with(gw.addr, xapp.trim_start_matches("http://127.0.0.1:4180"), &[HTML]).await;
    assert_eq!(opened.status, StatusCode::FOUND, "{}", opened.text());
    assert_eq!(opened.headers["location"], "https://app.example.com/p?a=1");
    let cookie = session_cookie(&opened).unwrap();
    let authed = get_with(gw.addr, "/.xumm/auth", &[("cookie", &cookie), ("x-original-uri", "/p?a=1")]).await;
    assert_eq!(authed.status, StatusCode::OK);
    assert_eq!(authed.headers["x-xumm-xapp-style"], "ROYAL");
    assert_eq!(authed.headers["x-xumm-account-access"], "FULL");
    // {prefix}/xapp without a token, or with a spent one.
    assert_eq!(get_with(gw.addr, "/.xumm/xapp?rd=/", &[HTML]).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get_with(gw.addr, xapp.trim_start_matches("http://127.0.0.1:4180"), &[HTML]).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_xapp_configured_the_token_means_nothing() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let got = get_with(gw.addr, "/public/x?xAppToken=abc", &[HTML]).await;
    assert_eq!(got.status, StatusCode::OK, "a public route passes as before");
    assert_eq!(got.json()["uri"], "/public/x?xAppToken=abc");
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An HS256 JWT with `claims`, signed with `secret`.
fn signed(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn xapp_jwts_are_bearer_tokens_only_when_enabled_and_only_genuine_ones() {
    let (gw, platform) = setup_with("", "bearer = true").await;
    let json = ("accept", "application/json");
    // From the wallet's launch, as an xApp frontend gets it (jwt/authorize spends the OTT).
    let ott = platform.issue_ott(ACCOUNT, "TESTNET", "FULL");
    let authorized = send(Request::get(format!("{}/api/v1/jwt/authorize", platform.url)).header("x-api-key", XUMM_KEY).header("x-api-ott", &ott).body(full("")).unwrap()).await;
    let jwt = authorized.json()["jwt"].as_str().unwrap().to_string();
    for fast_path_request in ["/app", "/app?x=1"] {
        let ok = get_with(gw.addr, fast_path_request, &[json, ("authorization", &bearer(&jwt))]).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
        assert_eq!(ok.upstream_header("x-xumm-account"), [ACCOUNT]);
        assert_eq!(ok.upstream_header("x-xumm-network"), ["TESTNET"]);
        assert!(ok.upstream_header("authorization").is_empty(), "the token is not passed on");
    }
    let who = get_with(gw.addr, "/.xumm/userinfo", &[("authorization", &bearer(&jwt))]).await;
    assert_eq!(who.json()["source"], "xapp");

    let now = xumm_gate::session::now();
    let base = serde_json::json!({"client_id": XUMM_KEY, "sub": ACCOUNT, "iat": now, "exp": now + 3600});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let none = {
        use base64::Engine;
        let e = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.", e(&serde_json::json!({"alg": "none", "typ": "JWT"})), e(&base))
    };
    let cases = [
        ("wrong secret", signed(base.clone(), "not-the-api-secret"), "bad signature"),
        ("alg none", none, ""),
        ("expired", signed(with("exp", (now - 3600).into()), XUMM_SECRET), "token expired"),
        ("no exp", signed(serde_json::json!({"client_id": XUMM_KEY, "sub": ACCOUNT}), XUMM_SECRET), "claim exp"),
        ("another app", signed(with("client_id", "another-app".into()), XUMM_SECRET), "wrong audience"),
        ("no app", signed(serde_json::json!({"sub": ACCOUNT, "exp": now + 3600}), XUMM_SECRET), "wrong audience"),
        ("wrong aud", signed(with("aud", "someone-else".into()), XUMM_SECRET), "wrong audience"),
        ("issued in the future", signed(with("iat", (now + 3600).into()), XUMM_SECRET), "not yet valid"),
        ("no account", signed(with("sub", "rNOTANACCOUNT".into()), XUMM_SECRET), "r-address"),
    ];
    for (what, token, reason) in cases {
        let got = get_with(gw.addr, "/app", &[json, ("authorization", &bearer(&token))]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{what}: {}", got.text());
        let www = got.headers["www-authenticate"].to_str().unwrap();
        assert!(www.contains("invalid_token") && www.contains(reason), "{what}: {www}");
    }
    // The xApp's own JWT from the platform helper works too (the claims Xumm's docs name).
    assert_eq!(get_with(gw.addr, "/app", &[json, ("authorization", &bearer(&platform.xapp_jwt(ACCOUNT, "MAINNET", serde_json::json!({}))))]).await.status, StatusCode::OK);

    // Without `accept_jwt = true` an xApp JWT is nobody's token.
    let (off, platform) = setup("").await;
    let jwt = platform.xapp_jwt(ACCOUNT, "MAINNET", serde_json::json!({}));
    assert_eq!(get_with(off.addr, "/app", &[json, ("authorization", &bearer(&jwt))]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_xapp_jwt_issuer_is_checked_when_configured() {
    let (gw, platform) = setup_with("", "accept_jwt = true\njwt_issuer = \"https://xumm.app\"").await;
    let json = ("accept", "application/json");
    let good = platform.xapp_jwt(ACCOUNT, "MAINNET", serde_json::json!({}));
    assert_eq!(get_with(gw.addr, "/app", &[json, ("authorization", &bearer(&good))]).await.status, StatusCode::OK);
    let other = platform.xapp_jwt(ACCOUNT, "MAINNET", serde_json::json!({"iss": "https://evil.example"}));
    let got = get_with(gw.addr, "/app", &[json, ("authorization", &bearer(&other))]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert!(got.headers["www-authenticate"].to_str().unwrap().contains("wrong issuer"));
}

#[tokio::test]
async fn a_route_can_require_full_account_access() {
    let (gw, platform) = setup_with("", "\n[[route]]\npath = \"/vault\"\nallow_account_access = [\"FULL\"]").await;
    let open = |access: &'static str| {
        let platform = platform.clone();
        async move {
            let token = platform.issue_ott(ACCOUNT, "MAINNET", access);
            let launch = get_with(gw.addr, &format!("/vault?xAppToken={token}"), &[HTML]).await;
            session_cookie(&launch).unwrap()
        }
    };
    let readonly = open("READONLY").await;
    let refused = get_with(gw.addr, "/vault", &[HTML, ("cookie", &readonly)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a watched account may not open it");
    assert_eq!(get_with(gw.addr, "/elsewhere", &[HTML, ("cookie", &readonly)]).await.status, StatusCode::OK);
    let full = open("FULL").await;
    assert_eq!(get_with(gw.addr, "/vault", &[HTML, ("cookie", &full)]).await.status, StatusCode::OK);
    // Signed in with Xumm: the user signed with the account's key.
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    assert_eq!(get_with(gw.addr, "/vault", &[HTML, ("cookie", &format!("{name}={value}"))]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn enabled_false_switches_xapp_launches_off_and_bearer_is_read_as_accept_jwt() {
    let (gw, platform) = setup_with("", "enabled = false\naccept_jwt = true").await;
    let token = platform.issue_ott(ACCOUNT, "TESTNET", "READONLY");
    // No launch: a public page is served as it is, and Xumm is never asked.
    let page = get_with(gw.addr, &format!("/public/x?xAppToken={token}"), &[HTML]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(!platform.calls().iter().any(|c| c.contains("/xapp/ott/")), "{:?}", platform.calls());
    // Nor are xApp JWTs accepted while the section is off.
    let jwt = platform.xapp_jwt(ACCOUNT, "MAINNET", serde_json::json!({}));
    assert_eq!(get_with(gw.addr, "/app", &[("accept", "application/json"), ("authorization", &bearer(&jwt))]).await.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
    // The key's first name still works.
    let cfg = xumm_gate::config::Config::from_toml("[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n[xapp]\nbearer = true\n", &no_env);
    let accepted = cfg.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!accepted.contains("bearer"), "{accepted}");
}
