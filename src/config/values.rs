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

pub(super) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

pub(super) fn socket(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| err(key, format!("invalid socket address {v:?}")))
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
    /// `provider.token_auth`: how the client authenticates at the token endpoint.
    TokenAuth { ClientSecretPost = "client_secret_post", ClientSecretBasic = "client_secret_basic" }
);
