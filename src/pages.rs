//! Small HTML pages the gateway shows people (errors, forbidden, signed out). It must never put an
//! unescaped value into HTML, and never show a token or secret.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The app's branding on the gateway's pages (`[pages]`). One per process: a process runs one
/// gateway (`start` sets it); the demo's own pages and a process without `[pages]` show none.
#[derive(Debug, Clone, Default)]
pub struct Branding {
    title: String,
    /// Where the logo is (`{prefix}/logo` for a file), and the file's type and bytes.
    logo_src: Option<String>,
    pub logo_file: Option<(&'static str, Bytes)>,
    accent: Option<String>,
}

static BRANDING: std::sync::RwLock<Option<std::sync::Arc<Branding>>> = std::sync::RwLock::new(None);

impl Branding {
    /// From `[pages]`, with the logo file read (`prefix`: where the gateway serves it).
    pub fn from_config(cfg: &crate::config::PagesConfig, prefix: &str) -> Result<Branding, crate::config::ConfigError> {
        use crate::config::err;
        let accent = match cfg.accent.as_str() {
            "" => None,
            a if a.starts_with('#') && matches!(a.len(), 4 | 7) && a[1..].bytes().all(|b| b.is_ascii_hexdigit()) => Some(a.to_string()),
            a => return Err(err("pages.accent", format!("must be a colour like \"#0b4fd6\", got {a:?}"))),
        };
        if cfg.title.len() > 80 {
            return Err(err("pages.title", "must be at most 80 characters"));
        }
        let (logo_src, logo_file) = match cfg.logo.as_str() {
            "" => (None, None),
            l if l.starts_with("https://") || l.starts_with("http://") => match url::Url::parse(l) {
                Ok(_) => (Some(l.to_string()), None),
                Err(_) => return Err(err("pages.logo", format!("invalid URL {l:?}"))),
            },
            path => {
                let ctype = match path.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
                    Some("svg") => "image/svg+xml",
                    Some("png") => "image/png",
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("webp") => "image/webp",
                    _ => return Err(err("pages.logo", "must be an http(s) URL or a .svg, .png, .jpg or .webp file")),
                };
                let bytes = std::fs::read(path).map_err(|e| err("pages.logo", format!("cannot read {path}: {e}")))?;
                if bytes.len() > 256 * 1024 {
                    return Err(err("pages.logo", format!("{path} is larger than 256 KiB")));
                }
                (Some(format!("{prefix}/logo")), Some((ctype, Bytes::from(bytes))))
            }
        };
        Ok(Branding { title: cfg.title.clone(), logo_src, logo_file, accent })
    }

    /// Makes this the branding of every page from now on.
    pub fn install(self) {
        *BRANDING.write().unwrap_or_else(|e| e.into_inner()) = Some(std::sync::Arc::new(self));
    }

