//! xApp sessions: Xumm opens an app inside the wallet with a one-time token (`?xAppToken=`),
//! which the gateway resolves with its platform credentials and turns into a session. It must
//! never open a session for a token Xumm did not resolve for this app, never accept one token
//! twice, and never let the token reach the upstream or stay in the browser's address bar.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::account::Account;
use crate::oidc::TokenError;
use crate::session::XappAccess;
use crate::shared::Shared;
use crate::xumm::client::{PlatformClient, XummError};

/// The query parameter Xumm puts the one-time token in, and the one with the wallet's theme.
pub const TOKEN_PARAM: &str = "xAppToken";
pub const STYLE_PARAM: &str = "xAppStyle";

/// How long a resolved token stays claimed (Xumm's tokens live a minute; this outlives that).
const CLAIM_TTL: Duration = Duration::from_secs(600);

/// An xApp launch: the one-time token and theme from the URL, and the query without them (where
/// the browser goes once the session is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub token: String,
    pub style: Option<String>,
    /// The query without `xAppToken` and `xAppStyle` (None when nothing else was in it).
    pub rest: Option<String>,
}

/// The launch in a request's query, when it carries an `xAppToken` parameter (cheap to ask: the
/// query is scanned for the name before it is parsed).
pub fn launch_in(query: &str) -> Option<Launch> {
    if !query.contains(TOKEN_PARAM) {
        return None;
    }
    let mut token = None;
    let mut style = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    let mut kept = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            TOKEN_PARAM => token = token.or(Some(v.into_owned())),
            STYLE_PARAM => style = style.or(Some(v.into_owned())),
            _ => {
                rest.append_pair(&k, &v);
                kept = true;
            }
        }
    }
    Some(Launch { token: token?, style, rest: kept.then(|| rest.finish()) })
}

/// The launch in a URL (absolute or a path, with its query), and the URL without the xApp
/// parameters: where the browser goes once the session is open.
pub fn split_launch(url: &str) -> Option<(Launch, String)> {
    let url = url.split('#').next().unwrap_or_default();
    let (base, query) = url.split_once('?')?;
    let launch = launch_in(query)?;
    let back = match &launch.rest {
        Some(rest) => format!("{base}?{rest}"),
        None => base.to_string(),
    };
    Some((launch, back))
}

/// Why a launch opened no session.
#[derive(Debug, thiserror::Error)]
pub enum XappError {
    #[error("the xApp link carries no valid one-time token")]
    Malformed,
    /// Xumm does not resolve it: used already, expired, unknown, or issued for another app.
    #[error("this xApp link has expired or was already used")]
    Refused,
    #[error("this xApp link was already used")]
    Replayed,
    /// Xumm resolved it, but its answer names no valid account.
    #[error("Xumm's answer names no valid XRPL account")]
    BadAnswer,
    #[error("Xumm cannot be reached")]
    Unavailable { retry_after: u64 },
}

/// What a resolved one-time token says about the user.
#[derive(Debug, Clone)]
pub struct Opened {
    pub account: Account,
    pub network: Option<String>,
    pub access: XappAccess,
    pub style: Option<String>,
}

/// Resolves one-time tokens with the gateway's platform client.
pub struct Xapp {
    client: Arc<PlatformClient>,
    shared: Arc<Shared>,
}

impl Xapp {
    pub fn new(client: Arc<PlatformClient>, shared: Arc<Shared>) -> Xapp {
        Xapp { client, shared }
    }

    /// Asks Xumm who the token's user is (`GET xapp/ott/{token}`, never retried: a token is
    /// spent by the first answer), then claims the token so no replica opens a second session
    /// with it, whatever Xumm answers a second time.
    pub async fn resolve(&self, launch: &Launch) -> Result<Opened, XappError> {
        let token = &launch.token;
        // Xumm's tokens are UUIDs; anything else would only be a path trick in our call.
        if token.is_empty() || token.len() > 64 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(XappError::Malformed);
        }
        let answer = self.client.call_once(Method::GET, &format!("xapp/ott/{token}"), None).await;
        let v = match answer {
            Ok(v) => v,
            Err(XummError::Api { status, .. }) if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS => return Err(XappError::Refused),
            Err(XummError::RateLimited { retry_after }) => return Err(XappError::Unavailable { retry_after }),
            Err(e) => {
                tracing::warn!(cause = %e, "xApp token resolution failed");
                return Err(XappError::Unavailable { retry_after: 5 });
            }
        };
        let opened = read_answer(&v, launch.style.as_deref()).ok_or(XappError::BadAnswer)?;
        let key = format!("xott:{}", crate::session::sha256_hex(token.as_bytes()));
        match self.shared.claim(&key, CLAIM_TTL).await {
            Ok(true) => Ok(opened),
            Ok(false) => Err(XappError::Replayed),
            Err(e) => {
                tracing::error!(cause = %e, "shared store unavailable");
                Err(XappError::Unavailable { retry_after: 2 })
            }
        }
    }
}

