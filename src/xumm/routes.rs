//! HTTP face of the broker: Xumm-shaped routes under `{prefix}/api/v1/platform/` and
//! `{prefix}/api/v1/jwt/`. It must never accept a cookie-authenticated write from another origin,
//! and never answer with anything but Xumm's shapes (so the official SDK works unchanged).

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::Gateway;
use crate::body::{Body, IdleBody};
use crate::session::Source;
use crate::xumm::broker::{Broker, BrokerError, Caller};

const MAX_BODY: usize = 64 * 1024;

impl Gateway {
    /// POST {prefix}/webhook: verify, answer 200 fast, then look the payload up in the background.
    pub async fn webhook(self: &std::sync::Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let Some(broker) = &self.broker else { return crate::error::GatewayError::NotFound.response(req.headers().get(header::ACCEPT)) };
        let h = req.headers();
        let ts = h.get("x-xumm-request-timestamp").and_then(|v| v.to_str().ok()).map(str::to_string);
        let sig = h.get("x-xumm-request-signature").and_then(|v| v.to_str().ok()).map(str::to_string);
        let Ok(body) = Limited::new(IdleBody::new(req.into_body(), self.server.body_timeout), MAX_BODY).collect().await.map(|b| b.to_bytes()) else {
            return BrokerError::TooLarge.render();
        };
        let refused = match broker.webhook.verify(ts.as_deref(), sig.as_deref(), &body, crate::session::now()) {
            // A replay is refused by whichever replica sees it second.
            Ok(sig) => match broker.first_delivery(&sig).await {
                Ok(true) => None,
                Ok(false) => Some(crate::xumm::webhook::WebhookError::Replay),
                Err(e) => return e.render(),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = refused {
            tracing::warn!(cause = %e, "webhook refused");
            self.audit.record(crate::audit::Event::WebhookRefused { reason: e.label() });
            return BrokerError::InvalidWebhook(e.to_string()).render();
        }
        let uuid = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["meta"]["payload_uuidv4"].as_str().or(v["payloadResponse"]["payload_uuidv4"].as_str()).map(str::to_string));
        if let Some(uuid) = uuid {
            let gw = self.clone();
            tokio::spawn(async move {
                if let Some(b) = &gw.broker {
                    b.resolved(&uuid, "webhook").await;
                }
            });
        }
        crate::metrics::webhook("accepted");
        crate::pages::json(StatusCode::OK, &serde_json::json!({"ok": true}))
    }

    /// `{prefix}/sign/{uuid}`: relays Xumm's status WebSocket message by message. The handshake
    /// is Xumm's own (the client's key goes to Xumm, Xumm's accept comes back); when Xumm reports
    /// the outcome, the gateway fetches the payload itself to check the signer and audit it.
    pub async fn status_socket(self: &std::sync::Arc<Self>, broker: &Broker, mut req: Request<Incoming>, uuid: &str) -> Response<Body> {
        match broker.known(uuid).await {
            Ok(true) => {}
            Ok(false) => return BrokerError::NotFound.render(),
            Err(e) => return e.render(),
        }
        let (gw, id) = (self.clone(), uuid.to_string());
        relay_socket(&broker.client, &mut req, uuid, move || {
            tokio::spawn(async move {
                if let Some(b) = &gw.broker {
                    b.resolved(&id, "websocket").await;
                }
            });
        })
        .await
    }

    pub async fn broker_call(&self, broker: &Broker, req: Request<Incoming>, rest: &str) -> Response<Body> {
        match self.broker_inner(broker, req, rest).await {
            Ok(v) => crate::pages::json(StatusCode::OK, &v),
            Err(e) => {
                if !matches!(e, BrokerError::NotFound | BrokerError::TxTypeNotAllowed(_)) {
                    tracing::info!(cause = %e, "broker call refused or failed");
                }
                e.render()
            }
        }
    }

    async fn broker_inner(&self, broker: &Broker, req: Request<Incoming>, rest: &str) -> Result<serde_json::Value, BrokerError> {
        let caller = match broker.app(req.headers()) {
            Some(app) => Caller::App(app?),
            None => {
                let auth = self.admission.auth.as_ref().ok_or(BrokerError::NoCaller)?;
                let crate::auth::Found::Session(session) = auth.identify(req.headers()).await else { return Err(BrokerError::NoCaller) };
                if session.source == Source::Session && req.method() != Method::GET {
                    self.check_same_origin(&req)?;
                }
                Caller::User(session)
            }
        };
        let method = req.method().clone();
        match (method, rest) {
            (Method::GET, "ping") => broker.ping(&caller).await,
            (Method::POST, "payload") => {
                let mut body = read_json(req, self.server.body_timeout).await?;
                let bound = self.swap_handle(&caller, &mut body).await?;
                let mut resp = broker.create(&caller, body, bound).await?;
                // Status updates come through the gateway's relay, not straight from Xumm.
                if let Some(uuid) = resp["uuid"].as_str().map(str::to_string) {
                    let mut base = self.server.public_url.clone();
                    let ws = if base.scheme() == "https" { "wss" } else { "ws" };
                    let _ = base.set_scheme(ws);
                    resp["refs"]["websocket_status"] = serde_json::json!(format!("{}{}/sign/{uuid}", base.as_str().trim_end_matches('/'), self.server.prefix));
                }
                Ok(resp)
            }
            (Method::POST, "user-tokens") => {
                let body = read_json(req, self.server.body_timeout).await?;
                self.verify_handles(broker, &caller, &body).await
            }
            (Method::GET, r) if r.starts_with("payload/") => broker.get(&caller, uuid(r)?).await,
            (Method::DELETE, r) if r.starts_with("payload/") => broker.cancel(&caller, uuid(r)?).await,
            _ => Err(BrokerError::NotFound),
        }
    }

    /// An app's `user_token` must be a handle the gateway gave that app for a live session; it is
    /// replaced by the user's real Xumm token and binds the payload to the user's account.
    async fn swap_handle(&self, caller: &Caller, body: &mut serde_json::Value) -> Result<Option<crate::account::Account>, BrokerError> {
        let Caller::App(app) = caller else { return Ok(None) };
        let Some(handle) = body.get("user_token").and_then(|t| t.as_str()) else { return Ok(None) };
        let auth = self.admission.auth.as_ref().ok_or(BrokerError::ForeignUserToken)?;
        let session = crate::xumm::handle::resolve(auth, handle, &app.name).await.ok_or(BrokerError::ForeignUserToken)?;
        let real = session.user_token.clone().ok_or(BrokerError::ForeignUserToken)?;
        body["user_token"] = serde_json::json!(real);
        Ok(Some(session.account.clone()))
    }

    /// `POST user-tokens` for an app: the tokens are its handles. Each live handle is checked
    /// with Xumm under the real token and answered under the handle; a handle that does not open
    /// for this app (or whose session ended) is inactive without asking Xumm.
    async fn verify_handles(&self, broker: &Broker, caller: &Caller, body: &serde_json::Value) -> Result<serde_json::Value, BrokerError> {
        let Caller::App(app) = caller else { return Err(BrokerError::NotFound) };
        let handles: Vec<&str> = body["tokens"].as_array().ok_or(BrokerError::BadBody)?.iter().filter_map(|t| t.as_str()).take(100).collect();
        let mut real = Vec::new();
        for h in &handles {
            let token = match &self.admission.auth {
                Some(auth) => crate::xumm::handle::resolve(auth, h, &app.name).await.and_then(|s| s.user_token.clone()),
                None => None,
            };
            real.push(token);
        }
        let asked: Vec<String> = real.iter().flatten().cloned().collect();
        let states = if asked.is_empty() { Vec::new() } else { broker.client.verify_user_tokens(&asked).await? };
        let tokens: Vec<serde_json::Value> = handles
            .iter()
            .zip(&real)
            .map(|(h, r)| match r.as_ref().and_then(|r| states.iter().find(|s| &s.user_token == r)) {
                Some(s) => serde_json::json!({"user_token": h, "active": s.active, "issued": s.issued, "expires": s.expires}),
                None => serde_json::json!({"user_token": h, "active": false}),
            })
            .collect();
        Ok(serde_json::json!({"tokens": tokens}))
    }

    /// CSRF defence for cookie callers: JSON only, and an Origin (when sent) that is ours or a
    /// configured CORS origin.
    fn check_same_origin(&self, req: &Request<Incoming>) -> Result<(), BrokerError> {
        let h = req.headers();
        let json = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
        if req.method() == Method::POST && !json {
            return Err(BrokerError::BadBody);
        }
        if let Some(origin) = h.get(header::ORIGIN) {
            let own = self.server.public_url.origin().ascii_serialization();
            if origin.as_bytes() != own.as_bytes() && self.endpoints.cors.allowed_origin(h).is_none() {
                return Err(BrokerError::NoCaller);
            }
        }
        Ok(())
    }
}

async fn read_json(req: Request<Incoming>, timeout: std::time::Duration) -> Result<serde_json::Value, BrokerError> {
    let bytes = Limited::new(IdleBody::new(req.into_body(), timeout), MAX_BODY).collect().await.map_err(|_| BrokerError::BadBody)?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| BrokerError::BadBody)
}

