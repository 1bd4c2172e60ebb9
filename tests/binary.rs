//! The built `xumm-gate` binary: CLI, config errors, logs, and flat memory while streaming.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use http::{Request, StatusCode};

const BIN: &str = env!("CARGO_BIN_EXE_xumm-gate");

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Starts the binary on a fixed free port and waits until it answers.
async fn spawn_gateway(config: &str, env: &[(&str, &str)]) -> (Proc, std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
    let port = free_port();
    let text = config.replace("\nlisten = \"127.0.0.1:0\"", &format!("\nlisten = \"127.0.0.1:{port}\""));
    let file = write_config(&text);
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"]).arg(file.path()).stderr(Stdio::piped()).stdout(Stdio::null()).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // In the guard at once: a failed start must not leave the process behind.
    let mut proc = Proc(cmd.spawn().unwrap());
    let stderr = proc.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            std::mem::forget(file); // keep the file for the process lifetime
            return (proc, addr, rx);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gateway binary did not start");
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("xumm-gate "));
}

#[test]
fn check_config_redacts_secrets_and_names_bad_keys() {
    let secret = "c2VjcmV0LWNvb2tpZS1rZXktdGhhdC1pcy1sb25nLWVub3VnaC0xMjM0NQ==";
    let out = Command::new(BIN)
        .args(["check-config", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")])
        .env("XUMM_API_KEY", "11111111-2222-3333-4444-555555555555")
        .env("XUMM_API_SECRET", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        .env("XUMM_GATE_COOKIE_SECRET", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("<redacted>"));
    assert!(!stdout.contains("aaaaaaaa-bbbb"), "API secret printed: {stdout}");
    assert!(!stdout.contains(secret), "cookie secret printed");
    assert!(stdout.contains("11111111-2222-3333-4444-555555555555"), "client_id is not a secret");

    // The shipped config names its env vars when they are missing.
    let out = Command::new(BIN)
        .args(["check-config", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")])
        .env_remove("XUMM_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider.client_id: env XUMM_API_KEY is not set"));

    let bad = write_config("[server]\nlisten = \"x\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n");
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(bad.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen: invalid socket address \"x\""));
}

#[tokio::test]
async fn json_logs_one_line_per_request_without_query() {
    let up = upstream().await;
    let cfg = config_text(up, "").replace("[server]", "[log]\nformat = \"json\"\n\n[server]");
    let (_p, addr, lines) = spawn_gateway(&cfg, &[]).await;
    let got = get(addr, "/some/path?token=SECRETQUERY").await;
    assert_eq!(got.status, StatusCode::OK);
    let mut access = None;
    for _ in 0..50 {
        while let Ok(line) = lines.try_recv() {
            assert!(!line.contains("SECRETQUERY"), "query logged: {line}");
            if line.contains("\"path\":\"/some/path\"") {
                access = Some(line);
            }
        }
        if access.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = access.expect("an access log line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("log line is JSON");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["status"], 200);
    assert_eq!(v["upstream"], format!("http://{up}"));
    assert!(v["duration_ms"].is_number());
    assert!(v["bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn streams_100_mib_each_way_with_flat_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let up = upstream().await;
    let (p, addr, _lines) = spawn_gateway(&config_text(up, ""), &[]).await;
    let pid = p.0.id();
    assert_eq!(get(addr, "/warm").await.status, StatusCode::OK);
    let before = rss_kib(pid);

    // upload: a streamed 100 MiB request body, counted by the upstream
    let got = send(Request::post(format!("http://{addr}/upload")).body(zeros(SIZE)).unwrap()).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), SIZE.to_string());
    let after_up = rss_kib(pid);

    // download: a streamed 100 MiB response body, counted here without keeping it
    use http_body_util::BodyExt;
    let resp = client().request(Request::get(format!("http://{addr}/download?n={SIZE}")).body(full("")).unwrap()).await.unwrap();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            n += d.len() as u64;
        }
    }
    assert_eq!(n, SIZE);
    let after_down = rss_kib(pid);
    let grew = after_up.max(after_down).saturating_sub(before);
    assert!(grew < 32 * 1024, "gateway RSS grew by {grew} KiB (before {before} KiB)");
}

#[tokio::test]
async fn demo_serves_whoami_on_loopback_and_refuses_other_addresses() {
    let port = free_port();
    let admin = free_port();
    let child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut got = None;
    for _ in 0..300 {
        if let Ok(Some(status)) = p.0.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("demo exited with {status}: {err}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            got = Some(send(Request::get(format!("http://{addr}/public/")).header("accept", "text/html").body(full("")).unwrap()).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.expect("demo started");
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.text().contains("<h1>whoami</h1>"));
    // everything else needs sign-in: a browser is sent to the development provider's flow
    let got = send(Request::get(format!("http://{addr}/")).header("accept", "text/html").body(full("")).unwrap()).await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.headers["location"], "/.xumm/start?rd=%2F");

    let out = Command::new(BIN).args(["demo", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback addresses only"));
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let up = upstream().await;
    let idp = idp().await;
    let cfg = auth_config(up, &idp.issuer, "", &format!("\n[bearer]\naudiences = [\"{NATIVE_CLIENT_ID}\"]\n"));
    let (_p, addr, lines) = spawn_gateway(&cfg, &[("RUST_LOG", "debug")]).await;
    let mut ready = false;
    for _ in 0..100 {
        if get(addr, "/.xumm/start?rd=/").await.status == StatusCode::FOUND {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "gateway binary never became ready");
    let (name, value) = login(addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    assert_eq!(get_with(addr, "/x", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    let token = idp.issue_token(NATIVE_CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"usertoken_uuidv4": "9f8e7d6c-0000-4000-8000-123456789abc"}));
    assert_eq!(get_with(addr, "/x", &[("authorization", &format!("Bearer {token}"))]).await.status, StatusCode::OK);
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(get_with(addr, "/x", &[("authorization", &format!("Bearer {forged}"))]).await.status, StatusCode::UNAUTHORIZED);
    get_with(addr, "/.xumm/sign_out", &[("cookie", &cookie)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log: Vec<String> = lines.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("signed in")), "expected a sign-in log line");
    let sig = token.rsplit('.').next().unwrap();
    for secret in [CLIENT_SECRET, COOKIE_SECRET, value.as_str(), sig, &forged[forged.len() - 20..], "9f8e7d6c-0000-4000-8000-123456789abc"] {
        for l in &log {
            assert!(!l.contains(secret), "secret {secret:?} in log line: {l}");
        }
    }
}

#[test]
fn a_first_run_without_a_config_says_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).current_dir(empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for hint in ["no config file at config.toml", "xumm-gate demo", "xumm-gate check-config --config", "xumm-gate --config"] {
        assert!(err.contains(hint), "{hint} missing:\n{err}");
    }
}

#[test]
fn every_config_problem_and_warning_is_printed_by_check_config() {
    let bad = write_config("[server]\nlisten = \"x\"\nworkers = 9999\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n");
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(bad.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("xumm-gate: config error: server.listen:") && lines[1].starts_with("xumm-gate: config error: server.workers:"), "{err}");
    let warn = write_config("[server]\npublic_url = \"http://app.example.com\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n");
    let out = Command::new(BIN).args(["check-config", "--config"]).arg(warn.path()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: server.public_url:"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_port_in_use_is_a_one_line_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = write_config(&format!("[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"\"\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n"));
    let out = Command::new(BIN).args(["run", "--config"]).arg(cfg.path()).env_remove("RUST_LOG").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.starts_with(&format!("xumm-gate: cannot listen on 127.0.0.1:{port}"))), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_not_a_terminal() {
    let up = upstream().await;
    let (_proc, addr, lines) = spawn_gateway(&config_text(up, ""), &[]).await;
    assert_eq!(get(addr, "/public/x").await.status, StatusCode::OK);
    let mut seen = Vec::new();
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(2)) {
        let done = l.contains("request");
        seen.push(l);
        if done {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains("xumm-gate serving")), "{seen:?}");
    assert!(seen.iter().all(|l| !l.contains('\u{1b}')), "escape codes in a piped log: {seen:?}");
}

/// Access lines are written by a thread of their own, in batches: under a burst of requests and
/// a stop right after, every line still reaches stderr (none dropped, none left in the buffer).
#[tokio::test(flavor = "multi_thread")]
async fn every_access_line_is_written_even_when_stopped_right_after_a_burst() {
    let up = upstream().await;
    let cfg = config_text(up, "").replace("[server]", "[log]\nformat = \"json\"\n\n[server]");
    let (p, addr, lines) = spawn_gateway(&cfg, &[]).await;
    let mut all = Vec::new();
    for i in 0..300 {
        all.push(tokio::spawn(async move { get(addr, &format!("/burst/{i}")).await.status }));
    }
    for h in all {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    // SIGTERM: a graceful stop, which writes out what is buffered.
    assert!(Command::new("kill").args(["-TERM", &p.0.id().to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 300 && std::time::Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(i) = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["path"].as_str()?.strip_prefix("/burst/")?.parse::<u32>().ok()) {
                    seen.insert(i);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
    }
    assert_eq!(seen.len(), 300, "access lines written");
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id() {
    // Nothing listens upstream: each request logs a warning and its access line.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = config_text(dead, "").replace("[server]", "[log]\nformat = \"json\"\n\n[server]");
    let (_p, addr, lines) = spawn_gateway(&cfg, &[]).await;
    let fast = get(addr, "/a").await;
    let general = send(Request::post(format!("http://{addr}/b")).body(full("x")).unwrap()).await;
    let mut seen: Vec<serde_json::Value> = Vec::new();
    for (got, path) in [(&fast, "/a"), (&general, "/b")] {
        assert_eq!(got.status, StatusCode::BAD_GATEWAY);
        let id = got.headers["x-request-id"].to_str().unwrap().to_string();
        let mut warned = false;
        let mut access = false;
        for _ in 0..60 {
            while let Ok(line) = lines.try_recv() {
                seen.push(serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}")));
            }
            let mine = |v: &&serde_json::Value| v["request_id"] == id.as_str() || v["span"]["request_id"] == id.as_str();
            warned = seen.iter().filter(mine).any(|v| v["fields"]["message"] == "upstream failed" || v["message"] == "upstream failed");
            access = seen.iter().filter(mine).any(|v| v["path"] == path && v["status"] == 502);
            if warned && access {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(warned && access, "{path}: warning {warned}, access line {access}; lines: {seen:?}");
    }
}
