//! The one mapping from internal errors to HTTP responses. It must never put internal detail,
//! a secret or a token into a response body: bodies carry a short public reason only.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

/// Every way a request is refused or fails at the edge, whichever entry point meets it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A protected request without a live identity: a browser navigation is sent to sign-in,
    /// anyone else gets 401. A session cookie that opened nothing is cleared.
    #[error("sign-in required")]
    SignInRequired { start_url: String, clear_cookie: Option<String> },
    /// 401 for callers that must never be redirected (APIs, forward auth).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A Bearer token that does not verify (RFC 6750 `invalid_token`, with the reason).
    #[error("{0}")]
    InvalidToken(String),
    /// The provider's keys are not loaded yet: a Bearer token cannot be checked.
    #[error("identity provider not ready")]
    ProviderNotReady,
    /// Signed in, but the route does not admit this account or network, or the account does
    /// not hold what the route requires (`unmet`).
    #[error("forbidden")]
    Forbidden { account: String, sign_out: String, unmet: Option<String> },
    /// A route condition's ledger (or Xumm KYC) data cannot be read now: retry, never a "no".
    #[error("the ledger check for this page is temporarily unavailable; please retry in a moment")]
    LedgerUnavailable,
    /// A `deny` rule (or `policy.default = "deny"`) refuses the request, whoever asks.
    #[error("this path is closed")]
    Denied,
    /// The route needs a client certificate the connection did not present (or not this one).
    #[error("a valid client certificate is required here")]
    ClientCertificate,
    /// The session store does not answer: retry, never sign in again.
    #[error("the gateway is temporarily unavailable; please retry in a moment")]
    StoreUnavailable,
    /// A sign-in that did not complete (`what` for the user), with the link to try again.
    #[error("{what}")]
    SignInFailed { status: StatusCode, what: String, retry: String },
    /// Sign-in cannot start before the provider's metadata is loaded.
    #[error("the identity provider is not reachable yet")]
    ProviderStartingUp,
    /// Too many sign-ins from one client address.
    #[error("too many sign-in attempts")]
    TooManySignIns { retry_after: u64 },
    /// Too many payload sign-ins from everyone together (`provider.payloads_per_minute`).
    #[error("sign-in is busy")]
    SignInsBusy { retry_after: u64 },
    #[error("bad request path: {0}")]
    BadPath(#[from] crate::path::PathError),
    #[error("not found")]
    NotFound,
    #[error("no [[upstream]] serves this path (a gateway for forward auth only answers its /auth endpoint)")]
    NoUpstream,
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("request body timed out")]
    BodyTimeout,
    #[error("too many request headers")]
    TooManyHeaders,
    /// A payload sign-in that did not complete, with the link to start again.
    #[error("{error}")]
    Payload { error: crate::payload_login::PayloadError, retry: String },
    /// An xApp launch that opened no session.
    #[error("{0}")]
    Xapp(#[from] crate::xapp::XappError),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::SignInRequired { .. } | GatewayError::Unauthenticated(_) | GatewayError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            GatewayError::ProviderNotReady | GatewayError::StoreUnavailable | GatewayError::ProviderStartingUp | GatewayError::LedgerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::SignInFailed { status, .. } => *status,
            GatewayError::TooManySignIns { .. } | GatewayError::SignInsBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Forbidden { .. } | GatewayError::ClientCertificate | GatewayError::Denied => StatusCode::FORBIDDEN,
            GatewayError::BadPath(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound | GatewayError::NoUpstream => StatusCode::NOT_FOUND,
            GatewayError::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::Payload { error: crate::payload_login::PayloadError::Unavailable { .. }, .. } => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Payload { .. } => StatusCode::BAD_REQUEST,
            GatewayError::Xapp(crate::xapp::XappError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Xapp(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::SignInRequired { .. } | GatewayError::Unauthenticated(_) => "unauthorized",
            GatewayError::InvalidToken(_) | GatewayError::ProviderNotReady => "invalid_token",
            GatewayError::Forbidden { .. } => "forbidden",
            GatewayError::ClientCertificate => "client_certificate_required",
            GatewayError::Denied => "denied",
            GatewayError::StoreUnavailable => "session_store_unavailable",
            GatewayError::LedgerUnavailable => "ledger_unavailable",
            GatewayError::SignInFailed { .. } => "sign_in_failed",
            GatewayError::ProviderStartingUp => "provider_unavailable",
            GatewayError::TooManySignIns { .. } => "too_many_sign_ins",
            GatewayError::SignInsBusy { .. } => "sign_in_busy",
            GatewayError::BadPath(_) => "bad_path",
            GatewayError::NotFound => "not_found",
            GatewayError::NoUpstream => "no_upstream",
            GatewayError::UpstreamUnavailable => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::BodyTimeout => "body_timeout",
            GatewayError::TooManyHeaders => "too_many_headers",
            GatewayError::Xapp(crate::xapp::XappError::Unavailable { .. }) | GatewayError::Payload { error: crate::payload_login::PayloadError::Unavailable { .. }, .. } => "xumm_unavailable",
            GatewayError::Payload { .. } => "sign_in_failed",
            GatewayError::Xapp(_) => "xapp_link_unusable",
        }
    }

    /// Renders this error for a client whose `Accept` header was `accept`.
    pub fn response(&self, accept: Option<&HeaderValue>) -> Response<Body> {
        self.response_for(Accepts::of_header(accept))
    }

    /// Renders this error for a client whose Accept header was already classified.
    pub fn response_for(&self, accepts: Accepts) -> Response<Body> {
        self.render(Client { accepts, navigation: false })
    }

    /// The one rendering of a refusal: status, `WWW-Authenticate`, `Retry-After`, and a page,
    /// JSON or text as the client reads them.
    pub fn render(&self, client: Client) -> Response<Body> {
        match self {
            GatewayError::SignInRequired { start_url, clear_cookie } => {
                let mut r = if client.navigation { crate::pages::redirect(StatusCode::FOUND, start_url) } else { GatewayError::Unauthenticated("sign-in required").render(client) };
                if let Some(c) = clear_cookie.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
                r
            }
            // API answers: JSON whatever the Accept header says.
            GatewayError::Unauthenticated(reason) => {
                let mut r = crate::pages::json(self.status(), &serde_json::json!({"error": self.code(), "reason": reason}));
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            GatewayError::InvalidToken(_) | GatewayError::ProviderNotReady => {
                let reason = self.to_string();
                let mut r = crate::pages::json(self.status(), &serde_json::json!({"error": self.code(), "reason": reason}));
                // The reason is the gateway's own text (a claim name, a short cause), never the token.
                let www = format!("Bearer error=\"invalid_token\", error_description=\"{}\"", reason.replace(['"', '\\'], "'"));
                if let Ok(v) = HeaderValue::from_str(&www) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                if matches!(self, GatewayError::ProviderNotReady) {
                    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                }
                r
            }
            GatewayError::Forbidden { account, sign_out, unmet } if client.navigation => crate::pages::forbidden(account, sign_out, unmet.as_deref()),
            GatewayError::Forbidden { account, unmet: None, .. } => crate::pages::json(StatusCode::FORBIDDEN, &serde_json::json!({"error": self.code(), "account": account})),
            GatewayError::Forbidden { account, unmet: Some(unmet), .. } => crate::pages::json(StatusCode::FORBIDDEN, &serde_json::json!({"error": self.code(), "account": account, "unmet": unmet})),
            // The sign-in endpoints' pages: browsers navigate there.
            GatewayError::SignInFailed { status, what, retry } => crate::pages::login_problem(*status, what, retry),
            GatewayError::TooManySignIns { retry_after } => crate::pages::too_many_sign_ins(*retry_after),
            GatewayError::SignInsBusy { retry_after } => crate::pages::sign_in_busy(*retry_after),
            GatewayError::ProviderStartingUp => {
                let mut r = crate::pages::page(self.status(), "Sign-in is starting up", "<p>The identity provider is not reachable yet. Please retry in a moment.</p>");
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            GatewayError::StoreUnavailable | GatewayError::LedgerUnavailable => {
                let mut r = render(self.status(), self.code(), &self.to_string(), client.accepts);
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                r
            }
            // The sign-in pages: browsers navigate there.
            GatewayError::Payload { error, retry } => crate::pages::payload_problem(error, retry),
            // Opened inside the wallet: a page that says what to do there.
            GatewayError::Xapp(e) if client.accepts != Accepts::Json => crate::pages::xapp_problem(e),
            GatewayError::Xapp(crate::xapp::XappError::Unavailable { retry_after }) => {
                let mut r = render(self.status(), self.code(), &self.to_string(), client.accepts);
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                r
            }
            _ => render(self.status(), self.code(), &self.to_string(), client.accepts),
        }
    }
}

/// What a client reads, for rendering a refusal: its error body type, and whether it is a
/// top-level browser navigation (which may be redirected to sign-in and shown pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub accepts: Accepts,
    pub navigation: bool,
}

impl Client {
    pub fn of(method: &http::Method, headers: &http::HeaderMap) -> Client {
        Client { accepts: Accepts::of_header(headers.get(header::ACCEPT)), navigation: is_navigation(method, headers) }
    }
}

/// What error body a client reads, from its Accept header: JSON when it accepts JSON, an HTML
/// page for browsers, else text. The one negotiation of error bodies, whichever path asks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Accepts {
    Json,
    Html,
    Other,
}

impl Accepts {
    pub fn of(accept: &str) -> Accepts {
        if accept.contains("application/json") || accept.contains("+json") {
            Accepts::Json
        } else if accept.contains("text/html") {
            Accepts::Html
        } else {
            Accepts::Other
        }
    }

    pub fn of_header(accept: Option<&HeaderValue>) -> Accepts {
        Accepts::of(accept.and_then(|a| a.to_str().ok()).unwrap_or_default())
    }
}

/// A short error response: JSON when the client accepts JSON, an HTML page (the look of every
/// other page) for browsers, plain text otherwise.
fn render(status: StatusCode, code: &str, reason: &str, accepts: Accepts) -> Response<Body> {
    if accepts == Accepts::Html {
        let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
        return crate::pages::page(status, &title, &format!("<p id=\"reason\">{}</p><p><a href=\"/\">Home</a></p>", crate::pages::esc(reason)));
    }
    if accepts == Accepts::Json {
        return crate::pages::json(status, &serde_json::json!({ "error": code, "reason": reason }));
    }
    let rid = crate::request_id::current().map(|id| format!(" (request id {id})")).unwrap_or_default();
    let body = format!("{} {}: {reason}{rid}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut resp = Response::new(Body::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// True for a top-level browser navigation that may be redirected to sign-in.
fn is_navigation(method: &http::Method, headers: &http::HeaderMap) -> bool {
    if method != http::Method::GET && method != http::Method::HEAD {
        return false;
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    h(header::ACCEPT.as_str()).contains("text/html")
        && !h("x-requested-with").eq_ignore_ascii_case("xmlhttprequest")
        && !h("sec-fetch-mode").eq_ignore_ascii_case("cors")
}
