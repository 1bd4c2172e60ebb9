//! `[provider]`, `[bearer]`, `[assertion]`, `[forward_auth]`, `[headers]`: who users are and how
//! upstreams learn it. It must never default to trusting a client-sent identity.

use super::*;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_account_claim")]
    pub account_claim: String,
    /// "client_secret_post" (default, what Xumm documents) or "client_secret_basic".
    #[serde(default = "default_token_auth")]
    pub token_auth: Choice<TokenAuth>,
    /// Least time between two JWKS fetches triggered by tokens no cached key verifies.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: Span,
}

pub(super) fn default_jwks_min_refresh() -> Span {
    "30s".into()
}

pub(super) fn default_issuer() -> String {
    "https://oauth2.xumm.app".into()
}
pub(super) fn default_scopes() -> Vec<String> {
    vec!["openid".into()]
}
pub(super) fn default_account_claim() -> String {
    "sub".into()
}
pub(super) fn default_token_auth() -> Choice<TokenAuth> {
    Choice::default()
}

/// `Authorization: Bearer <JWT>` from native apps and SPAs that signed in with Xumm themselves.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerConfig {
    pub enabled: bool,
    /// Accepted `aud` values besides `provider.client_id` (native apps registered as their own client).
    pub audiences: Vec<String>,
    /// Signature algorithms accepted with the provider's keys (asymmetric only).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on exp/nbf/iat.
    pub max_skew: Span,
    /// Verified tokens kept in the cache (each until its own `exp`).
    pub cache_entries: u64,
}

impl Default for BearerConfig {
    fn default() -> Self {
        BearerConfig { enabled: true, audiences: vec![], algorithms: vec!["RS256".into()], max_skew: "60s".into(), cache_entries: 100_000 }
    }
}

/// `X-Xumm-Assertion`: a short-lived ES256 JWT about the user, verifiable at `{prefix}/jwks.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionConfig {
    pub enabled: bool,
    /// PKCS#8 PEM of a P-256 key (e.g. "file:/etc/xumm-gate/assertion.pem"). Empty: a key is
    /// generated at start, which suits a single replica only (each replica would sign differently).
    pub key: Secret,
    /// Lifetime of each assertion.
    pub ttl: Span,
}

impl Default for AssertionConfig {
    fn default() -> Self {
        AssertionConfig { enabled: false, key: Secret::default(), ttl: "5m".into() }
    }
}

/// `{prefix}/auth` for nginx auth_request, Traefik ForwardAuth and ingress-nginx auth-url.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// "status": 401 for no session (nginx, ingress-nginx). "redirect": browsers get 302/303 to
    /// sign-in (Traefik). `?mode=` on the request overrides it.
    pub mode: Choice<ForwardAuthMode>,
}


/// Names of the identity headers set on upstream requests; "" switches one off. Every name here
/// (and every default name) is stripped from incoming requests, whatever the client's spelling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    pub account: String,
    pub network: String,
    pub user: Vec<String>,
    pub user_token: String,
    pub assertion: String,
    /// Further header names to strip from every request.
    pub strip: Vec<String>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            account: "X-Xumm-Account".into(),
            network: "X-Xumm-Network".into(),
            user: vec!["X-Auth-Request-User".into(), "X-Forwarded-User".into()],
            user_token: "X-Xumm-User-Token".into(),
            assertion: "X-Xumm-Assertion".into(),
            strip: vec![],
        }
    }
}

impl HeadersConfig {
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        [self.account.as_str(), self.network.as_str(), self.user_token.as_str(), self.assertion.as_str()]
            .into_iter()
            .chain(self.user.iter().map(String::as_str))
    }
}
