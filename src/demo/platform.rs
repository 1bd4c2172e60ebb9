//! The development Xumm platform: the payload API (`/api/v1/platform/...`) with Xumm's wire
//! shapes, for the demo and the tests. It must never bind a non-loopback address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The Retry-After an injected 429 carries.
pub const INJECTED_RETRY_AFTER: u64 = 7;

#[derive(Clone, Debug)]
pub struct Payload {
    pub request: Value,
    pub resolved: bool,
    pub signed: bool,
    pub cancelled: bool,
    pub expired: bool,
    pub account: Option<String>,
    pub nodetype: String,
}

/// A one-time token Xumm issued when it opened an xApp.
#[derive(Clone, Debug)]
struct Ott {
    /// The app (API key) it was issued to.
    app: String,
    account: String,
    nodetype: String,
    access: String,
    style: String,
    issued: std::time::Instant,
    spent: bool,
}

/// A one-time token lives this long (Xumm: "only valid for one minute").
const OTT_LIFE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct State {
    /// One-time tokens of xApp launches.
    otts: Mutex<HashMap<String, Ott>>,
    /// Where the xApp launcher opens the app (the gateway's URL).
    xapp_url: Mutex<String>,
    key: String,
    secret: String,
    payloads: Mutex<HashMap<String, Payload>>,
    /// Status codes to answer the next calls with (front first), for failure tests.
    fail: Mutex<Vec<StatusCode>>,
    calls: Mutex<Vec<String>>,
    /// Xumm's sliding-minute budget: the limit and the instants of the calls within the minute.
    budget: Mutex<(u64, Vec<std::time::Instant>)>,
    /// User tokens the user has revoked (every other uuid-shaped token counts as active).
    revoked: Mutex<Vec<String>>,
    /// Accounts whose KYC Xumm approved.
    kyc: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct DevPlatform {
    pub addr: SocketAddr,
    pub url: String,
    state: Arc<State>,
}

impl DevPlatform {
    pub async fn start(addr: SocketAddr, key: &str, secret: &str) -> std::io::Result<DevPlatform> {
        let state = Arc::new(State { key: key.into(), secret: secret.into(), budget: Mutex::new((600, Vec::new())), ..Default::default() });
        let st = state.clone();
        let listener = super::bind_loopback(addr, "development platform").await?;
        let addr = listener.local_addr()?;
        super::serve(listener, move |req| handle(st.clone(), req));
        Ok(DevPlatform { addr, url: format!("http://{addr}"), state })
    }

    /// The user acts on a payload in the wallet.
    pub fn resolve(&self, uuid: &str, signed: bool, account: &str, nodetype: &str) {
        if let Some(p) = self.state.payloads.lock().unwrap().get_mut(uuid) {
            p.resolved = true;
            p.signed = signed;
            p.account = Some(account.to_string());
            p.nodetype = nodetype.to_string();
        }
    }

    /// Xumm approves the KYC of `account`.
    pub fn approve_kyc(&self, account: &str) {
        self.state.kyc.lock().unwrap().push(account.to_string());
    }

    /// Nobody acted on the payload before it expired.
    pub fn expire(&self, uuid: &str) {
        if let Some(p) = self.state.payloads.lock().unwrap().get_mut(uuid) {
            p.expired = true;
        }
    }

    pub fn payload(&self, uuid: &str) -> Option<Payload> {
        self.state.payloads.lock().unwrap().get(uuid).cloned()
    }

    /// The next calls are answered with these statuses (a 429 with `Retry-After: 7`).
    pub fn fail_next(&self, statuses: &[StatusCode]) {
        self.state.fail.lock().unwrap().extend_from_slice(statuses);
    }

    /// Xumm's per-app budget of API calls per sliding minute (600 unless set).
    pub fn limit_calls(&self, per_minute: u64) {
        self.state.budget.lock().unwrap().0 = per_minute;
    }

    /// The user revokes a user token (it answers `active: false` from now on).
    pub fn revoke_user_token(&self, token: &str) {
        self.state.revoked.lock().unwrap().push(token.to_string());
    }

    /// Xumm opens this app as an xApp for `account`: a one-time token for it (`access`: FULL or
    /// READONLY).
    pub fn issue_ott(&self, account: &str, nodetype: &str, access: &str) -> String {
        issue_ott(&self.state, &self.state.key, account, nodetype, access, "LIGHT")
    }

    /// A one-time token Xumm issued to another app.
    pub fn issue_foreign_ott(&self, account: &str) -> String {
        issue_ott(&self.state, "another-app", account, "MAINNET", "FULL", "LIGHT")
    }

    /// Makes Xumm report another transaction type for a payload (for tests of the checks).
    pub fn set_tx_type(&self, uuid: &str, tx_type: &str) {
        if let Some(p) = self.state.payloads.lock().unwrap().get_mut(uuid) {
            p.request["txjson"]["TransactionType"] = tx_type.into();
        }
    }

    /// Ages a one-time token past its minute.
    pub fn expire_ott(&self, token: &str) {
        if let Some(o) = self.state.otts.lock().unwrap().get_mut(token) {
            o.issued -= OTT_LIFE + std::time::Duration::from_secs(1);
        }
    }

    /// An xApp JWT for `account`, as `jwt/authorize` gives an xApp's frontend: HS256 with the
    /// API secret, `claims` merged over the usual ones (to forge or expire one in tests).
    pub fn xapp_jwt(&self, account: &str, network: &str, claims: Value) -> String {
        xapp_jwt(&self.state, account, network, claims)
    }

    /// Where the xApp launcher page (`/xapp`) opens the app.
    pub fn set_xapp_url(&self, url: &str) {
        *self.state.xapp_url.lock().unwrap() = url.to_string();
    }

    /// "METHOD path" of every call received.
    pub fn calls(&self) -> Vec<String> {
        self.state.calls.lock().unwrap().clone()
    }
}

/// Xumm's status WebSocket (`wss://xumm.app/sign/{uuid}`): welcome, remaining time, then the
/// resolution message when the user acts.
fn status_socket(st: Arc<State>, mut req: Request<Incoming>, uuid: String) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else { return error(StatusCode::BAD_REQUEST, 400) };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let Ok(upgraded) = on.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), tokio_tungstenite::tungstenite::protocol::Role::Server, None).await;
        let known = st.payloads.lock().unwrap().contains_key(&uuid);
        if !known {
            let _ = ws.send(Message::text(json!({"message": "No such payload"}).to_string())).await;
            return;
        }
        let _ = ws.send(Message::text(json!({"message": format!("Welcome {uuid}")}).to_string())).await;
        let _ = ws.send(Message::text(json!({"expires_in_seconds": 300}).to_string())).await;
        // Like Xumm: the socket stays open after the outcome (the client closes it), keepalive
        // pings are answered, and the outcome is sent once.
        use futures_util::StreamExt;
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut told = false;
        loop {
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(t))) if t.contains("\"ping\"") => {
                        let _ = ws.send(Message::text(json!({"message": "Right back at you!"}).to_string())).await;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
                _ = poll.tick(), if !told => {
                    let p = st.payloads.lock().unwrap().get(&uuid).cloned();
                    let Some(p) = p else { return };
                    if !(p.resolved || p.cancelled || p.expired) {
                        continue;
                    }
                    let msg = if p.cancelled || p.expired {
                        json!({"expired": true})
                    } else {
                        json!({"payload_uuidv4": uuid, "reference_call_uuidv4": uuid_like(), "signed": p.signed, "opened_by_deeplink": false,
                               "user_token": p.request.get("user_token").is_some(), "return_url": {"app": null, "web": null},
                               "custom_meta": p.request.get("custom_meta"), "txid": if p.signed { json!("AB".repeat(32)) } else { Value::Null }})
                    };
                    let _ = ws.send(Message::text(msg.to_string())).await;
                    told = true;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The "wallet": what a user's phone would show for a sign request, as a page with approve/reject.
async fn wallet(st: &State, req: Request<Incoming>, rest: String) -> Response<Full<Bytes>> {
    let html = |body: String| {
        let mut r = Response::new(Full::new(Bytes::from(crate::pages::document("Xumm (development) wallet", &body))));
        r.headers_mut().insert(header::CONTENT_TYPE, "text/html; charset=utf-8".parse().unwrap());
        r
    };
    let esc = crate::pages::esc;
    if let Some(uuid) = rest.strip_suffix("/decide") {
        let form = match Limited::new(req.into_body(), 16 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let f: HashMap<String, String> = url::form_urlencoded::parse(&form).into_owned().collect();
        let mut all = st.payloads.lock().unwrap();
        let Some(p) = all.get_mut(uuid) else { return html("<h1>Unknown sign request</h1>".into()) };
        if p.resolved || p.cancelled {
            return html("<h1>This sign request is already resolved</h1>".into());
        }
        p.resolved = true;
        p.signed = f.get("action").map(String::as_str) == Some("approve");
        p.account = f.get("account").cloned();
        return html(format!("<h1 id=\"done\">{}</h1><p>You can close this tab.</p>", if p.signed { "Signed" } else { "Rejected" }));
    }
    let all = st.payloads.lock().unwrap();
    let Some(p) = all.get(&rest) else { return html("<h1>Unknown sign request</h1>".into()) };
    let tx = serde_json::to_string_pretty(&p.request["txjson"]).unwrap_or_default();
    // What Xumm shows above the transaction: the app's instruction for this request.
    let instruction = match p.request["custom_meta"]["instruction"].as_str() {
        Some(i) => format!("<p id=\"instruction\" class=\"note\">{}</p>", esc(i)),
        None => String::new(),
    };
    html(format!(
        "<h1>Sign request</h1><p>xumm-gate's <strong>development</strong> wallet. In production this opens in Xumm on the user's phone.</p>\
         {instruction}<pre>{}</pre><form method=\"post\" action=\"/sign/{}/decide\"><label>Signing account<br>\
         <input id=\"account\" name=\"account\" value=\"{}\"></label><br>\
         <button id=\"approve\" name=\"action\" value=\"approve\">Sign</button> <button id=\"reject\" name=\"action\" value=\"reject\">Reject</button></form>",
        esc(&tx),
        esc(&rest),
        crate::demo::idp::DEMO_ACCOUNT
    ))
}

fn xapp_jwt(st: &State, account: &str, network: &str, claims: Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut c = json!({
        "client_id": st.key, "app_uuidv4": st.key, "app_name": "development app", "sub": account, "usr": account, "net": network,
        "iss": "https://xumm.app", "iat": now, "exp": now + 24 * 3600,
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), claims.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &c, &jsonwebtoken::EncodingKey::from_secret(st.secret.as_bytes())).unwrap_or_default()
}

/// `GET /api/v1/jwt/authorize` (x-api-key, x-api-ott): an xApp frontend trades its one-time
/// token for the launch data and a JWT; the token is spent.
fn authorize(st: &State, h: &http::HeaderMap) -> Response<Full<Bytes>> {
    let key_ok = h.get("x-api-key").is_some_and(|v| v.as_bytes() == st.key.as_bytes());
    let Some(ott) = h.get("x-api-ott").and_then(|v| v.to_str().ok()).filter(|_| key_ok) else { return error(StatusCode::FORBIDDEN, 813) };
    let resolved = resolve_ott(st, ott);
    if resolved.status() != StatusCode::OK {
        return resolved;
    }
    let data = st.otts.lock().unwrap().get(ott).cloned();
    let Some(o) = data else { return error(StatusCode::NOT_FOUND, 404) };
    let jwt = xapp_jwt(st, &o.account, &o.nodetype, json!({}));
    reply(StatusCode::OK, json!({"ott": {"account": o.account, "nodetype": o.nodetype, "accountaccess": o.access, "style": o.style}, "app": {"name": "development app"}, "jwt": jwt}))
}

/// The user token a signed payload issues: the one it was pushed with, else one per account
/// (uuid-shaped, so `user-tokens` counts it active).
fn issued_user_token(p: &Payload) -> Value {
    if !p.signed {
        return p.request.get("user_token").cloned().unwrap_or(Value::Null);
    }
    if let Some(t) = p.request.get("user_token") {
        return t.clone();
    }
    let Some(a) = &p.account else { return Value::Null };
    use sha2::Digest;
    let h: String = sha2::Sha256::digest(a.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
    json!(format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32]))
}

fn issue_ott(st: &State, app: &str, account: &str, nodetype: &str, access: &str, style: &str) -> String {
    let token = uuid_like();
    let ott = Ott { app: app.into(), account: account.into(), nodetype: nodetype.into(), access: access.into(), style: style.into(), issued: std::time::Instant::now(), spent: false };
    st.otts.lock().unwrap().insert(token.clone(), ott);
    token
}

/// `GET xapp/ott/{token}`: what Xumm knows of the launch, once, within its minute.
fn resolve_ott(st: &State, token: &str) -> Response<Full<Bytes>> {
    let mut all = st.otts.lock().unwrap();
    let Some(o) = all.get_mut(token).filter(|o| o.app == st.key) else { return error(StatusCode::NOT_FOUND, 404) };
    if o.spent || o.issued.elapsed() > OTT_LIFE {
        return error(StatusCode::BAD_REQUEST, 400);
    }
    o.spent = true;
    reply(
        StatusCode::OK,
        json!({
            "locale": "en", "version": "2.7.0", "account": o.account, "accountaccess": o.access, "accounttype": "REGULAR",
            "style": o.style, "origin": {"type": "XAPP", "data": {}}, "user": uuid_like(),
            "user_device": {"currency": "USD", "platform": "ios"},
            "account_info": {"account": o.account, "name": null, "domain": null, "blocked": false, "source": "", "kycApproved": false, "proSubscription": false},
            "nodetype": o.nodetype, "nodewss": "wss://testnet.xrpl-labs.com", "networkid": 1, "currency": "USD", "subscriptions": [],
        }),
    )
}

/// The xApp launcher: what tapping an xApp in the wallet does (a one-time token, then the app
/// opened with it), as a page with the account and the wallet's settings to choose.
async fn launcher(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let esc = crate::pages::esc;
    if req.method() == Method::POST {
        let form = match Limited::new(req.into_body(), 16 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let f: HashMap<String, String> = url::form_urlencoded::parse(&form).into_owned().collect();
        let get = |k: &str, d: &str| f.get(k).cloned().unwrap_or_else(|| d.to_string());
        let style = get("style", "LIGHT");
        let token = issue_ott(st, &st.key, &get("account", crate::demo::idp::DEMO_ACCOUNT), &get("network", "MAINNET"), &get("access", "FULL"), &style);
        let base = st.xapp_url.lock().unwrap().clone();
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut().insert(header::LOCATION, format!("{base}{sep}xAppToken={token}&xAppStyle={style}").parse().unwrap());
        return r;
    }
    let select = |name: &str, options: &[&str]| {
        let o: String = options.iter().map(|v| format!("<option>{v}</option>")).collect();
        format!("<label>{name}<br><select id=\"{name}\" name=\"{name}\">{o}</select></label><br>")
    };
    let body = format!(
        "<h1>Open an xApp</h1><p>xumm-gate's <strong>development</strong> wallet. In Xumm, tapping an xApp opens it \
         with a one-time token; this does the same for the app behind the gateway.</p>\
         <form method=\"post\" action=\"/xapp\"><label>Account<br><input id=\"account\" name=\"account\" value=\"{}\"></label><br>{}{}{}\
         <button id=\"open\">Open the xApp</button></form>",
        esc(crate::demo::idp::DEMO_ACCOUNT),
        select("network", &["MAINNET", "TESTNET", "DEVNET", "XAHAU"]),
        select("access", &["FULL", "READONLY"]),
        select("style", &["LIGHT", "DARK", "MOONLIGHT", "ROYAL"]),
    );
    let mut r = Response::new(Full::new(Bytes::from(crate::pages::document("Xumm (development) wallet", &body))));
    r.headers_mut().insert(header::CONTENT_TYPE, "text/html; charset=utf-8".parse().unwrap());
    r
}

fn reply(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    r
}

fn error(status: StatusCode, code: i64) -> Response<Full<Bytes>> {
    reply(status, json!({"error": {"reference": uuid_like(), "code": code}}))
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    st.calls.lock().unwrap().push(format!("{} {path}", req.method()));
    if let Some(s) = { let mut f = st.fail.lock().unwrap(); if f.is_empty() { None } else { Some(f.remove(0)) } } {
        let mut r = error(s, s.as_u16() as i64);
        if s == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(header::RETRY_AFTER, INJECTED_RETRY_AFTER.into());
        }
        return Ok(r);
    }
    if let Some(rest) = path.strip_prefix("/sign/") {
        if req.headers().contains_key(header::UPGRADE) {
            return Ok(status_socket(st, req, rest.to_string()));
        }
        return Ok(wallet(&st, req, rest.to_string()).await);
    }
    if path == "/xapp" {
        return Ok(launcher(&st, req).await);
    }
    if path == "/api/v1/jwt/authorize" {
        return Ok(authorize(&st, req.headers()));
    }
    let h = req.headers();
    let ok = h.get("x-api-key").is_some_and(|v| v.as_bytes() == st.key.as_bytes()) && h.get("x-api-secret").is_some_and(|v| v.as_bytes() == st.secret.as_bytes());
    if !ok {
        return Ok(error(StatusCode::FORBIDDEN, 813));
    }
    let Some(rest) = path.strip_prefix("/api/v1/platform/") else { return Ok(error(StatusCode::NOT_FOUND, 404)) };
    // Every answer carries the budget left in the sliding minute; past it, 429.
    const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);
    let (limit, remaining) = {
        let mut b = st.budget.lock().unwrap();
        b.1.retain(|t| t.elapsed() < MINUTE);
        let over = b.1.len() as u64 >= b.0;
        // past the budget: Retry-After is when the oldest call in the minute ages out
        let free_in = b.1.first().map_or(0, |t| MINUTE.saturating_sub(t.elapsed()).as_secs() + 1);
        if !over {
            b.1.push(std::time::Instant::now());
        }
        (b.0, if over { Err(free_in) } else { Ok(b.0 - b.1.len() as u64) })
    };
    let mut resp = match remaining {
        Ok(_) => api(&st, req, rest).await,
        Err(free_in) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 429);
            r.headers_mut().insert(header::RETRY_AFTER, free_in.into());
            r
        }
    };
    resp.headers_mut().insert("x-ratelimit-limit", limit.into());
    resp.headers_mut().insert("x-ratelimit-remaining", remaining.unwrap_or(0).into());
    Ok(resp)
}

