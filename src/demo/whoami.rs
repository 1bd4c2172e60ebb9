//! The whoami upstream: an HTML/JSON page showing the request it received (identity headers
//! included). It must never run on a non-loopback address.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;

/// Starts whoami on `addr` (loopback only) and returns the bound address.
pub async fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = super::bind_loopback(addr, "whoami upstream").await?;
    let local = listener.local_addr()?;
    super::serve(listener, handle);
    Ok(local)
}


async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let account = req.headers().get("x-xumm-account").and_then(|v| v.to_str().ok()).map(str::to_string);
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (ctype, body) = if wants_html {
        ("text/html; charset=utf-8", html(&req, account.as_deref(), &headers))
    } else {
        let v = serde_json::json!({
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "account": account,
            "headers": headers,
        });
        ("application/json", v.to_string())
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(ctype));
    Ok(resp)
}

/// Asks the gateway's broker for a sign request for the signed-in user and follows its outcome
/// over the status WebSocket relay.
const SIGN_BUTTON: &str = r#"<p><button id="sign">Request a signature</button> <span id="sign-status"></span></p>
<script>
document.getElementById('sign').onclick = async () => {
  const status = document.getElementById('sign-status');
  const r = await fetch('/.xumm/api/v1/platform/payload', {method: 'POST', headers: {'content-type': 'application/json'},
    body: JSON.stringify({txjson: {TransactionType: 'SignIn'}, custom_meta: {instruction: 'Demo sign request from whoami'}})});
  const p = await r.json();
  if (!p.uuid) { status.textContent = 'refused: ' + JSON.stringify(p.error); return; }
  status.innerHTML = 'Waiting: <a id="sign-link" target="_blank" href="' + p.next.always + '">open the sign request</a>';
  // Status by WebSocket (the gateway relays Xumm's), never by polling; the outcome is then read
  // from the gateway, which checks the signer (a socket message alone is never trusted).
  const ws = new WebSocket(p.refs.websocket_status);
  ws.onmessage = async (m) => {
    const d = JSON.parse(m.data);
    if (d.signed === undefined && !d.expired) return;
    ws.close();
    const g = await (await fetch('/.xumm/api/v1/platform/payload/' + p.uuid)).json();
    status.innerHTML = 'Outcome: <strong id="sign-outcome">' + g.gateway.outcome + '</strong>';
  };
};
</script>"#;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The headers the gateway sets for a signed-in user (their default names), shown first.
const IDENTITY: [&str; 8] = [
    "x-xumm-account",
    "x-xumm-network",
    "x-auth-request-user",
    "x-forwarded-user",
    "x-xumm-user-token",
    "x-xumm-assertion",
    "x-xumm-account-access",
    "x-xumm-xapp-style",
];

fn html(req: &Request<Incoming>, account: Option<&str>, headers: &[(String, String)]) -> String {
    let public = req.uri().path() == "/public" || req.uri().path().starts_with("/public/");
    let who = match account {
        Some(a) => format!(
            "<p>Signed in as <strong id=\"account\">{}</strong> · <a href=\"/.xumm/sign_out\">sign out</a></p>{SIGN_BUTTON}",
            esc(a)
        ),
        // The demo's /public route: the gateway sends no identity there, by design.
        None if public => "<p id=\"anonymous\" class=\"note\">This is a <strong>public route</strong> (<code>/public</code>): the gateway lets \
                           everyone in and sends no identity headers here, even when you are signed in. \
                           <a href=\"/\">Open a protected page</a> to see them.</p>"
            .into(),
        None => "<p id=\"anonymous\">No identity headers: this request was not authenticated.</p>".into(),
    };
    let row = |(k, v): &(String, String)| format!("<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    let (identity, other): (Vec<_>, Vec<_>) = headers.iter().partition(|(k, _)| IDENTITY.contains(&k.as_str()));
    let identity: String = if identity.is_empty() { "<tr><td colspan=\"2\">none</td></tr>".into() } else { identity.into_iter().map(row).collect() };
    let other: String = other.into_iter().map(row).collect();
    crate::pages::document(
        "whoami",
        &format!(
            "<h1>whoami</h1>{who}<h2>Identity headers from the gateway</h2><table id=\"identity\">{identity}</table>\
             <h2>The whole request</h2><p><code>{} {}</code></p><table>{other}</table>",
            esc(req.method().as_str()),
            esc(&req.uri().to_string())
        ),
    )
}
