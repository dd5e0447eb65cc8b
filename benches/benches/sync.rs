//! Sync bench: a Yjs document of 10,000 edits sent to a newly joining client, by the tidings server and by the Yjs y-websocket server (npm `y-websocket`) in the same run, beside the in-process yrs floor.
//!
//! The document: 10,000 transactions of one client on a text (inserts of a
//! few characters at pseudo-random positions, every tenth a deletion), about
//! 340 KB as one update (a text of 24,000 characters). Each server holds it
//! in memory (seeded by a client once); each iteration a fresh yrs client
//! connects over a real loopback
//! WebSocket, sends sync step 1 with an empty state vector and applies the
//! sync step 2 it gets back. The client code is the same for both servers.
//!
//! * `join_10000_edits/tidings` — `tidings_sync::Docs::serve_connection`
//!   behind a tokio-tungstenite accept loop.
//! * `join_10000_edits/y_websocket` — the y-websocket server's
//!   `setupWSConnection` (Node, `tests/peers/node/yws_server.mjs`); skipped
//!   loudly when `node` or the Node peers (`cargo xtask setup`) are missing.
//! * `join_10000_edits/yrs_direct` — no server, no socket: the state
//!   encoded from a yrs document and applied to a fresh one (the floor both
//!   servers pay on top of).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use tidings_benches::sum_measured;
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::decoder::Decode;
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};
use tidings_sync::{Docs, DocsConfig};
use tidings_test::peers;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const EDITS: u32 = 10_000;

/// The document: `EDITS` transactions on text `t`; returns it as one update
/// and its text.
fn document() -> (Vec<u8>, String) {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let mut x = 0x2545_f491_u32;
    for i in 0..EDITS {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        if i % 10 == 9 && len > 4 {
            text.remove_range(&mut txn, x % (len - 2), 2);
        } else {
            text.insert(&mut txn, x % (len + 1), &format!("{}", i % 997));
        }
    }
    let txn = doc.transact();
    (
        txn.encode_state_as_update_v1(&StateVector::default()),
        text.get_string(&txn),
    )
}

/// A tidings sync server on loopback: every path serves document `doc`.
async fn tidings_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let docs = Docs::new(DocsConfig::default());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let docs = docs.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                    docs.serve_connection("doc", ws).await;
                }
            });
        }
    });
    addr
}

/// The y-websocket server as a child process, and its port.
fn y_websocket_server() -> Option<(Child, u16)> {
    let node = peers::require(peers::node())?;
    let modules = peers::require(peers::node_modules())?;
    if !modules.join("y-websocket").is_dir() {
        eprintln!(
            "SKIPPED: join_10000_edits/y_websocket: npm `y-websocket` is not in {} (run cargo xtask setup)",
            modules.display()
        );
        return None;
    }
    let script = peers::workspace_root().join("tests/peers/node/yws_server.mjs");
    let mut child = Command::new(node)
        .arg(script)
        .env("TIDINGS_NODE_MODULES", &modules)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the y-websocket server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the y-websocket server's first line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    let port = v["port"].as_u64().expect("its port") as u16;
    Some((child, port))
}

/// Connects a fresh yrs client, sends sync step 1 (empty state vector),
/// waits for sync step 2, applies it, and checks the text; returns the time
/// from before the connect to the applied document. If `seed` is given it
/// is sent first as an update (the step 2 then confirms the server has it).
async fn join(url: &str, seed: Option<&[u8]>, want: &str) -> Duration {
    let start = Instant::now();
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let (mut tx, mut rx) = ws.split();
    if let Some(update) = seed {
        let m = Message::Sync(SyncMessage::Update(update.to_vec())).encode_v1();
        tx.send(WsMessage::binary(m)).await.expect("send");
    }
    let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
    tx.send(WsMessage::binary(step1)).await.expect("send");
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    while let Some(frame) = rx.next().await {
        let WsMessage::Binary(data) = frame.expect("frame") else {
            continue;
        };
        // Several y-protocols messages may share one WebSocket message.
        let Ok(Message::Sync(SyncMessage::SyncStep2(u))) = Message::decode_v1(&data) else {
            continue;
        };
        doc.transact_mut()
            .apply_update(Update::decode_v1(&u).expect("update"))
            .expect("apply");
        break;
    }
    let elapsed = start.elapsed();
    assert_eq!(text.get_string(&doc.transact()), want, "the whole document");
    let _ = tx.close().await;
    elapsed
}

fn sync(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (update, want) = document();
    eprintln!(
        "sync bench document: {EDITS} edits, {} bytes as one update, a text of {} chars",
        update.len(),
        want.len()
    );
    let tidings = rt.block_on(async {
        let addr = tidings_server().await;
        let url = format!("ws://{addr}/doc");
        join(&url, Some(&update), &want).await;
        url
    });
    let yws = y_websocket_server().map(|(child, port)| {
        let url = format!("ws://127.0.0.1:{port}/doc");
        rt.block_on(join(&url, Some(&update), &want));
        (child, url)
    });

    let mut group = c.benchmark_group("sync");
    group.sample_size(20);
    let want = &want;
    group.bench_function("join_10000_edits/tidings", |b| {
        let url = &tidings;
        b.iter_custom(|iters| sum_measured(&rt, iters, move || join(url, None, want)));
    });
    if let Some((_, url)) = &yws {
        group.bench_function("join_10000_edits/y_websocket", |b| {
            b.iter_custom(|iters| sum_measured(&rt, iters, move || join(url, None, want)));
        });
    }
    let server_doc = Doc::new();
    server_doc
        .transact_mut()
        .apply_update(Update::decode_v1(&update).expect("update"))
        .expect("apply");
    group.bench_function("join_10000_edits/yrs_direct", |b| {
        b.iter(|| {
            let u = server_doc
                .transact()
                .encode_state_as_update_v1(&StateVector::default());
            let fresh = Doc::new();
            fresh
                .transact_mut()
                .apply_update(Update::decode_v1(&u).expect("update"))
                .expect("apply");
            fresh
        });
    });
    group.finish();
    if let Some((mut child, _)) = yws {
        let _ = child.kill();
        let _ = child.wait();
    }
}

criterion_group!(benches, sync);
criterion_main!(benches);