/// The payload API proper, for a caller with the app's credentials.
async fn api(st: &State, req: Request<Incoming>, rest: &str) -> Response<Full<Bytes>> {
    let h = req.headers();
    let method = req.method().clone();
    let base = format!("http://{}", h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1"));
    match (method, rest) {
        (Method::GET, "ping") => reply(StatusCode::OK, json!({"pong": true, "auth": {"application": {"uuidv4": st.key, "name": "development app", "disabled": 0}}})),
        (Method::POST, "payload") => {
            let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::BAD_REQUEST, 400),
            };
            let Ok(request) = serde_json::from_slice::<Value>(&body) else { return error(StatusCode::BAD_REQUEST, 602) };
            if request.get("txjson").is_none() && request.get("txblob").is_none() {
                return error(StatusCode::BAD_REQUEST, 602);
            }
            let uuid = uuid_like();
            let pushed = request.get("user_token").is_some();
            st.payloads.lock().unwrap().insert(uuid.clone(), Payload { request, resolved: false, signed: false, cancelled: false, expired: false, account: None, nodetype: "MAINNET".into() });
            reply(StatusCode::OK, json!({
                "uuid": uuid,
                "next": {"always": format!("{base}/sign/{uuid}"), "no_push_msg_received": format!("{base}/sign/{uuid}/qr")},
                "refs": {"qr_png": format!("{base}/sign/{uuid}_q.png"), "qr_matrix": format!("{base}/sign/{uuid}_q.json"),
                         "qr_uri_quality_opts": ["m", "q", "h"], "websocket_status": format!("ws://{}/sign/{uuid}", base.trim_start_matches("http://"))},
                "pushed": pushed,
            }))
        }
        (m, r) if r.starts_with("payload/") => {
            let uuid = r.trim_start_matches("payload/").to_string();
            let mut all = st.payloads.lock().unwrap();
            let Some(p) = all.get_mut(&uuid) else { return error(StatusCode::NOT_FOUND, 404) };
            if m == Method::DELETE {
                let reason = if p.resolved { "ALREADY_RESOLVED" } else if p.cancelled { "ALREADY_CANCELLED" } else { "OK" };
                let cancelled = reason == "OK";
                p.cancelled = p.cancelled || cancelled;
                return reply(StatusCode::OK, json!({"result": {"cancelled": cancelled, "reason": reason}, "meta": {"uuid": uuid}, "custom_meta": p.request.get("custom_meta")}));
            }
            let tx_type = p.request["txjson"]["TransactionType"].as_str().unwrap_or("").to_string();
            reply(StatusCode::OK, json!({
                "meta": {"exists": true, "uuid": uuid, "resolved": p.resolved, "signed": p.signed, "cancelled": p.cancelled,
                         "expired": p.cancelled || p.expired, "pushed": p.request.get("user_token").is_some(), "submit": true, "multisign": false},
                "application": {"name": "development app", "uuidv4": st.key, "issued_user_token": issued_user_token(p)},
                "payload": {"tx_type": tx_type, "request_json": p.request["txjson"]},
                "response": {"account": p.account, "txid": if p.signed { json!("AB".repeat(32)) } else { Value::Null },
                             "dispatched_nodetype": p.nodetype, "environment_nodetype": p.nodetype},
                "custom_meta": p.request.get("custom_meta"),
            }))
        }
        (Method::GET, r) if r.starts_with("xapp/ott/") => resolve_ott(st, &r["xapp/ott/".len()..]),
        (Method::GET, r) if r.starts_with("kyc-status/") => {
            let account = &r["kyc-status/".len()..];
            reply(StatusCode::OK, json!({"account": account, "kycApproved": st.kyc.lock().unwrap().iter().any(|a| a == account)}))
        }
        (Method::POST, "user-tokens") => {
            let body = Limited::new(req.into_body(), 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let Some(tokens) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["tokens"].as_array().cloned()) else {
                return error(StatusCode::BAD_REQUEST, 602);
            };
            let revoked = st.revoked.lock().unwrap();
            let now = crate::session::now();
            let states: Vec<Value> = tokens
                .iter()
                .filter_map(|t| t.as_str())
                .map(|t| {
                    let active = t.len() == 36 && !revoked.iter().any(|r| r == t);
                    json!({"user_token": t, "active": active, "issued": now - 86_400, "expires": now + 29 * 86_400})
                })
                .collect();
            reply(StatusCode::OK, json!({"tokens": states}))
        }
        _ => error(StatusCode::NOT_FOUND, 404),
    }
}