fn uuid(rest: &str) -> Result<&str, BrokerError> {
    let u = rest.trim_start_matches("payload/");
    if u.len() == 36 && u.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') { Ok(u) } else { Err(BrokerError::NotFound) }
}

type Socket = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// `{prefix}/sign/{uuid}` and the sign-in page's socket: relays Xumm's status WebSocket for
/// `uuid` message by message (the handshake is Xumm's own: the client's key goes to Xumm, Xumm's
/// accept comes back); `on_outcome` runs once when Xumm reports the payload resolved.
pub(crate) async fn relay_socket(client: &crate::xumm::client::PlatformClient, req: &mut Request<Incoming>, uuid: &str, on_outcome: impl FnOnce() + Send + 'static) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return BrokerError::WebsocketRequired.render();
    };
    let version = req.headers().get("sec-websocket-version").cloned();
    let client_side = hyper::upgrade::on(&mut *req);
    let mut upstream = match client.status_socket(uuid, &key, version.as_ref()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(cause = %e, "status socket to Xumm failed");
            return BrokerError::StatusSocket.render();
        }
    };
    let accept = upstream.headers().get("sec-websocket-accept").cloned();
    let xumm_side = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        if let Ok((c, x)) = tokio::try_join!(client_side, xumm_side) {
            relay_status(c, x, on_outcome).await;
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Some(a) = accept {
        r.headers_mut().insert("sec-websocket-accept", a);
    }
    r
}


