//! The sign-request broker: apps behind the gateway and signed-in users ask for Xumm sign
//! requests; only the gateway holds the API secret. It must never let one app or user see or
//! cancel another's payload, never report a payload signed by another account as signed, and
//! never forward a transaction type an app may not ask for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::account::Account;
use crate::config::{BrokerAppConfig, XummConfig};
use crate::session::Session;
use crate::xumm::callback::Callback;
use crate::xumm::client::{PlatformClient, XummError};

/// Who asks.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A backend app with gateway-issued credentials.
    App(Arc<App>),
    /// A signed-in user (session cookie or Bearer JWT).
    User(Arc<Session>),
}

#[derive(Debug)]
pub struct App {
    pub name: String,
    key: String,
    secret_sha256: [u8; 32],
    allowed: Vec<String>,
    limiter: Limiter,
    network: Option<String>,
    callback: Option<Callback>,
}

/// A fixed one-minute window counter.
#[derive(Debug)]
struct Limiter {
    max: u32,
    window: Mutex<(Instant, u32)>,
}

impl Limiter {
    fn new(max: u32) -> Limiter {
        Limiter { max, window: Mutex::new((Instant::now(), 0)) }
    }
    /// Ok, or the seconds until the window resets.
    fn take(&self) -> Result<(), u64> {
        let mut w = self.window.lock().unwrap();
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), 0);
        }
        if w.1 >= self.max {
            return Err(60u64.saturating_sub(w.0.elapsed().as_secs()).max(1));
        }
        w.1 += 1;
        Ok(())
    }
}

/// What the gateway remembers of a payload it created.
#[derive(Clone, Debug)]
struct Record {
    owner: String,
    /// The backend app that asked (None for a signed-in user).
    app: Option<Arc<App>>,
    /// The account that must sign it, when the payload is bound to a user.
    account: Option<Account>,
    /// The network Xumm must dispatch it to: the app's `network`, else the request's own
    /// `options.force_network`.
    network: Option<String>,
    tx_type: String,
    /// Unix seconds.
    created: u64,
}

