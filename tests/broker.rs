//! The sign-request broker against the development Xumm platform, over real sockets.

mod common;

use common::*;
use http::{Request, StatusCode};
use xumm_gate::demo::platform::DevPlatform;

const XUMM_KEY: &str = "aaaaaaaa-1111-4222-8333-444444444444";
const XUMM_SECRET: &str = "bbbbbbbb-5555-4666-8777-888888888888";
const SHOP_KEY: &str = "shop-key-123";
const SHOP_SECRET: &str = "shop-secret-0123456789";

async fn setup() -> (xumm_gate::Running, DevPlatform) {
    setup_with("").await
}

/// `shop_extra`: more keys for the "shop" app's `[[broker.app]]` table.
async fn setup_with(shop_extra: &str) -> (xumm_gate::Running, DevPlatform) {
    let (gw, platform, _idp) = setup_full(shop_extra).await;
    (gw, platform)
}

/// The gateway, the development platform, and the identity provider (for Bearer tokens).
async fn setup_full(shop_extra: &str) -> (xumm_gate::Running, DevPlatform, xumm_gate::demo::idp::DevIdp) {
    let up = upstream().await;
    let idp = idp().await;
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), XUMM_KEY, XUMM_SECRET).await.unwrap();
    // the "other" app's secret is configured only as its SHA-256
    let other_hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(b"other-secret-0123456789").iter().map(|b| format!("{b:02x}")).collect()
    };
    let limit = if shop_extra.contains("max_per_minute") { "" } else { "max_per_minute = 3" };
    let more = format!(
        r#"
[xumm]
api_url = "{}"
api_key = "{XUMM_KEY}"
api_secret = "{XUMM_SECRET}"

[[broker.app]]
name = "shop"
key = "{SHOP_KEY}"
secret = "{SHOP_SECRET}"
allowed_tx_types = ["Payment"]
{limit}
{shop_extra}

[[broker.app]]
name = "other"
key = "other-key-123"
secret = "sha256:{other_hash}"
network = "MAINNET"
"#,
        platform.url
    );
    let cfg = auth_config(up, &idp.issuer, "", &more).replace(
        "[[route]]\npath = \"/public\"",
        &format!("[[upstream]]\npath = \"/shop\"\nurl = \"http://{up}\"\nbroker_app = \"shop\"\n\n[[route]]\npath = \"/public\""),
    );
    let gw = ready_gateway(&cfg).await;
    (gw, platform, idp)
}

async fn call(gw: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<serde_json::Value>) -> Got {
    let mut b = Request::builder().method(method).uri(format!("http://{gw}/.xumm/api/v1/platform/{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            full(v.to_string())
        }
        None => full(""),
    };
    send(b.body(body).unwrap()).await
}

fn shop() -> Vec<(&'static str, &'static str)> {
    vec![("x-api-key", SHOP_KEY), ("x-api-secret", SHOP_SECRET)]
}

fn payment() -> serde_json::Value {
    serde_json::json!({"txjson": {"TransactionType": "Payment", "Destination": OTHER_ACCOUNT, "Amount": "1000000"}})
}

#[tokio::test]
async fn backend_app_creates_reads_and_cancels() {
    let (gw, platform) = setup().await;
    let created = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    assert!(created.json()["next"]["always"].as_str().unwrap().contains(&uuid));
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(got.json()["gateway"]["outcome"], "pending");
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(got.json()["meta"]["signed"], true);
    assert_eq!(got.json()["gateway"]["outcome"], "signed");
    let second = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    let cancelled = call(gw.addr, "DELETE", &format!("payload/{second}"), &shop(), None).await;
    assert_eq!(cancelled.json()["result"]["cancelled"], true);
    let got = call(gw.addr, "GET", &format!("payload/{second}"), &shop(), None).await;
    assert_eq!(got.json()["gateway"]["outcome"], "cancelled");
    assert_eq!(call(gw.addr, "GET", "ping", &shop(), None).await.json()["pong"], true);
}

