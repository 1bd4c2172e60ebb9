//! The one mapping from internal errors to HTTP responses. It must never put internal detail,
//! a secret or a token into a response body: bodies carry a short public reason only.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

/// Everything a request can fail with at the edge.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
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
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::BadPath(_) => StatusCode::BAD_REQUEST,
            GatewayError::NotFound | GatewayError::NoUpstream => StatusCode::NOT_FOUND,
            GatewayError::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// Stable machine-readable code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::BadPath(_) => "bad_path",
            GatewayError::NotFound => "not_found",
            GatewayError::NoUpstream => "no_upstream",
            GatewayError::UpstreamUnavailable => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::BodyTimeout => "body_timeout",
            GatewayError::TooManyHeaders => "too_many_headers",
        }
    }

    /// Renders this error for a client whose `Accept` header was `accept`.
    pub fn response(&self, accept: Option<&HeaderValue>) -> Response<Body> {
        self.response_for(Accepts::of_header(accept))
    }

    /// Renders this error for a client whose Accept header was already classified.
    pub fn response_for(&self, accepts: Accepts) -> Response<Body> {
        render(self.status(), self.code(), &self.to_string(), accepts)
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
pub fn error_response(status: StatusCode, code: &str, reason: &str, accept: Option<&HeaderValue>) -> Response<Body> {
    render(status, code, reason, Accepts::of_header(accept))
}

fn render(status: StatusCode, code: &str, reason: &str, accepts: Accepts) -> Response<Body> {
    if accepts == Accepts::Html {
        let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
        return crate::pages::page(status, &title, &format!("<p id=\"reason\">{}</p><p><a href=\"/\">Home</a></p>", crate::pages::esc(reason)));
    }
    let (ctype, body) = if accepts == Accepts::Json {
        let v = serde_json::json!({ "error": code, "reason": reason });
        ("application/json", v.to_string())
    } else {
        ("text/plain; charset=utf-8", format!("{} {}: {reason}\n", status.as_u16(), status.canonical_reason().unwrap_or("")))
    };
    let mut resp = Response::new(Body::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
