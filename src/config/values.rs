//! The config's value types and checks: errors with key paths, secrets that redact themselves,
//! durations parsed once, bounds. They must never print a secret or an error without its key.

use super::*;

/// A configuration error; the message always starts with the key path. When a file has several
/// problems, the first is `path`/`msg` and the others follow in `also`, one line each.
#[derive(Debug)]
pub struct ConfigError {
    pub path: String,
    pub msg: String,
    pub also: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.msg)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(path: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError { path: path.into(), msg: msg.into(), also: Vec::new() }
}

/// Collects every problem in a config, in the order the checks run.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<ConfigError>);

impl Problems {
    pub(super) fn add(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(err(path, msg));
    }

    /// `r`'s value, or None with its error recorded.
    pub(super) fn take<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    /// Records a number outside `min..=max`, naming the bounds.
    pub(super) fn within(&mut self, key: &str, v: usize, min: usize, max: usize) {
        if !(min..=max).contains(&v) {
            self.add(key, format!("must be between {min} and {max}, got {v}"));
        }
    }

    pub(super) fn finish(self) -> Result<(), ConfigError> {
        let mut all = self.0.into_iter();
        match all.next() {
            None => Ok(()),
            Some(mut first) => {
                first.also = all.collect();
                Err(first)
            }
        }
    }
}

/// A secret from the config (client and API secrets, cookie keys, signing keys, a Redis URL with
/// its password): `<redacted>` wherever it is printed (`Debug`) or serialized (`check-config`);
/// read it by dereferencing, at the one place that uses it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

/// The bytes of a file a config key names, or the error naming the key, the path and why.
pub(crate) fn read_file(key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| err(key, format!("cannot read {path}: {}", io_reason(&e))))
}

pub(super) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}


/// A duration as the config writes it ("500ms", "30s", "24h"), parsed once when the file is
/// read; consumers take `get()` and never parse again. An unparsable one is kept (not an error at
/// deserialization) so that validation reports it beside every other problem of the file, at its
/// key path; every duration key is checked by `bounded`, so a validated config holds none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    text: String,
    value: Option<Duration>,
}

impl Span {
    /// The duration (zero only for an unparsable value, which validation refuses).
    pub fn get(&self) -> Duration {
        self.value.unwrap_or_default()
    }

    fn parse(text: &str) -> Span {
        Span { text: text.to_string(), value: humantime::parse_duration(text).ok() }
    }
}

/// For the defaults written in this module (a typo there fails every test at once).
impl From<&str> for Span {
    fn from(text: &str) -> Span {
        let span = Span::parse(text);
        assert!(span.value.is_some(), "default duration {text:?} parses");
        span
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        Ok(Span::parse(&String::deserialize(d)?))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A duration within `min..=max`, the bounds named when it is not.
pub(super) fn bounded(key: &str, v: &Span, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let Some(d) = v.value else {
        return Err(err(key, format!("invalid duration {:?} (use e.g. \"30s\", \"24h\")", v.text)));
    };
    if d < min || d > max {
        return Err(err(key, format!("must be between {} and {}, got {:?}", show(min), show(max), v.text)));
    }
    Ok(d)
}

/// A bound as people write it in the config ("100ms", "90s", "1h", "90d").
pub(super) fn show(d: Duration) -> String {
    let s = d.as_secs();
    match (s, d.subsec_millis()) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, _) => format!("{s}s"),
    }
}

/// Two rule or upstream paths that match the same requests ("/a" and "/a/").
pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

pub(super) fn check_route_path(key: &str, p: &str) -> Result<(), ConfigError> {
    match crate::path::normalize(p) {
        Ok(n) if n == p || (p.ends_with('/') && n == p.trim_end_matches('/')) => Ok(()),
        _ => Err(err(key, format!("must be a normalized absolute path like \"/app\", got {p:?}"))),
    }
}

/// One of a few words (`store = "memory"` or `"redis"`), typed when the file is read; like
/// `Span`, an unknown word is kept for validation to name beside every other problem, and
/// consumers take `get()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<T: Words> {
    text: String,
    value: Option<T>,
}

