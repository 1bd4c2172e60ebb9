//! Real nginx (Debian package) with `auth_request` to the gateway, running deploy/nginx/xumm-gate.conf.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use http::StatusCode;

struct Nginx(Child, tempfile::TempDir); // the dir lives as long as nginx
impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (SIGKILL would orphan them, still listening);
    /// SIGKILL only if it has not exited within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_bin() -> &'static str {
    if std::path::Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" }
}

async fn start_nginx(gateway: std::net::SocketAddr, app: std::net::SocketAddr) -> (Nginx, std::net::SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let site = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx/xumm-gate.conf"))
        .unwrap()
        .replace("127.0.0.1:4180", &gateway.to_string())
        .replace("127.0.0.1:8080", &app.to_string())
        .replace("listen 8000;", &format!("listen 127.0.0.1:{port};"));
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\nevents {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n \
         uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let nginx = Command::new(nginx_bin())
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx is installed (.ci/run installs it)");
    // In the guard at once: a failed start must not leave the process behind.
    let nginx = Nginx(nginx, dir);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (nginx, addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start: {}", std::fs::read_to_string(nginx.1.path().join("error.log")).unwrap_or_default());
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_app() {
    let app = upstream().await;
    let idp = idp().await;
    let more = format!("\n[bearer]\naudiences = [\"{NATIVE_CLIENT_ID}\"]\n");
    let gw = ready_gateway(&auth_config(app, &idp.issuer, "", &more)).await;
    let (_nginx, ng) = start_nginx(gw.addr, app).await;

    // no session: 401 for API clients, a sign-in redirect for browsers
    let got = get_with(ng, "/app", &[("accept", "application/json"), ("x-xumm-account", ACCOUNT)]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let got = get_with(ng, "/app", &[("accept", "text/html")]).await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.headers["location"].to_str().unwrap(), "http://127.0.0.1:4180/.xumm/start?rd=%2Fapp");

    // a session reaches the app with the account header, and spoofed copies are replaced
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let got = get_with(ng, "/app", &[("cookie", &cookie), ("x-xumm-account", "rEVIL"), ("x-forwarded-user", "rEVIL")]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    assert_eq!(got.upstream_header("x-xumm-network"), vec!["MAINNET"]);
    assert_eq!(got.upstream_header("x-forwarded-user"), vec![ACCOUNT]);

    // policy is applied on the URI nginx asks about
    let (name, value) = login(gw.addr, OTHER_ACCOUNT, "MAINNET").await;
    let got = get_with(ng, "/admin/panel", &[("cookie", &format!("{name}={value}"))]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(get_with(ng, "/public/x", &[]).await.status, StatusCode::OK);

    // a Bearer token from a native app works the same; the JWT itself is not passed on
    let token = idp.issue_token(NATIVE_CLIENT_ID, ACCOUNT, "TESTNET", serde_json::json!({}));
    let got = get_with(ng, "/api/me", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    assert!(got.upstream_header("authorization").is_empty());

    // the sign-in endpoints are reachable through nginx
    assert_eq!(get_with(ng, "/.xumm/userinfo", &[("cookie", &cookie)]).await.json()["account"], ACCOUNT);
}

/// The URL a sign-in that starts at `location` finally returns the browser to.
async fn returns_to(gw: std::net::SocketAddr, location: &str) -> String {
    let start = url::Url::parse(location).unwrap();
    let rd = start.query_pairs().find(|(k, _)| k == "rd").map(|(_, v)| v.into_owned()).expect("rd");
    let (pending, callback) = begin_login(gw, &rd, ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(gw, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    done.headers["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn sign_in_through_nginx_returns_to_the_whole_original_url() {
    let app = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(app, &idp.issuer, "", "")).await;
    let (_nginx, ng) = start_nginx(gw.addr, app).await;
    for original in ["/search?q=xrp&page=2", "/a%26b?x=%23y", "/my%20page", "/search?q=a+b&sort=-date"] {
        let got = get_with(ng, original, &[("accept", "text/html")]).await;
        assert_eq!(got.status, StatusCode::FOUND, "{original}: {}", got.text());
        let location = got.headers["location"].to_str().unwrap();
        assert!(location.starts_with("http://127.0.0.1:4180/.xumm/start?rd="), "{location}");
        assert_eq!(returns_to(gw.addr, location).await, original, "sign-in returns to {original}");
    }
    // API clients still get the 401, POSTs from browsers a 303.
    assert_eq!(get_with(ng, "/search?q=1", &[("accept", "application/json")]).await.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_gateway_for_forward_auth_only_needs_no_upstream() {
    let app = upstream().await;
    let idp = idp().await;
    let cfg = auth_config(app, &idp.issuer, "", "").replace(&format!("[[upstream]]\npath = \"/\"\nurl = \"http://{app}\"\n"), "");
    assert!(!cfg.contains("[[upstream]]"));
    let gw = ready_gateway(&cfg).await;
    let (_nginx, ng) = start_nginx(gw.addr, app).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let got = get_with(ng, "/app", &[("cookie", &format!("{name}={value}"))]).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    assert_eq!(get_with(ng, "/app", &[("accept", "application/json")]).await.status, StatusCode::UNAUTHORIZED);
    // Straight to the gateway, a path it does not serve is a 404 that says why.
    let direct = get_with(gw.addr, "/app", &[("cookie", &format!("{name}={value}")), ("accept", "application/json")]).await;
    assert_eq!(direct.status, StatusCode::NOT_FOUND);
    assert!(direct.text().contains("forward auth"), "{}", direct.text());
    gw.shutdown().await;
}
