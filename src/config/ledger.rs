//! `[ledger.NETWORK]` (where the gateway reads the XRP Ledger) and `[[route]] require` (what an
//! account must hold there). It must never accept an endpoint that is not http(s), nor a
//! condition that would quietly check nothing.

use super::*;
use crate::account::Account;

/// A rippled or Clio endpoint: JSON-RPC (`http://`, `https://`) or the WebSocket API (`ws://`,
/// `wss://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerUrl(pub url::Url);

impl FromText for LedgerUrl {
    fn from_text(text: &str) -> Result<LedgerUrl, String> {
        let u = url::Url::parse(text).map_err(|_| format!("invalid URL {text:?}"))?;
        if !matches!(u.scheme(), "http" | "https" | "ws" | "wss") || u.host().is_none() {
            return Err(format!("must be an http(s):// (JSON-RPC) or ws(s):// (WebSocket) URL with a host, got {text:?}"));
        }
        Ok(LedgerUrl(u))
    }
}

/// One network's endpoints (rippled or Clio), tried in order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerNetworkConfig {
    /// `https://xrplcluster.com/`, `wss://s1.ripple.com/`, ...: the next is tried when one fails
    /// or times out.
    pub urls: Vec<Parsed<LedgerUrl>>,
    /// Each call to one endpoint must answer within this.
    #[serde(default = "default_ledger_timeout")]
    pub timeout: Span,
    /// How long a result is used; it is refreshed in the background during its last quarter.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: Span,
}

fn default_ledger_timeout() -> Span {
    "3s".into()
}
fn default_cache_ttl() -> Span {
    "5m".into()
}

/// `[[route]] require`: one condition, or `all` / `any` of several (nested as deep as needed).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionConfig {
    All(Vec<ConditionConfig>),
    Any(Vec<ConditionConfig>),
    /// A trust line to `issuer` in `currency` (3 letters or 40 hex digits), not frozen, holding
    /// at least `min_balance` (a decimal string, compared exactly; default: any line).
    Trustline {
        currency: Parsed<crate::ledger::Currency>,
        issuer: Parsed<Account>,
        #[serde(default = "unset")]
        min_balance: Parsed<Option<bigdecimal::BigDecimal>>,
        /// Send the balance upstream in this header.
        #[serde(default = "unset")]
        header: Parsed<Option<http::HeaderName>>,
    },
    /// At least one NFToken by `issuer` (of `taxon`, when set).
    Nft {
        issuer: Parsed<Account>,
        #[serde(default)]
        taxon: Option<u32>,
    },
    /// At least `min` drops; with `spendable`, above the account's reserve.
    XrpBalance {
        min: u64,
        #[serde(default)]
        spendable: bool,
        #[serde(default = "unset")]
        header: Parsed<Option<http::HeaderName>>,
    },
    /// At least `min` of a Multi-Purpose Token (48 hex digits of issuance id), not locked.
    Mpt {
        issuance_id: String,
        #[serde(default)]
        min: u64,
        #[serde(default = "unset")]
        header: Parsed<Option<http::HeaderName>>,
    },
    /// An accepted, unexpired Credential (XLS-70) from `issuer` of `type` (text; hex-encoded
    /// for the ledger).
    Credential {
        issuer: Parsed<Account>,
        #[serde(rename = "type")]
        credential_type: String,
    },
    /// The user is in `account`'s SignerList.
    SignerOf { account: Parsed<Account> },
    /// Xumm's KYC status for the account is approved (needs `[xumm]`).
    Kyc(bool),
}

impl ConditionConfig {
    /// Every problem, at `key` (`route[0].require.all[1].trustline.currency`).
    pub(super) fn check(&self, key: &str, p: &mut Problems, have_xumm: bool) {
        match self {
            ConditionConfig::All(list) | ConditionConfig::Any(list) => {
                let word = if matches!(self, ConditionConfig::All(_)) { "all" } else { "any" };
                if list.is_empty() {
                    p.add(format!("{key}.{word}"), "lists no condition (an empty list would admit everyone or no one)");
                }
                for (i, c) in list.iter().enumerate() {
                    c.check(&format!("{key}.{word}[{i}]"), p, have_xumm);
                }
            }
            ConditionConfig::Trustline { currency, issuer, min_balance, header } => {
                let k = format!("{key}.trustline");
                p.parsed(&format!("{k}.currency"), currency);
                p.parsed(&format!("{k}.issuer"), issuer);
                p.parsed(&format!("{k}.min_balance"), min_balance);
                p.parsed(&format!("{k}.header"), header);
            }
            ConditionConfig::Nft { issuer, .. } => p.parsed(&format!("{key}.nft.issuer"), issuer),
            ConditionConfig::XrpBalance { header, .. } => p.parsed(&format!("{key}.xrp_balance.header"), header),
            ConditionConfig::Mpt { issuance_id, header, .. } => {
                if issuance_id.len() != 48 || !issuance_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    p.add(format!("{key}.mpt.issuance_id"), format!("must be 48 hex digits, got {issuance_id:?}"));
                }
                p.parsed(&format!("{key}.mpt.header"), header);
            }
            ConditionConfig::Credential { issuer, credential_type } => {
                p.parsed(&format!("{key}.credential.issuer"), issuer);
                if credential_type.is_empty() || credential_type.len() > 64 {
                    p.add(format!("{key}.credential.type"), "must be 1 to 64 bytes (the ledger's limit)");
                }
            }
            ConditionConfig::SignerOf { account } => p.parsed(&format!("{key}.signer_of.account"), account),
            ConditionConfig::Kyc(false) => p.add(format!("{key}.kyc"), "false checks nothing: remove it, or set true"),
            ConditionConfig::Kyc(true) if !have_xumm => p.add(format!("{key}.kyc"), "needs [xumm] api_key and api_secret (the KYC status comes from Xumm's platform API)"),
            ConditionConfig::Kyc(true) => {}
        }
    }

    /// True when any condition reads the XRP Ledger (only `kyc` does not).
    pub fn reads_ledger(&self) -> bool {
        match self {
            ConditionConfig::All(l) | ConditionConfig::Any(l) => l.iter().any(ConditionConfig::reads_ledger),
            ConditionConfig::Kyc(_) => false,
            _ => true,
        }
    }
}

/// An optional value left out: "".
fn unset<T: FromText>() -> Parsed<Option<T>> {
    "".into()
}

/// `[ledger.X]` tables: names are networks, each with at least one http(s) endpoint.
pub(super) fn check_ledgers(ledgers: &std::collections::BTreeMap<String, LedgerNetworkConfig>, p: &mut Problems) {
    for (name, l) in ledgers {
        let key = format!("ledger.{name}");
        if let Err(e) = Network::from_text(name) {
            p.add(&key, e);
        }
        if l.urls.is_empty() {
            p.add(format!("{key}.urls"), "lists no endpoint (a rippled or Clio JSON-RPC URL)");
        }
        p.each(&format!("{key}.urls"), &l.urls);
        p.take(bounded(&format!("{key}.timeout"), &l.timeout, Duration::from_millis(50), Duration::from_secs(60)));
        p.take(bounded(&format!("{key}.cache_ttl"), &l.cache_ttl, Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600)));
    }
}
