//! Route table: which rule applies to a request (its normalized path, method and host). It must
//! never match on an unnormalized path, and never let a case trick widen what is public.
//!
//! Order, most specific first: the longest path; for one path, rules naming hosts before those
//! that do not (exact names before `*.` patterns, longer patterns first); then rules naming
//! methods before those that do not; then file order. The first rule that matches decides;
//! `policy.default` decides for requests no rule matches.

use std::sync::Arc;

use crate::account::Account;
use crate::config::{ConfigError, DefaultRule, HostPattern, Network, Parsed, RouteConfig};
use crate::session::{Source, XappAccess};
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
    /// Empty: any source.
    pub allow_sources: Vec<Source>,
    /// Empty: any method. `GET` covers `HEAD`.
    pub methods: Vec<http::Method>,
    /// Empty: any host.
    pub hosts: Vec<HostPattern>,
    /// Refuses every request it matches.
    pub deny: bool,
    /// What the account must hold (`require`).
    pub require: Option<Arc<crate::ledger::Condition>>,
    /// Strict path mode applies (see `path::strict_check`).
    pub strict: bool,
}

impl Route {
    fn matches(&self, t: &Target<'_>) -> bool {
        has_prefix_ignore_case(t.path, &self.path)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m.as_str() == t.method || (t.method == "HEAD" && *m == http::Method::GET)))
            && (self.hosts.is_empty() || t.host.is_some_and(|h| self.hosts.iter().any(|p| p.matches(h))))
    }

    /// Sort key, smallest first: see the module's order.
    fn specificity(&self) -> (std::cmp::Reverse<usize>, u8, std::cmp::Reverse<usize>, u8) {
        let exact = self.hosts.iter().any(|h| matches!(h, HostPattern::Exact(_)));
        let longest_under = self.hosts.iter().map(|h| if let HostPattern::Under(s) = h { s.len() } else { 0 }).max().unwrap_or(0);
        let hosts = if exact { 0 } else if !self.hosts.is_empty() { 1 } else { 2 };
        (std::cmp::Reverse(self.path.len()), hosts, std::cmp::Reverse(longest_under), u8::from(self.methods.is_empty()))
    }
}

/// What a rule is matched on: the normalized path, the method, and the host the request names
/// (None when it names none the gateway believes: then no host rule matches).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub path: &'a str,
    pub method: &'a str,
    pub host: Option<&'a str>,
}

/// The host a request names: HTTP/2's `:authority` (or an absolute-form target), else `Host`.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    uri.authority().map(|a| a.as_str()).or_else(|| headers.get(http::header::HOST)?.to_str().ok())
}

/// `host` without its port and trailing dot (`[::1]:8080` -> `[::1]`, `A.example.com.:443` ->
/// `A.example.com`).
pub fn bare_host(host: &str) -> &str {
    let h = if host.starts_with('[') {
        host.find(']').map_or(host, |i| &host[..=i])
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    h.strip_suffix('.').unwrap_or(h)
}

/// What the table says about one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub route: Option<&'a Route>,
    /// True only when the matching rule (or the default, for none) is public, matched in exact
    /// case.
    pub public: bool,
    /// The matching rule (or the default, for none) refuses everyone.
    pub deny: bool,
}

impl Decision<'_> {
    pub fn label(&self) -> &str {
        self.route.map(|r| &*r.metrics.label).unwrap_or("default")
    }
}

#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>, // most specific first
    /// `server.strict_paths`.
    strict: bool,
    /// `policy.default`.
    default: DefaultRule,
}

