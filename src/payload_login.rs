//! Sign-in with a SignIn payload (`provider.kind = "payload"`), the backend credentials' own
//! flow: the gateway creates the payload, shows it as a QR code (or Xumm pushes it to the phone
//! of a returning user) and opens the session once Xumm reports it signed. It must never open a
//! session for anything but this login's own signed SignIn payload, never create payloads without
//! bounds (each spends the app's Xumm quota), and never show or log a user token.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::metrics::{SignInFailure, SignInKind};
use crate::Gateway;
use crate::account::Account;
use crate::auth::Auth;
use crate::body::Body;
use crate::error::GatewayError;
use crate::login::append_cookie;
use crate::pages::{self, esc};
use crate::session::{Session, Source, now};
use crate::shared::Shared;
use crate::xumm::client::{PlatformClient, XummError};

/// A returning user's user token (for push) is kept this long.
const USER_TOKEN_DAYS: i64 = 30;

/// Creates and checks SignIn payloads with the gateway's platform client.
pub struct PayloadLogin {
    client: Arc<PlatformClient>,
    shared: Arc<Shared>,
    per_minute: u64,
    /// How long a payload (and its pending login) lives: Xumm's `options.expire`, in minutes.
    expire_minutes: u64,
}

/// A payload sign-in in progress, sealed in a cookie of its own (so any replica can finish it).
#[derive(Serialize, Deserialize)]
struct Pending {
    /// the login's id (`custom_meta.identifier`)
    i: String,
    /// the payload
    u: String,
    /// where the QR code and the deep link point (`next.always`)
    a: String,
    /// return URL (already checked)
    r: String,
    /// created, unix seconds
    t: u64,
    /// the account whose user token it was pushed to
    p: Option<String>,
}

/// Why a payload sign-in opened no session.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the sign-in request was rejected in Xumm")]
    Rejected,
    #[error("the sign-in request expired before it was signed")]
    Expired,
    #[error("the sign-in request was cancelled")]
    Cancelled,
    #[error("the sign-in request is not signed yet")]
    NotYet,
    #[error("the signed request is not this sign-in's")]
    Mismatch,
    #[error("it was signed with another account than the one this browser signed in with before")]
    OtherAccount,
    #[error("Xumm's answer names no valid XRPL account")]
    BadAnswer,
    #[error("this sign-in was already completed")]
    Used,
    #[error("this sign-in is unknown or too old")]
    Unknown,
    #[error("Xumm cannot be reached")]
    Unavailable { retry_after: u64 },
}

impl PayloadError {
    /// The reason a sign-in failed, as counted and audited.
    pub fn reason(&self) -> SignInFailure {
        match self {
            PayloadError::Rejected => SignInFailure::Rejected,
            PayloadError::Expired | PayloadError::Cancelled => SignInFailure::Expired,
            PayloadError::NotYet | PayloadError::Mismatch | PayloadError::Used | PayloadError::Unknown => SignInFailure::State,
            PayloadError::OtherAccount | PayloadError::BadAnswer => SignInFailure::Account,
            PayloadError::Unavailable { .. } => SignInFailure::ProviderUnavailable,
        }
    }
}

/// What a signed SignIn payload says.
struct Signed {
    account: Account,
    network: Option<String>,
    user_token: Option<String>,
}

fn unavailable(e: XummError) -> PayloadError {
    match e {
        XummError::RateLimited { retry_after } => PayloadError::Unavailable { retry_after },
        e => {
            tracing::warn!(cause = %e, "Xumm call for a payload sign-in failed");
            PayloadError::Unavailable { retry_after: 5 }
        }
    }
}

impl PayloadLogin {
    pub fn new(client: Arc<PlatformClient>, shared: Arc<Shared>, per_minute: u32, expiry: Duration) -> PayloadLogin {
        PayloadLogin { client, shared, per_minute: per_minute.into(), expire_minutes: (expiry.as_secs() / 60).max(1) }
    }

    /// The pending login's life: the payload's, and a minute for the way back.
    fn pending_secs(&self) -> u64 {
        self.expire_minutes * 60 + 60
    }

