//! The upstream side of the fast path: per-thread pools of idle upstream sockets, the response
//! head, and relaying the body exactly as framed. It must never pass on a response whose framing
//! is ambiguous, never return a socket to the pool unless its response ended cleanly, and never
//! hold more than one read buffer of a body.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::Upstream;
use crate::worker;

/// Most response headers accepted from an upstream (hyper's client default).
const MAX_HEADERS: usize = 100;
/// Largest response head accepted from an upstream.
pub const MAX_HEAD: usize = 64 * 1024;
/// Bytes read from the upstream at a time while relaying a body.
const CHUNK: usize = 64 * 1024;
/// Idle sockets kept per upstream and thread.
const MAX_IDLE: usize = 1024;

/// An idle socket to `up` that has not been idle for `idle` yet.
pub fn checkout(up: &Upstream, now: Instant, idle: Duration) -> Option<TcpStream> {
    worker::with(|w| {
        let mut pools = w.idle.borrow_mut();
        let list = &mut pools.iter_mut().find(|(k, _)| *k == up.key)?.1;
        let (since, s) = list.pop()?;
        if now.saturating_duration_since(since) < idle {
            Some(s)
        } else {
            list.clear(); // the rest were idle longer still
            None
        }
    })
}

/// Returns a socket whose last response ended cleanly.
pub fn checkin(up: &Upstream, s: TcpStream, now: Instant) {
    worker::with(|w| {
        let mut pools = w.idle.borrow_mut();
        let i = match pools.iter().position(|(k, _)| *k == up.key) {
            Some(i) => i,
            None => {
                pools.push((up.key, Vec::new()));
                pools.len() - 1
            }
        };
        let list = &mut pools[i].1;
        if list.len() < MAX_IDLE {
            list.push((now, s));
        }
    })
}

/// Closes this thread's sockets that have been idle for `idle` (an upstream closes its side of
/// them sooner or later; they should not sit in CLOSE_WAIT until traffic returns).
pub fn reap(now: Instant, idle: Duration) {
    worker::with(|w| {
        let mut pools = w.idle.borrow_mut();
        for (_, list) in pools.iter_mut() {
            // Oldest first: drop the run of expired ones at the front.
            let fresh = list.iter().position(|(since, _)| now.saturating_duration_since(*since) < idle).unwrap_or(list.len());
            list.drain(..fresh);
        }
        pools.retain(|(_, list)| !list.is_empty());
    })
}

/// Drops every idle socket to `up` (one turned out dead: the upstream probably restarted).
pub fn forget(up: &Upstream) {
    worker::with(|w| w.idle.borrow_mut().retain(|(k, _)| *k != up.key));
}

