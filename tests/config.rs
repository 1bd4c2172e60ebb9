//! Every config error names its key path and what is wrong.

mod common;

use common::{auth_config, no_env};
use xumm_gate::config::Config;

const UP: &str = "\n[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:8080\"\n";

fn env(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        "EMPTY" => Some(String::new()),
        "GOOD_COOKIE" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into()),
        _ => None,
    }
}

fn error_of(text: &str) -> String {
    match Config::from_toml(text, &env) {
        Ok(_) => panic!("config accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_error_names_the_key() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nlisten = \"x\"\n", "server.listen: invalid socket address \"x\""),
        ("[server]\nadmin_listen = \"1.2.3.4\"\n", "server.admin_listen: invalid socket address \"1.2.3.4\""),
        ("[server]\npublic_url = \"not a url\"\n", "server.public_url: invalid URL"),
        ("[server]\npublic_url = \"ftp://x\"\n", "server.public_url: scheme must be http or https"),
        ("[server]\nprefix = \"xumm\"\n", "server.prefix: must be a normalized path"),
        ("[server]\nprefix = \"/a/../b\"\n", "server.prefix: must be a normalized path"),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/99\"]\n", "server.trusted_proxies[0]: invalid CIDR \"10.0.0.0/99\""),
        ("[server]\nheader_read_timeout = \"soon\"\n", "server.header_read_timeout: invalid duration \"soon\""),
        ("[server]\nupstream_timeout = \"5 parsecs\"\n", "server.upstream_timeout: invalid duration"),
        ("[server]\nmax_header_bytes = 10\n", "server.max_header_bytes: must be between 1024 and 1048576, got 10"),
        ("[server]\nworkers = 5000\n", "server.workers: must be between 0 and 1024, got 5000"),
        ("[server]\nmax_headers = 100000\n", "server.max_headers: must be between 1 and 1000, got 100000"),
        ("[server]\nheader_read_timeout = \"0s\"\n", "server.header_read_timeout: must be between 100ms and 1h, got \"0s\""),
        ("[server]\nupstream_timeout = \"400d\"\n", "server.upstream_timeout: must be between 10ms and 1d, got \"400d\""),
        ("[server]\nmax_connections = 0\n", "server.max_connections: must be between 1 and 1000000, got 0"),
        ("[session]\nttl = \"1s\"\n", "session.ttl: must be between 1m and 90d, got \"1s\""),
        ("[provider]\nclient_id = \"env:\"\n", "provider.client_id: env: needs a variable name"),
        ("[provider]\nclient_secret = \"file:\"\n", "provider.client_secret: file: needs a path"),
        ("[server]\nlisten = 5\n", "server.listen: invalid type: integer `5`, expected a string"),
        ("[server]\nlisten_addr = \"x\"\n", "server.listen_addr: unknown field `listen_addr`, expected one of `listen`"),
        ("[surver]\n", "surver: unknown field `surver`"),
        ("[log]\nformat = \"xml\"\n", "log.format: must be \"text\" or \"json\", got \"xml\""),
        ("[session]\ncookie_secrets = [\"env:XUMM_GATE_COOKIE_SECRET\"]\n", "session.cookie_secrets[0]: env XUMM_GATE_COOKIE_SECRET is not set"),
        ("[session]\ncookie_secrets = [\"env:GOOD_COOKIE\", \"env:EMPTY\"]\n", "session.cookie_secrets[1]: env EMPTY is empty"),
        ("[session]\ncookie_secrets = [\"!!notbase64\"]\n", "session.cookie_secrets[0]: is not valid base64"),
        ("[session]\ncookie_secrets = [\"c2hvcnQ=\"]\n", "session.cookie_secrets[0]: must decode to at least 32 bytes, got 5"),
        ("[session]\nstore = \"disk\"\n", "session.store: must be \"memory\" or \"redis\""),
        ("[session]\nstore = \"redis\"\n", "session.redis_url: is required with store = \"redis\""),
        ("[session]\nstore = \"redis\"\nredis_url = \"http://u:pw@x\"\n", "session.redis_url: must be a redis://host:port URL"),
        ("[session]\nstore = \"redis\"\nredis_url = \"rediss://x:6380\"\nredis_ca_file = \"/nonexistent/ca.pem\"\n", "session.redis_ca_file: cannot read /nonexistent/ca.pem: no such file"),
        ("[session]\nttl = \"forever\"\n", "session.ttl: invalid duration"),
        ("[provider]\nclient_secret = \"file:/nonexistent/secret\"\n", "provider.client_secret: cannot read file /nonexistent/secret: no such file"),
        ("[provider]\nissuer = \"::\"\n", "provider.issuer: invalid URL"),
        ("[[route]]\npath = \"admin\"\n", "route[0].path: must be a normalized absolute path"),
        ("[[route]]\npath = \"/a\"\nallow_accounts = [\"rNOTANADDRESS\"]\n", "route[0].allow_accounts[0]: \"rNOTANADDRESS\" is not a valid XRPL r-address"),
        ("[[route]]\npath = \"/a\"\npublik = true\n", "route[0].publik: unknown field `publik`"),
        ("[xapp]\n", "xapp: [xumm] api_key and api_secret are required"),
        ("[provider]\npayload_expiry = \"90s\"\n", "provider.payload_expiry: must be whole minutes"),
        ("[provider]\nkind = \"qr\"\n", "provider.kind: must be \"oauth2\" or \"payload\", got \"qr\""),
        ("[[route]]\npath = \"/a\"\nallow_account_access = [\"full\"]\n", "route[0].allow_account_access[0]: must be \"FULL\" or \"READONLY\""),
        ("[headers]\nxapp_style = \"no good\"\n", "headers.xapp_style: invalid header name"),
        ("[[route]]\npath = \"/a\"\nallow_networks = [\"MAINNET\", \"main net\"]\n", "route[0].allow_networks[1]: must be a network name like \"MAINNET\""),
        ("[headers]\nstrip = [\"ok\", \"not ok\"]\n", "headers.strip[1]: invalid header name \"not ok\""),
        ("[server\n", "config: invalid TOML"),
        ("[bearer]\nalgorithms = [\"HS256\"]\n", "bearer.algorithms[0]: \"HS256\" is not an accepted asymmetric algorithm"),
        ("[bearer]\nalgorithms = [\"RS256\", \"none\"]\n", "bearer.algorithms[1]: \"none\" is not an accepted"),
        ("[bearer]\nmax_skew = \"a while\"\n", "bearer.max_skew: invalid duration"),
        ("[cors]\nallowed_origins = [\"https://a.example/\"]\n", "cors.allowed_origins[0]: must be an origin"),
        ("[cors]\nallowed_origins = [\"*\"]\n", "cors.allowed_origins[0]: must be an origin"),
        ("[forward_auth]\nmode = \"bounce\"\n", "forward_auth.mode: must be \"status\" or \"redirect\""),
        ("[assertion]\nenabled = true\nkey = \"not a pem\"\n", "assertion.key: is not a PKCS#8 PEM P-256 private key"),
        ("[assertion]\nttl = \"1s\"\n", "assertion.ttl: must be between 10s and 1d, got \"1s\""),
        ("[headers]\naccount = \"bad header\"\n", "headers.account: invalid header name"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"env:XUMM_API_SECRET\"\n", "xumm.api_secret: env XUMM_API_SECRET is not set"),
        ("[xumm]\napi_key = \"\"\napi_secret = \"s\"\n", "xumm.api_key: is required"),
        ("[xumm]\napi_url = \"ftp://x\"\napi_key = \"k\"\napi_secret = \"s\"\n", "xumm.api_url: scheme must be http or https"),
        ("[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\n", "xumm: [xumm] api_key and api_secret are required"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"short\"\n", "broker.app[0].secret: must be at least 16 characters"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"sha256:zz\"\n", "broker.app[0].secret: sha256: must be followed by 64 hex digits"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abc\"\nsecret = \"0123456789abcdef\"\n", "broker.app[0].key: must be at least 8 characters"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\ncallback_url = \"ftp://x\"\ncallback_secret = \"0123456789abcdef\"\n", "broker.app[0].callback_url: scheme must be http or https, got \"ftp://x\""),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\ncallback_url = \"https://app.example/cb\"\n", "broker.app[0].callback_secret: must be at least 16 characters when callback_url is set"),
    ];
    for (text, want) in cases {
        let got = error_of(&format!("{text}{UP}"));
        assert!(got.starts_with(want), "for {text:?}\n got: {got}\nwant: {want}");
    }
    assert!(error_of("").starts_with("upstream: at least one [[upstream]] is required"));
    let bad_auth = PROVIDER.replace("client_secret = \"secret\"\n", "client_secret = \"secret\"\ntoken_auth = \"jwt\"\n");
    assert!(error_of(&format!("{bad_auth}{UP}")).starts_with("provider.token_auth: must be"));
    assert!(error_of("[[upstream]]\npath = \"/\"\nurl = \"ftp://x\"\n").starts_with("upstream[0].url: must be an http:// or https:// URL"));
    assert!(error_of("[[upstream]]\npath = \"/\"\nurl = \"http://x/?a=1\"\n").starts_with("upstream[0].url: must not carry a query string"));
    assert!(error_of("[[upstream]]\npath = \"/x/../y\"\nurl = \"http://x\"\n").starts_with("upstream[0].path: must be a normalized"));
}

