//! The public listener over TLS: HTTPS and HTTP/2 by ALPN, certificates by SNI, client
//! certificates, the redirect listener, HSTS, and certificates reloaded from their files while
//! connections stay open. Certificates are made per test (rcgen).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::pki::{Ca, Pair, TlsConn, client_config};
use http::StatusCode;

/// A gateway config whose public listener speaks TLS with `dir/server.{crt,key}`.
fn tls_config(upstream: SocketAddr, dir: &Path, tls_extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "https://localhost:8443"

[server.tls]
cert = "{d}/server.crt"
key = "{d}/server.key"
{tls_extra}

[[upstream]]
path = "/"
url = "http://{upstream}"

[[route]]
path = "/"
public = true

[[route]]
path = "/ops"
public = true
allow_client_subjects = ["CN=ops, O=Example"]
"#
    )
}

async fn start(dir: &Path, tls_extra: &str) -> (xumm_gate::Running, SocketAddr) {
    let up = common::upstream().await;
    (common::gateway(&tls_config(up, dir, tls_extra)).await, up)
}

fn h1() -> &'static [&'static [u8]] {
    &[b"http/1.1"]
}

#[tokio::test]
async fn https_and_http2_reach_the_upstream_with_hsts_and_forwarded_proto() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    ca.server(&["localhost", "127.0.0.1"]).write(dir.path(), "server");
    let (gw, _) = start(dir.path(), r#"hsts = "max-age=31536000""#).await;

    // HTTP/1.1 over TLS: the fast path serves it through the TLS stream.
    let mut c = TlsConn::open(gw.addr, "localhost", client_config(&ca.pem(), h1(), None)).await.unwrap();
    assert!(!c.h2);
    for _ in 0..3 {
        let (status, headers, body) = c.get("localhost", "/hello").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["strict-transport-security"], "max-age=31536000");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["uri"], "/hello");
        let proto = v["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-forwarded-proto").unwrap();
        assert_eq!(proto[1], "https");
    }
    // A body larger than any buffer arrives whole (every write flushed through TLS).
    let (status, _, body) = c.get("localhost", "/download?n=3000000").await.unwrap();
    assert_eq!((status, body.len()), (StatusCode::OK, 3_000_000));

    // HTTP/2 over TLS (ALPN h2).
    let mut c2 = TlsConn::open(gw.addr, "localhost", client_config(&ca.pem(), &[b"h2", b"http/1.1"], None)).await.unwrap();
    assert!(c2.h2, "ALPN offered h2");
    let (status, headers, body) = c2.get("localhost", "/over-h2").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");
    assert!(String::from_utf8_lossy(&body).contains("/over-h2"));

    // The gateway's own error pages carry HSTS too (a sign-in endpoint with no provider: 404).
    let (status, headers, _) = c.get("localhost", "/.xumm/nothing-here").await.unwrap();
    assert!(status.is_client_error(), "{status}");
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");

    // A plain-HTTP request on the TLS port gets no HTTP answer.
    let plain = common::raw(gw.addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", Duration::from_secs(2)).await;
    assert!(!plain.contains("200 OK"), "{plain}");
    gw.shutdown().await;
}

