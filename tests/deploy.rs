//! The deploy examples parse and say what the gateway expects (nginx's is run by tests/nginx.rs).

fn docs(path: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).expect("valid YAML")).collect()
}

#[test]
fn traefik_forward_auth_middleware() {
    let d = &docs("deploy/traefik/dynamic.yml")[0];
    let fa = &d["http"]["middlewares"]["xumm-auth"]["forwardAuth"];
    assert!(fa["address"].as_str().unwrap().ends_with("/.xumm/auth?mode=redirect"));
    // X-Forwarded-Uri (with the query string) only reaches the gateway when Traefik forwards it.
    assert_eq!(fa["trustForwardHeader"].as_bool(), Some(true));
    let headers: Vec<&str> = fa["authResponseHeaders"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(headers.contains(&"X-Xumm-Account"));
    assert_eq!(d["http"]["routers"]["app"]["middlewares"][0].as_str(), Some("xumm-auth"));
}

#[test]
fn ingress_nginx_annotations_and_kubernetes_manifests() {
    let ing = docs("deploy/ingress-nginx/ingress.yaml");
    assert_eq!(ing.len(), 2);
    let ann = &ing[0]["metadata"]["annotations"];
    assert!(ann["nginx.ingress.kubernetes.io/auth-url"].as_str().unwrap().ends_with("/.xumm/auth"));
    // The whole original URI, escaped as one parameter ($request_uri unescaped would split at '&').
    assert!(ann["nginx.ingress.kubernetes.io/auth-signin"].as_str().unwrap().ends_with("/.xumm/start?rd=$escaped_request_uri"));
    for d in ing.iter().chain(docs("deploy/kubernetes/sidecar.yaml").iter()) {
        assert!(d["apiVersion"].is_string() && d["kind"].is_string() && d["metadata"]["name"].is_string());
    }
    // the sidecar's embedded config is a valid xumm-gate config
    let side = docs("deploy/kubernetes/sidecar.yaml");
    let toml = side[0]["data"]["config.toml"].as_str().unwrap();
    let env = |n: &str| match n {
        "XUMM_GATE_COOKIE_SECRET" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
        _ => Some("11111111-2222-4333-8444-555555555555".to_string()),
    };
    xumm_gate::config::Config::from_toml(toml, &env).expect("sidecar config is valid");
}

#[test]
fn the_container_and_compose_example_fit_together() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY deploy/compose/config.toml /etc/xumm-gate/config.toml"), "the baked-in config listens on 0.0.0.0");
    let health = dockerfile.lines().find(|l| l.trim_start().starts_with("CMD [\"/usr/local/bin/xumm-gate\", \"healthcheck\"")).expect("HEALTHCHECK uses the binary");
    assert!(health.contains("127.0.0.1:9180/healthz"), "{health}");
    let ignore = std::fs::read_to_string(format!("{root}/.dockerignore")).unwrap();
    for kept_out in ["target/", "tests/browser/node_modules/", ".git/"] {
        assert!(ignore.lines().any(|l| l.trim() == kept_out), "{kept_out} in the build context");
    }
    let compose = &docs("deploy/compose/compose.yaml")[0];
    let gw = &compose["services"]["xumm-gate"];
    assert_eq!(gw["build"].as_str(), Some("../.."));
    let env = &gw["environment"];
    for secret in ["XUMM_API_KEY", "XUMM_API_SECRET", "XUMM_GATE_COOKIE_SECRET"] {
        assert!(env[secret].as_str().unwrap().contains(&format!("${{{secret}:?")), "{secret} must come from .env, never the file");
    }
    assert_eq!(env["UPSTREAM_URL"].as_str(), Some("http://app:8080"));
    assert!(compose["services"]["app"]["image"].is_string());
    // The compose environment makes the container config valid as it is.
    let config = std::fs::read_to_string(format!("{root}/deploy/compose/config.toml")).unwrap();
    let lookup = |n: &str| env[n].as_str().map(|v| if v.starts_with("${") { "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string() } else { v.to_string() });
    xumm_gate::config::Config::from_toml(&config, &lookup).expect("compose env + container config are valid");
}
