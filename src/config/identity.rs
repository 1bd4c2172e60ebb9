//! `[provider]`, `[bearer]`, `[assertion]`, `[forward_auth]`, `[headers]`: who users are and how
//! upstreams learn it. It must never default to trusting a client-sent identity.

use super::*;
use http::HeaderName;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// "oauth2" (default) or "payload" (a SignIn payload shown as a QR code or pushed).
    #[serde(default)]
    pub kind: Choice<ProviderKind>,
    /// SignIn payloads created per minute at most, all clients together (each spends one from
    /// the app's Xumm quota); per client, `server.sign_in_per_minute` applies as well.
    #[serde(default = "default_payloads_per_minute")]
    pub payloads_per_minute: u32,
    /// How long a SignIn payload waits to be signed (whole minutes, Xumm's `options.expire`);
    /// one nobody scanned is then cancelled at Xumm.
    #[serde(default = "default_payload_expiry")]
    pub payload_expiry: Span,
    /// With `kind = "oauth2"`: the sign-in page also offers a QR code / push sign-in (a SignIn
    /// payload, needs `[xumm]`) beside "Sign in with Xumm".
    #[serde(default)]
    pub qr_sign_in: bool,
    #[serde(default = "default_issuer")]
    pub issuer: Parsed<url::Url>,
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

pub(super) fn default_payload_expiry() -> Span {
    "5m".into()
}

pub(super) fn default_payloads_per_minute() -> u32 {
    60
}

pub(super) fn default_jwks_min_refresh() -> Span {
    "30s".into()
}

pub(super) fn default_issuer() -> Parsed<url::Url> {
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// "status": 401 for no session (nginx, ingress-nginx). "redirect": browsers get 302/303 to
    /// sign-in (Traefik). `?mode=` on the request overrides it.
    pub mode: Choice<ForwardAuthMode>,
}


/// Names of the identity headers set on upstream requests; "" switches one off. Every name here
/// (and every default name) is stripped from incoming requests, whatever the client's spelling.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    pub account: Parsed<Option<HeaderName>>,
    pub network: Parsed<Option<HeaderName>>,
    pub user: Vec<Parsed<HeaderName>>,
    pub user_token: Parsed<Option<HeaderName>>,
    pub assertion: Parsed<Option<HeaderName>>,
    /// xApp sessions: the wallet's access to the account, `FULL` or `READONLY`.
    pub account_access: Parsed<Option<HeaderName>>,
    /// xApp sessions: the wallet's theme (`LIGHT`, `DARK`, `MOONLIGHT`, `ROYAL`), for the app to match.
    pub xapp_style: Parsed<Option<HeaderName>>,
    /// The subject of the client certificate the connection presented (`[server.tls] client_ca`).
    pub client_cert_subject: Parsed<Option<HeaderName>>,
    /// Further header names to strip from every request.
    pub strip: Vec<Parsed<HeaderName>>,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        HeadersConfig {
            account: "X-Xumm-Account".into(),
            network: "X-Xumm-Network".into(),
            user: vec!["X-Auth-Request-User".into(), "X-Forwarded-User".into()],
            user_token: "X-Xumm-User-Token".into(),
            assertion: "X-Xumm-Assertion".into(),
            account_access: "X-Xumm-Account-Access".into(),
            xapp_style: "X-Xumm-Xapp-Style".into(),
            client_cert_subject: "X-Client-Cert-Subject".into(),
            strip: vec![],
        }
    }
}

impl HeadersConfig {
    /// Each single header key with its path, for checks and for `IdentityHeaders`.
    pub fn singles(&self) -> [(&'static str, &Parsed<Option<HeaderName>>); 7] {
        [
            ("headers.account", &self.account),
            ("headers.network", &self.network),
            ("headers.user_token", &self.user_token),
            ("headers.assertion", &self.assertion),
            ("headers.account_access", &self.account_access),
            ("headers.xapp_style", &self.xapp_style),
            ("headers.client_cert_subject", &self.client_cert_subject),
        ]
    }
}
