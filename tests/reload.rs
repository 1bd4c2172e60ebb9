//! Live config reload: SIGHUP and `POST /config/reload` apply a changed config file to requests
//! that start afterwards, refuse a bad one (the old keeps serving), report what needs a restart,
//! never fail a request across reloads, and `allow_accounts_file` is applied when edited.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};

/// A gateway in front of `up` whose `/gated` route is public or not, with `extra` at the end.
fn config(up: SocketAddr, gated_public: bool, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"

[headers]
strip = ["x-reload-test"]

[[upstream]]
path = "/"
url = "http://{up}"

[[route]]
path = "/"
public = true

[[route]]
path = "/gated"
public = {gated_public}
{extra}
"#
    )
}

/// Starts a gateway from the config file at `path`, which later reloads read.
async fn start_from(path: &Path) -> xumm_gate::Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = xumm_gate::config::Config::load(path, &no_env).expect("valid config");
    let gw = xumm_gate::start(cfg).await.expect("starts");
    gw.live.set_source(path.to_path_buf());
    gw
}

async fn admin_reload(gw: &xumm_gate::Running) -> Got {
    send(Request::post(format!("http://{}/config/reload", gw.admin_addr.unwrap())).body(full("")).unwrap()).await
}

#[tokio::test]
async fn a_reload_applies_routes_and_upstreams_and_names_what_needs_a_restart() {
    let (one, two) = (upstream().await, upstream().await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config(one, false, "")).unwrap();
    let gw = start_from(&file).await;
    assert_eq!(get(gw.addr, "/gated").await.status, StatusCode::UNAUTHORIZED, "protected, and nothing can sign in");
    let before = get(gw.addr, "/x").await.json();
    assert_eq!(before["headers"].as_array().unwrap().iter().find(|h| h[0] == "host").unwrap()[1], one.to_string());

    // The route opens and the upstream moves, on the next request.
    std::fs::write(&file, config(two, true, "")).unwrap();
    let r = admin_reload(&gw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"reloaded": true, "restart_needed": []}));
    assert_eq!(get(gw.addr, "/gated").await.status, StatusCode::OK);
    let after = get(gw.addr, "/x").await.json();
    assert_eq!(after["headers"].as_array().unwrap().iter().find(|h| h[0] == "host").unwrap()[1], two.to_string());

    // What cannot change live is named and kept: the listener stays where it is.
    let moved = config(two, true, "").replace("listen = \"127.0.0.1:0\"\nadmin", &format!("listen = \"127.0.0.1:{}\"\nadmin", free_port()));
    std::fs::write(&file, moved).unwrap();
    let r = admin_reload(&gw).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["restart_needed"], serde_json::json!(["server.listen"]));
    assert_eq!(get(gw.addr, "/gated").await.status, StatusCode::OK, "still serving on the old address");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bad_config_is_refused_and_the_running_one_keeps_serving() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config(up, true, "")).unwrap();
    let gw = start_from(&file).await;
    let admin = gw.admin_addr.unwrap();
    for (bad, key) in [
        (config(up, false, "allow_networks = [\"not a network\"]"), "route[1].allow_networks[0]"),
        ("[server\nlisten = ".to_string(), "invalid TOML"),
        (config(up, false, "allow_accounts_file = \"/nonexistent/list\""), "route[1].allow_accounts_file"),
    ] {
        std::fs::write(&file, bad).unwrap();
        let r = admin_reload(&gw).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["reloaded"], false);
        assert!(r.json()["error"].as_str().unwrap().contains(key), "{}", r.text());
        assert_eq!(get(gw.addr, "/gated").await.status, StatusCode::OK, "the old config serves");
        assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK, "readiness unchanged");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn ten_reloads_under_load_fail_no_request_and_requests_in_flight_finish_on_their_config() {
    let (one, two) = (upstream().await, upstream().await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config(one, true, "")).unwrap();
    let gw = start_from(&file).await;
    let addr = gw.addr;

    // A request in flight when its upstream is moved away finishes on the old one.
    let slow = tokio::spawn(async move { get(addr, "/slow?ms=800").await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            // Keep-alive clients (fast path and, with a body, the general path) and one that
            // opens a connection per request.
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                let req = match i {
                    0 => Request::get(format!("http://{addr}/gated/a")).body(full("")),
                    1 => Request::post(format!("http://{addr}/upload")).body(full("some body")),
                    2 => Request::get(format!("http://{addr}/x")).header("connection", "close").body(full("")),
                    _ => Request::get(format!("http://{addr}/download?n=100000")).body(full("")),
                }
                .unwrap();
                let good = match client.request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = http_body_util::BodyExt::collect(resp.into_body()).await;
                        status == StatusCode::OK && body.is_ok()
                    }
                    Err(_) => false,
                };
                if good { ok.fetch_add(1, Ordering::Relaxed) } else { failed.fetch_add(1, Ordering::Relaxed) };
            }
        }));
    }
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&file, config(if n % 2 == 0 { two } else { one }, true, "")).unwrap();
        let r = admin_reload(&gw).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed across reloads ({} succeeded)", ok.load(Ordering::Relaxed));
    assert!(ok.load(Ordering::Relaxed) > 40, "the load was real: {}", ok.load(Ordering::Relaxed));
    let slow = slow.await.unwrap();
    assert_eq!((slow.status, slow.text()), (StatusCode::OK, "slow done".to_string()));
    gw.shutdown().await;
}

