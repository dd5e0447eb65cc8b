//! `use_synced`: a Yjs document on the tidings session (tidings-sync's `SyncedDoc` on channel `doc:NAME`) with one of its texts as a signal and edit methods that send the change.

use leptos::prelude::*;
use tidings_sync::SyncedDoc;
use tidings_sync::yrs::{GetString, Text, Transact};

use crate::{ChannelNotice, Connection, PublishError, use_subscription};

/// Why an edit of a [`SyncedText`] was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncedError {
    /// The hook is inert (SSR or a native build): nothing was edited.
    #[error("tidings-leptos is inert here (SSR or a native build): edit in the browser")]
    Inert,
    /// The edit was made locally but could not be published.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// A shared text of a synced document, as signals. `Copy`.
#[derive(Clone, Copy, Debug)]
pub struct SyncedText {
    /// The text, after every local and remote change.
    pub text: ReadSignal<String>,
    /// Whether the server's state arrived since the last (re)sync began.
    pub synced: ReadSignal<bool>,
    /// Sync errors (refusals by the server, malformed messages), as text.
    pub errors: ReadSignal<Vec<String>>,
    inner: StoredValue<Option<Inner>, LocalStorage>,
    set_text: WriteSignal<String>,
    textarea: StoredValue<Option<NodeRef<leptos::html::Textarea>>>,
}

struct Inner {
    doc: SyncedDoc,
    text: String,
    connection: Connection,
}

impl Inner {
    fn text_ref(&self) -> tidings_sync::yrs::TextRef {
        self.doc.doc().get_or_insert_text(self.text.as_str())
    }

    fn read(&self) -> String {
        let t = self.text_ref();
        t.get_string(&self.doc.doc().transact())
    }

    /// Publishes the local changes made since the last call.
    fn flush(&mut self) -> Result<(), PublishError> {
        if let Some(payload) = self.doc.take_local() {
            self.connection
                .publish(self.doc.channel(), payload.to_vec())?;
        }
        Ok(())
    }
}

impl SyncedText {
    /// Shows the text in `textarea` and keeps it there: remote changes are
    /// written to the element in the same task that applies them to the
    /// document (the caret kept in place), so the element never lags behind
    /// the document and [`SyncedText::replace_all`] from its `input` handler
    /// edits exactly what the user changed. Bind it instead of `prop:value`.
    pub fn bind_textarea(&self, textarea: NodeRef<leptos::html::Textarea>) {
        self.textarea.set_value(Some(textarea));
    }

