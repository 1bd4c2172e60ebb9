//! Sign-in with a SignIn payload (`provider.kind = "payload"`) against the development Xumm
//! platform, over real sockets: QR page, push to a returning user, outcomes, limits, replicas.

mod common;

use common::*;
use http::StatusCode;
use xumm_gate::demo::platform::DevPlatform;

const XUMM_KEY: &str = "aaaaaaaa-1111-4222-8333-444444444444";
const XUMM_SECRET: &str = "bbbbbbbb-5555-4666-8777-888888888888";
const HTML: (&str, &str) = ("accept", "text/html");

fn config(up: std::net::SocketAddr, platform: &DevPlatform, provider_extra: &str) -> String {
    let more = format!("\n[xumm]\napi_url = \"{}\"\napi_key = \"{XUMM_KEY}\"\napi_secret = \"{XUMM_SECRET}\"\n", platform.url);
    // The issuer is never asked: a payload gateway needs no OAuth2 provider.
    auth_config_with(up, "http://127.0.0.1:9", "", &format!("kind = \"payload\"\n{provider_extra}"), &more)
}

async fn setup(provider_extra: &str) -> (xumm_gate::Running, DevPlatform, String) {
    let up = upstream().await;
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), XUMM_KEY, XUMM_SECRET).await.unwrap();
    let text = config(up, &platform, provider_extra);
    (ready_gateway(&text).await, platform, text)
}

/// A started payload sign-in: the browser's cookies, the login id, the payload uuid.
struct Started {
    cookies: Vec<(String, String)>,
    id: String,
    uuid: String,
}

async fn start(gw: std::net::SocketAddr, platform: &DevPlatform, cookies: &[(String, String)]) -> Started {
    let mut headers = vec![HTML];
    let jar = cookie_header(cookies);
    if !cookies.is_empty() {
        headers.push(("cookie", &jar));
    }
    let s = get_with(gw, "/.xumm/start?rd=%2Fapp%3Fx%3D1", &headers).await;
    assert_eq!(s.status, StatusCode::FOUND, "{}", s.text());
    let location = s.headers["location"].to_str().unwrap().to_string();
    let id = location.strip_prefix("/.xumm/qr/").expect("to the QR page").to_string();
    let mut all = cookies.to_vec();
    all.extend(set_cookies(&s.headers));
    let page = get_with(gw, &location, &[HTML, ("cookie", &cookie_header(&all))]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let text = page.text();
    assert!(text.contains("<svg") && text.contains("aria-label=\"QR code"), "a server-rendered QR code");
    let link = format!("{}/sign/", platform.url);
    let at = text.find(&link).expect("the deep link") + link.len();
    let uuid = text[at..at + 36].to_string();
    Started { cookies: all, id, uuid }
}

async fn done(gw: std::net::SocketAddr, s: &Started) -> Got {
    get_with(gw, &format!("/.xumm/qr/{}/done", s.id), &[HTML, ("cookie", &cookie_header(&s.cookies))]).await
}

fn session(got: &Got) -> Option<String> {
    set_cookies(&got.headers).into_iter().find(|(n, _)| n == "_xumm_gate").map(|(n, v)| format!("{n}={v}"))
}

#[tokio::test]
async fn a_signed_signin_payload_opens_a_session_and_the_next_one_is_pushed() {
    let (gw, platform, _) = setup("").await;
    // A protected page sends the browser to start.
    let first = get_with(gw.addr, "/app?x=1", &[HTML]).await;
    assert_eq!(first.status, StatusCode::FOUND);
    let s = start(gw.addr, &platform, &[]).await;
    let p = platform.payload(&s.uuid).unwrap();
    assert_eq!(p.request["txjson"]["TransactionType"], "SignIn");
    assert_eq!(p.request["custom_meta"]["identifier"], s.id.as_str());
    assert!(p.request["options"]["return_url"]["web"].as_str().unwrap().ends_with(&format!("/.xumm/qr/{}/done", s.id)));
    assert!(p.request.get("user_token").is_none(), "a first visit is a QR code, not a push");
    // Not signed yet: back to the QR page.
    let early = done(gw.addr, &s).await;
    assert_eq!(early.headers["location"], format!("/.xumm/qr/{}", s.id).as_str());

    platform.resolve(&s.uuid, true, ACCOUNT, "TESTNET");
    let ok = done(gw.addr, &s).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text());
    assert_eq!(ok.headers["location"], "/app?x=1");
    let cookie = session(&ok).expect("a session");
    let app = get_with(gw.addr, "/app?x=1", &[HTML, ("cookie", &cookie)]).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.upstream_header("x-xumm-account"), [ACCOUNT]);
    assert_eq!(app.upstream_header("x-xumm-network"), ["TESTNET"]);
    // Finishing twice opens nothing more.
    let again = done(gw.addr, &s).await;
    assert!(session(&again).is_none() && again.status == StatusCode::BAD_REQUEST, "{}", again.text());

    // This browser now keeps the user token (sealed, for the gateway's paths only): the next
    // sign-in is pushed to the phone.
    let kept: Vec<(String, String)> = set_cookies(&ok.headers).into_iter().filter(|(n, _)| n == "_xumm_gate_ut").collect();
    assert_eq!(kept.len(), 1);
    assert!(ok.headers.get_all("set-cookie").iter().any(|v| v.to_str().unwrap().starts_with("_xumm_gate_ut=") && v.to_str().unwrap().contains("Path=/.xumm")));
    let pushed = start(gw.addr, &platform, &kept).await;
    let token = platform.payload(&pushed.uuid).unwrap().request["user_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 36);
    assert!(!cookie_header(&pushed.cookies).contains(&token), "the user token never reaches the browser");
    // Signed by another account than the one it was pushed to: refused, and the next is a QR code.
    platform.resolve(&pushed.uuid, true, OTHER_ACCOUNT, "MAINNET");
    let other = done(gw.addr, &pushed).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert!(other.text().contains("another account"), "{}", other.text());
    assert!(session(&other).is_none());
    assert!(other.headers.get_all("set-cookie").iter().any(|v| v.to_str().unwrap().starts_with("_xumm_gate_ut=;") || v.to_str().unwrap().starts_with("_xumm_gate_ut=") && v.to_str().unwrap().contains("Max-Age=0")));
}

