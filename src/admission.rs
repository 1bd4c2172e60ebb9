//! The one admission decision: may this request pass, as whom, and to which upstream. The
//! general path, the fast path and forward auth ask it and only render its answer. It must
//! never build a response, never read a body, never await anything but the session store and a
//! Bearer verification, and never pass a protected request without a live identity the route
//! admits.

use std::sync::Arc;

use crate::auth::{Auth, Found};
use crate::headers::{Headers, bearer_token};
use crate::error::GatewayError;
use crate::assertion::Asserter;
use crate::identity::IdentityHeaders;
use crate::metrics::RouteMetrics;
use crate::policy::{Decision, RouteTable, Target};
use crate::proxy::{Proxy, Upstream};
use crate::session::{Session, XappAccess};
use crate::xapp::{Launch, Xapp};

/// Who may pass, as whom, and where to: everything the decision reads, and nothing else.
pub struct Admission {
    pub routes: RouteTable,
    /// Sign-in state; None when no `[provider]` is configured (then only public routes open).
    pub auth: Option<Arc<Auth>>,
    pub identity: IdentityHeaders,
    pub asserter: Option<Asserter>,
    /// The upstream table, to say which upstream a path goes to (the pools stay the proxy's).
    pub upstreams: Arc<Proxy>,
    /// xApp sessions, when `[xapp]` is configured.
    pub xapp: Option<Xapp>,
    /// What accounts hold, for rules with `require`.
    pub ledger: Arc<crate::ledger::Ledger>,
    /// Metrics of requests no rule names, and of requests whose path is refused before routing.
    pub(crate) default_route: Arc<RouteMetrics>,
    pub(crate) invalid_route: Arc<RouteMetrics>,
}

/// Headers a rule's conditions give the upstream (what was checked: balances).
pub type Granted = Vec<(http::HeaderName, http::HeaderValue)>;

/// The decision on one request.
pub enum Verdict<'g> {
    /// Goes to `upstream` (None: no upstream serves the path), as `who` (None on public routes),
    /// with the headers the route's conditions give.
    Pass { who: Option<Arc<Session>>, upstream: Option<&'g Upstream>, granted: Granted },
    /// Needs sign-in; `clear_cookie` as in `Found::Nobody`.
    Challenge { clear_cookie: bool },
    /// Signed in, but the route does not admit this account or network, or the account does
    /// not hold what the route requires (`unmet` says what).
    Forbidden { who: Arc<Session>, unmet: Option<String> },
    /// An xApp launch (`?xAppToken=`): the token becomes a session first, whatever the route,
    /// and the request is retried without it.
    Launch(Launch),
    /// Refused before anyone is asked (a path strict mode refuses, no provider) or because the
    /// identity could not be established (store down, invalid token).
    Refused(GatewayError),
}

impl Verdict<'_> {
    /// What the decision was, as the per-route decision counter names it.
    pub fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            Verdict::Pass { .. } => Outcome::Allowed,
            Verdict::Challenge { .. } | Verdict::Launch(_) => Outcome::Challenged,
            Verdict::Forbidden { .. } => Outcome::Forbidden,
            Verdict::Refused(e) => match e.status() {
                http::StatusCode::UNAUTHORIZED => Outcome::Challenged,
                http::StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
                _ => Outcome::Forbidden,
            },
        }
    }
}

impl Admitted<'_> {
    /// Counts the decision on its route (or the unmatched requests' `default` label) and audits
    /// a refusal: each entry point calls this once for the decision it renders.
    pub fn record(&self, default: &crate::metrics::RouteMetrics, audit: &crate::audit::Audit) {
        let route = self.decision.route.map_or(default, |r| &*r.metrics);
        let outcome = self.verdict.outcome();
        route.decided(outcome);
        if outcome == crate::metrics::Outcome::Forbidden {
            let (account, reason) = match &self.verdict {
                Verdict::Forbidden { who, unmet } => (Some(who.account.as_str()), unmet.as_deref().unwrap_or("account not allowed")),
                Verdict::Refused(e) => (None, e.code()),
                _ => (None, "forbidden"),
            };
            audit.record(crate::audit::Event::Forbidden { account, route: &route.label, reason });
        }
    }
}

/// A decision and the route it was made on (for the access log and metrics).
pub struct Admitted<'g> {
    pub decision: Decision<'g>,
    pub verdict: Verdict<'g>,
}

