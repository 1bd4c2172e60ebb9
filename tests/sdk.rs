//! The official `xumm-sdk` npm package, unchanged but for `setEndpoint`, against the broker.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use xumm_gate::demo::platform::DevPlatform;

#[tokio::test(flavor = "multi_thread")]
async fn official_xumm_sdk_creates_reads_cancels_and_subscribes_through_the_gateway() {
    let dir = common::js::tools();
    // the SDK insists on UUIDv4-shaped credentials; the gateway issues such for this app
    let (app_key, app_secret) = ("0f0e0d0c-0b0a-4908-8706-050403020100", "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d");
    let platform = DevPlatform::start("127.0.0.1:0".parse().unwrap(), "aaaaaaaa-1111-4222-8333-444444444444", "bbbbbbbb-5555-4666-8777-888888888888").await.unwrap();
    let up = upstream().await;
    let idp = idp().await;
    let more = format!(
        "\n[xumm]\napi_url = \"{}\"\napi_key = \"aaaaaaaa-1111-4222-8333-444444444444\"\napi_secret = \"bbbbbbbb-5555-4666-8777-888888888888\"\n\n[[broker.app]]\nname = \"sdk-app\"\nkey = \"{app_key}\"\nsecret = \"{app_secret}\"\nallowed_tx_types = [\"Payment\"]\n",
        platform.url
    );
    let gw = ready_gateway(&auth_config(up, &idp.issuer, "", &more)).await;
    let endpoint = format!("http://{}/.xumm", gw.addr);
    let mut node = Command::new("timeout")
        .args(["120", "node", "sdk.mjs"])
        .arg(endpoint)
        .arg(app_key)
        .arg(app_secret)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // node's output, line by line, as it comes: the test plays the wallet once node subscribes
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut all = Vec::new();
    while let Some(line) = lines.recv().await {
        if let Some(uuid) = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v["subscribed"].as_str().map(str::to_string)) {
            platform.resolve(&uuid, true, ACCOUNT, "MAINNET");
        }
        all.push(line);
    }
    let out = tokio::task::spawn_blocking(move || node.wait_with_output().unwrap()).await.unwrap();
    let stdout = all.join("\n");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(v.get("exception").is_none(), "{v}");
    assert_eq!(v["ping"], "sdk-app");
    let uuid = v["uuid"].as_str().unwrap();
    assert_eq!(v["get_uuid"], uuid);
    assert_eq!(v["resolved"], false);
    assert_eq!(v["cancelled"], true);
    assert_eq!(v["verified"], serde_json::json!([{"user_token": "0e1c1a8e-0000-4000-8000-000000000000", "active": false}]));
    assert!(platform.payload(uuid).unwrap().cancelled, "the cancel reached Xumm");
    assert_eq!(v["subscribed_signed"], true, "the outcome came through the status socket relay: {v}");
    assert_eq!(v["subscribed_txid"], "AB".repeat(32));
    assert_eq!(v["subscribed_payload_signed"], true, "the SDK re-read the payload after the outcome");
    assert!(v["refused"].as_str().unwrap().contains("Error code 403"), "{v}");
}
