//! Splits traffic into the gateway's own endpoints and protected/proxied traffic. It must never
//! route on a path other than the normalized one that policy and the upstream see.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, header};
use hyper::body::Incoming;

use crate::Gateway;
use crate::accesslog::AccessLog;
use crate::body::Body;
use crate::auth::challenge;
use crate::error::GatewayError;
use crate::pages;
use crate::policy::Decision;
use crate::session::Session;

impl Gateway {
    /// Entry point for every request on the public listener.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let inflight = crate::metrics::InFlight::start();
        let method = req.method().clone();
        let accept = req.headers().get(header::ACCEPT).cloned();

        // The normalized path, shared with the request's URI (a refcount, no copy, when the
        // client's path is already normal) and with the access log.
        // hyper applies server.max_headers to HTTP/1.1 heads; HTTP/2 header lists are bounded
        // in bytes only, so the count is checked here for both.
        let normal = match too_many_headers(&req, self.server.max_headers).and_then(|()| path_and_query(&mut req)) {
            Ok(pq) => pq,
            Err(e) => {
                let mut resp = e.response(accept.as_ref());
                let log = AccessLog {
                    method,
                    path: None,
                    route: self.invalid_route.clone(),
                    upstream: None,
                    status: resp.status(),
                    start,
                    bytes: 0,
                    body_error: false,
                    inflight,
                };
                resp.body_mut().set_log(log);
                return Ok(resp);
            }
        };
        let path = normal.path();

        let decision = self.routes.decide(path);
        let route_label = decision.route.map(|r| r.metrics.clone()).unwrap_or_else(|| self.default_route.clone());
        let mut upstream_label = None;
        // Client-sent identity headers never survive, on any route or endpoint.
        self.identity.strip(req.headers_mut());
        // Room for the forwarding and identity headers added below: one allocation, not a
        // grow-and-rehash per insert for clients that send few headers.
        req.headers_mut().reserve(10);
        let origin = if self.cors.enabled() { self.cors.allowed_origin(req.headers()) } else { None };
        let preflight = if origin.is_some() { self.cors.preflight(req.method(), req.headers()) } else { None };
        let result = if let Err(e) = self.routes.strict_check(path, &decision) {
            Err(GatewayError::BadPath(e))
        } else if let Some(p) = preflight {
            Ok(p)
        } else if crate::path::has_prefix(path, &self.server.prefix) {
            Ok(self.endpoint(req, &path[self.server.prefix.len()..], peer).await)
        } else {
            // Hop-by-hop headers go before the gateway sets any of its own, so a client's
            // Connection header can never name (and so remove) one of them. Only a WebSocket
            // upgrade survives; any other (h2c above all) is dropped with them.
            let upgrade = crate::proxy::websocket_requested(req.headers());
            crate::proxy::strip_hop_by_hop(req.headers_mut());
            match self.admit(&mut req, &decision).await {
                Err(denied) => Ok(denied),
                Ok(session) => match self.proxy.select(path) {
                    None => Err(GatewayError::NoUpstream),
                    Some(up) => {
                        upstream_label = Some(up.label.clone());
                        if let (Some(a), Some(s), Some(name)) = (&self.asserter, &session, &self.identity.assertion) {
                            if let Some(v) = a.header_for(s, &up.audience) {
                                req.headers_mut().insert(name.clone(), v);
                            }
                        }
                        if let (Some(app), Some(s), Some(name), Some(auth)) = (&up.broker_app, &session, &self.identity.user_token, &self.auth) {
                            if let Some(v) = crate::xumm::handle::for_session(auth, s, app) {
                                req.headers_mut().insert(name.clone(), v);
                            }
                        }
                        self.proxy.forward(req, up, peer, upgrade).await
                    }
                },
            }
        };
        let mut resp = result.unwrap_or_else(|e| e.response(accept.as_ref()));
        self.cors.decorate(origin, resp.headers_mut());
        let log = AccessLog {
            method,
            path: Some(normal.clone()),
            route: route_label,
            upstream: upstream_label,
            status: resp.status(),
            start,
            bytes: 0,
            body_error: false,
            inflight,
        };
        resp.body_mut().set_log(log);
        Ok(resp)
    }

    /// Authenticates and authorizes a request for a protected route, and sets the identity
    /// headers. `Err` carries the response to send instead (redirect, 401, 403, 503).
    async fn admit(&self, req: &mut Request<Incoming>, decision: &Decision<'_>) -> Result<Option<std::sync::Arc<Session>>, Response<Body>> {
        if let Some(auth) = &self.auth {
            if decision.public {
                crate::identity::strip_own_cookies(req.headers_mut(), &auth.cookie_name);
                return Ok(None);
            }
            let found = auth.identify(req.headers()).await;
            // Only a request that found no session needs to know (before its cookies go).
            let had_cookie = matches!(found, Ok(None)) && crate::session::cookie::cookies(req.headers()).any(|(n, _)| n == auth.cookie_name.as_bytes());
            crate::identity::strip_own_cookies(req.headers_mut(), &auth.cookie_name);
            let session = match found? {
                Some(s) => s,
                None => {
                    let back = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
                    let mut resp = challenge(req.method(), req.headers(), &self.start_url(back), "sign-in required");
                    if had_cookie {
                        // A cookie that opens no live session (new keys, tampered, ended) is
                        // cleared, not sent again on every request.
                        crate::login::append_cookie(resp.headers_mut(), &auth.sealer.clear_cookie(&auth.cookie_name, "/"));
                    }
                    return Err(resp);
                }
            };
            if !allowed(decision.route, &session) {
                return Err(self.forbidden(req, &session.account.to_string()));
            }
            // The upstream learns who the user is from the identity headers only: no
            // credential reaches it, neither the verified JWT nor one the gateway did not
            // check (a Bearer token sent beside a session cookie).
            req.headers_mut().remove(header::AUTHORIZATION);
            self.identity.inject(req.headers_mut(), &session);
            return Ok(Some(session));
        }
        if decision.public {
            Ok(None)
        } else {
            // No [provider]: nothing can sign in, so protected routes stay closed.
            Err(crate::auth::unauthorized("sign-in is not configured"))
        }
    }

    fn forbidden(&self, req: &Request<Incoming>, account: &str) -> Response<Body> {
        if crate::auth::is_navigation(req.method(), req.headers()) {
            pages::forbidden(account, &format!("{}/sign_out", self.server.prefix))
        } else {
            pages::json(StatusCode::FORBIDDEN, &serde_json::json!({"error": "forbidden", "account": account}))
        }
    }

    /// The gateway's own endpoints under the prefix; `rest` starts with '/' or is empty.
    async fn endpoint(self: &Arc<Self>, req: Request<Incoming>, rest: &str, peer: SocketAddr) -> Response<Body> {
        if rest == "/webhook" && req.method() == Method::POST {
            return self.webhook(req).await;
        }
        if let Some(broker) = &self.broker {
            if let Some(uuid) = rest.strip_prefix("/sign/") {
                return self.status_socket(broker, req, uuid).await;
            }
            if let Some(call) = rest.strip_prefix("/api/v1/platform/").or_else(|| rest.strip_prefix("/api/v1/jwt/")) {
                return self.broker_call(broker, req, call).await;
            }
        }
        let req = &req;
        let accept = req.headers().get(header::ACCEPT);
        let Some(auth) = &self.auth else {
            return GatewayError::NotFound.response(accept);
        };
        let (m, h, q) = (req.method(), req.headers(), req.uri().query());
        if matches!((m, rest), (&Method::GET, "/start" | "/callback")) {
            if let Some(limit) = &auth.sign_in_limit {
                let client = crate::ratelimit::client_key(peer, h, |ip| self.proxy.is_trusted_ip(ip));
                if let Err(retry) = limit.take(client) {
                    tracing::info!(client = %client, retry_after = retry, "sign-in rate limit reached");
                    return pages::too_many_sign_ins(retry);
                }
            }
        }
        match (m, rest) {
            (&Method::GET, "/start") => self.login_start(auth, h, q),
            (&Method::GET, "/callback") => self.login_callback(auth, h, q).await,
            (&Method::GET | &Method::POST, "/sign_out") => self.sign_out(auth, h, q).await,
            (&Method::GET, "/userinfo") => self.userinfo(auth, h).await,
            (&Method::GET | &Method::HEAD, "/auth") => self.forward_auth(auth, req, peer).await,
            (&Method::GET, "/jwks.json") => match &self.asserter {
                Some(a) => pages::json(StatusCode::OK, &a.jwks()),
                None => GatewayError::NotFound.response(accept),
            },
            _ => GatewayError::NotFound.response(accept),
        }
    }
}

