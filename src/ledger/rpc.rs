//! Calls to rippled / Clio (JSON-RPC over HTTP, or the WebSocket API): one call tried on each
//! endpoint in turn, and the facts conditions read. It must never ask for anything but the validated ledger, never accept an answer that
//! is not validated, and never take an error answer for an empty account (only `actNotFound` /
//! `entryNotFound` mean "nothing there").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{Fact, Line};
use crate::oidc::HttpsClient;

/// The FeeSettings object's ledger index (a constant of the protocol).
const FEE_SETTINGS: &str = "4BC50C9B0D8515D3EAAE1E74B29A95804346C491EE1A95BF25E4AAB854A6A651";
/// `lsfAccepted` on a Credential, `lsfMPTLocked` on an MPToken.
const LSF_ACCEPTED: u64 = 0x0001_0000;
const LSF_MPT_LOCKED: u64 = 0x0000_0001;
/// The largest answer read (a page of 400 NFTs is well under it).
const MAX_ANSWER: usize = 8 << 20;
/// Pages read at most for one account (account_lines and account_nfts give up to 400 a page).
const MAX_PAGES: usize = 50;

/// Why a call gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// The account or object is not on the validated ledger (a definite answer).
    #[error("not found")]
    NotFound,
    /// No endpoint answered usefully (the last reason).
    #[error("{0}")]
    Failed(String),
}

/// One network's endpoints; calls start at the last one that answered.
pub struct Endpoints {
    urls: Vec<url::Url>,
    timeout: Duration,
    client: HttpsClient,
    /// For wss:// endpoints: the web PKI roots.
    tls: Arc<rustls::ClientConfig>,
    preferred: AtomicUsize,
}

impl Endpoints {
    pub fn new(urls: Vec<url::Url>, timeout: Duration, client: HttpsClient) -> Endpoints {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Endpoints { urls, timeout, client, tls: Arc::new(tls), preferred: AtomicUsize::new(0) }
    }

