//! Bearer JWTs (native apps, SPAs) and forward auth, against the development provider.

mod common;

use common::*;
use http::StatusCode;

async fn setup(extra_server: &str) -> (xumm_gate::Running, xumm_gate::demo::idp::DevIdp) {
    let up = upstream().await;
    let idp = idp().await;
    let more = format!("\n[bearer]\naudiences = [\"{NATIVE_CLIENT_ID}\"]\n");
    let gw = ready_gateway(&auth_config(up, &idp.issuer, extra_server, &more)).await;
    (gw, idp)
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn valid_bearer_tokens_reach_the_upstream_as_identity() {
    let (gw, idp) = setup("").await;
    for client in [CLIENT_ID, NATIVE_CLIENT_ID] {
        let token = idp.issue_token(client, ACCOUNT, "TESTNET", serde_json::json!({}));
        let got = get_with(gw.addr, "/api/me", &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(got.status, StatusCode::OK, "{client}: {}", got.text());
        assert_eq!(got.upstream_header("x-xumm-account"), vec![ACCOUNT]);
        assert_eq!(got.upstream_header("x-xumm-network"), vec!["TESTNET"]);
        assert!(got.upstream_header("authorization").is_empty(), "the JWT must not reach the upstream");
        assert!(!got.text().contains(&token));
    }
    let token = idp.issue_token(NATIVE_CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let info = get_with(gw.addr, "/.xumm/userinfo", &[("authorization", &format!("bearer {token}"))]).await;
    assert_eq!(info.json()["source"], "bearer");
}

#[tokio::test]
async fn repeated_tokens_hit_the_cache() {
    let (gw, idp) = setup("").await;
    let verifier = gw.gateway.admission.auth.as_ref().unwrap().bearer.as_ref().unwrap();
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    for _ in 0..5 {
        let got = get_with(gw.addr, "/x", &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(got.status, StatusCode::OK);
    }
    assert_eq!(verifier.cached(), 1);
    // an expired token (beyond the 60 s skew) is refused and never enters the cache
    let expired = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"exp": xumm_gate::session::now() - 120}));
    assert_eq!(get_with(gw.addr, "/x", &[("authorization", &format!("Bearer {expired}"))]).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(verifier.cached(), 1);
}

#[tokio::test]
async fn bad_tokens_get_rfc6750_401s() {
    use jsonwebtoken::{EncodingKey, Header, Algorithm};
    let (gw, idp) = setup("").await;
    let good = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let now = xumm_gate::session::now();
    let claims = serde_json::json!({"sub": ACCOUNT, "aud": CLIENT_ID, "iss": idp.issuer, "exp": now + 3600, "iat": now});
    let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    // HS256 "signed" with the provider's public key material
    let jwks: serde_json::Value = reqwest_like_get(&format!("{}/certs", idp.issuer)).await;
    let public_n = jwks["keys"][0]["n"].as_str().unwrap().to_string();
    let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(public_n.as_bytes())).unwrap();
    // a key the provider never published (the dev provider's second key, not yet rotated in)
    let never = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(include_bytes!("../src/demo/keys/dev-idp-2.pem")).unwrap(),
    )
    .unwrap();
    let changed = format!("{}.{}.{}", parts[0], b64(&serde_json::json!({"sub": OTHER_ACCOUNT, "aud": CLIENT_ID, "iss": idp.issuer, "exp": now + 3600})), parts[2]);
    let cut = good[..good.len() - 10].to_string();
    let expired = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"exp": now - 3600, "iat": now - 7200}));
    let wrong_iss = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"iss": "https://evil.example"}));
    let wrong_aud = idp.issue_token("someone-else", ACCOUNT, "MAINNET", serde_json::json!({}));
    let bad_account = idp.issue_token(CLIENT_ID, "rNOPE", "MAINNET", serde_json::json!({}));
    let future = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({"nbf": now + 3600}));
    let huge = "a".repeat(20_000);
    let cases: Vec<(&str, String)> = vec![
        ("malformed token", none),
        ("algorithm not allowed", hs),
        ("bad signature", never),
        ("bad signature", changed),
        ("bad signature", cut),
        ("token expired", expired),
        ("wrong issuer", wrong_iss),
        ("wrong audience", wrong_aud),
        ("account claim missing or not a valid r-address", bad_account),
        ("token not yet valid", future),
        ("malformed token", "junk".into()),
        ("malformed token", "a.b.c".into()),
        ("malformed token", huge),
    ];
    for (reason, token) in cases {
        let got = get_with(gw.addr, "/api", &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{reason}");
        let www = got.headers["www-authenticate"].to_str().unwrap();
        assert_eq!(www, format!("Bearer error=\"invalid_token\", error_description=\"{reason}\""));
        assert_eq!(got.json()["reason"], reason);
        assert!(token.len() < 8 || !got.text().contains(&token));
    }
}

