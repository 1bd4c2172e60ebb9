//! The sign-in flow: `{prefix}/start`, `{prefix}/callback`, `{prefix}/sign_out`, `{prefix}/userinfo`.
//! It must never open a session without a verified token, never reuse a session id across
//! sign-ins, never follow an unchecked return URL, and never show a token or secret.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::metrics::{SignInFailure, SignInKind};
use crate::Gateway;
use crate::auth::{Auth, Found};
use crate::body::Body;
use crate::error::GatewayError;
use crate::oidc::OidcError;
use crate::pages;
use crate::session::{Session, SessionStore, Source, now};

/// Most pending logins a browser keeps at once (tabs signing in together); the oldest goes.
const MAX_PENDING: usize = 5;
/// Most pending-login cookies `/start` examines (and so clears) in one request.
const MAX_EXAMINED: usize = 16;
/// A pending login older than this is refused at the callback.
const PENDING_TTL: u64 = 600;

#[derive(Serialize, Deserialize)]
struct Pending {
    /// state
    s: String,
    /// nonce
    n: String,
    /// PKCE verifier
    v: String,
    /// return URL (already checked)
    r: String,
    /// created, unix seconds
    t: u64,
}

fn b64_random(n: usize) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Query parameters as pairs; `None` when a parameter in `single` appears more than once.
fn query_pairs(query: Option<&str>, single: &[&str]) -> Option<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    for key in single {
        if pairs.iter().filter(|(k, _)| k == key).count() > 1 {
            return None;
        }
    }
    Some(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl Gateway {
    fn start_path(&self) -> String {
        format!("{}/start", self.server.prefix)
    }

    /// Where a request without a session is sent to sign in.
    pub fn start_url(&self, return_to: &str) -> String {
        let rd: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        format!("{}?rd={rd}", self.start_path())
    }

    fn return_url(&self, rd: Option<&str>) -> String {
        crate::redirect::safe_return(rd.unwrap_or("/"), &self.endpoints.allowed_redirect_hosts, self.server.public_url.host_str())
    }

    /// GET {prefix}/start?rd=: new state, nonce and PKCE; pending-login cookie; 302 to the provider.
    pub async fn login_start(&self, auth: &Auth, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
        let Some(pairs) = query_pairs(query, &["rd"]) else {
            return problem(StatusCode::BAD_REQUEST, "The sign-in link was malformed.", "/");
        };
        let rd = self.return_url(param(&pairs, "rd"));
        // An xApp launch that reached sign-in (through forward auth's 401 and the proxy's
        // error page): the token is the sign-in.
        if let (Some(_), Some((launch, back))) = (&self.admission.xapp, crate::xapp::split_launch(&rd)) {
            return pages::redirect(StatusCode::FOUND, &self.xapp_url(&launch, &back));
        }
        if let Some(pl) = &self.endpoints.payload_login {
            let oauth2 = auth.provider.cfg.kind.get() == crate::config::ProviderKind::Oauth2;
            match param(&pairs, "via") {
                Some("payload") => return self.payload_start(auth, pl, headers, rd).await,
                Some("oauth2") if oauth2 => {}
                _ if oauth2 => return sign_in_choice(&self.start_path(), &rd),
                _ => return self.payload_start(auth, pl, headers, rd).await,
            }
        }
        let Some(meta) = auth.provider.metadata() else {
            self.sign_in_failed(SignInKind::Oauth2, SignInFailure::ProviderUnavailable);
            return GatewayError::ProviderStartingUp.render(PAGE);
        };
        let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
        let pending = Pending { s: b64_random(16), n: b64_random(16), v: verifier.secret().to_string(), r: rd, t: now() };
        let cookie_name = format!("{}{}", auth.login_prefix, pending.s);
        let sealed = auth.sealer.seal(&cookie_name, &serde_json::to_string(&pending).expect("serializable"));

        let mut url = match url::Url::parse(&meta.authorization_endpoint) {
            Ok(u) => u,
            Err(_) => return problem(StatusCode::BAD_GATEWAY, "The identity provider's metadata is invalid.", &self.start_path()),
        };
        url.query_pairs_mut()
            .append_pair("client_id", &auth.provider.cfg.client_id)
            .append_pair("redirect_uri", &auth.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &auth.provider.cfg.scopes.join(" "))
            .append_pair("state", &pending.s)
            .append_pair("nonce", &pending.n)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        crate::metrics::sign_in_started(SignInKind::Oauth2);
        let mut resp = pages::redirect(StatusCode::FOUND, url.as_str());
        let h = resp.headers_mut();
        append_cookie(h, &auth.sealer.set_cookie(&cookie_name, sealed, &self.server.prefix, Some(PENDING_TTL as i64)));
        // Keep at most MAX_PENDING pending logins: drop the oldest (and any that do not open).
        // Only the first MAX_EXAMINED are looked at, so a client sending thousands of stale
        // ones gets a bounded answer (the rest expire by their own Max-Age).
        let mut others: Vec<(u64, String)> = crate::session::cookie::text_cookies(headers)
            .filter(|(n, _)| n.starts_with(&auth.login_prefix))
            .take(MAX_EXAMINED)
            .map(|(n, v)| {
                let created = auth.sealer.open(n, v).and_then(|p| serde_json::from_str::<Pending>(&p).ok()).map_or(0, |p| p.t);
                (created, n.to_string())
            })
            .collect();
        others.sort();
        let excess = (others.len() + 1).saturating_sub(MAX_PENDING);
        for (i, (created, name)) in others.iter().enumerate() {
            if i < excess || *created == 0 {
                append_cookie(h, &auth.sealer.clear_cookie(name, &self.server.prefix));
            }
        }
        resp
    }

    /// GET {prefix}/callback: checks state, exchanges the code, verifies the id_token, opens the session.
    pub async fn login_callback(&self, auth: &Auth, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
        let retry = self.start_path();
        let Some(pairs) = query_pairs(query, &["state", "code", "authorization_code", "error", "nonce"]) else {
            self.sign_in_failed(SignInKind::Oauth2, SignInFailure::State);
            return problem(StatusCode::BAD_REQUEST, "The sign-in response repeated a parameter; it was refused.", &retry);
        };
        if let Some(err) = param(&pairs, "error") {
            let what = if err == "access_denied" { "The sign-in request was rejected in Xumm." } else { "The identity provider reported an error." };
            tracing::info!(error = %err, "sign-in ended with a provider error");
            self.sign_in_failed(SignInKind::Oauth2, if err == "access_denied" { SignInFailure::Rejected } else { SignInFailure::Token });
            return problem(StatusCode::UNAUTHORIZED, what, &retry);
        }
        let code = match (param(&pairs, "code"), param(&pairs, "authorization_code")) {
            (Some(a), Some(b)) if a != b => None,
            (Some(a), _) | (None, Some(a)) => Some(a),
            (None, None) => None,
        };
        let (Some(state), Some(code)) = (param(&pairs, "state"), code) else {
            self.sign_in_failed(SignInKind::Oauth2, SignInFailure::State);
            return problem(StatusCode::BAD_REQUEST, "The sign-in response is missing its state or code.", &retry);
        };
        let cookie_name = format!("{}{}", auth.login_prefix, state);
        let pending = crate::session::cookie::text_cookies(headers)
            .filter(|(n, _)| *n == cookie_name)
            .find_map(|(n, v)| auth.sealer.open(n, v))
            .and_then(|p| serde_json::from_str::<Pending>(&p).ok())
            .filter(|p| p.s == state && now().saturating_sub(p.t) <= PENDING_TTL);
        let Some(pending) = pending else {
            self.sign_in_failed(SignInKind::Oauth2, SignInFailure::State);
            return problem(StatusCode::BAD_REQUEST, "This sign-in is unknown or expired (state mismatch).", &retry);
        };
        let clear_pending = auth.sealer.clear_cookie(&cookie_name, &self.server.prefix);
        // Once, on whichever replica: the pending cookie outlives the callback in a browser's
        // history and a copied URL. (The state is the gateway's own random value: the pending
        // cookie that names it opened.) The claim is this code's (hashed: it is a credential),
        // so a reload after an outage, whose claim may have landed unseen, still finishes; a
        // spent code is refused by the provider anyway.
        let owner = crate::session::sha256_hex(code.as_bytes());
        match auth.shared.claim_for(&format!("state:{state}"), &owner, Duration::from_secs(PENDING_TTL + 60)).await {
            Ok(true) => {}
            Ok(false) => {
                self.sign_in_failed(SignInKind::Oauth2, SignInFailure::State);
                return problem(StatusCode::BAD_REQUEST, "This sign-in response was already used.", &retry);
            }
            Err(e) => {
                tracing::error!(cause = %e, "session store unavailable");
                self.sign_in_failed(SignInKind::Oauth2, SignInFailure::StoreUnavailable);
                // The code is not spent yet: reloading this page once the store is back
                // finishes the sign-in, so the pending cookie stays.
                return GatewayError::StoreUnavailable.render(PAGE);
            }
        }

        let outcome = async {
            let token = auth.provider.exchange(code, &pending.v, &auth.redirect_uri).await?;
            let audiences = vec![auth.provider.cfg.client_id.clone()];
            auth.provider.verify_id_token(&token, &audiences, &[jsonwebtoken::Algorithm::RS256], &pending.n).await
        }
        .await;
        let verified = match outcome {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(cause = %e, "sign-in failed");
                self.sign_in_failed(SignInKind::Oauth2, SignInFailure::of_oidc(&e));
                let (status, what) = match &e {
                    OidcError::Token(t) => (StatusCode::BAD_REQUEST, format!("The identity token was refused: {t}.")),
                    OidcError::Status { status, .. } if status.is_client_error() => (StatusCode::BAD_REQUEST, "The identity provider refused the sign-in code.".to_string()),
                    _ => (StatusCode::BAD_GATEWAY, "The identity provider could not be reached.".to_string()),
                };
                let mut r = problem(status, &what, &retry);
                append_cookie(r.headers_mut(), &clear_pending);
                return r;
            }
        };
        let expires_at = verified.expires_at.min(now() + auth.ttl.as_secs());
        let session = Session::new(verified.account, verified.network, verified.user_token, Source::Session, expires_at);
        tracing::info!(account = %session.account, network = session.network.as_deref().unwrap_or("-"), "signed in");
        // Should the store fail, the sign-in can be retried from the start once it is back.
        let mut r = signed_in(self, auth, session, SignInKind::Oauth2, headers, &pending.r).await.unwrap_or_else(|e| e.render(PAGE));
        append_cookie(r.headers_mut(), &clear_pending);
        r
    }

    /// An xApp launch (`?xAppToken=`, on any proxied URL or `{prefix}/xapp`): Xumm resolves the
    /// one-time token, a session opens for the wallet's account, and the browser goes to `back`
    /// (the same URL without the token), so the token stays out of the upstream's logs and the
    /// webview's history. The cookie is the sign-in cookie: HttpOnly, Lax (an xApp is loaded
    /// top-level in the wallet's webview, so Lax cookies flow and keep their CSRF protection),
    /// Secure on https, lasting as long as the session.
    pub async fn xapp_launch(&self, launch: &crate::xapp::Launch, back: &str, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
        let (Some(xapp), Some(auth)) = (&self.admission.xapp, &self.admission.auth) else { return Err(GatewayError::NotFound) };
        crate::metrics::sign_in_started(SignInKind::Xapp);
        let opened = xapp.resolve(launch).await.inspect_err(|e| {
            tracing::warn!(cause = %e, "xApp launch refused");
            self.sign_in_failed(SignInKind::Xapp, SignInFailure::of_xapp(e));
        })?;
        let expires_at = now() + auth.ttl.as_secs();
        let session = Session::new(opened.account, opened.network, None, Source::Xapp, expires_at).with_xapp(opened.access, opened.style);
        tracing::info!(account = %session.account, network = session.network.as_deref().unwrap_or("-"), access = session.xapp.as_ref().map_or("-", |x| x.access.as_str()), "signed in from an xApp");
        signed_in(self, auth, session, SignInKind::Xapp, headers, back).await
    }

    /// GET/POST {prefix}/sign_out: deletes the session server-side, clears the cookie.
    pub async fn sign_out(&self, auth: &Auth, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
        if let Some(id) = auth.session_id(headers) {
            // Who signs out, for the audit log (the session may be gone already).
            let account = auth.store.get_now(&id).map(|s| s.account.to_string());
            if let Err(e) = auth.store.delete(&id).await {
                tracing::error!(cause = %e, "cannot delete session");
            }
            self.audit.record(crate::audit::Event::SignedOut { account: account.as_deref() });
        }
        let rd = query_pairs(query, &["rd"]).and_then(|p| param(&p, "rd").map(|r| self.return_url(Some(r))));
        let mut r = match rd {
            Some(rd) => pages::redirect(StatusCode::FOUND, &rd),
            None => pages::page(StatusCode::OK, "Signed out", "<p>You are signed out.</p><p><a href=\"/\">Continue</a></p>"),
        };
        append_cookie(r.headers_mut(), &auth.clear_session_cookie());
        r
    }

    /// GET {prefix}/userinfo: who is signed in, or 401.
    pub async fn userinfo(&self, auth: &Auth, headers: &HeaderMap) -> Response<Body> {
        match auth.identify(headers).await {
            Found::Session(s) => pages::json(
                StatusCode::OK,
                &serde_json::json!({"account": s.account, "network": s.network, "source": s.source, "expires_at": s.expires_at}),
            ),
            // userinfo is an API: never a redirect, whatever the Accept header says
            Found::Nobody { .. } => GatewayError::Unauthenticated("not signed in").response(headers.get(header::ACCEPT)),
            Found::Failed(e) => e.response(headers.get(header::ACCEPT)),
        }
    }
}

