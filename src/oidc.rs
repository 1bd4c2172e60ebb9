//! The identity provider: discovery, JWKS, code exchange and token verification. It must never
//! accept a token whose signature, issuer, audience or expiry did not check, never follow a
//! redirect from the provider, and never log a token or the client secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;

use crate::account::Account;
use crate::config::ProviderConfig;

const MAX_RESPONSE: usize = 256 * 1024;
pub const DEFAULT_SKEW_SECS: u64 = 60;
/// Background JWKS refresh when the provider sends no `Cache-Control: max-age`.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(3600);
/// The longest a JWKS is kept without a refresh, whatever its max-age says.
pub const MAX_JWKS_REFRESH: Duration = Duration::from_secs(24 * 3600);

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider not ready")]
    NotReady,
    #[error("provider request failed: {0}")]
    Http(String),
    #[error("provider answered {status}: {reason}")]
    Status { status: StatusCode, reason: String },
    #[error("provider sent invalid JSON: {0}")]
    Json(String),
    #[error("token rejected: {0}")]
    Token(TokenError),
}

/// Why a token was refused; the text is safe to show (it never contains the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("nonce mismatch")]
    Nonce,
    #[error("account claim missing or not a valid r-address")]
    Account,
    /// A claim OpenID Connect requires (iss, sub, aud, exp, iat) is missing, or one of those or
    /// `nbf` has the wrong JSON type.
    #[error("claim {0} missing or of the wrong type")]
    Claim(&'static str),
    #[error("azp missing or not this client (token for several audiences)")]
    AuthorizedParty,
}

impl TokenError {
    /// A short fixed name for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::Nonce => "nonce",
            TokenError::Account => "account",
            TokenError::Claim(_) => "claim",
            TokenError::AuthorizedParty => "authorized_party",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    #[serde(default)]
    pub authorization_endpoint: String,
    #[serde(default)]
    pub token_endpoint: String,
    #[serde(default)]
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
}

impl Metadata {
    /// Fills endpoints discovery left out with the documented Xumm paths under the issuer.
    fn with_fallbacks(mut self, issuer: &str) -> Metadata {
        let base = issuer.trim_end_matches('/');
        if self.issuer.is_empty() {
            self.issuer = issuer.to_string();
        }
        for (field, path) in [
            (&mut self.authorization_endpoint, "/auth"),
            (&mut self.token_endpoint, "/token"),
            (&mut self.jwks_uri, "/certs"),
        ] {
            if field.is_empty() {
                *field = format!("{base}{path}");
            }
        }
        self
    }
}

struct Keys {
    keys: Vec<(Option<String>, DecodingKey)>,
}

/// What a verified token says about the user.
#[derive(Debug, Clone)]
pub struct Verified {
    pub account: Account,
    pub network: Option<String>,
    pub user_token: Option<String>,
    pub expires_at: u64,
}

pub struct Provider {
    pub cfg: ProviderConfig,
    client: HttpsClient,
    meta: ArcSwapOption<Metadata>,
    keys: ArcSwap<Keys>,
    last_fetch: std::sync::Mutex<Option<Instant>>,
    /// Never refetch the JWKS for a client-sent token more often than this, whatever tokens
    /// arrive; also the shortest background refresh interval.
    jwks_min_refresh: Duration,
    /// Bumped each time new keys are stored: a caller that waited for `refetch` sees whether
    /// another caller's fetch already brought keys newer than the ones it tried.
    key_generation: std::sync::atomic::AtomicU64,
    /// One unlimited refetch at a time (concurrent code-flow callbacks share it).
    refetch: tokio::sync::Mutex<()>,
    /// When the background refresh should next fetch the JWKS (from its Cache-Control).
    next_refresh: std::sync::Mutex<Duration>,
    /// Counts JWKS fetches (metrics and tests).
    pub jwks_fetches: std::sync::atomic::AtomicU64,
}

