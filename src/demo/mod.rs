//! Development-only pieces for `xumm-gate demo` and the tests. They must never bind anything but
//! a loopback address.

pub mod whoami;

use std::net::SocketAddr;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo listens on loopback addresses only, got {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot start the whoami upstream: {0}")]
    Whoami(std::io::Error),
    #[error(transparent)]
    Start(#[from] crate::StartError),
}

/// Starts whoami and a gateway in front of it on `listen`; returns the running gateway.
pub async fn start(listen: SocketAddr, admin: SocketAddr) -> Result<crate::Running, DemoError> {
    for a in [listen, admin] {
        if !a.ip().is_loopback() {
            return Err(DemoError::NotLoopback(a));
        }
    }
    let whoami = whoami::start(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(DemoError::Whoami)?;
    let text = format!(
        r#"
[server]
listen = "{listen}"
admin_listen = "{admin}"
public_url = "http://{listen}"

[[upstream]]
path = "/"
url = "http://{whoami}"

[[route]]
path = "/"
public = true
"#
    );
    let config = Config::from_toml(&text, &|_| None).map_err(crate::StartError::from)?;
    Ok(crate::start(config).await?)
}
