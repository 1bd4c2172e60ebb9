//! The development identity provider: behaves like Xumm's OAuth2 server as `shared/XUMM.md`
//! describes it (discovery, authorize page, token endpoint quirks, JWKS without `kid`, 24 h RS256
//! tokens with Xumm's claims). It must never bind a non-loopback address: its keys are public.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Development-only RSA keys (public knowledge: never trust this provider outside loopback).
const KEYS: [&str; 2] = [include_str!("keys/dev-idp-1.pem"), include_str!("keys/dev-idp-2.pem")];
pub const DEMO_ACCOUNT: &str = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh";
pub const TOKEN_LIFETIME: u64 = 86_400;

#[derive(Clone, Debug)]
pub struct ClientApp {
    pub id: String,
    pub secret: String,
    pub name: String,
}

struct KeyPair {
    enc: EncodingKey,
    jwk: serde_json::Value,
}

fn keypair(pem: &str) -> KeyPair {
    use base64::Engine;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("bundled dev key parses");
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    KeyPair {
        enc: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("bundled dev key parses"),
        // Like Xumm's: no kid on tokens; the JWKS entry carries none either.
        jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())}),
    }
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    scope: Option<String>,
    account: String,
    network: String,
    created: u64,
    fetched: bool,
}

struct State {
    issuer: String,
    clients: Vec<ClientApp>,
    keys: Vec<KeyPair>,
    active: Mutex<usize>,
    codes: Mutex<HashMap<String, Grant>>,
    /// Claims set on (or, as JSON null, removed from) the tokens the code flow issues: tests
    /// play a provider that issues bad tokens.
    overrides: Mutex<serde_json::Map<String, serde_json::Value>>,
    /// The JWKS lists every key (a rotation's overlap window), not only the active one.
    overlap: std::sync::atomic::AtomicBool,
    /// `Cache-Control: max-age` on the JWKS (seconds), when set.
    jwks_max_age: Mutex<Option<u64>>,
    jwks_requests: std::sync::atomic::AtomicU64,
    token_requests: std::sync::atomic::AtomicU64,
    /// The JWKS answers 503 (a provider outage).
    jwks_down: std::sync::atomic::AtomicBool,
}

/// A running development provider.
#[derive(Clone)]
pub struct DevIdp {
    pub addr: SocketAddr,
    pub issuer: String,
    state: Arc<State>,
}

impl DevIdp {
    /// Starts the provider on `addr` (loopback only) for the given client apps.
    pub async fn start(addr: SocketAddr, clients: Vec<ClientApp>) -> std::io::Result<DevIdp> {
        let listener = super::bind_loopback(addr, "development provider").await?;
        let addr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let state = Arc::new(State {
            issuer: issuer.clone(),
            clients,
            keys: KEYS.iter().map(|p| keypair(p)).collect(),
            active: Mutex::new(0),
            codes: Mutex::new(HashMap::new()),
            overrides: Mutex::default(),
            overlap: Default::default(),
            jwks_max_age: Mutex::new(None),
            jwks_requests: Default::default(),
            token_requests: Default::default(),
            jwks_down: Default::default(),
        });
        let st = state.clone();
        super::serve(listener, move |req| handle(st.clone(), req));
        Ok(DevIdp { addr, issuer, state })
    }

    /// Switches to the other signing key; the JWKS then lists only the new key.
    pub fn rotate_key(&self) {
        let mut a = self.state.active.lock().unwrap();
        *a = (*a + 1) % self.state.keys.len();
    }

    /// Sets claims on the code flow's next tokens (JSON null removes a claim); `{}` resets.
    pub fn override_claims(&self, claims: serde_json::Value) {
        *self.state.overrides.lock().unwrap() = claims.as_object().cloned().unwrap_or_default();
    }