/// The words of a `Choice`, the first being the default.
pub trait Words: Sized + Copy + PartialEq + std::fmt::Debug + 'static {
    const ALL: &'static [(&'static str, Self)];
}

impl<T: Words> Choice<T> {
    /// The choice (the default only for an unknown word, which validation refuses).
    pub fn get(&self) -> T {
        self.value.unwrap_or(T::ALL[0].1)
    }

    /// The choice, or the error naming `key`, the words and what the file says.
    pub(super) fn checked(&self, key: &str) -> Result<T, ConfigError> {
        self.value.ok_or_else(|| {
            let words: Vec<String> = T::ALL.iter().map(|(w, _)| format!("{w:?}")).collect();
            let list = match words.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            err(key, format!("must be {list}, got {:?}", self.text))
        })
    }
}

impl<T: Words> From<T> for Choice<T> {
    fn from(v: T) -> Choice<T> {
        let text = T::ALL.iter().find(|(_, x)| *x == v).map(|(w, _)| *w).unwrap_or_default();
        Choice { text: text.to_string(), value: Some(v) }
    }
}

impl<T: Words> Default for Choice<T> {
    fn default() -> Choice<T> {
        Choice::from(T::ALL[0].1)
    }
}

impl<'de, T: Words> Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Choice<T>, D::Error> {
        let text = String::deserialize(d)?;
        let value = T::ALL.iter().find(|(w, _)| *w == text).map(|(_, v)| *v);
        Ok(Choice { text, value })
    }
}

impl<T: Words> Serialize for Choice<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Declares a `Words` enum: its variants and how the config spells them (the first is the default).
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl Words for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
        }
    };
}

words!(
    /// `session.store`.
    StoreKind { Memory = "memory", Redis = "redis" }
);
words!(
    /// `session.redis_mode`.
    RedisMode { Standalone = "standalone", Cluster = "cluster" }
);
words!(
    /// `log.format`.
    LogFormat { Text = "text", Json = "json" }
);
words!(
    /// `forward_auth.mode`: 401 for the proxy to handle, or a redirect to sign-in for browsers.
    ForwardAuthMode { Status = "status", Redirect = "redirect" }
);
words!(
    /// `provider.kind`: sign in with Xumm's OAuth2 (code + PKCE), or with a SignIn payload the
    /// gateway creates with `[xumm]`'s key and secret (QR code or push; no OAuth2 client needed).
    ProviderKind { Oauth2 = "oauth2", Payload = "payload" }
);
words!(
    /// `server.tls.client_auth`: whether a client without a certificate may connect.
    ClientAuth { Required = "required", Optional = "optional" }
);
words!(
    /// `server.tls.min_version`.
    TlsVersion { V12 = "1.2", V13 = "1.3" }
);
words!(
    /// `policy.default`: what a request no `[[route]]` matches needs.
    DefaultRule { Authenticated = "authenticated", Public = "public", Deny = "deny" }
);
words!(
    /// `provider.token_auth`: how the client authenticates at the token endpoint.
    TokenAuth { ClientSecretPost = "client_secret_post", ClientSecretBasic = "client_secret_basic" }
);

/// A value the config writes as a string and the gateway uses typed (an address, a URL, a header
/// name, a CIDR, an r-address, an origin): parsed once when the file is read, so no consumer
/// parses it again. Like `Span`, a value that does not parse is kept with its reason for
/// validation to report at its key path beside every other problem; consumers take `get()`,
/// which a validated config always answers.
#[derive(Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    text: String,
    value: Result<T, String>,
}

/// How a `Parsed` value reads its text; the error is the message after the key path.
pub trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

impl<T> Parsed<T> {
    /// The value (None only for one that failed to parse, which validation refuses).
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().ok()
    }

    /// What the file says.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value, or the error naming `key` (for a library caller's config that skipped
    /// validation: never a panic, never a value quietly dropped).
    pub fn checked(&self, key: &str) -> Result<&T, ConfigError> {
        self.value.as_ref().map_err(|m| err(key, m.clone()))
    }
}