#[tokio::test]
async fn an_allow_accounts_file_is_applied_when_edited() {
    let up = upstream().await;
    let idp = idp().await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("members.txt");
    let other = "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe";
    std::fs::write(&list, format!("# members\n{other}\n")).unwrap();
    let route = format!("\n[[route]]\npath = \"/members\"\nallow_accounts_file = \"{}\"\n", list.display());
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", &route)).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let members = || async { get_with(gw.addr, "/members", &[("cookie", &cookie)]).await.status };
    assert_eq!(members().await, StatusCode::FORBIDDEN);

    let eventually = |want: StatusCode| {
        let members = &members;
        async move {
            for _ in 0..60 {
                if members().await == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    std::fs::write(&list, format!("# members\n{other}\n{ACCOUNT}   # added\n")).unwrap();
    assert!(eventually(StatusCode::OK).await, "the edited list was never applied");
    // A bad line: refused, the list in use stays.
    std::fs::write(&list, format!("{ACCOUNT}\nnot-an-address\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(members().await, StatusCode::OK);
    // Emptied: nobody (an empty file never opens the route to everyone).
    std::fs::write(&list, "# nobody for now\n").unwrap();
    assert!(eventually(StatusCode::FORBIDDEN).await, "an emptied list must admit nobody");
    gw.shutdown().await;
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let port = free_port();
    let text = |public: bool| config(up, public, "").replacen("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""), 1);
    std::fs::write(&file, text(false)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xumm-gate"))
        .args(["run", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut up_now = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up_now = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up_now, "the binary did not start");
    assert_eq!(get(addr, "/gated").await.status, StatusCode::UNAUTHORIZED);
    std::fs::write(&file, text(true)).unwrap();
    std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    let mut opened = false;
    for _ in 0..50 {
        if get(addr, "/gated").await.status == StatusCode::OK {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(opened, "SIGHUP did not apply the new config");
}

#[tokio::test]
async fn with_an_admin_token_the_admin_actions_need_it_and_the_probes_do_not() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let token = "a-long-enough-admin-token";
    std::fs::write(&file, config(up, true, "").replace("[headers]", &format!("admin_token = \"{token}\"\n\n[headers]"))).unwrap();
    let gw = start_from(&file).await;
    let admin = gw.admin_addr.unwrap();
    let post = |path: &str, auth: Option<&str>| {
        let mut r = Request::post(format!("http://{admin}{path}"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        send(r.body(full("")).unwrap())
    };
    for path in ["/config/reload", &format!("/sessions/revoke?account={ACCOUNT}")] {
        for auth in [None, Some("Bearer wrong-token-of-some-length"), Some(token)] {
            let r = post(path, auth).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} with {auth:?}");
            assert!(!r.text().contains(token));
        }
    }
    assert_eq!(post("/config/reload", Some(&format!("Bearer {token}"))).await.status, StatusCode::OK);
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK, "probes stay open");
    assert_eq!(get(admin, "/metrics").await.status, StatusCode::OK);
    gw.shutdown().await;
    let short = xumm_gate::config::Config::from_toml(&config(up, true, "").replace("[headers]", "admin_token = \"short\"\n\n[headers]"), &no_env);
    assert!(short.err().unwrap().to_string().contains("server.admin_token: must be at least 16 characters"));
}
