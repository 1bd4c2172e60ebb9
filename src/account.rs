//! XRPL classic addresses (r-addresses). It must never accept a string that is not a checksummed
//! classic address: the account is the user's identity everywhere downstream.

use sha2::{Digest, Sha256};

/// A validated classic r-address. Holding one proves the checksum was checked.
/// Deserializing checks it again: a stored record can never smuggle in an unchecked account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Account(String);

impl TryFrom<String> for Account {
    type Error = AccountError;
    fn try_from(s: String) -> Result<Account, AccountError> {
        Account::parse(&s)
    }
}

impl From<Account> for String {
    fn from(a: Account) -> String {
        a.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("not base58 (Ripple alphabet)")]
    Encoding,
    #[error("wrong length or version")]
    Shape,
    #[error("checksum mismatch")]
    Checksum,
}

impl Account {
    pub fn parse(s: &str) -> Result<Account, AccountError> {
        if !(25..=35).contains(&s.len()) || !s.starts_with('r') {
            return Err(AccountError::Shape);
        }
        let bytes = bs58::decode(s)
            .with_alphabet(bs58::Alphabet::RIPPLE)
            .into_vec()
            .map_err(|_| AccountError::Encoding)?;
        if bytes.len() != 25 || bytes[0] != 0 {
            return Err(AccountError::Shape);
        }
        let check = Sha256::digest(Sha256::digest(&bytes[..21]));
        if check[..4] != bytes[21..] {
            return Err(AccountError::Checksum);
        }
        Ok(Account(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_addresses() {
        for a in ["rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "rrrrrrrrrrrrrrrrrrrrrhoLvTp", "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA"] {
            assert!(Account::parse(a).is_ok(), "{a}");
        }
        assert_eq!(Account::parse("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTj"), Err(AccountError::Checksum));
        assert_eq!(Account::parse("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyT0"), Err(AccountError::Encoding));
        assert_eq!(Account::parse("xHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"), Err(AccountError::Shape));
        assert!(Account::parse("r\r\nX-Evil: 1aaaaaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(Account::parse("").is_err());
    }
}