    /// During a rotation's overlap window the JWKS lists the old key beside the new one.
    pub fn set_overlap(&self, on: bool) {
        self.state.overlap.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// `Cache-Control: max-age` for the JWKS (None: no such header).
    pub fn set_jwks_max_age(&self, secs: Option<u64>) {
        *self.state.jwks_max_age.lock().unwrap() = secs;
    }

    /// Makes the JWKS answer 503 (or answer again).
    pub fn fail_jwks(&self, down: bool) {
        self.state.jwks_down.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    /// How often the token endpoint was called.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How often the JWKS was fetched.
    pub fn jwks_requests(&self) -> u64 {
        self.state.jwks_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Issues a token as the implicit flow would (for native-app tests).
    pub fn issue_token(&self, client_id: &str, account: &str, network: &str, extra: serde_json::Value) -> String {
        sign(&self.state, client_id, account, network, None, None, extra)
    }
}

fn now() -> u64 {
    crate::session::now()
}

fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
}

fn sign(st: &State, client_id: &str, account: &str, network: &str, nonce: Option<&str>, scope: Option<&str>, extra: serde_json::Value) -> String {
    let app = st.clients.iter().find(|c| c.id == client_id);
    let iat = now();
    let mut claims = json!({
        "client_id": client_id, "aud": client_id, "app_uuidv4": client_id,
        "app_name": app.map_or("unknown", |a| a.name.as_str()),
        "sub": account,
        "email": format!("{client_id}+{account}@xumm.me"),
        "payload_uuidv4": uuid_like(), "usertoken_uuidv4": uuid_like(),
        "network_type": network, "network_endpoint": "wss://xrplcluster.com", "network_id": "0",
        "iat": iat, "exp": iat + TOKEN_LIFETIME, "iss": st.issuer,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(s) = scope {
        claims["scope"] = json!(s);
    }
    if let (Some(obj), Some(more)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    let key = &st.keys[*st.active.lock().unwrap()];
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key.enc).expect("signing with a bundled key")
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

type Resp = Response<Full<Bytes>>;

fn json_resp(status: StatusCode, v: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    r.headers_mut().insert("access-control-allow-origin", "*".parse().unwrap());
    r
}

fn oauth_error(kind: &str, desc: &str) -> Resp {
    json_resp(StatusCode::BAD_REQUEST, json!({"error": kind, "error_description": desc}))
}

fn redirect(to: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(header::LOCATION, to.parse().unwrap_or_else(|_| "/".parse().unwrap()));
    r
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", s.finish())
}

fn pairs(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

/// Xumm's redirect-URI check: registered URIs are one per line; here any http(s) loopback or
/// custom-scheme URI passes, since this provider only ever runs for development.
fn redirect_ok(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| match u.scheme() {
        // Loopback only: localhost and its sub-domains (RFC 6761), loopback addresses.
        "http" | "https" => u.host_str().is_some_and(|h| h == "localhost" || h.ends_with(".localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())),
        s => s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) && s.len() >= 2,
    })
}

fn sanitize(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or("").trim_end_matches('/')
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    Ok(match path.as_str() {
        "/.well-known/openid-configuration" => json_resp(StatusCode::OK, json!({
            "issuer": st.issuer,
            "authorization_endpoint": format!("{}/auth", st.issuer),
            "token_endpoint": format!("{}/token", st.issuer),
            "userinfo_endpoint": format!("{}/userinfo", st.issuer),
            "jwks_uri": format!("{}/certs", st.issuer),
            "response_types_supported": ["code", "token"],
            "grant_types_supported": ["authorization_code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        })),
        "/certs" => {
            st.jwks_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if st.jwks_down.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(json_resp(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "unavailable"})));
            }
            let active = *st.active.lock().unwrap();
            let mut keys = vec![st.keys[active].jwk.clone()];
            if st.overlap.load(std::sync::atomic::Ordering::Relaxed) {
                keys.extend(st.keys.iter().enumerate().filter(|(i, _)| *i != active).map(|(_, k)| k.jwk.clone()));
            }
            let mut r = json_resp(StatusCode::OK, json!({ "keys": keys }));
            if let Some(age) = *st.jwks_max_age.lock().unwrap() {
                r.headers_mut().insert(header::CACHE_CONTROL, format!("public, max-age={age}").parse().unwrap());
            }
            r
        }
        "/auth" | "/authorize" if req.method() == Method::GET => authorize_page(&st, &pairs(&query)),
        "/auth/decide" if req.method() == Method::POST => {
            let body = read_body(req).await;
            decide(&st, &pairs(&body))
        }
        "/token" if req.method() == Method::POST => token(&st, req).await,
        "/userinfo" => userinfo(&st, &req),
        _ => json_resp(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    })
}

async fn read_body(req: Request<Incoming>) -> String {
    match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}

fn check_auth_request(st: &State, p: &HashMap<String, String>) -> Result<(), String> {
    let client = p.get("client_id").map(String::as_str).unwrap_or("");
    if !st.clients.iter().any(|c| c.id == client) {
        return Err("Unknown client_id.".into());
    }
    if !p.get("redirect_uri").is_some_and(|r| redirect_ok(r)) {
        return Err("Redirect URL is not allowed.".into());
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") | Some("token") => {}
        _ => return Err("Grant type is invalid or missing.".into()),
    }
    if p.contains_key("code_challenge") != p.contains_key("code_challenge_method") {
        return Err("code_challenge and code_challenge_method go together.".into());
    }
    Ok(())
}

fn authorize_page(st: &State, p: &HashMap<String, String>) -> Resp {
    if let Err(e) = check_auth_request(st, p) {
        return oauth_error("invalid_request", &e);
    }
    let esc = crate::pages::esc;
    let hidden: String = p.iter().map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v))).collect();
    let app = st.clients.iter().find(|c| Some(&c.id) == p.get("client_id")).map_or("", |c| c.name.as_str());
    let body = format!(
        "<h1>Sign in to {app}</h1><p>This is xumm-gate's <strong>development</strong> identity provider. In production, Xumm shows a QR code and your phone signs a SignIn request.</p>\
         <form method=\"post\" action=\"/auth/decide\">{hidden}\
         <label>XRPL account<br><input id=\"account\" name=\"account\" value=\"{DEMO_ACCOUNT}\"></label><br>\
         <label>Network<br><select id=\"network\" name=\"network\"><option>MAINNET</option><option>TESTNET</option><option>XAHAU</option></select></label><br>\
         <button id=\"approve\" name=\"action\" value=\"approve\">Sign in</button> <button id=\"reject\" name=\"action\" value=\"reject\">Reject</button>\
         </form>",
        app = esc(app)
    );
    let html = crate::pages::document("Xumm (development) sign-in", &body);
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(header::CONTENT_TYPE, "text/html; charset=utf-8".parse().unwrap());
    r
}

fn decide(st: &State, p: &HashMap<String, String>) -> Resp {
    if let Err(e) = check_auth_request(st, p) {
        return oauth_error("invalid_request", &e);
    }
    let get = |k: &str| p.get(k).map(String::as_str);
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    let mut back: Vec<(&str, &str)> = Vec::new();
    if get("action") != Some("approve") {
        back.push(("error", "access_denied"));
        back.push(("error_description", "The XUMM sign in request has been rejected"));
        if let Some(s) = get("state") {
            back.push(("state", s));
        }
        return redirect(&with_query(redirect_uri, &back));
    }
    let account = get("account").unwrap_or_default().trim().to_string();
    let network = get("network").unwrap_or("MAINNET").to_string();
    let client_id = get("client_id").unwrap_or_default();
    if get("response_type") == Some("token") {
        let token = sign(st, client_id, &account, &network, get("nonce"), get("scope"), json!({"state": get("state")}));
        let mut q = vec![("access_token", token.as_str()), ("token_type", "bearer"), ("expires_in", "86400"), ("refresh_token", "")];
        if let Some(s) = get("state") {
            q.push(("state", s));
        }
        return redirect(&with_query(redirect_uri, &q));
    }
    let code = random_token();
    st.codes.lock().unwrap().insert(code.clone(), Grant {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        challenge: get("code_challenge").map(str::to_string),
        nonce: get("nonce").map(str::to_string),
        scope: get("scope").map(str::to_string),
        account,
        network,
        created: now(),
        fetched: false,
    });
    // Xumm sends the code twice, as authorization_code and code.
    back.push(("authorization_code", &code));
    back.push(("code", &code));
    if let Some(s) = get("state") {
        back.push(("state", s));
    }
    if let Some(n) = get("nonce") {
        back.push(("nonce", n));
    }
    redirect(&with_query(redirect_uri, &back))
}

async fn token(st: &State, req: Request<Incoming>) -> Resp {
    st.token_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let basic = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")).map(str::to_string);
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    let body = read_body(req).await;
    let mut p: HashMap<String, String> = if is_json {
        serde_json::from_str::<HashMap<String, serde_json::Value>>(&body)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect()
    } else {
        pairs(&body)
    };
    // Basic is honoured only when the body has neither client_id nor client_secret (Xumm's quirk).
    if let Some(b) = basic.filter(|_| !p.contains_key("client_id") && !p.contains_key("client_secret")) {
        use base64::Engine;
        if let Some((id, secret)) = base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())))
        {
            let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            p.insert("client_id".into(), dec(&id));
            p.insert("client_secret".into(), dec(&secret));
        }
    }
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("invalid_request", "Grant type is invalid or missing.");
    }
    let Some(code) = p.get("code").or_else(|| p.get("authorization_code")) else {
        return oauth_error("invalid_request", "Invalid authorization code.");
    };
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let Some(client) = st.clients.iter().find(|c| c.id == client_id) else {
        return oauth_error("access_denied", "Invalid client credentials.");
    };
    let secret = p.get("client_secret");
    let verifier = p.get("code_verifier");
    if secret.is_none() && verifier.is_none() {
        return oauth_error("invalid_request", "Client secret and code verifier are exclusive to each other.");
    }
    if secret.is_some_and(|s| *s != client.secret) {
        return oauth_error("access_denied", "Invalid client credentials.");
    }
    let mut codes = st.codes.lock().unwrap();
    let Some(grant) = codes.get_mut(code.as_str()) else {
        return oauth_error("access_denied", "Invalid authorization code.");
    };
    if grant.fetched || grant.client_id != client_id {
        return oauth_error("access_denied", "Invalid authorization code.");
    }
    if now().saturating_sub(grant.created) > 600 {
        return oauth_error("access_denied", "Authorization code expired.");
    }
    if sanitize(p.get("redirect_uri").map(String::as_str).unwrap_or("")) != sanitize(&grant.redirect_uri) {
        return oauth_error("access_denied", "Redirect URL does not match the record.");
    }
    if let Some(v) = verifier {
        use base64::Engine;
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
        if grant.challenge.as_deref() != Some(computed.as_str()) {
            return oauth_error("access_denied", "Code verifier does not match code challenge.");
        }
    }
    grant.fetched = true;
    let (account, network, nonce, scope) = (grant.account.clone(), grant.network.clone(), grant.nonce.clone(), grant.scope.clone());
    drop(codes);
    let overrides = serde_json::Value::Object(st.overrides.lock().unwrap().clone());
    let jwt = sign(st, &client_id, &account, &network, nonce.as_deref(), scope.as_deref(), overrides);
    let mut out = json!({"access_token": jwt, "token_type": "bearer", "expires_in": TOKEN_LIFETIME, "refresh_token": ""});
    if scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == "openid")) {
        out["id_token"] = json!(jwt);
    }
    if let Some(s) = scope {
        out["scope"] = json!(s);
    }
    json_resp(StatusCode::OK, out)
}

fn userinfo(st: &State, req: &Request<Incoming>) -> Resp {
    let Some(token) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
        return json_resp(StatusCode::UNAUTHORIZED, json!({"error": "invalid_jwt"}));
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(st.keys[*st.active.lock().unwrap()].jwk.clone()).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_aud = false;
    v.set_issuer(&[&st.issuer]);
    match jsonwebtoken::decode::<serde_json::Value>(token, &key, &v) {
        Ok(d) => json_resp(StatusCode::OK, json!({
            "sub": d.claims["sub"], "account": d.claims["sub"], "email": d.claims["email"],
            "networkType": d.claims["network_type"], "networkEndpoint": d.claims["network_endpoint"], "networkId": d.claims["network_id"],
        })),
        Err(_) => json_resp(StatusCode::FORBIDDEN, json!({"error": "jwt_auth_error"})),
    }
}