#[tokio::test]
async fn curl_speaks_http2_to_it_when_present() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl not installed: skipped (hyper's HTTP/2 client covers the same path)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let (gw, _) = start(dir.path(), "").await;
    let port = gw.addr.port();
    let ca_file = dir.path().join("ca.pem");
    // curl blocks: off the runtime thread, which serves the gateway.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--http2", "--max-time", "20", "--cacert"])
            .arg(ca_file)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), "-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
            .arg(format!("https://localhost:{port}/curl"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{}", String::from_utf8_lossy(&out.stderr));
    gw.shutdown().await;
}

#[tokio::test]
async fn sni_chooses_the_certificate_for_the_host_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let default = ca.server(&["default.test", "other.test"]);
    let app = ca.server(&["app.test"]);
    let wild = ca.server(&["*.wild.test"]);
    default.write(dir.path(), "server");
    app.write(dir.path(), "app");
    wild.write(dir.path(), "wild");
    let d = dir.path().display();
    // The first entry's names come from its certificate; the second's are given.
    let extra = format!("[[server.tls.sni]]\ncert = \"{d}/app.crt\"\nkey = \"{d}/app.key\"\n\n[[server.tls.sni]]\ncert = \"{d}/wild.crt\"\nkey = \"{d}/wild.key\"\nhosts = [\"*.wild.test\"]\n");
    let (gw, _) = start(dir.path(), &extra).await;
    let cfg = client_config(&ca.pem(), h1(), None);
    for (sni, want) in [("app.test", &app), ("x.wild.test", &wild), ("other.test", &default), ("default.test", &default)] {
        let mut c = TlsConn::open(gw.addr, sni, cfg.clone()).await.unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(c.peer, want.der(), "{sni} got the wrong certificate");
        assert_eq!(c.get(sni, "/").await.unwrap().0, StatusCode::OK);
    }
    // A wildcard covers one label only: a.b.wild.test gets the default, which does not name it.
    assert!(TlsConn::open(gw.addr, "a.b.wild.test", cfg).await.is_err());
    // Each certificate's expiry, for the alert, named by the key that configures it.
    let m = common::scrape(gw.admin_addr.unwrap()).await;
    let now = xumm_gate::session::now() as f64;
    for cert in ["server.tls.cert", "server.tls.sni[0].cert", "server.tls.sni[1].cert"] {
        let at = m.value("xumm_gate_tls_certificate_expiry_timestamp_seconds", &[("cert", cert)]);
        assert!(at > now, "{cert}: {at}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn client_certificates_required_optional_and_from_the_wrong_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let clients = Ca::new("Client CA");
    let stranger = Ca::new("Other CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    std::fs::write(dir.path().join("clients.pem"), clients.pem()).unwrap();
    let good = clients.client("ops", "Example");
    let bad = stranger.client("ops", "Example");
    let d = dir.path().display();

    let (gw, _) = start(dir.path(), &format!("client_ca = \"{d}/clients.pem\"")).await;
    let ok = |p: Option<&Pair>| client_config(&ca.pem(), h1(), p);
    let mut c = TlsConn::open(gw.addr, "localhost", ok(Some(&good))).await.unwrap();
    assert_eq!(c.get("localhost", "/").await.unwrap().0, StatusCode::OK);
    // Without a certificate, or with one from another CA, no request gets through (TLS 1.3
    // reports the refusal on the first read, after the client thinks the handshake is done).
    for who in [None, Some(&bad)] {
        let refused = match TlsConn::open(gw.addr, "localhost", ok(who)).await {
            Err(_) => true,
            Ok(mut c) => c.get("localhost", "/").await.is_err(),
        };
        assert!(refused, "a client {} got through", if who.is_some() { "of another CA" } else { "without a certificate" });
    }
    gw.shutdown().await;

    let (gw, _) = start(dir.path(), &format!("client_ca = \"{d}/clients.pem\"\nclient_auth = \"optional\"")).await;
    let mut c = TlsConn::open(gw.addr, "localhost", ok(None)).await.unwrap();
    assert_eq!(c.get("localhost", "/").await.unwrap().0, StatusCode::OK, "optional: no certificate is fine");
    // A route that asks for a certificate subject refuses a connection without one, whatever
    // header the client sends.
    let (status, _, body) = c.get_with("localhost", "/ops", &[("x-client-cert-subject", "CN=ops, O=Example")]).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("client certificate"));
    let (_, _, body) = c.get_with("localhost", "/", &[("x-client-cert-subject", "CN=ops, O=Example")]).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["headers"].as_array().unwrap().iter().all(|h| h[0] != "x-client-cert-subject"), "a client's own subject header is stripped");
    // With one: the upstream learns its subject, and the route lets it in.
    let mut c = TlsConn::open(gw.addr, "localhost", ok(Some(&good))).await.unwrap();
    let (status, _, body) = c.get("localhost", "/ops").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let subject = v["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-client-cert-subject").expect("subject sent upstream")[1].clone();
    assert_eq!(subject, "CN=ops, O=Example");
    // Another subject from the same CA is verified but not allowed on /ops.
    let mut c = TlsConn::open(gw.addr, "localhost", ok(Some(&clients.client("dev", "Example")))).await.unwrap();
    assert_eq!(c.get("localhost", "/ops").await.unwrap().0, StatusCode::FORBIDDEN);
    assert_eq!(c.get("localhost", "/").await.unwrap().0, StatusCode::OK);
    let refused = match TlsConn::open(gw.addr, "localhost", ok(Some(&bad))).await {
        Err(_) => true,
        Ok(mut c) => c.get("localhost", "/").await.is_err(),
    };
    assert!(refused, "optional still refuses a certificate it cannot verify");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_redirect_http_listener_sends_plain_http_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let app = ca.server(&["app.test"]);
    app.write(dir.path(), "app");
    let d = dir.path().display();
    let (gw, _) = start(dir.path(), &format!("redirect_http_listen = \"127.0.0.1:0\"\n[[server.tls.sni]]\ncert = \"{d}/app.crt\"\nkey = \"{d}/app.key\"\n")).await;
    let r = gw.redirect_addr.expect("redirect listener bound");
    let got = common::get_with(r, "/some/path?x=1", &[("host", "localhost")]).await;
    assert_eq!(got.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(got.headers["location"], "https://localhost:8443/some/path?x=1");
    // A host a certificate covers is kept; any other becomes public_url's host (never an open
    // redirect to a host nobody configured).
    let got = common::get_with(r, "/a", &[("host", "app.test")]).await;
    assert_eq!(got.headers["location"], "https://app.test:8443/a");
    let got = common::get_with(r, "/a", &[("host", "evil.example:80")]).await;
    assert_eq!(got.headers["location"], "https://localhost:8443/a");
    gw.shutdown().await;
}

/// Replaces `dir/server.{crt,key}` the way Kubernetes updates a mounted Secret: the files are
/// symlinks into a data directory, and one rename swaps the link to a new directory.
fn swap_secret(dir: &Path, pair: &Pair, generation: u32) {
    let data = dir.join(format!("..data-{generation}"));
    std::fs::create_dir(&data).unwrap();
    pair.write(&data, "server");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&data, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["server.crt", "server.key"] {
        if std::fs::symlink_metadata(dir.join(f)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
        }
    }
}

#[tokio::test]
async fn rotated_certificates_serve_new_connections_and_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let first = ca.server(&["localhost"]);
    let second = ca.server(&["localhost"]);
    let third = ca.server(&["localhost"]);
    swap_secret(dir.path(), &first, 1);
    let (gw, _) = start(dir.path(), r#"reload_interval = "100ms""#).await;
    // A fresh client configuration per connection: a resumed session would report the
    // certificate of the session it resumes, not the one the server holds now.
    let cfg = || client_config(&ca.pem(), h1(), None);

    let mut held = TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap();
    assert_eq!(held.peer, first.der());
    assert_eq!(held.get("localhost", "/").await.unwrap().0, StatusCode::OK);

    swap_secret(dir.path(), &second, 2);
    let mut seen = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap();
        if c.peer == second.der() {
            seen = Some(c);
            break;
        }
    }
    assert!(seen.is_some(), "new connections never saw the new certificate");
    // The connection opened before the rotation still works, on its old certificate.
    assert_eq!(held.get("localhost", "/after-rotation").await.unwrap().0, StatusCode::OK);

    // A broken pair (the key of another certificate) is refused; the last good one stays.
    let broken = Pair { cert: third.cert.clone(), key: first.key.clone() };
    swap_secret(dir.path(), &broken, 3);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let c = TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap();
    assert_eq!(c.peer, second.der(), "a broken pair replaced the working certificate");
    // Fixed: it is picked up.
    swap_secret(dir.path(), &third, 4);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let c = TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap();
    assert_eq!(c.peer, third.der());
    assert_eq!(held.get("localhost", "/still").await.unwrap().0, StatusCode::OK);
    gw.shutdown().await;
}

#[test]
fn tls_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let a = ca.server(&["localhost"]);
    let b = ca.server(&["localhost"]);
    std::fs::write(dir.path().join("server.crt"), &a.cert).unwrap();
    std::fs::write(dir.path().join("server.key"), &b.key).unwrap();
    let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let start_err = |text: String| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cfg = xumm_gate::config::Config::from_toml(&text, &common::no_env).map_err(|e| e.to_string())?;
        rt.block_on(xumm_gate::start(cfg)).map(|_| ()).map_err(|e| e.to_string())
    };
    let e = start_err(tls_config(up, dir.path(), "")).unwrap_err();
    assert!(e.contains("server.tls.key") && e.contains("does not belong"), "{e}");
    let e = start_err(tls_config(up, &dir.path().join("missing"), "")).unwrap_err();
    assert!(e.contains("server.tls.cert") && e.contains("cannot read"), "{e}");
    // check-config reads the files as run does.
    let missing = dir.path().join("check.toml");
    std::fs::write(&missing, tls_config(up, &dir.path().join("missing"), "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xumm-gate")).args(["check-config", "--config"]).arg(&missing).output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("server.tls.cert") && said.contains("cannot read"), "{said}");
    let e = start_err(tls_config(up, dir.path(), "min_version = \"1.1\"")).unwrap_err();
    assert!(e.contains("server.tls.min_version"), "{e}");
    let e = start_err(tls_config(up, dir.path(), "").replace("https://localhost:8443", "http://localhost:8080")).unwrap_err();
    assert!(e.contains("server.public_url") && e.contains("https"), "{e}");
    let e = start_err(tls_config(up, dir.path(), "[[server.tls.sni]]\ncert = \"x\"\nkey = \"y\"\nhosts = [\"a*b\"]")).unwrap_err();
    assert!(e.contains("server.tls.sni[0].hosts[0]"), "{e}");
}

