//! CORS for cross-origin callers. It must never reflect an origin that is not configured, and
//! never answer a preflight for one without authentication.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::body::Body;
use crate::config::{ConfigError, Origin, Parsed};

pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    pub fn new(origins: &[Parsed<Origin>]) -> Result<Cors, ConfigError> {
        Ok(Cors { origins: Parsed::all("cors.allowed_origins", origins)?.into_iter().map(|o| o.0).collect() })
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The request's Origin when it is one of the configured ones.
    pub fn allowed_origin(&self, h: &HeaderMap) -> Option<HeaderValue> {
        let o = h.get(header::ORIGIN)?;
        self.origins.iter().find(|a| *a == o).cloned()
    }

    /// The answer to a preflight from an allowed origin; None when this is not one.
    pub fn preflight(&self, method: &Method, h: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = self.allowed_origin(h)?;
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let out = r.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"));
        let req_headers = h.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or(HeaderValue::from_static("authorization, content-type"));
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, req_headers);
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(r)
    }

    /// Adds the CORS answer headers to a response for an allowed origin, and `Vary: Origin`.
    pub fn decorate(&self, origin: Option<HeaderValue>, out: &mut HeaderMap) {
        if !self.enabled() {
            return;
        }
        if !out.get_all(header::VARY).iter().any(|v| v.as_bytes().eq_ignore_ascii_case(b"origin")) {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(o) = origin {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("WWW-Authenticate"));
        }
    }
}
