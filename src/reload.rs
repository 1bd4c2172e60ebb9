//! Live reload: a config file read again becomes a new `Gateway` beside the one serving, and
//! replaces it for requests that start afterwards. It must never apply a config that fails
//! validation or fails to build (the old one keeps serving, `/readyz` unchanged), never change
//! what cannot change without a restart (it keeps the running value and says so), and never
//! cut a request in flight: each request holds the gateway it started on.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{Config, ConfigError, ProviderKind, Server};
use crate::{Endpoints, Gateway, admission, assertion, auth, conns, cors, identity, metrics, pages, payload_login, policy, proxy, server, shared, tls, xapp, xumm};

/// What lives as long as the process, whatever the config file says later: the listeners'
/// state (connections, readiness, metrics, TLS), the state replicas share, sign-in (session
/// store, provider, keys, rate limits) and the client for Xumm's platform API.
pub struct Lasting {
    life: Arc<server::Lifecycle>,
    shared: Arc<shared::Shared>,
    auth: Option<Arc<auth::Auth>>,
    platform: Option<Arc<xumm::client::PlatformClient>>,
    payload_login: Option<Arc<payload_login::PayloadLogin>>,
    /// What accounts hold (a reload must not send every signed-in user to the ledger at once).
    ledger_cache: Arc<crate::ledger::Cache>,
    /// Where security events go (`log.audit`, a restart setting like the rest of `[log]`).
    audit: Arc<crate::audit::Audit>,
}

impl Lasting {
    pub fn new(config: &Config, server: &Server, prometheus: metrics_exporter_prometheus::PrometheusHandle) -> Result<Lasting, ConfigError> {
        let shared = Arc::new(shared::Shared::from_config(config.session.as_ref())?);
        let auth = auth::Auth::from_config(config, server, shared.clone())?.map(Arc::new);
        // One client for Xumm's platform API, the broker's and xApp sessions' alike.
        let platform = config.xumm.as_ref().map(|x| Arc::new(xumm::client::PlatformClient::new(x)));
        let payload_login = match (&config.provider, &platform) {
            (Some(p), Some(client)) if p.kind.get() == ProviderKind::Payload || p.qr_sign_in => {
                Some(Arc::new(payload_login::PayloadLogin::new(client.clone(), shared.clone(), p.payloads_per_minute, p.payload_expiry.get())))
            }
            _ => None,
        };
        let life = Arc::new(server::Lifecycle {
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            metrics: prometheus,
            conns: Arc::new(conns::Conns::new(conns::fit_to_fd_limit(server.max_connections), server.max_connections_per_ip)),
            tls: tls::Tls::load(server)?,
        });
        let audit = Arc::new(crate::audit::Audit::open(&config.log.audit)?);
        Ok(Lasting { life, shared, auth, platform, payload_login, ledger_cache: Arc::new(crate::ledger::Cache::new(LEDGER_CACHE_ENTRIES)), audit })
    }
}

/// Ledger facts kept at most (the least used go first).
const LEDGER_CACHE_ENTRIES: u64 = 200_000;

