//! `xumm-gate policy explain`: which rule decides a request and why each of its conditions holds
//! or fails for an account (reading the ledger), for operators. It must never decide anything
//! itself: it asks the route table and the ledger the gateway uses, and only prints.

use std::fmt::Write;
use std::sync::Arc;

use crate::account::Account;
use crate::config::Config;
use crate::ledger::Judged;
use crate::policy::{RouteTable, Target};

/// What to explain: a request as the gateway would see it, by a signed-in `account` on `network`.
pub struct Question<'a> {
    pub account: &'a str,
    pub network: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    pub host: Option<&'a str>,
}

/// The explanation, as lines for a terminal; Err for a question that cannot be asked.
pub async fn explain(config: &Config, q: &Question<'_>) -> Result<String, String> {
    let account = Account::parse(q.account).map_err(|_| format!("{:?} is not a valid XRPL r-address", q.account))?;
    let path = crate::path::normalize(q.path).map_err(|e| format!("path {:?}: {e}", q.path))?;
    let routes = RouteTable::new(&config.routes, config.server.strict_paths, config.policy.default.get()).map_err(|e| e.to_string())?;
    let platform = config.xumm.as_ref().map(|x| Arc::new(crate::xumm::client::PlatformClient::new(x)));
    let ledger = Arc::new(crate::ledger::Ledger::new(&config.ledger, Arc::new(crate::ledger::Cache::new(1000)), platform, None).map_err(|e| e.to_string())?);
    let method = q.method.to_ascii_uppercase();
    let d = routes.decide(&Target { path: &path, method: &method, host: q.host });
    let mut out = String::new();
    let _ = writeln!(out, "request: {method} {path}{}", q.host.map(|h| format!(" (host {h})")).unwrap_or_default());
    let _ = writeln!(out, "as:      {account} on {}", q.network);
    let Some(r) = d.route else {
        let default = match config.policy.default.get() {
            crate::config::DefaultRule::Authenticated => "authenticated",
            crate::config::DefaultRule::Public => "public",
            crate::config::DefaultRule::Deny => "deny",
        };
        let verdict = if d.deny { "refused (403 denied)" } else if d.public { "passes without sign-in" } else { "passes once signed in" };
        let _ = writeln!(out, "rule:    none matches; [policy] default = {default:?}\nverdict: {verdict}");
        return Ok(out);
    };
    let scope = |v: Vec<String>| if v.is_empty() { "any".to_string() } else { v.join(", ") };
    let _ = writeln!(
        out,
        "rule:    [[route]] path = {:?} (hosts: {}; methods: {})",
        if r.path.is_empty() { "/" } else { &r.path },
        scope(r.hosts.iter().map(|h| match h {
            crate::config::HostPattern::Exact(e) => e.clone(),
            crate::config::HostPattern::Under(suffix) => format!("*{suffix}"),
        }).collect()),
        scope(r.methods.iter().map(|m| m.to_string()).collect())
    );
    if d.deny {
        let _ = writeln!(out, "verdict: refused (403 denied): a deny rule");
        return Ok(out);
    }
    if d.public {
        let _ = writeln!(out, "verdict: passes without sign-in (public)");
        return Ok(out);
    }
    let mut refused = Vec::new();
    let mut check = |what: &str, ok: bool| {
        let _ = writeln!(out, "  [{}] {what}", if ok { "held " } else { "unmet" });
        if !ok {
            refused.push(what.to_string());
        }
    };
    if r.accounts_listed {
        check(&format!("the account is listed (allow_accounts{})", if r.allow_accounts.is_empty() { ": the list is empty" } else { "" }), r.allow_accounts.contains(&account));
    }
    if !r.allow_networks.is_empty() {
        check(&format!("the network is one of {:?}", r.allow_networks.iter().map(|n| n.as_str()).collect::<Vec<_>>()), r.allow_networks.iter().any(|n| n.matches(q.network)));
    }
    if !r.allow_client_subjects.is_empty() {
        let _ = writeln!(out, "  [note ] the connection must present a client certificate of {:?}", r.allow_client_subjects);
    }
    if !r.allow_sources.is_empty() || !r.allow_account_access.is_empty() {
        let _ = writeln!(out, "  [note ] the identity's source must be one of {:?} and its xApp access one of {:?}", r.allow_sources, r.allow_account_access);
    }
    let mut unavailable = false;
    if let Some(cond) = &r.require {
        let explained = ledger.explain(cond, &account, Some(q.network)).await;
        let _ = writeln!(out, "require:");
        for (what, judged) in &explained.leaves {
            let _ = match judged {
                Judged::Held(h) if h.is_empty() => writeln!(out, "  [held ] {what}"),
                Judged::Held(h) => writeln!(out, "  [held ] {what} ({})", h.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?"))).collect::<Vec<_>>().join(", ")),
                Judged::Unmet(why) => writeln!(out, "  [unmet] {why}"),
                Judged::Unknown => writeln!(out, "  [?    ] {what}: could not be read (see the warnings above)"),
            };
        }
        match explained.overall {
            Judged::Unmet(why) => refused.push(why),
            Judged::Unknown => unavailable = true,
            Judged::Held(_) => {}
        }
    }
    let _ = if let Some(first) = refused.first() {
        writeln!(out, "verdict: refused (403): {first}")
    } else if unavailable {
        writeln!(out, "verdict: unavailable (503): a condition could not be read")
    } else {
        writeln!(out, "verdict: passes")
    };
    Ok(out)
}
