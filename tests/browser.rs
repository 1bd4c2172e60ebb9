//! End-to-end: a real headless Chromium (Debian `chromium`) signs in through `xumm-gate demo`
//! (development provider + whoami) via playwright-core. `.ci/run` installs chromium and runs
//! `npm ci` in tests/browser; this test runs `npm ci` itself when node_modules is missing.

use std::process::Command;

mod common;

/// The browser tools installed (`npm ci` when missing) and a demo whose provider is loaded.
async fn ready_demo() -> (&'static str, xumm_gate::demo::Demo) {
    let dir = common::js::tools();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let demo = xumm_gate::demo::start("127.0.0.1:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()).await.expect("demo starts");
    for _ in 0..100 {
        if demo.gateway.gateway.life.ready.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (dir, demo)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_through_the_demo() {
    let (dir, demo) = ready_demo().await;
    // the gateway's public_url is the demo listen address; use the bound one
    let base = format!("http://{}", demo.gateway.addr);
    let account = "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA";
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").args(["120", "node", "signin.mjs"]).arg(&base).arg(account).current_dir(dir).output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = stdout.lines();
    let first: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(first["account"], account);
    assert_eq!(first["path"], "/dashboard?tab=1");
    assert_eq!(first["network"], true);
    let signed: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(signed["sign_outcome"], "signed", "the brokered sign request resolved as signed");
    let last: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(last["after_sign_out"], "/auth");
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_opens_the_demo_as_an_xapp() {
    let (dir, demo) = ready_demo().await;
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
    std::fs::create_dir_all(shots).unwrap();
    let wallet = demo.platform.url.clone();
    let account = "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA";
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").args(["120", "node", "xapp.mjs"]).arg(&wallet).arg(account).env("SCREENSHOT_DIR", shots).current_dir(dir).output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(got["landed"], "/", "the token is gone from the address bar: {got}");
    assert_eq!(got["shown_account"], true, "{got}");
    assert_eq!((got["readonly"].as_bool(), got["dark"].as_bool()), (Some(true), Some(true)), "{got}");
    assert_eq!(got["reused_status"], 400, "a used link opens nothing: {got}");
    assert_eq!(got["reused_says"], true, "{got}");
    assert_eq!((got["launcher_overflows"].as_bool(), got["reused_overflows"].as_bool()), (Some(false), Some(false)), "{got}");
    demo.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_with_a_qr_code_that_updates_live() {
    let (dir, _demo) = ready_demo().await;
    // A gateway signing in with SignIn payloads, in front of whoami, against the development platform.
    let whoami = xumm_gate::demo::whoami::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let platform = xumm_gate::demo::platform::DevPlatform::start("127.0.0.1:0".parse().unwrap(), "qr-key", "qr-secret").await.unwrap();
    // public_url names the port, so it is probed first; another test may take it meanwhile.
    let mut gw = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [provider]\nkind = \"payload\"\n[session]\ncookie_secrets = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n\
             [xumm]\napi_url = \"{}\"\napi_key = \"qr-key\"\napi_secret = \"qr-secret\"\n[[upstream]]\npath = \"/\"\nurl = \"http://{whoami}\"\n",
            platform.url
        );
        if let Ok(g) = xumm_gate::start(xumm_gate::config::Config::from_toml(&text, &|_| None).unwrap()).await {
            gw = Some(g);
            break;
        }
    }
    let gw = gw.expect("the gateway starts");
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
    std::fs::create_dir_all(shots).unwrap();
    let base = format!("http://{}", gw.addr);
    let account = "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA";
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").args(["120", "node", "qr.mjs"]).arg(&base).arg(account).env("SCREENSHOT_DIR", shots).current_dir(dir).output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert!(got["qr_path"].as_str().unwrap().starts_with("/.xumm/qr/"), "{got}");
    assert_eq!(got["qr_overflows"], false, "{got}");
    assert_eq!(got["landed"], "/dashboard?tab=2", "{got}");
    assert_eq!(got["account"], account, "{got}");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_gateway_page_is_accessible_light_and_dark_from_320_px_to_desktop() {
    let (dir, demo) = ready_demo().await;
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
    std::fs::create_dir_all(shots).unwrap();
    let (base, wallet) = (format!("http://{}", demo.gateway.addr), demo.platform.url.clone());
    // The "temporarily unavailable" page, six times: Xumm fails the first six calls.
    demo.platform.fail_next(&[http::StatusCode::SERVICE_UNAVAILABLE; 6]);
    let (admin, other) = (xumm_gate::demo::idp::DEMO_ACCOUNT, "r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").args(["300", "node", "a11y.mjs"]).arg(&base).arg(&wallet).arg(admin).arg(other).env("SCREENSHOT_DIR", shots).current_dir(dir).output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 8 * 6, "every page at three widths, light and dark: {stdout}");
    assert!(rows.iter().filter(|r| r["page"] == "temporarily-unavailable").all(|r| r["status"] == 503), "{stdout}");
    for r in &rows {
        assert_eq!(r["serious"], serde_json::json!([]), "serious accessibility violations: {r} (screenshot in {shots})");
        assert_eq!(r["overflow"], false, "{r} overflows (screenshot in {shots})");
        assert_eq!(r["lang"], "en", "{r}");
    }
    demo.gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_demo_page_fits_a_phone_screen() {
    let (dir, demo) = ready_demo().await;
    // Screenshots are kept as test artifacts.
    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots");
    std::fs::create_dir_all(shots).unwrap();
    let base = format!("http://{}", demo.gateway.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").args(["120", "node", "pages.mjs"]).arg(&base).env("SCREENSHOT_DIR", shots).current_dir(dir).output().expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let pages: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = pages.iter().map(|p| p["page"].as_str().unwrap()).collect();
    assert_eq!(names, ["sign-in-choice", "provider-sign-in", "whoami", "wallet", "whoami-public", "error-404", "error-400"]);
    for p in &pages {
        assert_eq!(p["overflow"], false, "{p} overflows 390 px (screenshot in {shots})");
        assert_eq!(p["viewport"], true, "{p} has no viewport");
    }
    assert_eq!(pages[2]["identity_first"], true, "whoami shows the identity headers first");
    assert_eq!(pages[3]["instruction"], "Demo sign request from whoami", "the wallet shows the instruction");
    assert_eq!(pages[4]["explains"], true, "whoami explains a public route");
    assert_eq!((pages[5]["status"].as_u64(), pages[5]["html"].as_bool()), (Some(404), Some(true)));
    assert_eq!((pages[6]["status"].as_u64(), pages[6]["html"].as_bool()), (Some(400), Some(true)));
    demo.gateway.shutdown().await;
}
