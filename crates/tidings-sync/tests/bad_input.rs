//! Bad input the interop test does not cover, over a real WebSocket: a well-framed y-protocols message carrying a malformed Yjs update (as update and as sync step 2), a malformed awareness update, a message over the size limit, a document grown past its limit by many small updates; each closes only its connection with a typed reason and leaves the document byte-for-byte intact. Then a property test: arbitrary bytes as an update never panic `SyncDoc`, and a refused one changes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::server;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, Text, Transact};
use tidings_sync::{DocConfig, Docs, DocsConfig, SyncDoc, SyncError};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const STEP: Duration = Duration::from_secs(20);

/// A y-protocols sync message of kind `kind` (0 step 1, 1 step 2, 2 update)
/// around `payload` (varuint length prefix), built by hand so the payload
/// can be anything.
fn framed(outer: u8, kind: Option<u8>, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![outer];
    m.extend(kind);
    let mut n = payload.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            m.push(b);
            break;
        }
        m.push(b | 0x80);
    }
    m.extend_from_slice(payload);
    m
}

/// An update inserting `s` at the end of text `t` of `doc`.
fn append(doc: &Doc, s: &str) -> Vec<u8> {
    let before = doc.transact().state_vector();
    let t = doc.get_or_insert_text("t");
    {
        let mut txn = doc.transact_mut();
        let len = t.len(&txn);
        t.insert(&mut txn, len, s);
    }
    doc.transact().encode_state_as_update_v1(&before)
}

fn state(docs: &Docs) -> (String, Vec<u8>) {
    docs.with_doc("doc", |d| {
        let t = d.doc().get_or_insert_text("t");
        (t.get_string(&d.doc().transact()), d.encode_state())
    })
    .unwrap()
}

/// Sends `messages` on a new connection and returns the close code and
/// reason the server answers with.
async fn refused(url: &str, messages: Vec<Vec<u8>>) -> (u16, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for m in messages {
        if ws.send(WsMessage::binary(m)).await.is_err() {
            break;
        }
    }
    tokio::time::timeout(STEP, async {
        while let Some(frame) = ws.next().await {
            if let Ok(WsMessage::Close(Some(c))) = frame {
                return (u16::from(c.code), c.reason.to_string());
            }
        }
        panic!("closed without a close frame");
    })
    .await
    .expect("a close in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_updates_and_awareness_and_size_limits_close_with_typed_reasons_and_the_document_stays()
 {
    let mut config = DocsConfig::default();
    config.doc = {
        let mut d = DocConfig::default();
        d.max_doc_bytes = 2048;
        d.max_message_bytes = 1024;
        d
    };
    let docs = Docs::new(config);
    let addr = server(docs.clone()).await;
    let url = format!("ws://{addr}/doc");

    // A good peer writes first and stays connected.
    let (mut good, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let writer = Doc::new();
    good.send(WsMessage::binary(
        Message::Sync(SyncMessage::Update(append(&writer, "kept"))).encode_v1(),
    ))
    .await
    .unwrap();
    tokio::time::timeout(STEP, async {
        while docs.with_doc("doc", |d| d.size()).unwrap_or(0) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let before = state(&docs);
    assert_eq!(before.0, "kept");

    let junk = [0xffu8, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
    let cases: Vec<(&str, Vec<Vec<u8>>, u16, &str)> = vec![
        (
            "malformed Yjs update (sync update)",
            vec![framed(0, Some(2), &junk)],
            1003,
            "malformed Yjs update",
        ),
        (
            "malformed Yjs update (sync step 2)",
            vec![framed(0, Some(1), &[9, 9, 9, 9])],
            1003,
            "malformed Yjs update",
        ),
        (
            "malformed awareness update",
            vec![framed(1, None, &[1, 0xff, 0xff, 0xff, 0xff, 0x0f])],
            1003,
            "",
        ),
        (
            "unknown sync kind",
            vec![framed(0, Some(7), &[1, 2])],
            1003,
            "malformed y-protocols message",
        ),
        (
            "message over the limit",
            vec![framed(0, Some(2), &[0u8; 2000])],
            1009,
            "exceeds the limit of 1024",
        ),
        (
            "document grown past its limit by small updates",
            {
                let d = Doc::new();
                (0..40)
                    .map(|i| {
                        Message::Sync(SyncMessage::Update(append(&d, &format!("{i:>60}"))))
                            .encode_v1()
                    })
                    .collect()
            },
            1009,
            "over the limit of 2048",
        ),
    ];
    for (name, messages, code, why) in cases {
        let ahead = state(&docs);
        let (got, reason) = refused(&url, messages).await;
        assert_eq!(got, code, "{name}: {reason}");
        assert!(!reason.is_empty(), "{name}: the close says why");
        assert!(reason.contains(why), "{name}: {reason:?} names {why:?}");
        if name.starts_with("document grown") {
            // The updates before the limit were applied (they were fine);
            // the one over it was not, and the rest never came in.
            let (text, _) = state(&docs);
            assert!(
                text.contains("kept") && text.len() > ahead.0.len(),
                "{text}"
            );
            assert!(docs.with_doc("doc", |d| d.size()).unwrap() <= 2048);
        } else {
            assert_eq!(
                state(&docs),
                ahead,
                "{name}: the document is byte-for-byte intact"
            );
        }
    }

    // The good peer is still served: step 1 gets step 2 with the document.
    common::still_served(&mut good).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes as the payload of a sync update or step 2: never a
    /// panic; a refusal is a typed error and leaves the document exactly as
    /// it was.
    #[test]
    fn arbitrary_update_payloads_never_panic_and_refusals_change_nothing(
        kind in 1u8..=2,
        payload in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut doc = SyncDoc::new(DocConfig::default());
        let seed = Doc::new();
        doc.handle(&Message::Sync(SyncMessage::Update(append(&seed, "base"))).encode_v1()).unwrap();
        let before = doc.encode_state();
        match doc.handle(&framed(0, Some(kind), &payload)) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!(
                    matches!(e, SyncError::MalformedUpdate(_) | SyncError::Malformed(_)),
                    "{e}"
                );
                prop_assert_eq!(doc.encode_state(), before);
            }
        }
    }
}