pub async fn connect(up: &Upstream, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = tokio::time::timeout(timeout, TcpStream::connect(up.connect_to()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How the response body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes: the client connection closes after it as well.
    Close,
}

#[derive(Debug)]
pub struct Head {
    pub len: usize,
    pub status: http::StatusCode,
    pub framing: Framing,
    /// The upstream keeps the connection open after this response.
    pub reusable: bool,
}

pub enum Parsed {
    Partial,
    /// A 1xx response of this length: skipped, the real one follows.
    Informational(usize),
    Head(Head),
    Bad(&'static str),
}

/// Parses the response head at the start of `buf` and writes the client's head into `out`:
/// hop-by-hop headers removed, `Content-Length` dropped when `Transfer-Encoding` frames the body
/// (which is relayed as it comes, so its coding header stays), `Connection: close` when the
/// client connection will close.
/// `ours`: the headers the gateway sets on every response, replacing the upstream's.
pub fn response_head(buf: &[u8], head_request: bool, close_client: bool, ours: Ours<'_>, out: &mut Vec<u8>) -> Parsed {
    let hsts = ours.hsts;
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad("malformed response head"),
    };
    let code = resp.code.unwrap_or(0);
    if code == 101 {
        return Parsed::Bad("protocol switch nobody asked for");
    }
    if (100..200).contains(&code) {
        return Parsed::Informational(len);
    }
    let Ok(status) = http::StatusCode::from_u16(code) else { return Parsed::Bad("invalid status") };

    let mut reusable = resp.version == Some(1);
    let (mut length, mut chunked, mut coded) = (None::<u64>, false, false);
    let mut named: Vec<&str> = Vec::new(); // headers the upstream's Connection header names
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value).ok().filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).and_then(|v| v.parse::<u64>().ok()) else {
                return Parsed::Bad("invalid content-length");
            };
            if length.is_some_and(|l| l != n) {
                return Parsed::Bad("conflicting content-length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let Ok(v) = std::str::from_utf8(h.value) else { return Parsed::Bad("invalid transfer-encoding") };
            // Only the last coding of the last header decides whether chunked frames the body.
            chunked = v.rsplit(',').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
            coded = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            let Ok(v) = std::str::from_utf8(h.value) else { return Parsed::Bad("invalid connection header") };
            for t in crate::proxy::connection_tokens(v) {
                if t.eq_ignore_ascii_case("close") {
                    reusable = false;
                } else if !t.eq_ignore_ascii_case("keep-alive") {
                    named.push(t);
                }
            }
        }
    }
    let framing = if head_request || code == 204 || code == 304 {
        Framing::None
    } else if coded {
        if chunked { Framing::Chunked } else { Framing::Close }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    if framing == Framing::Close {
        reusable = false;
    }

    super::status_line(out, status, resp.reason);
    let (mut length_sent, mut dated) = (false, false);
    for h in resp.headers.iter() {
        let n = h.name;
        let length = n.eq_ignore_ascii_case("content-length");
        let coding = n.eq_ignore_ascii_case("transfer-encoding");
        // Repeated equal Content-Lengths go on as one (RFC 9112 section 6.3). The framing
        // headers stay even when the upstream's Connection names them: the body is relayed as
        // they frame it, so the client must read it the same way.
        let drop = (crate::proxy::is_hop_by_hop(n) && !coding)
            || (length && (coded || length_sent))
            || (!length && !coding && named.iter().any(|x| x.eq_ignore_ascii_case(n)))
            || (hsts.is_some() && n.eq_ignore_ascii_case("strict-transport-security"))
            || (!ours.request_id.is_empty() && n.eq_ignore_ascii_case("x-request-id"));
        length_sent |= length && !drop;
        dated |= !drop && n.eq_ignore_ascii_case("date");
        if !drop {
            super::header_line(out, n.as_bytes(), h.value);
        }
    }
    if !dated {
        // RFC 9110 section 6.6.1: a proxy with a clock adds the Date an upstream left out.
        worker::with(|w| super::header_line(out, b"date", w.date.borrow_mut().now().as_bytes()));
    }
    if let Some(v) = hsts {
        super::header_line(out, b"strict-transport-security", v);
    }
    if !ours.request_id.is_empty() {
        super::header_line(out, b"x-request-id", ours.request_id);
    }
    if close_client || framing == Framing::Close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Parsed::Head(Head { len, status, framing, reusable })
}

/// Headers the gateway puts on every response in place of the upstream's.
#[derive(Clone, Copy, Default)]
pub struct Ours<'a> {
    /// The gateway's Strict-Transport-Security value.
    pub hsts: Option<&'a [u8]>,
    /// The request's id (none when empty).
    pub request_id: &'a [u8],
}