/// Route policy for a signed-in user. A rule that lists networks admits only sessions whose
/// network is known and listed (fail closed).
pub(crate) fn allowed(route: Option<&crate::policy::Route>, s: &Session) -> bool {
    let Some(r) = route else { return true };
    (r.allow_accounts.is_empty() || r.allow_accounts.iter().any(|a| a == s.account.as_str()))
        && (r.allow_networks.is_empty() || s.network.as_ref().is_some_and(|n| r.allow_networks.iter().any(|x| x.eq_ignore_ascii_case(n))))
}

fn too_many_headers(req: &Request<Incoming>, max: usize) -> Result<(), GatewayError> {
    if req.headers().len() > max { Err(GatewayError::TooManyHeaders) } else { Ok(()) }
}

/// The request's path and query with the path normalized; the request's URI is rewritten to it
/// when normalizing changed anything, so policy, upstream and log see one path.
fn path_and_query(req: &mut Request<Incoming>) -> Result<PathAndQuery, GatewayError> {
    let uri = req.uri();
    if crate::path::is_normal(uri.path()) {
        return Ok(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    }
    let path = crate::path::normalize(uri.path())?;
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    // Unreachable in practice (normalizing only decodes unreserved characters), but never a panic.
    let unusable = || GatewayError::BadPath(crate::path::PathError::BadEncoding);
    let pq = PathAndQuery::try_from(pq).map_err(|_| unusable())?;
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(pq.clone());
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| unusable())?;
    Ok(pq)
}
