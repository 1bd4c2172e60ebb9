//! Xumm platform API client (`/api/v1/platform/...`, x-api-key + x-api-secret). It must never log
//! or return the API secret, never retry a call that is not idempotent, and never pile on when
//! Xumm says to slow down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;

use crate::config::XummConfig;
use crate::oidc::{HttpsClient, fetch_with_headers, https_client};

#[derive(Debug, thiserror::Error)]
pub enum XummError {
    #[error("Xumm is unreachable: {0}")]
    Unavailable(String),
    #[error("Xumm asks to slow down")]
    RateLimited { retry_after: u64 },
    #[error("Xumm answered {status} (code {code})")]
    Api { status: StatusCode, code: i64, body: serde_json::Value },
    #[error("Xumm sent invalid JSON")]
    Json,
}

/// Calls left in Xumm's sliding minute at or below which the client starts pacing itself.
const RESERVE: u64 = 1;
/// The longest pause taken from a Retry-After header (a broken header must not stall the broker).
const MAX_PAUSE: Duration = Duration::from_secs(300);

pub struct PlatformClient {
    base: String,
    key: String,
    secret: String,
    client: HttpsClient,
    /// No call goes to Xumm before this instant (set by a 429 or a low X-RateLimit-Remaining).
    paused_until: Mutex<Option<Instant>>,
}

/// One entry of `POST user-tokens`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UserTokenState {
    pub user_token: String,
    pub active: bool,
    #[serde(default)]
    pub issued: Option<u64>,
    #[serde(default)]
    pub expires: Option<u64>,
}

impl PlatformClient {
    pub fn new(cfg: &XummConfig) -> PlatformClient {
        PlatformClient { base: cfg.api_url.text().trim_end_matches('/').to_string(), key: cfg.api_key.clone(), secret: cfg.api_secret.to_string(), client: https_client(), paused_until: Mutex::new(None) }
    }

    /// Seconds callers should wait while the client holds calls back, or None.
    fn paused(&self) -> Option<u64> {
        let until = (*self.paused_until.lock().unwrap())?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(left.as_secs_f64().ceil().max(1.0) as u64)
    }

    fn pause(&self, d: Duration) {
        crate::metrics::xumm_rate_limit_pause();
        let until = Instant::now() + d.min(MAX_PAUSE);
        let mut p = self.paused_until.lock().unwrap();
        if p.is_none_or(|old| old < until) {
            *p = Some(until);
        }
    }

    /// Reads Xumm's rate-limit headers. Xumm counts a sliding minute, so a slot frees up about
    /// every `60 / limit` seconds: near the end of the budget the client paces itself at that rate
    /// instead of spending the last calls and then being refused for up to a minute.
    fn observe(&self, status: StatusCode, h: &http::HeaderMap) {
        let num = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.pause(Duration::from_secs(num("retry-after").unwrap_or(60)));
        } else if let (Some(remaining), Some(limit)) = (num("x-ratelimit-remaining"), num("x-ratelimit-limit")) {
            if remaining <= RESERVE && limit > 0 {
                self.pause(Duration::from_secs_f64((60.0 / limit as f64).max(1.0)));
            }
        }
    }

    /// `POST user-tokens`: which of these Xumm user tokens are still active.
    pub async fn verify_user_tokens(&self, tokens: &[String]) -> Result<Vec<UserTokenState>, XummError> {
        let v = self.call(Method::POST, "user-tokens", Some(&serde_json::json!({"tokens": tokens}))).await?;
        serde_json::from_value(v["tokens"].clone()).map_err(|_| XummError::Json)
    }

    /// Opens Xumm's status WebSocket for `uuid` with the caller's handshake headers and returns
    /// Xumm's 101 answer (its upgrade future still attached).
    pub async fn status_socket(&self, uuid: &str, ws_key: &http::HeaderValue, ws_version: Option<&http::HeaderValue>) -> Result<http::Response<hyper::body::Incoming>, XummError> {
        let req = Request::get(format!("{}/sign/{uuid}", self.base))
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header("sec-websocket-key", ws_key)
            .header("sec-websocket-version", ws_version.cloned().unwrap_or(http::HeaderValue::from_static("13")))
            .header(header::USER_AGENT, "xumm-gate")
            .body(Full::new(Bytes::new()))
            .map_err(|e| XummError::Unavailable(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| XummError::Unavailable("timed out".into()))?
            .map_err(|e| XummError::Unavailable(e.to_string()))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(XummError::Unavailable(format!("status socket answered {}", resp.status())));
        }
        Ok(resp)
    }

    /// One call; idempotent ones (GET, DELETE, the read-only `POST user-tokens`) are retried with
    /// backoff on 5xx and connection errors. While Xumm asks to slow down, nothing is sent.
    pub async fn call(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value, XummError> {
        let idempotent = method != Method::POST || path == "user-tokens";
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(retry_after) = self.paused() {
                return Err(XummError::RateLimited { retry_after });
            }
            match self.once(&method, path, body).await {
                Err(XummError::Unavailable(_)) | Err(XummError::Api { status: StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT | StatusCode::INTERNAL_SERVER_ERROR, .. })
                    if idempotent && attempt < 3 =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// One call, never retried: for a call that spends something (resolving a one-time token).
    pub async fn call_once(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value, XummError> {
        if let Some(retry_after) = self.paused() {
            return Err(XummError::RateLimited { retry_after });
        }
        self.once(&method, path, body).await
    }

    async fn once(&self, method: &Method, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value, XummError> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}/api/v1/platform/{path}", self.base))
            .header("x-api-key", &self.key)
            .header("x-api-secret", &self.secret)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| XummError::Unavailable(e.to_string()))?;
        let start = Instant::now();
        let step = crate::telemetry::child("xumm", opentelemetry::trace::SpanKind::Client);
        step.note("xumm.endpoint", crate::metrics::xumm_endpoint(path));
        let answer = fetch_with_headers(&self.client, req).await;
        drop(step);
        crate::metrics::xumm_call(method, path, answer.as_ref().ok().map(|a| a.0), start.elapsed());
        let (status, headers, body) = answer.map_err(|e| XummError::Unavailable(e.to_string()))?;
        self.observe(status, &headers);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(XummError::RateLimited { retry_after: self.paused().unwrap_or(1) });
        }
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| XummError::Json)?;
        if !status.is_success() || json.get("error").is_some_and(|e| e.is_object()) {
            let code = json["error"]["code"].as_i64().unwrap_or(0);
            return Err(XummError::Api { status: if status.is_success() { StatusCode::BAD_GATEWAY } else { status }, code, body: json });
        }
        Ok(json)
    }
}