impl RouteTable {
    /// From checked `[[route]]`s (an allow list entry that skipped the check is an error here:
    /// dropping it could open the route to everyone).
    pub fn new(cfg: &[RouteConfig], strict: bool, default: DefaultRule) -> Result<RouteTable, ConfigError> {
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
                allow_sources: Parsed::all(&format!("route[{i}].allow_sources"), &r.allow_sources)?,
                methods: Parsed::all(&format!("route[{i}].methods"), &r.methods)?,
                hosts: Parsed::all(&format!("route[{i}].hosts"), &r.hosts)?,
                deny: r.deny,
                require: r.require.as_ref().map(|c| crate::ledger::Condition::new(&format!("route[{i}].require"), c).map(Arc::new)).transpose()?,
                strict: r.strict_path,
            });
        }
        // Stable: equally specific rules keep their file order.
        routes.sort_by_key(Route::specificity);
        Ok(RouteTable { routes, strict, default })
    }

    /// Strict path mode for a normalized path and the rule it matched: Err refuses the request
    /// (400) before the rule is applied. A route's opt-out relaxes the check, never drops it.
    pub fn strict_check(&self, path: &str, d: &Decision<'_>) -> Result<(), crate::path::PathError> {
        let relaxed = !self.strict || d.route.is_some_and(|r| !r.strict);
        crate::path::strict_check(path, relaxed)
    }

    /// The most specific rule for `t`. Paths match regardless of ASCII case, so `/ADMIN` is
    /// caught by an `/admin` rule even when the upstream ignores case; but a public rule only
    /// grants public access in its exact case (a case variant needs sign-in: fail closed).
    pub fn decide(&self, t: &Target<'_>) -> Decision<'_> {
        match self.routes.iter().find(|r| r.matches(t)) {
            Some(r) => Decision { route: Some(r), public: r.public && has_prefix(t.path, &r.path), deny: r.deny },
            None => self.unmatched(),
        }
    }

    /// The decision for a request no rule matches (or whose path is unknown).
    pub fn unmatched(&self) -> Decision<'_> {
        Decision { route: None, public: self.default == DefaultRule::Public, deny: self.default == DefaultRule::Deny }
    }

    /// The upstream headers conditions fill (each client copy of them is removed).
    pub fn granted_headers(&self) -> Vec<http::HeaderName> {
        self.routes.iter().filter_map(|r| r.require.as_ref()).flat_map(|c| c.leaves().into_iter().filter_map(|l| l.header.clone())).collect()
    }

    /// Every rule's conditions (to read them for a user who just signed in).
    pub fn conditions(&self) -> Vec<&Arc<crate::ledger::Condition>> {
        self.routes.iter().filter_map(|r| r.require.as_ref()).collect()
    }

    /// Every rule, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let r = |path: &str, public: bool| rule(&format!("path = {path:?}\npublic = {public}"));
        RouteTable::new(&[r("/public", true), r("/public/secret", false), r("/admin", false)], true, DefaultRule::Authenticated).unwrap()
    }

    fn rule(toml: &str) -> RouteConfig {
        toml::from_str(toml).unwrap()
    }

    fn get(path: &str) -> Target<'_> {
        Target { path, method: "GET", host: None }
    }

    #[test]
    fn longest_rule_wins_and_case_fails_closed() {
        let t = table();
        assert!(t.decide(&get("/public/x")).public);
        assert!(!t.decide(&get("/public/secret/x")).public);
        assert!(!t.decide(&get("/publicity")).public);
        assert!(!t.decide(&get("/PUBLIC/x")).public);
        assert_eq!(t.decide(&get("/ADMIN/x")).label(), "/admin");
        assert_eq!(t.decide(&get("/other")).label(), "default");
    }

    #[test]
    fn hosts_then_methods_then_file_order() {
        let rules = [
            rule("path = \"/\"\npublic = true"),
            rule("path = \"/\"\nmethods = [\"POST\"]\ndeny = true"),
            rule("path = \"/\"\nhosts = [\"*.example.com\"]"),
            rule("path = \"/\"\nhosts = [\"*.a.example.com\"]\npublic = true"),
            rule("path = \"/\"\nhosts = [\"admin.example.com\"]\ndeny = true"),
            rule("path = \"/api\""),
        ];
        let t = RouteTable::new(&rules, true, DefaultRule::Deny).unwrap();
        let at = |path, method, host| {
            let d = t.decide(&Target { path, method, host });
            (d.public, d.deny, d.route.map(|r| r.hosts.len()))
        };
        assert_eq!(at("/x", "GET", Some("ADMIN.example.com.:443")), (false, true, Some(1)));
        assert_eq!(at("/x", "GET", Some("b.a.example.com")), (true, false, Some(1)));
        assert_eq!(at("/x", "GET", Some("a.example.com")), (false, false, Some(1)), "*.a.example.com is not a.example.com");
        assert_eq!(at("/x", "GET", Some("example.com")), (true, false, Some(0)));
        assert_eq!(at("/x", "POST", Some("example.com")), (false, true, Some(0)));
        assert_eq!(at("/x", "HEAD", None), (true, false, Some(0)));
        // A longer path wins over any host rule.
        assert_eq!(t.decide(&Target { path: "/api/x", method: "GET", host: Some("admin.example.com") }).label(), "/api");
        let none = RouteTable::new(&[], true, DefaultRule::Deny).unwrap();
        assert!(none.decide(&get("/x")).deny);
    }

    #[test]
    fn get_rules_cover_head_only() {
        let t = RouteTable::new(&[rule("path = \"/r\"\nmethods = [\"GET\"]\npublic = true")], true, DefaultRule::Authenticated).unwrap();
        assert!(t.decide(&Target { path: "/r", method: "HEAD", host: None }).public);
        assert!(!t.decide(&Target { path: "/r", method: "POST", host: None }).public);
    }

    #[test]
    fn bare_hosts() {
        assert_eq!(bare_host("a.example.com:8080"), "a.example.com");
        assert_eq!(bare_host("a.example.com."), "a.example.com");
        assert_eq!(bare_host("[::1]:443"), "[::1]");
        assert_eq!(bare_host("a.example.com"), "a.example.com");
    }
}