async fn reqwest_like_get(url: &str) -> serde_json::Value {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
    get(addr, &format!("/{}", url.trim_start_matches("http://").split_once('/').unwrap().1)).await.json()
}

#[tokio::test]
async fn forward_auth_for_nginx_style_callers() {
    let (gw, idp) = setup("").await;
    let me = login(gw.addr, ACCOUNT, "MAINNET").await;
    let me = format!("{}={}", me.0, me.1);
    let other = login(gw.addr, OTHER_ACCOUNT, "MAINNET").await;
    let other = format!("{}={}", other.0, other.1);
    let auth = |uri: &'static str, cookie: Option<String>| {
        let addr = gw.addr;
        async move {
            let mut h: Vec<(&str, String)> = vec![("x-original-uri", uri.to_string())];
            if let Some(c) = cookie {
                h.push(("cookie", c));
            }
            let hh: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get_with(addr, "/.xumm/auth", &hh).await
        }
    };
    assert_eq!(auth("/app", None).await.status, StatusCode::UNAUTHORIZED);
    let ok = auth("/app", Some(me.clone())).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["x-xumm-account"], ACCOUNT);
    assert_eq!(ok.headers["x-xumm-network"], "MAINNET");
    assert_eq!(ok.headers["x-auth-request-user"], ACCOUNT);
    assert_eq!(auth("/admin/x", Some(other.clone())).await.status, StatusCode::FORBIDDEN);
    assert_eq!(auth("/admin/x", Some(me.clone())).await.status, StatusCode::OK);
    let public = auth("/public/x", None).await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(public.headers.get("x-xumm-account").is_none());
    // policy on the normalized path, no query or fragment smuggling
    for uri in ["/admin?x=/public", "/admin#/public", "/public/../admin"] {
        assert_eq!(auth(uri, Some(other.clone())).await.status, StatusCode::FORBIDDEN, "{uri}");
    }
    assert_eq!(auth("/private%23/public", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth("/private?x=/public", None).await.status, StatusCode::UNAUTHORIZED);
    // malformed original URIs are never 2xx, even with a session
    for uri in ["private", "/a b", "/a%2Fb", ""] {
        let got = get_with(gw.addr, "/.xumm/auth", &[("x-original-uri", uri), ("cookie", &me)]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{uri:?}");
    }
    // Bearer works the same
    let token = idp.issue_token(NATIVE_CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let got = get_with(gw.addr, "/.xumm/auth", &[("x-original-uri", "/app"), ("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["x-xumm-account"], ACCOUNT);
}

#[tokio::test]
async fn forward_auth_ignores_original_uri_from_untrusted_peers() {
    let (gw, _idp) = setup("trusted_proxies = []").await;
    // a client claiming to ask for a public path is not believed
    let got = get_with(gw.addr, "/.xumm/auth", &[("x-original-uri", "/public/x")]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forward_auth_redirect_mode_for_traefik() {
    let (gw, _idp) = setup("").await;
    let h = |method: &'static str, accept: &'static str| {
        vec![
            ("x-forwarded-method", method),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-uri", "/orders?id=7"),
            ("accept", accept),
        ]
    };
    let got = get_with(gw.addr, "/.xumm/auth?mode=redirect", &h("GET", "text/html")).await;
    assert_eq!(got.status, StatusCode::FOUND);
    assert_eq!(got.headers["location"], "http://127.0.0.1:4180/.xumm/start?rd=https%3A%2F%2Fapp.example.com%2Forders%3Fid%3D7");
    let got = get_with(gw.addr, "/.xumm/auth?mode=redirect", &h("POST", "text/html")).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER);
    assert!(got.headers.contains_key("location"));
    let got = get_with(gw.addr, "/.xumm/auth?mode=redirect", &h("GET", "application/json")).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let mut xhr = h("GET", "text/html");
    xhr.push(("x-requested-with", "XMLHttpRequest"));
    assert_eq!(get_with(gw.addr, "/.xumm/auth?mode=redirect", &xhr).await.status, StatusCode::UNAUTHORIZED);
    // the whole original URI comes back: every query parameter, escapes and spaces kept
    let mut search = h("GET", "text/html");
    search[3] = ("x-forwarded-uri", "/my%20search?q=xrp&page=2");
    let got = get_with(gw.addr, "/.xumm/auth?mode=redirect", &search).await;
    assert_eq!(got.headers["location"], "http://127.0.0.1:4180/.xumm/start?rd=https%3A%2F%2Fapp.example.com%2Fmy%2520search%3Fq%3Dxrp%26page%3D2");
    // a host that is not allowed is never a return target
    let mut evil = h("GET", "text/html");
    evil[2] = ("x-forwarded-host", "evil.example");
    let got = get_with(gw.addr, "/.xumm/auth?mode=redirect", &evil).await;
    assert_eq!(got.headers["location"], "http://127.0.0.1:4180/.xumm/start?rd=%2F");
    // status mode (the default) never redirects
    assert_eq!(get_with(gw.addr, "/.xumm/auth", &h("GET", "text/html")).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_for_listed_origins_only() {
    let up = upstream().await;
    let idp = idp().await;
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", "\n[cors]\nallowed_origins = [\"https://spa.example.com\"]\n")).await;
    let pre = |origin: &'static str| {
        let addr = gw.addr;
        async move {
            send(
                http::Request::builder()
                    .method("OPTIONS")
                    .uri(format!("http://{addr}/api/orders"))
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "authorization, content-type")
                    .body(full(""))
                    .unwrap(),
            )
            .await
        }
    };
    // a preflight from a listed origin is answered without authentication
    let ok = pre("https://spa.example.com").await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    assert_eq!(ok.headers["access-control-allow-origin"], "https://spa.example.com");
    assert_eq!(ok.headers["access-control-allow-credentials"], "true");
    assert_eq!(ok.headers["access-control-allow-headers"], "authorization, content-type");
    assert_eq!(ok.headers["vary"], "Origin");
    // any other OPTIONS is a request like any other: it needs sign-in
    let other = pre("https://evil.example").await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert!(other.headers.get("access-control-allow-origin").is_none());
    let bare = send(http::Request::builder().method("OPTIONS").uri(format!("http://{}/api/orders", gw.addr)).header("origin", "https://spa.example.com").body(full("")).unwrap()).await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    // actual calls: listed origin gets credentials and can read the 401; others get nothing
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    let got = get_with(gw.addr, "/api/orders", &[("origin", "https://spa.example.com"), ("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["access-control-allow-origin"], "https://spa.example.com");
    assert_eq!(got.headers["vary"], "Origin");
    let got = get_with(gw.addr, "/api/orders", &[("origin", "https://evil.example"), ("authorization", &format!("Bearer {token}"))]).await;
    assert!(got.headers.get("access-control-allow-origin").is_none());
    assert_eq!(got.headers["vary"], "Origin");
    let got = get_with(gw.addr, "/api/orders", &[("origin", "https://spa.example.com")]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.headers["access-control-allow-origin"], "https://spa.example.com");
}

#[tokio::test]
async fn signed_assertions_verify_with_the_published_key_and_are_reused() {
    let up = upstream().await;
    let idp = idp().await;
    let cfg = auth_config(up, &idp.issuer, "", "\n[assertion]\nenabled = true\nttl = \"5m\"\n")
        .replace(&format!("url = \"http://{up}\"\n"), &format!("url = \"http://{up}\"\nassertion_audience = \"shop\"\n"));
    let gw = ready_gateway(&cfg).await;
    let (name, value) = login(gw.addr, ACCOUNT, "MAINNET").await;
    let cookie = format!("{name}={value}");
    let first = get_with(gw.addr, "/x", &[("cookie", &cookie), ("x-xumm-assertion", "forged")]).await;
    let a1 = first.upstream_header("x-xumm-assertion");
    assert_eq!(a1.len(), 1);
    assert_ne!(a1[0], "forged");
    let second = get_with(gw.addr, "/y", &[("cookie", &cookie)]).await;
    assert_eq!(second.upstream_header("x-xumm-assertion"), a1, "the signed value is reused, not re-signed per request");

    let jwks = get(gw.addr, "/.xumm/jwks.json").await.json();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    assert!(jwks.to_string().find("\"d\"").is_none(), "no private part published");
    let key = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["shop"]);
    v.set_issuer(&["http://127.0.0.1:4180"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&a1[0], &key, &v).expect("assertion verifies").claims;
    assert_eq!(claims["sub"], ACCOUNT);
    assert_eq!(claims["network"], "MAINNET");
    assert!(claims["exp"].as_u64().unwrap() <= xumm_gate::session::now() + 300);
    // public routes and anonymous requests never carry one
    assert!(get(gw.addr, "/public/x").await.upstream_header("x-xumm-assertion").is_empty());
}

#[tokio::test]
async fn assertion_key_from_a_pem_file_and_bearer_switch() {
    use p256::pkcs8::EncodePrivateKey;
    let up = upstream().await;
    let idp = idp().await;
    let dir = tempfile::tempdir().unwrap();
    let key = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let path = dir.path().join("assertion.pem");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let more = format!("\n[assertion]\nenabled = true\nkey = \"file:{}\"\n\n[bearer]\nenabled = false\n", path.display());
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", &more)).await;
    // the published key is the configured one (same x coordinate)
    use base64::Engine;
    let point = key.public_key().to_sec1_bytes();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&point[1..33]);
    assert_eq!(get(gw.addr, "/.xumm/jwks.json").await.json()["keys"][0]["x"], x);
    // with [bearer] enabled = false a valid token is not a way in
    let token = idp.issue_token(CLIENT_ID, ACCOUNT, "MAINNET", serde_json::json!({}));
    assert_eq!(get_with(gw.addr, "/x", &[("authorization", &format!("Bearer {token}"))]).await.status, StatusCode::UNAUTHORIZED);
}