/// Copies messages between the client and Xumm until either side closes. Pings are answered by
/// each side's own WebSocket stack, not forwarded. `on_outcome` runs once, as soon as Xumm's
/// outcome (`signed` or `expired`) has reached the client.
async fn relay_status(client: hyper::upgrade::Upgraded, xumm: hyper::upgrade::Upgraded, on_outcome: impl FnOnce()) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let mut client = Socket::from_raw_socket(hyper_util::rt::TokioIo::new(client), Role::Server, None).await;
    let mut xumm = Socket::from_raw_socket(hyper_util::rt::TokioIo::new(xumm), Role::Client, None).await;
    let mut on_outcome = Some(on_outcome);
    loop {
        tokio::select! {
            m = xumm.next() => {
                let outcome = matches!(&m, Some(Ok(Message::Text(t)))
                    if serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v.get("signed").is_some() || v.get("expired").is_some()));
                if !pass(m, &mut client).await {
                    break;
                }
                if let Some(f) = on_outcome.take_if(|_| outcome) {
                    f();
                }
            }
            m = client.next() => {
                if !pass(m, &mut xumm).await {
                    break;
                }
            }
        }
    }
}

/// Passes one message read from one side on to the other; false when the relay should end
/// (a close, an error or the end of either side, after closing the other side).
async fn pass(m: Option<Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>, to: &mut Socket) -> bool {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    match m {
        Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => to.send(m).await.is_ok(),
        Some(Ok(Message::Close(c))) => {
            let _ = to.close(c).await;
            false
        }
        Some(Ok(_)) => true,
        Some(Err(_)) | None => {
            let _ = to.close(None).await;
            false
        }
    }
}
