//! `SyncDoc`: one Yjs document and its awareness, answering y-protocols messages (sans-IO: bytes in, replies and broadcasts out).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::error::SyncError;
use crate::wire::{decode_messages, guarded};

/// Decides whether an update (its encoded bytes, v1) may be applied; `Err`
/// with a reason rejects it (the sender gets the reason, the document is
/// unchanged).
pub type UpdateHook = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// Limits and hooks of a [`SyncDoc`].
#[derive(Clone)]
#[non_exhaustive]
pub struct DocConfig {
    /// The encoded document may not grow past this (bytes, counting every
    /// update applied since it was loaded).
    pub max_doc_bytes: usize,
    /// One message (one WebSocket message) may not be larger.
    pub max_message_bytes: usize,
    /// Called for every update before it is applied.
    pub on_update: Option<UpdateHook>,
}

impl std::fmt::Debug for DocConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocConfig")
            .field("max_doc_bytes", &self.max_doc_bytes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("on_update", &self.on_update.is_some())
            .finish()
    }
}

impl Default for DocConfig {
    fn default() -> Self {
        Self {
            max_doc_bytes: 16 << 20,
            max_message_bytes: 1 << 20,
            on_update: None,
        }
    }
}

/// What handling a message produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages for the sender only (e.g. sync step 2).
    pub reply: Vec<Vec<u8>>,
    /// Messages for every other peer of the document (updates, awareness).
    pub broadcast: Vec<Vec<u8>>,
    /// The updates (v1) applied to the document, in order: what a store
    /// persists.
    pub applied: Vec<Vec<u8>>,
}

/// One document, as the server holds it.
pub struct SyncDoc {
    awareness: Awareness,
    config: DocConfig,
    /// Bytes of the document as loaded plus every update applied since: an
    /// upper bound of its encoded size, kept without re-encoding.
    size: usize,
}

