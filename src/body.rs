//! The response body type: a streamed upstream body or a small gateway-made one, carrying the
//! request's access-log record. It must never buffer a streamed body; it only counts bytes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::accesslog::AccessLog;

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Stream { #[pin] body: Incoming },
        Full { data: Option<Bytes> },
    }
}

pin_project_lite::pin_project! {
    /// Response body. When it is finished or dropped, its access-log record (if any) is written.
    pub struct Body {
        #[pin]
        kind: Kind,
        log: Option<AccessLog>,
        // Keeps the request open on its connection until the body ends (idle timeout).
        held: Option<crate::conns::InUse>,
    }
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        let b: Bytes = b.into();
        Body { kind: Kind::Full { data: if b.is_empty() { None } else { Some(b) } }, log: None, held: None }
    }
    pub fn empty() -> Body {
        Body::full(Bytes::new())
    }
    pub fn stream(body: Incoming) -> Body {
        Body { kind: Kind::Stream { body }, log: None, held: None }
    }
    /// The whole body of a gateway-made response (None for a streamed one).
    pub fn into_full(self) -> Option<Bytes> {
        match self.kind {
            Kind::Full { data } => Some(data.unwrap_or_default()),
            Kind::Stream { .. } => None,
        }
    }
    /// Attaches the access-log record, written when the body ends.
    pub fn set_log(&mut self, log: AccessLog) {
        self.log = Some(log);
    }
    /// Ends the request's span when the body ends, with its access-log record (at once when
    /// the response has none).
    pub fn end_trace(&mut self, trace: crate::telemetry::Traced, status: http::StatusCode) {
        match &mut self.log {
            Some(log) => log.trace = Some((trace, crate::telemetry::Child::none())),
            None => trace.end(None, status),
        }
    }
    /// Holds the connection's open-request mark until the body ends.
    pub fn hold(&mut self, in_use: crate::conns::InUse) {
        self.held = Some(in_use);
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.project();
        let res = match this.kind.project() {
            KindProj::Stream { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        };
        if let (Poll::Ready(Some(Ok(frame))), Some(log)) = (&res, this.log.as_mut()) {
            if let Some(d) = frame.data_ref() {
                log.bytes += d.len() as u64;
            }
        }
        if let (Poll::Ready(Some(Err(_))), Some(log)) = (&res, this.log.as_mut()) {
            log.body_error = true;
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Stream { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Stream { body } => body.size_hint(),
            Kind::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// A client's request body stopped arriving for `server.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("request body timed out")]
pub struct BodyTimeout;

pin_project_lite::pin_project! {
    /// A request body that fails with `BodyTimeout` when the client sends nothing for `timeout`
    /// (a body that stops arriving would otherwise hold the upstream request open). The timer
    /// is made on the first wait, so a request without a body costs nothing.
    pub struct IdleBody {
        #[pin]
        inner: Incoming,
        timeout: std::time::Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl IdleBody {
    pub fn new(inner: Incoming, timeout: std::time::Duration) -> IdleBody {
        IdleBody { inner, timeout, timer: None }
    }
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(r) => {
                if let Some(t) = this.timer.as_mut() {
                    t.as_mut().reset(tokio::time::Instant::now() + *this.timeout);
                }
                Poll::Ready(r.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = *this.timeout;
                let t = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match t.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
