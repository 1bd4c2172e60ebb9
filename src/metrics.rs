//! Prometheus metrics. It must never label a metric with user input (paths, accounts, tokens):
//! labels are configured route and upstream names and status classes only.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process and returns the render handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    // Every latency is a histogram (summaries cannot be summed across replicas).
                    Matcher::Suffix("_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding apps); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            build_info();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok();
            handle
        })
        .clone()
}

fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A route's label and its request counters, registered once so the hot path only increments.
pub struct RouteMetrics {
    pub label: std::sync::Arc<str>,
    counters: [metrics::Counter; 5],
    decisions: [metrics::Counter; 4],
}

impl RouteMetrics {
    /// Call after `install()`: handles bind to the recorder installed at that time.
    pub fn new(label: &str) -> RouteMetrics {
        RouteMetrics {
            label: std::sync::Arc::from(label),
            counters: CLASSES.map(|c| metrics::counter!("xumm_gate_requests_total", "route" => label.to_string(), "status" => c)),
            decisions: OUTCOMES.map(|o| metrics::counter!("xumm_gate_policy_decisions_total", "route" => label.to_string(), "outcome" => o)),
        }
    }

    /// Counts one admission decision on this route (every entry point, once per request).
    pub fn decided(&self, outcome: Outcome) {
        self.decisions[outcome as usize].increment(1);
    }

    pub fn done(&self, status: StatusCode) {
        let i = CLASSES.iter().position(|c| *c == class(status)).unwrap_or(4);
        self.counters[i].increment(1);
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// The upstream latency histogram for one upstream.
pub fn upstream_histogram(upstream: &str) -> metrics::Histogram {
    metrics::histogram!("xumm_gate_upstream_duration_seconds", "upstream" => upstream.to_string())
}

pub fn record(h: &metrics::Histogram, d: Duration) {
    h.record(d.as_secs_f64());
}

static IN_FLIGHT: OnceLock<metrics::Gauge> = OnceLock::new();

/// Counts a request in flight for as long as the guard lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.get_or_init(|| metrics::gauge!("xumm_gate_requests_in_flight")).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(g) = IN_FLIGHT.get() {
            g.decrement(1.0);
        }
    }
}

static CONNECTIONS: OnceLock<metrics::Gauge> = OnceLock::new();

/// Open client connections on the public listener.
pub fn connections(open: usize) {
    CONNECTIONS.get_or_init(|| metrics::gauge!("xumm_gate_connections_open")).set(open as f64);
}

/// A client connection refused at accept (`global_limit`, `per_client_limit`).
pub fn connection_refused(reason: &'static str) {
    metrics::counter!("xumm_gate_connections_refused_total", "reason" => reason).increment(1);
}

/// `xumm_gate_build_info{version}`: 1, so dashboards can show what runs where.
pub fn build_info() {
    metrics::gauge!("xumm_gate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// How a person signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInKind {
    Oauth2,
    Payload,
    Xapp,
}

impl SignInKind {
    pub fn label(self) -> &'static str {
        match self {
            SignInKind::Oauth2 => "oauth2",
            SignInKind::Payload => "payload",
            SignInKind::Xapp => "xapp",
        }
    }
}

/// Why a sign-in did not complete (the `reason` label and the audit log's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInFailure {
    /// The person declined in the wallet.
    Rejected,
    /// It took too long, or was cancelled.
    Expired,
    /// The response did not belong to a sign-in this gateway started (state, a spent or
    /// malformed link).
    State,
    /// The provider refused the code, or the token did not verify.
    Token,
    /// The token verified but its claims are not usable.
    Claims,
    /// No valid r-address came back.
    Account,
    /// The provider or Xumm did not answer.
    ProviderUnavailable,
    /// The session store did not answer.
    StoreUnavailable,
}

impl SignInFailure {
    /// Why a code exchange or id_token check failed.
    pub fn of_oidc(e: &crate::oidc::OidcError) -> SignInFailure {
        use crate::oidc::{OidcError, TokenError};
        match e {
            OidcError::Token(TokenError::Account) => SignInFailure::Account,
            OidcError::Token(TokenError::Malformed | TokenError::Algorithm | TokenError::Signature) => SignInFailure::Token,
            OidcError::Token(_) => SignInFailure::Claims,
            OidcError::Status { status, .. } if status.is_client_error() => SignInFailure::Token,
            _ => SignInFailure::ProviderUnavailable,
        }
    }

