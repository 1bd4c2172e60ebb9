//! Splits traffic into the gateway's own endpoints and protected/proxied traffic. It must never
//! route on a path other than the normalized one that policy and the upstream see.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Uri, header};
use hyper::body::Incoming;

use crate::Gateway;
use crate::accesslog::AccessLog;
use crate::body::Body;
use crate::error::GatewayError;

impl Gateway {
    /// Entry point for every request on the public listener.
    pub async fn handle(self: Arc<Self>, mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
        let start = Instant::now();
        let inflight = crate::metrics::InFlight::start();
        let method = req.method().clone();
        let accept = req.headers().get(header::ACCEPT).cloned();

        let path = match crate::path::normalize(req.uri().path()) {
            Ok(p) => p,
            Err(e) => {
                let mut resp = GatewayError::from(e).response(accept.as_ref());
                let log = AccessLog {
                    method,
                    path: "<invalid>".into(),
                    route: Arc::from("invalid"),
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
        if path.len() != req.uri().path().len() || path != req.uri().path() {
            set_path(&mut req, &path);
        }

        let decision = self.routes.decide(&path);
        let route_label = decision.route.map(|r| r.label.clone()).unwrap_or_else(|| self.default_label.clone());
        let mut upstream_label = None;
        let result = if crate::path::has_prefix(&path, &self.server.prefix) {
            self.endpoint(&req, &path[self.server.prefix.len()..])
        } else {
            match self.proxy.select(&path) {
                None => Err(GatewayError::NoUpstream),
                Some(up) => {
                    upstream_label = Some(up.label.clone());
                    self.proxy.forward(req, up, &path, peer).await
                }
            }
        };
        let mut resp = result.unwrap_or_else(|e| e.response(accept.as_ref()));
        let log = AccessLog {
            method,
            path: path.into_boxed_str(),
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

    /// The gateway's own endpoints under the prefix; `rest` starts with '/' or is empty.
    fn endpoint(&self, _req: &Request<Incoming>, rest: &str) -> Result<Response<Body>, GatewayError> {
        let _ = rest;
        Err(GatewayError::NotFound)
    }
}

/// Replaces the request path with its normalized form, keeping the query.
fn set_path(req: &mut Request<Incoming>, path: &str) {
    let mut parts = req.uri().clone().into_parts();
    let pq = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}