/// What a fetched payload means for its record. Never "signed" when another wallet signed it or
/// Xumm dispatched it to a network other than the one the app demands.
fn outcome(rec: &Record, resp: &Value) -> &'static str {
    let flag = |k: &str| resp["meta"][k].as_bool() == Some(true);
    match (flag("resolved"), flag("signed")) {
        (true, true) => {
            let signer = resp["response"]["account"].as_str().unwrap_or("");
            let network = resp["response"]["dispatched_nodetype"].as_str().unwrap_or("");
            let wanted = rec.network.as_deref();
            match &rec.account {
                Some(a) if a.as_str() != signer => "signer_mismatch",
                _ if wanted.is_some_and(|w| !w.eq_ignore_ascii_case(network)) => "network_mismatch",
                _ => "signed",
            }
        }
        (true, false) => "rejected",
        _ if flag("cancelled") => "cancelled",
        _ if flag("expired") => "expired",
        _ => "pending",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown app credentials")]
    BadCredentials,
    #[error("sign in or send app credentials")]
    NoCaller,
    #[error("request body must be a JSON object")]
    BadBody,
    #[error("transaction type {0:?} is not allowed for this app")]
    TxTypeNotAllowed(String),
    #[error("user_token is not the signed-in user's")]
    ForeignUserToken,
    #[error("too many sign requests")]
    RateLimited(u64),
    #[error("payload not found")]
    NotFound,
    #[error(transparent)]
    Xumm(#[from] XummError),
}

impl BrokerError {
    pub fn status(&self) -> StatusCode {
        match self {
            BrokerError::BadCredentials | BrokerError::NoCaller => StatusCode::UNAUTHORIZED,
            BrokerError::BadBody => StatusCode::BAD_REQUEST,
            BrokerError::TxTypeNotAllowed(_) | BrokerError::ForeignUserToken => StatusCode::FORBIDDEN,
            BrokerError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            BrokerError::NotFound => StatusCode::NOT_FOUND,
            BrokerError::Xumm(XummError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            BrokerError::Xumm(XummError::Api { status, .. }) if status.is_client_error() => *status,
            BrokerError::Xumm(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            BrokerError::RateLimited(s) => Some(*s),
            BrokerError::Xumm(XummError::RateLimited { retry_after }) => Some(*retry_after),
            _ => None,
        }
    }

    /// Xumm's error shape, so the official SDK reports it: `{"error": {"reference", "code"}}`.
    pub fn body(&self) -> Value {
        let code = match self {
            BrokerError::Xumm(XummError::Api { code, .. }) => *code,
            other => other.status().as_u16() as i64,
        };
        json!({"error": {"reference": "", "code": code, "message": self.to_string()}})
    }
}

pub struct Broker {
    pub client: PlatformClient,
    pub webhook: crate::xumm::webhook::WebhookVerifier,
    apps: Vec<Arc<App>>,
    user_limiters: moka::sync::Cache<String, Arc<Limiter>>,
    /// Immutable once written; what happened to a payload since is claimed in `once`.
    records: moka::sync::Cache<String, Record>,
    /// Whether an outcome's audit line and app callback are still owed.
    once: crate::xumm::once::Claims,
    /// For app callbacks (a client of its own: callbacks go to the apps, not to Xumm).
    notifier: crate::oidc::HttpsClient,
}

/// How long the gateway remembers a payload it created.
const RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Broker {
    pub fn new(xumm: &XummConfig, apps: &[BrokerAppConfig]) -> Broker {
        let apps = apps
            .iter()
            .map(|a| {
                let secret_sha256 = match a.secret.strip_prefix("sha256:") {
                    Some(hex) => {
                        let mut out = [0u8; 32];
                        for (i, b) in out.iter_mut().enumerate() {
                            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
                        }
                        out
                    }
                    None => sha256(&a.secret),
                };
                Arc::new(App {
                    name: a.name.clone(),
                    key: a.key.clone(),
                    secret_sha256,
                    allowed: a.allowed_tx_types.clone(),
                    limiter: Limiter::new(a.max_per_minute),
                    network: a.network.clone(),
                    callback: a.callback_url.as_deref().map(|u| Callback::new(u, a.callback_secret.as_deref().unwrap_or_default())),
                })
            })
            .collect();
        Broker {
            client: PlatformClient::new(xumm),
            webhook: crate::xumm::webhook::WebhookVerifier::new(&xumm.api_secret),
            apps,
            user_limiters: moka::sync::Cache::builder().max_capacity(100_000).time_to_idle(Duration::from_secs(120)).build(),
            records: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_live(RECORD_TTL).build(),
            once: crate::xumm::once::Claims::new(RECORD_TTL),
            notifier: crate::oidc::https_client(),
        }
    }

    /// The app whose x-api-key / x-api-secret these are (the secret compared by its hash).
    pub fn app(&self, h: &HeaderMap) -> Option<Result<Arc<App>, BrokerError>> {
        let key = h.get("x-api-key")?.to_str().ok()?;
        let secret = h.get("x-api-secret").and_then(|v| v.to_str().ok()).unwrap_or("");
        let given = sha256(secret);
        Some(
            self.apps
                .iter()
                .find(|a| a.key == key && constant_eq(&a.secret_sha256, &given))
                .cloned()
                .ok_or(BrokerError::BadCredentials),
        )
    }

    pub async fn ping(&self, caller: &Caller) -> Result<Value, BrokerError> {
        let name = match caller {
            Caller::App(a) => a.name.clone(),
            Caller::User(s) => s.account.to_string(),
        };
        Ok(json!({"pong": true, "auth": {"application": {"name": name}}}))
    }

    /// POST payload: policy, binding to the user, forwarding, recording.
    /// `bound`: for an app caller, the account its user-token handle stood for (already swapped in).
    pub async fn create(&self, caller: &Caller, mut body: Value, bound: Option<Account>) -> Result<Value, BrokerError> {
        let obj = body.as_object_mut().ok_or(BrokerError::BadBody)?;
        let tx_type = obj
            .get("txjson")
            .and_then(|t| t.get("TransactionType"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| if obj.contains_key("txblob") { "txblob".into() } else { String::new() });
        if tx_type.is_empty() {
            return Err(BrokerError::BadBody);
        }
        let (owner, app, account) = match caller {
            Caller::App(app) => {
                if !app.allowed.is_empty() && !app.allowed.contains(&tx_type) {
                    return Err(BrokerError::TxTypeNotAllowed(tx_type));
                }
                app.limiter.take().map_err(BrokerError::RateLimited)?;
                (format!("app:{}", app.name), Some(app.clone()), bound)
            }
            Caller::User(s) => {
                let limiter = self.user_limiters.get_with(s.account.to_string(), || Arc::new(Limiter::new(10)));
                limiter.take().map_err(BrokerError::RateLimited)?;
                // The request goes to this user's phone: their own user token, never another's.
                match (obj.get("user_token").and_then(|t| t.as_str()), &s.user_token) {
                    (Some(given), Some(own)) if given != own => return Err(BrokerError::ForeignUserToken),
                    (Some(_), None) => return Err(BrokerError::ForeignUserToken),
                    _ => {}
                }
                if let Some(own) = &s.user_token {
                    obj.insert("user_token".into(), json!(own));
                }
                (format!("user:{}", s.account), None, Some(s.account.clone()))
            }
        };
        let network = app.as_ref().and_then(|a| a.network.clone()).or_else(|| body["options"]["force_network"].as_str().map(str::to_ascii_uppercase));
        let resp = self.client.call(Method::POST, "payload", Some(&body)).await?;
        let uuid = resp["uuid"].as_str().unwrap_or_default().to_string();
        if !uuid.is_empty() {
            self.records.insert(uuid.clone(), Record { owner: owner.clone(), app, account, network, tx_type: tx_type.clone(), created: crate::session::now() });
        }
        tracing::info!(target: "xumm_gate::audit", owner = %owner, tx_type = %tx_type, uuid = %uuid, outcome = "created", "sign request");
        Ok(resp)
    }

    /// True when the gateway created this payload (the status socket is open to whoever knows
    /// the uuid, as Xumm's own is; the uuid is unguessable).
    pub fn known(&self, uuid: &str) -> bool {
        self.records.contains_key(uuid)
    }

    fn owned(&self, caller: &Caller, uuid: &str) -> Result<Record, BrokerError> {
        let owner = match caller {
            Caller::App(a) => format!("app:{}", a.name),
            Caller::User(s) => format!("user:{}", s.account),
        };
        self.records.get(uuid).filter(|r| r.owner == owner).ok_or(BrokerError::NotFound)
    }

    /// GET payload: Xumm's answer, with the signer checked against the bound account.
    pub async fn get(&self, caller: &Caller, uuid: &str) -> Result<Value, BrokerError> {
        let rec = self.owned(caller, uuid)?;
        let mut resp = self.client.call(Method::GET, &format!("payload/{uuid}"), None).await?;
        let outcome = outcome(&rec, &resp);
        if outcome.ends_with("_mismatch") {
            resp["meta"]["signed"] = json!(false);
        }
        resp["gateway"] = json!({"outcome": outcome, "created": rec.created});
        // Xumm's user token never leaves the gateway.
        if let Some(app) = resp.get_mut("application").and_then(|a| a.as_object_mut()) {
            app.remove("issued_user_token");
        }
        self.settle(uuid, rec, outcome, &resp, "api");
        Ok(resp)
    }

    /// Xumm said a payload resolved (a verified webhook, or an outcome message on a relayed
    /// status socket): fetch it (neither message is the result), check the signer, write the
    /// audit line and notify the owning app.
    pub async fn resolved(&self, uuid: &str, via: &'static str) {
        let Some(rec) = self.records.get(uuid) else { return };
        match self.client.call(Method::GET, &format!("payload/{uuid}"), None).await {
            Ok(resp) => {
                let o = outcome(&rec, &resp);
                self.settle(uuid, rec, o, &resp, via);
            }
            Err(e) => tracing::warn!(uuid = %uuid, via, cause = %e, "cannot fetch a resolved payload"),
        }
    }

    /// Once per payload: the audit line, and (for an app with a `callback_url`, when the outcome
    /// came from Xumm rather than the app's own read) the signed notification. Each is claimed
    /// atomically, so the status socket, the webhook and reads racing on one outcome act once.
    fn settle(&self, uuid: &str, rec: Record, outcome: &'static str, resp: &Value, via: &'static str) {
        if outcome == "pending" {
            return;
        }
        if self.once.claim("audit", uuid) {
            tracing::info!(target: "xumm_gate::audit", owner = %rec.owner, account = rec.account.as_ref().map_or("-", |a| a.as_str()), tx_type = %rec.tx_type, uuid = %uuid, outcome, via, "sign request");
        }
        // The app asked itself when the outcome came from its own read; otherwise it is told.
        let owed = via != "api" && rec.app.as_ref().is_some_and(|a| a.callback.is_some());
        if !(owed && self.once.claim("notify", uuid)) {
            return;
        }
        if let Some(app) = rec.app {
            let body = json!({
                "uuid": uuid, "app": app.name, "outcome": outcome, "tx_type": rec.tx_type,
                "account": rec.account.as_ref().map(|a| a.as_str()), "signer": resp["response"]["account"],
                "txid": resp["response"]["txid"], "network": resp["response"]["dispatched_nodetype"],
                "custom_meta": resp["custom_meta"],
            });
            let (client, uuid) = (self.notifier.clone(), uuid.to_string());
            tokio::spawn(async move {
                if let Some(cb) = &app.callback {
                    cb.deliver(&client, &app.name, &uuid, body).await;
                }
            });
        }
    }

    pub async fn cancel(&self, caller: &Caller, uuid: &str) -> Result<Value, BrokerError> {
        self.owned(caller, uuid)?;
        Ok(self.client.call(Method::DELETE, &format!("payload/{uuid}"), None).await?)
    }
}

fn constant_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