/// What keeps the fast path from deciding without waiting.
pub enum Wait {
    /// The session cookie's session is not in this process, but may be in the shared store.
    Store(Arc<str>),
    /// A Bearer token to verify.
    Token,
    /// A ledger condition whose facts are not cached (or expired).
    Ledger,
}

impl Admission {
    /// The decision for a request for `target` (its normalized path) with `query`.
    pub async fn admit<H: Headers + ?Sized>(&self, target: &Target<'_>, query: Option<&str>, headers: &H) -> Admitted<'_> {
        self.admit_on(self.routes.decide(target), Some(target.path), query, headers, None).await
    }

    /// `admit`, for a caller that already matched `path`'s route (the general path, which
    /// labels its access log with it), on a connection that presented the verified client
    /// certificate `client_subject`.
    pub async fn admit_decided<'g, H: Headers + ?Sized>(&'g self, decision: Decision<'g>, path: &str, query: Option<&str>, headers: &H, client_subject: Option<&str>) -> Admitted<'g> {
        self.admit_on(decision, Some(path), query, headers, client_subject).await
    }

    /// The decision for a request whose path is unknown (forward auth without a believable
    /// original URI): as for a path no rule names, but never public, and no upstream.
    pub async fn admit_unrouted<H: Headers + ?Sized>(&self, headers: &H) -> Admitted<'_> {
        let decision = Decision { public: false, ..self.routes.unmatched() };
        self.admit_on(decision, None, None, headers, None).await
    }

    async fn admit_on<'g, H: Headers + ?Sized>(&'g self, decision: Decision<'g>, path: Option<&str>, query: Option<&str>, headers: &H, client_subject: Option<&str>) -> Admitted<'g> {
        let verdict = match self.before_identity(path, query, &decision, client_subject) {
            Err(v) => v,
            Ok(auth) => match (self.verdict(path, &decision, auth.identify(headers).await), required(&decision)) {
                (Verdict::Pass { who: Some(s), upstream, .. }, Some(cond)) => judgement(self.ledger.check(cond, &s.account, s.network.as_deref()).await, s, upstream),
                (v, _) => v,
            },
        };
        Admitted { decision, verdict }
    }

    /// The same decision without waiting, from what this process holds; `Err` when it needs the
    /// shared store or a Bearer verification (the fast path then hands the request over, or
    /// fetches the session and asks again).
    pub fn admit_now<H: Headers + ?Sized>(&self, target: &Target<'_>, query: Option<&str>, headers: &H) -> Result<Admitted<'_>, Wait> {
        let (decision, path) = (self.routes.decide(target), target.path);
        // The fast path serves only connections without a client certificate.
        let verdict = match self.before_identity(Some(path), query, &decision, None) {
            Err(v) => v,
            Ok(auth) => match (self.verdict(Some(path), &decision, identify_now(auth, headers)?), required(&decision)) {
                // From the cache only: a fact not at hand is read off the fast path.
                (Verdict::Pass { who: Some(s), upstream, .. }, Some(cond)) => judgement(self.ledger.now(cond, &s.account, s.network.as_deref()).ok_or(Wait::Ledger)?, s, upstream),
                (v, _) => v,
            },
        };
        Ok(Admitted { decision, verdict })
    }

    /// What is decided before anyone's identity matters: strict path mode, an xApp launch,
    /// public routes, a gateway without a provider. `Ok` when the identity decides.
    fn before_identity<'g>(&'g self, path: Option<&str>, query: Option<&str>, decision: &Decision<'g>, client_subject: Option<&str>) -> Result<&'g Auth, Verdict<'g>> {
        if let Some(Err(e)) = path.map(|p| self.routes.strict_check(p, decision)) {
            return Err(Verdict::Refused(GatewayError::BadPath(e)));
        }
        if decision.deny {
            return Err(Verdict::Refused(GatewayError::Denied));
        }
        // A rule on the client certificate holds whoever signs in, on public routes too.
        if let Some(r) = decision.route.filter(|r| !r.allow_client_subjects.is_empty()) {
            if !client_subject.is_some_and(|c| r.allow_client_subjects.iter().any(|s| s == c)) {
                return Err(Verdict::Refused(GatewayError::ClientCertificate));
            }
        }
        if let (Some(_), Some(launch)) = (&self.xapp, query.and_then(crate::xapp::launch_in)) {
            return Err(Verdict::Launch(launch));
        }
        if decision.public {
            return Err(Verdict::Pass { who: None, upstream: path.and_then(|p| self.upstreams.select(p)), granted: Vec::new() });
        }
        // No [provider]: nothing can sign in, so protected routes stay closed.
        self.auth.as_deref().ok_or(Verdict::Refused(GatewayError::Unauthenticated("sign-in is not configured")))
    }