pub fn https_client() -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(https)
}

/// Sends a request and reads a bounded body. The client never follows redirects.
pub async fn fetch(client: &HttpsClient, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), OidcError> {
    fetch_with_headers(client, req).await.map(|(status, _, body)| (status, body))
}

/// [`fetch`], keeping the response headers (rate-limit headers, Retry-After).
pub async fn fetch_with_headers(client: &HttpsClient, req: Request<Full<Bytes>>) -> Result<(StatusCode, http::HeaderMap, Bytes), OidcError> {
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| OidcError::Http("timed out".into()))?
        .map_err(|e| OidcError::Http(e.to_string()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(10), Limited::new(resp.into_body(), MAX_RESPONSE).collect())
        .await
        .map_err(|_| OidcError::Http("body timed out".into()))?
        .map_err(|e| OidcError::Http(e.to_string()))?
        .to_bytes();
    Ok((status, headers, body))
}

async fn get_json<T: serde::de::DeserializeOwned>(client: &HttpsClient, url: &str) -> Result<T, OidcError> {
    let req = Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| OidcError::Http(e.to_string()))?;
    let (status, body) = fetch(client, req).await?;
    if !status.is_success() {
        return Err(OidcError::Status { status, reason: format!("GET {url}") });
    }
    serde_json::from_slice(&body).map_err(|e| OidcError::Json(e.to_string()))
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ProviderErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl Provider {
    pub fn new(cfg: ProviderConfig) -> Provider {
        Provider {
            client: https_client(),
            meta: ArcSwapOption::empty(),
            keys: ArcSwap::from_pointee(Keys { keys: vec![] }),
            last_fetch: std::sync::Mutex::new(None),
            key_generation: Default::default(),
            refetch: tokio::sync::Mutex::new(()),
            next_refresh: std::sync::Mutex::new(DEFAULT_JWKS_REFRESH),
            jwks_min_refresh: cfg.jwks_min_refresh.get(),
            jwks_fetches: Default::default(),
            cfg,
        }
    }

    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.meta.load_full()
    }

    /// Fetches discovery and the JWKS once.
    pub async fn discover(&self) -> Result<(), OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer.text().trim_end_matches('/'));
        let meta: Metadata = get_json(&self.client, &url).await?;
        let meta = meta.with_fallbacks(self.cfg.issuer.text());
        self.load_keys(&meta.jwks_uri, "startup").await?;
        self.meta.store(Some(Arc::new(meta)));
        Ok(())
    }

    /// Discovery with retries and backoff; calls `on_ready` once it succeeds, then keeps the
    /// JWKS fresh in the background (`refresh_keys_in_background`).
    pub fn spawn_discovery(self: Arc<Self>, on_ready: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                match self.discover().await {
                    Ok(()) => {
                        tracing::info!(issuer = %self.cfg.issuer, "identity provider metadata and keys loaded");
                        on_ready();
                        tokio::spawn(refresh_keys_in_background(Arc::downgrade(&self)));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %self.cfg.issuer, cause = %e, retry_in = ?delay, "identity provider discovery failed");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
    }

    /// Fetches the JWKS and stores its keys in place of the old ones (a key the provider
    /// dropped stops verifying); on any failure the last good keys stay. Also sets when the
    /// background refresh fetches next: the response's `max-age` within
    /// [`jwks_min_refresh`, 24 h], else an hour.
    async fn load_keys(&self, jwks_uri: &str, cause: &'static str) -> Result<(), OidcError> {
        let step = crate::telemetry::child("identity_provider", opentelemetry::trace::SpanKind::Client);
        step.note("xumm_gate.provider.call", "jwks");
        let r = self.load_keys_now(jwks_uri).await;
        crate::metrics::jwks_fetch(cause, r.is_ok());
        r
    }

    async fn load_keys_now(&self, jwks_uri: &str) -> Result<(), OidcError> {
        *self.last_fetch.lock().unwrap() = Some(Instant::now());
        self.jwks_fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = Request::get(jwks_uri)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| OidcError::Http(e.to_string()))?;
        let (status, headers, body) = fetch_with_headers(&self.client, req).await?;
        if !status.is_success() {
            return Err(OidcError::Status { status, reason: format!("GET {jwks_uri}") });
        }
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&body).map_err(|e| OidcError::Json(e.to_string()))?;
        let max_age = headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()).find_map(max_age);
        *self.next_refresh.lock().unwrap() = max_age.map_or(DEFAULT_JWKS_REFRESH, |a| a.clamp(self.jwks_min_refresh, MAX_JWKS_REFRESH));
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(|k| DecodingKey::from_jwk(k).ok().map(|d| (k.common.key_id.clone(), d)))
            .collect();
        if keys.is_empty() {
            return Err(OidcError::Json("JWKS has no usable key".into()));
        }
        self.keys.store(Arc::new(Keys { keys }));
        self.key_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// Refetches the JWKS now, for a token that came from the provider itself (the code
    /// flow's token response over the gateway's own connection): a key rotated in since the
    /// last fetch must not fail a sign-in. Concurrent callers share one fetch: whoever waited
    /// while another fetched uses that fetch's keys. True when keys newer than `seen` exist.
    async fn refetch_now(&self, seen: u64) -> bool {
        let _one = self.refetch.lock().await;
        if self.key_generation.load(std::sync::atomic::Ordering::Acquire) != seen {
            return true;
        }
        self.refetch_keys().await
    }

    /// Fetches the JWKS now; false (the last good keys kept, the cause logged) when that fails.
    async fn refetch_keys(&self) -> bool {
        let Some(meta) = self.metadata() else { return false };
        match self.load_keys(&meta.jwks_uri, "unknown_key").await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "JWKS refetch failed; keeping the last good keys");
                false
            }
        }
    }

    /// Refetches the JWKS unless one was fetched within `jwks_min_refresh`. True if refetched.
    async fn refresh_keys_limited(&self) -> bool {
        {
            let mut last = self.last_fetch.lock().unwrap();
            if last.is_some_and(|t| t.elapsed() < self.jwks_min_refresh) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.refetch_keys().await
    }

    /// Exchanges an authorization code; returns the id_token (Xumm: the same JWT as the access token).
    pub async fn exchange(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<String, OidcError> {
        let meta = self.metadata().ok_or(OidcError::NotReady)?;
        let _step = crate::telemetry::child("identity_provider", opentelemetry::trace::SpanKind::Client);
        _step.note("xumm_gate.provider.call", "token");
        let basic = self.cfg.token_auth.get() == crate::config::TokenAuth::ClientSecretBasic;
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", verifier);
            if !basic {
                form.append_pair("client_id", &self.cfg.client_id).append_pair("client_secret", &self.cfg.client_secret);
            }
            form.finish()
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&meta.token_endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if basic {
            // Xumm honours Basic only when the body has neither client_id nor client_secret.
            use base64::Engine;
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let cred = format!("{}:{}", enc(&self.cfg.client_id), enc(&self.cfg.client_secret));
            let basic = base64::engine::general_purpose::STANDARD.encode(cred);
            req = req.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| OidcError::Http(e.to_string()))?;
        let (status, body) = fetch(&self.client, req).await?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<ProviderErrorBody>(&body)
                .map(|e| format!("{} {}", e.error, e.error_description).trim().to_string())
                .unwrap_or_else(|_| "non-JSON error body".into());
            return Err(OidcError::Status { status, reason });
        }
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| OidcError::Json(e.to_string()))?;
        t.id_token.or(t.access_token).filter(|t| !t.is_empty()).ok_or_else(|| OidcError::Json("no id_token in token response".into()))
    }

    /// Verifies an ID token the gateway itself received from the provider's token endpoint
    /// (the code flow): as `verify_with_skew`, except that a signature no cached key verifies
    /// refetches the JWKS at once (one shared fetch for concurrent callers) and tries again.
    pub async fn verify_id_token(&self, token: &str, audiences: &[String], algorithms: &[Algorithm], nonce: &str) -> Result<Verified, OidcError> {
        self.verify_inner(token, audiences, algorithms, Some(nonce), DEFAULT_SKEW_SECS, Refetch::Now).await
    }

    /// Verifies a provider-signed JWT that a client sent (Bearer): signature (a token without
    /// `kid` tries every key), `iss`, `aud` (one of `audiences`), the OpenID claim rules
    /// (`check_claims`), nonce when given, and the account claim. A signature no cached key
    /// verifies triggers at most one JWKS refetch per `jwks_min_refresh`, whoever sends them.
    pub async fn verify_with_skew(&self, token: &str, audiences: &[String], algorithms: &[Algorithm], nonce: Option<&str>, skew: u64) -> Result<Verified, OidcError> {
        self.verify_inner(token, audiences, algorithms, nonce, skew, Refetch::Limited).await
    }

    async fn verify_inner(&self, token: &str, audiences: &[String], algorithms: &[Algorithm], nonce: Option<&str>, skew: u64, refetch: Refetch) -> Result<Verified, OidcError> {
        if token.len() > 8192 {
            return Err(OidcError::Token(TokenError::Malformed));
        }
        let meta = self.metadata().ok_or(OidcError::NotReady)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::Token(TokenError::Malformed))?;
        if !algorithms.contains(&header.alg) || !matches!(header.alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 | Algorithm::ES256 | Algorithm::ES384) {
            return Err(OidcError::Token(TokenError::Algorithm));
        }
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&meta.issuer]);
        v.set_audience(audiences);
        v.leeway = skew;
        // nbf (and its type) is `check_claims`' to judge, with the other OpenID claim rules.
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let seen = self.key_generation.load(std::sync::atomic::Ordering::Acquire);
        let claims = match self.try_keys(token, header.kid.as_deref(), &v) {
            Err(TokenError::Signature) => {
                let fresh = match refetch {
                    Refetch::Now => self.refetch_now(seen).await,
                    Refetch::Limited => self.refresh_keys_limited().await,
                };
                if fresh { self.try_keys(token, header.kid.as_deref(), &v) } else { Err(TokenError::Signature) }
            }
            other => other,
        }
        .map_err(OidcError::Token)?;
        check_claims(&claims, audiences, crate::session::now(), skew).map_err(OidcError::Token)?;
        if let Some(expected) = nonce {
            if claims.get("nonce").and_then(|n| n.as_str()) != Some(expected) {
                return Err(OidcError::Token(TokenError::Nonce));
            }
        }
        let account = claims
            .get(&self.cfg.account_claim)
            .and_then(|a| a.as_str())
            .and_then(|a| Account::parse(a).ok())
            .ok_or(OidcError::Token(TokenError::Account))?;
        let str_claim = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Verified {
            account,
            network: str_claim("network_type"),
            user_token: str_claim("usertoken_uuidv4"),
            expires_at: claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0),
        })
    }

    fn try_keys(&self, token: &str, kid: Option<&str>, v: &Validation) -> Result<serde_json::Map<String, serde_json::Value>, TokenError> {
        let keys = self.keys.load();
        let mut last = TokenError::Signature;
        for (key_id, key) in keys.keys.iter() {
            if let (Some(want), Some(have)) = (kid, key_id.as_deref()) {
                if want != have {
                    continue;
                }
            }
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    let mapped = map_jwt_error(e.kind());
                    if mapped != TokenError::Signature && mapped != TokenError::Algorithm {
                        return Err(mapped); // the signature verified; the claims did not
                    }
                    if mapped == TokenError::Signature {
                        last = mapped;
                    }
                }
            }
        }
        Err(last)
    }
}

