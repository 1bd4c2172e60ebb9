//! xumm-gate: Sign in with Xumm in front of web apps. This crate root wires config -> state ->
//! servers; it must never hold request logic of its own.
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod admission;
pub mod audit;
pub mod assertion;
pub mod auth;
pub mod account;
pub mod bearer;
pub mod body;
pub mod config;
pub mod connection;
pub mod conns;
pub mod cors;
#[cfg(feature = "dev")]
pub mod demo;
pub mod error;
pub mod explain;
pub mod fast;
pub mod forward_auth;
pub mod headers;
pub mod identity;
pub mod ledger;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod path;
pub mod payload_login;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod redirect;
pub mod redis_conn;
pub mod reload;
pub mod request_id;
pub mod router;
pub mod server;
pub mod session;
pub mod shared;
pub mod telemetry;
pub mod tls;
pub mod worker;
pub mod xapp;
pub mod xumm;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, Server};

/// Shared state of one running gateway, built once at start.
pub struct Gateway {
    /// The checked `[server]` settings.
    pub server: Server,
    /// Readiness, draining, open connections, the metrics registry, TLS (`server` serves them);
    /// one for the process, kept across config reloads.
    pub life: Arc<server::Lifecycle>,
    /// The one decision every entry point asks (`admission`).
    pub admission: admission::Admission,
    /// The upstreams and the general path's pools to them.
    pub proxy: Arc<proxy::Proxy>,
    /// What the gateway's own endpoints need beyond admission (sign-in, forward auth, CORS).
    pub endpoints: Endpoints,
    /// The sign-request broker, when `[xumm]` is configured.
    pub broker: Option<xumm::broker::Broker>,
    /// The audit log (security events).
    pub audit: Arc<audit::Audit>,
}

/// Settings of the gateway's own endpoints: where sign-in may send people back to, how forward
/// auth answers, which origins may call cross-origin.
pub struct Endpoints {
    pub allowed_redirect_hosts: Vec<String>,
    /// `[forward_auth] mode = "redirect"`.
    pub forward_auth_redirect: bool,
    pub cors: cors::Cors,
    /// Sign-in with SignIn payloads, when `provider.kind = "payload"`.
    pub payload_login: Option<Arc<payload_login::PayloadLogin>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A started gateway: its bound addresses and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// The plain-HTTP listener that redirects to HTTPS (`server.tls.redirect_http_listen`).
    pub redirect_addr: Option<SocketAddr>,
    /// The gateway as started (`live` has the one serving now, after any reload).
    pub gateway: Arc<Gateway>,
    /// The config now in use, and reloading it.
    pub live: Arc<reload::Live>,
    shutdown: watch::Sender<bool>,
    admin_shutdown: watch::Sender<bool>,
    public_task: JoinHandle<()>,
    /// Extra listener threads, one current-thread runtime each.
    workers: Vec<std::thread::JoinHandle<()>>,
    admin_task: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by `server.drain_timeout`), returns when done.
    pub async fn shutdown(self) {
        self.gateway.life.draining.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        let _ = self.public_task.await;
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join()))).await;
        // The admin listener outlives the drain so /readyz can say "draining" meanwhile.
        let _ = self.admin_shutdown.send(true);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
    }
}

/// Reads the files a config names (TLS certificates, keys and CAs, upstream CAs and client
/// certificates, allow-list files) as `start` and a reload would: `check-config` runs it so it
/// makes the checks `run` makes before binding.
pub fn check_files(config: &Config) -> Result<(), ConfigError> {
    let server = config.server()?;
    tls::Tls::load(&server)?;
    proxy::Proxy::new(&server, &config.upstreams)?;
    policy::RouteTable::new(&config.routes, config.server.strict_paths, config.policy.default.get())?;
    Ok(())
}

