//! Development-only pieces for `xumm-gate demo` and the tests. They must never bind anything but
//! a loopback address.

pub mod idp;
pub mod platform;
pub mod whoami;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Binds `addr`, refusing anything but a loopback address.
pub(crate) async fn bind_loopback(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("the {what} binds loopback addresses only")));
    }
    TcpListener::bind(addr).await
}

/// Serves `handler` on `listener` (HTTP/1.1 and h2c, upgrades allowed) until the process ends.
pub(crate) fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(handler);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo listens on loopback addresses only, got {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot start the whoami upstream: {0}")]
    Whoami(std::io::Error),
    #[error("cannot start the development provider: {0}")]
    Provider(std::io::Error),
    #[error("cannot start the development Xumm platform (wallet): {0}")]
    Platform(std::io::Error),
    #[error(transparent)]
    Start(#[from] crate::StartError),
}

/// The demo's client credentials at its development provider.
pub const DEMO_CLIENT_ID: &str = "0d3b2c1a-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

/// Everything `xumm-gate demo` runs.
pub struct Demo {
    pub gateway: crate::Running,
    pub idp: idp::DevIdp,
    pub whoami: SocketAddr,
    pub platform: platform::DevPlatform,
}

/// Starts the development provider, whoami and a gateway in front of it on `listen`; the
/// provider and the platform (wallet) on ports of their own.
pub async fn start(listen: SocketAddr, admin: SocketAddr) -> Result<Demo, DemoError> {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    start_with(listen, admin, any, any).await
}

/// `start`, with the provider's and the platform's addresses chosen (fixed ports, for a demo
/// reached through SSH or container port forwarding: the browser visits all three).
pub async fn start_with(listen: SocketAddr, admin: SocketAddr, provider_at: SocketAddr, platform_at: SocketAddr) -> Result<Demo, DemoError> {
    for a in [listen, admin, provider_at, platform_at] {
        if !a.ip().is_loopback() {
            return Err(DemoError::NotLoopback(a));
        }
    }
    let ephemeral = listen.port() == 0;
    use base64::Engine;
    let secret = crate::session::new_id();
    let cookie_secret = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let client = idp::ClientApp { id: DEMO_CLIENT_ID.into(), secret: secret.clone(), name: "xumm-gate demo".into() };
    let provider = idp::DevIdp::start(provider_at, vec![client]).await.map_err(DemoError::Provider)?;
    let whoami = whoami::start(loopback).await.map_err(DemoError::Whoami)?;
    let (xumm_key, xumm_secret) = (crate::session::new_id(), crate::session::new_id());
    let platform = platform::DevPlatform::start(platform_at, &xumm_key, &xumm_secret).await.map_err(DemoError::Platform)?;
    // public_url must name the real port, so an ephemeral port is picked here (probed), not by
    // the listener; another process may take it in between, hence the retries.
    let mut attempt = 0;
    let gateway = loop {
        attempt += 1;
        let listen = if ephemeral {
            let probe = std::net::TcpListener::bind(listen).map_err(DemoError::Whoami)?;
            probe.local_addr().map_err(DemoError::Whoami)?
        } else {
            listen
        };
        let text = format!(
            r#"
[server]
listen = "{listen}"
admin_listen = "{admin}"
public_url = "http://{listen}"

[provider]
issuer = "{issuer}"
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{secret}"
qr_sign_in = true

[session]
cookie_secrets = ["{cookie_secret}"]

[xumm]
api_url = "{platform_url}"
api_key = "{xumm_key}"
api_secret = "{xumm_secret}"

[xapp]

[[upstream]]
path = "/"
url = "http://{whoami}"

[[route]]
path = "/public"
public = true

[[route]]
path = "/admin"
allow_accounts = ["{account}"]
"#,
            issuer = provider.issuer,
            account = idp::DEMO_ACCOUNT,
            platform_url = platform.url,
        );
        let config = Config::from_toml(&text, &|_| None).map_err(crate::StartError::from)?;
        match crate::start(config).await {
            Ok(gateway) => {
                platform.set_xapp_url(&format!("http://{listen}/"));
                break gateway;
            }
            // Someone took the probed port before the gateway bound it: probe again.
            Err(crate::StartError::Bind { .. }) if ephemeral && attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Demo { gateway, idp: provider, whoami, platform })
}