    /// Counts one payload against the overall per-minute bound; Err(seconds to wait) past it.
    async fn take_budget(&self) -> Result<(), u64> {
        match self.shared.count_per_minute("payload-sign-in").await {
            Ok((n, _)) if n <= self.per_minute => Ok(()),
            Ok((_, left)) => Err(left),
            Err(e) => {
                tracing::error!(cause = %e, "shared store unavailable");
                Err(2)
            }
        }
    }

    /// `POST payload`: a SignIn bound to login `id`, returning to `return_url`; pushed when a
    /// user token is given. Never retried (a retry could create a second payload).
    async fn create(&self, id: &str, return_url: &str, user_token: Option<&str>, host: &str) -> Result<(String, String), PayloadError> {
        let mut body = serde_json::json!({
            "txjson": {"TransactionType": "SignIn"},
            "options": {"submit": false, "expire": self.expire_minutes, "return_url": {"app": return_url, "web": return_url}},
            "custom_meta": {"identifier": id, "instruction": format!("Sign in to {host}")},
        });
        if let Some(t) = user_token {
            body["user_token"] = t.into();
        }
        let v = self.client.call_once(Method::POST, "payload", Some(&body)).await.map_err(unavailable)?;
        match (v["uuid"].as_str(), v["next"]["always"].as_str()) {
            (Some(u), Some(a)) => Ok((u.to_string(), a.to_string())),
            _ => Err(PayloadError::Unavailable { retry_after: 5 }),
        }
    }

    /// Xumm's word on the login's payload: signed by whom, or why not. Checks that it is a
    /// SignIn, that it is this login's (`custom_meta.identifier`), the signer's r-address, and
    /// that a payload pushed to a returning user was signed by that user's account.
    async fn outcome(&self, p: &Pending) -> Result<Signed, PayloadError> {
        let v = self.client.call(Method::GET, &format!("payload/{}", p.u), None).await.map_err(|e| match e {
            XummError::Api { status, .. } if status == StatusCode::NOT_FOUND => PayloadError::Unknown,
            e => unavailable(e),
        })?;
        let meta = &v["meta"];
        let flag = |k: &str| meta[k].as_bool().unwrap_or(false);
        if !flag("resolved") {
            return Err(if flag("cancelled") {
                PayloadError::Cancelled
            } else if flag("expired") {
                PayloadError::Expired
            } else {
                PayloadError::NotYet
            });
        }
        if !flag("signed") {
            return Err(PayloadError::Rejected);
        }
        if v["payload"]["tx_type"].as_str() != Some("SignIn") || v["custom_meta"]["identifier"].as_str() != Some(p.i.as_str()) {
            return Err(PayloadError::Mismatch);
        }
        let account = v["response"]["account"].as_str().and_then(|a| Account::parse(a).ok()).ok_or(PayloadError::BadAnswer)?;
        if p.p.as_deref().is_some_and(|pushed| pushed != account.as_str()) {
            return Err(PayloadError::OtherAccount);
        }
        let network = v["response"]["environment_nodetype"].as_str().or(v["response"]["dispatched_nodetype"].as_str()).map(str::to_ascii_uppercase);
        let user_token = v["application"]["issued_user_token"].as_str().map(str::to_string);
        Ok(Signed { account, network, user_token })
    }

    /// Cancels the payload at Xumm once it expired unscanned (an open request would otherwise
    /// linger in the user's Xumm event list).
    fn cancel_when_expired(self: &Arc<Self>, uuid: String) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(me.expire_minutes * 60)).await;
            match me.client.call(Method::GET, &format!("payload/{uuid}"), None).await {
                Ok(v) if !v["meta"]["resolved"].as_bool().unwrap_or(true) && !v["meta"]["cancelled"].as_bool().unwrap_or(true) => {
                    if let Err(e) = me.client.call(Method::DELETE, &format!("payload/{uuid}"), None).await {
                        tracing::info!(cause = %e, "cannot cancel an expired sign-in payload");
                    }
                }
                _ => {}
            }
        });
    }
}

/// The sign-in pages answer browser navigations.
const PAGE: crate::error::Client = crate::error::Client { accepts: crate::error::Accepts::Html, navigation: true };

impl Gateway {
    fn pending_name(auth: &Auth, id: &str) -> String {
        format!("{}q{id}", auth.login_prefix)
    }

    fn user_token_name(auth: &Auth) -> String {
        format!("{}_ut", auth.cookie_name)
    }

