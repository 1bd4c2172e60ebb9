//! `[[upstream]]`, `[[route]]` and `[cors]`: where requests go and who may pass. It must never
//! accept an unnormalized rule path.

use super::*;

/// `[pages]`: the look of the pages the gateway shows people (sign-in, QR code, errors).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    /// The app's name, shown at the top of every page and in its title.
    pub title: String,
    /// An http(s) URL of a logo, or a file (SVG, PNG, JPEG or WebP, at most 256 KiB) that the
    /// gateway serves itself at `{prefix}/logo` (no external asset).
    pub logo: String,
    /// Buttons, links and focus outlines, as `#rgb` or `#rrggbb`.
    pub accent: String,
}

/// Cross-origin callers (SPAs on another origin calling with Bearer tokens or cookies).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`) allowed to call; credentials only for these.
    pub allowed_origins: Vec<Parsed<Origin>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Path prefix this upstream serves; the longest matching prefix wins.
    pub path: String,
    /// Base URL, http:// or https://.
    pub url: Parsed<UpstreamUrl>,
    /// Remove `path` from the request path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// `aud` of the X-Xumm-Assertion sent to this upstream (default: its URL).
    #[serde(default)]
    pub assertion_audience: Option<String>,
    /// The `[[broker.app]]` this upstream is: its requests carry an X-Xumm-User-Token handle
    /// that only that app can use as `user_token`.
    #[serde(default)]
    pub broker_app: Option<String>,
    /// https:// upstreams: PEM file of the CAs its certificate must chain to; "" trusts the
    /// bundled web PKI roots (Mozilla's, so a distroless image needs no system store).
    #[serde(default)]
    pub ca_file: String,
    /// https:// upstreams: PEM files of the gateway's client certificate and key (mTLS).
    #[serde(default)]
    pub client_cert: String,
    #[serde(default)]
    pub client_key: String,
    /// The name sent as SNI and verified in the upstream's certificate; "" is the URL's host.
    #[serde(default)]
    pub tls_server_name: String,
    /// The Host header upstream requests carry; "" is the URL's host and port.
    #[serde(default)]
    pub host_header: String,
    /// https:// upstreams: offer HTTP/2 by ALPN (used when the upstream picks it).
    #[serde(default = "yes")]
    pub http2: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub allow_accounts: Vec<Parsed<crate::account::Account>>,
    /// More accounts, one r-address a line (`#` comments), re-read when the file changes. Set,
    /// it restricts the route even when it lists nobody (an emptied file opens nothing).
    #[serde(default)]
    pub allow_accounts_file: String,
    /// Only connections that presented a verified client certificate with one of these subjects
    /// (as the gateway writes them in X-Client-Cert-Subject, e.g. "CN=ops, O=Example"); on a
    /// public route, the certificate alone lets them in.
    #[serde(default)]
    pub allow_client_subjects: Vec<String>,
    #[serde(default)]
    pub allow_networks: Vec<Parsed<Network>>,
    /// How the user must hold the account: `["FULL"]` refuses xApp sessions of an account the
    /// wallet only watches (READONLY). Sign-in and Bearer sessions count as FULL: the user
    /// signed with the account's key.
    #[serde(default)]
    pub allow_account_access: Vec<Parsed<crate::session::XappAccess>>,
    /// Who established the identity: `session` (signed in through the gateway), `bearer` (a JWT
    /// from a native app or SPA), `xapp` (opened in the wallet). Empty: any.
    #[serde(default)]
    pub allow_sources: Vec<Parsed<crate::session::Source>>,
    /// The rule matches only these methods (upper case; `GET` covers `HEAD`). Empty: any.
    #[serde(default)]
    pub methods: Vec<Parsed<http::Method>>,
    /// The rule matches only requests for these hosts (`app.example.com`, or `*.example.com`
    /// for every name under it). Empty: any host.
    #[serde(default)]
    pub hosts: Vec<Parsed<HostPattern>>,
    /// What the account must hold on the XRP Ledger (or Xumm's KYC status), checked on the
    /// session's own network: `{ trustline = {...} }`, `{ all = [...] }`, `{ any = [...] }`.
    #[serde(default)]
    pub require: Option<super::ConditionConfig>,
    /// Refuse every request the rule matches (403), signed in or not.
    #[serde(default)]
    pub deny: bool,
    /// Strict path mode for this route (default true). `false` lets `;` matrix parameters
    /// through (never on a dot segment) and skips the trailing dot/space and encoded-'%' checks.
    #[serde(default = "yes")]
    pub strict_path: bool,
}

pub(super) fn yes() -> bool {
    true
}

impl RouteConfig {
    /// True when `self` and `o` match the same hosts and methods (in any order).
    pub(super) fn same_scope(&self, o: &RouteConfig) -> bool {
        fn set<T>(v: &[Parsed<T>]) -> std::collections::BTreeSet<String> {
            v.iter().map(|x| x.text().to_ascii_lowercase()).collect()
        }
        set(&self.hosts) == set(&o.hosts) && set(&self.methods) == set(&o.methods)
    }
}

/// `[policy]`: what the route table does with requests no rule matches.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `authenticated` (sign-in required, any account: the default), `public` (anyone) or
    /// `deny` (403 for everyone: every open path must be a `[[route]]`).
    pub default: Choice<DefaultRule>,
}
