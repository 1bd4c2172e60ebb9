//! Xumm payload webhooks (`POST {prefix}/webhook`). It must never act on a body whose signature
//! does not verify over the raw bytes, whose timestamp is outside the window, or that was seen
//! before.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// How far the sender's timestamp may be from our clock.
pub const WINDOW_SECS: u64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing or malformed signature headers")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("timestamp outside the accepted window")]
    Stale,
    #[error("replayed delivery")]
    Replay,
}

impl WebhookError {
    /// The reason as a metric label and audit field.
    pub fn label(&self) -> &'static str {
        match self {
            WebhookError::Malformed => "malformed",
            WebhookError::Signature => "signature",
            WebhookError::Stale => "stale",
            WebhookError::Replay => "replay",
        }
    }
}

pub struct WebhookVerifier {
    key: Vec<u8>,
}

impl WebhookVerifier {
    /// Xumm keys the HMAC with the API secret minus its FIRST dash (JavaScript's
    /// `secret.replace('-', '')` replaces only the first match).
    pub fn new(api_secret: &str) -> WebhookVerifier {
        WebhookVerifier { key: api_secret.replacen('-', "", 1).into_bytes() }
    }

    /// Checks `x-xumm-request-timestamp` and `x-xumm-request-signature` (hex HMAC-SHA1 over
    /// timestamp + raw body); the normalized signature, which names the delivery for the
    /// replay check (a claim in the broker's shared store, so every replica refuses a replay).
    pub fn verify(&self, timestamp: Option<&str>, signature: Option<&str>, body: &[u8], now: u64) -> Result<String, WebhookError> {
        let (Some(ts), Some(sig)) = (timestamp, signature) else { return Err(WebhookError::Malformed) };
        let t: u64 = ts.trim().parse().map_err(|_| WebhookError::Malformed)?;
        let sig = sig.trim().to_ascii_lowercase();
        if sig.len() != 40 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WebhookError::Malformed);
        }
        let bytes: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.key).map_err(|_| WebhookError::Malformed)?;
        mac.update(ts.trim().as_bytes());
        mac.update(body);
        mac.verify_slice(&bytes).map_err(|_| WebhookError::Signature)?;
        if t.abs_diff(now) > WINDOW_SECS {
            return Err(WebhookError::Stale);
        }
        Ok(sig)
    }
}

/// The signature Xumm would send (for the development platform and tests).
pub fn sign(api_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(api_secret.replacen('-', "", 1).as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_dash_quirk() {
        let secret = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
        let body = br#"{"meta":{"payload_uuidv4":"x"}}"#;
        // computed with key "aaaaaaaabbbb-cccc-dddd-eeeeeeeeeeee", as Xumm's sender does
        let mut mac = Hmac::<Sha1>::new_from_slice(b"aaaaaaaabbbb-cccc-dddd-eeeeeeeeeeee").unwrap();
        mac.update(b"1700000000");
        mac.update(body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sign(secret, "1700000000", body), expected);
        let v = WebhookVerifier::new(secret);
        assert_eq!(v.verify(Some("1700000000"), Some(&expected.to_ascii_uppercase()), body, 1_700_000_010), Ok(expected.clone()));
        // keyed with every dash removed, as some third-party verifiers assume: refused
        let mut all = Hmac::<Sha1>::new_from_slice(b"aaaaaaaabbbbccccddddeeeeeeeeeeee").unwrap();
        all.update(b"1700000001");
        all.update(body);
        let wrong: String = all.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v.verify(Some("1700000001"), Some(&wrong), body, 1_700_000_010), Err(WebhookError::Signature));
        let s2 = sign(secret, "1600000000", body);
        assert_eq!(v.verify(Some("1600000000"), Some(&s2), body, 1_700_000_000), Err(WebhookError::Stale));
        assert_eq!(v.verify(None, Some(&s2), body, 0), Err(WebhookError::Malformed));
        assert_eq!(v.verify(Some("x"), Some("zz"), body, 0), Err(WebhookError::Malformed));
    }
}