    /// The pending login `id` from its cookie; None when absent, tampered, or older than the payload.
    fn pending(auth: &Auth, pl: &PayloadLogin, headers: &HeaderMap, id: &str) -> Option<Pending> {
        let name = Gateway::pending_name(auth, id);
        let (_, v) = crate::session::cookie::text_cookies(headers).find(|(n, _)| *n == name)?;
        let p: Pending = serde_json::from_str(&auth.sealer.open(&name, v)?).ok()?;
        (p.i == id && now().saturating_sub(p.t) <= pl.pending_secs()).then_some(p)
    }

    /// `{prefix}/start` with `provider.kind = "payload"`: a new SignIn payload (pushed to the
    /// phone of a returning user), a pending-login cookie, and the QR page.
    pub async fn payload_start(&self, auth: &Auth, pl: &Arc<PayloadLogin>, headers: &HeaderMap, rd: String) -> Response<Body> {
        if let Err(retry_after) = pl.take_budget().await {
            tracing::warn!(retry_after, "payload sign-in budget reached (provider.payloads_per_minute)");
            return GatewayError::SignInsBusy { retry_after }.render(PAGE);
        }
        let id = crate::session::new_id();
        let base = self.server.public_url.as_str().trim_end_matches('/');
        let prefix = &self.server.prefix;
        let returning = crate::session::cookie::text_cookies(headers)
            .find(|(n, _)| *n == Gateway::user_token_name(auth))
            .and_then(|(n, v)| auth.sealer.open(n, v))
            .and_then(|v| v.split_once('\n').map(|(a, t)| (a.to_string(), t.to_string())));
        let host = self.server.public_url.host_str().unwrap_or("this app").to_string();
        let done = format!("{base}{prefix}/qr/{id}/done");
        let (uuid, next) = match pl.create(&id, &done, returning.as_ref().map(|(_, t)| t.as_str()), &host).await {
            Ok(created) => created,
            Err(e) => {
                self.sign_in_failed(SignInKind::Payload, e.reason());
                return problem(e, self.start_url(&rd));
            }
        };
        crate::metrics::sign_in_started(SignInKind::Payload);
        pl.cancel_when_expired(uuid.clone());
        let pending = Pending { i: id.clone(), u: uuid, a: next, r: rd, t: now(), p: returning.map(|(a, _)| a) };
        let name = Gateway::pending_name(auth, &id);
        let sealed = auth.sealer.seal(&name, &serde_json::to_string(&pending).expect("serializable"));
        let mut r = pages::redirect(StatusCode::FOUND, &format!("{prefix}/qr/{id}"));
        append_cookie(r.headers_mut(), &auth.sealer.set_cookie(&name, sealed, prefix, Some(pl.pending_secs() as i64)));
        r
    }

    /// `{prefix}/qr/{id}`, `{prefix}/qr/{id}/socket`, `{prefix}/qr/{id}/done`.
    pub async fn payload_endpoint(&self, auth: &Auth, pl: &Arc<PayloadLogin>, req: &mut Request<Incoming>, rest: &str) -> Response<Body> {
        let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(p) = Gateway::pending(auth, pl, req.headers(), id) else {
            return problem(PayloadError::Unknown, self.start_url("/"));
        };
        match action {
            "" => qr_page(&p, &self.server.prefix, self.start_url(&p.r).as_str()),
            "socket" => crate::xumm::routes::relay_socket(&pl.client, req, &p.u, || {}).await,
            "done" => self.payload_done(auth, pl, req.headers(), p).await,
            _ => GatewayError::NotFound.render(PAGE),
        }
    }