/// The end of every sign-in: the session opened (`Auth::open_session`) and the browser sent to
/// `to` with its cookie; a store outage is a retryable 503, never a loop back to sign-in.
pub(crate) async fn signed_in(gw: &Gateway, auth: &Auth, session: Session, kind: SignInKind, headers: &HeaderMap, to: &str) -> Result<Response<Body>, GatewayError> {
    // The routes' ledger conditions are read now, while the browser follows the redirect.
    gw.admission.ledger.warm(gw.admission.routes.conditions(), &session.account, session.network.as_deref());
    let (account, network) = (session.account.clone(), session.network.clone());
    let cookie = auth.open_session(session, headers).await.map_err(|e| {
        tracing::error!(cause = %e, "session store unavailable");
        gw.audit.record(crate::audit::Event::SignInFailed { kind, reason: SignInFailure::StoreUnavailable, account: Some(account.as_str()) });
        GatewayError::StoreUnavailable
    })?;
    gw.audit.record(crate::audit::Event::SignInSucceeded { kind, account: account.as_str(), network: network.as_deref() });
    let mut r = pages::redirect(StatusCode::FOUND, to);
    append_cookie(r.headers_mut(), &cookie);
    Ok(r)
}

impl Gateway {
    /// A sign-in that did not complete: counted and audited (no account is known yet).
    pub(crate) fn sign_in_failed(&self, kind: SignInKind, reason: SignInFailure) {
        self.audit.record(crate::audit::Event::SignInFailed { kind, reason, account: None });
    }
}

