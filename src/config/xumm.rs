//! `[xumm]` and `[[broker.app]]`: the platform API credentials and the apps the broker serves.
//! Its secrets must never be printed.

use super::*;

/// Xumm's platform API, used by the sign-request broker. The key and secret stay in the gateway.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct XummConfig {
    #[serde(default = "default_xumm_url")]
    pub api_url: Parsed<url::Url>,
    pub api_key: String,
    pub api_secret: Secret,
}

pub(super) fn default_xumm_url() -> Parsed<url::Url> {
    "https://xumm.app".into()
}

/// `[xapp]`: apps opened inside the Xumm wallet. Xumm opens a protected URL with
/// `?xAppToken=<one-time token>`; the gateway resolves it with `[xumm]`'s key and secret and opens
/// a session for the account the wallet has open.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XappConfig {
    /// `false` switches xApp sessions off while keeping the section.
    pub enabled: bool,
    /// Also accept xApp JWTs (HS256, signed by Xumm with the API secret) as Bearer tokens
    /// (DESIGN.md's name; `bearer`, its first name, is still read).
    #[serde(alias = "bearer")]
    pub accept_jwt: bool,
    /// When set, an xApp JWT's `iss` must be this (Xumm does not document its value).
    pub jwt_issuer: Option<String>,
}

impl Default for XappConfig {
    fn default() -> Self {
        XappConfig { enabled: true, accept_jwt: false, jwt_issuer: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Backend apps behind the gateway, with credentials issued by the gateway (never Xumm's).
    pub app: Vec<BrokerAppConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerAppConfig {
    pub name: String,
    /// Sent by the app as `x-api-key`.
    pub key: Secret,
    /// Sent by the app as `x-api-secret`; only its SHA-256 is kept in memory. May be given as
    /// "sha256:<hex>" so the plain secret never appears in the config at all.
    pub secret: Secret,
    /// Transaction types the app may ask for (empty: any).
    #[serde(default)]
    pub allowed_tx_types: Vec<String>,
    #[serde(default = "default_per_minute")]
    pub max_per_minute: u32,
    /// When set, a payload counts as signed only if Xumm dispatched it to this network
    /// (`response.dispatched_nodetype`, e.g. "MAINNET").
    #[serde(default)]
    pub network: Option<Parsed<Network>>,
    /// Where the gateway POSTs a signed notification when Xumm's webhook reports one of this
    /// app's payloads resolved (`X-Xumm-Gate-Signature`: hex HMAC-SHA256 with `callback_secret`).
    #[serde(default)]
    pub callback_url: Option<Parsed<url::Url>>,
    #[serde(default)]
    pub callback_secret: Option<Secret>,
}

pub(super) fn default_per_minute() -> u32 {
    30
}
