//! `ClientDatagrams` (browser): the datagrams of a `Client`'s current `WebTransport` session, which follow it across reconnects.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use js_sys::Uint8Array;
use web_sys::WritableStreamDefaultWriter;

use super::js;
use super::stream::{Reader, settle};
use crate::error::DatagramError;

/// One session's datagram streams.
struct Session {
    duplex: js::DatagramDuplexStream,
    writer: WritableStreamDefaultWriter,
    reader: Reader,
}

#[derive(Default)]
struct Shared {
    current: Option<Session>,
    waiters: Vec<Waker>,
    /// The client is gone (its connector was dropped).
    closed: bool,
}

/// Where the connector puts each new session's datagrams; dropping it (the
/// client closed) ends [`ClientDatagrams::recv`].
pub(crate) struct DatagramSlot {
    shared: Rc<RefCell<Shared>>,
}

impl DatagramSlot {
    /// The session of `wt` is the current one now.
    pub(crate) fn set(&self, wt: &js::WebTransport) {
        let duplex = wt.datagrams();
        let writer = duplex.writable().get_writer();
        let reader = Reader::new(&duplex.readable());
        let mut shared = self.shared.borrow_mut();
        shared.current = match (writer, reader) {
            (Ok(writer), Ok(reader)) => Some(Session {
                duplex,
                writer,
                reader,
            }),
            _ => None,
        };
        for w in shared.waiters.drain(..) {
            w.wake();
        }
    }
}

impl Drop for DatagramSlot {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.closed = true;
        shared.current = None;
        for w in shared.waiters.drain(..) {
            w.wake();
        }
    }
}

/// A new slot and the handle reading it.
pub(crate) fn slot() -> (DatagramSlot, ClientDatagrams) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    (
        DatagramSlot {
            shared: shared.clone(),
        },
        ClientDatagrams { shared },
    )
}

/// The datagrams of a [`crate::Client`]'s session (from
/// [`crate::ClientBuilder::connect_with_datagrams`]): lossy, unordered data
/// beside it, checked against the session's `maxDatagramSize`. After a
/// reconnect they go over the new session. Cheap to clone.
///
/// Nothing here is sequenced, acknowledged or resumed: use the session's
/// channels for anything that must arrive.
#[derive(Clone)]
pub struct ClientDatagrams {
    shared: Rc<RefCell<Shared>>,
}

impl std::fmt::Debug for ClientDatagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDatagrams")
            .field("max_size", &self.max_size())
            .finish()
    }
}

impl ClientDatagrams {
    /// The largest datagram the current session takes now (`None`: not connected).
    pub fn max_size(&self) -> Option<usize> {
        let shared = self.shared.borrow();
        let size = shared.current.as_ref()?.duplex.max_datagram_size();
        (size.is_finite() && size > 0.0).then_some(size as usize)
    }

    /// Sends one datagram on the current session:
    /// [`DatagramError::NotConnected`] before a session is up,
    /// [`DatagramError::TooLarge`] (nothing sent) past [`Self::max_size`].
    pub fn send(&self, payload: &[u8]) -> Result<(), DatagramError> {
        let max = self.max_size();
        let shared = self.shared.borrow();
        if shared.closed {
            return Err(DatagramError::Closed);
        }
        let session = shared.current.as_ref().ok_or(DatagramError::NotConnected)?;
        let max = max.ok_or(DatagramError::Unsupported)?;
        if payload.len() > max {
            return Err(DatagramError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        // The promise settles when the datagram is queued or dropped (lossy by design).
        settle(session.writer.write_with_chunk(&Uint8Array::from(payload)));
        Ok(())
    }

    /// The next datagram received, on whichever session is current (it waits
    /// across reconnects); [`DatagramError::Closed`] once the client is closed.
    pub async fn recv(&self) -> Result<Bytes, DatagramError> {
        std::future::poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if shared.closed {
                return Poll::Ready(Err(DatagramError::Closed));
            }
            if let Some(session) = shared.current.as_mut() {
                match session.reader.poll_bytes(cx) {
                    Poll::Ready(Ok(Some(payload))) => return Poll::Ready(Ok(Bytes::from(payload))),
                    // That session ended: wait for the next.
                    Poll::Ready(Ok(None) | Err(_)) => shared.current = None,
                    Poll::Pending => {}
                }
            }
            shared.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
