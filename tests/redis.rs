//! `session.store = "redis"` against real `redis-server` processes this test starts on free ports
//! (never the machine's shared instance): replicas share sessions, sign-outs reach every replica
//! at once, restarts sign nobody out, and an outage is a 503, never a sign-in loop.
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;

/// A redis-server of this test's own, without persistence.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    /// user:password for the URL, when the server requires them.
    auth: Option<String>,
}

impl Redis {
    async fn start() -> Redis {
        Redis::start_with(&[]).await
    }

    /// With more redis-server arguments (ACL users, ...).
    async fn start_with(args: &[&str]) -> Redis {
        let mut r = Redis { child: None, port: free_port(), dir: tempfile::tempdir().unwrap(), args: args.iter().map(|a| a.to_string()).collect(), auth: None };
        r.restart().await;
        r
    }

    /// Starts (again) on the same port; its data is gone, as after a real restart without persistence.
    async fn restart(&mut self) {
        let bin = if std::path::Path::new("/usr/bin/redis-server").exists() { "/usr/bin/redis-server" } else { "redis-server" };
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    /// Answers at all (a PING refused for want of authentication counts: the server is up).
    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else { return false };
        let mut buf = [0u8; 1];
        s.write_all(b"PING\r\n").await.is_ok() && tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf)).await.is_ok_and(|r| r.is_ok()) && matches!(&buf, b"+" | b"-")
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    fn url(&self) -> String {
        match &self.auth {
            Some(a) => format!("redis://{a}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Every key the gateway wrote, with its value (a string, or a set's members joined).
    async fn keys_and_values(&self) -> Vec<(String, String)> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("test-gw:*").query_async(&mut c).await.unwrap();
        keys.sort();
        let mut out = Vec::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut c).await.unwrap();
            let v: String = if kind == "set" {
                let m: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query_async(&mut c).await.unwrap();
                m.join(" ")
            } else {
                redis::cmd("GET").arg(&k).query_async(&mut c).await.unwrap()
            };
            out.push((k, v));
        }
        out
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
        self.stop();
    }
}

fn redis_config(up: SocketAddr, issuer: &str, redis: &Redis, extra_session: &str) -> String {
    auth_config(up, issuer, "", "").replace(
        &format!("[session]\ncookie_secrets = [\"{COOKIE_SECRET}\"]\n"),
        &format!(
            "[session]\ncookie_secrets = [\"{COOKIE_SECRET}\"]\nstore = \"redis\"\nredis_url = \"{}\"\nredis_key_prefix = \"test-gw:\"\n{extra_session}\n",
            redis.url()
        ),
    )
}

async fn status_of(gw: SocketAddr, cookie: &str, accept: &str) -> Got {
    get_with(gw, "/private", &[("cookie", cookie), ("accept", accept)]).await
}

