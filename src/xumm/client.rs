//! Xumm platform API client (`/api/v1/platform/...`, x-api-key + x-api-secret). It must never log
//! or return the API secret, never retry a call that is not idempotent, and never pile on when
//! Xumm says to slow down.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;

use crate::config::XummConfig;
use crate::oidc::{HttpsClient, fetch, https_client};

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

pub struct PlatformClient {
    base: String,
    key: String,
    secret: String,
    client: HttpsClient,
}

impl PlatformClient {
    pub fn new(cfg: &XummConfig) -> PlatformClient {
        PlatformClient { base: cfg.api_url.trim_end_matches('/').to_string(), key: cfg.api_key.clone(), secret: cfg.api_secret.clone(), client: https_client() }
    }

    /// Opens Xumm's status WebSocket for `uuid` with the caller's handshake headers and returns
    /// Xumm's 101 answer (its upgrade future still attached).
    pub async fn status_socket(&self, uuid: &str, ws_key: &http::HeaderValue, ws_version: Option<&http::HeaderValue>) -> Result<http::Response<hyper::body::Incoming>, XummError> {
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/sign/{uuid}", self.base))
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header("sec-websocket-key", ws_key)
            .header("sec-websocket-version", ws_version.cloned().unwrap_or(http::HeaderValue::from_static("13")));
        b = b.header(header::USER_AGENT, "xumm-gate");
        let req = b.body(Full::new(Bytes::new())).map_err(|e| XummError::Unavailable(e.to_string()))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| XummError::Unavailable("timed out".into()))?
            .map_err(|e| XummError::Unavailable(e.to_string()))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(XummError::Unavailable(format!("status socket answered {}", resp.status())));
        }
        Ok(resp)
    }

    /// The public status-socket URL the gateway hands out instead of Xumm's.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One call; idempotent ones (GET, DELETE) are retried with backoff on 5xx and connection errors.
    pub async fn call(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value, XummError> {
        let idempotent = method != Method::POST;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
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
        let (status, body) = fetch(&self.client, req).await.map_err(|e| XummError::Unavailable(e.to_string()))?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(XummError::RateLimited { retry_after: 60 });
        }
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| XummError::Json)?;
        if !status.is_success() || json.get("error").is_some_and(|e| e.is_object()) {
            let code = json["error"]["code"].as_i64().unwrap_or(0);
            return Err(XummError::Api { status: if status.is_success() { StatusCode::BAD_GATEWAY } else { status }, code, body: json });
        }
        Ok(json)
    }
}
