//! Document persistence through a `Store` (memory, Redis, PostgreSQL): a real yrs client edits over y-websocket, the server logs every update and snapshots every N, the log is trimmed, and a restarted server (a new `Docs` on the same store) restores the document exactly; lost or malformed stored data is a typed error.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_broker::{MemoryStore, NewMessage, Retention, Store};
use tidings_protocol::{ChannelName, MessageId};
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::decoder::Decode;
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};
use tidings_sync::{Docs, DocsConfig, LoadError, PersistConfig, PersistError};
use tidings_test::services::{postgres_url, redis_url, unique_name, unreachable};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const NAME: &str = "notes";
const STEP: Duration = Duration::from_secs(60);

/// A y-websocket server for `docs` (every path serves [`NAME`]).
async fn server(docs: Docs) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    common::serve(docs, NAME).await
}

fn config(every: u64) -> PersistConfig {
    let mut c = PersistConfig::default();
    c.compact_every = every;
    c
}

/// A yrs client over a real WebSocket: syncs, makes `edits` edits (inserts
/// and some deletions), each sent as an update, and returns its document
/// once the server's copy equals it.
async fn edit_over_the_wire(addr: std::net::SocketAddr, docs: &Docs, edits: usize) -> Doc {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/doc"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let sv = doc.transact().state_vector();
    tx.send(WsMessage::binary(
        Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1(),
    ))
    .await
    .unwrap();
    // The server's state first (sync step 2 answers our step 1).
    tokio::time::timeout(STEP, async {
        while let Some(Ok(WsMessage::Binary(data))) = rx.next().await {
            if let Ok(Message::Sync(SyncMessage::SyncStep2(u))) = Message::decode_v1(&data) {
                doc.transact_mut()
                    .apply_update(Update::decode_v1(&u).unwrap())
                    .unwrap();
                return;
            }
        }
        panic!("no sync step 2");
    })
    .await
    .unwrap();
    for i in 0..edits {
        let before = doc.transact().state_vector();
        {
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            if i % 5 == 4 && len > 3 {
                text.remove_range(&mut txn, (i as u32 * 31) % (len - 2), 2);
            } else {
                text.insert(&mut txn, (i as u32 * 7919) % (len + 1), &format!("<{i}>"));
            }
        }
        let u = doc.transact().encode_state_as_update_v1(&before);
        tx.send(WsMessage::binary(
            Message::Sync(SyncMessage::Update(u)).encode_v1(),
        ))
        .await
        .unwrap();
    }
    let want = text.get_string(&doc.transact());
    tokio::time::timeout(STEP, async {
        loop {
            let got = docs.with_doc(NAME, |d| {
                d.doc()
                    .get_or_insert_text("t")
                    .get_string(&d.doc().transact())
            });
            if got.as_deref() == Some(want.as_str()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let _ = tx.close().await;
    doc
}

/// The text and the state vector of `docs`' copy of [`NAME`].
fn state_of(docs: &Docs) -> (String, StateVector, Vec<u8>) {
    docs.with_doc(NAME, |d| {
        let t = d.doc().get_or_insert_text("t");
        let txn = d.doc().transact();
        (t.get_string(&txn), txn.state_vector(), d.encode_state())
    })
    .unwrap()
}

/// Edits, restarts, compares: the restored document has the same text and
/// state vector, and nothing the restored copy lacks (an update from the old
/// state vector is empty both ways); a new client syncs the same text.
async fn a_restart_restores(store: Arc<dyn Store>, every: u64, edits: usize) {
    let docs = Docs::with_store(DocsConfig::default(), store.clone(), config(every));
    let (addr, server_task) = server(docs.clone()).await;
    let client = edit_over_the_wire(addr, &docs, edits).await;
    docs.flush(NAME).await.unwrap();
    let (text, sv, _) = state_of(&docs);
    assert_eq!(
        text,
        client
            .get_or_insert_text("t")
            .get_string(&client.transact())
    );
    let snap = ChannelName::new(format!("ydoc:{NAME}:snap")).unwrap();
    let snapshots = store.last_seq(&snap).await.unwrap();
    assert!(
        snapshots >= (edits as u64) / every,
        "{snapshots} snapshots for {edits} updates, one every {every}"
    );
    server_task.abort();
    drop(docs);

    // The restart: a new Docs over the same store.
    let restored = Docs::with_store(DocsConfig::default(), store.clone(), config(every));
    restored.load(NAME).await.unwrap();
    let (text2, sv2, state2) = state_of(&restored);
    assert_eq!(text2, text, "the same text");
    assert_eq!(sv2, sv, "the same state vector");
    let lacks = Update::decode_v1(&client.transact().encode_state_as_update_v1(&sv2)).unwrap();
    assert!(lacks.state_vector().is_empty(), "nothing missing");
    let fresh = Doc::new();
    fresh
        .transact_mut()
        .apply_update(Update::decode_v1(&state2).unwrap())
        .unwrap();
    let back = client
        .transact()
        .encode_state_as_update_v1(&fresh.transact().state_vector());
    fresh
        .transact_mut()
        .apply_update(Update::decode_v1(&back).unwrap())
        .unwrap();
    let t = fresh.get_or_insert_text("t");
    assert_eq!(
        t.get_string(&fresh.transact()),
        text,
        "the client had nothing more"
    );
    assert_eq!(fresh.transact().state_vector(), sv);

    // A client of the restarted server syncs the same text, and edits on.
    let (addr, server_task) = server(restored.clone()).await;
    let more = edit_over_the_wire(addr, &restored, 10).await;
    assert!(
        more.get_or_insert_text("t")
            .get_string(&more.transact())
            .len()
            >= text.len()
    );
    restored.flush(NAME).await.unwrap();
    server_task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_restores_the_document_exactly_from_a_memory_store_and_compaction_trims_the_log()
 {
    let store = Arc::new(MemoryStore::new(Retention::default().with_max_len(60)));
    a_restart_restores(store.clone(), 50, 230).await;
    // 240 updates logged, but the log keeps at most 60: compaction trimmed
    // it, and the snapshot covers what it dropped.
    let log = ChannelName::new(format!("ydoc:{NAME}:log")).unwrap();
    let range = store.read_after(&log, 0, 10_000).await.unwrap();
    assert!(range.last_seq >= 240);
    assert!(range.messages.len() <= 60, "{} kept", range.messages.len());
    assert!(
        range.gap.is_some(),
        "the compacted prefix is an explicit gap"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_drops_the_covered_log_and_older_snapshots_by_position_without_any_retention() {
    // No retention at all: only compaction (`Store::trim_through`) shrinks
    // the channels.
    let store = Arc::new(MemoryStore::default());
    a_restart_restores(store.clone(), 50, 230).await;
    let log = ChannelName::new(format!("ydoc:{NAME}:log")).unwrap();
    let snap = ChannelName::new(format!("ydoc:{NAME}:snap")).unwrap();
    let snaps = store.read_after(&snap, 0, 10_000).await.unwrap();
    assert_eq!(snaps.messages.len(), 1, "one snapshot kept");
    assert!(snaps.last_seq >= 4, "{} snapshots written", snaps.last_seq);
    let mut pos = [0u8; 8];
    pos.copy_from_slice(&snaps.messages[0].payload[..8]);
    let covered = u64::from_le_bytes(pos);
    let range = store.read_after(&log, 0, 10_000).await.unwrap();
    assert!(range.last_seq >= 240);
    assert!(
        range.messages.iter().all(|m| m.seq > covered),
        "the log keeps only what the snapshot at {covered} does not cover"
    );
    assert_eq!(
        range.gap,
        Some((1, covered)),
        "the compacted prefix is a gap"
    );
    assert!(range.messages.len() < 50, "{} kept", range.messages.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_restores_the_document_exactly_from_redis() {
    let test = "a_restarted_server_restores_the_document_exactly_from_redis";
    let url = redis_url();
    let config = tidings_redis::RedisConfig::from_url(&url)
        .unwrap()
        .with_prefix(unique_name("tidings_sync"))
        .with_retention(Retention::default().with_max_len(1000));
    let backend = match tidings_redis::RedisBackend::connect(config).await {
        Ok(b) => b,
        Err(e) => return unreachable(test, "Redis", &url, &e),
    };
    a_restart_restores(backend.clone(), 100, 500).await;
    backend.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_restores_the_document_exactly_from_postgres() {
    let test = "a_restarted_server_restores_the_document_exactly_from_postgres";
    let url = postgres_url();
    let config = tidings_postgres::PostgresConfig::from_url(&url)
        .unwrap()
        .with_schema(unique_name("tidings_sync"))
        .with_retention(Retention::default().with_max_len(1000));
    let backend = match tidings_postgres::PostgresBackend::connect(config).await {
        Ok(b) => b,
        Err(e) => return unreachable(test, "PostgreSQL", &url, &e),
    };
    a_restart_restores(backend.clone(), 100, 300).await;
    backend.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_lost_to_retention_or_a_malformed_snapshot_refuse_the_load_with_a_typed_error() {
    // Retention keeps 5 updates, compaction comes every 1,000: the restart
    // finds updates no snapshot covers.
    let store = Arc::new(MemoryStore::new(Retention::default().with_max_len(5)));
    let docs = Docs::with_store(DocsConfig::default(), store.clone(), config(1000));
    let (addr, server_task) = server(docs.clone()).await;
    edit_over_the_wire(addr, &docs, 20).await;
    docs.flush(NAME).await.unwrap();
    server_task.abort();
    let restarted = Docs::with_store(DocsConfig::default(), store.clone(), config(1000));
    let e = restarted.load(NAME).await.unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Persist(PersistError::LostUpdates { from: 1, .. })
        ),
        "{e}"
    );
    // A peer of that document is closed with 1011 and the reason.
    let (addr, server_task) = server(restarted.clone()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/doc"))
        .await
        .unwrap();
    let close = tokio::time::timeout(STEP, ws.next()).await.unwrap();
    let Some(Ok(WsMessage::Close(Some(frame)))) = close else {
        panic!("closed with a reason: {close:?}");
    };
    assert_eq!(u16::from(frame.code), 1011);
    assert!(frame.reason.contains("are gone"), "{}", frame.reason);
    server_task.abort();

    // A snapshot this crate did not write.
    let store = Arc::new(MemoryStore::default());
    let snap = ChannelName::new(format!("ydoc:{NAME}:snap")).unwrap();
    for bad in [&b"abc"[..], &[0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9][..]] {
        store
            .append(
                &snap,
                NewMessage {
                    id: MessageId(1),
                    dedup: None,
                    payload: bad.to_vec().into(),
                },
            )
            .await
            .unwrap();
        let docs = Docs::with_store(DocsConfig::default(), store.clone(), config(10));
        let e = docs.load(NAME).await.unwrap_err();
        assert!(
            matches!(
                e,
                LoadError::Persist(
                    PersistError::MalformedSnapshot { .. } | PersistError::Update { .. }
                )
            ),
            "{e}"
        );
    }
}
