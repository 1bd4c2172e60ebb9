//! Signed identity assertions (`X-Xumm-Assertion`, ES256) for upstreams that verify rather than
//! trust a header. It must never sign on every request (each session keeps its signed value per
//! audience until near expiry) and never publish anything but the public key.

use std::sync::Arc;

use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::SecretKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::config::{AssertionConfig, ConfigError};
use crate::session::{Session, now};

pub struct Asserter {
    key: EncodingKey,
    kid: String,
    jwk: serde_json::Value,
    issuer: String,
    ttl: u64,
}

impl Asserter {
    pub fn parse_key(pem: &str) -> Option<SecretKey> {
        SecretKey::from_pkcs8_pem(pem).ok()
    }

    pub fn from_config(cfg: &AssertionConfig, issuer: &str) -> Result<Option<Asserter>, ConfigError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let secret = if cfg.key.is_empty() {
            tracing::warn!("assertion.key is empty: a key was generated at start; use a configured key with several replicas");
            loop {
                if let Ok(k) = SecretKey::from_slice(&rand::random::<[u8; 32]>()) {
                    break k;
                }
            }
        } else {
            Self::parse_key(&cfg.key).ok_or_else(|| crate::config::err("assertion.key", "is not a PKCS#8 PEM P-256 private key"))?
        };
        let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|_| crate::config::err("assertion.key", "cannot encode key"))?;
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| crate::config::err("assertion.key", "unusable key"))?;
        let point = secret.public_key().to_sec1_bytes();
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let kid: String = Sha256::digest(&point[1..]).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        let ttl = cfg.ttl.get().as_secs();
        Ok(Some(Asserter { key, kid, jwk, issuer: issuer.trim_end_matches('/').to_string(), ttl }))
    }

    /// `{"keys": [...]}` for `{prefix}/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [self.jwk]})
    }

    /// The assertion for this session and audience: reused until a fifth of its life is left.
    pub fn header_for(&self, s: &Session, aud: &Arc<str>) -> Option<HeaderValue> {
        let t = now();
        let mut cache = s.assertions.lock().ok()?;
        if let Some((_, _, v)) = cache.iter().find(|(a, exp, _)| a == aud && exp.saturating_sub(t) > self.ttl / 5) {
            return Some(v.clone());
        }
        let exp = (t + self.ttl).min(s.expires_at);
        let mut claims = serde_json::json!({"iss": self.issuer, "sub": s.account, "aud": &**aud, "iat": t, "exp": exp});
        if let Some(n) = &s.network {
            claims["network"] = serde_json::json!(n);
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key).ok()?;
        let v = HeaderValue::from_str(&token).ok()?;
        cache.retain(|(a, _, _)| a != aud);
        cache.push((aud.clone(), exp, v.clone()));
        Some(v)
    }
}