// ---------- https:// upstreams ----------

/// A gateway (plain HTTP) in front of one https:// upstream, with `extra` in its `[[upstream]]`.
async fn https_upstream_gateway(url: &str, extra: &str) -> xumm_gate::Running {
    common::gateway(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"

[[upstream]]
path = "/"
url = "{url}"
{extra}

[[route]]
path = "/"
public = true
"#
    ))
    .await
}

#[tokio::test]
async fn https_upstreams_with_a_ca_file_speak_http2_when_offered() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let ca_file = format!("ca_file = \"{}/ca.pem\"", dir.path().display());
    let server = ca.server(&["localhost"]);
    let up = common::pki::tls_upstream(&server, None, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}", up.port());

    let gw = https_upstream_gateway(&url, &ca_file).await;
    let got = common::get(gw.addr, "/through?x=1").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let v = got.json();
    assert_eq!(v["version"], "HTTP/2.0", "the upstream offered h2");
    // HTTP/2 carries scheme and authority as pseudo-headers: the URL's.
    assert_eq!(v["uri"], format!("{url}/through?x=1"));
    // The body streams through TLS whole.
    let big = common::get(gw.addr, "/download?n=3000000").await;
    assert_eq!((big.status, big.body.len()), (StatusCode::OK, 3_000_000));
    // A WebSocket upgrade goes over HTTP/1.1 even to an h2 upstream.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr)).await.expect("websocket through an https upstream");
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), "ping");
    gw.shutdown().await;

    // http2 = false keeps it on HTTP/1.1; the Host header can be set.
    let gw = https_upstream_gateway(&url, &format!("{ca_file}\nhttp2 = false\nhost_header = \"app.internal\"")).await;
    let got = common::get(gw.addr, "/h1").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.json()["version"], "HTTP/1.1");
    assert_eq!(got.upstream_header("host"), ["app.internal"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_https_upstream_with_a_certificate_nobody_trusts_is_a_502() {
    common::captured_logs(); // start capturing
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream CA");
    let other = Ca::new("Some other CA");
    std::fs::write(dir.path().join("other.pem"), other.pem()).unwrap();
    let up = common::pki::tls_upstream(&ca.server(&["localhost"]), None, &[b"http/1.1"]).await;
    let url = format!("https://localhost:{}", up.port());
    // The wrong CA file, and the bundled web PKI roots (which never trust a test CA).
    for extra in [format!("ca_file = \"{}/other.pem\"", dir.path().display()), String::new()] {
        let gw = https_upstream_gateway(&url, &extra).await;
        let got = common::get(gw.addr, "/x").await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{extra}: {}", got.text());
        assert!(!got.text().contains("UnknownIssuer"), "the reason is logged, not shown");
        gw.shutdown().await;
    }
    // The log line names the upstream and why its certificate was refused.
    let logs = common::captured_logs();
    let line = logs.iter().find(|l| l["upstream"] == url.as_str() && l["message"] == "upstream failed").expect("a log line for the upstream");
    assert!(line["cause"].as_str().unwrap().contains("UnknownIssuer"), "{line}");
}

#[tokio::test]
async fn a_config_reload_re_reads_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let (first, second) = (ca.server(&["localhost"]), ca.server(&["localhost"]));
    first.write(dir.path(), "server");
    let up = common::upstream().await;
    // No polling to speak of: only the reload re-reads the files.
    let file = dir.path().join("config.toml");
    std::fs::write(&file, tls_config(up, dir.path(), r#"reload_interval = "1h""#)).unwrap();
    let gw = xumm_gate::start(xumm_gate::config::Config::load(&file, &common::no_env).unwrap()).await.unwrap();
    gw.live.set_source(file.clone());
    let cfg = || client_config(&ca.pem(), h1(), None);
    assert_eq!(TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap().peer, first.der());
    second.write(dir.path(), "server");
    let r = common::send(http::Request::post(format!("http://{}/config/reload", gw.admin_addr.unwrap())).body(common::full("")).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap().peer, second.der());
    // A reload whose certificate is broken is refused as a whole.
    Pair { cert: first.cert.clone(), key: second.key.clone() }.write(dir.path(), "server");
    let r = common::send(http::Request::post(format!("http://{}/config/reload", gw.admin_addr.unwrap())).body(common::full("")).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("server.tls.key"), "{}", r.text());
    assert_eq!(TlsConn::open(gw.addr, "localhost", cfg()).await.unwrap().peer, second.der());
    gw.shutdown().await;
}

#[tokio::test]
async fn mtls_to_the_upstream_and_the_name_verified_can_differ_from_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream CA");
    let clients = Ca::new("Gateway client CA");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let (cert, key) = clients.client("xumm-gate", "Example").write(dir.path(), "client");
    // The upstream's certificate names upstream.internal only; it is reached by IP.
    let up = common::pki::tls_upstream(&ca.server(&["upstream.internal"]), Some(&clients), &[b"http/1.1"]).await;
    let url = format!("https://127.0.0.1:{}", up.port());
    let d = dir.path().display();
    let base = format!("ca_file = \"{d}/ca.pem\"\ntls_server_name = \"upstream.internal\"");

    let gw = https_upstream_gateway(&url, &base).await;
    assert_eq!(common::get(gw.addr, "/x").await.status, StatusCode::BAD_GATEWAY, "no client certificate: refused by the upstream");
    gw.shutdown().await;

    let mtls = format!("{base}\nclient_cert = \"{}\"\nclient_key = \"{}\"", cert.display(), key.display());
    let gw = https_upstream_gateway(&url, &mtls).await;
    let got = common::get(gw.addr, "/x").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.upstream_header("host"), [format!("127.0.0.1:{}", up.port())]);
    gw.shutdown().await;

    // Without tls_server_name the IP is verified, which the certificate does not name.
    let gw = https_upstream_gateway(&url, &mtls.replace("tls_server_name = \"upstream.internal\"", "")).await;
    assert_eq!(common::get(gw.addr, "/x").await.status, StatusCode::BAD_GATEWAY);
    gw.shutdown().await;
}

#[test]
fn upstream_tls_settings_are_checked() {
    let check = |extra: &str, url: &str| {
        let text = format!("[[upstream]]\npath = \"/\"\nurl = \"{url}\"\n{extra}\n");
        xumm_gate::config::Config::from_toml(&text, &common::no_env).err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(check("ca_file = \"/x\"", "http://a").contains("upstream[0].ca_file: applies only to an https:// url"));
    assert!(check("client_cert = \"/x\"", "https://a").contains("upstream[0].client_key"));
    assert!(check("tls_server_name = \"a b\"", "https://a").contains("upstream[0].tls_server_name"));
    assert!(check("", "ftp://a").contains("upstream[0].url"));
    assert_eq!(check("", "https://a"), "");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cfg = xumm_gate::config::Config::from_toml("[[upstream]]\npath = \"/\"\nurl = \"https://a\"\nca_file = \"/nonexistent.pem\"\n", &common::no_env).unwrap();
    let e = rt.block_on(xumm_gate::start(cfg)).err().unwrap().to_string();
    assert!(e.contains("upstream[0].ca_file") && e.contains("cannot read"), "{e}");
}