impl<T: Clone> Parsed<T> {
    /// Every value of a list, or the error naming the first bad one as `key[i]`.
    pub fn all(key: &str, list: &[Parsed<T>]) -> Result<Vec<T>, ConfigError> {
        list.iter().enumerate().map(|(i, v)| v.checked(&format!("{key}[{i}]")).cloned()).collect()
    }
}

impl<T: FromText> Parsed<T> {
    pub fn parse(text: &str) -> Parsed<T> {
        Parsed { text: text.to_string(), value: T::from_text(text) }
    }
}

/// For the defaults written in the config modules (a typo there fails every test at once).
impl<T: FromText> From<&str> for Parsed<T> {
    fn from(text: &str) -> Parsed<T> {
        let v = Parsed::parse(text);
        assert!(v.value.is_ok(), "default value {text:?} parses");
        v
    }
}

impl<T> std::fmt::Display for Parsed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl<T> std::fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<'de, T: FromText> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Parsed<T>, D::Error> {
        Ok(Parsed::parse(&String::deserialize(d)?))
    }
}

impl<T> Serialize for Parsed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Problems {
    /// Records `v`'s parse error at `key`.
    pub(super) fn parsed<T>(&mut self, key: &str, v: &Parsed<T>) {
        if let Err(e) = v.checked(key) {
            self.0.push(e);
        }
    }

    /// Records the parse error of each of `list` at `key[i]`.
    pub(super) fn each<T>(&mut self, key: &str, list: &[Parsed<T>]) {
        for (i, v) in list.iter().enumerate() {
            self.parsed(&format!("{key}[{i}]"), v);
        }
    }
}

/// An empty string switches an optional value off (`admin_listen = ""`, `account = ""`).
impl<T: FromText> FromText for Option<T> {
    fn from_text(text: &str) -> Result<Option<T>, String> {
        if text.is_empty() { Ok(None) } else { T::from_text(text).map(Some) }
    }
}

impl FromText for SocketAddr {
    fn from_text(text: &str) -> Result<SocketAddr, String> {
        text.parse().map_err(|_| format!("invalid socket address {text:?}"))
    }
}

/// An http(s) URL with a host: `server.public_url`, `provider.issuer`, `xumm.api_url`, callbacks.
impl FromText for url::Url {
    fn from_text(text: &str) -> Result<url::Url, String> {
        let u = url::Url::parse(text).map_err(|_| format!("invalid URL {text:?}"))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(format!("scheme must be http or https, got {text:?}"));
        }
        if u.host().is_none() {
            return Err(format!("must name a host, got {text:?}"));
        }
        Ok(u)
    }
}

/// `[[upstream]] url`: where requests are relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(pub http::Uri);

impl FromText for UpstreamUrl {
    fn from_text(text: &str) -> Result<UpstreamUrl, String> {
        let uri: http::Uri = text.parse().map_err(|_| format!("invalid URL {text:?}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(format!("must be an http:// or https:// URL with a host, got {text:?}"));
        }
        if uri.query().is_some() {
            return Err("must not carry a query string".into());
        }
        Ok(UpstreamUrl(uri))
    }
}

impl FromText for http::HeaderName {
    fn from_text(text: &str) -> Result<http::HeaderName, String> {
        http::HeaderName::from_bytes(text.as_bytes()).map_err(|_| format!("invalid header name {text:?}"))
    }
}

/// A network or a single address (`10.0.0.0/8`, `::1`).
impl FromText for IpNet {
    fn from_text(text: &str) -> Result<IpNet, String> {
        text.parse::<IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| format!("invalid CIDR {text:?}"))
    }
}

impl FromText for crate::account::Account {
    fn from_text(text: &str) -> Result<crate::account::Account, String> {
        crate::account::Account::parse(text).map_err(|_| format!("{text:?} is not a valid XRPL r-address"))
    }
}