    /// Why an xApp launch opened no session.
    pub fn of_xapp(e: &crate::xapp::XappError) -> SignInFailure {
        match e {
            crate::xapp::XappError::Unavailable { .. } => SignInFailure::ProviderUnavailable,
            crate::xapp::XappError::BadAnswer => SignInFailure::Account,
            crate::xapp::XappError::Refused => SignInFailure::Expired,
            crate::xapp::XappError::Malformed | crate::xapp::XappError::Replayed => SignInFailure::State,
        }
    }
}

impl SignInFailure {
    pub fn label(self) -> &'static str {
        match self {
            SignInFailure::Rejected => "rejected",
            SignInFailure::Expired => "expired",
            SignInFailure::State => "state",
            SignInFailure::Token => "token",
            SignInFailure::Claims => "claims",
            SignInFailure::Account => "account",
            SignInFailure::ProviderUnavailable => "provider_unavailable",
            SignInFailure::StoreUnavailable => "store_unavailable",
        }
    }
}

pub fn sign_in_started(kind: SignInKind) {
    metrics::counter!("xumm_gate_sign_ins_started_total", "kind" => kind.label()).increment(1);
}

pub fn sign_in_completed(kind: SignInKind) {
    metrics::counter!("xumm_gate_sign_ins_completed_total", "kind" => kind.label()).increment(1);
}

pub fn sign_in_failed(kind: SignInKind, reason: SignInFailure) {
    metrics::counter!("xumm_gate_sign_ins_failed_total", "kind" => kind.label(), "reason" => reason.label()).increment(1);
}

/// `xumm_gate_sessions_active{store}`: sessions this process holds (memory: every live one;
/// Redis: those used on this replica within `session.l1_ttl`). Set when scraped.
pub fn sessions_active(store: &'static str, n: u64) {
    metrics::gauge!("xumm_gate_sessions_active", "store" => store).set(n as f64);
}

/// One session store operation (`get`, `put`, `delete`, `revoke`): its count by result and
/// its latency.
pub fn store_operation(store: &'static str, op: &'static str, ok: bool, took: Duration) {
    metrics::counter!("xumm_gate_session_store_operations_total", "store" => store, "op" => op, "result" => if ok { "ok" } else { "error" }).increment(1);
    metrics::histogram!("xumm_gate_session_store_duration_seconds", "store" => store, "op" => op).record(took.as_secs_f64());
}

/// Session lookups in this process' cache (memory store: the store itself; Redis: the L1), by
/// hit or miss: registered once, the fast path only increments.
pub struct CacheLookups {
    hit: metrics::Counter,
    miss: metrics::Counter,
}

impl CacheLookups {
    pub fn new(store: &'static str) -> CacheLookups {
        CacheLookups {
            hit: metrics::counter!("xumm_gate_session_cache_lookups_total", "store" => store, "result" => "hit"),
            miss: metrics::counter!("xumm_gate_session_cache_lookups_total", "store" => store, "result" => "miss"),
        }
    }

    pub fn count<T>(&self, found: Option<T>) -> Option<T> {
        if found.is_some() { &self.hit } else { &self.miss }.increment(1);
        found
    }
}