/// Builds a gateway for `config` around what lasts. Nothing here has effects beyond the value
/// it returns, so a config that fails half-way leaves the running one untouched.
pub fn build(config: &Config, server: Server, lasting: &Lasting) -> Result<Gateway, ConfigError> {
    let proxy = Arc::new(proxy::Proxy::new(&server, &config.upstreams)?);
    let shared = &lasting.shared;
    let xapp = match (&config.xapp, &lasting.platform) {
        (Some(x), Some(p)) if x.enabled => Some(xapp::Xapp::new(p.clone(), shared.clone())),
        _ => None,
    };
    let routes = policy::RouteTable::new(&config.routes, config.server.strict_paths, config.policy.default.get())?;
    let mut identity = identity::IdentityHeaders::new(&config.headers)?;
    identity.strip_also(&routes.granted_headers());
    Ok(Gateway {
        admission: admission::Admission {
            identity,
            asserter: assertion::Asserter::from_config(&config.assertion, server.public_url.as_str())?,
            ledger: Arc::new(crate::ledger::Ledger::new(&config.ledger, lasting.ledger_cache.clone(), lasting.platform.clone(), lasting.shared.is_redis().then(|| lasting.shared.clone()))?),
            routes,
            auth: lasting.auth.clone(),
            upstreams: proxy.clone(),
            xapp,
            default_route: Arc::new(metrics::RouteMetrics::new("default")),
            invalid_route: Arc::new(metrics::RouteMetrics::new("invalid")),
        },
        endpoints: Endpoints {
            // The hosts the session cookie covers are the gateway's to return to.
            allowed_redirect_hosts: config.server.allowed_redirect_hosts.iter().cloned().chain(config.session.as_ref().and_then(|s| s.cookie_domain()).map(|d| format!(".{d}"))).collect(),
            forward_auth_redirect: config.forward_auth.mode.get() == crate::config::ForwardAuthMode::Redirect,
            cors: cors::Cors::new(&config.cors.allowed_origins)?,
            payload_login: lasting.payload_login.clone(),
        },
        broker: lasting.platform.as_ref().zip(config.xumm.as_ref()).map(|(p, x)| xumm::broker::Broker::new(x, p.clone(), &config.broker.app, shared.clone(), lasting.audit.clone())),
        audit: lasting.audit.clone(),
        proxy,
        life: lasting.life.clone(),
        server,
    })
}

/// The gateway serving now, the config it was built from, and reloading it.
pub struct Live {
    current: ArcSwap<Gateway>,
    config: Mutex<Config>,
    lasting: Lasting,
    /// The file `reload` reads (`run` sets it; a gateway started from a config in code has none).
    source: Mutex<Option<PathBuf>>,
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// Keys whose new values need a restart: the running values were kept.
    pub restart_needed: Vec<&'static str>,
}

impl Live {
    pub fn new(gateway: Arc<Gateway>, config: Config, lasting: Lasting) -> Live {
        Live { current: ArcSwap::new(gateway), config: Mutex::new(config), lasting, source: Mutex::new(None) }
    }

    /// The gateway for a request that starts now.
    pub fn load(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    /// The listeners' state (the same for every gateway this process builds).
    pub fn life(&self) -> &server::Lifecycle {
        &self.lasting.life
    }

    /// Sets the file `reload` reads.
    pub fn set_source(&self, path: PathBuf) {
        *lock(&self.source) = Some(path);
    }

    /// Reads the config file again and applies it (SIGHUP, `POST /config/reload`). TLS files
    /// are re-read too, changed or not.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let path = lock(&self.source).clone();
        let Some(path) = path else {
            return Err(crate::config::err("config", "this gateway was not started from a file: nothing to reload"));
        };
        let config = Config::load(&path, &crate::config::process_env)?;
        self.apply(config)
    }

    /// Applies `new`: validated (by `Config::load`/`from_toml`) and built in full before it
    /// replaces anything; on any error the running gateway stays and the error is returned.
    pub fn apply(&self, mut new: Config) -> Result<Reloaded, ConfigError> {
        let mut running = lock(&self.config);
        let restart_needed = keep_restart_only(&running, &mut new);
        let server = new.server()?;
        let branding = pages::Branding::from_config(&new.pages, &server.prefix)?;
        let gateway = build(&new, server, &self.lasting)?;
        if let (Some(tls), Some(cfg)) = (&self.lasting.life.tls, &new.server.tls) {
            tls.reconfigure(cfg)?;
        }
        branding.install();
        self.current.store(Arc::new(gateway));
        *running = new;
        Ok(Reloaded { restart_needed })
    }