#[test]
fn env_and_file_values_resolve_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "from-file\n").unwrap();
    let text = format!(
        "[provider]\nclient_id = \"env:SET\"\nclient_secret = \"file:{}\"\n[server]\nprefix = \"/.xumm\"\n[session]\ncookie_secrets = [\"env:GOOD_COOKIE\"]\n{UP}",
        f.display()
    );
    let cfg = Config::from_toml(&text, &env).unwrap();
    let p = cfg.provider.as_ref().unwrap();
    assert_eq!(p.client_id, "value");
    assert_eq!(&*p.client_secret, "from-file");
    let shown = cfg.redacted_toml();
    assert!(!shown.contains("from-file"));
    assert!(shown.contains("<redacted>"));
}

#[test]
fn broker_secrets_are_redacted() {
    let text = format!(
        "[xumm]\napi_key = \"k\"\napi_secret = \"XUMM-SECRET-VALUE\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"APP-SECRET-VALUE-123\"\n\
         callback_url = \"https://app.example/cb\"\ncallback_secret = \"CALLBACK-SECRET-VALUE\"\n{UP}"
    );
    let shown = Config::from_toml(&text, &|_| None).unwrap().redacted_toml();
    for secret in ["XUMM-SECRET-VALUE", "APP-SECRET-VALUE-123", "CALLBACK-SECRET-VALUE"] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert!(shown.contains("https://app.example/cb"), "non-secrets stay visible");
}

