//! Read access to a request's headers, whoever parsed them (hyper's `HeaderMap`, the fast
//! path's httparse slice), for the decisions both paths share. It must never copy a header or
//! allocate.

/// Read access to a request's headers, whoever parsed them (hyper's `HeaderMap`, the fast
/// path's httparse slice), without copying them.
pub trait Headers {
    /// The values of the header `name` (given in lower case), in order.
    fn all<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]>;

    fn first(&self, name: &'static str) -> Option<&[u8]> {
        self.all(name).next()
    }
}

impl Headers for http::HeaderMap {
    fn all<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

impl Headers for [httparse::Header<'_>] {
    fn all<'s>(&'s self, name: &'static str) -> impl Iterator<Item = &'s [u8]> {
        self.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }
}

/// The Bearer token of an `Authorization` header, if that is its scheme.
pub fn bearer_token<H: Headers + ?Sized>(headers: &H) -> Option<&str> {
    let v = std::str::from_utf8(headers.first("authorization")?).ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