/// How a signature that no cached key verifies may refresh the keys.
#[derive(Clone, Copy)]
enum Refetch {
    /// The token came from the provider over the gateway's own connection: refetch at once.
    Now,
    /// The token came from a client, who may forge any number: rate-limited.
    Limited,
}

/// Keeps the JWKS fresh while the provider lives: refetches as its `Cache-Control: max-age`
/// says (within bounds, an hour without one), so a rotation with an overlap window never fails
/// a token and a dropped key stops verifying. A failed refresh keeps the last good keys, logs
/// why, and is retried after `jwks_min_refresh`.
async fn refresh_keys_in_background(provider: std::sync::Weak<Provider>) {
    loop {
        let wait = match provider.upgrade() {
            Some(p) => *p.next_refresh.lock().unwrap(),
            None => return,
        };
        tokio::time::sleep(wait).await;
        let Some(p) = provider.upgrade() else { return };
        let Some(meta) = p.metadata() else { continue };
        if let Err(e) = p.load_keys(&meta.jwks_uri, "scheduled").await {
            tracing::warn!(cause = %e, "background JWKS refresh failed; keeping the last good keys");
            *p.next_refresh.lock().unwrap() = p.jwks_min_refresh;
        }
    }
}

/// The `max-age` of one Cache-Control header value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("max-age").then(|| v.trim().trim_matches('"').parse().ok().map(Duration::from_secs))?
    })
}

