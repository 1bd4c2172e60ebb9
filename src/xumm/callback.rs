//! Notifications to a backend app's `callback_url` when one of its payloads resolves. It must
//! never send an unsigned notification, never include Xumm's user token, and never hold up the
//! webhook answer (it runs in the background with bounded retries).

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, header};
use http_body_util::Full;
use sha2::Sha256;

use crate::oidc::{HttpsClient, fetch};

/// Waits before the first, second and third attempt (Xumm's own webhook retries similarly).
const ATTEMPTS: [Duration; 3] = [Duration::ZERO, Duration::from_secs(5), Duration::from_secs(30)];

pub struct Callback {
    url: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Hex HMAC-SHA256 over `timestamp + "." + body`, what `X-Xumm-Gate-Signature` carries.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

impl Callback {
    pub fn new(url: &str, secret: &str) -> Callback {
        Callback { url: url.to_string(), key: secret.as_bytes().to_vec() }
    }

    /// POSTs `body` until the app answers 2xx or the attempts run out; each attempt is signed
    /// with its own timestamp so the app can keep a short replay window.
    pub async fn deliver(&self, client: &HttpsClient, app: &str, uuid: &str, body: serde_json::Value) {
        let body = Bytes::from(body.to_string());
        for (n, wait) in ATTEMPTS.iter().enumerate() {
            tokio::time::sleep(*wait).await;
            let ts = crate::session::now().to_string();
            let req = Request::post(&self.url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::USER_AGENT, "xumm-gate")
                .header("x-xumm-gate-timestamp", &ts)
                .header("x-xumm-gate-signature", sign(&self.key, &ts, &body))
                .header("x-xumm-gate-attempt", n + 1)
                .body(Full::new(body.clone()));
            let Ok(req) = req else { return };
            match fetch(client, req).await {
                Ok((status, _)) if status.is_success() => return crate::metrics::callback_delivery("delivered"),
                Ok((status, _)) => tracing::warn!(app, uuid, attempt = n + 1, %status, "app callback refused"),
                Err(e) => tracing::warn!(app, uuid, attempt = n + 1, cause = %e, "app callback failed"),
            }
            crate::metrics::callback_delivery("failed");
        }
        tracing::error!(app, uuid, "app callback given up after every attempt");
        crate::metrics::callback_delivery("given_up");
    }
}