#[test]
fn shipped_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    let env = |n: &str| match n {
        "XUMM_API_KEY" | "XUMM_API_SECRET" => Some("11111111-2222-3333-4444-555555555555".to_string()),
        "XUMM_GATE_COOKIE_SECRET" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
        _ => None,
    };
    let cfg = Config::from_toml(&text, &env).expect("shipped config.toml is valid");
    assert_eq!(cfg.server.prefix, "/.xumm");
    assert_eq!(cfg.routes.len(), 2);
}

const PROVIDER: &str = "[provider]\nclient_id = \"id\"\nclient_secret = \"secret\"\n[session]\ncookie_secrets = [\"env:GOOD_COOKIE\"]\n";

#[test]
fn rules_and_upstreams_for_the_same_path_are_refused_naming_both() {
    let routes = "[[route]]\npath = \"/admin\"\npublic = true\n[[route]]\npath = \"/x\"\n[[route]]\npath = \"/Admin/\"\nallow_accounts = [\"rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh\"]\n";
    let got = error_of(&format!("{routes}{UP}"));
    assert!(got.starts_with("route[2].path: \"/Admin/\" is also route[0].path"), "{got}");
    let ups = format!("{UP}[[upstream]]\npath = \"/\"\nurl = \"http://127.0.0.1:9090\"\n");
    let got = error_of(&ups);
    assert!(got.starts_with("upstream[1].path: \"/\" is also upstream[0].path"), "{got}");
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let text = format!("[server]\nlisten = \"x\"\nworkers = 9999\nidle_timeout = \"soon\"\n[log]\nformat = \"xml\"\n[[route]]\npath = \"nope\"\n{UP}");
    let got = error_of(&text);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 5, "{got}");
    for key in ["server.listen:", "server.workers:", "server.idle_timeout: invalid duration", "route[0].path:", "log.format:"] {
        assert!(lines.iter().any(|l| l.starts_with(key)), "{key} missing in:\n{got}");
    }
}

#[test]
fn sign_in_needs_its_secrets_at_check_time() {
    // What `run` needs is what `check-config` checks: these passed check-config and failed (or
    // silently misbehaved at) run.
    let no_cookie = format!("[provider]\nclient_id = \"id\"\nclient_secret = \"s\"\n{UP}");
    assert!(error_of(&no_cookie).starts_with("session.cookie_secrets: at least one secret is required"));
    let no_secret = format!("[provider]\nclient_id = \"id\"\n[session]\ncookie_secrets = [\"env:GOOD_COOKIE\"]\n{UP}");
    assert!(error_of(&no_secret).starts_with("provider.client_secret: is required"));
    let no_id = format!("[provider]\nclient_secret = \"s\"\n[session]\ncookie_secrets = [\"env:GOOD_COOKIE\"]\n{UP}");
    assert!(error_of(&no_id).starts_with("provider.client_id: is required"));
}