    /// Runs `edit` on the text (in one transaction) and sends the change.
    pub fn edit(
        &self,
        edit: impl FnOnce(&tidings_sync::yrs::TextRef, &mut tidings_sync::yrs::TransactionMut<'_>),
    ) -> Result<(), SyncedError> {
        let result = self.inner.try_update_value(|inner| {
            let inner = inner.as_mut()?;
            {
                let t = inner.text_ref();
                let mut txn = inner.doc.doc().transact_mut();
                edit(&t, &mut txn);
            }
            let now = inner.read();
            Some((inner.flush(), now))
        });
        match result.flatten() {
            Some((sent, now)) => {
                self.set_text.set(now);
                sent.map_err(SyncedError::from)
            }
            None => Err(SyncedError::Inert),
        }
    }

    /// Inserts `chunk` at `index` (in UTF-16 code units, as the browser and
    /// Yjs count).
    pub fn insert(&self, index: u32, chunk: &str) -> Result<(), SyncedError> {
        self.edit(|t, txn| t.insert(txn, index, chunk))
    }

    /// Removes `len` UTF-16 code units at `index`.
    pub fn delete(&self, index: u32, len: u32) -> Result<(), SyncedError> {
        self.edit(|t, txn| t.remove_range(txn, index, len))
    }

    /// Makes the text `new` with the smallest edit (one deletion and one
    /// insertion between the common prefix and suffix): what a `<textarea>`'s
    /// `input` handler calls, so that concurrent typing elsewhere merges.
    pub fn replace_all(&self, new: &str) -> Result<(), SyncedError> {
        let Some(old) = self
            .inner
            .try_with_value(|inner| inner.as_ref().map(Inner::read))
            .flatten()
        else {
            return Err(SyncedError::Inert);
        };
        let (at, removed, inserted) = diff(&old, new);
        if removed == 0 && inserted.is_empty() {
            return Ok(());
        }
        self.edit(|t, txn| {
            if removed > 0 {
                t.remove_range(txn, at, removed);
            }
            if !inserted.is_empty() {
                t.insert(txn, at, inserted);
            }
        })
    }
}

/// Writes `now` into `el`, moving the caret by what changed before it.
fn show(el: &leptos::web_sys::HtmlTextAreaElement, now: &str) {
    let old = el.value();
    if old == now {
        return;
    }
    let (at, removed, inserted) = diff(&old, now);
    let inserted = inserted.encode_utf16().count() as u32;
    let moved = |caret: u32| {
        if caret <= at {
            caret
        } else {
            caret - removed.min(caret - at) + inserted
        }
    };
    let start = el.selection_start().ok().flatten().map(moved);
    let end = el.selection_end().ok().flatten().map(moved);
    el.set_value(now);
    if let (Some(start), Some(end)) = (start, end) {
        let _ = el.set_selection_range(start, end);
    }
}

/// The edit from `old` to `new`: position and removed length (UTF-16 code
/// units) and the inserted text.
fn diff<'a>(old: &str, new: &'a str) -> (u32, u32, &'a str) {
    let prefix: usize = old
        .chars()
        .zip(new.chars())
        .take_while(|(a, b)| a == b)
        .map(|(c, _)| c.len_utf8())
        .sum();
    let suffix: usize = old[prefix..]
        .chars()
        .rev()
        .zip(new[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(c, _)| c.len_utf8())
        .sum();
    let removed = &old[prefix..old.len() - suffix];
    let inserted = &new[prefix..new.len() - suffix];
    let units = |s: &str| s.encode_utf16().count() as u32;
    (units(&old[..prefix]), units(removed), inserted)
}

/// A document with a random client id (yrs' own random source is not seeded
/// in the browser) that counts text offsets in UTF-16 code units, like Yjs.
#[cfg(target_arch = "wasm32")]
fn browser_doc() -> tidings_sync::yrs::Doc {
    let id = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let mut options =
        tidings_sync::yrs::Options::with_client_id(tidings_sync::yrs::ClientID::new(id));
    options.offset_kind = tidings_sync::yrs::OffsetKind::Utf16;
    tidings_sync::yrs::Doc::with_options(options)
}

/// Follows document `doc` (channel `doc:{doc}`) on `connection` and shows its
/// text `text` as a signal (edits with [`SyncedText::insert`],
/// [`SyncedText::delete`], [`SyncedText::replace_all`]). Every
/// (re)subscription syncs both ways; a gap or reset notice syncs again. Off
/// wasm32 (SSR, native) the hook is inert: the text stays empty, edits return
/// [`SyncedError::Inert`]; in the browser the signals are first written after
/// the current (hydration) pass.
pub fn use_synced(connection: Connection, doc: &str, text: &str) -> SyncedText {
    let channel = format!("doc:{doc}");
    let sub = use_subscription(connection, &channel);
    let (text_signal, set_text) = signal(String::new());
    let (synced, set_synced) = signal(false);
    let (errors, set_errors) = signal(Vec::<String>::new());
    #[cfg(target_arch = "wasm32")]
    let inner = SyncedDoc::with_doc(&channel, browser_doc())
        .ok()
        .filter(|_| !connection.is_inert())
        .map(|doc| Inner {
            doc,
            text: text.to_owned(),
            connection,
        });
    #[cfg(not(target_arch = "wasm32"))]
    let inner: Option<Inner> = {
        let _ = (text, SyncedDoc::new);
        None
    };
    let live = inner.is_some();
    let handle = SyncedText {
        text: text_signal,
        synced,
        errors,
        inner: StoredValue::new_local(inner),
        set_text,
        textarea: StoredValue::new(None),
    };
    if !live {
        return handle;
    }
    let seen = StoredValue::<(usize, usize), LocalStorage>::new_local((0, 0));
    // Effects run in the browser only, after hydration.
    Effect::new(move |_| {
        let messages = sub.messages.get();
        let notices = sub.notices.get();
        let (seen_messages, seen_notices) = seen.get_value();
        seen.set_value((messages.len(), notices.len()));
        let mut failed: Vec<String> = Vec::new();
        let state = handle.inner.try_update_value(|inner| {
            let inner = inner.as_mut()?;
            for m in messages.iter().skip(seen_messages) {
                match inner.doc.handle_message(&m.payload) {
                    Ok(Some(reply)) => {
                        if let Err(e) = inner
                            .connection
                            .publish(inner.doc.channel(), reply.to_vec())
                        {
                            failed.push(e.to_string());
                        }
                    }
                    Ok(None) => {}
                    Err(e) => failed.push(e.to_string()),
                }
            }
            let resync = notices
                .iter()
                .skip(seen_notices)
                .any(|n| matches!(n, ChannelNotice::Gap { .. } | ChannelNotice::Reset { .. }));
            if resync {
                let step1 = inner.doc.sync_step1();
                if let Err(e) = inner
                    .connection
                    .publish(inner.doc.channel(), step1.to_vec())
                {
                    failed.push(e.to_string());
                }
            }
            Some((inner.read(), inner.doc.is_synced()))
        });
        if let Some(Some((now, is_synced))) = state {
            if let Some(el) = handle.textarea.get_value().and_then(|n| n.get_untracked()) {
                show(&el, &now);
            }
            if text_signal.get_untracked() != now {
                set_text.set(now);
            }
            if synced.get_untracked() != is_synced {
                set_synced.set(is_synced);
            }
        }
        if !failed.is_empty() {
            set_errors.update(|e| e.extend(failed));
        }
    });
    handle
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn the_diff_is_one_deletion_and_one_insertion_in_utf16_units() {
        assert_eq!(diff("hello", "hello"), (5, 0, ""));
        assert_eq!(diff("hello", "help"), (3, 2, "p"));
        assert_eq!(diff("ab", "a-b"), (1, 0, "-"));
        assert_eq!(diff("aaa", "aa"), (2, 1, ""));
        // "é" is one UTF-16 unit, "😀" two.
        assert_eq!(diff("é😀x", "é😀yx"), (3, 0, "y"));
        assert_eq!(diff("😀", ""), (0, 2, ""));
    }
}
