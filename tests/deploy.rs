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
    for d in &ing {
        assert!(d["apiVersion"].is_string() && d["kind"].is_string() && d["metadata"]["name"].is_string());
    }
}

/// `kubectl kustomize` (on the machine) renders an overlay; its documents.
fn render(overlay: &str) -> Vec<serde_yaml::Value> {
    let dir = format!("{}/deploy/kubernetes/overlays/{overlay}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("kubectl").args(["kustomize", &dir]).output().expect("kubectl is installed (.ci/run installs it)");
    assert!(out.status.success(), "{overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

#[test]
fn every_kubernetes_overlay_renders_a_deployment_that_runs() {
    for overlay in ["standalone", "sidecar", "forward-auth", "external-redis"] {
        let docs = render(overlay);
        let kind = |k: &'static str| docs.iter().filter(move |d| d["kind"].as_str() == Some(k));
        // No secret value in the manifests: no Secret at all, only references to one.
        assert_eq!(kind("Secret").count(), 0, "{overlay} inlines a Secret");
        let deploy = kind("Deployment").find(|d| d["metadata"]["name"] == "xumm-gate").expect("the gateway's Deployment");
        assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(2), "{overlay}");
        let pod = &deploy["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{overlay}");
        assert!(pod["topologySpreadConstraints"].is_sequence(), "{overlay}");
        let gw = pod["containers"].as_sequence().unwrap().iter().find(|c| c["name"] == "xumm-gate").unwrap();
        assert_eq!(gw["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true), "{overlay}");
        assert!(gw["resources"]["limits"]["memory"].is_string(), "{overlay}");
        let ports: Vec<(String, u64)> = gw["ports"].as_sequence().unwrap().iter().map(|p| (p["name"].as_str().unwrap().to_string(), p["containerPort"].as_u64().unwrap())).collect();
        assert_eq!(ports, vec![("http".to_string(), 4180), ("admin".to_string(), 9180)], "{overlay}");
        assert_eq!(gw["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(gw["readinessProbe"]["httpGet"]["port"], "admin");
        assert_eq!(gw["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(gw["envFrom"][0]["secretRef"]["name"], "xumm-gate", "{overlay}: secrets come from the Secret");
        for e in gw["env"].as_sequence().unwrap() {
            let name = e["name"].as_str().unwrap();
            assert!(!name.contains("SECRET") || e.get("valueFrom").is_some(), "{overlay}: {name} inlined");
        }
        assert!(kind("PodDisruptionBudget").count() == 1 && kind("Service").count() >= 1 && kind("NetworkPolicy").count() == 1, "{overlay}");
        // The rendered config is a valid xumm-gate config with the environment the Deployment gives.
        let cm = kind("ConfigMap").next().expect("the config");
        let mounted = pod["volumes"][0]["configMap"]["name"].as_str().unwrap();
        assert_eq!(cm["metadata"]["name"].as_str(), Some(mounted), "{overlay}: the Deployment mounts the generated ConfigMap");
        let env = |n: &str| match n {
            "XUMM_GATE_COOKIE_SECRET" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
            "REDIS_URL" => Some("redis://redis:6379".to_string()),
            "PUBLIC_URL" => Some("https://app.example.com".to_string()),
            "UPSTREAM_URL" => Some("http://127.0.0.1:8080".to_string()),
            _ => Some("11111111-2222-4333-8444-555555555555".to_string()),
        };
        let cfg = xumm_gate::config::Config::from_toml(cm["data"]["config.toml"].as_str().unwrap(), &env).unwrap_or_else(|e| panic!("{overlay}: {e}"));
        assert_eq!(cfg.session.as_ref().unwrap().store.get(), xumm_gate::config::StoreKind::Redis, "{overlay}: replicas share sessions");
        let redis_env = gw["env"].as_sequence().unwrap().iter().any(|e| e["name"] == "REDIS_URL");
        assert!(redis_env, "{overlay}: REDIS_URL is set");
        match overlay {
            "standalone" => assert!(kind("Deployment").any(|d| d["metadata"]["name"] == "xumm-gate-redis")),
            "sidecar" => assert!(pod["containers"].as_sequence().unwrap().iter().any(|c| c["name"] == "app")),
            "forward-auth" => {
                assert!(cfg.upstreams.is_empty(), "forward auth needs no upstream");
                assert!(kind("Ingress").count() == 2);
            }
            _ => {}
        }
    }
}


#[test]
fn the_container_and_compose_example_fit_together() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY deploy/compose/config.toml /etc/xumm-gate/config.toml"), "the baked-in config listens on 0.0.0.0");
    let build = dockerfile.lines().find(|l| l.starts_with("RUN cargo build")).expect("the image builds the binary");
    assert!(build.contains("--no-default-features"), "the image leaves the development servers out: {build}");
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

/// Every `xumm_gate_*` metric family the gateway's source defines.
fn defined_metrics() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().map(Result::unwrap) {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "rs") {
                names.extend(metric_names(&std::fs::read_to_string(e.path()).unwrap()).into_iter().filter(|n| !n.ends_with('_')));
            }
        }
    }
    names
}

/// The `xumm_gate_*` names in `text`, with a histogram's `_bucket`/`_count`/`_sum` taken off.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("xumm_gate_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds"))).unwrap_or(&name);
        out.insert(base.to_string());
    }
    out
}

fn promtool_check_rules(path: &std::path::Path) {
    let out = std::process::Command::new("promtool").arg("check").arg("rules").arg(path).output().expect("promtool is installed (.ci/run installs Debian's prometheus)");
    assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn alert_rules_and_dashboard_use_only_metrics_the_gateway_exports_and_the_readme_lists_them_all() {
    let root = env!("CARGO_MANIFEST_DIR");
    let defined = defined_metrics();
    assert!(defined.len() >= 20, "{defined:?}");
    // The rules: valid for Prometheus, and about metrics that exist.
    let rules_path = std::path::PathBuf::from(format!("{root}/deploy/observability/alerts.yml"));
    promtool_check_rules(&rules_path);
    let rules = &docs("deploy/observability/alerts.yml")[0];
    let alerts: Vec<&str> = rules["groups"][0]["rules"].as_sequence().unwrap().iter().map(|r| r["alert"].as_str().unwrap()).collect();
    for want in ["SignInFailureRatio", "XummUnavailable", "StoreUnavailable", "UpstreamErrorRatio", "CertificateExpiresSoon"] {
        assert!(alerts.iter().any(|a| a.ends_with(want)), "no {want} alert in {alerts:?}");
    }
    let used = metric_names(&std::fs::read_to_string(&rules_path).unwrap());
    assert!(used.is_subset(&defined), "alerts.yml names metrics the gateway does not export: {:?}", used.difference(&defined).collect::<Vec<_>>());

    // The dashboard: JSON Grafana imports, every query valid PromQL (checked by promtool as
    // recording rules, Grafana's $__range made concrete) and about metrics that exist.
    let text = std::fs::read_to_string(format!("{root}/deploy/observability/grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "xumm-gate");
    let panels = dash["panels"].as_array().unwrap();
    let mut exprs = Vec::new();
    for p in panels {
        assert!(p["title"].is_string() && p["datasource"]["uid"] == "${datasource}", "{p}");
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{p}");
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().replace("$__range", "1h"));
        }
    }
    let used = metric_names(&text);
    assert!(used.is_subset(&defined), "the dashboard names metrics the gateway does not export: {:?}", used.difference(&defined).collect::<Vec<_>>());
    let as_rules = tempfile::NamedTempFile::new().unwrap();
    let records: Vec<serde_json::Value> = exprs.iter().enumerate().map(|(i, e)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": e})).collect();
    std::fs::write(as_rules.path(), serde_json::json!({"groups": [{"name": "dashboard", "rules": records}]}).to_string()).unwrap();
    promtool_check_rules(as_rules.path());

    // The README's Operating section lists every metric, and the dashboard shows most of them.
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let operating = readme.split("\n## Operating").nth(1).expect("README has an Operating section").split("\n## ").next().unwrap();
    let listed = metric_names(operating);
    assert!(defined.is_subset(&listed), "README's Operating section misses {:?}", defined.difference(&listed).collect::<Vec<_>>());
    assert!(listed.is_subset(&defined), "README's Operating section names metrics that do not exist: {:?}", listed.difference(&defined).collect::<Vec<_>>());
    assert!(used.len() * 10 >= defined.len() * 8, "the dashboard shows {} of {} metrics", used.len(), defined.len());
}
