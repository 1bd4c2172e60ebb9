//! Test certificates (rcgen): a CA, server certificates for host names, client certificates,
//! and a TLS client (tokio-rustls + hyper) that shows which certificate the server sent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate authority for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM text.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Pair {
    /// Writes `{name}.crt` and `{name}.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, &self.cert).unwrap();
        std::fs::write(&k, &self.key).unwrap();
        (c, k)
    }

    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Pair {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.sign(CertificateParams::new(names).unwrap())
    }

    /// A client certificate with common name `cn` and organisation `org`.
    pub fn client(&self, cn: &str, org: &str) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, org);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Pair {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A rustls client configuration trusting `ca_pem`, offering `alpn`, with an optional client
/// certificate.
pub fn client_config(ca_pem: &str, alpn: &[&[u8]], client: Option<&Pair>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(p) => {
            let chain = CertificateDer::pem_slice_iter(p.cert.as_bytes()).map(|c| c.unwrap()).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(p.key.as_bytes()).unwrap()).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// An open TLS connection to the gateway, HTTP/1.1 or HTTP/2 as ALPN chose.
pub struct TlsConn {
    /// The certificate the server presented.
    pub peer: CertificateDer<'static>,
    pub h2: bool,
    send1: Option<hyper::client::conn::http1::SendRequest<super::TestBody>>,
    send2: Option<hyper::client::conn::http2::SendRequest<super::TestBody>>,
}

impl TlsConn {
    /// Connects to `addr` asking for `sni`. Err: the handshake failed.
    pub async fn open(addr: SocketAddr, sni: &str, cfg: Arc<rustls::ClientConfig>) -> Result<TlsConn, String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let peer = conn.peer_certificates().and_then(|c| c.first().cloned()).ok_or("no certificate")?.into_owned();
        let h2 = conn.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
            tokio::spawn(c);
            Ok(TlsConn { peer, h2, send1: None, send2: Some(send) })
        } else {
            let (send, c) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(c);
            Ok(TlsConn { peer, h2, send1: Some(send), send2: None })
        }
    }

    /// GET `path` on this connection: (status, headers, body), or the error that ended it.
    pub async fn get(&mut self, host: &str, path: &str) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        self.get_with(host, path, &[]).await
    }

    /// `get` with more request headers.
    pub async fn get_with(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
        let uri = if self.h2 { format!("https://{host}{path}") } else { path.to_string() };
        let mut req = Request::get(uri).header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(super::full("")).unwrap();
        let resp = match (&mut self.send1, &mut self.send2) {
            (Some(s), _) => s.send_request(req).await,
            (_, Some(s)) => s.send_request(req).await,
            _ => unreachable!(),
        }
        .map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// The test upstream (`common::upstream`'s paths) over TLS with `server`'s certificate, offering
/// `alpn`; with `client_ca`, only clients with a certificate from that CA get through.
pub async fn tls_upstream(server: &Pair, client_ca: Option<&Ca>, alpn: &[&[u8]]) -> SocketAddr {
    let chain = CertificateDer::pem_slice_iter(server.cert.as_bytes()).map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.issuer.der().clone()).unwrap();
            b.with_client_cert_verifier(rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap())
        }
        None => b.with_no_client_auth(),
    };
    let mut cfg = b.with_single_cert(chain, key).unwrap();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), hyper::service::service_fn(super::upstream_handle))
                    .await;
            });
        }
    });
    addr
}
