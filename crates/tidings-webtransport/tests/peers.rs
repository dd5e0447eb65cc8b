//! Independent peer over WebTransport: Python `aioquic` (HTTP/3 + WebTransport of its own) opens a session to the tidings server and exchanges hello/welcome, subscribe, publish on the control stream and reads its channel's frames from the server's channel stream; a Rust client on the same channel receives what it published.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use tidings_protocol::ClientEvent;
use tidings_test::peers;
use tidings_test::require_peer;
use tidings_test::suite::{client_session_config, next, subscribed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_aioquic_opens_a_session_and_exchanges_frames() {
    let python = require_peer!(peers::python());
    let handle = common::server(common::fast_wt()).await;
    let (addr, hash) = (handle.local_addr(), handle.certificate_hash());
    let rust = common::connector(addr, hash, common::fast_wt())(client_session_config());
    rust.subscribe("py:room").unwrap();
    subscribed(&rust, "py:room").await;

    let hash_hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let script = peers::workspace_root().join("tests/peers/python/wt_client.py");
    let args = [
        "127.0.0.1".to_string(),
        addr.port().to_string(),
        hash_hex,
        "py:room".into(),
        "hello from aioquic".into(),
    ];
    let out = peers::run_script(
        &python,
        &script,
        args,
        peers::NO_ENV,
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("the aioquic peer failed: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("aioquic peer:\n{stdout}");
    assert!(stdout.lines().any(|l| l == "OK"), "{stdout}");
    assert!(stdout.contains(r#""type": "welcome""#), "{stdout}");
    assert!(
        stdout.contains(r#"stream py:room: {"type": "message""#),
        "the channel's message comes on its channel stream: {stdout}"
    );
    loop {
        match next(&rust).await {
            ClientEvent::Message(m) => {
                assert_eq!(&m.payload[..], br#"{"text":"hello from aioquic"}"#);
                break;
            }
            ClientEvent::Disconnected { .. } => panic!("the Rust client lost its link"),
            _ => {}
        }
    }
    rust.close();
    handle.shutdown().await;
}
