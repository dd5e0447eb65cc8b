//! Datagrams: lossy, unordered data beside the session (cursor positions), checked against the path's max datagram size.

use bytes::Bytes;
use wtransport::Connection;
use wtransport::error::SendDatagramError;

use crate::error::DatagramError;

/// Sends and receives a session's datagrams. Cheap to clone.
///
/// Nothing here is sequenced, acknowledged or resumed: a datagram may be
/// lost, duplicated or reordered, and none survives a reconnect. Use the
/// session's channels for anything that must arrive.
#[derive(Clone)]
pub struct Datagrams {
    conn: Connection,
}

impl std::fmt::Debug for Datagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams")
            .field("max_size", &self.max_size())
            .finish()
    }
}

impl Datagrams {
    /// The datagrams of a wtransport session (server or client side).
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// The largest datagram the path takes now (`None`: the peer accepts
    /// none). It follows the path MTU, so it can change during a session.
    pub fn max_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }

    /// Sends one datagram; refused with [`DatagramError::TooLarge`] (nothing
    /// sent) when it exceeds [`Datagrams::max_size`].
    pub fn send(&self, payload: &[u8]) -> Result<(), DatagramError> {
        let max = self.max_size().ok_or(DatagramError::Unsupported)?;
        if payload.len() > max {
            return Err(DatagramError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        self.conn.send_datagram(payload).map_err(|e| match e {
            SendDatagramError::TooLarge => DatagramError::TooLarge {
                size: payload.len(),
                max,
            },
            SendDatagramError::UnsupportedByPeer => DatagramError::Unsupported,
            _ => DatagramError::Closed,
        })
    }

    /// The next datagram received.
    pub async fn recv(&self) -> Result<Bytes, DatagramError> {
        self.conn
            .receive_datagram()
            .await
            .map(|d| d.payload())
            .map_err(|_| DatagramError::Closed)
    }
}
