//! The `xumm-gate` command line: run, check-config, demo. It must never print a secret.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the proxy path allocates small, short-lived buffers on every
/// request, and glibc's malloc/free/consolidate were ~6% of the gateway's CPU (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use xumm_gate::config::{Config, process_env};

#[derive(Parser)]
#[command(name = "xumm-gate", version, about = "Sign in with Xumm in front of any web app")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (for the default `run` command).
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config and print it with secrets redacted.
    CheckConfig,
    /// Run only the development identity provider (loopback only), for benchmarks and local setups.
    DevProvider {
        #[arg(long, default_value = "127.0.0.1:4190")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
    },
    /// End every session of an account (on every replica with the Redis store), through the
    /// running gateway's admin listener.
    Revoke {
        /// The account (r-address) to sign out everywhere.
        account: String,
        /// The admin listener of a running gateway.
        #[arg(long, default_value = "http://127.0.0.1:9180")]
        admin: String,
        /// Its `server.admin_token`, when one is set.
        #[arg(long, env = "XUMM_GATE_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Exit 0 when the admin listener's /healthz answers 200 (for a container HEALTHCHECK, where
    /// no curl is installed).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9180/healthz")]
        url: String,
    },
    /// Route policy, for operators.
    Policy {
        #[command(subcommand)]
        action: PolicyCommand,
    },
    /// Run the whole product on loopback: gateway + whoami upstream (no Xumm account needed).
    Demo {
        /// Public listener of the demo gateway (loopback only).
        #[arg(long, default_value = "127.0.0.1:4180")]
        listen: std::net::SocketAddr,
        /// Admin listener of the demo gateway (loopback only).
        #[arg(long, default_value = "127.0.0.1:9180")]
        admin_listen: std::net::SocketAddr,
        /// The development provider's sign-in page (loopback; port 0 picks one). Fix it to
        /// forward the demo over SSH or from a container: the browser visits it too.
        #[arg(long, default_value = "127.0.0.1:0")]
        provider_listen: std::net::SocketAddr,
        /// The development wallet (Xumm platform) page, likewise.
        #[arg(long, default_value = "127.0.0.1:0")]
        wallet_listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Which rule decides a request by an account, and why each of its conditions holds or fails
    /// (reading the ledger and Xumm as the gateway would).
    Explain {
        /// The signed-in account (r-address).
        #[arg(long)]
        account: String,
        /// The request path.
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The host the request names.
        #[arg(long)]
        host: Option<String>,
        /// The session's network.
        #[arg(long, default_value = "MAINNET")]
        network: String,
    },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo { listen, admin_listen, provider_listen, wallet_listen }) => return demo([listen, admin_listen, provider_listen, wallet_listen]),
        Some(Command::DevProvider { listen, client_id, client_secret }) => return dev_provider(listen, client_id, client_secret),
        Some(Command::Healthcheck { url }) => return healthcheck(&url),
        Some(Command::Revoke { account, admin, token }) => return revoke(&admin, &account, token.as_deref()),
        _ => {}
    }
    if !cli.config.exists() {
        eprintln!("xumm-gate: no config file at {}", cli.config.display());
        eprintln!("  - try the whole product on this machine, no Xumm account needed:  xumm-gate demo");
        eprintln!("  - write a config (the repository's config.toml is a commented example), then");
        eprintln!("    check it:  xumm-gate check-config --config /path/to/config.toml");
        eprintln!("    run it:    xumm-gate --config /path/to/config.toml");
        return ExitCode::from(2);
    }
    let config = match Config::load(&cli.config, &process_env) {
        Ok(c) => c,
        Err(e) => {
            // One line per problem, each starting with its key path.
            for line in e.to_string().lines() {
                eprintln!("xumm-gate: config error: {line}");
            }
            return ExitCode::from(1);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            if let Err(e) = xumm_gate::check_files(&config) {
                eprintln!("xumm-gate: config error: {e}");
                return ExitCode::from(1);
            }
            print!("{}", config.redacted_toml());
            for w in config.warnings() {
                eprintln!("warning: {w}");
            }
            eprintln!("config OK");
            ExitCode::SUCCESS
        }
        Command::Run => run(config, cli.config.clone()),
        Command::Policy { action: PolicyCommand::Explain { account, path, method, host, network } } => {
            let _flush = xumm_gate::logging::init(&config.log);
            let q = xumm_gate::explain::Question { account: &account, network: &network, path: &path, method: &method, host: host.as_deref() };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(xumm_gate::explain::explain(&config, &q)) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xumm-gate policy explain: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo { .. } | Command::DevProvider { .. } | Command::Healthcheck { .. } | Command::Revoke { .. } => unreachable!("handled above"),
    }
}

