//! Request-path normalization: the one place that decides which path policy and upstreams see.
//! It must never guess: anything ambiguous (encoded separators, backslashes, `..` above the root,
//! broken percent-encoding) is refused so that policy and upstream can never disagree on a path.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path climbs above the root with '..'")]
    Traversal,
    #[error("path has invalid percent-encoding")]
    BadEncoding,
    #[error("path has a ';' parameter (strict path mode)")]
    Parameter,
    #[error("path segment ends with '.' (strict path mode)")]
    TrailingDot,
    #[error("path segment ends with white space (strict path mode)")]
    TrailingSpace,
    #[error("path has an encoded '%' (double encoding, strict path mode)")]
    DoubleEncoding,
    #[error("path has an encoded control character (strict path mode)")]
    Control,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Returns true when `path` is already in normal form, so the hot path can skip the rebuild.
pub fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'%' | b'\\' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // "/." or "/.." as a whole segment
                let rest = &b[i..];
                let seg_end = rest.iter().position(|&x| x == b'/').unwrap_or(rest.len());
                if seg_end == 1 || (seg_end == 2 && rest[1] == b'.') {
                    return false;
                }
            }
            _ => {}
        }
        prev = c;
    }
    true
}

/// Normalizes a request path (no query): decodes percent-encoded unreserved characters, upper-cases
/// the remaining escapes, resolves `.` and `..`, folds duplicate slashes, keeps a trailing slash.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path) {
        return Ok(path.to_string());
    }
    let mut segments: Vec<String> = Vec::new();
    let mut trailing = false;
    for raw in path[1..].split('/') {
        trailing = false;
        if raw.is_empty() {
            trailing = true;
            continue;
        }
        let seg = decode_segment(raw)?;
        match seg.as_str() {
            "." => trailing = true,
            ".." => {
                segments.pop().ok_or(PathError::Traversal)?;
                trailing = true;
            }
            _ => segments.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

fn decode_segment(raw: &str) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (h, l) = match (b.get(i + 1).and_then(|&x| hex(x)), b.get(i + 2).and_then(|&x| hex(x))) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::BadEncoding),
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if unreserved(v) {
                    out.push(v as char);
                } else {
                    let _ = write!(out, "%{v:02X}");
                }
                i += 3;
            }
            c => {
                // hyper only hands us visible ASCII here; anything else is copied as-is.
                out.push(c as char);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Strict path mode: refuses a normalized path that some upstream frameworks read as another
/// path than the one rules matched: servlet `;` parameters (`/public/..;/admin`), a segment
/// ending in a dot or white space (dropped by Windows servers and some routers), an encoded `%`
/// (read twice by double-decoding upstreams), encoded control characters; the way Spring
/// Security's strict firewall does. `relaxed` (a route's `strict_path = false`, for apps that
/// use matrix parameters) keeps only the check no upstream needs: a `;` on a dot segment
/// (`..;x`, `.;x`), which servlet containers still resolve as `..` / `.`.
pub fn strict_check(path: &str, relaxed: bool) -> Result<(), PathError> {
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let (name, params) = match seg.find(';').or_else(|| find_ignore_case(seg, "%3B")) {
            Some(i) => (&seg[..i], true),
            None => (seg, false),
        };
        if params && (!relaxed || name == "." || name == ".." || find_ignore_case(name, "%2E").is_some()) {
            return Err(PathError::Parameter);
        }
        if relaxed {
            continue;
        }
        // Strict from here on: a segment with a parameter was refused above, so `name` is the
        // whole segment.
        let upper = seg.to_ascii_uppercase();
        if upper.contains("%25") {
            return Err(PathError::DoubleEncoding);
        }
        if upper.match_indices('%').any(|(i, _)| upper.get(i + 1..i + 3).is_some_and(|h| h.as_bytes()[0] < b'2' || h == "7F")) {
            return Err(PathError::Control);
        }
        if seg.ends_with('.') {
            return Err(PathError::TrailingDot);
        }
        if upper.ends_with("%20") {
            return Err(PathError::TrailingSpace);
        }
    }
    Ok(())
}