#[tokio::test]
async fn check_config_and_run_agree() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every config the checks accept starts (on loopback port 0); every one they refuse would not.
    let listen = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
    let table: &[(&str, bool)] = &[
        ("", true),
        (PROVIDER, true),
        ("[provider]\nclient_id = \"id\"\nclient_secret = \"secret\"\n", false),
        ("[provider]\nclient_id = \"id\"\n[session]\ncookie_secrets = [\"env:GOOD_COOKIE\"]\n", false),
        ("[assertion]\nenabled = true\n", true),
        ("[bearer]\nenabled = false\nmax_skew = \"0s\"\n", true),
        ("[bearer]\nmax_skew = \"2h\"\n", false),
        ("[session]\nidle_timeout = \"10s\"\n", false),
        ("[[route]]\npath = \"/a\"\n[[route]]\npath = \"/a\"\n", false),
    ];
    for (extra, ok) in table {
        let text = format!("{listen}{extra}{UP}");
        match Config::from_toml(&text, &env) {
            Ok(cfg) => {
                assert!(*ok, "accepted but should not be: {extra}");
                let running = xumm_gate::start(cfg).await.unwrap_or_else(|e| panic!("check passed, run failed: {e}\n{extra}"));
                running.shutdown().await;
            }
            Err(e) => assert!(!*ok, "refused but should run: {extra}: {e}"),
        }
    }
}

#[test]
fn a_gateway_for_forward_auth_only_needs_no_upstream() {
    assert!(Config::from_toml(PROVIDER, &env).is_ok());
}

#[test]
fn plain_http_on_a_public_host_is_a_warning() {
    let cfg = |url: &str| Config::from_toml(&format!("[server]\npublic_url = \"{url}\"\n{UP}"), &env).unwrap();
    assert!(cfg("http://127.0.0.1:4180").warnings().is_empty());
    assert!(cfg("http://localhost:4180").warnings().is_empty());
    assert!(cfg("https://app.example.com").warnings().is_empty());
    let w = cfg("http://app.example.com").warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("server.public_url:") && w[0].contains("https://"), "{w:?}");
}

#[test]
fn the_container_config_listens_on_all_interfaces() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose/config.toml")).unwrap();
    let env = |n: &str| match n {
        "PUBLIC_URL" => Some("https://app.example.com".to_string()),
        "UPSTREAM_URL" => Some("http://app:8080".to_string()),
        "XUMM_GATE_COOKIE_SECRET" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
        _ => Some("11111111-2222-4333-8444-555555555555".to_string()),
    };
    let cfg = Config::from_toml(&text, &env).expect("the container config is valid");
    assert_eq!(cfg.server.listen.text(), "0.0.0.0:4180");
    assert_eq!(cfg.server.admin_listen.text(), "0.0.0.0:9180");
    assert!(cfg.warnings().is_empty());
}

/// A library caller that changes a checked config (or builds one itself) gets an error naming
/// the key when the gateway starts, never a panic.
#[tokio::test]
async fn an_unchecked_config_is_an_error_at_start_never_a_panic() {
    let up: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let checked = || xumm_gate::config::Config::from_toml(&auth_config(up, "http://127.0.0.1:1", "", ""), &no_env).unwrap();
    let mut cfg = checked();
    cfg.upstreams[0].url = xumm_gate::config::Parsed::parse("::not a url::");
    let e = xumm_gate::start(cfg).await.err().expect("refused").to_string();
    assert!(e.starts_with("upstream[0].url:"), "{e}");
    let mut cfg = checked();
    cfg.session.as_mut().unwrap().cookie_secrets[0] = "!!not base64!!".into();
    let e = xumm_gate::start(cfg).await.err().expect("refused").to_string();
    assert!(e.starts_with("session.cookie_secrets[0]:"), "{e}");
    let mut cfg = checked();
    cfg.bearer.algorithms = vec!["RS999".into()];
    let e = xumm_gate::start(cfg).await.err().expect("refused").to_string();
    assert!(e.starts_with("bearer.algorithms[0]:"), "{e}");
    // A bad allow-list entry or identity header name must stop the start: dropping it would
    // open the route to every account, or let clients send that header through.
    let mut cfg = checked();
    cfg.routes.push(toml::from_str("path = \"/vip\"\nallow_accounts = [\"rNOPE\"]").unwrap());
    let e = xumm_gate::start(cfg).await.err().expect("refused").to_string();
    assert!(e.starts_with("route[") && e.contains("].allow_accounts[0]: \"rNOPE\""), "{e}");
    let mut cfg = checked();
    cfg.headers.strip = vec![xumm_gate::config::Parsed::parse("x bad")];
    let e = xumm_gate::start(cfg).await.err().expect("refused").to_string();
    assert!(e.starts_with("headers.strip[0]:"), "{e}");
}

/// The README's worked examples of ledger conditions are a valid config, together.
#[test]
fn the_readme_ledger_examples_are_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Access by ledger holdings").nth(1).unwrap().split("\n## ").next().unwrap();
    let blocks: Vec<&str> = section.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 5);
    let text = format!("{UP}[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n{}", blocks.join("\n"));
    let cfg = Config::from_toml(&text, &|_| None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(cfg.routes.iter().filter(|r| r.require.is_some()).count(), 4);
    assert_eq!(cfg.ledger["MAINNET"].urls.len(), 2);
}