/// xApp JWTs as Bearer tokens (`[xapp] bearer = true`): what an xApp's own frontend gets from
/// Xumm (`jwt/authorize`), HS256-signed with the app's API secret, valid 24 h. Checked: the
/// algorithm (HS256 only: never `none`, never a provider key), the signature, `exp` (required)
/// and `iat`/`nbf` with the Bearer skew, the app (`client_id` or `app_uuidv4` must be this API
/// key, as Xumm's docs check), `aud` when present, `iss` when `[xapp] jwt_issuer` is set, and
/// the account (`sub`, or `usr`) as a valid r-address.
pub struct XappJwt {
    key: jsonwebtoken::DecodingKey,
    app: String,
    issuer: Option<String>,
    skew: u64,
}

impl XappJwt {
    pub fn new(api_key: &str, api_secret: &str, issuer: Option<String>, skew: u64) -> XappJwt {
        XappJwt { key: jsonwebtoken::DecodingKey::from_secret(api_secret.as_bytes()), app: api_key.to_string(), issuer, skew }
    }

    /// Whether `token` claims to be one (an HS256 header): the provider's tokens never are.
    pub fn claims_to_be(token: &str) -> bool {
        jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == jsonwebtoken::Algorithm::HS256)
    }

    pub fn verify(&self, token: &str) -> Result<crate::session::Session, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        use serde_json::Value;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = self.skew;
        v.validate_aud = false;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            v.set_required_spec_claims(&["exp", "iss"]);
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &self.key, &v).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::MissingRequiredClaim(c) if c == "iss" => TokenError::Claim("iss"),
            ErrorKind::MissingRequiredClaim(_) => TokenError::Claim("exp"),
            _ => TokenError::Malformed,
        })?;
        let c = data.claims;
        let app = c.get("client_id").or_else(|| c.get("app_uuidv4")).and_then(Value::as_str);
        if app != Some(self.app.as_str()) {
            return Err(TokenError::Audience);
        }
        let aud_ok = match c.get("aud") {
            None => true,
            Some(Value::String(a)) => *a == self.app,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(&self.app)),
            Some(_) => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience);
        }
        let now = crate::session::now();
        if c.get("iat").and_then(Value::as_f64).is_some_and(|iat| iat > (now + self.skew) as f64) {
            return Err(TokenError::NotYetValid);
        }
        let exp = c.get("exp").and_then(Value::as_f64).ok_or(TokenError::Claim("exp"))? as u64;
        let account = c.get("sub").or_else(|| c.get("usr")).and_then(Value::as_str).and_then(|a| Account::parse(a).ok()).ok_or(TokenError::Account)?;
        let network = c.get("net").and_then(Value::as_str).map(str::to_ascii_uppercase);
        Ok(crate::session::Session::new(account, network, None, crate::session::Source::Xapp, exp))
    }
}

/// The account, network, access and theme of Xumm's OTT answer. The account must be a valid
/// r-address; an access other than `FULL` counts as read-only (never more than Xumm said).
fn read_answer(v: &serde_json::Value, style: Option<&str>) -> Option<Opened> {
    let account = Account::parse(v["account"].as_str()?).ok()?;
    let network = v["nodetype"].as_str().map(str::to_ascii_uppercase);
    let access = if v["accountaccess"].as_str() == Some("FULL") { XappAccess::Full } else { XappAccess::Readonly };
    let style = style.or(v["style"].as_str()).map(str::to_string);
    Some(Opened { account, network, access, style })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches() {
        assert_eq!(launch_in("a=1"), None);
        assert_eq!(launch_in("xAppStyle=DARK"), None);
        let l = launch_in("a=1&xAppToken=abc-123&xAppStyle=DARK&b=x%20y").unwrap();
        assert_eq!((l.token.as_str(), l.style.as_deref(), l.rest.as_deref()), ("abc-123", Some("DARK"), Some("a=1&b=x+y")));
        let l = launch_in("xAppToken=t").unwrap();
        assert_eq!((l.style, l.rest), (None, None));
        let (l, back) = split_launch("https://a.example/p?x=1&xAppToken=t#frag").unwrap();
        assert_eq!((l.token.as_str(), back.as_str()), ("t", "https://a.example/p?x=1"));
        assert_eq!(split_launch("/p?xAppToken=t").unwrap().1, "/p");
        assert!(split_launch("/p?x=1").is_none());
    }

    #[test]
    fn answers() {
        let v = serde_json::json!({"account": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "nodetype": "testnet", "accountaccess": "FULL", "style": "ROYAL"});
        let o = read_answer(&v, None).unwrap();
        assert_eq!((o.network.as_deref(), o.access, o.style.as_deref()), (Some("TESTNET"), XappAccess::Full, Some("ROYAL")));
        let v = serde_json::json!({"account": "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "accountaccess": "SOMETHING"});
        assert_eq!(read_answer(&v, Some("DARK")).unwrap().access, XappAccess::Readonly);
        assert!(read_answer(&serde_json::json!({"account": "rNOPE"}), None).is_none());
        assert!(read_answer(&serde_json::json!({}), None).is_none());
    }
}
