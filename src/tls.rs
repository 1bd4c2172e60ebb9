//! The public listener's TLS: certificates chosen by the name a client asks for (SNI), client
//! certificates, and reloading both from their files. It must never serve a certificate with a
//! key that does not match it, never replace a working set with one that fails to load, and
//! never speak TLS older than 1.2.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuth, ConfigError, Server, TlsConfig, TlsVersion, err};

/// The listener's TLS state: the current rustls configuration (swapped whole on reload; a
/// handshake takes the one current when it starts) and what reloading needs.
pub struct Tls {
    current: ArcSwap<Current>,
    /// The settings behind `current` and the digest of every file it read: a reload that reads
    /// the same bytes changes nothing.
    loaded: Mutex<(TlsConfig, [u8; 32])>,
    /// Session resumption survives reloads (a resumed session keeps its negotiated keys).
    sessions: Arc<dyn StoresServerSessions>,
    reload_interval: Duration,
}

impl Tls {
    /// Reads the certificate, key and CA files; None when `[server.tls]` is not set.
    pub fn load(server: &Server) -> Result<Option<Arc<Tls>>, ConfigError> {
        let Some(cfg) = &server.tls else { return Ok(None) };
        let sessions: Arc<dyn StoresServerSessions> = rustls::server::ServerSessionMemoryCache::new(16 * 1024);
        let files = Files::read(cfg)?;
        let config = build(cfg, &files, &sessions)?;
        Ok(Some(Arc::new(Tls {
            current: ArcSwap::from_pointee(config),
            loaded: Mutex::new((cfg.clone(), files.digest)),
            sessions,
            reload_interval: server.tls_reload_interval,
        })))
    }

    /// The acceptor for one new connection (an `Arc` clone of the current configuration).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load().config.clone())
    }

    /// Re-reads the files. `Ok(true)` when they changed and the new set is in use; an error
    /// leaves the old set serving. Connections already open keep the certificate they got.
    pub fn reload(&self) -> Result<bool, ConfigError> {
        let cfg = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
        self.reconfigure(&cfg)
    }

    /// `reload` with new settings (a reloaded config file): applied when they and their files
    /// load, else the old set stays and the error says why.
    pub fn reconfigure(&self, cfg: &TlsConfig) -> Result<bool, ConfigError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let files = Files::read(cfg)?;
        if loaded.0 == *cfg && files.digest == loaded.1 {
            return Ok(false);
        }
        let config = build(cfg, &files, &self.sessions)?;
        self.current.store(Arc::new(config));
        *loaded = (cfg.clone(), files.digest);
        Ok(true)
    }

    /// Reloads whenever the files change (checked every `server.tls.reload_interval`: a
    /// Kubernetes Secret update swaps a symlink, which only reading the path again notices),
    /// until `shutdown` flips. Refused sets are logged once per change.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.reload_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refused: Option<String> = None;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.reload() {
                Ok(true) => {
                    refused = None;
                    tracing::info!("TLS certificates reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    let why = e.to_string();
                    if refused.as_ref() != Some(&why) {
                        tracing::error!(cause = %why, "new TLS certificates refused; the previous ones stay in use");
                    }
                    refused = Some(why);
                }
            }
        }
    }

    /// True when a certificate is configured for `host` (a name the redirect listener may
    /// send people to).
    pub fn serves(&self, host: &str) -> bool {
        self.current.load().resolver.find(host).is_some()
    }
}

/// One loaded set: the rustls configuration and its certificate resolver.
struct Current {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<Resolver>,
}

/// Every file a `[server.tls]` names, read once, with the digest of all of them (what a reload
/// compares to decide whether anything changed).
struct Files {
    /// (key path, file path, bytes) of each certificate file and its key, the main pair first.
    pairs: Vec<[(String, String, Vec<u8>); 2]>,
    client_ca: Option<Vec<u8>>,
    digest: [u8; 32],
}

impl Files {
    fn read(cfg: &TlsConfig) -> Result<Files, ConfigError> {
        let mut digest = sha2::Sha256::new();
        let mut read = |key: String, path: &str| -> Result<(String, String, Vec<u8>), ConfigError> {
            let bytes = crate::config::read_file(&key, path)?;
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(&bytes);
            Ok((key, path.to_string(), bytes))
        };
        let mut pairs = vec![[read("server.tls.cert".into(), &cfg.cert)?, read("server.tls.key".into(), &cfg.key)?]];
        for (i, e) in cfg.sni.iter().enumerate() {
            pairs.push([read(format!("server.tls.sni[{i}].cert"), &e.cert)?, read(format!("server.tls.sni[{i}].key"), &e.key)?]);
        }
        let client_ca = match cfg.client_ca.as_str() {
            "" => None,
            path => Some(read("server.tls.client_ca".into(), path)?.2),
        };
        Ok(Files { pairs, client_ca, digest: digest.finalize().into() })
    }
}

