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
use crate::error::GatewayError;
use crate::pages;
use crate::request_id::{self, RequestId};
use crate::telemetry;
use tracing::Instrument;
use crate::admission::Verdict;
use crate::session::Session;

impl Gateway {
    /// Entry point for every request on the public listener: names the request (its id goes to
    /// the upstream, back to the client, into its log lines and error pages), then answers it.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
        let trusted = self.proxy.is_trusted(&peer);
        let id = RequestId::of(trusted, req.headers().get(request_id::HEADER).map(|v| v.as_bytes()));
        // Whatever id a client sent, the upstream gets this one.
        req.headers_mut().insert(request_id::HEADER, id.header_value());
        let span = tracing::info_span!("request", request_id = %id);
        let client = crate::ratelimit::client_ip(peer, req.headers(), |ip| self.proxy.is_trusted_ip(ip));
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
        let parent = telemetry::Parent { traceparent: header("traceparent"), tracestate: header("tracestate") };
        let trace = telemetry::begin(trusted, parent, req.method().as_str(), &id, std::time::SystemTime::now());
        // Not sampled: no span, only the decision for the upstream.
        if let Some(tp) = trace.as_ref().and_then(|t| t.unsampled_traceparent()).and_then(|tp| http::HeaderValue::from_bytes(tp).ok()) {
            req.headers_mut().insert("traceparent", tp);
        }
        if trace.as_ref().is_some_and(|t| !t.keeps_tracestate()) {
            req.headers_mut().remove("tracestate");
        }
        let answer = self.answer(req, peer, id);
        let mut resp = match trace.as_ref().and_then(|t| t.context()) {
            Some(cx) => request_id::within(id, client, opentelemetry::trace::FutureExt::with_context(answer, cx)).instrument(span).await?,
            None => request_id::within(id, client, answer).instrument(span).await?,
        };
        if let Some(t) = trace {
            let status = resp.status();
            resp.body_mut().end_trace(t, status);
        }
        resp.headers_mut().insert(request_id::HEADER, id.header_value());
        Ok(resp)
    }

    async fn answer(self: Arc<Self>, mut req: Request<Incoming>, peer: SocketAddr, id: RequestId) -> Result<Response<Body>, Infallible> {
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
                    route: self.admission.invalid_route.clone(),
                    upstream: None,
                    status: resp.status(),
                    start,
                    bytes: 0,
                    body_error: false,
                    inflight,
                    request_id: id,
            trace: None,
                };
                resp.body_mut().set_log(log);
                return Ok(resp);
            }
        };
        let path = normal.path();

        let target = crate::policy::Target { path, method: req.method().as_str(), host: crate::policy::request_host(req.uri(), req.headers()) };
        let decision = self.admission.routes.decide(&target);
        let route_label = decision.route.map(|r| r.metrics.clone()).unwrap_or_else(|| self.admission.default_route.clone());
        telemetry::route(&route_label.label);
        let mut upstream_label = None;
        // Client-sent identity headers never survive, on any route or endpoint.
        self.admission.identity.strip(req.headers_mut());
        // Room for the forwarding and identity headers added below: one allocation, not a
        // grow-and-rehash per insert for clients that send few headers.
        req.headers_mut().reserve(10);
        let origin = if self.endpoints.cors.enabled() { self.endpoints.cors.allowed_origin(req.headers()) } else { None };
        let preflight = if origin.is_some() { self.endpoints.cors.preflight(req.method(), req.headers()) } else { None };
        let plain = crate::error::Client { accepts: crate::error::Accepts::of_header(accept.as_ref()), navigation: false };
        let result = if let Err(e) = self.admission.routes.strict_check(path, &decision) {
            Err((GatewayError::BadPath(e), plain))
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
            let client = crate::error::Client::of(req.method(), req.headers());
            let subject = req.extensions().get::<crate::tls::ClientSubject>().cloned();
            let step = telemetry::child("admission", opentelemetry::trace::SpanKind::Internal);
            let admitted = self.admission.admit_decided(decision, path, req.uri().query(), req.headers(), subject.as_ref().map(|s| &*s.0)).await;
            drop(step);
            admitted.record(&self.admission.default_route, &self.audit);
            match admitted.verdict {
                Verdict::Pass { who, upstream: Some(up), granted } => {
                    upstream_label = Some(up.label.clone());
                    self.upstream_identity(&mut req, who.as_deref(), up, &granted);
                    if let (Some(name), Some(s)) = (&self.admission.identity.client_subject, &subject) {
                        if let Ok(v) = http::HeaderValue::from_bytes(s.0.as_bytes()) {
                            req.headers_mut().insert(name.clone(), v);
                        }
                    }
                    self.proxy.forward(req, up, peer, upgrade).await.map_err(|e| (e, client))
                }
                Verdict::Pass { upstream: None, .. } => Err((GatewayError::NoUpstream, client)),
                Verdict::Challenge { clear_cookie } => Err((self.sign_in_required(req.uri(), clear_cookie), client)),
                Verdict::Forbidden { who, unmet } => Err((GatewayError::Forbidden { account: who.account.to_string(), sign_out: format!("{}/sign_out", self.server.prefix), unmet }, client)),
                Verdict::Refused(e) => Err((e, client)),
                Verdict::Launch(l) => match self.admission.auth.as_ref().map(|auth| self.sign_in_allowed(auth, peer, req.headers())) {
                    Some(Err(e)) => Err((e, client)),
                    _ => {
                        let back = match &l.rest {
                            Some(q) => format!("{}?{q}", req.uri().path()),
                            None => req.uri().path().to_string(),
                        };
                        self.xapp_launch(&l, &back, req.headers()).await.map_err(|e| (e, client))
                    }
                },
            }
        };
        let mut resp = result.unwrap_or_else(|(e, client)| e.render(client));
        self.endpoints.cors.decorate(origin, resp.headers_mut());
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
            request_id: id,
            trace: None,
        };
        resp.body_mut().set_log(log);
        Ok(resp)
    }

    /// What the upstream learns of who asks: the identity headers (and the assertion and
    /// user-token handle where configured) and nothing else. No credential reaches it: neither
    /// the gateway's cookies nor, for a signed-in request, an Authorization header (the verified
    /// JWT, or one the gateway did not check, sent beside a session cookie).
    fn upstream_identity(&self, req: &mut Request<Incoming>, who: Option<&Session>, up: &crate::proxy::Upstream, granted: &crate::admission::Granted) {
        let Some(auth) = &self.admission.auth else { return };
        crate::identity::strip_own_cookies(req.headers_mut(), &auth.cookie_name);
        let Some(s) = who else { return };
        let h = req.headers_mut();
        h.remove(header::AUTHORIZATION);
        self.admission.identity_for_upstream(s, up, granted, |n, v| {
            h.insert(n.clone(), v.clone());
        });
    }

    /// The refusal for a protected request without an identity: back to `uri` after sign-in.
    fn sign_in_required(&self, uri: &Uri, clear_cookie: bool) -> GatewayError {
        let back = uri.path_and_query().map_or("/", |pq| pq.as_str());
        // A cookie that opens no live session (new keys, tampered, ended) is cleared, not sent
        // again on every request.
        let clear_cookie = self.admission.auth.as_ref().filter(|_| clear_cookie).map(|auth| auth.clear_session_cookie());
        GatewayError::SignInRequired { start_url: self.start_url(back), clear_cookie }
    }

    /// The gateway's own endpoints under the prefix; `rest` starts with '/' or is empty.
    async fn endpoint(self: &Arc<Self>, mut req: Request<Incoming>, rest: &str, peer: SocketAddr) -> Response<Body> {
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
        if let (Some(rest), Some(pl), Some(auth)) = (rest.strip_prefix("/qr/"), &self.endpoints.payload_login, &self.admission.auth) {
            if req.method() == Method::GET {
                return self.payload_endpoint(auth, pl, &mut req, rest).await;
            }
        }
        if (req.method(), rest) == (&Method::GET, "/logo") {
            return logo(req.headers());
        }
        let req = &req;
        let accept = req.headers().get(header::ACCEPT);
        let Some(auth) = &self.admission.auth else {
            return GatewayError::NotFound.response(accept);
        };
        let (m, h, q) = (req.method(), req.headers(), req.uri().query());
        if matches!((m, rest), (&Method::GET, "/start" | "/callback" | "/xapp")) {
            if let Err(e) = self.sign_in_allowed(auth, peer, h) {
                return e.response(accept);
            }
        }
        match (m, rest) {
            (&Method::GET, "/start") => self.login_start(auth, h, q).await,
            (&Method::GET, "/xapp") => self.xapp_endpoint(h, q).await,
            (&Method::GET, "/callback") => self.login_callback(auth, h, q).await,
            (&Method::GET | &Method::POST, "/sign_out") => self.sign_out(auth, h, q).await,
            (&Method::GET, "/userinfo") => self.userinfo(auth, h).await,
            (&Method::GET | &Method::HEAD, "/auth") => self.forward_auth(req, peer).await,
            (&Method::GET, "/jwks.json") => match &self.admission.asserter {
                Some(a) => pages::json(StatusCode::OK, &a.jwks()),
                None => GatewayError::NotFound.response(accept),
            },
            _ => GatewayError::NotFound.response(accept),
        }
    }
}

