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
    assert!(ann["nginx.ingress.kubernetes.io/auth-signin"].as_str().unwrap().contains("/.xumm/start?rd="));
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
