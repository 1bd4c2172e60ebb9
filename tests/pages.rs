//! `[pages]` branding on the pages the gateway shows people. Its own test binary: the branding
//! is one per process (a process runs one gateway).

mod common;

use common::*;
use http::StatusCode;

#[tokio::test]
async fn pages_carry_the_apps_name_logo_and_accent_and_bad_values_are_config_errors() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"32\" height=\"32\"><circle cx=\"16\" cy=\"16\" r=\"14\" fill=\"#a30\"/></svg>";
    std::fs::write(&logo, svg).unwrap();
    let pages = format!("\n[pages]\ntitle = \"Acme <Vault>\"\nlogo = \"{}\"\naccent = \"#aa3300\"\n", logo.display());
    let gw = gateway(&(config_text(up, "") + &pages)).await;
    let page = get_with(gw.addr, "/.xumm/nothing-here", &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let html = page.text();
    assert!(html.contains("<title>404 Not Found · Acme &lt;Vault&gt;</title>"), "{html}");
    assert!(html.contains("<header class=\"brand\"><img src=\"/.xumm/logo\" alt=\"\" height=\"32\"><span>Acme &lt;Vault&gt;</span></header>"), "{html}");
    assert!(html.contains(":root{--accent:#aa3300;--link:#aa3300}"), "{html}");
    let served = get(gw.addr, "/.xumm/logo").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.headers["content-type"], "image/svg+xml");
    assert!(served.headers["content-security-policy"].to_str().unwrap().contains("sandbox"), "an SVG's scripts never run");
    assert_eq!(served.body, svg.as_bytes());

    for (pages, expected) in [
        ("[pages]\naccent = \"red\"\n", "pages.accent: must be a colour like \"#0b4fd6\", got \"red\""),
        ("[pages]\nlogo = \"/nonexistent/logo.svg\"\n", "pages.logo: cannot read /nonexistent/logo.svg"),
        ("[pages]\nlogo = \"logo.gif\"\n", "pages.logo: must be an http(s) URL or a .svg, .png, .jpg or .webp file"),
    ] {
        let e = xumm_gate::config::Config::from_toml(&(config_text(up, "") + "\n" + pages), &no_env).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
}
