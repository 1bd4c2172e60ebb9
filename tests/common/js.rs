//! The JS test tools in tests/browser (playwright-core, the official xumm-sdk, axe-core,
//! xrpl.js), installed with `npm ci` when missing, and the ledger node stand-in they run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// tests/browser, with its node_modules installed.
pub fn tools() -> &'static str {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if ["playwright-core", "xumm-sdk", "axe-core", "xrpl"].iter().any(|m| !std::path::Path::new(DIR).join("node_modules").join(m).exists()) {
            let ok = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(DIR).status().expect("npm runs");
            assert!(ok.success(), "npm ci failed in tests/browser");
        }
    });
    DIR
}

/// `ledger.mjs`: a rippled JSON-RPC stand-in with data built by xrpl.js. Ends with the value.
pub struct LedgerNode {
    child: Child,
    pub url: String,
    /// What it printed: the port, the accounts by name, the codes it uses.
    pub data: serde_json::Value,
}

impl LedgerNode {
    pub fn start() -> LedgerNode {
        let mut child = Command::new("node").arg("ledger.mjs").current_dir(tools()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("node runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("the stand-in prints its port");
        let data: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("ledger.mjs printed {line:?}"));
        LedgerNode { url: format!("http://127.0.0.1:{}/", data["port"]), child, data }
    }

    /// The r-address of one of its named accounts.
    pub fn account(&self, name: &str) -> String {
        self.data["accounts"][name].as_str().unwrap_or_else(|| panic!("no account {name}")).to_string()
    }

    pub async fn control(&self, v: serde_json::Value) {
        let got = super::send(http::Request::post(format!("{}_control", self.url)).body(super::full(v.to_string())).unwrap()).await;
        assert_eq!(got.status, http::StatusCode::OK);
    }

    /// How many JSON-RPC calls it answered (all, and by method).
    pub async fn calls(&self) -> (u64, serde_json::Value) {
        let v = super::get_with(self.url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap(), "/_stats", &[]).await.json();
        (v["total"].as_u64().unwrap(), v["methods"].clone())
    }
}

impl Drop for LedgerNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