/// The lookup counters of the `memory` or `redis` store's in-process cache.
pub fn session_lookups(store: &'static str) -> &'static CacheLookups {
    static MEMORY: OnceLock<CacheLookups> = OnceLock::new();
    static REDIS: OnceLock<CacheLookups> = OnceLock::new();
    if store == "redis" { &REDIS } else { &MEMORY }.get_or_init(|| CacheLookups::new(store))
}

/// A Bearer token's verification: `valid` (reason `ok` or `cached`) or `invalid` with why.
pub fn bearer_verification(valid: bool, reason: &'static str) {
    metrics::counter!("xumm_gate_bearer_verifications_total", "result" => if valid { "valid" } else { "invalid" }, "reason" => reason).increment(1);
}

/// A JWKS fetch: `startup`, `scheduled` (the refresh its max-age asks for) or `unknown_key` (a
/// token signed with a key not loaded yet).
pub fn jwks_fetch(cause: &'static str, ok: bool) {
    metrics::counter!("xumm_gate_jwks_fetches_total", "cause" => cause, "result" => if ok { "ok" } else { "error" }).increment(1);
}

/// A call to Xumm's platform API: by endpoint (a fixed name, never an id) and HTTP status
/// (`error` when no answer came), with its latency.
pub fn xumm_call(method: &http::Method, path: &str, status: Option<StatusCode>, took: Duration) {
    let endpoint = xumm_endpoint(path);
    let status = status.map_or_else(|| "error".to_string(), |s| s.as_u16().to_string());
    metrics::counter!("xumm_gate_xumm_api_requests_total", "method" => method.as_str().to_string(), "endpoint" => endpoint, "status" => status).increment(1);
    metrics::histogram!("xumm_gate_xumm_api_duration_seconds", "endpoint" => endpoint).record(took.as_secs_f64());
}

/// The endpoint's name without ids (`payload/<uuid>` -> `payload`).
pub(crate) fn xumm_endpoint(path: &str) -> &'static str {
    const KNOWN: [&str; 5] = ["payload", "xapp/ott", "user-tokens", "kyc-status", "ping"];
    KNOWN.into_iter().find(|k| path == *k || path.strip_prefix(k).is_some_and(|r| r.starts_with('/'))).unwrap_or("other")
}

/// The client held calls back because Xumm asked it to slow down (429, or a low
/// `X-RateLimit-Remaining`).
pub fn xumm_rate_limit_pause() {
    metrics::counter!("xumm_gate_xumm_rate_limit_pauses_total").increment(1);
}

/// A Xumm webhook delivery to the gateway: `accepted` or why it was refused.
pub fn webhook(result: &'static str) {
    metrics::counter!("xumm_gate_webhooks_total", "result" => result).increment(1);
}

/// A payload result delivered to a protected app's callback URL: `delivered`, `failed` (will
/// be retried) or `given_up`.
pub fn callback_delivery(result: &'static str) {
    metrics::counter!("xumm_gate_callback_deliveries_total", "result" => result).increment(1);
}

/// A sign request brokered for a protected app: by app (configured name), transaction type (a
/// known type, else `other`) and outcome (`created`, then `signed`, `rejected`, `expired`,
/// `cancelled`, `signer_mismatch`, `network_mismatch`; or `refused` by the app's or user's
/// policy before it reached Xumm).
pub fn broker_payload(app: &str, tx_type: &str, outcome: &'static str) {
    let tx_type = tx_type_label(tx_type);
    metrics::counter!("xumm_gate_broker_payloads_total", "app" => app.to_string(), "tx_type" => tx_type, "outcome" => outcome).increment(1);
}

/// A transaction type as a label: one of the XRPL's, else `other` (an app could send any text).
fn tx_type_label(t: &str) -> &'static str {
    const TYPES: [&str; 40] = [
        "AccountDelete", "AccountSet", "AMMBid", "AMMCreate", "AMMDelete", "AMMDeposit", "AMMVote", "AMMWithdraw", "CheckCancel", "CheckCash", "CheckCreate",
        "Clawback", "CredentialAccept", "CredentialCreate", "CredentialDelete", "DepositPreauth", "DIDDelete", "DIDSet", "EscrowCancel", "EscrowCreate",
        "EscrowFinish", "MPTokenAuthorize", "MPTokenIssuanceCreate", "MPTokenIssuanceDestroy", "NFTokenAcceptOffer", "NFTokenBurn", "NFTokenCancelOffer",
        "NFTokenCreateOffer", "NFTokenMint", "OfferCancel", "OfferCreate", "Payment", "PaymentChannelClaim", "PaymentChannelCreate", "PaymentChannelFund",
        "SetRegularKey", "SignerListSet", "SignIn", "TicketCreate", "TrustSet",
    ];
    TYPES.into_iter().find(|x| *x == t).unwrap_or("other")
}

/// What kind of upstream failure (`connect`, `timeout`, `reset`, `protocol`).
pub fn upstream_error(upstream: &str, kind: &'static str) {
    metrics::counter!("xumm_gate_upstream_errors_total", "upstream" => upstream.to_string(), "kind" => kind).increment(1);
}

/// What admission decided for a request, as counted per route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// Sent to sign in, or refused for want of a valid credential (401).
    Challenged,
    Forbidden,
    /// The store, provider or ledger could not answer (503).
    Unavailable,
}

const OUTCOMES: [&str; 4] = ["allowed", "challenged", "forbidden", "unavailable"];
