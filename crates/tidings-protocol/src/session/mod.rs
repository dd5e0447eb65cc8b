//! Client and server session state machines, plus helpers they share.

pub(crate) mod client;
pub(crate) mod server;

use std::time::Duration;

use bytes::Bytes;

use crate::codec::FrameCodec;
use crate::error::ProtocolError;
use crate::frame::Frame;
use web_time::Instant;

/// Decodes one received frame after checking its size.
pub(crate) fn decode_checked(
    codec: &dyn FrameCodec,
    input: &Bytes,
    max: usize,
) -> Result<Frame, ProtocolError> {
    if input.len() > max {
        return Err(ProtocolError::FrameTooLarge {
            size: input.len(),
            max,
        });
    }
    Ok(codec.decode(input)?)
}

/// Batches acknowledgements: flush after `every` items or `delay` after the first.
#[derive(Debug)]
pub(crate) struct AckBatch {
    every: u32,
    delay: Duration,
    pending: u32,
    due: Option<Instant>,
}

impl AckBatch {
    pub(crate) fn new(every: u32, delay: Duration) -> Self {
        Self {
            every: every.max(1),
            delay,
            pending: 0,
            due: None,
        }
    }

    /// Notes one item to acknowledge; true when the batch should be flushed now.
    pub(crate) fn note(&mut self, now: Instant) -> bool {
        self.pending += 1;
        if self.due.is_none() {
            self.due = Some(now + self.delay);
        }
        self.pending >= self.every
    }

    /// True when a flush is due at `now`.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| now >= d)
    }

    /// True when the batch is at least half its delay old at `now`: old
    /// enough to ride along with a frame going out anyway, so that the timer
    /// rarely has to send it on its own.
    pub(crate) fn is_ripe(&self, now: Instant) -> bool {
        self.due.is_some_and(|d| now + self.delay / 2 >= d)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.due
    }

    pub(crate) fn clear(&mut self) {
        self.pending = 0;
        self.due = None;
    }
}

/// Earliest of optional deadlines.
pub(crate) fn earliest(items: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    items.into_iter().flatten().min()
}