/// A current-thread runtime: the calling thread is one gateway worker and `start` adds the others
/// (each with its own runtime, listener and upstream pool), for `run` and `demo` alike.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        eprintln!("xumm-gate: cannot start runtime: {e}");
        ExitCode::from(1)
    })
}

fn healthcheck(url: &str) -> ExitCode {
    match admin_call(http::Method::GET, url, None) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xumm-gate healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}

fn revoke(admin: &str, account: &str, token: Option<&str>) -> ExitCode {
    let q: String = url::form_urlencoded::byte_serialize(account.as_bytes()).collect();
    match admin_call(http::Method::POST, &format!("{}/sessions/revoke?account={q}", admin.trim_end_matches('/')), token) {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xumm-gate revoke: {e}");
            ExitCode::from(1)
        }
    }
}

/// One request to a gateway's admin listener: the body of a 200, or why not.
fn admin_call(method: http::Method, url: &str, token: Option<&str>) -> Result<String, String> {
    use http_body_util::BodyExt;
    let rt = runtime().map_err(|_| "cannot start a runtime".to_string())?;
    rt.block_on(async {
        let uri: http::Uri = url.parse().map_err(|_| format!("invalid URL {url:?}"))?;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(http_body_util::Empty::new()).map_err(|e| e.to_string())?;
        let call = async {
            let r = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
            let status = r.status();
            let body = r.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
            if status == http::StatusCode::OK { Ok(body) } else { Err(format!("{url} answered {status}: {}", body.trim())) }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), call).await.map_err(|_| format!("{url}: no answer within 5 s"))?
    })
}

/// Said by a production build (without the "dev" feature) asked for development servers.
#[cfg(not(feature = "dev"))]
fn without_dev(what: &str) -> ExitCode {
    eprintln!("xumm-gate {what}: this build has no development servers (built without the \"dev\" feature);");
    eprintln!("  build from the repository with the default features: cargo run --release -- {what}");
    ExitCode::from(2)
}

#[cfg(not(feature = "dev"))]
fn dev_provider(_: std::net::SocketAddr, _: String, _: String) -> ExitCode {
    without_dev("dev-provider")
}

#[cfg(not(feature = "dev"))]
fn demo(_: [std::net::SocketAddr; 4]) -> ExitCode {
    without_dev("demo")
}

#[cfg(feature = "dev")]
fn dev_provider(listen: std::net::SocketAddr, id: String, secret: String) -> ExitCode {
    let _flush = xumm_gate::logging::init(&Default::default());
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let app = xumm_gate::demo::idp::ClientApp { id, secret, name: "development app".into() };
        match xumm_gate::demo::idp::DevIdp::start(listen, vec![app]).await {
            Ok(idp) => {
                println!("development identity provider: {}", idp.issuer);
                wait_for_signal().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("xumm-gate dev-provider: {e}");
                ExitCode::from(1)
            }
        }
    })
}

#[cfg(feature = "dev")]
fn demo([listen, admin, provider, wallet]: [std::net::SocketAddr; 4]) -> ExitCode {
    let _flush = xumm_gate::logging::init(&Default::default());
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let demo = match xumm_gate::demo::start_with(listen, admin, provider, wallet).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("xumm-gate demo: {e}");
                return ExitCode::from(1);
            }
        };
        println!("xumm-gate demo is running: open http://{}/ in your browser (Ctrl-C stops it)", demo.gateway.addr);
        println!("  development identity provider: {}  (sign in with any r-address, e.g. {})", demo.idp.issuer, xumm_gate::demo::idp::DEMO_ACCOUNT);
        let admin = demo.gateway.admin_addr.map_or_else(|| "-".to_string(), |a| a.to_string());
        println!("  development wallet (sign requests): {}", demo.platform.url);
        println!("  open the app as an xApp, as Xumm would: {}/xapp", demo.platform.url);
        println!("  whoami upstream: http://{}  admin: http://{admin}/metrics", demo.whoami);
        println!("  (through SSH or a container, forward all of these ports, fixed with --provider-listen and --wallet-listen)");
        wait_for_signal().await;
        demo.gateway.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn run(config: Config, path: std::path::PathBuf) -> ExitCode {
    let _flush = xumm_gate::logging::init(&config.log);
    // The main thread is one worker (plus admin and background tasks); `start` adds the others.
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        let running = match xumm_gate::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("xumm-gate: {e}");
                return ExitCode::from(1);
            }
        };
        running.live.set_source(path);
        // SIGHUP reloads the config file (and re-reads the TLS files) until a stop signal.
        let live = running.live.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else { return tracing::warn!("cannot handle SIGHUP: reload with POST /config/reload") };
            while hup.recv().await.is_some() {
                let _ = live.reload_logged();
            }
        });
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(e) => {
            // Without a SIGTERM handler Ctrl-C still stops it (and SIGTERM's default ends it).
            tracing::warn!(cause = %e, "cannot handle SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
