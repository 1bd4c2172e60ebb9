//! Sign in with Xumm against the development provider, over real sockets on 127.0.0.1.

mod common;

use common::*;
use http::StatusCode;

async fn setup() -> (xumm_gate::Running, xumm_gate::demo::idp::DevIdp, std::net::SocketAddr) {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    (gw, idp, up)
}

fn ck(c: &(String, String)) -> String {
    format!("{}={}", c.0, c.1)
}

#[tokio::test]
async fn full_sign_in_sets_identity_headers_and_userinfo() {
    let (gw, _idp, _) = setup().await;
    let session = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{}; theme=dark", ck(&session));
    let got = get_with(gw.addr, "/dashboard", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    assert_eq!(got.upstream_header("x-xumm-network"), vec!["MAINNET"]);
    assert_eq!(got.upstream_header("x-auth-request-user"), vec![ACCOUNT]);
    assert_eq!(got.upstream_header("x-forwarded-user"), vec![ACCOUNT]);
    // the gateway's own cookie never reaches the upstream; others do
    assert_eq!(got.upstream_header("cookie"), vec!["theme=dark"]);
    let info = get_with(gw.addr, "/.xumm/userinfo", &[("cookie", &ck(&session))]).await;
    assert_eq!(info.status, StatusCode::OK);
    let v = info.json();
    assert_eq!(v["account"], ACCOUNT);
    assert_eq!(v["network"], "MAINNET");
    assert_eq!(v["source"], "session");
    assert!(v["expires_at"].as_u64().unwrap() > xumm_gate::session::now() + 3600);
    assert!(v.get("user_token").is_none());
    assert_eq!(get(gw.addr, "/.xumm/userinfo").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_cookie_attributes() {
    let (gw, _idp, _) = setup().await;
    let (pending, cb) = begin_login(gw.addr, "/x", ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
    let set: Vec<String> = done.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = set.iter().find(|c| c.starts_with("_xumm_gate=")).unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http on loopback is not Secure");
    // the pending-login cookie is cleared
    assert!(set.iter().any(|c| c.starts_with(&pending[0].0) && c.contains("Max-Age=0")), "{set:?}");
    assert_eq!(done.headers["location"], "/x");
}

#[tokio::test]
async fn unauthenticated_browsers_redirect_and_apis_get_401() {
    let (gw, _idp, _) = setup().await;
    let got = get_with(gw.addr, "/dashboard?x=1", &[("accept", "text/html,application/xhtml+xml")]).await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.headers["location"], "/.xumm/start?rd=%2Fdashboard%3Fx%3D1");
    for headers in [
        vec![("accept", "text/html"), ("x-requested-with", "XMLHttpRequest")],
        vec![("accept", "text/html"), ("sec-fetch-mode", "cors")],
        vec![("accept", "application/json")],
        vec![],
    ] {
        let got = get_with(gw.addr, "/api/data", &headers).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_eq!(got.headers["www-authenticate"], "Bearer");
        assert_eq!(got.json()["error"], "unauthorized");
    }
    let post = send(http::Request::post(format!("http://{}/form", gw.addr)).header("accept", "text/html").body(full("x")).unwrap()).await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    // public routes need nothing
    assert_eq!(get(gw.addr, "/public/page").await.status, StatusCode::OK);
}

#[tokio::test]
async fn state_mismatch_replay_and_duplicates_are_refused() {
    let (gw, _idp, _) = setup().await;
    let (pending, cb) = begin_login(gw.addr, "/", ACCOUNT, "MAINNET", "approve").await;
    // no pending cookie at all
    assert_eq!(get(gw.addr, &cb).await.status, StatusCode::BAD_REQUEST);
    // a state that matches no pending cookie
    let wrong = cb.replace("state=", "state=x");
    assert_eq!(get_with(gw.addr, &wrong, &[("cookie", &cookie_header(&pending))]).await.status, StatusCode::BAD_REQUEST);
    // duplicated parameters are refused, not last-wins
    for dup in [format!("{cb}&state=other"), format!("{cb}&code=other"), format!("{cb}&state=x&state=y")] {
        let got = get_with(gw.addr, &dup, &[("cookie", &cookie_header(&pending))]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{dup}");
        assert!(got.text().contains("Try again"));
    }
    let ok = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text());
    // replaying the same callback (with the same pending cookie) fails
    let replay = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(set_cookies(&replay.headers).iter().all(|(n, _)| n != "_xumm_gate"));
}

#[tokio::test]
async fn rejected_sign_in_shows_a_retry_page() {
    let (gw, _idp, _) = setup().await;
    let (pending, cb) = begin_login(gw.addr, "/", ACCOUNT, "MAINNET", "reject").await;
    assert!(cb.contains("error=access_denied"));
    let got = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert!(got.text().contains("rejected"), "{}", got.text());
    assert!(got.text().contains("href=\"/.xumm/start\""));
    assert!(set_cookies(&got.headers).iter().all(|(n, _)| n != "_xumm_gate"));
}

#[tokio::test]
async fn invalid_r_address_opens_no_session() {
    let (gw, _idp, _) = setup().await;
    for bad in ["rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTj", "not-an-account", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh\r\nX-Evil: 1"] {
        let (pending, cb) = begin_login(gw.addr, "/", bad, "MAINNET", "approve").await;
        let got = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(got.text().contains("r-address"), "{}", got.text());
        assert!(set_cookies(&got.headers).iter().all(|(n, _)| n != "_xumm_gate"));
    }
}

#[tokio::test]
async fn control_characters_in_claims_never_become_headers() {
    let (gw, _idp, _) = setup().await;
    let session = login(gw.addr, ACCOUNT, "MAIN\r\nX-Injected: 1").await;
    let got = get_with(gw.addr, "/x", &[("cookie", &ck(&session))]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.upstream_header("x-xumm-network").is_empty());
    assert!(got.upstream_header("x-injected").is_empty());
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
}

#[tokio::test]
async fn tampered_garbage_and_huge_cookies_are_no_session() {
    let (gw, _idp, _) = setup().await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let mut tampered = value.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let huge = "A".repeat(6000);
    for v in [tampered.as_str(), &value[..value.len() - 4], "garbage", "", "%%%", huge.as_str()] {
        let got = get_with(gw.addr, "/x", &[("cookie", &format!("{name}={v}")), ("accept", "application/json")]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "cookie {v:?}");
    }
    assert_eq!(get_with(gw.addr, "/x", &[("cookie", &format!("{name}={value}"))]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn sign_out_ends_the_session_server_side() {
    let (gw, _idp, _) = setup().await;
    let session = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = ck(&session);
    assert_eq!(get_with(gw.addr, "/x", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    let out = send(http::Request::post(format!("http://{}/.xumm/sign_out?rd=%2Fbye", gw.addr)).header("cookie", &cookie).body(full("")).unwrap()).await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(out.headers["location"], "/bye");
    assert!(out.headers.get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("_xumm_gate=") && c.to_str().unwrap().contains("Max-Age=0")));
    // the old cookie replayed: no session
    assert_eq!(get_with(gw.addr, "/x", &[("cookie", &cookie)]).await.status, StatusCode::UNAUTHORIZED);
    // GET works too, and an unsafe rd falls back to a page
    let session = login(gw.addr, ACCOUNT, "MAINNET").await;
    let out = get_with(gw.addr, "/.xumm/sign_out?rd=//evil.com", &[("cookie", &ck(&session))]).await;
    assert_eq!(out.headers["location"], "/");
    assert_eq!(get_with(gw.addr, "/x", &[("cookie", &ck(&session))]).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn return_urls_are_checked() {
    let (gw, _idp, _) = setup().await;
    for (rd, want) in [
        ("/deep/link?a=1", "/deep/link?a=1"),
        ("https://app.example.com/x", "https://app.example.com/x"),
        ("//evil.com", "/"),
        ("/\\evil.com", "/"),
        ("https://evil.com/", "/"),
        ("https://app.example.com.evil.com/", "/"),
        ("javascript:alert(1)", "/"),
        ("/%2F%2Fevil.com", "/"),
        ("/x\ty", "/"),
    ] {
        let (pending, cb) = begin_login(gw.addr, rd, ACCOUNT, "MAINNET", "approve").await;
        let done = get_with(gw.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
        assert_eq!(done.status, StatusCode::FOUND);
        assert_eq!(done.headers["location"], want, "rd {rd:?}");
    }
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped_everywhere() {
    let (gw, _idp, _) = setup().await;
    let spoof = [
        ("X-Xumm-Account", "rEVIL"),
        ("x-xumm-account", "rEVIL2"),
        ("X_Xumm_Account", "rEVIL3"),
        ("X-XUMM-NETWORK", "MAINNET"),
        ("x_xumm_network", "MAINNET"),
        ("X-Forwarded-User", "rEVIL"),
        ("x_auth_request_user", "rEVIL"),
        ("X-Xumm-User-Token", "t"),
        ("X-Xumm-Assertion", "a.b.c"),
    ];
    // public route: nothing identity-like reaches the upstream
    let got = get_with(gw.addr, "/public/x", &spoof).await;
    assert_eq!(got.status, StatusCode::OK);
    for h in ["x-xumm-account", "x_xumm_account", "x-xumm-network", "x_xumm_network", "x-forwarded-user", "x_auth_request_user", "x-xumm-user-token", "x-xumm-assertion"] {
        assert!(got.upstream_header(h).is_empty(), "{h} leaked on a public route");
    }
    // protected route: exactly the gateway's values
    let session = login(gw.addr, ACCOUNT, "TESTNET").await;
    let mut with_cookie = spoof.to_vec();
    let c = ck(&session);
    with_cookie.push(("cookie", &c));
    let got = get_with(gw.addr, "/app", &with_cookie).await;
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    assert_eq!(got.upstream_header("x-xumm-network"), vec!["TESTNET"]);
    assert_eq!(got.upstream_header("x-forwarded-user"), vec![ACCOUNT]);
    assert!(got.upstream_header("x_xumm_account").is_empty());
    assert!(got.upstream_header("x_auth_request_user").is_empty());
    assert!(got.upstream_header("x-xumm-assertion").is_empty());
}

#[tokio::test]
async fn allow_accounts_and_allow_networks() {
    let (gw, _idp, _) = setup().await;
    let me = ck(&login(gw.addr, ACCOUNT, "MAINNET").await);
    let other = ck(&login(gw.addr, OTHER_ACCOUNT, "TESTNET").await);
    assert_eq!(get_with(gw.addr, "/admin/x", &[("cookie", &me)]).await.status, StatusCode::OK);
    let denied = get_with(gw.addr, "/admin/x", &[("cookie", &other), ("accept", "text/html")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.text().contains(OTHER_ACCOUNT));
    assert!(denied.text().contains("/.xumm/sign_out"));
    let denied = get_with(gw.addr, "/ADMIN/x", &[("cookie", &other), ("accept", "application/json")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.json()["error"], "forbidden");
    assert_eq!(get_with(gw.addr, "/mainnet", &[("cookie", &me)]).await.status, StatusCode::OK);
    assert_eq!(get_with(gw.addr, "/mainnet", &[("cookie", &other)]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(get_with(gw.addr, "/elsewhere", &[("cookie", &other)]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn parallel_tabs_all_sign_in_and_pending_cookies_are_capped() {
    let (gw, _idp, _) = setup().await;
    let (p1, cb1) = begin_login(gw.addr, "/one", ACCOUNT, "MAINNET", "approve").await;
    let (p2, cb2) = begin_login(gw.addr, "/two", ACCOUNT, "MAINNET", "approve").await;
    let all = cookie_header(&[p1.clone(), p2.clone()].concat());
    let two = get_with(gw.addr, &cb2, &[("cookie", &all)]).await;
    assert_eq!(two.status, StatusCode::FOUND);
    assert_eq!(two.headers["location"], "/two");
    let one = get_with(gw.addr, &cb1, &[("cookie", &all)]).await;
    assert_eq!(one.status, StatusCode::FOUND);
    assert_eq!(one.headers["location"], "/one");

    // a browser holding 5 pending logins gets the oldest cleared on the next start
    let mut jar: Vec<(String, String)> = Vec::new();
    for _ in 0..5 {
        let got = get_with(gw.addr, "/.xumm/start?rd=/", &[("cookie", &cookie_header(&jar))]).await;
        jar.extend(set_cookies(&got.headers));
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // distinct creation seconds
    }
    let got = get_with(gw.addr, "/.xumm/start?rd=/", &[("cookie", &cookie_header(&jar))]).await;
    let cleared: Vec<String> = got.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).filter(|v| v.contains("Max-Age=0")).collect();
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(cleared[0].starts_with(&format!("{}=", jar[0].0)), "the oldest goes: {cleared:?}");
}

#[tokio::test]
async fn nonce_and_audience_are_checked_on_tokens() {
    let (gw, idp, _) = setup().await;
    let auth = gw.gateway.admission.auth.as_ref().unwrap();
    let aud = vec![CLIENT_ID.to_string()];
    let rs = [jsonwebtoken::Algorithm::RS256];
    let t = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"nonce": "n1"}));
    assert!(auth.provider.verify_with_skew(&t, &aud, &rs, Some("n1"), 60).await.is_ok());
    let e = auth.provider.verify_with_skew(&t, &aud, &rs, Some("n2"), 60).await.unwrap_err();
    assert_eq!(e.to_string(), "token rejected: nonce mismatch");
    let foreign = idp.issue_token(NATIVE_CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let e = auth.provider.verify_with_skew(&foreign, &aud, &rs, None, 60).await.unwrap_err();
    assert_eq!(e.to_string(), "token rejected: wrong audience");
    let expired = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"exp": 1_000_000, "iat": 900_000}));
    let e = auth.provider.verify_with_skew(&expired, &aud, &rs, None, 60).await.unwrap_err();
    assert_eq!(e.to_string(), "token rejected: token expired");
}

#[tokio::test]
async fn provider_key_rotation_refetches_the_jwks_once() {
    let (gw, idp, _) = setup().await;
    let auth = gw.gateway.admission.auth.as_ref().unwrap();
    let before = auth.provider.jwks_fetches.load(std::sync::atomic::Ordering::Relaxed);
    idp.rotate_key();
    // wait out the refetch rate limit window that discovery just used
    let old = auth.provider.jwks_fetches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(before, old);
    let aud = vec![CLIENT_ID.to_string()];
    let t = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    // within 30 s of the last fetch: no refetch, so the new key is unknown (rate limit holds)
    let e = auth.provider.verify_with_skew(&t, &aud, &[jsonwebtoken::Algorithm::RS256], None, 60).await.unwrap_err();
    assert_eq!(e.to_string(), "token rejected: bad signature");
    assert_eq!(auth.provider.jwks_fetches.load(std::sync::atomic::Ordering::Relaxed), before);
}

#[tokio::test]
async fn not_ready_until_the_provider_answers() {
    let up = upstream().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = gateway(&auth_config(up, &dead, "", "")).await;
    let admin = gw.admin_addr.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(admin, "/healthz").await.status, StatusCode::OK);
    let got = get(gw.addr, "/.xumm/start?rd=/").await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(got.headers.contains_key("retry-after"));
    // the hot path for public routes still works
    assert_eq!(get(gw.addr, "/public/x").await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotated_provider_keys_verify_after_one_refetch_and_old_tokens_fail() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config_with(up, &idp.issuer, "", "jwks_min_refresh = \"1s\"", "")).await;
    let auth = gw.gateway.admission.auth.as_ref().unwrap();
    let fetches = || auth.provider.jwks_fetches.load(std::sync::atomic::Ordering::Relaxed);
    let aud = vec![CLIENT_ID.to_string()];
    let rs = [jsonwebtoken::Algorithm::RS256];
    let old_token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    assert!(auth.provider.verify_with_skew(&old_token, &aud, &rs, None, 60).await.is_ok());
    idp.rotate_key();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = fetches();
    let new_token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    assert!(auth.provider.verify_with_skew(&new_token, &aud, &rs, None, 60).await.is_ok(), "new key verifies after a refetch");
    assert_eq!(fetches(), before + 1);
    // the old key is gone from the provider's JWKS: old tokens fail, and a flood of them
    // cannot trigger more than one fetch per interval
    for _ in 0..20 {
        let e = auth.provider.verify_with_skew(&old_token, &aud, &rs, None, 60).await.unwrap_err();
        assert_eq!(e.to_string(), "token rejected: bad signature");
    }
    assert!(fetches() <= before + 2, "fetches: {}", fetches() - before);
    // and a full browser sign-in works with the new key
    let session = login(gw.addr, ACCOUNT, "MAINNET").await;
    assert_eq!(get_with(gw.addr, "/x", &[("cookie", &format!("{}={}", session.0, session.1))]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn another_replica_with_rotated_keys_finishes_the_login() {
    let up = upstream().await;
    let idp = idp().await;
    let a = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    // replica B: a new first key (seals), the old one still listed (opens)
    let b_cfg = auth_config(up, &idp.issuer, "", "").replace(
        &format!("cookie_secrets = [\"{COOKIE_SECRET}\"]"),
        &format!("cookie_secrets = [\"{COOKIE_SECRET_2}\", \"{COOKIE_SECRET}\"]"),
    );
    let b = ready_gateway(&b_cfg).await;
    let (pending, cb) = begin_login(a.addr, "/from-a", ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(b.addr, &cb, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    assert_eq!(done.headers["location"], "/from-a");
    let (name, value) = set_cookies(&done.headers).into_iter().find(|(n, _)| n == "_xumm_gate").unwrap();
    // B sealed with the new key: B opens it, A (old key only) cannot
    assert!(b.gateway.admission.auth.as_ref().unwrap().sealer.open(&name, &value).is_some());
    assert!(a.gateway.admission.auth.as_ref().unwrap().sealer.open(&name, &value).is_none());
    assert_eq!(get_with(b.addr, "/x", &[("cookie", &format!("{name}={value}"))]).await.status, StatusCode::OK);
}