/// Why a relay stopped early. Either way the client connection closes: its response is cut.
#[derive(Debug)]
pub enum RelayError {
    Client(std::io::Error),
    Upstream(&'static str),
}

/// Writes the client's head (`out`) and relays the body from `ubuf` (which starts after the
/// upstream's head) and the upstream socket. Returns the body bytes relayed and whether the
/// upstream socket may be reused (its response ended exactly where framing said).
pub async fn relay<C: AsyncWrite + Unpin>(
    client: &mut C,
    upstream: &mut TcpStream,
    ubuf: &mut BytesMut,
    out: &mut Vec<u8>,
    framing: Framing,
    bytes: &mut u64,
) -> Result<bool, RelayError> {
    let write = |e| RelayError::Client(e);
    match framing {
        Framing::None => {
            client.write_all(out).await.map_err(write)?;
            client.flush().await.map_err(write)?;
            Ok(ubuf.is_empty())
        }
        Framing::Length(n) => {
            let mut left = n;
            let mut first = true;
            loop {
                let take = (ubuf.len() as u64).min(left) as usize;
                left -= take as u64;
                *bytes += take as u64;
                send(client, out, &mut first, &ubuf[..take]).await?;
                let extra = ubuf.len() > take;
                if left == 0 {
                    return Ok(!extra);
                }
                ubuf.clear();
                fill(upstream, ubuf).await?;
            }
        }
        Framing::Chunked => {
            let mut state = Chunk::Size;
            let mut first = true;
            loop {
                let pos = chunks(&mut state, ubuf, bytes).map_err(RelayError::Upstream)?;
                send(client, out, &mut first, &ubuf[..pos]).await?;
                ubuf.advance(pos);
                if state == Chunk::Done {
                    return Ok(ubuf.is_empty());
                }
                fill(upstream, ubuf).await?;
            }
        }
        Framing::Close => {
            *bytes += ubuf.len() as u64;
            out.extend_from_slice(ubuf);
            client.write_all(out).await.map_err(write)?;
            client.flush().await.map_err(write)?;
            loop {
                ubuf.clear();
                ubuf.reserve(CHUNK);
                match upstream.read_buf(ubuf).await {
                    Ok(0) => return Ok(false),
                    Ok(n) => {
                        *bytes += n as u64;
                        client.write_all(ubuf).await.map_err(write)?;
                        client.flush().await.map_err(write)?;
                    }
                    Err(_) => return Err(RelayError::Upstream("connection failed mid-body")),
                }
            }
        }
    }
}

/// Writes body bytes to the client; the first time, behind the response head in `out` (one
/// write for a head and a small body). Flushed, so a TLS stream sends what it holds while the
/// upstream is waited for (a no-op on a plain socket).
async fn send<C: AsyncWrite + Unpin>(client: &mut C, out: &mut Vec<u8>, first: &mut bool, data: &[u8]) -> Result<(), RelayError> {
    let done = if std::mem::take(first) {
        out.extend_from_slice(data);
        client.write_all(out).await
    } else if !data.is_empty() {
        client.write_all(data).await
    } else {
        Ok(())
    };
    done.map_err(RelayError::Client)?;
    client.flush().await.map_err(RelayError::Client)
}

/// Reads more of the body; the upstream closing first is an error (the body is cut short).
async fn fill(upstream: &mut TcpStream, ubuf: &mut BytesMut) -> Result<(), RelayError> {
    ubuf.reserve(CHUNK);
    match upstream.read_buf(ubuf).await {
        Ok(0) => Err(RelayError::Upstream("closed mid-body")),
        Ok(_) => Ok(()),
        Err(_) => Err(RelayError::Upstream("connection failed mid-body")),
    }
}

/// Where a chunked body is (RFC 9112 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Walks the chunked framing in `buf` from `state`; returns how many bytes are whole framing
/// and data (relayed as they are), leaving an incomplete size line or trailer section unread.
fn chunks(state: &mut Chunk, buf: &[u8], bytes: &mut u64) -> Result<usize, &'static str> {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        match *state {
            Chunk::Size => match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((n, size))) => {
                    pos += n;
                    *state = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
                }
                Ok(httparse::Status::Partial) if rest.len() <= 4096 => return Ok(pos),
                _ => return Err("invalid chunk size"),
            },
            Chunk::Data(left) => {
                let take = (rest.len() as u64).min(left);
                pos += take as usize;
                *bytes += take;
                if take < left {
                    *state = Chunk::Data(left - take);
                    return Ok(pos);
                }
                *state = Chunk::DataEnd;
            }
            Chunk::DataEnd => {
                if rest.len() < 2 {
                    return Ok(pos);
                }
                if &rest[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF");
                }
                pos += 2;
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                let mut trailers = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(rest, &mut trailers) {
                    Ok(httparse::Status::Complete((n, _))) => {
                        pos += n;
                        *state = Chunk::Done;
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_HEAD => return Ok(pos),
                    _ => return Err("invalid trailers"),
                }
            }
            Chunk::Done => return Ok(pos),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(parts: &[&[u8]]) -> Result<(Vec<u8>, u64, Chunk), &'static str> {
        let (mut state, mut bytes, mut buf, mut relayed) = (Chunk::Size, 0, Vec::new(), Vec::new());
        for p in parts {
            buf.extend_from_slice(p);
            let pos = chunks(&mut state, &buf, &mut bytes)?;
            relayed.extend_from_slice(&buf[..pos]);
            buf.drain(..pos);
        }
        Ok((relayed, bytes, state))
    }

    #[test]
    fn chunked_framing_is_followed_across_reads() {
        let body: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n";
        for split in 0..body.len() {
            let (relayed, bytes, state) = walk(&[&body[..split], &body[split..]]).unwrap();
            assert_eq!(relayed, body, "split at {split}");
            assert_eq!((bytes, state), (11, Chunk::Done));
        }
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        assert!(walk(&[b"zz\r\n"]).is_err());
        assert!(walk(&[b"5\r\nhelloXX"]).is_err());
        assert!(walk(&[b"ffffffffffffffffffff\r\n"]).is_err());
        // incomplete is not an error, just not done
        assert_eq!(walk(&[b"5\r\nhel"]).unwrap().2, Chunk::Data(2));
    }

    #[test]
    fn response_framing() {
        let head = |raw: &str, head_req: bool| match response_head(raw.as_bytes(), head_req, false, Ours::default(), &mut Vec::new()) {
            Parsed::Head(h) => Ok((h.framing, h.reusable)),
            Parsed::Bad(r) => Err(r),
            Parsed::Partial => Err("partial"),
            Parsed::Informational(_) => Err("1xx"),
        };
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false), Ok((Framing::Length(5), true)));
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true), Ok((Framing::None, true)));
        assert_eq!(head("HTTP/1.1 204 No Content\r\n\r\n", false), Ok((Framing::None, true)));
        assert_eq!(head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", false), Ok((Framing::Chunked, true)));
        assert_eq!(head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", false), Ok((Framing::Close, false)));
        assert_eq!(head("HTTP/1.1 200 OK\r\n\r\n", false), Ok((Framing::Close, false)));
        assert_eq!(head("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n", false), Ok((Framing::Length(1), false)));
        assert_eq!(head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false), Ok((Framing::Length(1), false)));
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n", false), Err("conflicting content-length"));
        assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n", false), Err("invalid content-length"));
        assert_eq!(head("HTTP/1.1 101 Switching Protocols\r\n\r\n", false), Err("protocol switch nobody asked for"));
        assert_eq!(head("HTTP/1.1 103 Early Hints\r\n\r\n", false), Err("1xx"));
    }

    #[test]
    fn client_head_drops_hop_by_hop_and_connection_named_headers() {
        let mut out = Vec::new();
        let raw = "HTTP/1.1 200 OK\r\nConnection: x-private, keep-alive\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nX-End: kept\r\n\r\n";
        assert!(matches!(response_head(raw.as_bytes(), false, true, Ours::default(), &mut out), Parsed::Head(_)));
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-End: kept\r\ndate: "), "{out}");
        assert!(out.ends_with(" GMT\r\nconnection: close\r\n\r\n"), "{out}");
    }

    /// Response head lines an upstream might send, sane and broken.
    fn head_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("Content-Length: 5".to_string()),
            Just("content-length: 05".to_string()),
            Just("Content-Length: 7".to_string()),
            Just("Content-Length: -1".to_string()),
            Just("Content-Length: 99999999999999999999999".to_string()),
            Just("Transfer-Encoding: chunked".to_string()),
            Just("Transfer-Encoding: gzip, chunked".to_string()),
            Just("Transfer-Encoding: chunked, gzip".to_string()),
            Just("Connection: close".to_string()),
            Just("Connection: keep-alive, X-Private".to_string()),
            Just("Connection: ,,".to_string()),
            Just("Connection: Content-Length".to_string()),
            Just("Connection: transfer-encoding, date".to_string()),
            Just("X-Private: secret".to_string()),
            Just("Keep-Alive: timeout=5".to_string()),
            Just("Proxy-Authenticate: Basic".to_string()),
            Just("Upgrade: websocket".to_string()),
            Just("Trailer: X-T".to_string()),
            Just("Date: Tue, 24 Nov 2026 10:00:00 GMT".to_string()),
            "[A-Za-z-]{1,12}: [ -~]{0,20}",
            "[ -~\t\r\n\0]{0,24}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// Whatever the upstream sends, the parser never panics, and a head it accepts becomes a
        /// complete client head with one framing, no hop-by-hop or Connection-named header, a
        /// Date, and `connection: close` when the client connection closes.
        #[test]
        fn any_upstream_head_gives_a_clean_client_head_or_an_error(
            status in proptest::prop_oneof![proptest::sample::select(vec![200u16, 204, 304, 103, 101]), 100u16..1000],
            version in proptest::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0"]),
            lines in proptest::collection::vec(head_line(), 0..8),
            head_req: bool,
            close: bool,
            cut in 0usize..400,
        ) {
            let raw = format!("{version} {status} X\r\n{}\r\n\r\n", lines.join("\r\n"));
            let raw = &raw.as_bytes()[..raw.len().min(cut.max(1) * 4)]; // some heads end early
            let mut out = Vec::new();
            let Parsed::Head(h) = response_head(raw, head_req, close, Ours::default(), &mut out) else { return Ok(()) };
            proptest::prop_assert!(h.len <= raw.len());
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 4];
            let mut resp = httparse::Response::new(&mut headers);
            proptest::prop_assert_eq!(resp.parse(&out), Ok(httparse::Status::Complete(out.len())), "{}", String::from_utf8_lossy(&out));
            let count = |name: &str| resp.headers.iter().filter(|x| x.name.eq_ignore_ascii_case(name)).count();
            // Hop-by-hop, and whatever the upstream's Connection header names.
            let mut theirs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut upstream = httparse::Response::new(&mut theirs);
            upstream.parse(raw).unwrap();
            let mut gone = vec!["keep-alive", "proxy-authenticate", "upgrade", "trailer"];
            for h in upstream.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection")) {
                gone.extend(crate::proxy::connection_tokens(std::str::from_utf8(h.value).unwrap()));
            }
            for g in gone.into_iter().filter(|g| !["close", "keep-alive", "content-length", "transfer-encoding", "date"].iter().any(|x| g.eq_ignore_ascii_case(x))) {
                proptest::prop_assert_eq!(count(g), 0, "{} passed: {}", g, String::from_utf8_lossy(&out));
            }
            // The client reads the body as the gateway relays it.
            let value = |name: &str| resp.headers.iter().find(|x| x.name.eq_ignore_ascii_case(name)).map(|x| x.value.to_vec());
            match h.framing {
                Framing::Length(n) => {
                    proptest::prop_assert_eq!(count("content-length"), 1, "{}", String::from_utf8_lossy(&out));
                    proptest::prop_assert_eq!(value("content-length").and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok()), Some(n));
                }
                Framing::Chunked => proptest::prop_assert!(count("transfer-encoding") >= 1, "{}", String::from_utf8_lossy(&out)),
                Framing::None | Framing::Close => proptest::prop_assert!(count("content-length") <= 1),
            }
            proptest::prop_assert!(count("content-length") == 0 || count("transfer-encoding") == 0);
            proptest::prop_assert_eq!(count("date").min(1), 1);
            let closes = resp.headers.iter().any(|x| x.name.eq_ignore_ascii_case("connection") && x.value == b"close");
            proptest::prop_assert_eq!(closes, close || h.framing == Framing::Close, "{}", String::from_utf8_lossy(&out));
            proptest::prop_assert_eq!(resp.code, Some(status));
        }

        /// Chunked bodies of any shape, read in any pieces, are relayed byte for byte.
        #[test]
        fn chunked_bodies_relay_exactly_across_any_reads(
            sizes in proptest::collection::vec(1usize..300, 0..6),
            cuts in proptest::collection::vec(0usize..2000, 0..6),
            ext: bool,
        ) {
            let mut body = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                body.extend_from_slice(format!("{n:x}{}\r\n", if ext { ";x=1" } else { "" }).as_bytes());
                body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, *n));
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parts = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([body.len()]) {
                parts.push(&body[at..c]);
                at = c;
            }
            let (relayed, bytes, state) = walk(&parts).unwrap();
            proptest::prop_assert_eq!(relayed, body.clone());
            proptest::prop_assert_eq!(bytes, sizes.iter().sum::<usize>() as u64);
            proptest::prop_assert_eq!(state, Chunk::Done);
        }
    }
}
