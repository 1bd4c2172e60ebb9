//! Forward auth (`{prefix}/auth`) for nginx auth_request, Traefik ForwardAuth and ingress-nginx.
//! It must never believe X-Original-* / X-Forwarded-* from a peer outside `server.trusted_proxies`,
//! never answer 2xx for a malformed original URI, and never let a query or fragment widen what
//! passes (the query only ever turns an xApp launch into a sign-in).

use std::net::SocketAddr;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::Gateway;
use crate::admission::Verdict;
use crate::body::Body;
use crate::error::{Accepts, Client, GatewayError};

/// Forward auth answers the proxy in front, never a browser directly: JSON, no redirects.
const API: Client = Client { accepts: Accepts::Json, navigation: false };

/// The normalized path of an original URI (`/p?q`, or an absolute URL from X-Original-URL).
fn original_path(u: &str) -> Option<String> {
    if u.is_empty() || u.len() > 8192 || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let path = if u.starts_with("http://") || u.starts_with("https://") {
        url::Url::parse(u).ok()?.path().to_string()
    } else if u.starts_with('/') {
        u.split(['?', '#']).next()?.to_string()
    } else {
        return None;
    };
    crate::path::normalize(&path).ok()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Gateway {
    pub async fn forward_auth(&self, req: &Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let h = req.headers();
        let trusted = self.proxy.is_trusted(&peer);
        let redirect_mode = match req.uri().query().and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "mode")) {
            Some((_, m)) => m == "redirect",
            None => self.endpoints.forward_auth_redirect,
        };
        let original = trusted.then(|| header(h, "x-original-uri").or_else(|| header(h, "x-forwarded-uri")).or_else(|| header(h, "x-original-url"))).flatten();
        // The original request's method and host, for rules naming them (Traefik sends
        // X-Forwarded-*, ingress-nginx X-Original-Method and an absolute X-Original-URL).
        let method = trusted.then(|| header(h, "x-forwarded-method").or_else(|| header(h, "x-original-method")).and_then(|m| m.parse::<Method>().ok())).flatten().unwrap_or_else(|| req.method().clone());
        let forwarded_host = trusted.then(|| header(h, "x-forwarded-host")).flatten();
        // (Parsed only when no X-Forwarded-Host names the host.)
        let absolute = (trusted && forwarded_host.is_none()).then(|| header(h, "x-original-url").and_then(|u| url::Url::parse(u).ok())).flatten();
        let host = forwarded_host.or_else(|| absolute.as_ref().and_then(|u| u.host_str()));
        let path = match original {
            Some(u) => match original_path(u) {
                Some(p) => Some(p),
                None => return GatewayError::Unauthenticated("malformed original URI").render(API),
            },
            None => None,
        };
        let query = original.and_then(|u| u.split('#').next()?.split_once('?').map(|(_, q)| q));
        // No (believable) original URI: decided as for a path no rule names.
        let admitted = match &path {
            Some(p) => self.admission.admit(&crate::policy::Target { path: p, method: method.as_str(), host }, query, h).await,
            None => self.admission.admit_unrouted(h).await,
        };
        admitted.record(&self.admission.default_route, &self.audit);
        match admitted.verdict {
            // 403, not 400: nginx auth_request turns anything but 2xx/401/403 into a 500.
            Verdict::Refused(GatewayError::BadPath(e)) => crate::pages::json(StatusCode::FORBIDDEN, &serde_json::json!({"error": "bad_path", "reason": e.to_string()})),
            // Refusals of who asks: always JSON, as Forbidden below.
            Verdict::Refused(e @ GatewayError::Denied) => e.render(API),
            Verdict::Refused(e) => e.render(Client { accepts: Accepts::of_header(h.get(http::header::ACCEPT)), navigation: false }),
            Verdict::Pass { who: None, .. } => crate::pages::json(StatusCode::OK, &serde_json::json!({"public": true})),
            Verdict::Pass { who: Some(s), granted, .. } => {
                let mut r = crate::pages::json(StatusCode::OK, &serde_json::json!({"account": s.account, "network": s.network}));
                self.admission.identity.inject(r.headers_mut(), &s);
                r.headers_mut().extend(granted);
                r
            }
            Verdict::Challenge { .. } | Verdict::Launch(_) => self.forward_auth_challenge(req, trusted, redirect_mode, path.as_deref(), &method),
            // Always JSON: the proxy in front shows its own page (or passes this one through).
            Verdict::Forbidden { who, unmet } => GatewayError::Forbidden { account: who.account.to_string(), sign_out: String::new(), unmet }.render(API),
        }
    }

    /// 401, or in redirect mode a 302 (GET/HEAD) / 303 (others) to sign-in for browsers.
    fn forward_auth_challenge(&self, req: &Request<Incoming>, trusted: bool, redirect_mode: bool, path: Option<&str>, method: &Method) -> Response<Body> {
        let h = req.headers();
        let accept_html = header(h, "accept").is_some_and(|a| a.contains("text/html"));
        let xhr = header(h, "x-requested-with").is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest")) || header(h, "sec-fetch-mode").is_some_and(|v| v.eq_ignore_ascii_case("cors"));
        if !redirect_mode || !accept_html || xhr {
            return GatewayError::Unauthenticated("sign-in required").render(API);
        }
        // Return to the original URL, query string included (the return-URL check decides
        // whether it may be used): absolute when its host is known, else as a relative path.
        let original_uri = trusted.then(|| header(h, "x-forwarded-uri").or_else(|| header(h, "x-original-uri"))).flatten();
        let host = trusted.then(|| header(h, "x-forwarded-host")).flatten();
        let proto = trusted.then(|| header(h, "x-forwarded-proto")).flatten().filter(|p| *p == "http" || *p == "https").unwrap_or("https");
        let back = match (host, original_uri) {
            (Some(host), Some(uri)) => format!("{proto}://{host}{uri}"),
            (Some(host), None) => format!("{proto}://{host}{}", path.unwrap_or("/")),
            (None, Some(uri)) if uri.starts_with('/') => uri.to_string(),
            (None, _) => path.unwrap_or("/").to_string(),
        };
        let rd = crate::redirect::safe_return(&back, &self.endpoints.allowed_redirect_hosts, self.server.public_url.host_str());
        let base = self.server.public_url.as_str().trim_end_matches('/');
        let location = format!("{base}{}", self.start_url(&rd));
        // `start` sends an xApp launch (a token in the return URL) to `{prefix}/xapp`.
        let status = if method == Method::GET || method == Method::HEAD { StatusCode::FOUND } else { StatusCode::SEE_OTHER };
        crate::pages::redirect(status, &location)
    }
}

#[cfg(test)]
mod tests {
    use super::original_path;

    #[test]
    fn original_uris() {
        assert_eq!(original_path("/private?x=/public").as_deref(), Some("/private"));
        assert_eq!(original_path("/private#/public").as_deref(), Some("/private"));
        assert_eq!(original_path("/private%23/public").as_deref(), Some("/private%23/public"));
        assert_eq!(original_path("https://app.example.com/a/../b?x").as_deref(), Some("/b"));
        for bad in ["", "private", "/a b", "/a\r\nb", "/a%2Fb", "/../x", "javascript:x"] {
            assert_eq!(original_path(bad), None, "{bad:?}");
        }
    }
}
