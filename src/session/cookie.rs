//! Cookie sealing (AES-256-GCM via the cookie crate's private jar) with key rotation. It must never
//! accept a value that no configured key opens, and never put anything but sealed values in cookies.

use cookie::{Cookie, CookieJar, Key, SameSite};

/// Seals with the first key; opens with any.
pub struct Sealer {
    keys: Vec<Key>,
    secure: bool,
}

impl Sealer {
    /// `secrets` are the decoded cookie secrets (>= 32 bytes each, checked by config).
    pub fn new(secrets: &[Vec<u8>], secure: bool) -> Sealer {
        Sealer { keys: secrets.iter().map(|s| Key::derive_from(s)).collect(), secure }
    }

    /// Seals `value` for a cookie named `name` (the name is authenticated too).
    pub fn seal(&self, name: &str, value: &str) -> String {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.keys[0]).add(Cookie::new(name.to_string(), value.to_string()));
        jar.get(name).map(|c| c.value().to_string()).unwrap_or_default()
    }

    /// Opens a sealed value; None when tampered, truncated, garbage, or sealed by an unknown key.
    pub fn open(&self, name: &str, sealed: &str) -> Option<String> {
        if sealed.len() > 4096 {
            return None;
        }
        // Set-Cookie values are percent-encoded (base64 has '+', '/', '='); browsers echo them so.
        let decoded = percent_encoding::percent_decode_str(sealed).decode_utf8().ok()?;
        let sealed: &str = &decoded;
        self.keys.iter().find_map(|k| {
            let mut jar = CookieJar::new();
            jar.add_original(Cookie::new(name.to_string(), sealed.to_string()));
            jar.private(k).get(name).map(|c| c.value().to_string())
        })
    }

    /// A Set-Cookie header value for a sealed cookie, for this host only.
    pub fn set_cookie(&self, name: &str, sealed: String, path: &str, max_age: Option<i64>) -> String {
        self.cookie(name, sealed, path, max_age, None)
    }

    /// A Set-Cookie header value for a sealed cookie; with `domain`, for every host under it.
    pub fn cookie(&self, name: &str, sealed: String, path: &str, max_age: Option<i64>, domain: Option<&str>) -> String {
        let mut c = Cookie::build((name.to_string(), sealed))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path(path.to_string())
            .build();
        if let Some(d) = domain {
            c.set_domain(d.to_string());
        }
        if let Some(s) = max_age {
            c.set_max_age(cookie::time::Duration::seconds(s));
        }
        c.encoded().to_string()
    }

    /// A Set-Cookie header value that deletes a cookie.
    pub fn clear_cookie(&self, name: &str, path: &str) -> String {
        self.set_cookie(name, String::new(), path, Some(0))
    }
}

/// Iterates the (name, value) pairs of all Cookie headers, as bytes: a header holding
/// non-ASCII bytes (browsers send UTF-8 that apps set) is read like any other, so the gateway's
/// own cookies are found in it. Pairs without '=' are skipped.
pub fn cookies(headers: &http::HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers.get_all(http::header::COOKIE).iter().flat_map(|v| pairs(v.as_bytes()))
}

/// The (name, value) pairs of one Cookie header value, as bytes.
pub fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        // RFC 6265 allows only SP and HTAB around the pieces.
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// The pairs of all Cookie headers whose name and value are text (the gateway's own cookies
/// always are); a non-UTF-8 pair is passed over without hiding the others.
pub fn text_cookies(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    cookies(headers).filter_map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_reject_tampering() {
        let old = Sealer::new(&[vec![1u8; 32]], true);
        let new = Sealer::new(&[vec![2u8; 32], vec![1u8; 32]], true);
        let sealed_old = old.seal("s", "id-1");
        assert_eq!(new.open("s", &sealed_old).as_deref(), Some("id-1"), "old key still opens");
        let sealed_new = new.seal("s", "id-2");
        assert_eq!(old.open("s", &sealed_new), None, "new key seals");
        assert_eq!(new.open("other-name", &sealed_new), None, "name is authenticated");
        let mut t = sealed_new.clone().into_bytes();
        t[5] ^= 1;
        assert_eq!(new.open("s", &String::from_utf8_lossy(&t)), None);
        assert_eq!(new.open("s", &sealed_new[..sealed_new.len() - 3]), None);
        assert_eq!(new.open("s", "garbage"), None);
        assert_eq!(new.open("s", ""), None);
    }
}