/// `cors.allowed_origins`: an exact origin, compared with the request's `Origin` as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(pub http::HeaderValue);

impl FromText for Origin {
    fn from_text(text: &str) -> Result<Origin, String> {
        let ok = url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/" && u.query().is_none())
            && !text.ends_with('/');
        let bad = || format!("must be an origin like \"https://app.example.com\", got {text:?}");
        if !ok {
            return Err(bad());
        }
        http::HeaderValue::from_str(text).map(Origin).map_err(|_| bad())
    }
}

impl FromText for crate::session::XappAccess {
    fn from_text(text: &str) -> Result<crate::session::XappAccess, String> {
        match text {
            "FULL" => Ok(crate::session::XappAccess::Full),
            "READONLY" => Ok(crate::session::XappAccess::Readonly),
            _ => Err(format!("must be \"FULL\" or \"READONLY\", got {text:?}")),
        }
    }
}

/// An XRPL network as Xumm names it (`MAINNET`, `TESTNET`, `XAHAU`, ...): letters only, kept in
/// upper case, compared with a session's network ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network(String);

impl Network {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, network: &str) -> bool {
        self.0.eq_ignore_ascii_case(network)
    }
}

impl FromText for Network {
    fn from_text(text: &str) -> Result<Network, String> {
        if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("must be a network name like \"MAINNET\" (letters only), got {text:?}"));
        }
        Ok(Network(text.to_ascii_uppercase()))
    }
}

impl FromText for crate::session::Source {
    fn from_text(text: &str) -> Result<crate::session::Source, String> {
        use crate::session::Source;
        match text {
            "session" => Ok(Source::Session),
            "bearer" => Ok(Source::Bearer),
            "xapp" => Ok(Source::Xapp),
            _ => Err(format!("must be \"session\", \"bearer\" or \"xapp\", got {text:?}")),
        }
    }
}

/// `[[route]] methods`: an HTTP method in upper case (`GET` covers `HEAD` too).
impl FromText for http::Method {
    fn from_text(text: &str) -> Result<http::Method, String> {
        let ok = !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
        match http::Method::from_bytes(text.as_bytes()) {
            Ok(m) if ok => Ok(m),
            _ => Err(format!("must be an HTTP method in upper case like \"GET\", got {text:?}")),
        }
    }
}

/// `[[route]] hosts` and `session.cookie_domain`'s host names: a DNS name (kept in lower case,
/// without a trailing dot), or `*.example.com` for every name under `example.com` (at any depth,
/// never `example.com` itself). No port: a rule holds for a host whatever port reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot (`.example.com`).
    Under(String),
}

impl HostPattern {
    /// True when `host` (as a request names it: any case, with or without a port or a trailing
    /// dot) is this pattern's.
    pub fn matches(&self, host: &str) -> bool {
        let h = crate::policy::bare_host(host);
        match self {
            HostPattern::Exact(e) => h.eq_ignore_ascii_case(e),
            HostPattern::Under(suffix) => is_under(h, suffix),
        }
    }
}

/// True when `host` is a name under `dotted` (`.example.com`), ignoring ASCII case: at least
/// one label before it, never `example.com` itself.
pub(crate) fn is_under(host: &str, dotted: &str) -> bool {
    host.len() > dotted.len() && host.get(host.len() - dotted.len()..).is_some_and(|t| t.eq_ignore_ascii_case(dotted))
}

/// A DNS name: labels of letters, digits and '-', none empty or over 63 bytes.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl FromText for HostPattern {
    fn from_text(text: &str) -> Result<HostPattern, String> {
        let lower = text.trim_end_matches('.').to_ascii_lowercase();
        let (under, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, lower),
        };
        if !is_dns_name(&name) || (under && !name.contains('.')) {
            return Err(format!("must be a host name like \"app.example.com\" or \"*.example.com\" (no port, no scheme), got {text:?}"));
        }
        Ok(if under { HostPattern::Under(format!(".{name}")) } else { HostPattern::Exact(name) })
    }
}
