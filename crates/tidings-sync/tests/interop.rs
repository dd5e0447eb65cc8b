//! Yjs interop against a real server: two Node `yjs` + `y-protocols` clients and a Rust `yrs` client edit one text at once, the Rust client's link is cut in the middle, and all converge to the same text as the server; bad input closes only its own connection.
#![allow(clippy::unwrap_used)]

mod common;

use common::server;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::decoder::Decode;
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};
use tidings_sync::{DocConfig, Docs, DocsConfig};
use tidings_test::peers;
use tidings_test::proxy::{FaultProxy, ProxyHandle};
use tidings_test::require_peer;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const EDITS: usize = 100;

fn markers(text: &str) -> usize {
    text.matches('[').count()
}

fn script(name: &str) -> PathBuf {
    peers::workspace_root().join("tests/peers/node").join(name)
}

/// A Rust peer on yrs: edits `EDITS` times, reconnects whenever its link
/// drops (resyncing both ways), and returns the text once it holds `expect`
/// markers.
async fn rust_peer(addr: std::net::SocketAddr, proxy: ProxyHandle, expect: usize) -> String {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let mut edits = 0;
    let mut cut = false;
    loop {
        let Ok((ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/doc")).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let sv = doc.transact().state_vector();
        tx.send(WsMessage::binary(
            Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1(),
        ))
        .await
        .unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(3));
        loop {
            tokio::select! {
                frame = rx.next() => {
                    let Some(Ok(WsMessage::Binary(data))) = frame else { break };
                    let Ok(msg) = Message::decode_v1(&data) else { panic!("bad message from the server") };
                    match msg {
                        Message::Sync(SyncMessage::SyncStep1(sv)) => {
                            let u = doc.transact().encode_state_as_update_v1(&sv);
                            let reply = Message::Sync(SyncMessage::SyncStep2(u)).encode_v1();
                            if tx.send(WsMessage::binary(reply)).await.is_err() { break }
                        }
                        Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => {
                            doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if edits < EDITS {
                        let before = doc.transact().state_vector();
                        {
                            let mut txn = doc.transact_mut();
                            let len = text.len(&txn);
                            let pos = (edits * 7919) as u32 % (len + 1);
                            text.insert(&mut txn, pos, &format!("[rust:{edits}]"));
                        }
                        edits += 1;
                        let u = doc.transact().encode_state_as_update_v1(&before);
                        let m = Message::Sync(SyncMessage::Update(u)).encode_v1();
                        if tx.send(WsMessage::binary(m)).await.is_err() { break }
                        if edits == EDITS / 2 && !cut {
                            // The link drops mid-stream; edits go on offline.
                            cut = true;
                            proxy.cut_all();
                        }
                    } else {
                        let t = text.get_string(&doc.transact());
                        if markers(&t) >= expect {
                            return t;
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_yjs_and_rust_yrs_converge_through_the_server_with_a_cut_link() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone()).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let expect = 3 * EDITS;
    let env = vec![(
        "TIDINGS_NODE_MODULES".to_owned(),
        modules.display().to_string(),
    )];
    let url = format!("ws://{addr}/doc");
    let run = |name: &'static str| {
        let (node, url, env) = (node.clone(), url.clone(), env.clone());
        tokio::spawn(async move {
            peers::run_script(
                &node,
                &script("yjs_client.mjs"),
                [url, name.to_owned(), EDITS.to_string(), expect.to_string()],
                env,
                Duration::from_secs(60),
            )
            .await
        })
    };
    let (a, b) = (run("ann"), run("bob"));
    let rust = tokio::time::timeout(
        Duration::from_secs(60),
        rust_peer(proxy.addr(), proxy.handle(), expect),
    )
    .await
    .expect("the Rust peer converged");
    let mut finals = vec![rust.clone()];

    for out in [a.await.unwrap(), b.await.unwrap()] {
        let out = out.unwrap_or_else(|e| panic!("node peer failed: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last: Value = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &Value| v["event"] == "final")
            .unwrap_or_else(|| panic!("no final line in {stdout}"));
        finals.push(last["text"].as_str().unwrap().to_owned());
    }
    let on_server = docs
        .with_doc("doc", |d| {
            d.doc()
                .get_or_insert_text("t")
                .get_string(&d.doc().transact())
        })
        .unwrap();
    assert_eq!(markers(&on_server), expect, "{on_server}");
    for f in &finals {
        assert_eq!(f, &on_server, "every peer ends with the server's text");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_closes_only_its_connection_and_the_document_stays() {
    let mut config = DocsConfig::default();
    config.doc = {
        let mut d = DocConfig::default();
        d.max_doc_bytes = 4096;
        d
    };
    config.awareness_per_sec = 5;
    let docs = Docs::new(config);
    let addr = server(docs.clone()).await;
    let url = format!("ws://{addr}/doc");

    // A good peer writes something first.
    let (mut good, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let source = Doc::new();
    let t = source.get_or_insert_text("t");
    t.insert(&mut source.transact_mut(), 0, "kept");
    let u = source
        .transact()
        .encode_state_as_update_v1(&Default::default());
    good.send(WsMessage::binary(
        Message::Sync(SyncMessage::Update(u)).encode_v1(),
    ))
    .await
    .unwrap();
    // Wait until the server has it.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let has = docs
                .with_doc("doc", |d| {
                    d.doc()
                        .get_or_insert_text("t")
                        .get_string(&d.doc().transact())
                })
                .unwrap_or_default();
            if has == "kept" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    let big = {
        let d = Doc::new();
        d.get_or_insert_text("t")
            .insert(&mut d.transact_mut(), 0, &"x".repeat(10_000));
        d.transact().encode_state_as_update_v1(&Default::default())
    };
    let cases: Vec<(&str, Vec<WsMessage>, u16)> = vec![
        (
            "garbage",
            vec![WsMessage::binary(vec![0u8, 2, 9, 1, 2])],
            1003,
        ),
        (
            "truncated",
            vec![WsMessage::binary(vec![0u8, 0, 200])],
            1003,
        ),
        ("text frame", vec![WsMessage::text("hello")], 1003),
        (
            "oversized document",
            vec![WsMessage::binary(
                Message::Sync(SyncMessage::Update(big)).encode_v1(),
            )],
            1009,
        ),
        (
            "awareness flood",
            (0..50)
                .map(|_| WsMessage::binary(vec![1u8, 1, 0]))
                .collect(),
            1008,
        ),
    ];
    for (name, messages, code) in cases {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        for m in messages {
            if ws.send(m).await.is_err() {
                break;
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = ws.next().await {
                if let Ok(WsMessage::Close(c)) = frame {
                    return c.map(|c| (u16::from(c.code), c.reason.to_string()));
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: no close"));
        let (got_code, reason) = got.unwrap_or_else(|| panic!("{name}: closed without a code"));
        assert_eq!(got_code, code, "{name}: {reason}");
        assert!(!reason.is_empty(), "{name}: the close says why");
    }
    let text = docs
        .with_doc("doc", |d| {
            d.doc()
                .get_or_insert_text("t")
                .get_string(&d.doc().transact())
        })
        .unwrap();
    assert_eq!(text, "kept", "the document is intact");
    // The good peer is still served: it gets an answer to sync step 1.
    common::still_served(&mut good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_node_yjs_peers_converge() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone()).await;
    let env = vec![(
        "TIDINGS_NODE_MODULES".to_owned(),
        modules.display().to_string(),
    )];
    let url = format!("ws://{addr}/doc");
    let run = |name: &'static str| {
        let (node, url, env) = (node.clone(), url.clone(), env.clone());
        tokio::spawn(async move {
            peers::run_script(
                &node,
                &script("yjs_client.mjs"),
                [
                    url,
                    name.to_owned(),
                    EDITS.to_string(),
                    (2 * EDITS).to_string(),
                ],
                env,
                Duration::from_secs(60),
            )
            .await
        })
    };
    let (a, b) = (run("ann"), run("bob"));
    for out in [a.await.unwrap(), b.await.unwrap()] {
        out.unwrap_or_else(|e| panic!("node peer failed: {e}"));
    }
}
