//! JSON-RPC of a running full node (anvil L1, no peers): every method's happy path on the
//! genesis chain and a pending tx, and the exact errors of bad params and of the `[rpc]`
//! limits.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde_json::{Value, json};
use tandem_proto::{Address, SigningDomain, SigningKey, Tx, TxPayload, WireMessage};

use crate::common::*;

/// The genesis account whose key the test holds.
fn user() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32]).unwrap()
}

const BALANCE: u128 = 1_000_000_000_000;

fn call(rpc: SocketAddr, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let response = http_post(rpc, "/", &request.to_string()).expect("the RPC answers");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(body_of(&response)).unwrap()
}

fn result(rpc: SocketAddr, method: &str, params: Value) -> Value {
    let response = call(rpc, method, params.clone());
    assert!(
        response.get("error").is_none(),
        "{method}({params}): {response}"
    );
    response["result"].clone()
}

/// The error's (code, message).
fn failure(rpc: SocketAddr, method: &str, params: Value) -> (i64, String) {
    let response = call(rpc, method, params.clone());
    let error = &response["error"];
    assert!(
        error.is_object(),
        "{method}({params}) did not fail: {response}"
    );
    (
        error["code"].as_i64().unwrap(),
        error["message"].as_str().unwrap().to_string(),
    )
}

fn signed_transfer(domain: &SigningDomain, nonce: u64, chain_id: u64) -> String {
    let tx = Tx::sign(
        TxPayload {
            chain_id,
            nonce,
            to: Address::repeat_byte(0x77),
            amount: 1_000,
            max_fee_per_mana: 1_000_000,
            mana_limit: tandem_state::TX_MANA,
        },
        domain,
        &user(),
    );
    format!("0x{}", alloy::hex::encode(tx.to_wire_bytes()))
}

fn start(
    dir: &Path,
    anvil: &tandem_l1::harness::AnvilHarness,
) -> (Running, SocketAddr, SigningDomain) {
    let deployment = dir.join("deployment.json");
    let section = format!(
        "[protocol]\ngenesis_time = {}\nslot_duration = \"8s\"\nl1_slot_duration = \"2s\"\n\
         block_duration = \"2s\"\nepoch_duration = 4\ncommittee_size = 1\n\
         genesis_allocation = [{{ address = \"{}\", balance = \"{BALANCE}\" }}]\n\
         [l1]\nrpc_url = \"{}\"\ndeployment_file = \"{}\"\n",
        now_secs(),
        user().address(),
        anvil.endpoint(),
        deployment.display()
    );
    let config = write_run_config(dir, &section, free_port());
    deploy_network(anvil, &config, &deployment);
    let deployed: Value =
        serde_json::from_str(&std::fs::read_to_string(&deployment).unwrap()).unwrap();
    let domain = SigningDomain {
        chain_id: 1337,
        rollup: deployed["rollup"].as_str().unwrap().parse().unwrap(),
    };
    let node = spawn(
        tandem()
            .env("TANDEM__P2P__MIN_PEERS", "0")
            .env("TANDEM__RPC__MAX_REQUEST_BYTES", "4096")
            .env("TANDEM__RPC__MAX_BATCH_SIZE", "3")
            .args(["run", "--config"])
            .arg(&config),
    );
    let rpc = rpc_addr_of(&config);
    wait_for_http(rpc, "/ready", "readiness", Duration::from_secs(40), |r| {
        r.starts_with("HTTP/1.1 200")
    });
    (node, rpc, domain)
}