    pub fn current() -> Option<std::sync::Arc<Branding>> {
        BRANDING.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn header(&self) -> String {
        let logo = self.logo_src.as_deref().map(|s| format!("<img src=\"{}\" alt=\"\" height=\"32\">", esc(s))).unwrap_or_default();
        if logo.is_empty() && self.title.is_empty() {
            return String::new();
        }
        format!("<header class=\"brand\">{logo}<span>{}</span></header>", esc(&self.title))
    }

    fn style(&self) -> String {
        self.accent.as_deref().map(|a| format!(":root{{--accent:{a};--link:{a}}}")).unwrap_or_default()
    }
}

/// The one look of every page people see, the gateway's and the demo's: readable on a 390 px
/// phone screen (viewport, wrapping of long values, full-width inputs). `body_html` must
/// already be escaped; `title` is escaped here.
pub fn document(title: &str, body_html: &str) -> String {
    document_with(title, body_html, None)
}

/// `document` with the app's branding (the gateway's own pages).
fn document_with(title: &str, body_html: &str, brand: Option<&Branding>) -> String {
    let (header, style, name) = match brand {
        Some(b) => (b.header(), b.style(), if b.title.is_empty() { String::new() } else { format!(" · {}", esc(&b.title)) }),
        None => (String::new(), String::new(), String::new()),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\"><title>{t}{name}</title><style>{STYLE}{style}</style></head><body>{header}<main>{body_html}</main></body></html>",
        t = esc(title)
    )
}

/// Light and dark (`prefers-color-scheme`), contrast at least WCAG AA for text and links, a
/// visible keyboard focus, and a QR code always dark on white (scanners need the contrast).
const STYLE: &str = ":root{--bg:#fff;--fg:#1a1a1a;--muted:#f4f4f4;--line:#ddd;--link:#0b4fd6;--accent:#0b4fd6;--on-accent:#fff;--note:#fff8e1}\
    @media (prefers-color-scheme:dark){:root{--bg:#121417;--fg:#e8e8e8;--muted:#1e2227;--line:#3a3f46;--link:#8db4ff;--accent:#8db4ff;--on-accent:#0b1020;--note:#3a3210}}\
    body{background:var(--bg);color:var(--fg);font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.4;overflow-wrap:anywhere}\
    a{color:var(--link)}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\
    a,button,input,select{font-size:1rem}input,select{width:100%;box-sizing:border-box;margin:.2rem 0 .6rem}button{margin:.3rem .3rem .3rem 0}\
    .button{display:inline-block;padding:.65rem 1.1rem;border-radius:.5rem;background:var(--accent);color:var(--on-accent);text-decoration:none;font-weight:600}\
    .button.secondary{background:transparent;color:var(--link);border:2px solid var(--accent)}\
    #qr{background:#fff;padding:8px;border-radius:8px;display:inline-block;max-width:260px}#qr svg{display:block;width:100%;height:auto}\
    pre,code{white-space:pre-wrap;overflow-wrap:anywhere}pre{background:var(--muted);padding:.5rem}\
    table{border-collapse:collapse;width:100%;table-layout:fixed}td{border-top:1px solid var(--line);padding:.25rem;overflow-wrap:anywhere;vertical-align:top}\
    td:first-child{width:40%}.note{background:var(--note);padding:.5rem}\
    .brand{display:flex;align-items:center;gap:.6rem;font-weight:600;padding-bottom:.6rem;border-bottom:1px solid var(--line)}";

/// A page; `body_html` must already be escaped.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> Response<Body> {
    // An error page names the request, so a person can quote it and an operator find its lines.
    let rid = crate::request_id::current()
        .filter(|_| status.as_u16() >= 400)
        .map(|id| format!("<p class=\"rid\">Request id: <code id=\"request-id\">{}</code></p>", esc(id.as_str())))
        .unwrap_or_default();
    let html = document_with(title, &format!("<h1>{}</h1>{body_html}{rid}", esc(title)), Branding::current().as_deref());
    let mut r = Response::new(Body::full(Bytes::from(html)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// A sign-in problem with a link to try again.
pub fn login_problem(status: StatusCode, what: &str, retry: &str) -> Response<Body> {
    page(status, "Sign-in did not complete", &format!("<p>{}</p><p><a href=\"{}\">Try again</a></p>", esc(what), esc(retry)))
}

/// An xApp launch that opened no session: what happened and what to do in the wallet. A Xumm
/// outage is retryable (the link was not spent), so that page offers to try again.
pub fn xapp_problem(e: &crate::xapp::XappError) -> Response<Body> {
    use crate::xapp::XappError;
    let status = if matches!(e, XappError::Unavailable { .. }) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST };
    let r = match e {
        XappError::Unavailable { retry_after } => page(
            status,
            "Xumm cannot be reached",
            &format!("<p id=\"reason\">The app could not check who you are with Xumm just now.</p><p>Wait {retry_after} seconds, then <a id=\"retry\" href=\"\">try again</a> (this link was not used up), or close the xApp and open it again.</p>"),
        ),
        _ => page(
            status,
            "This xApp link cannot be used",
            &format!("<p id=\"reason\">{}.</p><p>Close the xApp and open it again from Xumm: every opening brings a new link.</p>", esc(&sentence(&e.to_string()))),
        ),
    };
    match e {
        XappError::Unavailable { retry_after: seconds } => retry_after(r, *seconds),
        _ => r,
    }
}

/// The page of a payload sign-in that did not complete: what happened and a way to try again.
pub fn payload_problem(e: &crate::payload_login::PayloadError, retry: &str) -> Response<Body> {
    use crate::payload_login::PayloadError;
    let (status, title) = match e {
        PayloadError::Rejected => (StatusCode::BAD_REQUEST, "Sign-in rejected"),
        PayloadError::Expired | PayloadError::Cancelled => (StatusCode::BAD_REQUEST, "Sign-in expired"),
        PayloadError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "Xumm cannot be reached"),
        _ => (StatusCode::BAD_REQUEST, "Sign-in did not complete"),
    };
    let what = sentence(&e.to_string());
    let r = page(status, title, &format!("<p id=\"reason\">{}.</p><p><a id=\"retry\" href=\"{}\">Try again</a></p>", esc(&what), esc(retry)));
    match e {
        PayloadError::Unavailable { retry_after: seconds } => retry_after(r, *seconds),
        _ => r,
    }
}

/// `text` with its first letter upper-case (error messages are lower-case for log lines).
fn sentence(text: &str) -> String {
    let mut c = text.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Signed in, but the route does not allow this account.
pub fn forbidden(account: &str, sign_out: &str, unmet: Option<&str>) -> Response<Body> {
    let why = unmet.map(|u| format!("<p>Not met: <span id=\"unmet\">{}</span>.</p>", esc(u))).unwrap_or_default();
    page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "<p>You are signed in as <strong id=\"account\">{}</strong>, which may not open this page.</p>{why}\
             <form method=\"post\" action=\"{}\"><button type=\"submit\">Sign out</button></form>",
            esc(account),
            esc(sign_out)
        ),
    )
}

/// A redirect with no body.
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut v = std::borrow::Cow::Borrowed(v);
    if let (true, Some(id), Some(_)) = (status.as_u16() >= 400, crate::request_id::current(), v.as_object()) {
        v.to_mut()["request_id"] = id.as_str().into();
    }
    let mut r = Response::new(Body::full(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `r` with `Retry-After: seconds`: every page that asks people to come back later says when.
fn retry_after(mut r: Response<Body>, seconds: u64) -> Response<Body> {
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}

/// 429 when everyone together started more payload sign-ins than the app's Xumm quota allows.
pub fn sign_in_busy(seconds: u64) -> Response<Body> {
    let text = format!("<p id=\"reason\">Many people are signing in right now. Please try again in {seconds} seconds.</p>");
    retry_after(page(StatusCode::TOO_MANY_REQUESTS, "Sign-in is busy", &text), seconds)
}

/// 429 for a client that started or finished too many sign-ins: a page that says when to retry.
pub fn too_many_sign_ins(seconds: u64) -> Response<Body> {
    let text = format!("<p>Too many sign-ins were started from your network. Please try again in {seconds} seconds.</p>");
    retry_after(page(StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts", &text), seconds)
}