#[tokio::test]
async fn policy_refusals_and_cross_app_access() {
    let (gw, platform) = setup().await;
    let bad = call(gw.addr, "POST", "payload", &[("x-api-key", SHOP_KEY), ("x-api-secret", "wrong-secret-0000000")], Some(payment())).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.json()["error"]["code"].is_number());
    let trust = serde_json::json!({"txjson": {"TransactionType": "TrustSet"}});
    let before = platform.calls().len();
    let refused = call(gw.addr, "POST", "payload", &shop(), Some(trust)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(platform.calls().len(), before, "a refused request never reaches Xumm");
    assert_eq!(call(gw.addr, "POST", "payload", &shop(), Some(serde_json::json!([1]))).await.status, StatusCode::BAD_REQUEST);

    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    let other = [("x-api-key", "other-key-123"), ("x-api-secret", "other-secret-0123456789")];
    assert_eq!(call(gw.addr, "GET", &format!("payload/{uuid}"), &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(gw.addr, "DELETE", &format!("payload/{uuid}"), &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(gw.addr, "GET", "payload/not-a-uuid", &other, None).await.status, StatusCode::NOT_FOUND);
    // the "other" app, configured with only a hash, may ask for any type
    assert_eq!(call(gw.addr, "POST", "payload", &other, Some(serde_json::json!({"txjson": {"TransactionType": "TrustSet"}}))).await.status, StatusCode::OK);
    // nobody at all
    assert_eq!(call(gw.addr, "POST", "payload", &[], Some(payment())).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn per_app_rate_limit_answers_429_with_retry_after() {
    let (gw, _platform) = setup().await;
    for _ in 0..3 {
        assert_eq!(call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.status, StatusCode::OK);
    }
    let limited = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn signed_in_user_requests_are_bound_to_the_user() {
    let (gw, platform) = setup().await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let own_origin = "http://127.0.0.1:4180";
    let h = [("cookie", cookie.as_str()), ("origin", own_origin)];
    let created = call(gw.addr, "POST", "payload", &h, Some(payment())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(created.json()["pushed"], true, "the user's token was filled in, so Xumm pushes it");
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    let forwarded = platform.payload(&uuid).unwrap().request;
    assert!(forwarded["user_token"].as_str().is_some_and(|t| t.len() == 36));
    // a user_token that is not the user's own is refused
    let mut foreign = payment();
    foreign["user_token"] = serde_json::json!("00000000-0000-4000-8000-000000000000");
    assert_eq!(call(gw.addr, "POST", "payload", &h, Some(foreign)).await.status, StatusCode::FORBIDDEN);
    // signed by another wallet: reported as signer_mismatch, never as signed
    platform.resolve(&uuid, true, OTHER_ACCOUNT, "MAINNET");
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &[("cookie", cookie.as_str())], None).await;
    assert_eq!(got.json()["gateway"]["outcome"], "signer_mismatch");
    assert_eq!(got.json()["meta"]["signed"], false);
    // rejected
    let uuid2 = call(gw.addr, "POST", "payload", &h, Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    platform.resolve(&uuid2, false, ACCOUNT, "MAINNET");
    assert_eq!(call(gw.addr, "GET", &format!("payload/{uuid2}"), &[("cookie", cookie.as_str())], None).await.json()["gateway"]["outcome"], "rejected");
    // another user cannot see it
    let (n2, v2) = login(gw.addr, OTHER_ACCOUNT, "MAINNET").await;
    assert_eq!(call(gw.addr, "GET", &format!("payload/{uuid2}"), &[("cookie", &format!("{n2}={v2}"))], None).await.status, StatusCode::NOT_FOUND);
    // CSRF: a cookie write from a foreign origin, or not JSON, is refused
    assert_eq!(call(gw.addr, "POST", "payload", &[("cookie", cookie.as_str()), ("origin", "https://evil.example")], Some(payment())).await.status, StatusCode::UNAUTHORIZED);
    let plain = send(
        Request::post(format!("http://{}/.xumm/api/v1/platform/payload", gw.addr))
            .header("cookie", &cookie)
            .header("content-type", "text/plain")
            .body(full(payment().to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn xumm_failures_retry_idempotent_calls_and_never_leak_the_secret() {
    let (gw, platform) = setup().await;
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    platform.fail_next(&[StatusCode::SERVICE_UNAVAILABLE]);
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(got.status, StatusCode::OK, "GET is retried after a 503");
    platform.fail_next(&[StatusCode::SERVICE_UNAVAILABLE]);
    let posts_before = platform.calls().iter().filter(|c| c.starts_with("POST")).count();
    let got = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "POST is not retried");
    assert_eq!(platform.calls().iter().filter(|c| c.starts_with("POST")).count(), posts_before + 1);
    platform.fail_next(&[StatusCode::TOO_MANY_REQUESTS]);
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(got.headers["retry-after"], xumm_gate::demo::platform::INJECTED_RETRY_AFTER.to_string().as_str(), "Xumm's Retry-After");
    for body in [got.text(), call(gw.addr, "POST", "payload", &shop(), Some(serde_json::json!({"txjson": {}}))).await.text()] {
        assert!(!body.contains(XUMM_SECRET) && !body.contains(SHOP_SECRET), "{body}");
    }
}

#[tokio::test]
async fn webhooks_are_verified_over_the_raw_body() {
    let (gw, platform) = setup().await;
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    let body = format!(r#"{{"meta":{{"url":"x","application_uuidv4":"{XUMM_KEY}","payload_uuidv4":"{uuid}","opened_by_deeplink":true}},"payloadResponse":{{"payload_uuidv4":"{uuid}","signed":true}},"userToken":null}}"#);
    let hook = |ts: String, sig: String, body: String| {
        let addr = gw.addr;
        async move {
            send(
                Request::post(format!("http://{addr}/.xumm/webhook"))
                    .header("content-type", "application/json")
                    .header("user-agent", "xumm-webhook")
                    .header("x-xumm-request-timestamp", ts)
                    .header("x-xumm-request-signature", sig)
                    .body(full(body))
                    .unwrap(),
            )
            .await
        }
    };
    let now = xumm_gate::session::now().to_string();
    let good = xumm_gate::xumm::webhook::sign(XUMM_SECRET, &now, body.as_bytes());
    let gets_before = platform.calls().iter().filter(|c| c.starts_with("GET") && c.contains(&uuid)).count();
    assert_eq!(hook(now.clone(), good.clone(), body.clone()).await.status, StatusCode::OK);
    // replayed delivery
    assert_eq!(hook(now.clone(), good.clone(), body.clone()).await.status, StatusCode::UNAUTHORIZED);
    // a changed body (even one byte) or a wrong key
    let changed = body.replace("true}", "false}");
    assert_eq!(hook(now.clone(), good.clone(), changed).await.status, StatusCode::UNAUTHORIZED);
    let all_dashes = xumm_gate::xumm::webhook::sign(&XUMM_SECRET.replace('-', ""), &now, body.as_bytes());
    assert_eq!(hook(now.clone(), all_dashes, body.clone()).await.status, StatusCode::UNAUTHORIZED);
    // stale timestamp
    let old = (xumm_gate::session::now() - 3600).to_string();
    let stale = xumm_gate::xumm::webhook::sign(XUMM_SECRET, &old, body.as_bytes());
    assert_eq!(hook(old, stale, body.clone()).await.status, StatusCode::UNAUTHORIZED);
    // the accepted one made the gateway fetch the payload for its result
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let gets_after = platform.calls().iter().filter(|c| c.starts_with("GET") && c.contains(&uuid)).count();
    assert_eq!(gets_after, gets_before + 1);
}

#[tokio::test]
async fn backend_apps_get_a_user_token_handle_that_only_they_can_use() {
    let (gw, platform) = setup().await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    // the shop upstream sees a handle; other upstreams see none
    let seen = get_with(gw.addr, "/shop/checkout", &[("cookie", &cookie), ("x-xumm-user-token", "forged")]).await;
    let handle = seen.upstream_header("x-xumm-user-token");
    assert_eq!(handle.len(), 1);
    assert_ne!(handle[0], "forged");
    assert_eq!(get_with(gw.addr, "/shop/other", &[("cookie", &cookie)]).await.upstream_header("x-xumm-user-token"), handle, "reused");
    assert!(get_with(gw.addr, "/elsewhere", &[("cookie", &cookie)]).await.upstream_header("x-xumm-user-token").is_empty());
    // the app passes it as user_token in an ordinary SDK call; Xumm gets the real token
    let mut body = payment();
    body["user_token"] = serde_json::json!(handle[0]);
    let created = call(gw.addr, "POST", "payload", &shop(), Some(body.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(created.json()["pushed"], true);
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    let real = platform.payload(&uuid).unwrap().request["user_token"].as_str().unwrap().to_string();
    assert_eq!(real.len(), 36);
    assert_ne!(real, handle[0]);
    // bound to the user: another wallet signing it is a mismatch; the real token is never shown
    platform.resolve(&uuid, true, OTHER_ACCOUNT, "MAINNET");
    let got = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(got.json()["gateway"]["outcome"], "signer_mismatch");
    assert!(!got.text().contains(&real), "Xumm's user token leaked: {}", got.text());
    // useless to another app, as a made-up value, and after sign-out
    let other = [("x-api-key", "other-key-123"), ("x-api-secret", "other-secret-0123456789")];
    assert_eq!(call(gw.addr, "POST", "payload", &other, Some(body.clone())).await.status, StatusCode::FORBIDDEN);
    let mut raw = payment();
    raw["user_token"] = serde_json::json!(real);
    assert_eq!(call(gw.addr, "POST", "payload", &shop(), Some(raw)).await.status, StatusCode::FORBIDDEN);
    get_with(gw.addr, "/.xumm/sign_out", &[("cookie", &cookie)]).await;
    assert_eq!(call(gw.addr, "POST", "payload", &shop(), Some(body)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_app_that_demands_a_network_never_sees_testnet_as_signed() {
    let (gw, platform) = setup().await;
    let other = [("x-api-key", "other-key-123"), ("x-api-secret", "other-secret-0123456789")];
    let a = call(gw.addr, "POST", "payload", &other, Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    let b = call(gw.addr, "POST", "payload", &other, Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    platform.resolve(&a, true, ACCOUNT, "TESTNET");
    platform.resolve(&b, true, ACCOUNT, "MAINNET");
    let got = call(gw.addr, "GET", &format!("payload/{a}"), &other, None).await.json();
    assert_eq!(got["gateway"]["outcome"], "network_mismatch");
    assert_eq!(got["meta"]["signed"], false);
    assert_eq!(call(gw.addr, "GET", &format!("payload/{b}"), &other, None).await.json()["gateway"]["outcome"], "signed");
}

#[tokio::test]
async fn status_websocket_is_relayed_through_the_gateway() {
    use futures_util::StreamExt;
    let (gw, platform) = setup().await;
    let created = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json();
    let uuid = created["uuid"].as_str().unwrap().to_string();
    let ws_url = created["refs"]["websocket_status"].as_str().unwrap().to_string();
    assert_eq!(ws_url, format!("ws://127.0.0.1:4180/.xumm/sign/{uuid}"), "clients are pointed at the gateway's relay");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/.xumm/sign/{uuid}", gw.addr)).await.expect("relay upgrades");
    let next = |m: Option<Result<tokio_tungstenite::tungstenite::Message, _>>| -> serde_json::Value {
        serde_json::from_str(m.unwrap().unwrap().to_text().unwrap()).unwrap()
    };
    let welcome = next(ws.next().await);
    assert_eq!(welcome["message"], format!("Welcome {uuid}"));
    assert!(next(ws.next().await)["expires_in_seconds"].is_number());
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    let resolved = next(tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap());
    assert_eq!(resolved["payload_uuidv4"], uuid);
    assert_eq!(resolved["signed"], true);
    // the outcome message makes the gateway fetch the result itself (signer check, audit line)
    let fetched = format!("GET /api/v1/platform/payload/{uuid}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !platform.calls().contains(&fetched) {
        assert!(std::time::Instant::now() < deadline, "the gateway never fetched the payload: {:?}", platform.calls());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // keepalive pings (text, as the SDK sends them) reach Xumm and its answer comes back
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::text("{\"ping\":true}")).await.unwrap();
    let pong = next(tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.unwrap());
    assert_eq!(pong["message"], "Right back at you!");
    ws.close(None).await.unwrap();
    // a payload the gateway did not create is not relayed
    let unknown = tokio_tungstenite::connect_async(format!("ws://{}/.xumm/sign/00000000-0000-4000-8000-000000000000", gw.addr)).await;
    assert!(unknown.is_err());
}

#[tokio::test]
async fn a_low_rate_limit_budget_makes_the_gateway_back_off_before_xumm_refuses() {
    let (gw, platform) = setup().await;
    platform.limit_calls(3);
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    // 1 call left in Xumm's minute after this one: the gateway paces itself (60 s / 3 calls)
    assert_eq!(call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await.status, StatusCode::OK);
    let sent = platform.calls().len();
    let held = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS, "{}", held.text());
    let wait: u64 = held.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    assert_eq!(held.json()["error"]["code"], 429, "Xumm's error shape");
    assert_eq!(platform.calls().len(), sent, "the held call never reached Xumm");
}

#[tokio::test]
async fn xumms_429_retry_after_holds_later_calls_back() {
    let (gw, platform) = setup().await;
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    // another replica spends the app's budget: this gateway learns of it from Xumm's 429
    platform.limit_calls(2);
    let elsewhere = send(
        Request::get(format!("{}/api/v1/platform/ping", platform.url)).header("x-api-key", XUMM_KEY).header("x-api-secret", XUMM_SECRET).body(full("")).unwrap(),
    )
    .await;
    assert_eq!(elsewhere.headers["x-ratelimit-remaining"], "0");
    let refused = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((50..=61).contains(&wait), "Xumm's Retry-After passed on: {wait}");
    let sent = platform.calls().len();
    let held = call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(platform.calls().len(), sent, "no piling on while Xumm said to wait");
    let m = scrape(gw.admin_addr.unwrap()).await;
    assert!(m.value("xumm_gate_xumm_rate_limit_pauses_total", &[]) >= 1.0);
    assert!(m.value("xumm_gate_xumm_api_requests_total", &[("endpoint", "payload"), ("method", "GET"), ("status", "429")]) >= 1.0);
}

#[tokio::test]
async fn apps_verify_their_user_token_handles_with_the_unchanged_sdk_call() {
    let (gw, platform) = setup().await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let handle = get_with(gw.addr, "/shop/x", &[("cookie", &cookie)]).await.upstream_header("x-xumm-user-token")[0].clone();
    let ask = |tokens: serde_json::Value, app: Vec<(&'static str, &'static str)>| {
        let addr = gw.addr;
        async move { call(addr, "POST", "user-tokens", &app, Some(serde_json::json!({"tokens": tokens}))).await }
    };
    let got = ask(serde_json::json!([handle, "made-up"]), shop()).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let v = got.json();
    assert_eq!(v["tokens"][0]["user_token"], handle.as_str(), "answered under the handle");
    assert_eq!(v["tokens"][0]["active"], true);
    assert!(v["tokens"][0]["expires"].is_number());
    assert_eq!(v["tokens"][1], serde_json::json!({"user_token": "made-up", "active": false}));
    assert!(platform.calls().iter().any(|c| c == "POST /api/v1/platform/user-tokens"), "asked Xumm");
    // Xumm's answer for the real token, never the token itself
    let created = call(gw.addr, "POST", "payload", &shop(), Some({
        let mut b = payment();
        b["user_token"] = serde_json::json!(handle);
        b
    }))
    .await
    .json();
    let real = platform.payload(created["uuid"].as_str().unwrap()).unwrap().request["user_token"].as_str().unwrap().to_string();
    assert!(!got.text().contains(&real));
    platform.revoke_user_token(&real);
    assert_eq!(ask(serde_json::json!([handle]), shop()).await.json()["tokens"][0]["active"], false, "the user revoked it at Xumm");
    // another app's view of the handle: inactive, and Xumm is not asked
    let before = platform.calls().len();
    let other = vec![("x-api-key", "other-key-123"), ("x-api-secret", "other-secret-0123456789")];
    assert_eq!(ask(serde_json::json!([handle]), other).await.json()["tokens"][0]["active"], false);
    assert_eq!(platform.calls().len(), before);
    assert_eq!(ask(serde_json::json!("not a list"), shop()).await.status, StatusCode::BAD_REQUEST);
}

/// A backend app's callback endpoint: records each delivery, refuses the first one.
async fn callback_receiver() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<(http::HeaderMap, bytes::Bytes)>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tx, seen) = (tx.clone(), seen.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let _ = tx.send((parts.headers, body));
                        let status = if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { 503 } else { 204 };
                        Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(full("")).unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn resolved_payloads_are_reported_to_the_apps_callback_signed_by_the_gateway() {
    use hmac::Mac;
    const CALLBACK_SECRET: &str = "callback-secret-0123456789";
    let (receiver, mut deliveries) = callback_receiver().await;
    let (gw, platform) = setup_with(&format!("callback_url = \"http://{receiver}/xumm\"\ncallback_secret = \"{CALLBACK_SECRET}\"")).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let handle = get_with(gw.addr, "/shop/x", &[("cookie", &format!("{name}={value}"))]).await.upstream_header("x-xumm-user-token")[0].clone();
    let mut body = payment();
    body["user_token"] = serde_json::json!(handle);
    body["custom_meta"] = serde_json::json!({"identifier": "order-17"});
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(body)).await.json()["uuid"].as_str().unwrap().to_string();
    let real = platform.payload(&uuid).unwrap().request["user_token"].as_str().unwrap().to_string();
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    let hook = format!(r#"{{"meta":{{"payload_uuidv4":"{uuid}"}},"payloadResponse":{{"payload_uuidv4":"{uuid}","signed":true}},"userToken":{{"user_token":"{real}"}}}}"#);
    let ts = xumm_gate::session::now().to_string();
    let sig = xumm_gate::xumm::webhook::sign(XUMM_SECRET, &ts, hook.as_bytes());
    let answered = send(
        Request::post(format!("http://{}/.xumm/webhook", gw.addr))
            .header("x-xumm-request-timestamp", &ts)
            .header("x-xumm-request-signature", sig)
            .body(full(hook))
            .unwrap(),
    )
    .await;
    assert_eq!(answered.status, StatusCode::OK);
    // first delivery refused by the app, so the gateway tries again
    for attempt in ["1", "2"] {
        let (h, body) = tokio::time::timeout(std::time::Duration::from_secs(20), deliveries.recv()).await.expect("delivery").unwrap();
        assert_eq!(h["x-xumm-gate-attempt"], attempt);
        let ts = h["x-xumm-gate-timestamp"].to_str().unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(CALLBACK_SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&body);
        let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(h["x-xumm-gate-signature"], want.as_str(), "HMAC-SHA256(callback_secret, timestamp.body)");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["uuid"], uuid.as_str());
        assert_eq!(v["outcome"], "signed");
        assert_eq!(v["account"], ACCOUNT);
        assert_eq!(v["custom_meta"]["identifier"], "order-17");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains(&real) && !text.contains(XUMM_SECRET), "{text}");
    }
    assert!(tokio::time::timeout(std::time::Duration::from_millis(500), deliveries.recv()).await.is_err(), "delivered once accepted");
}

#[tokio::test]
async fn native_apps_ask_with_a_bearer_jwt_on_the_jwt_routes() {
    let (gw, platform, idp) = setup_full("").await;
    let jwt = |account: &str| format!("Bearer {}", idp.issue_token(CLIENT_ID, account, "MAINNET", serde_json::json!({})));
    let (mine, theirs) = (jwt(ACCOUNT), jwt(OTHER_ACCOUNT));
    let jwt_call = |method: &'static str, path: String, auth: String, body: Option<serde_json::Value>| {
        let addr = gw.addr;
        async move {
            let b = Request::builder().method(method).uri(format!("http://{addr}/.xumm/api/v1/jwt/{path}")).header("authorization", auth);
            let body = body.map_or(full(""), |v| full(v.to_string()));
            send(b.header("content-type", "application/json").body(body).unwrap()).await
        }
    };
    // no Origin needed: a Bearer token is not sent by browsers on their own (no CSRF)
    let created = jwt_call("POST", "payload".into(), mine.clone(), Some(payment())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(created.json()["pushed"], true, "the JWT's user token was filled in");
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    assert_eq!(platform.payload(&uuid).unwrap().request["user_token"].as_str().map(str::len), Some(36));
    // the user's own, not another user's, not the app's
    assert_eq!(jwt_call("GET", format!("payload/{uuid}"), theirs, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(gw.addr, "GET", &format!("payload/{uuid}"), &shop(), None).await.status, StatusCode::NOT_FOUND);
    // expired without an answer
    platform.expire(&uuid);
    let got = jwt_call("GET", format!("payload/{uuid}"), mine.clone(), None).await;
    assert_eq!(got.json()["gateway"]["outcome"], "expired", "{}", got.text());
    assert!(got.json()["gateway"]["created"].as_u64().is_some_and(|t| t + 60 > xumm_gate::session::now()));
    // a payload that asked for a network is never signed on another one
    let mut forced = payment();
    forced["options"] = serde_json::json!({"force_network": "MAINNET"});
    let forced = jwt_call("POST", "payload".into(), mine.clone(), Some(forced)).await.json()["uuid"].as_str().unwrap().to_string();
    platform.resolve(&forced, true, ACCOUNT, "TESTNET");
    assert_eq!(jwt_call("GET", format!("payload/{forced}"), mine.clone(), None).await.json()["gateway"]["outcome"], "network_mismatch");
    // a bad token is refused before anything reaches Xumm
    let posts = platform.calls().len();
    assert_eq!(jwt_call("POST", "payload".into(), "Bearer not.a.jwt".into(), Some(payment())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(platform.calls().len(), posts);
}

/// Xumm's webhook for a resolved payload, signed as Xumm signs it.
async fn post_webhook(gw: std::net::SocketAddr, uuid: &str) -> StatusCode {
    let hook = format!(r#"{{"meta":{{"payload_uuidv4":"{uuid}"}},"payloadResponse":{{"payload_uuidv4":"{uuid}","signed":true}}}}"#);
    let ts = xumm_gate::session::now().to_string();
    let sig = xumm_gate::xumm::webhook::sign(XUMM_SECRET, &ts, hook.as_bytes());
    let req = Request::post(format!("http://{gw}/.xumm/webhook")).header("x-xumm-request-timestamp", &ts).header("x-xumm-request-signature", sig).body(full(hook)).unwrap();
    send(req).await.status
}

#[tokio::test]
async fn a_resolved_payload_is_audited_and_called_back_exactly_once_however_the_news_races() {
    use futures_util::StreamExt;
    let audit = AuditFile::new();
    let (receiver, deliveries) = counting_receiver().await;
    let (gw, platform) = setup_with(&format!("max_per_minute = 100\ncallback_url = \"http://{receiver}/xumm\"\ncallback_secret = \"callback-secret-0123456789\"\n{}", audit.config())).await;
    const PAYLOADS: usize = 12;
    let mut uuids = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..PAYLOADS {
        let created = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text());
        let uuid = created.json()["uuid"].as_str().unwrap().to_string();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/.xumm/sign/{uuid}", gw.addr)).await.expect("relay upgrades");
        ws.next().await; // welcome
        sockets.push(ws);
        uuids.push(uuid);
    }
    // Every payload resolves at once; for each, the status socket, the webhook and three reads
    // by the app all arrive together.
    let mut racers = Vec::new();
    for (uuid, mut ws) in uuids.iter().cloned().zip(sockets) {
        platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
        let addr = gw.addr;
        racers.push(tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }));
        let u = uuid.clone();
        racers.push(tokio::spawn(async move { assert_eq!(post_webhook(addr, &u).await, StatusCode::OK) }));
        for _ in 0..3 {
            let u = uuid.clone();
            racers.push(tokio::spawn(async move {
                let got = call(addr, "GET", &format!("payload/{u}"), &shop(), None).await;
                assert_eq!(got.status, StatusCode::OK, "{}", got.text());
            }));
        }
    }
    // The sockets end when the gateway's relay closes them; give the background work time.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for r in racers {
        r.abort();
    }
    let logs = audit.lines();
    let delivered = deliveries.lock().unwrap().clone();
    for uuid in &uuids {
        let created: Vec<&serde_json::Value> = logs.iter().filter(|l| l["event"] == "payload_created" && l["uuid"] == uuid.as_str()).collect();
        assert_eq!(created.len(), 1, "{created:?}");
        assert_eq!((created[0]["app"].as_str(), created[0]["tx_type"].as_str(), created[0]["log"].as_str()), (Some("shop"), Some("Payment"), Some("audit")));
        assert!(created[0]["request_id"].as_str().is_some_and(|r| !r.is_empty()) && created[0]["client_ip"] == "127.0.0.1", "{:?}", created[0]);
        let audits: Vec<&serde_json::Value> = logs.iter().filter(|l| l["event"] == "payload_resolved" && l["uuid"] == uuid.as_str()).collect();
        assert_eq!(audits.len(), 1, "one audit line per outcome for {uuid}: {audits:?}");
        assert_eq!(audits[0]["outcome"], "signed");
        assert_eq!(audits[0]["account"], serde_json::Value::Null, "an app's payload names no signed-in user");
        assert_eq!(delivered.iter().filter(|d| *d == uuid).count(), 1, "one callback per outcome for {uuid}: {delivered:?}");
    }
}

#[tokio::test]
async fn broker_webhook_and_callback_metrics_and_audit_lines() {
    let audit = AuditFile::new();
    let (receiver, deliveries) = counting_receiver().await;
    let (gw, platform) = setup_with(&format!("max_per_minute = 100\ncallback_url = \"http://{receiver}/xumm\"\ncallback_secret = \"callback-secret-0123456789\"\n{}", audit.config())).await;
    let admin = gw.admin_addr.unwrap();
    let before = scrape(admin).await;
    let uuid = call(gw.addr, "POST", "payload", &shop(), Some(payment())).await.json()["uuid"].as_str().unwrap().to_string();
    let trust = serde_json::json!({"txjson": {"TransactionType": "TrustSet"}});
    assert_eq!(call(gw.addr, "POST", "payload", &shop(), Some(trust)).await.status, StatusCode::FORBIDDEN);
    // A webhook with a bad signature is refused and audited; the real one is accepted.
    let forged = Request::post(format!("http://{}/.xumm/webhook", gw.addr))
        .header("x-xumm-request-timestamp", xumm_gate::session::now().to_string())
        .header("x-xumm-request-signature", "00".repeat(20))
        .body(full(format!(r#"{{"meta":{{"payload_uuidv4":"{uuid}"}}}}"#)))
        .unwrap();
    assert_eq!(send(forged).await.status, StatusCode::UNAUTHORIZED);
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    assert_eq!(post_webhook(gw.addr, &uuid).await, StatusCode::OK);
    for _ in 0..100 {
        if deliveries.lock().unwrap().contains(&uuid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(deliveries.lock().unwrap().contains(&uuid), "callback delivered");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let after = scrape(admin).await;
    let grew = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    assert!(grew("xumm_gate_broker_payloads_total", &[("app", "shop"), ("tx_type", "Payment"), ("outcome", "created")]) >= 1.0);
    assert!(grew("xumm_gate_broker_payloads_total", &[("app", "shop"), ("tx_type", "Payment"), ("outcome", "signed")]) >= 1.0);
    assert!(grew("xumm_gate_broker_payloads_total", &[("app", "shop"), ("tx_type", "TrustSet"), ("outcome", "refused")]) >= 1.0);
    assert_eq!(grew("xumm_gate_broker_payloads_total", &[("app", "shop"), ("tx_type", "TrustSet"), ("outcome", "created")]), 0.0);
    assert!(grew("xumm_gate_xumm_api_requests_total", &[("endpoint", "payload"), ("method", "POST"), ("status", "200")]) >= 1.0);
    assert!(grew("xumm_gate_xumm_api_duration_seconds", &[("endpoint", "payload")]) >= 2.0);
    assert!(grew("xumm_gate_webhooks_total", &[("result", "signature")]) >= 1.0);
    assert!(grew("xumm_gate_webhooks_total", &[("result", "accepted")]) >= 1.0);
    assert!(grew("xumm_gate_callback_deliveries_total", &[("result", "delivered")]) >= 1.0);
    let text = get(admin, "/metrics").await.text();
    assert!(!text.contains(&uuid), "a payload uuid became a label");
    let lines = audit.lines();
    assert!(lines.iter().any(|l| l["event"] == "webhook_refused" && l["reason"] == "signature"), "{lines:?}");
    let log = audit.text();
    for secret in [XUMM_SECRET, SHOP_SECRET, "callback-secret-0123456789"] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}