/// A new rustls configuration from the files `cfg` names, as `files` read them.
fn build(cfg: &TlsConfig, files: &Files, sessions: &Arc<dyn StoresServerSessions>) -> Result<Current, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut pairs = files.pairs.iter().map(|p| certified(p, &provider).inspect(|ck| expiry_metric(&p[0].0, ck)));
    let default = pairs.next().expect("the main pair is always read")?;
    let mut resolver = Resolver { default, exact: HashMap::new(), wildcard: Vec::new() };
    for (i, (e, ck)) in cfg.sni.iter().zip(pairs).enumerate() {
        let ck = ck?;
        let hosts = if e.hosts.is_empty() { dns_names(&ck) } else { e.hosts.clone() };
        if hosts.is_empty() {
            return Err(err(format!("server.tls.sni[{i}].hosts"), "the certificate names no DNS host: list the hosts it is for"));
        }
        for h in hosts {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(suffix) => resolver.wildcard.push((format!(".{suffix}"), ck.clone())),
                None => drop(resolver.exact.insert(h, ck.clone())),
            }
        }
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version.get() {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| err("server.tls.min_version", e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let roots = pem_roots("server.tls.client_ca", &cfg.client_ca, pem)?;
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if cfg.client_auth.get() == ClientAuth::Optional {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(v.build().map_err(|e| err("server.tls.client_ca", e.to_string()))?)
        }
    };
    let resolver = Arc::new(resolver);
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = sessions.clone();
    Ok(Current { config: Arc::new(config), resolver })
}

/// `xumm_gate_tls_certificate_expiry_timestamp_seconds{cert}`: when the certificate configured
/// under `key` (`server.tls.cert`, `server.tls.sni[0].cert`) stops being valid, for alerts.
fn expiry_metric(key: &str, ck: &CertifiedKey) {
    let Some(der) = ck.cert.first() else { return };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        metrics::gauge!("xumm_gate_tls_certificate_expiry_timestamp_seconds", "cert" => key.to_string()).set(cert.validity().not_after.timestamp() as f64);
    }
}

/// A certificate chain and its key, checked to belong together.
fn certified([(cert_key, cert, cert_pem), (key_key, key, key_pem)]: &[(String, String, Vec<u8>); 2], provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = pem_certs(cert_key, cert, cert_pem)?;
    let der = pem_key(key_key, key, key_pem)?;
    let ck = CertifiedKey::from_der(chain, der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => err(key_key, format!("{key} does not belong to the certificate in {cert}")),
        e => err(key_key, format!("{key}: {e}")),
    })?;
    Ok(Arc::new(ck))
}

/// Every certificate in the PEM file `path` (at least one), errors naming the config `key`.
/// For the listener's certificates and client CAs, and the upstreams' CAs and client certificates.
pub(crate) fn pem_certs(key: &str, path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let list = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| err(key, format!("{path}: {e}")))?;
    if list.is_empty() {
        return Err(err(key, format!("{path}: no PEM certificate in it")));
    }
    Ok(list)
}

/// The private key in the PEM file `path`.
pub(crate) fn pem_key(key: &str, path: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| err(key, format!("{path}: no PEM private key in it")))
}

/// The certificates of the PEM file `path` as trust anchors.
pub(crate) fn pem_roots(key: &str, path: &str, pem: &[u8]) -> Result<rustls::RootCertStore, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(key, path, pem)? {
        roots.add(c).map_err(|e| err(key, format!("{path}: {e}")))?;
    }
    Ok(roots)
}

/// The DNS names a certificate lists (subjectAltName), lower case.
fn dns_names(ck: &CertifiedKey) -> Vec<String> {
    let Some(der) = ck.cert.first() else { return vec![] };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return vec![] };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return vec![] };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The subject of the verified client certificate a connection presented, as its requests
/// carry it (a request extension the admission decision reads).
#[derive(Debug, Clone)]
pub struct ClientSubject(pub Arc<str>);

/// The subject of a verified client certificate, as distinguished-name text ("CN=ops, O=Example").
/// rustls has verified the chain before the handshake completes, so any certificate here is valid.
pub fn client_subject(conn: &rustls::ServerConnection) -> Option<ClientSubject> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(ClientSubject(Arc::from(cert.subject().to_string())))
}

/// Chooses the certificate for a handshake: the exact name, else the longest wildcard that
/// covers it (one label deep, as certificates mean it), else the default.
#[derive(Debug)]
struct Resolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// (".example.org", key) for "*.example.org".
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
}

impl Resolver {
    fn find(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&host) {
            return Some(k);
        }
        self.wildcard
            .iter()
            .filter(|(suffix, _)| host.strip_suffix(suffix.as_str()).is_some_and(|label| !label.is_empty() && !label.contains('.')))
            .max_by_key(|(suffix, _)| suffix.len())
            .map(|(_, k)| k)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(hello.server_name().and_then(|n| self.find(n)).unwrap_or(&self.default).clone())
    }
}
