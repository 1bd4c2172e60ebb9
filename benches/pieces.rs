//! Criterion benchmarks for hot-path pieces: path normalization, route decision, r-address check.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use xumm_gate::config::RouteConfig;

fn path(c: &mut Criterion) {
    c.bench_function("normalize: already normal", |b| b.iter(|| xumm_gate::path::normalize(black_box("/app/users/42/profile"))));
    c.bench_function("normalize: dot segments + escapes", |b| {
        b.iter(|| xumm_gate::path::normalize(black_box("/app/./users//42/%7Eprofile/../x")))
    });
}

fn routes(c: &mut Criterion) {
    let r = |p: &str, public: bool| toml::from_str::<RouteConfig>(&format!("path = {p:?}\npublic = {public}")).unwrap();
    let rules = [r("/public", true), r("/admin", false), r("/api/v1", false), r("/static", true)];
    let table = xumm_gate::policy::RouteTable::new(&rules, true, xumm_gate::config::DefaultRule::Authenticated).unwrap();
    let target = xumm_gate::policy::Target { path: "/api/v1/users/42", method: "GET", host: Some("app.example.com") };
    c.bench_function("route decision (4 rules)", |b| b.iter(|| table.decide(black_box(&target)).public));
}

fn account(c: &mut Criterion) {
    c.bench_function("r-address check", |b| {
        b.iter(|| xumm_gate::account::Account::parse(black_box("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh")).is_ok())
    });
}

criterion_group!(benches, path, routes, account);

/// Bearer verification against the development provider: cold (RSA-3072/2048 signature check and
/// claim checks) and warm (SHA-256 of the token + one cache lookup); and the session-cookie open.
fn tokens(c: &mut Criterion) {
    use xumm_gate::demo::idp::{ClientApp, DevIdp};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (idp, provider, verifier) = rt.block_on(async {
        let app = ClientApp { id: "bench-client".into(), secret: "s".into(), name: "bench".into() };
        let idp = DevIdp::start("127.0.0.1:0".parse().unwrap(), vec![app]).await.unwrap();
        let cfg: xumm_gate::config::ProviderConfig =
            toml::from_str(&format!("issuer = \"{}\"\nclient_id = \"bench-client\"", idp.issuer)).unwrap();
        let provider = xumm_gate::oidc::Provider::new(cfg);
        provider.discover().await.unwrap();
        let verifier = xumm_gate::bearer::BearerVerifier::new(&Default::default(), "bench-client").unwrap();
        (idp, provider, verifier)
    });
    let token = idp.issue_token("bench-client", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "MAINNET", serde_json::json!({}));
    let aud = vec!["bench-client".to_string()];
    c.bench_function("bearer verify: cold (signature + claims)", |b| {
        b.iter(|| rt.block_on(provider.verify_with_skew(black_box(&token), &aud, &[jsonwebtoken::Algorithm::RS256], None, 60)).unwrap())
    });
    rt.block_on(verifier.verify(&provider, &token)).unwrap();
    c.bench_function("bearer verify: warm (hash + cache hit)", |b| {
        b.iter(|| rt.block_on(verifier.verify(&provider, black_box(&token))).unwrap())
    });
    let sealer = xumm_gate::session::cookie::Sealer::new(&[vec![7u8; 32]], true);
    let sealed = sealer.seal("_xumm_gate", &xumm_gate::session::new_id());
    c.bench_function("session cookie open (AES-256-GCM)", |b| b.iter(|| sealer.open("_xumm_gate", black_box(&sealed)).unwrap()));

    // What the signed-in hot path does per request: the session id from the Cookie header, for a
    // repeat visitor (the per-thread memo of opened cookies hits).
    let cfg = xumm_gate::config::Config::from_toml(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"\"\nworkers = 1\npublic_url = \"http://127.0.0.1:4180\"\n[provider]\nissuer = \"{}\"\nclient_id = \"bench-client\"\nclient_secret = \"s\"\n\
             [session]\ncookie_secrets = [\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:1\"\n",
            idp.issuer
        ),
        &|_| None,
    )
    .unwrap();
    let auth = xumm_gate::auth::Auth::from_config(&cfg, &cfg.server().unwrap(), std::sync::Arc::new(xumm_gate::shared::Shared::memory())).unwrap().unwrap();
    let cookie = format!("theme=dark; {}={}", auth.cookie_name, auth.sealer.seal(&auth.cookie_name, &xumm_gate::session::new_id()));
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, cookie.parse().unwrap());
    auth.session_id(&headers).unwrap();
    c.bench_function("session id from Cookie, repeat visitor (memo hit)", |b| b.iter(|| auth.session_id(black_box(&headers)).unwrap()));

    // The fast path's whole per-request decision for a signed-in browser request: parse the head,
    // route policy, session lookup, the upstream head with forwarding and identity headers.
    let running = rt.block_on(xumm_gate::start(cfg.clone())).unwrap();
    let gw = running.gateway.clone();
    let gauth = gw.admission.auth.as_ref().unwrap();
    let id = xumm_gate::session::new_id();
    let account = xumm_gate::account::Account::parse("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh").unwrap();
    let session = xumm_gate::session::Session::new(account, Some("MAINNET".into()), None, xumm_gate::session::Source::Session, xumm_gate::session::now() + 3600);
    rt.block_on(xumm_gate::session::SessionStore::put(&gauth.store, id.clone(), std::sync::Arc::new(session))).unwrap();
    let head = format!(
        "GET /app/dashboard?tab=2 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0\r\n\
         Accept: text/html,application/xhtml+xml\r\nAccept-Language: en\r\nAccept-Encoding: gzip, br\r\n\
         Cookie: theme=dark; {}={}\r\nConnection: keep-alive\r\n\r\n",
        gauth.cookie_name,
        gauth.sealer.seal(&gauth.cookie_name, &id)
    );
    let mut out = Vec::with_capacity(1024);
    assert!(xumm_gate::fast::plan_head(&gw, head.as_bytes(), &mut out).is_some(), "the bench request takes the fast path");
    c.bench_function("fast path: signed-in request head to upstream head", |b| {
        b.iter(|| xumm_gate::fast::plan_head(&gw, black_box(head.as_bytes()), &mut out).unwrap())
    });
    // The admission decision alone, on the fast path's parsed headers (httparse's slice, read in
    // place): route, strict path, session id from the cookie, L1/store lookup, policy.
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut slots);
    parsed.parse(head.as_bytes()).unwrap();
    let fields: &[httparse::Header<'_>] = parsed.headers;
    let target = xumm_gate::policy::Target { path: "/app/dashboard", method: "GET", host: Some("127.0.0.1") };
    assert!(matches!(gw.admission.admit_now(&target, Some("tab=2"), fields).map(|a| a.verdict), Ok(xumm_gate::admission::Verdict::Pass { who: Some(_), .. })));
    c.bench_function("admission decision: signed-in request, fast path headers", |b| {
        b.iter(|| matches!(gw.admission.admit_now(black_box(&target), black_box(Some("tab=2")), black_box(fields)).map(|a| a.verdict), Ok(xumm_gate::admission::Verdict::Pass { .. })))
    });
    drop(gw);
    rt.block_on(running.shutdown());
}

criterion_group!(token_benches, tokens);
criterion_main!(benches, token_benches);
