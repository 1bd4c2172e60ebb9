//! Return-URL (`rd`) checking. It must never return anything but a same-site relative path or an
//! absolute http(s) URL whose host is explicitly allowed; everything else becomes "/".

use percent_encoding::percent_decode_str;

/// The safe return URL for a requested `rd`, or "/" when it is not safe.
pub fn safe_return(rd: &str, allowed_hosts: &[String], own_host: Option<&str>) -> String {
    if is_safe(rd, allowed_hosts, own_host) { rd.to_string() } else { "/".to_string() }
}

/// Raw `rd`: no white space or control character may appear unescaped.
fn suspicious(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
}

/// Decoded `rd`: a plain space is a normal part of a path or query (`/my%20page`); control
/// characters, other white space (line separators) and backslashes are not.
fn suspicious_decoded(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || (c.is_whitespace() && c != ' ') || c == '\\')
}

fn is_safe(rd: &str, allowed_hosts: &[String], own_host: Option<&str>) -> bool {
    if rd.is_empty() || rd.len() > 2048 || suspicious(rd) {
        return false;
    }
    // The decoded form must pass too: browsers and upstreams may decode before they navigate.
    let decoded = match percent_decode_str(rd).decode_utf8() {
        Ok(d) => d,
        Err(_) => return false,
    };
    if suspicious_decoded(&decoded) {
        return false;
    }
    if rd.starts_with('/') {
        return !rd.starts_with("//") && !decoded.starts_with("//") && !decoded.starts_with("/\\");
    }
    let Ok(url) = url::Url::parse(rd) else { return false };
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    // Only the canonical form may pass (no tricks the parser silently repaired).
    if !rd.to_ascii_lowercase().starts_with(&format!("{}://", url.scheme())) {
        return false;
    }
    let Some(host) = url.host_str() else { return false };
    own_host.is_some_and(|h| h.eq_ignore_ascii_case(host)) || allowed_hosts.iter().any(|a| host_allowed(a, host))
}

/// An allowed-hosts entry: a host name, or `.example.com` for it and every host under it.
fn host_allowed(entry: &str, host: &str) -> bool {
    match entry.strip_prefix('.') {
        Some(domain) => host.eq_ignore_ascii_case(domain) || crate::config::is_under(host, entry),
        None => entry.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_redirect_tricks_fall_back_to_root() {
        let allowed = vec!["app.example.com".to_string()];
        let ok = ["/", "/x", "/x?y=1&z=%2F", "/a/b#frag", "/my%20page?q=a%20b", "/a%26b", "/search?q=xrp&page=2", "https://app.example.com/x", "http://APP.example.com/", "https://gw.local/x"];
        for rd in ok {
            assert_eq!(safe_return(rd, &allowed, Some("gw.local")), rd, "{rd}");
        }
        let bad = [
            "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "/%2F%2Fevil.com", "/%2fevil.com/..", "/%5Cevil.com",
            "https://evil.com", "http://app.example.com.evil.com/", "https://app.example.com@evil.com/",
            "https://evil.com/app.example.com", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x",
            "/x\ty", "/x\ny", "/\r\nLocation: https://evil.com", "java\tscript:alert(1)", "https:/evil.com",
            "https:evil.com", "HTTPS://evil.com", "ftp://app.example.com/", "evil.com", "", "/%0d%0aSet-Cookie:x",
            "https://аpp.example.com/", "/%E0%A4%A", "/x%09y", "/x%E2%80%A8y", "/%20/%5Cevil.com",
        ];
        for rd in bad {
            assert_eq!(safe_return(rd, &allowed, Some("gw.local")), "/", "{rd:?}");
        }
    }

    #[test]
    fn a_dotted_entry_covers_its_domain_and_every_host_under_it() {
        let allowed = vec![".example.com".to_string()];
        for rd in ["https://example.com/x", "https://a.example.com/", "https://a.b.EXAMPLE.com/x"] {
            assert_eq!(safe_return(rd, &allowed, None), rd);
        }
        for rd in ["https://badexample.com/", "https://example.com.evil.net/", "https://evil.net/.example.com"] {
            assert_eq!(safe_return(rd, &allowed, None), "/", "{rd}");
        }
    }
}
