//! The response body type: a streamed upstream body or a small gateway-made one, carrying the
//! request's access-log record. It must never buffer a streamed body; it only counts bytes.

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
    }
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        let b: Bytes = b.into();
        Body { kind: Kind::Full { data: if b.is_empty() { None } else { Some(b) } }, log: None }
    }
    pub fn empty() -> Body {
        Body::full(Bytes::new())
    }
    pub fn stream(body: Incoming) -> Body {
        Body { kind: Kind::Stream { body }, log: None }
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