    fn verdict<'g>(&'g self, path: Option<&str>, decision: &Decision<'g>, found: Found) -> Verdict<'g> {
        match found {
            Found::Session(s) if allowed(decision, &s) => Verdict::Pass { who: Some(s), upstream: path.and_then(|p| self.upstreams.select(p)), granted: Vec::new() },
            Found::Session(s) => Verdict::Forbidden { who: s, unmet: None },
            Found::Nobody { had_cookie } => Verdict::Challenge { clear_cookie: had_cookie },
            Found::Failed(e) => Verdict::Refused(e),
        }
    }
}

impl Admission {
    /// The headers that tell `up` who asks, for both proxy paths to write (after every client
    /// copy of them was dropped): the identity headers, the signed assertion for this upstream,
    /// the broker's user-token handle.
    pub fn identity_for_upstream(&self, who: &Session, up: &Upstream, granted: &Granted, mut set: impl FnMut(&http::HeaderName, &http::HeaderValue)) {
        self.identity.values(who).for_each(|(n, v)| set(n, v));
        granted.iter().for_each(|(n, v)| set(n, v));
        if let (Some(a), Some(name)) = (&self.asserter, &self.identity.assertion) {
            if let Some(v) = a.header_for(who, &up.audience) {
                set(name, &v);
            }
        }
        if let (Some(app), Some(name), Some(auth)) = (&up.broker_app, &self.identity.user_token, &self.auth) {
            if let Some(v) = crate::xumm::handle::for_session(auth, who, app) {
                set(name, &v);
            }
        }
    }
}

/// What the decision's rule requires the account to hold, if anything.
fn required<'g>(decision: &Decision<'g>) -> Option<&'g crate::ledger::Condition> {
    decision.route.and_then(|r| r.require.as_deref())
}

/// The verdict a route's conditions give a signed-in user: held, not held (403 naming what),
/// or not readable (503: never "you do not hold it" for a ledger that did not answer).
fn judgement(judged: crate::ledger::Judged, who: Arc<Session>, upstream: Option<&Upstream>) -> Verdict<'_> {
    match judged {
        crate::ledger::Judged::Held(granted) => Verdict::Pass { who: Some(who), upstream, granted },
        crate::ledger::Judged::Unmet(why) => Verdict::Forbidden { who, unmet: Some(why) },
        crate::ledger::Judged::Unknown => Verdict::Refused(GatewayError::LedgerUnavailable),
    }
}

/// `identify` from what this process holds.
fn identify_now<H: Headers + ?Sized>(auth: &Auth, headers: &H) -> Result<Found, Wait> {
    if let Some(id) = auth.session_id(headers) {
        if let Some(s) = auth.store.get_now(&id) {
            return Ok(Found::Session(s));
        }
        if auth.store.is_shared() {
            return Err(Wait::Store(id));
        }
    }
    if (auth.bearer.is_some() || auth.xapp_jwt.is_some()) && bearer_token(headers).is_some() {
        return Err(Wait::Token);
    }
    Ok(Found::Nobody { had_cookie: auth.has_session_cookie(headers) })
}

/// Route policy for a signed-in user. A rule that lists networks admits only sessions whose
/// network is known and listed (fail closed). A session that is not an xApp's holds the account
/// fully: its user signed with the account's key.
fn allowed(decision: &Decision<'_>, s: &Session) -> bool {
    let Some(r) = decision.route else { return true };
    let access = s.xapp.as_ref().map_or(XappAccess::Full, |x| x.access);
    (!r.accounts_listed || r.allow_accounts.contains(&s.account))
        && (r.allow_networks.is_empty() || s.network.as_ref().is_some_and(|n| r.allow_networks.iter().any(|x| x.matches(n))))
        && (r.allow_account_access.is_empty() || r.allow_account_access.contains(&access))
        && (r.allow_sources.is_empty() || r.allow_sources.contains(&s.source))
}