    /// The end of a payload sign-in: Xumm's outcome checked, the session opened (once), the
    /// user token kept for a push next time, the browser sent back.
    async fn payload_done(&self, auth: &Auth, pl: &PayloadLogin, headers: &HeaderMap, p: Pending) -> Response<Body> {
        let retry = self.start_url(&p.r);
        let clear_pending = auth.sealer.clear_cookie(&Gateway::pending_name(auth, &p.i), &self.server.prefix);
        let signed = match pl.outcome(&p).await {
            Ok(s) => s,
            Err(PayloadError::NotYet) => return pages::redirect(StatusCode::FOUND, &format!("{}/qr/{}", self.server.prefix, p.i)),
            Err(e) => {
                tracing::info!(cause = %e, "payload sign-in did not complete");
                self.sign_in_failed(SignInKind::Payload, e.reason());
                let (retryable, other_account) = (matches!(e, PayloadError::Unavailable { .. }), matches!(e, PayloadError::OtherAccount));
                let mut r = problem(e, retry);
                if !retryable {
                    append_cookie(r.headers_mut(), &clear_pending);
                }
                if other_account {
                    // Next time, a QR code for whichever account the user picks.
                    append_cookie(r.headers_mut(), &auth.sealer.clear_cookie(&Gateway::user_token_name(auth), &self.server.prefix));
                }
                return r;
            }
        };
        match pl.shared.claim(&format!("payload-login:{}", p.u), Duration::from_secs(pl.pending_secs() + 60)).await {
            Ok(true) => {}
            Ok(false) => {
                self.sign_in_failed(SignInKind::Payload, PayloadError::Used.reason());
                return problem(PayloadError::Used, retry);
            }
            Err(e) => {
                tracing::error!(cause = %e, "shared store unavailable");
                self.sign_in_failed(SignInKind::Payload, SignInFailure::StoreUnavailable);
                return GatewayError::StoreUnavailable.render(PAGE);
            }
        }
        let remember = signed.user_token.as_ref().map(|t| format!("{}\n{t}", signed.account));
        let session = Session::new(signed.account, signed.network, signed.user_token, Source::Session, now() + auth.ttl.as_secs());
        tracing::info!(account = %session.account, network = session.network.as_deref().unwrap_or("-"), "signed in with a SignIn payload");
        let mut r = match crate::login::signed_in(self, auth, session, SignInKind::Payload, headers, &p.r).await {
            Ok(r) => r,
            Err(e) => return e.render(PAGE),
        };
        if let Some(v) = remember {
            let name = Gateway::user_token_name(auth);
            let sealed = auth.sealer.seal(&name, &v);
            append_cookie(r.headers_mut(), &auth.sealer.set_cookie(&name, sealed, &self.server.prefix, Some(USER_TOKEN_DAYS * 86_400)));
        }
        append_cookie(r.headers_mut(), &clear_pending);
        r
    }
}

/// A payload sign-in that did not complete, rendered like every refusal.
fn problem(error: PayloadError, retry: String) -> Response<Body> {
    GatewayError::Payload { error, retry }.render(PAGE)
}

/// The QR page: the code (server-rendered SVG), the deep link for a phone, and a script that
/// follows the payload's status socket and moves on as soon as Xumm reports an outcome.
fn qr_page(p: &Pending, prefix: &str, retry: &str) -> Response<Body> {
    let svg = match qrcode::QrCode::new(p.a.as_bytes()) {
        Ok(code) => code.render::<qrcode::render::svg::Color>().min_dimensions(240, 240).quiet_zone(true).build(),
        Err(_) => String::new(),
    };
    let id = esc(&p.i);
    let body = format!(
        "<p>Scan the code with Xumm, or on this phone <a id=\"open\" href=\"{link}\">open the request in Xumm</a>, \
         then sign it to sign in.</p>\
         <div id=\"qr\" role=\"img\" aria-label=\"QR code of the sign-in request\">{svg}</div>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\">Waiting for you to sign in Xumm.</p>\
         <p><a id=\"continue\" href=\"{prefix}/qr/{id}/done\">I have signed it</a> · <a href=\"{retry}\">Start again</a></p>\
         <script>(function(){{var done='{prefix}/qr/{id}/done';var st=document.getElementById('status');\
         var ws=new WebSocket((location.protocol==='https:'?'wss://':'ws://')+location.host+'{prefix}/qr/{id}/socket');\
         ws.onmessage=function(e){{var m;try{{m=JSON.parse(e.data)}}catch(x){{return}}\
         if(m.opened){{st.textContent='Opened in Xumm: sign it there.'}}\
         if('signed' in m||m.expired){{st.textContent=m.signed?'Signed. Signing you in...':'Finishing...';location.href=done}}}};\
         ws.onerror=function(){{st.textContent='Live updates are unavailable: after signing, choose: I have signed it.'}};}})();</script>",
        link = esc(&p.a),
        retry = esc(retry),
        prefix = esc(prefix),
    );
    pages::page(StatusCode::OK, "Sign in with Xumm", &body)
}