impl std::fmt::Debug for SyncDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncDoc")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl SyncDoc {
    /// An empty document.
    pub fn new(config: DocConfig) -> Self {
        Self {
            awareness: Awareness::new(Doc::new()),
            config,
            size: 0,
        }
    }

    /// The document.
    pub fn doc(&self) -> &Doc {
        self.awareness.doc()
    }

    /// The upper bound of the encoded size the limit is checked against.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The whole document as one update (v1), e.g. to persist it.
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// What the server sends a new peer first: its state vector (sync step
    /// 1, so the peer sends what the server lacks) and, if anyone is there,
    /// the awareness states.
    pub fn start(&self) -> Vec<Vec<u8>> {
        let sv = self.doc().transact().state_vector();
        let mut out = vec![Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1()];
        if let Ok(update) = self.awareness.update()
            && !update.clients.is_empty()
        {
            out.push(Message::Awareness(update).encode_v1());
        }
        out
    }

    /// Handles one binary message from a peer (it may hold several
    /// y-protocols messages back to back; each is applied in turn, and the
    /// first that fails stops the rest).
    pub fn handle(&mut self, data: &[u8]) -> Result<Outcome, SyncError> {
        self.handle_as(data, true)
    }

    /// [`SyncDoc::handle`] for a peer that may change the document only if
    /// `may_write` (a read-only peer's non-empty updates are refused with
    /// [`SyncError::ReadOnly`]; it still syncs and shares awareness).
    pub fn handle_as(&mut self, data: &[u8], may_write: bool) -> Result<Outcome, SyncError> {
        if data.len() > self.config.max_message_bytes {
            return Err(SyncError::MessageTooLarge {
                size: data.len(),
                limit: self.config.max_message_bytes,
            });
        }
        let messages = decode_messages(data)?;
        let mut out = Outcome::default();
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let update = self.doc().transact().encode_state_as_update_v1(&sv);
                    out.reply
                        .push(Message::Sync(SyncMessage::SyncStep2(update)).encode_v1());
                }
                Message::Sync(SyncMessage::SyncStep2(bytes) | SyncMessage::Update(bytes)) => {
                    if !may_write && bytes.len() > 2 {
                        return Err(SyncError::ReadOnly);
                    }
                    if let Some(delta) = self.apply(&bytes)? {
                        out.broadcast
                            .push(Message::Sync(SyncMessage::Update(delta.clone())).encode_v1());
                        out.applied.push(delta);
                    }
                }
                Message::Awareness(update) => {
                    let encoded = Message::Awareness(update.clone()).encode_v1();
                    self.awareness
                        .apply_update(update)
                        .map_err(|e| SyncError::Awareness(e.to_string()))?;
                    out.broadcast.push(encoded);
                }
                Message::AwarenessQuery => {
                    let update = self
                        .awareness
                        .update()
                        .map_err(|e| SyncError::Awareness(e.to_string()))?;
                    out.reply.push(Message::Awareness(update).encode_v1());
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        Ok(out)
    }

    /// Applies a persisted update (a snapshot or a logged update) when the
    /// document is loaded: no hook and no size limit (it was checked when
    /// first applied), but a malformed one is a typed error.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        if bytes.len() <= 2 {
            return Ok(());
        }
        let update = guarded(|| Update::decode_v1(bytes))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(SyncError::MalformedUpdate)?;
        let mut txn = self.doc().transact_mut();
        guarded(AssertUnwindSafe(|| txn.apply_update(update)))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(SyncError::MalformedUpdate)?;
        drop(txn);
        self.size = self.size.saturating_add(bytes.len());
        Ok(())
    }

    /// Applies one update after the checks; returns what it changed in the
    /// document (`None`: nothing, e.g. empty, already known, or waiting for
    /// updates it depends on). Peers are sent that change, not the bytes
    /// received: it is integrated, so it never depends on an update they
    /// lack (a peer that sent an update ahead of the one it builds on, as a
    /// reconnecting client may, is relayed both once the server has both).
    fn apply(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, SyncError> {
        // An empty update (no structs, no deletions) is 2 bytes.
        if bytes.len() <= 2 {
            return Ok(None);
        }
        let size = self.size.saturating_add(bytes.len());
        if size > self.config.max_doc_bytes {
            return Err(SyncError::DocumentTooLarge {
                size,
                limit: self.config.max_doc_bytes,
            });
        }
        let update = guarded(|| Update::decode_v1(bytes))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(SyncError::MalformedUpdate)?;
        if let Some(hook) = &self.config.on_update {
            hook(bytes).map_err(SyncError::Rejected)?;
        }
        let mut txn = self.doc().transact_mut();
        guarded(AssertUnwindSafe(|| txn.apply_update(update)))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(SyncError::MalformedUpdate)?;
        let delta = txn.encode_update_v1();
        drop(txn);
        self.size = size;
        Ok((delta.len() > 2).then_some(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text};

    fn edit(doc: &Doc, text: &str) -> Vec<u8> {
        let t = doc.get_or_insert_text("t");
        let before = doc.transact().state_vector();
        {
            let mut txn = doc.transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, len, text);
        }
        doc.transact().encode_state_as_update_v1(&before)
    }

    #[test]
    fn step1_gets_step2_and_updates_are_broadcast() {
        let mut server = SyncDoc::new(DocConfig::default());
        let client = Doc::new();
        let update = edit(&client, "hello");
        let out = server
            .handle(&Message::Sync(SyncMessage::Update(update)).encode_v1())
            .unwrap();
        assert_eq!(out.broadcast.len(), 1);
        let other = Doc::new();
        let sv = other.transact().state_vector();
        let out = server
            .handle(&Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1())
            .unwrap();
        let Some(Message::Sync(SyncMessage::SyncStep2(u))) =
            decode_messages(&out.reply[0]).unwrap().pop()
        else {
            panic!("step 2");
        };
        other
            .transact_mut()
            .apply_update(Update::decode_v1(&u).unwrap())
            .unwrap();
        let t = other.get_or_insert_text("t");
        assert_eq!(t.get_string(&other.transact()), "hello");
    }

    #[test]
    fn malformed_and_oversized_input_leaves_the_document_intact() {
        let mut server = SyncDoc::new(DocConfig {
            max_doc_bytes: 64,
            ..DocConfig::default()
        });
        let client = Doc::new();
        server
            .handle(&Message::Sync(SyncMessage::Update(edit(&client, "ok"))).encode_v1())
            .unwrap();
        let before = server.encode_state();
        for garbage in [
            &[0u8, 2, 5, 1, 2, 3][..],
            &[0, 0, 200],
            &[7],
            &[0, 2, 3, 255, 255, 255],
        ] {
            assert!(server.handle(garbage).is_err(), "{garbage:?}");
        }
        let big = edit(&client, &"x".repeat(200));
        let e = server
            .handle(&Message::Sync(SyncMessage::Update(big)).encode_v1())
            .unwrap_err();
        assert!(matches!(e, SyncError::DocumentTooLarge { .. }), "{e}");
        assert_eq!(server.encode_state(), before);
    }

    #[test]
    fn the_hook_rejects_updates() {
        let mut server = SyncDoc::new(DocConfig {
            on_update: Some(Arc::new(|_| Err("read-only".into()))),
            ..DocConfig::default()
        });
        let e = server
            .handle(&Message::Sync(SyncMessage::Update(edit(&Doc::new(), "x"))).encode_v1())
            .unwrap_err();
        assert!(
            matches!(e, SyncError::Rejected(ref r) if r == "read-only"),
            "{e}"
        );
    }
}