impl Gateway {
    /// Sign-in starts, callbacks and xApp launches per client address: each can make the
    /// gateway call the provider or Xumm with the app's credentials.
    fn sign_in_allowed(&self, auth: &crate::auth::Auth, peer: SocketAddr, h: &http::HeaderMap) -> Result<(), GatewayError> {
        let Some(limit) = &auth.sign_in_limit else { return Ok(()) };
        let client = crate::ratelimit::client_key(peer, h, |ip| self.proxy.is_trusted_ip(ip));
        limit.take(client).map_err(|retry| {
            tracing::info!(client = %client, retry_after = retry, "sign-in rate limit reached");
            GatewayError::TooManySignIns { retry_after: retry }
        })
    }

    /// GET {prefix}/xapp?xAppToken=&xAppStyle=&rd=: an xApp launch that came through forward
    /// auth (or was sent here to start it); the browser goes on to `rd` once the session is open.
    async fn xapp_endpoint(&self, h: &http::HeaderMap, q: Option<&str>) -> Response<Body> {
        let page = crate::error::Client { accepts: crate::error::Accepts::Html, navigation: true };
        let Some(launch) = q.and_then(crate::xapp::launch_in) else {
            return GatewayError::Xapp(crate::xapp::XappError::Malformed).render(page);
        };
        let rd = launch.rest.as_deref().and_then(|r| url::form_urlencoded::parse(r.as_bytes()).find(|(k, _)| k == "rd").map(|(_, v)| v.into_owned()));
        let back = crate::redirect::safe_return(rd.as_deref().unwrap_or("/"), &self.endpoints.allowed_redirect_hosts, self.server.public_url.host_str());
        self.xapp_launch(&launch, &back, h).await.unwrap_or_else(|e| e.render(page))
    }

    /// `{prefix}/xapp` for a launch whose URL was `back` (with the token taken out).
    pub fn xapp_url(&self, launch: &crate::xapp::Launch, back: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair(crate::xapp::TOKEN_PARAM, &launch.token);
        if let Some(s) = &launch.style {
            q.append_pair(crate::xapp::STYLE_PARAM, s);
        }
        q.append_pair("rd", back);
        format!("{}{}/xapp?{}", self.server.public_url.as_str().trim_end_matches('/'), self.server.prefix, q.finish())
    }
}

/// `{prefix}/logo`: the `[pages] logo` file. Scripts in an SVG never run from it (CSP), and
/// its type is never sniffed.
fn logo(h: &http::HeaderMap) -> Response<Body> {
    let Some((ctype, bytes)) = pages::Branding::current().and_then(|b| b.logo_file.clone()) else {
        return GatewayError::NotFound.response(h.get(header::ACCEPT));
    };
    let mut r = Response::new(Body::full(bytes));
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    headers.insert(header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::CONTENT_SECURITY_POLICY, http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    r
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
