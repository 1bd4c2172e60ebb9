//! ID tokens as an OpenID Connect relying-party suite tries them: every claim the spec requires,
//! with its JSON type, through the real code flow; and a provider that rotates its signing key
//! while people sign in.
mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::json;

/// A whole sign-in that the provider finishes with a token carrying `claims`; returns the
/// callback's answer.
async fn sign_in_with(gw: std::net::SocketAddr, idp: &xumm_gate::demo::idp::DevIdp, claims: serde_json::Value) -> Got {
    idp.override_claims(claims);
    let (pending, callback) = begin_login(gw, "/", ACCOUNT, "MAINNET", "approve").await;
    get_with(gw, &callback, &[("cookie", &cookie_header(&pending))]).await
}

fn opened_session(got: &Got) -> bool {
    set_cookies(&got.headers).iter().any(|(n, _)| n == "_xumm_gate")
}

#[tokio::test]
async fn id_tokens_missing_a_required_claim_or_of_the_wrong_type_open_no_session() {
    captured_logs(); // start capturing
    let up = upstream().await;
    let idp = idp().await;
    // Nineteen sign-ins from one address in a row: no sign-in rate limit for this test.
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "sign_in_per_minute = 0", "")).await;
    let future = xumm_gate::session::now() + 3600;
    let cases = [
        (json!({"iss": null}), "claim iss"),
        (json!({"sub": null}), "claim sub"),
        (json!({"aud": null}), "claim aud"),
        (json!({"exp": null}), "claim exp"),
        (json!({"iat": null}), "claim iat"),
        (json!({"exp": (future).to_string()}), "claim exp"),
        (json!({"iat": "1700000000"}), "claim iat"),
        (json!({"iss": [idp.issuer.clone()]}), "claim iss"),
        (json!({"sub": 12345}), "claim sub"),
        (json!({"aud": [CLIENT_ID, 7]}), "claim aud"),
        (json!({"nbf": "0"}), "claim nbf"),
        (json!({"nbf": future}), "not yet valid"),
        (json!({"iat": future}), "not yet valid"),
        (json!({"aud": [CLIENT_ID, "another-client"]}), "azp"),
        (json!({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}), "azp"),
        (json!({"azp": "another-client"}), "azp"),
    ];
    for (claims, reason) in cases {
        let got = sign_in_with(gw.addr, &idp, claims.clone()).await;
        let at = format!("{claims}: {}", got.text());
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{at}");
        assert!(!opened_session(&got), "{at}");
        assert!(got.text().contains("Sign-in did not complete") && got.text().contains(reason), "the rejected page names why: {at}");
        let logged = captured_logs().iter().any(|l| l["message"] == "sign-in failed" && l["cause"].as_str().is_some_and(|c| c.contains(reason)));
        assert!(logged, "a log line names the reason ({reason}): {at}");
    }
    // The same checks let good tokens through: several audiences with this client as azp, and
    // a numeric nbf in the past.
    let ok = [json!({"aud": [CLIENT_ID, "another-client"], "azp": CLIENT_ID}), json!({"nbf": 1_600_000_000}), json!({})];
    for claims in ok {
        let got = sign_in_with(gw.addr, &idp, claims.clone()).await;
        assert_eq!(got.status, StatusCode::FOUND, "{claims}: {}", got.text());
        assert!(opened_session(&got), "{claims}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_follow_the_same_claim_rules_with_rfc6750_errors() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    for (claims, reason) in [
        (json!({"iat": null}), "claim iat"),
        (json!({"sub": 1}), "claim sub"),
        (json!({"exp": "99999999999"}), "claim exp"),
        (json!({"aud": [CLIENT_ID, "another-client"]}), "azp"),
    ] {
        let t = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", claims.clone());
        let got = get_with(gw.addr, "/private", &[("authorization", &format!("Bearer {t}"))]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{claims}");
        let www = got.headers["www-authenticate"].to_str().unwrap();
        assert!(www.starts_with("Bearer error=\"invalid_token\"") && www.contains(reason), "{claims}: {www}");
    }
    let t = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({}));
    assert_eq!(get_with(gw.addr, "/private", &[("authorization", &format!("Bearer {t}"))]).await.status, StatusCode::OK);
    gw.shutdown().await;
}

/// A well-formed token whose signature no key verifies (one signature byte changed).
fn forged(idp: &xumm_gate::demo::idp::DevIdp) -> String {
    let t = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({}));
    let (rest, sig) = t.rsplit_once('.').unwrap();
    let mut sig = sig.to_string().into_bytes();
    let mid = sig.len() / 2;
    sig[mid] = if sig[mid] == b'A' { b'B' } else { b'A' };
    format!("{rest}.{}", String::from_utf8(sig).unwrap())
}