    /// `reload`, logged: what SIGHUP and the admin endpoint run.
    pub fn reload_logged(&self) -> Result<Reloaded, ConfigError> {
        let r = self.reload();
        log_outcome(&r);
        let error = r.as_ref().err().map(|e| e.to_string());
        self.lasting.audit.record(crate::audit::Event::ConfigReloaded { ok: r.is_ok(), error: error.as_deref() });
        r
    }

    /// The files the running config reads besides itself (allow lists), for `watch_files`.
    fn watched(&self) -> Vec<String> {
        lock(&self.config).routes.iter().filter(|r| !r.allow_accounts_file.is_empty()).map(|r| r.allow_accounts_file.clone()).collect()
    }

    /// Rebuilds from the running config, re-reading the files it names.
    fn refresh(&self) -> Result<Reloaded, ConfigError> {
        let config = lock(&self.config).clone();
        self.apply(config)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_outcome(r: &Result<Reloaded, ConfigError>) {
    match r {
        Ok(r) if r.restart_needed.is_empty() => tracing::info!("config reloaded"),
        Ok(r) => tracing::warn!(restart_needed = ?r.restart_needed, "config reloaded; these keys changed but need a restart, the running values stay"),
        Err(e) => tracing::error!(cause = %e, "config reload refused; the running config stays"),
    }
}

/// How often `allow_accounts_file`s are checked for changes.
const FILE_CHECK: Duration = Duration::from_secs(2);

/// Reapplies the running config when a file it reads (an `allow_accounts_file`) changes, until
/// `shutdown` flips. A file that fails (unreadable, a bad line) is logged once and the lists in
/// use stay.
pub async fn watch_files(live: Arc<Live>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(FILE_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let files = live.watched();
        if files.is_empty() {
            continue;
        }
        let now: Vec<Option<Vec<u8>>> = files.iter().map(|f| std::fs::read(f).ok()).collect();
        let changed = seen.as_ref().is_some_and(|s| *s != now);
        seen = Some(now);
        if changed {
            let r = live.refresh();
            match &r {
                Ok(_) => tracing::info!(target: "xumm_gate::audit", "allow list file changed; applied"),
                Err(e) => tracing::error!(cause = %e, "allow list file changed but cannot be used; the lists in use stay"),
            }
        }
    }
}

/// Keeps in `new` the running values of what cannot change while the process runs (listeners,
/// the session store, the provider, Xumm's client, the log), and names each one that differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($name:literal => $($field:ident).+;)+) => {$(
            if old.$($field).+ != new.$($field).+ {
                new.$($field).+ = old.$($field).+.clone();
                kept.push($name);
            }
        )+};
    }
    keep! {
        "server.listen" => server.listen;
        "server.admin_listen" => server.admin_listen;
        "server.public_url" => server.public_url;
        "server.prefix" => server.prefix;
        "server.workers" => server.workers;
        "server.header_read_timeout" => server.header_read_timeout;
        "server.max_header_bytes" => server.max_header_bytes;
        "server.max_headers" => server.max_headers;
        "server.http2_max_streams" => server.http2_max_streams;
        "server.max_connections" => server.max_connections;
        "server.max_connections_per_ip" => server.max_connections_per_ip;
        "server.sign_in_per_minute" => server.sign_in_per_minute;
        "log" => log;
        "tracing" => tracing;
        "provider" => provider;
        "session" => session;
        "bearer" => bearer;
        "xumm" => xumm;
        "xapp" => xapp;
    }
    // TLS on or off, and its redirect listener, need a restart; certificates and settings do not.
    match (&old.server.tls, &mut new.server.tls) {
        (Some(o), Some(n)) => {
            if o.redirect_http_listen != n.redirect_http_listen {
                n.redirect_http_listen = o.redirect_http_listen.clone();
                kept.push("server.tls.redirect_http_listen");
            }
        }
        (None, None) => {}
        _ => {
            new.server.tls = old.server.tls.clone();
            kept.push("server.tls");
        }
    }
    kept
}