#[tokio::test]
async fn every_method_answers_and_bad_params_get_errors_naming_the_parameter() {
    let anvil = tandem_l1::harness::AnvilHarness::start(Some(1.0));
    let dir = tempfile::tempdir().unwrap();
    let (mut node, rpc, domain) = start(dir.path(), &anvil);

    // Tips: everything at genesis.
    let tips = result(rpc, "tandem_getL2Tips", json!([]));
    for tip in [
        "proposed",
        "proposedCheckpoint",
        "checkpointed",
        "finalized",
    ] {
        assert_eq!(tips[tip]["block"]["number"], "0x0", "{tips}");
        assert_eq!(tips[tip]["checkpoint"]["number"], "0x0", "{tips}");
    }
    let genesis_hash = tips["proposed"]["block"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        failure(rpc, "tandem_getL2Tips", json!([1])),
        (
            -32602,
            "invalid params: 1 given, at most 0 expected ([])".into()
        )
    );

    // Blocks by number, hash and tip; unknown and malformed.
    let block = result(rpc, "tandem_getBlock", json!(["0x0"]));
    assert_eq!(block["number"], "0x0");
    assert_eq!(block["hash"], genesis_hash);
    assert_eq!(block["status"], "finalized");
    assert_eq!(block["txCount"], "0x0");
    assert_eq!(block["txs"], json!([]));
    assert_eq!(
        result(rpc, "tandem_getBlock", json!([genesis_hash, true]))["number"],
        "0x0"
    );
    assert_eq!(
        result(rpc, "tandem_getBlock", json!(["checkpointed"]))["hash"],
        genesis_hash
    );
    assert_eq!(
        failure(rpc, "tandem_getBlock", json!(["0x5"])),
        (
            -32001,
            "block 0x5 not found (the proposed tip is 0x0)".into()
        )
    );
    assert_eq!(
        failure(
            rpc,
            "tandem_getBlock",
            json!([format!("0x{}", "ab".repeat(32))])
        ),
        (-32001, format!("block 0x{} not found", "ab".repeat(32)))
    );
    assert_eq!(
        failure(rpc, "tandem_getBlock", json!(["0xzz"])),
        (
            -32602,
            "invalid params: block: \"0xzz\" is neither a 0x-hex block number nor a 32-byte hash"
                .into()
        )
    );
    assert_eq!(
        failure(rpc, "tandem_getBlock", json!([])),
        (-32602, "invalid params: block: missing".into())
    );
    assert_eq!(
        failure(rpc, "tandem_getBlock", json!(["0x0", "yes"])),
        (
            -32602,
            "invalid params: includeTxs: expected true or false, got \"yes\"".into()
        )
    );

    // Checkpoints.
    let checkpoint = result(rpc, "tandem_getCheckpoint", json!(["checkpointed"]));
    assert_eq!(checkpoint["number"], "0x0", "{checkpoint}");
    assert_eq!(
        failure(rpc, "tandem_getCheckpoint", json!(["0x9"])),
        (
            -32001,
            "checkpoint 0x9 not found (checkpointed tip 0x0, proposed 0x0)".into()
        )
    );
    assert_eq!(
        failure(rpc, "tandem_getCheckpoint", json!(["pending"])),
        (
            -32602,
            "invalid params: checkpoint: \"pending\" is not a tip: expected \"proposed\", \
             \"proposedCheckpoint\", \"checkpointed\" or \"finalized\""
                .into()
        )
    );

    // Accounts at a tip.
    let address = format!("{:#x}", user().address());
    let account = result(rpc, "tandem_getAccount", json!([address]));
    assert_eq!(account["balance"], format!("{BALANCE:#x}"));
    assert_eq!(account["nonce"], "0x0");
    assert_eq!(account["block"]["number"], "0x0");
    let finalized = result(rpc, "tandem_getAccount", json!([address, "finalized"]));
    assert_eq!(finalized["balance"], format!("{BALANCE:#x}"));
    assert_eq!(
        failure(rpc, "tandem_getAccount", json!(["0x1234"])),
        (
            -32602,
            "invalid params: address: expected 20 bytes, got 2".into()
        )
    );

    // A tx: admitted, then pending; refusals name the rule.
    let sent = result(
        rpc,
        "tandem_sendTx",
        json!([signed_transfer(&domain, 0, 1337)]),
    );
    assert_eq!(sent["outcome"], "added", "{sent}");
    // This node has no peers: admitted, and the answer says it was not relayed.
    assert_eq!(sent["gossiped"], false, "{sent}");
    let hash = sent["hash"].as_str().unwrap().to_string();
    let tx = result(rpc, "tandem_getTx", json!([hash]));
    assert_eq!(tx["status"], "pending", "{tx}");
    assert_eq!(tx["tx"]["from"], address, "{tx}");
    assert_eq!(tx["tx"]["nonce"], "0x0", "{tx}");
    assert_eq!(
        result(
            rpc,
            "tandem_getTx",
            json!([format!("0x{}", "00".repeat(32))])
        ),
        Value::Null
    );
    assert_eq!(
        failure(
            rpc,
            "tandem_sendTx",
            json!([signed_transfer(&domain, 1, 7)])
        ),
        (-32003, "tx refused: tx chain id 7 is not 1337".into())
    );
    assert_eq!(
        failure(rpc, "tandem_sendTx", json!(["0x12zz"])),
        (
            -32602,
            "invalid params: rawTx: \"0x12zz\" is not hex: invalid character 'z' at position 2"
                .into()
        )
    );
    let (code, message) = failure(rpc, "tandem_sendTx", json!(["0x0102"]));
    assert_eq!(code, -32602);
    assert!(
        message.starts_with("invalid params: rawTx: Tx: "),
        "{message}"
    );
    assert_eq!(
        failure(rpc, "tandem_getTx", json!(["0x00"])),
        (
            -32602,
            "invalid params: hash: expected 32 bytes, got 1".into()
        )
    );

    // Node info.
    let info = result(rpc, "tandem_nodeInfo", json!([]));
    assert_eq!(info["role"], "full_node");
    assert_eq!(
        info["deployment"]["rollup"],
        format!("{:#x}", domain.rollup)
    );
    // The sync report in the RPC's conventions (hex quantities). Readiness was asserted once
    // through `/ready`; here only its shape.
    assert!(
        info["sync"]["l1Head"].as_str().unwrap().starts_with("0x"),
        "{info}"
    );
    assert_eq!(info["sync"]["minPeers"], "0x0", "{info}");
    assert!(
        info["peerId"].as_str().unwrap().starts_with("12D3"),
        "{info}"
    );

    // Limits: a request over rpc.max_request_bytes, a batch over rpc.max_batch_size.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tandem_getTx", "params": ["0x".to_string() + &"00".repeat(3000)]});
    let response = http_post(rpc, "/", &big.to_string()).unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    let error: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(error["error"]["code"], -32007, "{error}");
    assert_eq!(error["error"]["message"], "Request is too big", "{error}");
    let one = json!({"jsonrpc": "2.0", "id": 1, "method": "tandem_getL2Tips", "params": []});
    let batch = Value::Array(vec![one.clone(), one.clone(), one.clone(), one]);
    let response = http_post(rpc, "/", &batch.to_string()).unwrap();
    let error: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(error["error"]["code"], -32010, "{response}");
    assert_eq!(
        error["error"]["message"], "The batch request was too large",
        "{response}"
    );
    let batch = Value::Array(vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "tandem_getL2Tips", "params": []});
        3
    ]);
    let response = http_post(rpc, "/", &batch.to_string()).unwrap();
    let answers: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(answers.as_array().map(Vec::len), Some(3), "{response}");

    // The tips subscription over WebSocket: the current tips at once.
    let (subscription, notification) = subscribe_tips(rpc);
    assert!(
        subscription["result"].is_u64(),
        "a subscription id: {subscription}"
    );
    assert_eq!(notification["method"], "tandem_tips", "{notification}");
    assert_eq!(
        notification["params"]["subscription"],
        subscription["result"]
    );
    assert_eq!(
        notification["params"]["result"]["checkpointed"]["block"]["hash"], genesis_hash,
        "{notification}"
    );

    let exit = stop(&mut node);
    assert!(exit.success(), "exit status {exit:?}");
}

/// A minimal WebSocket client (RFC 6455: handshake, one masked text frame out, unmasked text
/// frames in): subscribes to the tips and returns the subscription answer and the first
/// notification.
fn subscribe_tips(rpc: SocketAddr) -> (Value, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(rpc).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {rpc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let request = br#"{"jsonrpc":"2.0","id":1,"method":"tandem_subscribeTips","params":[]}"#;
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | request.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(request.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
    let mut read_frame = || -> Value {
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 0x81, "a final text frame");
        let len = match header[1] & 0x7f {
            126 => {
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).unwrap();
                u16::from_be_bytes(len) as usize
            }
            127 => {
                let mut len = [0u8; 8];
                stream.read_exact(&mut len).unwrap();
                u64::from_be_bytes(len) as usize
            }
            len => len as usize,
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    let subscription = read_frame();
    let notification = read_frame();
    (subscription, notification)
}