#[tokio::test]
async fn a_rotated_key_never_fails_a_sign_in_even_right_after_a_refetch() {
    let up = upstream().await;
    let idp = idp().await;
    // The default jwks_min_refresh (30 s): every step below happens inside one window.
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let start = idp.jwks_requests();
    // A forged Bearer token inside the window fetches nothing.
    let got = get_with(gw.addr, "/private", &[("authorization", &format!("Bearer {}", forged(&idp)))]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(idp.jwks_requests(), start, "Bearer tokens keep the rate limit");
    // The provider rotates: the next code-flow sign-in refetches at once and succeeds.
    idp.rotate_key();
    let got = sign_in_with(gw.addr, &idp, json!({})).await;
    assert_eq!(got.status, StatusCode::FOUND, "{}", got.text());
    assert_eq!(idp.jwks_requests(), start + 1);
    // And again, seconds later (well within jwks_min_refresh of that fetch).
    idp.rotate_key();
    let got = sign_in_with(gw.addr, &idp, json!({})).await;
    assert_eq!(got.status, StatusCode::FOUND, "{}", got.text());
    assert_eq!(idp.jwks_requests(), start + 2);
    // Concurrent callbacks after a rotation share one fetch.
    idp.rotate_key();
    let mut pending = Vec::new();
    for _ in 0..6 {
        pending.push(begin_login(gw.addr, "/", ACCOUNT, "MAINNET", "approve").await);
    }
    let callbacks = pending.into_iter().map(|(cookies, cb)| {
        let addr = gw.addr;
        tokio::spawn(async move { get_with(addr, &cb, &[("cookie", &cookie_header(&cookies))]).await })
    });
    for done in futures_util::future::join_all(callbacks).await {
        let got = done.unwrap();
        assert_eq!(got.status, StatusCode::FOUND, "{}", got.text());
    }
    assert_eq!(idp.jwks_requests(), start + 3, "one fetch for six concurrent callbacks");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_forged_bearer_flood_fetches_the_jwks_at_most_once_per_interval() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config_with(up, &idp.issuer, "", "jwks_min_refresh = \"1s\"", "")).await;
    let start = idp.jwks_requests();
    let token = format!("Bearer {}", forged(&idp));
    let began = std::time::Instant::now();
    let mut sent = 0;
    while began.elapsed() < Duration::from_millis(2500) {
        let got = get_with(gw.addr, "/private", &[("authorization", &token)]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED);
        sent += 1;
    }
    let fetched = idp.jwks_requests() - start;
    assert!(sent > 50, "the flood was too thin to tell: {sent}");
    assert!((1..=3).contains(&fetched), "{fetched} JWKS fetches for {sent} forged tokens in 2.5 s");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_jwks_is_refreshed_in_the_background_as_its_max_age_says() {
    let up = upstream().await;
    let idp = idp().await;
    idp.set_jwks_max_age(Some(1));
    // Bearer refetches rate-limited far beyond the test: only the background refresh fetches.
    let gw = ready_gateway(&auth_config_with(up, &idp.issuer, "", "jwks_min_refresh = \"1s\"", "")).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let old_key_token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({}));
    let old_key_unseen = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({"jti": "unseen"}));
    assert_eq!(get_with(gw.addr, "/private", &[("authorization", &bearer(&old_key_token))]).await.status, StatusCode::OK);
    // Rotation with an overlap window: both keys published, the new one signing.
    idp.set_overlap(true);
    idp.rotate_key();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = idp.jwks_requests();
    let new_key_token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({}));
    assert_eq!(get_with(gw.addr, "/private", &[("authorization", &bearer(&new_key_token))]).await.status, StatusCode::OK, "new key known before any token asked");
    assert!(idp.jwks_requests() <= before + 1, "no token-triggered fetch was needed");
    // The provider drops the old key: after the next refresh it verifies nothing.
    idp.set_overlap(false);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = get_with(gw.addr, "/private", &[("authorization", &bearer(&old_key_unseen))]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "a dropped key stops verifying");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failed_background_refresh_keeps_the_last_good_keys() {
    // A provider whose JWKS answers once, then stops answering: tokens keep verifying.
    captured_logs(); // start capturing
    let up = upstream().await;
    let idp = idp().await;
    idp.set_jwks_max_age(Some(1));
    let gw = ready_gateway(&auth_config_with(up, &idp.issuer, "", "jwks_min_refresh = \"1s\"", "")).await;
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", json!({"jti": "a"}));
    idp.fail_jwks(true);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got = get_with(gw.addr, "/private", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(got.status, StatusCode::OK);
    let logged = captured_logs().iter().any(|l| l["message"].as_str().is_some_and(|m| m.contains("JWKS refresh failed")));
    assert!(logged, "the failed refresh is logged");
    gw.shutdown().await;
}