/// Binds the listeners and starts serving. Must be called inside a tokio runtime, and is meant
/// for a current-thread one (as `run` and `demo` do): the calling thread serves as one worker and
/// `server.workers - 1` more threads are started, each owning its fast-path upstream pool and
/// that pool's idle reaper. (Under a multi-thread runtime, requests work the same, but idle
/// upstream sockets are reaped only on the thread the reaper task runs on.)
pub async fn start(config: Config) -> Result<Running, StartError> {
    let server = config.server()?;
    // Installed before anything registers metric handles.
    let prometheus = metrics::install();
    telemetry::install(&config.tracing)?;
    let (tx, rx) = watch::channel(false);
    // What lives as long as the process, whatever the config file says later: the listeners'
    // state, the state replicas share, sign-in (store, provider, keys) and the Xumm client.
    let lasting = reload::Lasting::new(&config, &server, prometheus)?;
    pages::Branding::from_config(&config.pages, &server.prefix)?.install();
    let gateway = Arc::new(reload::build(&config, server, &lasting)?);
    let live = Arc::new(reload::Live::new(gateway.clone(), config, lasting));
    let workers = match gateway.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let bind_err = |source| StartError::Bind { addr: gateway.server.listen, source };
    let listener = server::bind(gateway.server.listen, workers > 1).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    // One current-thread runtime per extra worker, each with its own SO_REUSEPORT listener on the
    // same address (and, through the proxy's per-thread pools, its own upstream connections).
    let mut worker_threads = Vec::new();
    for i in 1..workers {
        let l = server::bind(addr, true).map_err(bind_err)?.into_std().map_err(bind_err)?;
        let (live, rx) = (live.clone(), rx.clone());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(bind_err)?;
        let t = std::thread::Builder::new()
            .name(format!("xumm-gate-worker-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    match TcpListener::from_std(l) {
                        Ok(l) => server::serve_public(live, l, rx).await,
                        Err(e) => tracing::error!(cause = %e, "worker listener failed"),
                    }
                })
            })
            .map_err(bind_err)?;
        worker_threads.push(t);
    }
    let (admin_tx, admin_rx) = watch::channel(false);
    let mut admin_addr = None;
    let mut admin_task = None;
    let mut redirect_addr = None;
    if let Some(a) = gateway.server.admin_listen {
        let l = server::bind(a, false).map_err(|source| StartError::Bind { addr: a, source })?;
        admin_addr = Some(l.local_addr().map_err(|source| StartError::Bind { addr: a, source })?);
        admin_task = Some(tokio::spawn(server::serve_admin(live.clone(), l, admin_rx)));
    }
    if let Some(tls) = &gateway.life.tls {
        tokio::spawn(tls.clone().watch(rx.clone()));
        if let Some(a) = gateway.server.redirect_http_listen {
            let l = server::bind(a, false).map_err(|source| StartError::Bind { addr: a, source })?;
            redirect_addr = Some(l.local_addr().map_err(|source| StartError::Bind { addr: a, source })?);
            tokio::spawn(server::serve_redirect(live.clone(), l, rx.clone()));
        }
    }
    tokio::spawn(reload::watch_files(live.clone(), rx.clone()));
    let public_task = tokio::spawn(server::serve_public(live.clone(), listener, rx));
    match &gateway.admission.auth {
        // Ready once the provider's metadata and keys are loaded (retried with backoff); a
        // gateway signing in with payloads asks no OAuth2 provider anything.
        Some(auth) if auth.provider.cfg.kind.get() == config::ProviderKind::Oauth2 => {
            let gw = gateway.clone();
            auth.provider.clone().spawn_discovery(move || gw.life.ready.store(true, Ordering::Release));
        }
        _ => gateway.life.ready.store(true, Ordering::Release),
    }
    tracing::info!(listen = %addr, admin = ?admin_addr, "xumm-gate serving");
    Ok(Running { addr, admin_addr, redirect_addr, gateway, live, shutdown: tx, admin_shutdown: admin_tx, public_task, workers: worker_threads, admin_task })
}