/// Polls until `gw` answers /private with `want` (or `within` passes); the last answer.
async fn until(gw: SocketAddr, cookie: &str, want: StatusCode, within: Duration) -> Got {
    let end = Instant::now() + within;
    loop {
        let got = status_of(gw, cookie, "application/json").await;
        if got.status == want || Instant::now() > end {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replicas_share_sessions_and_sign_outs_and_restarts_sign_nobody_out() {
    let up = upstream().await;
    let idp = idp().await;
    let redis = Redis::start().await;
    let cfg = redis_config(up, &idp.issuer, &redis, "");
    let a = ready_gateway(&cfg).await;
    let b = ready_gateway(&cfg).await;
    let c = ready_gateway(&cfg).await;

    // Sign in on A, use the session on B and C.
    let (name, value) = login(a.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    for gw in [&a, &b, &c] {
        let got = status_of(gw.addr, &cookie, "application/json").await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
    }
    // What Redis holds: hashed keys, sealed values (no account, no user token, no id): the
    // account's set of session keys and the one session.
    let stored: Vec<_> = redis.keys_and_values().await.into_iter().filter(|(k, _)| !k.starts_with("test-gw:shared:")).collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    let (set, members) = &stored[0];
    let key = &stored[1].0;
    assert!(set.starts_with("test-gw:account:") && set.len() == "test-gw:account:".len() + 64, "{set}");
    assert!(key.starts_with("test-gw:session:") && key.len() == "test-gw:session:".len() + 64, "{key}");
    assert_eq!(members, key);
    for (k, v) in &stored {
        assert!(!k.contains(ACCOUNT) && !v.contains(ACCOUNT) && !v.contains("MAINNET") && !v.contains("usertoken"), "{k}: {v}");
    }

    // Sign out on B: A and C (which hold it in their L1) refuse the old cookie at once.
    let out = get_with(b.addr, "/.xumm/sign_out", &[("cookie", &cookie)]).await;
    assert_eq!(out.status, StatusCode::OK);
    for gw in [&a, &c] {
        let got = until(gw.addr, &cookie, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "pub/sub reached every replica");
    }

    // A login started on A finishes on B.
    let (pending, callback) = begin_login(a.addr, "/", ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(b.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    let (n2, v2) = set_cookies(&done.headers).into_iter().find(|(n, _)| n == "_xumm_gate").unwrap();
    let cookie2 = format!("{n2}={v2}");
    // Its callback replayed on C (say, from the browser's history) opens nothing: the code is
    // spent. With another code under the same state (forged), the claim refuses it first.
    let replay = get_with(c.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "{}", replay.text());
    assert!(set_cookies(&replay.headers).iter().all(|(n, _)| n != "_xumm_gate"));
    let forged = callback.replace("code=", "code=x");
    assert_ne!(forged, callback);
    let replay = get_with(c.addr, &forged, &[("cookie", &cookie_header(&pending))]).await;
    assert!(replay.text().contains("already used"), "{}", replay.text());

    // Every replica restarts, one at a time: nobody is signed out.
    for gw in [a, b, c] {
        gw.shutdown().await;
        let fresh = ready_gateway(&cfg).await;
        let got = status_of(fresh.addr, &cookie2, "application/json").await;
        assert_eq!(got.status, StatusCode::OK, "after a restart: {}", got.text());
        fresh.shutdown().await;
    }
}

#[tokio::test]
async fn a_redis_outage_is_a_503_with_retry_after_never_a_sign_in_loop() {
    let up = upstream().await;
    let idp = idp().await;
    let mut redis = Redis::start().await;
    // A short L1, so that requests soon need Redis; a short timeout, so a hung Redis is a quick 503.
    let cfg = redis_config(up, &idp.issuer, &redis, "l1_ttl = \"1s\"\nredis_timeout = \"300ms\"");
    let gw = ready_gateway(&cfg).await;
    let admin = gw.admin_addr.unwrap();
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    assert_eq!(status_of(gw.addr, &cookie, "text/html").await.status, StatusCode::OK);
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK);

    // Redis hangs (SIGSTOP): once the L1 copy is gone, a 503 within the timeout, not a hung request.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.signal("-STOP");
    for accept in ["text/html", "application/json"] {
        let t = Instant::now();
        let got = status_of(gw.addr, &cookie, accept).await;
        assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{accept}: {}", got.text());
        assert!(got.headers.contains_key("retry-after"));
        assert!(got.headers.get("location").is_none(), "never a redirect to sign-in");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::SERVICE_UNAVAILABLE);
    // A sign-in finishing during the outage gets the same answer, and can be retried later.
    let (pending, callback) = begin_login(gw.addr, "/", ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(gw.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::SERVICE_UNAVAILABLE, "{}", done.text());
    assert!(done.headers.contains_key("retry-after") && done.text().contains("temporarily unavailable"));
    assert!(set_cookies(&done.headers).iter().all(|(n, _)| n != "_xumm_gate"), "no session from an outage");

    // Redis resumes: the same session works again, without restarting the gateway, and
    // reloading the callback page finishes that sign-in.
    redis.signal("-CONT");
    let got = until(gw.addr, &cookie, StatusCode::OK, Duration::from_secs(5)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let again = get_with(gw.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(again.status, StatusCode::FOUND, "the callback, reloaded after the outage: {}", again.text());
    assert!(set_cookies(&again.headers).iter().any(|(n, _)| n == "_xumm_gate"));

    // Redis stops (connection refused), then comes back empty: 503s meanwhile, then sign-in works.
    redis.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got = status_of(gw.addr, &cookie, "text/html").await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE, "{}", got.text());
    redis.restart().await;
    let end = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        let (pending, callback) = begin_login(gw.addr, "/", ACCOUNT, "MAINNET", "approve").await;
        let done = get_with(gw.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
        if done.status == StatusCode::FOUND || Instant::now() > end {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fresh.status, StatusCode::FOUND, "sign-in works again: {}", fresh.text());
    assert_eq!(get(admin, "/readyz").await.status, StatusCode::OK);
    gw.shutdown().await;
}

#[test]
fn redis_config_is_checked() {
    let up: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let base = auth_config(up, "http://127.0.0.1:2", "", "");
    let with = |session: &str, more: &str| {
        base.replace(&format!("[session]\ncookie_secrets = [\"{COOKIE_SECRET}\"]\n"), &format!("[session]\ncookie_secrets = [\"{COOKIE_SECRET}\"]\n{session}\n")) + more
    };
    let err = |text: String| xumm_gate::config::Config::from_toml(&text, &no_env).unwrap_err().to_string();
    assert!(err(with("store = \"redis\"", "")).starts_with("session.redis_url: is required"));
    let e = err(with("store = \"redis\"\nredis_url = \"redis://user:hunter2@127.0.0.1:6379\"", "[assertion]\nenabled = true\n"));
    assert!(e.starts_with("assertion.key: is required with session.store = \"redis\""), "{e}");
    let ok = xumm_gate::config::Config::from_toml(&with("store = \"redis\"\nredis_url = \"redis://user:hunter2@127.0.0.1:6379/2\"", ""), &no_env).unwrap();
    assert!(!ok.redacted_toml().contains("hunter2"), "the URL's password is redacted");
    // Cluster mode: seed nodes as a list or one comma-separated string (one env: value).
    let seeds = "[\"redis://u:hunter2@127.0.0.1:7000\", \"redis://u:hunter2@127.0.0.1:7001\"]";
    let ok = xumm_gate::config::Config::from_toml(&with(&format!("store = \"redis\"\nredis_mode = \"cluster\"\nredis_url = {seeds}"), ""), &no_env).unwrap();
    assert!(!ok.redacted_toml().contains("hunter2"), "every seed's password is redacted");
    assert_eq!(ok.session.as_ref().unwrap().redis_target().urls.len(), 2);
    let env = |_: &str| Some("redis://127.0.0.1:7000, redis://127.0.0.1:7001".to_string());
    let ok = xumm_gate::config::Config::from_toml(&with("store = \"redis\"\nredis_mode = \"cluster\"\nredis_url = \"env:REDIS_SEEDS\"", ""), &env).unwrap();
    let target = ok.session.as_ref().unwrap().redis_target();
    assert!(target.cluster && target.urls == ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"], "{target:?}");
    for (session, want) in [
        ("redis_mode = \"sentinel\"", "session.redis_mode: must be \"standalone\" or \"cluster\""),
        (&format!("redis_url = {seeds}"), "session.redis_url: lists several servers: set session.redis_mode = \"cluster\""),
        ("redis_mode = \"cluster\"\nredis_url = \"redis://127.0.0.1:7000/3\"", "session.redis_url: names a database"),
        ("redis_mode = \"cluster\"\nredis_url = [\"redis://127.0.0.1:7000\", \"rediss://127.0.0.1:7001\"]", "session.redis_url: the seed nodes must share"),
        ("redis_mode = \"cluster\"\nredis_url = [\"redis://127.0.0.1:7000\", \"http://x:hunter2@h\"]", "session.redis_url: URL 2 must be a redis://host:port URL"),
    ] {
        let url = if session.contains("redis_url") { "" } else { "redis_url = \"redis://127.0.0.1:6379\"" };
        let e = err(with(&format!("store = \"redis\"\n{url}\n{session}"), ""));
        assert!(e.starts_with(want), "{session}: {e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[tokio::test]
async fn revoking_an_account_signs_it_out_on_every_replica() {
    let up = upstream().await;
    let idp = idp().await;
    let redis = Redis::start().await;
    let cfg = redis_config(up, &idp.issuer, &redis, "");
    let a = ready_gateway(&cfg).await;
    let b = ready_gateway(&cfg).await;
    let cookie = |(n, v): (String, String)| format!("{n}={v}");
    let mine = [cookie(login(a.addr, ACCOUNT, "MAINNET").await), cookie(login(b.addr, ACCOUNT, "TESTNET").await)];
    let other = cookie(login(a.addr, OTHER_ACCOUNT, "MAINNET").await);
    for c in mine.iter().chain([&other]) {
        for gw in [&a, &b] {
            assert_eq!(status_of(gw.addr, c, "application/json").await.status, StatusCode::OK);
        }
    }
    // The operator's command, against replica A's admin listener.
    let out = tokio::task::spawn_blocking({
        let admin = format!("http://{}", a.admin_addr.unwrap());
        move || Command::new(env!("CARGO_BIN_EXE_xumm-gate")).args(["revoke", ACCOUNT, "--admin", &admin]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((answer["account"].as_str(), answer["revoked"].as_u64()), (Some(ACCOUNT), Some(2)));
    for c in &mine {
        for gw in [&a, &b] {
            let got = until(gw.addr, c, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await;
            assert_eq!(got.status, StatusCode::UNAUTHORIZED, "a revoked session still opens");
        }
    }
    for gw in [&a, &b] {
        assert_eq!(status_of(gw.addr, &other, "application/json").await.status, StatusCode::OK, "other accounts stay signed in");
    }
    // A bad account is a 400 naming why.
    let bad = common::send(http::Request::post(format!("http://{}/sessions/revoke?account=rNOPE", a.admin_addr.unwrap())).body(full("")).unwrap()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn revoking_an_account_with_the_memory_store() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "")).await;
    let (n, v) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let c = format!("{n}={v}");
    assert_eq!(status_of(gw.addr, &c, "application/json").await.status, StatusCode::OK);
    let got = common::send(http::Request::post(format!("http://{}/sessions/revoke?account={ACCOUNT}", gw.admin_addr.unwrap())).body(full("")).unwrap()).await;
    assert_eq!(got.json()["revoked"], 1);
    assert_eq!(status_of(gw.addr, &c, "application/json").await.status, StatusCode::UNAUTHORIZED);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_payload_made_through_one_replica_is_served_by_another() {
    use futures_util::StreamExt;
    const KEY: &str = "aaaaaaaa-1111-4222-8333-444444444444";
    const SECRET: &str = "bbbbbbbb-5555-4666-8777-888888888888";
    let up = upstream().await;
    let idp = idp().await;
    let redis = Redis::start().await;
    let platform = xumm_gate::demo::platform::DevPlatform::start("127.0.0.1:0".parse().unwrap(), KEY, SECRET).await.unwrap();
    let (receiver, delivered) = counting_receiver().await;
    let broker = format!(
        "\n[xumm]\napi_url = \"{}\"\napi_key = \"{KEY}\"\napi_secret = \"{SECRET}\"\n\n[[broker.app]]\nname = \"shop\"\nkey = \"shop-key-123\"\n\
         secret = \"shop-secret-0123456789\"\nmax_per_minute = 3\ncallback_url = \"http://{receiver}/cb\"\ncallback_secret = \"callback-secret-0123456789\"\n",
        platform.url
    );
    let cfg = redis_config(up, &idp.issuer, &redis, "") + &broker;
    let (a, b) = (ready_gateway(&cfg).await, ready_gateway(&cfg).await);
    let call = |gw: SocketAddr, method: &'static str, path: String, body: Option<serde_json::Value>| async move {
        let mut r = http::Request::builder().method(method).uri(format!("http://{gw}/.xumm/api/v1/platform/{path}")).header("x-api-key", "shop-key-123").header("x-api-secret", "shop-secret-0123456789");
        if body.is_some() {
            r = r.header("content-type", "application/json");
        }
        common::send(r.body(full(body.map(|b| b.to_string()).unwrap_or_default())).unwrap()).await
    };
    let payment = serde_json::json!({"txjson": {"TransactionType": "Payment", "Destination": OTHER_ACCOUNT, "Amount": "1"}});
    // Rate limits count per clock minute: start well inside one.
    if xumm_gate::session::now() % 60 >= 55 {
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    let created = call(a.addr, "POST", "payload".into(), Some(payment.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let uuid = created.json()["uuid"].as_str().unwrap().to_string();
    // B knows it: reads it, relays its status socket, takes its webhook and calls the app back once.
    assert_eq!(call(b.addr, "GET", format!("payload/{uuid}"), None).await.status, StatusCode::OK);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/.xumm/sign/{uuid}", b.addr)).await.expect("B relays the status socket");
    ws.next().await;
    platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
    let hook = format!(r#"{{"meta":{{"payload_uuidv4":"{uuid}"}},"payloadResponse":{{"payload_uuidv4":"{uuid}","signed":true}}}}"#);
    let ts = xumm_gate::session::now().to_string();
    let sig = xumm_gate::xumm::webhook::sign(SECRET, &ts, hook.as_bytes());
    let post = |gw: SocketAddr| {
        let r = http::Request::post(format!("http://{gw}/.xumm/webhook")).header("x-xumm-request-timestamp", &ts).header("x-xumm-request-signature", &sig).body(full(hook.clone())).unwrap();
        common::send(r)
    };
    assert_eq!(post(b.addr).await.status, StatusCode::OK);
    assert_eq!(post(a.addr).await.status, StatusCode::UNAUTHORIZED, "a replayed webhook is refused by the other replica too");
    let end = Instant::now() + Duration::from_secs(5);
    while delivered.lock().unwrap().is_empty() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delivered.lock().unwrap().clone(), vec![uuid.clone()], "one callback, whichever replica heard first");
    // The app's max_per_minute (3) holds across the replicas together.
    let mut statuses = Vec::new();
    for gw in [a.addr, b.addr, a.addr, b.addr] {
        statuses.push(call(gw, "POST", "payload".into(), Some(payment.clone())).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 2, "{statuses:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_redis_acl_user_with_a_password() {
    let up = upstream().await;
    let idp = idp().await;
    // The default user is off: only the gateway's user, with its password and key prefix, gets in.
    let mut redis = Redis::start_with(&["--user", "default", "off", "--user", "gw", "on", ">gw-pass-123", "~test-gw:*", "&*", "+@all"]).await;
    redis.auth = Some("gw:gw-pass-123".into());
    let a = ready_gateway(&redis_config(up, &idp.issuer, &redis, "")).await;
    let b = ready_gateway(&redis_config(up, &idp.issuer, &redis, "")).await;
    let (n, v) = login(a.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{n}={v}");
    assert_eq!(status_of(b.addr, &cookie, "application/json").await.status, StatusCode::OK);
    assert_eq!(get_with(b.addr, "/.xumm/sign_out", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    let got = until(a.addr, &cookie, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "sign-out fanned out through the ACL user's pub/sub");
    // A wrong password is an outage (503), not a sign-in loop, and says so on /readyz.
    redis.auth = Some("gw:wrong".into());
    let c = gateway(&redis_config(up, &idp.issuer, &redis, "")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(c.addr, &cookie, "text/html").await.status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = get(c.admin_addr.unwrap(), "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!ready.text().contains("wrong"), "no password in {}", ready.text());
    for gw in [a, b, c] {
        gw.shutdown().await;
    }
}

/// The fast path relays this header as the upstream sent it; hyper writes it in lower case
/// (which path served a request shows).
fn mixed_case(_: &str) -> (Vec<u8>, bool) {
    (b"HTTP/1.1 200 OK\r\nX-Case: Mixed\r\nContent-Length: 2\r\n\r\nok".to_vec(), false)
}

#[tokio::test]
async fn a_session_refetched_from_redis_keeps_its_connection_on_the_fast_path() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = raw_upstream(mixed_case).await;
    let idp = idp().await;
    let redis = Redis::start().await;
    let gw = ready_gateway(&redis_config(up, &idp.issuer, &redis, "l1_ttl = \"1s\"")).await;
    let (n, v) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut answers = Vec::new();
    for pause in [0, 1300, 0] {
        // The second request comes after the L1 copy expired: the session is fetched from Redis.
        tokio::time::sleep(Duration::from_millis(pause)).await;
        s.write_all(format!("GET /private HTTP/1.1\r\nHost: app\r\nCookie: {n}={v}\r\n\r\n").as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\nok") {
            let mut chunk = [0u8; 4096];
            let k = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await.unwrap().unwrap();
            assert!(k > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..k]);
        }
        answers.push(String::from_utf8_lossy(&got).into_owned());
    }
    for (i, a) in answers.iter().enumerate() {
        assert!(a.starts_with("HTTP/1.1 200"), "{i}: {a}");
        assert!(a.contains("X-Case: Mixed"), "request {i} left the fast path: {a}");
    }
    gw.shutdown().await;
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (openssl CLI), in `dir`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=xumm-gate test CA"]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"]);
}

#[tokio::test]
async fn rediss_with_a_test_ca() {
    let up = upstream().await;
    let idp = idp().await;
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = free_port();
    let p = |f: &str| certs.path().join(f).display().to_string();
    let args = ["--tls-port", &tls_port.to_string(), "--tls-cert-file", &p("server.pem"), "--tls-key-file", &p("server.key"), "--tls-ca-cert-file", &p("ca.pem"), "--tls-auth-clients", "no"];
    let redis = Redis::start_with(&args).await;
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");
    let cfg = |ca: Option<String>| {
        let extra = ca.map(|c| format!("redis_ca_file = \"{c}\"")).unwrap_or_default();
        redis_config(up, &idp.issuer, &redis, &extra).replace(&redis.url(), &tls_url)
    };
    let a = ready_gateway(&cfg(Some(p("ca.pem")))).await;
    let b = ready_gateway(&cfg(Some(p("ca.pem")))).await;
    let (n, v) = login(a.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{n}={v}");
    let got = status_of(b.addr, &cookie, "application/json").await;
    assert_eq!(got.status, StatusCode::OK, "over TLS: {}", got.text());
    assert_eq!(get_with(b.addr, "/.xumm/sign_out", &[("cookie", &cookie)]).await.status, StatusCode::OK);
    assert_eq!(until(a.addr, &cookie, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await.status, StatusCode::UNAUTHORIZED);
    // Without the CA the server's certificate is not trusted: an outage, never a session.
    let c = gateway(&cfg(None)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (n2, v2) = login(a.addr, ACCOUNT, "MAINNET").await;
    assert_eq!(status_of(c.addr, &format!("{n2}={v2}"), "application/json").await.status, StatusCode::SERVICE_UNAVAILABLE);
    for gw in [a, b, c] {
        gw.shutdown().await;
    }
}

/// A 3-master Redis Cluster of this test's own: three redis-servers with cluster mode on (their
/// bus ports free too), joined by `redis-cli --cluster create`.
async fn cluster() -> Vec<Redis> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let bus = free_port().to_string();
        nodes.push(Redis::start_with(&["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", &bus]).await);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("redis-cli").args(["--cluster", "create"]).args(&addrs).args(["--cluster-replicas", "0", "--cluster-yes"]).output().expect("redis-cli is installed")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
    // Every node must see every slot served before the gateways start.
    let end = Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        let client = redis::Client::open(n.url()).unwrap();
        loop {
            let info: String = match client.get_multiplexed_async_connection().await {
                Ok(mut c) => redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < end, "the cluster did not become ready: {info}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    nodes
}

#[tokio::test]
async fn a_three_master_redis_cluster() {
    let up = upstream().await;
    let idp = idp().await;
    let nodes = cluster().await;
    let seeds: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.url())).collect();
    let cfg = redis_config(up, &idp.issuer, &nodes[0], "redis_mode = \"cluster\"").replace(&format!("redis_url = \"{}\"", nodes[0].url()), &format!("redis_url = [{}]", seeds.join(", ")));
    assert!(cfg.contains("redis_url = [\""), "{cfg}");
    let a = ready_gateway(&cfg).await;
    let b = ready_gateway(&cfg).await;

    // Several sessions of one account, so its keys spread over the masters' slots.
    let cookie = |(n, v): (String, String)| format!("{n}={v}");
    let mut mine = Vec::new();
    for gw in [&a, &b, &a, &b, &a, &b] {
        mine.push(cookie(login(gw.addr, ACCOUNT, "MAINNET").await));
    }
    for c in &mine {
        for gw in [&a, &b] {
            let got = status_of(gw.addr, c, "application/json").await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text());
        }
    }
    let mut stored = 0;
    for n in &nodes {
        // Each node holds only its own slots' keys (CLUSTER COUNTKEYSINSLOT would do too).
        let client = redis::Client::open(n.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("test-gw:session:*").query_async(&mut c).await.unwrap();
        stored += keys.len();
    }
    assert_eq!(stored, mine.len(), "every session is in the cluster once");

    // A sign-out on B reaches A (its sign-out listener may sit on any node).
    let first = mine.remove(0);
    assert_eq!(get_with(b.addr, "/.xumm/sign_out", &[("cookie", &first)]).await.status, StatusCode::OK);
    assert_eq!(until(a.addr, &first, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await.status, StatusCode::UNAUTHORIZED);
    // A revocation on A ends the rest everywhere, keys of every slot.
    let got = common::send(http::Request::post(format!("http://{}/sessions/revoke?account={ACCOUNT}", a.admin_addr.unwrap())).body(full("")).unwrap()).await;
    assert_eq!(got.json()["revoked"], mine.len(), "{}", got.text());
    for c in &mine {
        for gw in [&a, &b] {
            assert_eq!(until(gw.addr, c, StatusCode::UNAUTHORIZED, Duration::from_secs(2)).await.status, StatusCode::UNAUTHORIZED);
        }
    }
    // A login started on A finishes on B; the broker's shared state (counters) works too.
    let (pending, callback) = begin_login(a.addr, "/", ACCOUNT, "MAINNET", "approve").await;
    let done = get_with(b.addr, &callback, &[("cookie", &cookie_header(&pending))]).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    assert_eq!(get(a.admin_addr.unwrap(), "/readyz").await.status, StatusCode::OK);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_rolling_restart_under_traffic_signs_nobody_out_and_fails_no_request() {
    use std::sync::{Arc, Mutex};
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = upstream().await;
    let idp = idp().await;
    let redis = Redis::start().await;
    // A short drain, so the test is quick; requests in flight still finish within it.
    let cfg = redis_config(up, &idp.issuer, &redis, "").replace("[server]\n", "[server]\ndrain_timeout = \"3s\"\n");
    assert!(cfg.contains("drain_timeout = \"3s\""));
    let mut replicas = vec![ready_gateway(&cfg).await, ready_gateway(&cfg).await];
    let users = [ACCOUNT, OTHER_ACCOUNT];
    let mut cookies = Vec::new();
    for (i, account) in users.iter().enumerate() {
        let (n, v) = login(replicas[i % 2].addr, account, "MAINNET").await;
        cookies.push((account.to_string(), format!("{n}={v}")));
    }

    // The load balancer: round robin over the replicas in rotation; a replica leaves the
    // rotation before it is stopped (as Kubernetes takes a terminating pod out of the Service).
    let rotation = Arc::new(Mutex::new(replicas.iter().map(|r| r.addr).collect::<Vec<_>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (account, cookie) in cookies {
        for _ in 0..2 {
            let (rotation, stop, account, cookie) = (rotation.clone(), stop.clone(), account.clone(), cookie.clone());
            clients.push(tokio::spawn(async move {
                let (mut ok, mut failures, mut turn) = (0u32, Vec::new(), 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let addr = {
                        let r = rotation.lock().unwrap();
                        turn += 1;
                        r[turn % r.len()]
                    };
                    let req = http::Request::get(format!("http://{addr}/private")).header("cookie", &cookie).header("accept", "application/json").body(full("")).unwrap();
                    match client().request(req).await {
                        Ok(resp) if resp.status() == StatusCode::OK => {
                            use http_body_util::BodyExt;
                            let body = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            if String::from_utf8_lossy(&body).contains(&account) {
                                ok += 1;
                            } else {
                                failures.push(format!("{addr}: 200 for someone else"));
                            }
                        }
                        Ok(resp) => failures.push(format!("{addr}: {}", resp.status())),
                        Err(e) => failures.push(format!("{addr}: {e:?}")),
                    }
                }
                (ok, failures)
            }));
        }
    }

    // Replace every replica, one at a time: start the new one, put it in rotation, take the old
    // one out, and stop it (draining) while traffic goes on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let fresh = ready_gateway(&cfg).await;
        let old = replicas.remove(0);
        {
            let mut r = rotation.lock().unwrap();
            r.push(fresh.addr);
            r.retain(|a| *a != old.addr);
        }
        replicas.push(fresh);
        // Requests that picked the old replica just before it left the rotation reach it (a
        // pod's preStop pause; generous, for a loaded CI machine).
        tokio::time::sleep(Duration::from_millis(500)).await;
        old.shutdown().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, failures) = c.await.unwrap();
        assert!(failures.is_empty(), "requests failed during the rolling restart: {failures:?}");
        total += ok;
    }
    assert!(total > 50, "traffic ran throughout ({total} requests)");
    for r in replicas {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_what_the_ledger_said() {
    let redis = Redis::start().await;
    let node = common::js::LedgerNode::start();
    let up = upstream().await;
    let idp = idp().await;
    let (issuer, solo) = (node.account("issuer"), node.data["solo"].as_str().unwrap().to_string());
    let more = format!(
        "\n[[route]]\npath = \"/solo\"\nrequire = {{ trustline = {{ currency = \"{solo}\", issuer = \"{issuer}\", min_balance = \"100\" }} }}\n\n[ledger.MAINNET]\nurls = [\"{}\"]\n",
        node.url
    );
    let text = redis_config(up, &idp.issuer, &redis, "") + &more;
    let (a, b) = (ready_gateway(&text).await, ready_gateway(&text).await);
    // Bearer tokens: nothing is read ahead at sign-in.
    let token = idp.issue_token(CLIENT_ID, &node.account("rich"), "MAINNET", serde_json::json!({}));
    let bearer = format!("Bearer {token}");
    assert_eq!(get_with(a.addr, "/solo", &[("authorization", &bearer)]).await.status, StatusCode::OK);
    let (calls, _) = node.calls().await;
    assert_eq!(calls, 1);
    assert_eq!(get_with(b.addr, "/solo", &[("authorization", &bearer)]).await.status, StatusCode::OK);
    assert_eq!(node.calls().await.0, calls, "the second replica used the first one's reading, through Redis");
    // And a fact neither has read is read once, by the one that needs it.
    let poor = idp.issue_token(CLIENT_ID, &node.account("poor"), "MAINNET", serde_json::json!({}));
    assert_eq!(get_with(b.addr, "/solo", &[("authorization", &format!("Bearer {poor}"))]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(get_with(a.addr, "/solo", &[("authorization", &format!("Bearer {poor}"))]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(node.calls().await.0, calls + 1);
}
