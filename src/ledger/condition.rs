//! Route conditions on what an account holds, typed from `[[route]] require`, and their
//! three-valued judgement (held, unmet, unknown). It must never judge from a float, never treat
//! a frozen line, a locked token or an unaccepted or expired credential as held, and never
//! treat "could not read" as "does not hold".

use bigdecimal::BigDecimal;
use http::{HeaderName, HeaderValue};

use super::{Fact, FactKey};
use crate::account::Account;
use crate::config::{ConditionConfig, ConfigError, FromText};

/// Seconds between the Unix epoch and the Ripple epoch (2000-01-01).
const RIPPLE_EPOCH: u64 = 946_684_800;

/// A currency code as the ledger's JSON writes it: three characters for a standard code, else
/// 40 upper-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    fn parse(text: &str) -> Result<Currency, String> {
        let std_char = |c: char| c.is_ascii_alphanumeric() || "?!@#$%^&*<>(){}[]|".contains(c);
        if text.len() == 3 && text.chars().all(std_char) {
            if text == "XRP" {
                return Err("XRP is not an issued currency (use xrp_balance)".into());
            }
            return Ok(Currency(text.to_string()));
        }
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = text.to_ascii_uppercase();
            if hex.chars().all(|c| c == '0') {
                return Err("the all-zero code is XRP's, not an issued currency".into());
            }
            // A standard code written in hex (zeros but for three ASCII bytes at 12..15): the
            // ledger's JSON shows it as its three letters.
            let bytes: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
            if bytes[0] == 0 && bytes.iter().enumerate().all(|(i, b)| (12..15).contains(&i) || *b == 0) {
                if let Ok(code) = std::str::from_utf8(&bytes[12..15]) {
                    return Currency::parse(code);
                }
            }
            return Ok(Currency(hex));
        }
        Err(format!("must be a 3-character code like \"USD\" or 40 hex digits, got {text:?}"))
    }

    /// For people: the code, or the ASCII a hex code spells when it spells one.
    pub fn display(&self) -> String {
        if self.0.len() == 3 {
            return self.0.clone();
        }
        let bytes: Vec<u8> = (0..20).filter_map(|i| u8::from_str_radix(&self.0[2 * i..2 * i + 2], 16).ok()).collect();
        let text: Vec<u8> = bytes.iter().copied().take_while(|b| *b != 0).collect();
        if !text.is_empty() && bytes[text.len()..].iter().all(|b| *b == 0) && text.iter().all(|b| b.is_ascii_graphic()) {
            String::from_utf8(text).unwrap_or_else(|_| self.0.clone())
        } else {
            self.0.clone()
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `trustline.currency`.
impl FromText for Currency {
    fn from_text(text: &str) -> Result<Currency, String> {
        Currency::parse(text)
    }
}

/// `trustline.min_balance`.
impl FromText for BigDecimal {
    fn from_text(text: &str) -> Result<BigDecimal, String> {
        parse_amount(text).ok_or_else(|| format!("must be a decimal number like \"100\" or \"0.5\", got {text:?}"))
    }
}

/// A decimal amount as the ledger writes it ("100", "0.5", "1.5e3", "9999999999999999e-14"),
/// exactly; None for anything else (and for exponents no ledger amount has).
pub fn parse_amount(text: &str) -> Option<BigDecimal> {
    let t = text.trim();
    if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) {
        return None;
    }
    if let Some((_, exp)) = t.split_once(['e', 'E']) {
        if exp.parse::<i32>().ok().is_none_or(|e| !(-120..=120).contains(&e)) {
            return None;
        }
    }
    t.parse::<BigDecimal>().ok()
}

/// One condition of a route.
#[derive(Debug)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Leaf(Leaf),
}

#[derive(Debug, Clone)]
pub struct Leaf {
    pub test: Test,
    /// The upstream header that receives what was checked (balances), when configured.
    pub header: Option<HeaderName>,
}

#[derive(Debug, Clone)]
pub enum Test {
    Trustline { currency: Currency, issuer: Account, min: Option<BigDecimal>, min_text: String },
    Nft { issuer: Account, taxon: Option<u32> },
    XrpBalance { min: u64, spendable: bool },
    Mpt { issuance: String, min: u64 },
    Credential { issuer: Account, ctype: String, ctype_text: String },
    SignerOf { account: Account },
    Kyc,
}

/// The judgement of one condition (or tree) for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Held; the headers for the upstream.
    Held(Vec<(HeaderName, HeaderValue)>),
    /// Not held: which condition, for the user and the operator.
    Unmet(String),
    /// The data could not be read.
    Unknown,
}