/// The sign-in page when both ways are on: Xumm's OAuth2 sign-in, or a QR code / push.
fn sign_in_choice(start: &str, rd: &str) -> Response<Body> {
    let rd: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    let esc = pages::esc;
    pages::page(
        StatusCode::OK,
        "Sign in",
        &format!(
            "<p>Sign in with your Xumm wallet.</p>\
             <p><a id=\"oauth2\" class=\"button\" href=\"{}\">Sign in with Xumm</a></p>\
             <p><a id=\"payload\" class=\"button secondary\" href=\"{}\">Scan a QR code instead</a><br>\
             <small>(or, if you signed in here before, get the request pushed to your phone)</small></p>",
            esc(&format!("{start}?rd={rd}&via=oauth2")),
            esc(&format!("{start}?rd={rd}&via=payload")),
        ),
    )
}

/// The sign-in endpoints answer browser navigations.
const PAGE: crate::error::Client = crate::error::Client { accepts: crate::error::Accepts::Html, navigation: true };

/// A sign-in that did not complete, with the link to try again.
fn problem(status: StatusCode, what: &str, retry: &str) -> Response<Body> {
    GatewayError::SignInFailed { status, what: what.to_string(), retry: retry.to_string() }.render(PAGE)
}

pub(crate) fn append_cookie(h: &mut HeaderMap, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.append(header::SET_COOKIE, v);
    }
}
