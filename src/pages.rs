//! Small HTML pages the gateway shows people (errors, forbidden, signed out). It must never put an
//! unescaped value into HTML, and never show a token or secret.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A page; `body_html` must already be escaped.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}\
         a,button{{font-size:1rem}}</style></head><body><h1>{t}</h1>{body_html}</body></html>",
        t = esc(title)
    );
    let mut r = Response::new(Body::full(Bytes::from(html)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// A sign-in problem with a link to try again.
pub fn login_problem(status: StatusCode, what: &str, retry: &str) -> Response<Body> {
    page(status, "Sign-in did not complete", &format!("<p>{}</p><p><a href=\"{}\">Try again</a></p>", esc(what), esc(retry)))
}

/// Signed in, but the route does not allow this account.
pub fn forbidden(account: &str, sign_out: &str) -> Response<Body> {
    page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "<p>You are signed in as <strong id=\"account\">{}</strong>, which may not open this page.</p>\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>",
            esc(account),
            esc(sign_out)
        ),
    )
}

/// A redirect with no body.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 429 for a client that started or finished too many sign-ins: a page that says when to retry.
pub fn too_many_sign_ins(retry_after: u64) -> Response<Body> {
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts",
        &format!("<p>Too many sign-ins were started from your network. Please try again in {retry_after} seconds.</p>"),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}
