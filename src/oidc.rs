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
    /// Never refetch the JWKS more often than this, whatever tokens arrive.
    jwks_min_refresh: Duration,
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
            jwks_min_refresh: humantime::parse_duration(&cfg.jwks_min_refresh).unwrap_or(Duration::from_secs(30)),
            jwks_fetches: Default::default(),
            cfg,
        }
    }

    pub fn metadata(&self) -> Option<Arc<Metadata>> {
        self.meta.load_full()
    }

    /// Fetches discovery and the JWKS once.
    pub async fn discover(&self) -> Result<(), OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer.trim_end_matches('/'));
        let meta: Metadata = get_json(&self.client, &url).await?;
        let meta = meta.with_fallbacks(&self.cfg.issuer);
        self.load_keys(&meta.jwks_uri).await?;
        self.meta.store(Some(Arc::new(meta)));
        Ok(())
    }

    /// Discovery with retries and backoff; calls `on_ready` once it succeeds.
    pub fn spawn_discovery(self: Arc<Self>, on_ready: impl FnOnce() + Send + 'static) {
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                match self.discover().await {
                    Ok(()) => {
                        tracing::info!(issuer = %self.cfg.issuer, "identity provider metadata and keys loaded");
                        on_ready();
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

    async fn load_keys(&self, jwks_uri: &str) -> Result<(), OidcError> {
        *self.last_fetch.lock().unwrap() = Some(Instant::now());
        self.jwks_fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let set: jsonwebtoken::jwk::JwkSet = get_json(&self.client, jwks_uri).await?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(|k| DecodingKey::from_jwk(k).ok().map(|d| (k.common.key_id.clone(), d)))
            .collect();
        if keys.is_empty() {
            return Err(OidcError::Json("JWKS has no usable key".into()));
        }
        self.keys.store(Arc::new(Keys { keys }));
        Ok(())
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
        let Some(meta) = self.metadata() else { return false };
        match self.load_keys(&meta.jwks_uri).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "JWKS refetch failed");
                false
            }
        }
    }

    /// Exchanges an authorization code; returns the id_token (Xumm: the same JWT as the access token).
    pub async fn exchange(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<String, OidcError> {
        let meta = self.metadata().ok_or(OidcError::NotReady)?;
        let basic = self.cfg.token_auth == "client_secret_basic";
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

    /// Verifies a provider-signed JWT: signature (a token without `kid` tries every key), `iss`,
    /// `aud` (one of `audiences`), `exp`/`nbf` with bounded skew, nonce when given, and the
    /// account claim. An unknown key triggers one rate-limited JWKS refetch.
    pub async fn verify(&self, token: &str, audiences: &[String], algorithms: &[Algorithm], nonce: Option<&str>) -> Result<Verified, OidcError> {
        self.verify_with_skew(token, audiences, algorithms, nonce, DEFAULT_SKEW_SECS).await
    }

    pub async fn verify_with_skew(&self, token: &str, audiences: &[String], algorithms: &[Algorithm], nonce: Option<&str>, skew: u64) -> Result<Verified, OidcError> {
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
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = match self.try_keys(token, header.kid.as_deref(), &v) {
            Err(TokenError::Signature) if self.refresh_keys_limited().await => self.try_keys(token, header.kid.as_deref(), &v),
            other => other,
        }
        .map_err(OidcError::Token)?;
        if let Some(expected) = nonce {
            if claims.get("nonce").and_then(|n| n.as_str()) != Some(expected) {
                return Err(OidcError::Token(TokenError::Nonce));
            }
        }
        if let Some(iat) = claims.get("iat").and_then(|v| v.as_u64()) {
            if iat > crate::session::now() + skew {
                return Err(OidcError::Token(TokenError::NotYetValid));
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

fn map_jwt_error(k: &ErrorKind) -> TokenError {
    match k {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::InvalidKeyFormat => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(_) => TokenError::Malformed,
        _ => TokenError::Malformed,
    }
}