/// Strict mode's verdict for a path that `is_normal` (no '%'): only ';' and trailing dots can
/// be there, so the fast path checks in one pass without allocating.
pub fn strict_ok_normal(path: &str) -> bool {
    !path.contains(';') && !path.split('/').any(|s| s.ends_with('.'))
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Segment-wise prefix match: `/public` matches `/public` and `/public/x`, never `/publicity`.
/// `/` matches everything.
pub fn has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()] == *prefix.as_bytes()
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// As `has_prefix`, ignoring ASCII case (for rules that must also catch `/ADMIN` on a
/// case-insensitive upstream).
pub fn has_prefix_ignore_case(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/%7Euser", "/~user"),
            ("/%41dmin", "/Admin"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a..b", "/a..b"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("/public%2Fadmin", PathError::EncodedSeparator),
            ("/public%2fadmin", PathError::EncodedSeparator),
            ("/public%5Cadmin", PathError::EncodedSeparator),
            ("/public\\admin", PathError::Backslash),
            ("/..", PathError::Traversal),
            ("/a/../../b", PathError::Traversal),
            ("/%2e%2e/etc", PathError::Traversal),
            ("/a%zz", PathError::BadEncoding),
            ("/a%2", PathError::BadEncoding),
            ("a/b", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (input, want) in bad {
            assert_eq!(normalize(input), Err(want), "{input}");
        }
    }

    #[test]
    fn prefix_is_segment_wise() {
        assert!(has_prefix("/public", "/public"));
        assert!(has_prefix("/public/x", "/public"));
        assert!(has_prefix("/public/x", "/public/"));
        assert!(!has_prefix("/publicity", "/public"));
        assert!(has_prefix("/anything", "/"));
        assert!(!has_prefix("/PUBLIC/x", "/public"));
        assert!(has_prefix_ignore_case("/ADMIN/x", "/admin"));
        assert!(!has_prefix_ignore_case("/ADMINS", "/admin"));
    }

    #[test]
    fn strict_cases() {
        for bad in ["/a/..;/b", "/a/.;/b", "/a;x/b", "/a/%3b/b", "/a.", "/a./b", "/a%20", "/a%20;x", "/a/%252e%252e/b", "/a%0A", "/a%7F", "/a%09"] {
            assert!(strict_check(bad, false).is_err(), "{bad}");
        }
        for ok in ["/", "/a/b", "/.well-known/x", "/a..b", "/a%20b", "/~u", "/a%3Fb"] {
            assert_eq!(strict_check(ok, false), Ok(()), "{ok}");
        }
        assert_eq!(strict_check("/a;jsessionid=1/b", true), Ok(()));
        assert_eq!(strict_check("/a.", true), Ok(()));
        for bad in ["/a/..;/b", "/a/.;x/b", "/a/%2e%2e;/b", "/a/%2E;/b"] {
            assert_eq!(strict_check(bad, true), Err(PathError::Parameter), "relaxed still refuses {bad}");
        }
    }

    /// What a double-decoding or `;`-stripping upstream makes of a path: percent-decoded once
    /// more, path parameters dropped from every segment, trailing dots and spaces trimmed.
    fn as_a_lenient_upstream_reads(p: &str) -> Vec<String> {
        let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned();
        decoded.split('/').map(|s| s.split(';').next().unwrap_or("").trim_end_matches(['.', ' ', '\t']).to_string()).collect()
    }

    proptest::proptest! {
        /// A path strict mode lets through means the same to a lenient upstream as to the
        /// rules: the same segments (none gained, none climbing) with the same names.
        #[test]
        fn strict_paths_read_the_same_everywhere(s in "/([a-z]{1,3}|\\.|\\.\\.|;|%2[eE5]|%3[bB]|%25|%20|%00|/|\\.;x){0,10}") {
            if let Ok(n) = normalize(&s) {
                if strict_check(&n, false).is_ok() {
                    let lenient = as_a_lenient_upstream_reads(&n);
                    let ours: Vec<String> = n.split('/').map(|x| percent_encoding::percent_decode_str(x).decode_utf8_lossy().into_owned()).collect();
                    proptest::prop_assert_eq!(&lenient, &ours, "{} -> {}", s, n);
                    proptest::prop_assert!(!lenient.iter().any(|seg| seg == ".." || seg == "."), "{} -> {}", s, n);
                }
            }
        }

        #[test]
        fn normalized_is_stable_and_clean(s in "/[a-zA-Z0-9._~%/\\\\-]{0,40}") {
            if let Ok(n) = normalize(&s) {
                // idempotent, and nothing left that could be read as a different path
                proptest::prop_assert_eq!(normalize(&n), Ok(n.clone()));
                proptest::prop_assert!(!n.contains("//"));
                // the fast path never claims a path is normal when normalizing would change it
                if is_normal(&s) { proptest::prop_assert_eq!(&n, &s); }
                proptest::prop_assert!(!n.split('/').any(|seg| seg == ".." || seg == "."));
                proptest::prop_assert!(!n.contains('\\'));
                let lower = n.to_ascii_lowercase();
                proptest::prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e"));
            }
        }
    }
}