#[tokio::test]
async fn rejected_expired_and_unknown_sign_ins_say_so_with_a_retry() {
    let (gw, platform, _) = setup("").await;
    let rejected = start(gw.addr, &platform, &[]).await;
    platform.resolve(&rejected.uuid, false, ACCOUNT, "MAINNET");
    let expired = start(gw.addr, &platform, &[]).await;
    platform.expire(&expired.uuid);
    for (s, title) in [(&rejected, "Sign-in rejected"), (&expired, "Sign-in expired")] {
        let got = done(gw.addr, s).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST);
        assert!(got.text().contains(title), "{}", got.text());
        assert!(got.text().contains("/.xumm/start?rd=%2Fapp%3Fx%3D1"), "a retry to the same place: {}", got.text());
        assert!(session(&got).is_none());
    }
    // No pending cookie (another browser, or a made-up id): nothing to finish.
    let stranger = get_with(gw.addr, &format!("/.xumm/qr/{}/done", rejected.id), &[HTML]).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    assert!(stranger.text().contains("unknown or too old"));
    let made_up = get_with(gw.addr, "/.xumm/qr/nonsense", &[HTML, ("cookie", &cookie_header(&rejected.cookies))]).await;
    assert_eq!(made_up.status, StatusCode::BAD_REQUEST);
    // Counted by kind and reason (other tests in this binary count too: at least ours).
    let m = scrape(gw.admin_addr.unwrap()).await;
    assert!(m.value("xumm_gate_sign_ins_started_total", &[("kind", "payload")]) >= 2.0);
    for reason in ["rejected", "expired"] {
        assert!(m.value("xumm_gate_sign_ins_failed_total", &[("kind", "payload"), ("reason", reason)]) >= 1.0, "{reason}");
    }
}

#[tokio::test]
async fn payload_creation_is_bounded_and_a_xumm_outage_is_a_retryable_page() {
    let (gw, platform, _) = setup("payloads_per_minute = 2").await;
    // Keep the three starts inside one clock minute.
    if xumm_gate::session::now() % 60 > 55 {
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    start(gw.addr, &platform, &[]).await;
    start(gw.addr, &platform, &[]).await;
    let third = get_with(gw.addr, "/.xumm/start?rd=/", &[HTML]).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{}", third.text());
    assert!(third.text().contains("Many people are signing in right now"), "the overall bound says so: {}", third.text());
    assert!(third.headers.contains_key("retry-after"));
    assert_eq!(platform.calls().iter().filter(|c| *c == "POST /api/v1/platform/payload").count(), 2, "no payload beyond the bound");

    let (gw, platform, _) = setup("").await;
    platform.fail_next(&[StatusCode::SERVICE_UNAVAILABLE]);
    let down = get_with(gw.addr, "/.xumm/start?rd=/", &[HTML]).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{}", down.text());
    assert!(down.headers.contains_key("retry-after"));
    assert!(down.text().contains("Try again"));
    assert!(set_cookies(&down.headers).is_empty(), "no pending login for a payload that does not exist");
    assert_eq!(platform.calls().iter().filter(|c| *c == "POST /api/v1/platform/payload").count(), 1, "a payload creation is never retried");
}

#[tokio::test]
async fn a_payload_sign_in_started_on_one_replica_finishes_on_another() {
    let (a, platform, text) = setup("").await;
    let b = ready_gateway(&text).await;
    let s = start(a.addr, &platform, &[]).await;
    platform.resolve(&s.uuid, true, ACCOUNT, "MAINNET");
    let ok = done(b.addr, &s).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text());
    assert!(session(&ok).is_some());
}