impl Condition {
    /// From a checked `require` (a value that skipped the check is an error naming `key`).
    pub fn new(key: &str, c: &ConditionConfig) -> Result<Condition, ConfigError> {
        let header = |k: &str, h: &crate::config::Parsed<Option<HeaderName>>| h.checked(&format!("{key}.{k}")).cloned();
        let leaf = |test, header| Ok(Condition::Leaf(Leaf { test, header }));
        match c {
            ConditionConfig::All(l) => Ok(Condition::All(l.iter().enumerate().map(|(i, c)| Condition::new(&format!("{key}.all[{i}]"), c)).collect::<Result<_, _>>()?)),
            ConditionConfig::Any(l) => Ok(Condition::Any(l.iter().enumerate().map(|(i, c)| Condition::new(&format!("{key}.any[{i}]"), c)).collect::<Result<_, _>>()?)),
            ConditionConfig::Trustline { currency, issuer, min_balance, header: h } => {
                let currency = currency.checked(&format!("{key}.trustline.currency"))?.clone();
                let min = min_balance.checked(&format!("{key}.trustline.min_balance"))?.clone();
                let issuer = issuer.checked(&format!("{key}.trustline.issuer"))?.clone();
                leaf(Test::Trustline { currency, issuer, min, min_text: min_balance.text().to_string() }, header("trustline.header", h)?)
            }
            ConditionConfig::Nft { issuer, taxon } => leaf(Test::Nft { issuer: issuer.checked(&format!("{key}.nft.issuer"))?.clone(), taxon: *taxon }, None),
            ConditionConfig::XrpBalance { min, spendable, header: h } => leaf(Test::XrpBalance { min: *min, spendable: *spendable }, header("xrp_balance.header", h)?),
            ConditionConfig::Mpt { issuance_id, min, header: h } => leaf(Test::Mpt { issuance: issuance_id.to_ascii_uppercase(), min: *min }, header("mpt.header", h)?),
            ConditionConfig::Credential { issuer, credential_type } => {
                let ctype = credential_type.bytes().map(|b| format!("{b:02X}")).collect();
                leaf(Test::Credential { issuer: issuer.checked(&format!("{key}.credential.issuer"))?.clone(), ctype, ctype_text: credential_type.clone() }, None)
            }
            ConditionConfig::SignerOf { account } => leaf(Test::SignerOf { account: account.checked(&format!("{key}.signer_of.account"))?.clone() }, None),
            ConditionConfig::Kyc(_) => leaf(Test::Kyc, None),
        }
    }

    /// Every leaf, depth first.
    pub fn leaves(&self) -> Vec<&Leaf> {
        match self {
            Condition::All(l) | Condition::Any(l) => l.iter().flat_map(Condition::leaves).collect(),
            Condition::Leaf(leaf) => vec![leaf],
        }
    }

    /// The judgement, from each leaf's as `leaf` gives it; None as soon as `leaf` gives None
    /// (a fact not at hand). One unmet condition decides `all` whatever could not be read; one
    /// held decides `any`.
    pub fn judge_with<F: FnMut(&Leaf) -> Option<Judged>>(&self, leaf: &mut F) -> Option<Judged> {
        match self {
            Condition::Leaf(l) => leaf(l),
            Condition::All(list) => {
                let (mut headers, mut unknown, mut unmet) = (Vec::new(), false, None);
                for c in list {
                    match c.judge_with(leaf)? {
                        Judged::Held(h) => headers.extend(h),
                        Judged::Unknown => unknown = true,
                        Judged::Unmet(why) => {
                            unmet.get_or_insert(why);
                        }
                    }
                }
                Some(match unmet {
                    Some(why) => Judged::Unmet(why),
                    None if unknown => Judged::Unknown,
                    None => Judged::Held(headers),
                })
            }
            Condition::Any(list) => {
                let (mut unknown, mut whys) = (false, Vec::new());
                for c in list {
                    match c.judge_with(leaf)? {
                        Judged::Held(h) => return Some(Judged::Held(h)),
                        Judged::Unknown => unknown = true,
                        Judged::Unmet(why) => whys.push(why),
                    }
                }
                Some(if unknown { Judged::Unknown } else { Judged::Unmet(format!("one of: {}", whys.join("; or "))) })
            }
        }
    }
}

impl Leaf {
    /// What the leaf reads for `account`, and, for a second fact (the reserves), that too.
    pub fn facts(&self, account: &Account) -> (FactKey, Option<FactKey>) {
        match &self.test {
            Test::Trustline { issuer, .. } => (FactKey::Lines { account: account.clone(), issuer: issuer.clone() }, None),
            Test::Nft { .. } => (FactKey::Nfts { account: account.clone() }, None),
            Test::XrpBalance { spendable, .. } => (FactKey::Root { account: account.clone() }, spendable.then_some(FactKey::Fees)),
            Test::Mpt { issuance, .. } => (FactKey::MpToken { account: account.clone(), issuance: issuance.clone() }, None),
            Test::Credential { issuer, ctype, .. } => (FactKey::Credential { subject: account.clone(), issuer: issuer.clone(), ctype: ctype.clone() }, None),
            Test::SignerOf { account: of } => (FactKey::Signers { of: of.clone() }, None),
            Test::Kyc => (FactKey::Kyc { account: account.clone() }, None),
        }
    }