/// The claim rules of OpenID Connect Core 1.0 (sections 2 and 3.1.3.7) that the JWT library
/// leaves open, on a token whose signature, `iss` value, `aud` membership and `exp` it already
/// checked: `iss`, `sub`, `aud`, `exp` and `iat` present with their JSON types (a string `exp`,
/// an array `iss` or a number `sub` is refused, not coerced); `nbf` a number when present and
/// not in the future; `iat` not in the future; with several audiences, `azp` present and one of
/// ours; an `azp` that is present always one of ours.
pub fn check_claims(claims: &serde_json::Map<String, serde_json::Value>, audiences: &[String], now: u64, skew: u64) -> Result<(), TokenError> {
    use serde_json::Value;
    let string = |k: &'static str| match claims.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(TokenError::Claim(k)),
    };
    // NumericDate: a JSON number of seconds (fractions allowed), never a string.
    let date = |k: &'static str| claims.get(k).and_then(Value::as_f64).filter(|d| d.is_finite() && *d >= 0.0).ok_or(TokenError::Claim(k));
    string("iss")?;
    string("sub")?;
    let aud: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) if !list.is_empty() => list.iter().map(|a| a.as_str().ok_or(TokenError::Claim("aud"))).collect::<Result<_, _>>()?,
        _ => return Err(TokenError::Claim("aud")),
    };
    date("exp")?;
    if date("iat")? > (now + skew) as f64 {
        return Err(TokenError::NotYetValid);
    }
    if claims.contains_key("nbf") && date("nbf")? > (now + skew) as f64 {
        return Err(TokenError::NotYetValid);
    }
    let azp = match claims.get("azp") {
        None => None,
        Some(Value::String(a)) => Some(a.as_str()),
        Some(_) => return Err(TokenError::Claim("azp")),
    };
    match azp {
        Some(a) if !audiences.iter().any(|x| x == a) => Err(TokenError::AuthorizedParty),
        None if aud.len() > 1 => Err(TokenError::AuthorizedParty),
        _ => Ok(()),
    }
}

fn map_jwt_error(k: &ErrorKind) -> TokenError {
    match k {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::InvalidKeyFormat => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::Claim("aud"),
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::Claim("iss"),
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::Claim("exp"),
        ErrorKind::MissingRequiredClaim(c) if c == "sub" => TokenError::Claim("sub"),
        ErrorKind::MissingRequiredClaim(_) => TokenError::Malformed,
        _ => TokenError::Malformed,
    }
}
