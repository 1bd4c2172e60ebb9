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

    proptest::proptest! {
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