#[tokio::test]
async fn the_kind_needs_xumm_credentials_but_no_oauth2_client() {
    let up = upstream().await;
    let text = auth_config_with(up, "http://127.0.0.1:9", "", "kind = \"payload\"", "");
    let e = xumm_gate::config::Config::from_toml(&text, &no_env).unwrap_err().to_string();
    assert!(e.contains("provider.kind: \"payload\" needs [xumm]"), "{e}");
    let text = text.replace(&format!("client_id = \"{CLIENT_ID}\""), "").replace(&format!("client_secret = \"{CLIENT_SECRET}\""), "")
        + &format!("\n[xumm]\napi_key = \"{XUMM_KEY}\"\napi_secret = \"{XUMM_SECRET}\"\n");
    xumm_gate::config::Config::from_toml(&text, &no_env).expect("no client id or secret needed");
}

#[tokio::test]
async fn with_both_ways_the_sign_in_page_offers_a_choice() {
    let up = upstream().await;
    let idp = idp().await;
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), XUMM_KEY, XUMM_SECRET).await.unwrap();
    let more = format!("\n[xumm]\napi_url = \"{}\"\napi_key = \"{XUMM_KEY}\"\napi_secret = \"{XUMM_SECRET}\"\n", platform.url);
    let gw = ready_gateway(&auth_config_with(up, &idp.issuer, "", "qr_sign_in = true", &more)).await;
    let choice = get_with(gw.addr, "/.xumm/start?rd=%2Fapp", &[HTML]).await;
    assert_eq!(choice.status, StatusCode::OK);
    let text = choice.text();
    assert!(text.contains("id=\"oauth2\" class=\"button\" href=\"/.xumm/start?rd=%2Fapp&amp;via=oauth2\""), "{text}");
    assert!(text.contains("href=\"/.xumm/start?rd=%2Fapp&amp;via=payload\""), "{text}");
    assert!(platform.calls().is_empty(), "showing the choice spends no payload");
    let oauth2 = get_with(gw.addr, "/.xumm/start?rd=%2Fapp&via=oauth2", &[HTML]).await;
    assert!(oauth2.headers["location"].to_str().unwrap().starts_with(&idp.issuer), "to the provider");
    let payload = get_with(gw.addr, "/.xumm/start?rd=%2Fapp&via=payload", &[HTML]).await;
    assert!(payload.headers["location"].to_str().unwrap().starts_with("/.xumm/qr/"), "to the QR page");
    // Missing [xumm]: the option cannot work, and the config says so.
    let e = xumm_gate::config::Config::from_toml(&auth_config_with(up, &idp.issuer, "", "qr_sign_in = true", ""), &no_env).unwrap_err().to_string();
    assert!(e.contains("provider.qr_sign_in: needs [xumm]"), "{e}");
}

#[tokio::test]
async fn a_signed_payload_that_is_not_a_signin_opens_nothing() {
    let (gw, platform, _) = setup("").await;
    let s = start(gw.addr, &platform, &[]).await;
    platform.resolve(&s.uuid, true, ACCOUNT, "MAINNET");
    platform.set_tx_type(&s.uuid, "Payment");
    let got = done(gw.addr, &s).await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert!(got.text().contains("not this sign-in"), "{}", got.text());
    assert!(session(&got).is_none());
}

#[tokio::test]
async fn a_payload_nobody_scans_is_cancelled_at_xumm_when_it_expires() {
    let (gw, platform, _) = setup("payload_expiry = \"1m\"").await;
    let unscanned = start(gw.addr, &platform, &[]).await;
    let signed = start(gw.addr, &platform, &[]).await;
    assert_eq!(platform.payload(&unscanned.uuid).unwrap().request["options"]["expire"], 1);
    platform.resolve(&signed.uuid, true, ACCOUNT, "MAINNET");
    tokio::time::sleep(std::time::Duration::from_secs(63)).await;
    assert!(platform.payload(&unscanned.uuid).unwrap().cancelled, "{:?}", platform.calls());
    assert!(!platform.payload(&signed.uuid).unwrap().cancelled, "a signed one is left alone");
    let deletes: Vec<String> = platform.calls().into_iter().filter(|c| c.starts_with("DELETE")).collect();
    assert_eq!(deletes, [format!("DELETE /api/v1/platform/payload/{}", unscanned.uuid)]);
}
