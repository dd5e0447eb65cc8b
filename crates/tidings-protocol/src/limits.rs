//! Protocol limits shared by client and server sessions.

/// Limits that bound memory per connection. Exceeding one gives a typed error
/// (and an `Error` frame to the peer), never unbounded growth.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest encoded frame accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Most bytes queued for sending on one connection (transmit queue; on the
    /// client also the not-yet-acknowledged publishes).
    pub max_queued_bytes: usize,
    /// Most channels one session may subscribe to.
    pub max_subscriptions: usize,
    /// Bytes of sent-but-unacknowledged messages a server session keeps for resume.
    pub replay_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            max_queued_bytes: 4 << 20,
            max_subscriptions: 1024,
            replay_buffer_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_frame_bytes`].
    pub fn with_max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Sets [`Limits::max_queued_bytes`].
    pub fn with_max_queued_bytes(mut self, n: usize) -> Self {
        self.max_queued_bytes = n;
        self
    }

    /// Sets [`Limits::max_subscriptions`].
    pub fn with_max_subscriptions(mut self, n: usize) -> Self {
        self.max_subscriptions = n;
        self
    }

    /// Sets [`Limits::replay_buffer_bytes`].
    pub fn with_replay_buffer_bytes(mut self, n: usize) -> Self {
        self.replay_buffer_bytes = n;
        self
    }
}
