//! Richer route rules, through the real gateway: `methods`, `hosts` (exact and `*.`), `deny`,
//! `allow_sources`, the documented order, `policy.default`, forward auth deciding on the
//! original host and method, and `session.cookie_domain` (the cookie's Domain and the return
//! URLs it allows).

mod common;

use common::*;
use http::StatusCode;

const RULES: &str = r#"
[[route]]
path = "/docs"
public = true

[[route]]
path = "/docs"
methods = ["POST", "PUT", "DELETE"]
deny = true

[[route]]
path = "/"
hosts = ["status.example.com"]
public = true

[[route]]
path = "/"
hosts = ["*.internal.example.com"]
deny = true

[[route]]
path = "/"
hosts = ["open.internal.example.com"]
public = true

[[route]]
path = "/api"
allow_sources = ["bearer"]
"#;

async fn status(gw: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut b = http::Request::builder().method(method).uri(format!("http://{gw}{path}")).header("accept", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let got = send(b.body(full("")).unwrap()).await;
    let error = serde_json::from_str::<serde_json::Value>(&got.text()).ok().and_then(|v| v["error"].as_str().map(String::from)).unwrap_or_default();
    (got.status, error)
}

#[tokio::test]
async fn methods_hosts_deny_and_sources_decide_in_order() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", RULES)).await;
    let a = gw.addr;
    let (name, value) = login(a, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let bearer = format!("Bearer {token}");

    // Methods: the same path is public to read and closed to write, signed in or not.
    assert_eq!(status(a, "GET", "/docs/x", &[]).await.0, StatusCode::OK);
    assert_eq!(status(a, "HEAD", "/docs/x", &[]).await.0, StatusCode::OK);
    assert_eq!(status(a, "POST", "/docs/x", &[]).await, (StatusCode::FORBIDDEN, "denied".into()));
    assert_eq!(status(a, "DELETE", "/docs/x", &[("cookie", &cookie)]).await, (StatusCode::FORBIDDEN, "denied".into()));
    // PATCH is not named: the public rule holds.
    assert_eq!(status(a, "PATCH", "/docs/x", &[]).await.0, StatusCode::OK);

    // Hosts: exact, any port, any case; a wildcard covers every name under it, and an exact
    // name beats it; other hosts fall to the default (sign-in).
    assert_eq!(status(a, "GET", "/x", &[("host", "status.example.com")]).await.0, StatusCode::OK);
    assert_eq!(status(a, "GET", "/x", &[("host", "STATUS.example.com:8443")]).await.0, StatusCode::OK);
    assert_eq!(status(a, "GET", "/x", &[("host", "app.example.com")]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(status(a, "GET", "/x", &[("host", "app.example.com"), ("cookie", &cookie)]).await.0, StatusCode::OK);
    assert_eq!(status(a, "GET", "/x", &[("host", "a.b.internal.example.com"), ("cookie", &cookie)]).await, (StatusCode::FORBIDDEN, "denied".into()));
    assert_eq!(status(a, "GET", "/x", &[("host", "open.internal.example.com")]).await.0, StatusCode::OK);
    assert_eq!(status(a, "GET", "/x", &[("host", "internal.example.com")]).await.0, StatusCode::UNAUTHORIZED);
    // A longer path is more specific than any host rule.
    assert_eq!(status(a, "GET", "/docs", &[("host", "a.internal.example.com")]).await.0, StatusCode::OK);

    // Sources: a route only for Bearer tokens refuses the cookie session of the same account.
    assert_eq!(status(a, "GET", "/api/x", &[("authorization", &bearer)]).await.0, StatusCode::OK);
    assert_eq!(status(a, "GET", "/api/x", &[("cookie", &cookie)]).await, (StatusCode::FORBIDDEN, "forbidden".into()));

    // A browser asking for a denied path gets a page saying so, never a sign-in redirect.
    let page = get_with(a, "/docs", &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::OK);
    let page = send(http::Request::post(format!("http://{a}/docs")).header("accept", "text/html").body(full("")).unwrap()).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("this path is closed"), "{}", page.text());

    // Forward auth decides on the original host and method a trusted proxy names.
    let fa = |host: &'static str, method: &'static str| {
        let h = vec![("x-original-uri", "/x"), ("x-forwarded-host", host), ("x-forwarded-method", method)];
        async move { status(a, "GET", "/.xumm/auth", &h).await }
    };
    assert_eq!(fa("status.example.com", "GET").await.0, StatusCode::OK);
    assert_eq!(fa("app.example.com", "GET").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fa("x.internal.example.com", "GET").await, (StatusCode::FORBIDDEN, "denied".into()));
    let docs = status(a, "GET", "/.xumm/auth", &[("x-original-uri", "/docs"), ("x-original-method", "PUT")]).await;
    assert_eq!(docs, (StatusCode::FORBIDDEN, "denied".into()));
    // ingress-nginx: the host comes in an absolute X-Original-URL.
    let abs = status(a, "GET", "/.xumm/auth", &[("x-original-url", "https://status.example.com/x")]).await;
    assert_eq!(abs.0, StatusCode::OK);
    gw.shutdown().await;

    // From a peer that is not a trusted proxy, the forwarded host means nothing.
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "trusted_proxies = [\"10.0.0.0/8\"]", RULES)).await;
    let untrusted = status(gw.addr, "GET", "/.xumm/auth", &[("x-original-uri", "/x"), ("x-forwarded-host", "status.example.com")]).await;
    assert_eq!(untrusted.0, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_default_rule_decides_for_unmatched_requests() {
    let up = upstream().await;
    let idp = idp().await;
    let deny = ready_gateway(&auth_config(up, &idp.issuer, "", "\n[policy]\ndefault = \"deny\"\n")).await;
    let (name, value) = login(deny.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    assert_eq!(status(deny.addr, "GET", "/anything", &[("cookie", &cookie)]).await, (StatusCode::FORBIDDEN, "denied".into()));
    assert_eq!(status(deny.addr, "GET", "/anything", &[]).await, (StatusCode::FORBIDDEN, "denied".into()));
    assert_eq!(status(deny.addr, "GET", "/public/x", &[]).await.0, StatusCode::OK);
    assert_eq!(status(deny.addr, "GET", "/admin/x", &[("cookie", &cookie)]).await.0, StatusCode::OK);
    // Forward auth without an original URI is unmatched too.
    assert_eq!(status(deny.addr, "GET", "/.xumm/auth", &[("cookie", &cookie)]).await.0, StatusCode::FORBIDDEN);
    // The gateway's own endpoints stay reachable (sign-in, sign-out).
    assert_eq!(status(deny.addr, "GET", "/.xumm/userinfo", &[("cookie", &cookie)]).await.0, StatusCode::OK);
    deny.shutdown().await;

    let public = ready_gateway(&auth_config(up, &idp.issuer, "", "\n[policy]\ndefault = \"public\"\n")).await;
    let open = get_with(public.addr, "/anything", &[("x-xumm-account", "rEvil")]).await;
    assert_eq!(open.status, StatusCode::OK);
    assert!(open.upstream_header("x-xumm-account").is_empty(), "a public pass carries no identity");
    assert_eq!(status(public.addr, "GET", "/admin/x", &[]).await.0, StatusCode::UNAUTHORIZED);
    // Never public without a believable original URI.
    assert_eq!(status(public.addr, "GET", "/.xumm/auth", &[]).await.0, StatusCode::UNAUTHORIZED);
    public.shutdown().await;
}

#[tokio::test]
async fn a_cookie_domain_covers_sub_domains_and_their_return_urls() {
    let up = upstream().await;
    let idp = idp().await;
    // (*.localhost: the development provider only redirects to loopback names.)
    let text = auth_config(up, &idp.issuer, "", "").replace("public_url = \"http://127.0.0.1:4180\"", "public_url = \"https://login.app.localhost\"").replace(
        "[session]\n",
        "[session]\ncookie_domain = \"app.localhost\"\n",
    );
    let gw = ready_gateway(&text).await;
    for (rd, back) in [("https://wiki.app.localhost/page?x=1", "https://wiki.app.localhost/page?x=1"), ("https://a.b.app.localhost/", "https://a.b.app.localhost/"), ("https://app.localhost.evil.net/", "/"), ("https://other.localhost/", "/")] {
        let (pending, callback) = begin_login(gw.addr, rd, ACCOUNT, "MAINNET", "approve").await;
        let done = get_with(gw.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
        assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
        assert_eq!(done.headers["location"], back);
        let session: Vec<&str> = done.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).filter(|v| v.starts_with("_xumm_gate=")).collect();
        assert_eq!(session.len(), 1, "{session:?}");
        assert!(session[0].contains("Domain=app.localhost"), "{}", session[0]);
        assert!(session[0].contains("Secure") && session[0].contains("HttpOnly"), "{}", session[0]);
    }
    // Sign-out ends the cookie on the whole domain.
    let out = get_with(gw.addr, "/.xumm/sign_out", &[]).await;
    let cleared: Vec<&str> = out.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cleared.iter().any(|c| c.starts_with("_xumm_gate=") && c.contains("Max-Age=0") && c.contains("Domain=app.localhost")), "{cleared:?}");
    gw.shutdown().await;
}

#[test]
fn rule_mistakes_are_config_errors_naming_the_key() {
    let base = |route: &str| format!("[server]\nlisten = \"127.0.0.1:0\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:9\"\n{route}");
    let cases = [
        ("[[route]]\npath = \"/a\"\ndeny = true\nallow_accounts = [\"rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh\"]", "route[0].allow_accounts: has no effect on a deny rule"),
        ("[[route]]\npath = \"/a\"\ndeny = true\npublic = true", "route[0].public: has no effect on a deny rule"),
        ("[[route]]\npath = \"/a\"\nmethods = [\"get\"]", "route[0].methods[0]: must be an HTTP method in upper case"),
        ("[[route]]\npath = \"/a\"\nhosts = [\"https://a.example.com\"]", "route[0].hosts[0]: must be a host name"),
        ("[[route]]\npath = \"/a\"\nhosts = [\"*.com\"]", "route[0].hosts[0]: must be a host name"),
        ("[[route]]\npath = \"/a\"\nhosts = [\"a.*.com\"]", "route[0].hosts[0]: must be a host name"),
        ("[[route]]\npath = \"/a\"\nallow_sources = [\"cookie\"]", "route[0].allow_sources[0]: must be \"session\", \"bearer\" or \"xapp\""),
        ("[[route]]\npath = \"/a\"\nhosts = [\"a.example.com\", \"b.example.com\"]\n[[route]]\npath = \"/A\"\nhosts = [\"B.example.com\", \"a.example.com\"]", "route[1].path: \"/A\" is also route[0].path, for the same hosts and methods"),
        ("[policy]\ndefault = \"open\"", "policy.default: must be \"authenticated\", \"public\" or \"deny\""),
    ];
    for (route, want) in cases {
        let e = xumm_gate::config::Config::from_toml(&base(route), &no_env).unwrap_err().to_string();
        assert!(e.contains(want), "{route}\n  gave: {e}\n  want: {want}");
    }
    // The same path for other hosts or methods is another rule.
    let ok = "[[route]]\npath = \"/a\"\nhosts = [\"a.example.com\"]\n[[route]]\npath = \"/a\"\n[[route]]\npath = \"/a\"\nmethods = [\"POST\"]\ndeny = true";
    xumm_gate::config::Config::from_toml(&base(ok), &no_env).unwrap();

    let session = |domain: &str| format!("[server]\npublic_url = \"https://login.example.com\"\n[provider]\nissuer = \"https://idp.example\"\nclient_id = \"x\"\nclient_secret = \"y\"\n[session]\ncookie_secrets = [\"{COOKIE_SECRET}\"]\ncookie_domain = \"{domain}\"\n");
    for (domain, want) in [("example.org", "does not cover server.public_url's host"), ("com", "must be a domain like"), ("*.example.com", "must be a domain like"), ("example.com:443", "must be a domain like")] {
        let e = xumm_gate::config::Config::from_toml(&session(domain), &no_env).unwrap_err().to_string();
        assert!(e.contains("session.cookie_domain") && e.contains(want), "{domain}: {e}");
    }
    xumm_gate::config::Config::from_toml(&session(".Example.com"), &no_env).unwrap();
}
