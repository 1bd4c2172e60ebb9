//! Route table: which rule applies to a normalized path. It must never match on an unnormalized
//! path, and never let a case trick widen what is public.

use std::sync::Arc;

use crate::account::Account;
use crate::config::{ConfigError, Network, Parsed, RouteConfig};
use crate::session::XappAccess;
use crate::path::{has_prefix, has_prefix_ignore_case};

/// The r-addresses of an `allow_accounts_file`: one a line, `#` starts a comment, blank lines
/// skipped; a line that is not an r-address is an error naming its line (never skipped: a typo
/// must not silently lock someone out, nor a truncated file go unnoticed).
pub fn accounts_file(key: &str, path: &str) -> Result<Vec<Account>, ConfigError> {
    let bytes = crate::config::read_file(key, path)?;
    let text = String::from_utf8(bytes).map_err(|_| crate::config::err(key, format!("{path} is not UTF-8 text")))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let a = Account::parse(entry).map_err(|_| crate::config::err(key, format!("{path} line {}: {entry:?} is not a valid XRPL r-address", n + 1)))?;
        out.push(a);
    }
    Ok(out)
}

#[derive(Debug)]
pub struct Route {
    pub path: String,
    /// Metric and log label, with the route's counters.
    pub metrics: Arc<crate::metrics::RouteMetrics>,
    pub public: bool,
    pub allow_accounts: Vec<Account>,
    /// True when the route names its accounts (`allow_accounts` or `allow_accounts_file`):
    /// then only those pass, even when the list is empty.
    pub accounts_listed: bool,
    /// Client-certificate subjects the connection must have presented (empty: no such rule).
    pub allow_client_subjects: Vec<String>,
    pub allow_networks: Vec<Network>,
    pub allow_account_access: Vec<XappAccess>,
    /// Strict path mode applies (see `path::strict_check`).
    pub strict: bool,
}

/// What the table says about one request path.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub route: Option<&'a Route>,
    /// True only when the matching rule is public and matched in exact case.
    pub public: bool,
}

impl Decision<'_> {
    pub fn label(&self) -> &str {
        self.route.map(|r| &*r.metrics.label).unwrap_or("default")
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>, // longest path first
    /// `server.strict_paths`.
    strict: bool,
}

impl RouteTable {
    /// From checked `[[route]]`s (an allow list entry that skipped the check is an error here:
    /// dropping it could open the route to everyone).
    pub fn new(cfg: &[RouteConfig], strict: bool) -> Result<RouteTable, ConfigError> {
        let mut routes = Vec::with_capacity(cfg.len());
        for (i, r) in cfg.iter().enumerate() {
            let mut allow_accounts = Parsed::all(&format!("route[{i}].allow_accounts"), &r.allow_accounts)?;
            if !r.allow_accounts_file.is_empty() {
                allow_accounts.extend(accounts_file(&format!("route[{i}].allow_accounts_file"), &r.allow_accounts_file)?);
            }
            routes.push(Route {
                path: r.path.trim_end_matches('/').to_string(),
                metrics: Arc::new(crate::metrics::RouteMetrics::new(&r.path)),
                public: r.public,
                accounts_listed: !allow_accounts.is_empty() || !r.allow_accounts_file.is_empty(),
                allow_client_subjects: r.allow_client_subjects.clone(),
                allow_accounts,
                allow_networks: Parsed::all(&format!("route[{i}].allow_networks"), &r.allow_networks)?,
                allow_account_access: Parsed::all(&format!("route[{i}].allow_account_access"), &r.allow_account_access)?,
                strict: r.strict_path,
            });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Ok(RouteTable { routes, strict })
    }

    /// Strict path mode for a normalized path and the rule it matched: Err refuses the request
    /// (400) before the rule is applied. A route's opt-out relaxes the check, never drops it.
    pub fn strict_check(&self, path: &str, d: &Decision<'_>) -> Result<(), crate::path::PathError> {
        let relaxed = !self.strict || d.route.is_some_and(|r| !r.strict);
        crate::path::strict_check(path, relaxed)
    }

    /// The most specific rule for `path`. Rules match regardless of ASCII case, so `/ADMIN` is
    /// caught by an `/admin` rule even when the upstream ignores case; but a public rule only
    /// grants public access in its exact case (a case variant needs sign-in: fail closed).
    pub fn decide(&self, path: &str) -> Decision<'_> {
        match self.routes.iter().find(|r| has_prefix_ignore_case(path, &r.path)) {
            Some(r) => Decision { route: Some(r), public: r.public && has_prefix(path, &r.path) },
            None => Decision { route: None, public: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let r = |path: &str, public: bool| RouteConfig {
            path: path.into(),
            public,
            allow_accounts: vec![],
            allow_accounts_file: String::new(),
            allow_client_subjects: vec![],
            allow_networks: vec![],
            allow_account_access: vec![],
            strict_path: true,
        };
        RouteTable::new(&[r("/public", true), r("/public/secret", false), r("/admin", false)], true).unwrap()
    }

    #[test]
    fn longest_rule_wins_and_case_fails_closed() {
        let t = table();
        assert!(t.decide("/public/x").public);
        assert!(!t.decide("/public/secret/x").public);
        assert!(!t.decide("/publicity").public);
        assert!(!t.decide("/PUBLIC/x").public);
        assert_eq!(t.decide("/ADMIN/x").label(), "/admin");
        assert_eq!(t.decide("/other").label(), "default");
    }
}