    /// `method` with `params` on the first endpoint that answers; an endpoint that fails, times
    /// out, is busy or has no validated ledger hands over to the next.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = String::from("no endpoint");
        for k in 0..self.urls.len() {
            let i = (start + k) % self.urls.len();
            match self.once(&self.urls[i], method, &params).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(RpcError::NotFound) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Err(RpcError::NotFound);
                }
                Err(RpcError::Failed(why)) => {
                    tracing::warn!(endpoint = %self.urls[i], method, reason = %why, "ledger endpoint failed; trying the next");
                    last = why;
                }
            }
        }
        Err(RpcError::Failed(last))
    }

    /// One call on one endpoint, within the timeout; the answer's `result` when it is one.
    async fn once(&self, url: &url::Url, method: &str, params: &Value) -> Result<Value, RpcError> {
        let failed = |why: String| RpcError::Failed(why);
        let answer = async {
            if matches!(url.scheme(), "ws" | "wss") {
                // The WebSocket API answers {"id", "status", "result"}, or the error fields at the
                // top level.
                let mut call = params.clone();
                call["id"] = json!(1);
                call["command"] = json!(method);
                let v = ws_call(url, (url.scheme() == "wss").then_some(&self.tls), call.to_string()).await.map_err(failed)?;
                Ok(if v["status"] == "error" { v } else { v.get("result").cloned().ok_or_else(|| failed("answer has no result".into()))? })
            } else {
                let body = Bytes::from(json!({"method": method, "params": [params]}).to_string());
                self.http_call(url.as_str(), body).await
            }
        };
        let result = tokio::time::timeout(self.timeout, answer).await.map_err(|_| failed("timed out".into()))??;
        if result["status"] == "error" {
            let code = result["error"].as_str().unwrap_or("unknown");
            return Err(match code {
                "actNotFound" | "entryNotFound" | "objectNotFound" => RpcError::NotFound,
                // lgrNotFound, slowDown, tooBusy, noNetwork, noCurrent, ...: another node may do.
                _ => failed(format!("error {code}")),
            });
        }
        if result["validated"] != true {
            return Err(failed("answer is not from a validated ledger".into()));
        }
        Ok(result)
    }

    /// JSON-RPC over HTTP: the answer's `result`.
    async fn http_call(&self, url: &str, body: Bytes) -> Result<Value, RpcError> {
        let failed = |why: String| RpcError::Failed(why);
        let req = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "xumm-gate")
            .body(Full::new(body))
            .map_err(|e| failed(e.to_string()))?;
        let resp = self.client.request(req).await.map_err(|e| failed(format!("unreachable: {e}")))?;
        let status = resp.status();
        let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)).await.map_err(|e| failed(format!("body: {e}")))?.to_bytes();
        if status != StatusCode::OK {
            return Err(failed(format!("answered HTTP {status}")));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| failed("answered something that is not JSON".into()))?;
        v.get("result").cloned().ok_or_else(|| failed("answer has no result".into()))
    }

    /// Every page of a marker-paged list: the first at the validated ledger, the rest at that
    /// same ledger (the marker belongs to it).
    async fn pages(&self, method: &str, mut params: Value, field: &str) -> Result<Vec<Value>, RpcError> {
        params["ledger_index"] = json!("validated");
        params["limit"] = json!(400);
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let r = self.call(method, params.clone()).await?;
            out.extend(r[field].as_array().cloned().unwrap_or_default());
            match r.get("marker").filter(|m| !m.is_null()) {
                Some(m) => {
                    params["marker"] = m.clone();
                    params["ledger_index"] = r["ledger_index"].clone();
                }
                None => return Ok(out),
            }
        }
        Err(RpcError::Failed(format!("{method}: more than {MAX_PAGES} pages")))
    }

    /// `account`'s trust lines to `issuer`.
    pub async fn lines(&self, account: &str, issuer: &str) -> Result<Fact, RpcError> {
        let rows = match self.pages("account_lines", json!({"account": account, "peer": issuer}), "lines").await {
            Err(RpcError::NotFound) => vec![],
            r => r?,
        };
        let mut lines = Vec::with_capacity(rows.len());
        for l in rows.iter().filter(|l| l["account"] == issuer) {
            let text = l["balance"].as_str().ok_or_else(|| RpcError::Failed("a trust line without a balance".into()))?;
            let balance = super::parse_amount(text).ok_or_else(|| RpcError::Failed(format!("a trust line balance {text:?} that is not a number")))?;
            let currency = l["currency"].as_str().unwrap_or_default().to_string();
            let frozen = l["freeze"] == true || l["freeze_peer"] == true;
            lines.push(Line { currency, balance, text: text.to_string(), frozen });
        }
        Ok(Fact::Lines(lines))
    }

    /// The (issuer, taxon) of every NFToken `account` holds.
    pub async fn nfts(&self, account: &str) -> Result<Fact, RpcError> {
        let rows = match self.pages("account_nfts", json!({"account": account}), "account_nfts").await {
            Err(RpcError::NotFound) => vec![],
            r => r?,
        };
        let mut held: Vec<(String, u32)> = rows.iter().filter_map(|n| Some((n["Issuer"].as_str()?.to_string(), u32::try_from(n["NFTokenTaxon"].as_u64()?).ok()?))).collect();
        held.sort();
        held.dedup();
        Ok(Fact::Nfts(held))
    }

    /// `account`'s XRP balance (drops) and owned objects; None when it is not funded.
    pub async fn root(&self, account: &str) -> Result<Fact, RpcError> {
        match self.call("account_info", json!({"account": account, "ledger_index": "validated"})).await {
            Err(RpcError::NotFound) => Ok(Fact::Root(None)),
            Err(e) => Err(e),
            Ok(r) => {
                let d = &r["account_data"];
                let balance = d["Balance"].as_str().and_then(|b| b.parse::<u64>().ok()).ok_or_else(|| RpcError::Failed("account_info without a Balance in drops".into()))?;
                Ok(Fact::Root(Some((balance, d["OwnerCount"].as_u64().unwrap_or(0)))))
            }
        }
    }

    /// The reserves (drops): base and per owned object, from the FeeSettings object (the
    /// XRPFees fields, or the older ones).
    pub async fn fees(&self) -> Result<Fact, RpcError> {
        let r = self.call("ledger_entry", json!({"index": FEE_SETTINGS, "ledger_index": "validated"})).await?;
        let n = &r["node"];
        let drops = |new: &str, old: &str| n[new].as_str().and_then(|v| v.parse::<u64>().ok()).or_else(|| n[old].as_u64());
        match (drops("ReserveBaseDrops", "ReserveBase"), drops("ReserveIncrementDrops", "ReserveIncrement")) {
            (Some(base), Some(inc)) => Ok(Fact::Fees(base, inc)),
            _ => Err(RpcError::Failed("FeeSettings without reserves".into())),
        }
    }

    /// `account`'s holding of an MPT issuance: (amount, locked), None when it has none.
    pub async fn mptoken(&self, account: &str, issuance: &str) -> Result<Fact, RpcError> {
        match self.call("ledger_entry", json!({"mptoken": {"mpt_issuance_id": issuance, "account": account}, "ledger_index": "validated"})).await {
            Err(RpcError::NotFound) => Ok(Fact::MpToken(None)),
            Err(e) => Err(e),
            Ok(r) => {
                let n = &r["node"];
                let amount = match &n["MPTAmount"] {
                    Value::Null => 0,
                    v => v.as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| v.as_u64()).ok_or_else(|| RpcError::Failed("MPToken with an MPTAmount that is not a number".into()))?,
                };
                Ok(Fact::MpToken(Some((amount, n["Flags"].as_u64().unwrap_or(0) & LSF_MPT_LOCKED != 0))))
            }
        }
    }

    /// The Credential `issuer` gave `subject` of `ctype` (hex): (accepted, expiration in seconds
    /// since the Ripple epoch), None when there is none.
    pub async fn credential(&self, subject: &str, issuer: &str, ctype: &str) -> Result<Fact, RpcError> {
        let q = json!({"credential": {"subject": subject, "issuer": issuer, "credential_type": ctype}, "ledger_index": "validated"});
        match self.call("ledger_entry", q).await {
            Err(RpcError::NotFound) => Ok(Fact::Credential(None)),
            Err(e) => Err(e),
            Ok(r) => {
                let n = &r["node"];
                Ok(Fact::Credential(Some((n["Flags"].as_u64().unwrap_or(0) & LSF_ACCEPTED != 0, n["Expiration"].as_u64()))))
            }
        }
    }

    /// The accounts in `of`'s SignerList (none when it has no list or does not exist).
    pub async fn signers(&self, of: &str) -> Result<Fact, RpcError> {
        let objects = match self.call("account_objects", json!({"account": of, "type": "signer_list", "ledger_index": "validated"})).await {
            Err(RpcError::NotFound) => return Ok(Fact::Signers(vec![])),
            r => r?,
        };
        let signers = objects["account_objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["LedgerEntryType"] == "SignerList")
            .flat_map(|o| o["SignerEntries"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["SignerEntry"]["Account"].as_str().map(String::from))
            .collect();
        Ok(Fact::Signers(signers))
    }
}

/// One call on the WebSocket API: connect (TLS for wss://), send, read until the answer to it,
/// close. A connection per call: results are cached, so calls are few.
async fn ws_call(url: &url::Url, tls: Option<&Arc<rustls::ClientConfig>>, call: String) -> Result<Value, String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let tcp = tokio::net::TcpStream::connect(format!("{host}:{port}")).await.map_err(|e| format!("unreachable: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().max_message_size(Some(MAX_ANSWER)).max_frame_size(Some(MAX_ANSWER));
    match tls {
        None => {
            let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), tcp, Some(config)).await.map_err(|e| format!("WebSocket handshake: {e}"))?;
            exchange(ws, call).await
        }
        Some(tls) => {
            let name = rustls_pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string()).map_err(|_| format!("{host} is not a TLS server name"))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await.map_err(|e| format!("WebSocket handshake: {e}"))?;
            exchange(ws, call).await
        }
    }
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut ws: tokio_tungstenite::WebSocketStream<S>, call: String) -> Result<Value, String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Text(call.into())).await.map_err(|e| format!("send: {e}"))?;
    while let Some(m) = ws.next().await {
        match m.map_err(|e| format!("read: {e}"))? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).map_err(|_| "answered something that is not JSON".to_string())?;
                // Other messages (a subscription's) are not the answer.
                if v["id"] == 1 && v["type"] == "response" {
                    let _ = ws.close(None).await;
                    return Ok(v);
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Err("closed before answering".into())
}
