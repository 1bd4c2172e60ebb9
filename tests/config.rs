//! Every config error names its key path and what is wrong.

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
        ("[server]\nmax_header_bytes = 10\n", "server.max_header_bytes: must be at least 1024"),
        ("[server]\nlisten = 5\n", "server.listen: invalid type: integer `5`, expected a string"),
        ("[server]\nlisten_addr = \"x\"\n", "server.listen_addr: unknown field `listen_addr`, expected one of `listen`"),
        ("[surver]\n", "surver: unknown field `surver`"),
        ("[log]\nformat = \"xml\"\n", "log.format: must be \"text\" or \"json\", got \"xml\""),
        ("[session]\ncookie_secrets = [\"env:XUMM_GATE_COOKIE_SECRET\"]\n", "session.cookie_secrets[0]: env XUMM_GATE_COOKIE_SECRET is not set"),
        ("[session]\ncookie_secrets = [\"env:GOOD_COOKIE\", \"env:EMPTY\"]\n", "session.cookie_secrets[1]: env EMPTY is empty"),
        ("[session]\ncookie_secrets = [\"!!notbase64\"]\n", "session.cookie_secrets[0]: is not valid base64"),
        ("[session]\ncookie_secrets = [\"c2hvcnQ=\"]\n", "session.cookie_secrets[0]: must decode to at least 32 bytes, got 5"),
        ("[session]\nstore = \"disk\"\n", "session.store: must be \"memory\" or \"redis\""),
        ("[session]\nstore = \"redis\"\n", "session.store: \"redis\" is not available in this version yet"),
        ("[session]\nttl = \"forever\"\n", "session.ttl: invalid duration"),
        ("[provider]\nclient_secret = \"file:/nonexistent/secret\"\n", "provider.client_secret: cannot read file /nonexistent/secret: no such file"),
        ("[provider]\ntoken_auth = \"jwt\"\n", "provider.token_auth: must be"),
        ("[provider]\nissuer = \"::\"\n", "provider.issuer: invalid URL"),
        ("[[route]]\npath = \"admin\"\n", "route[0].path: must be a normalized absolute path"),
        ("[[route]]\npath = \"/a\"\nallow_accounts = [\"rNOTANADDRESS\"]\n", "route[0].allow_accounts[0]: \"rNOTANADDRESS\" is not a valid XRPL r-address"),
        ("[[route]]\npath = \"/a\"\npublik = true\n", "route[0].publik: unknown field `publik`"),
        ("[server\n", "config: invalid TOML"),
        ("[bearer]\nalgorithms = [\"HS256\"]\n", "bearer.algorithms[0]: \"HS256\" is not an accepted asymmetric algorithm"),
        ("[bearer]\nalgorithms = [\"RS256\", \"none\"]\n", "bearer.algorithms[1]: \"none\" is not an accepted"),
        ("[bearer]\nmax_skew = \"a while\"\n", "bearer.max_skew: invalid duration"),
        ("[cors]\nallowed_origins = [\"https://a.example/\"]\n", "cors.allowed_origins[0]: must be an origin"),
        ("[cors]\nallowed_origins = [\"*\"]\n", "cors.allowed_origins[0]: must be an origin"),
        ("[forward_auth]\nmode = \"bounce\"\n", "forward_auth.mode: must be \"status\" or \"redirect\""),
        ("[assertion]\nenabled = true\nkey = \"not a pem\"\n", "assertion.key: is not a PKCS#8 PEM P-256 private key"),
        ("[assertion]\nttl = \"1s\"\n", "assertion.ttl: must be at least 10s"),
        ("[headers]\naccount = \"bad header\"\n", "headers.account: invalid header name"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"env:XUMM_API_SECRET\"\n", "xumm.api_secret: env XUMM_API_SECRET is not set"),
        ("[xumm]\napi_key = \"\"\napi_secret = \"s\"\n", "xumm.api_key: is required"),
        ("[xumm]\napi_url = \"ftp://x\"\napi_key = \"k\"\napi_secret = \"s\"\n", "xumm.api_url: scheme must be http or https"),
        ("[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\n", "xumm: [xumm] api_key and api_secret are required"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"short\"\n", "broker.app[0].secret: must be at least 16 characters"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"sha256:zz\"\n", "broker.app[0].secret: sha256: must be followed by 64 hex digits"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abc\"\nsecret = \"0123456789abcdef\"\n", "broker.app[0].key: must be at least 8 characters"),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\ncallback_url = \"ftp://x\"\ncallback_secret = \"0123456789abcdef\"\n", "broker.app[0].callback_url: invalid http(s) URL \"ftp://x\""),
        ("[xumm]\napi_key = \"k\"\napi_secret = \"s\"\n[[broker.app]]\nname = \"a\"\nkey = \"abcdefgh\"\nsecret = \"0123456789abcdef\"\ncallback_url = \"https://app.example/cb\"\n", "broker.app[0].callback_secret: must be at least 16 characters when callback_url is set"),
    ];
    for (text, want) in cases {
        let got = error_of(&format!("{text}{UP}"));
        assert!(got.starts_with(want), "for {text:?}\n got: {got}\nwant: {want}");
    }
    assert!(error_of("").starts_with("upstream: at least one [[upstream]] is required"));
    assert!(error_of("[[upstream]]\npath = \"/\"\nurl = \"https://x\"\n").starts_with("upstream[0].url: must be an http:// URL"));
    assert!(error_of("[[upstream]]\npath = \"/\"\nurl = \"http://x/?a=1\"\n").starts_with("upstream[0].url: must not carry a query string"));
    assert!(error_of("[[upstream]]\npath = \"/x/../y\"\nurl = \"http://x\"\n").starts_with("upstream[0].path: must be a normalized"));
}

#[test]
fn env_and_file_values_resolve_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "from-file\n").unwrap();
    let text = format!(
        "[provider]\nclient_id = \"env:SET\"\nclient_secret = \"file:{}\"\n[server]\nprefix = \"/.xumm\"\n{UP}",
        f.display()
    );
    let cfg = Config::from_toml(&text, &env).unwrap();
    let p = cfg.provider.as_ref().unwrap();
    assert_eq!(p.client_id, "value");
    assert_eq!(p.client_secret, "from-file");
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
