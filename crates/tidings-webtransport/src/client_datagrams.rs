//! `ClientDatagrams` (native): the datagrams of a `Client`'s current session, which follow it across reconnects.

use bytes::Bytes;
use tokio::sync::watch;

use crate::datagram::Datagrams;
use crate::error::DatagramError;

/// Where the connector puts each new session's datagrams.
pub(crate) type DatagramSlot = watch::Sender<Option<Datagrams>>;

/// A new slot and the handle reading it.
pub(crate) fn slot() -> (DatagramSlot, ClientDatagrams) {
    let (tx, rx) = watch::channel(None);
    (tx, ClientDatagrams { rx })
}

/// The datagrams of a [`crate::Client`]'s session (from
/// [`crate::ClientBuilder::connect_with_datagrams`]): lossy, unordered data
/// beside it (cursor positions), checked against the path's max datagram size.
/// After a reconnect they go over the new session. Cheap to clone.
///
/// Nothing here is sequenced, acknowledged or resumed: a datagram may be
/// lost, duplicated or reordered, and those in flight when a session drops
/// are gone. Use the session's channels for anything that must arrive.
#[derive(Clone, Debug)]
pub struct ClientDatagrams {
    rx: watch::Receiver<Option<Datagrams>>,
}

impl ClientDatagrams {
    /// The largest datagram the current session takes now (`None`: not
    /// connected, or the server accepts none).
    pub fn max_size(&self) -> Option<usize> {
        self.rx.borrow().as_ref()?.max_size()
    }

    /// Sends one datagram on the current session:
    /// [`DatagramError::NotConnected`] before the first session is up,
    /// [`DatagramError::TooLarge`] (nothing sent) past [`Self::max_size`].
    pub fn send(&self, payload: &[u8]) -> Result<(), DatagramError> {
        let current = self.rx.borrow().clone();
        current.ok_or(DatagramError::NotConnected)?.send(payload)
    }

    /// The next datagram received, on whichever session is current (it waits
    /// across reconnects); [`DatagramError::Closed`] once the client is closed.
    pub async fn recv(&self) -> Result<Bytes, DatagramError> {
        let mut rx = self.rx.clone();
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(datagrams) = current {
                tokio::select! {
                    got = datagrams.recv() => if let Ok(payload) = got {
                        return Ok(payload);
                    },
                    // A new session: read that one.
                    changed = rx.changed() => {
                        if changed.is_err() {
                            return Err(DatagramError::Closed);
                        }
                        continue;
                    }
                }
            }
            // No session, or it ended: wait for the next one.
            if rx.changed().await.is_err() {
                return Err(DatagramError::Closed);
            }
        }
    }
}