    /// True for a condition Xumm answers rather than the ledger.
    pub fn is_kyc(&self) -> bool {
        matches!(self.test, Test::Kyc)
    }

    /// For people: what the condition asks.
    pub fn describe(&self) -> String {
        match &self.test {
            Test::Trustline { currency, issuer, min_text, .. } if min_text.is_empty() => format!("a {} trust line to {issuer}", currency.display()),
            Test::Trustline { currency, issuer, min_text, .. } => format!("at least {min_text} {} from {issuer}", currency.display()),
            Test::Nft { issuer, taxon: Some(t) } => format!("an NFT by {issuer} of taxon {t}"),
            Test::Nft { issuer, taxon: None } => format!("an NFT by {issuer}"),
            Test::XrpBalance { min, spendable: true } => format!("at least {min} drops of XRP above the reserve"),
            Test::XrpBalance { min, .. } => format!("at least {min} drops of XRP"),
            Test::Mpt { issuance, min } => format!("at least {min} of MPT {issuance}"),
            Test::Credential { issuer, ctype_text, .. } => format!("an accepted, unexpired {ctype_text:?} credential from {issuer}"),
            Test::SignerOf { account } => format!("a signer of {account}"),
            Test::Kyc => "a KYC-approved Xumm account".into(),
        }
    }

    /// The judgement for `account` from the facts (`second`: the reserves, for spendable XRP).
    pub fn judge(&self, account: &Account, fact: &Fact, second: Option<&Fact>) -> Judged {
        let unmet = |why: String| Judged::Unmet(format!("{} ({why})", self.describe()));
        let held = |value: Option<&str>| Judged::Held(self.header.iter().filter_map(|h| Some((h.clone(), HeaderValue::from_str(value?).ok()?))).collect());
        match (&self.test, fact) {
            (Test::Trustline { currency, min, .. }, Fact::Lines(lines)) => match lines.iter().find(|l| l.currency == currency.as_str()) {
                None => unmet("no such trust line".into()),
                Some(l) if l.frozen => unmet("the trust line is frozen".into()),
                Some(l) if min.as_ref().is_some_and(|m| l.balance < *m) => unmet(format!("holds {}", l.text)),
                Some(l) if l.balance < BigDecimal::from(0) => unmet(format!("holds {}", l.text)),
                Some(l) => held(Some(&l.text)),
            },
            (Test::Nft { issuer, taxon }, Fact::Nfts(held_nfts)) => {
                if held_nfts.iter().any(|(i, t)| i == issuer.as_str() && taxon.is_none_or(|x| x == *t)) { held(None) } else { unmet("none held".into()) }
            }
            (Test::XrpBalance { min, spendable }, Fact::Root(root)) => {
                let (balance, owners) = root.unwrap_or((0, 0));
                let usable = match (spendable, second) {
                    (false, _) => balance,
                    (true, Some(Fact::Fees(base, inc))) => balance.saturating_sub(base.saturating_add(owners.saturating_mul(*inc))),
                    (true, _) => return Judged::Unknown,
                };
                if usable >= *min { held(Some(&usable.to_string())) } else { unmet(format!("has {usable}")) }
            }
            (Test::Mpt { min, .. }, Fact::MpToken(m)) => match m {
                None => unmet("none held".into()),
                Some((_, true)) => unmet("the holding is locked".into()),
                Some((amount, _)) if amount < min => unmet(format!("holds {amount}")),
                Some((amount, _)) => held(Some(&amount.to_string())),
            },
            (Test::Credential { .. }, Fact::Credential(c)) => {
                let now = crate::session::now().saturating_sub(RIPPLE_EPOCH);
                match c {
                    None => unmet("none issued".into()),
                    Some((false, _)) => unmet("not accepted yet".into()),
                    Some((_, Some(exp))) if *exp <= now => unmet("expired".into()),
                    Some(_) => held(None),
                }
            }
            (Test::SignerOf { .. }, Fact::Signers(list)) => {
                if list.iter().any(|a| a == account.as_str()) { held(None) } else { unmet("not in its signer list".into()) }
            }
            (Test::Kyc, Fact::Kyc(true)) => held(None),
            (Test::Kyc, Fact::Kyc(false)) => unmet("not approved".into()),
            _ => Judged::Unknown,
        }
    }
}
