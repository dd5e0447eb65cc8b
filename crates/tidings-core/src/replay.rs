//! Server side of resume: a bounded per-session buffer of sent, not yet acknowledged messages.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::ids::ChannelName;
use crate::message::SharedMessage;

/// Bookkeeping bytes charged per buffered message on top of its payload.
const ENTRY_OVERHEAD: usize = 64;

fn cost(m: &SharedMessage) -> usize {
    m.message().payload.len() + ENTRY_OVERHEAD
}

#[derive(Debug, Default)]
struct ChannelLog {
    entries: VecDeque<(u64, u64, Arc<SharedMessage>)>, // (seq, global order, message)
    /// Highest sequence number evicted unacknowledged (lost for resume).
    evicted_through: u64,
    acked: u64,
}

/// Sent-but-unacknowledged messages of one session, bounded in bytes
/// (payload plus a fixed per-entry overhead).
///
/// Messages are kept as shared [`SharedMessage`]s, so a client that resumes with
/// another codec still gets correctly encoded frames.
///
/// When the budget is exceeded the oldest entry (across channels) is evicted
/// and remembered, so a later resume reports an explicit gap instead of a
/// silent hole.
#[derive(Debug)]
pub struct ReplayBuffer {
    channels: HashMap<ChannelName, ChannelLog>,
    bytes: usize,
    budget: usize,
    order: u64,
}

/// What a resume from a position yields for one channel.
#[derive(Debug, Default)]
pub struct Replay {
    /// Messages `from..=to` are lost.
    pub gap: Option<(u64, u64)>,
    /// Messages to re-send, in order.
    pub messages: Vec<Arc<SharedMessage>>,
}

impl ReplayBuffer {
    /// An empty buffer holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            channels: HashMap::new(),
            bytes: 0,
            budget,
            order: 0,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records a sent message.
    pub fn push(&mut self, message: Arc<SharedMessage>) {
        self.order += 1;
        self.bytes += cost(&message);
        let log = self.channels.entry(message.channel().clone()).or_default();
        log.entries.push_back((message.seq(), self.order, message));
        while self.bytes > self.budget {
            if !self.evict_oldest() {
                break;
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .channels
            .iter()
            .filter_map(|(name, log)| log.entries.front().map(|e| (e.1, name.clone())))
            .min_by_key(|(order, _)| *order);
        let Some((_, name)) = oldest else {
            return false;
        };
        let Some(log) = self.channels.get_mut(&name) else {
            return false;
        };
        if let Some((seq, _, m)) = log.entries.pop_front() {
            self.bytes -= cost(&m);
            log.evicted_through = log.evicted_through.max(seq);
        }
        true
    }

    /// Drops every message of `channel` up to `seq` (the peer has it).
    pub fn ack(&mut self, channel: &ChannelName, seq: u64) {
        let Some(log) = self.channels.get_mut(channel) else {
            return;
        };
        log.acked = log.acked.max(seq);
        while log.entries.front().is_some_and(|e| e.0 <= seq) {
            if let Some((_, _, m)) = log.entries.pop_front() {
                self.bytes -= cost(&m);
            }
        }
    }

    /// Forgets a channel entirely.
    pub fn remove(&mut self, channel: &ChannelName) {
        if let Some(log) = self.channels.remove(channel) {
            self.bytes -= log.entries.iter().map(|e| cost(&e.2)).sum::<usize>();
        }
    }

    /// What to re-send to a peer whose last received sequence on `channel` is `after`.
    pub fn replay(&mut self, channel: &ChannelName, after: u64) -> Replay {
        self.ack(channel, after);
        let Some(log) = self.channels.get(channel) else {
            return Replay::default();
        };
        let first_kept = log.entries.front().map(|e| e.0);
        let gap_end = match first_kept {
            Some(first) if first > after + 1 => Some(first - 1),
            None if log.evicted_through > after => Some(log.evicted_through),
            _ => None,
        };
        Replay {
            gap: gap_end.map(|to| (after + 1, to)),
            messages: log.entries.iter().map(|e| e.2.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use bytes::Bytes;

    fn ch(n: &str) -> ChannelName {
        ChannelName::new(n).unwrap()
    }

    fn msg(c: &str, seq: u64, len: usize) -> Arc<SharedMessage> {
        Arc::new(SharedMessage::new(
            ch(c),
            seq,
            MessageId(seq),
            Bytes::from(vec![seq as u8; len]),
        ))
    }

    #[test]
    fn replays_unacked_in_order() {
        let mut r = ReplayBuffer::new(1000);
        for s in 1..=5 {
            r.push(msg("a", s, 10));
        }
        r.ack(&ch("a"), 2);
        let out = r.replay(&ch("a"), 3);
        assert_eq!(out.gap, None);
        assert_eq!(out.messages.len(), 2);
        assert_eq!(out.messages[0].seq(), 4);
        assert_eq!(r.bytes(), 2 * (10 + ENTRY_OVERHEAD));
    }

    #[test]
    fn eviction_becomes_explicit_gap() {
        let mut r = ReplayBuffer::new(3 * (10 + ENTRY_OVERHEAD));
        for s in 1..=5 {
            r.push(msg("a", s, 10));
        }
        assert_eq!(r.bytes(), 3 * (10 + ENTRY_OVERHEAD));
        let out = r.replay(&ch("a"), 0);
        assert_eq!(out.gap, Some((1, 2)));
        assert_eq!(out.messages.len(), 3);
    }

    #[test]
    fn everything_evicted_is_still_a_gap() {
        let mut r = ReplayBuffer::new(10 + ENTRY_OVERHEAD);
        r.push(msg("a", 1, 10));
        r.push(msg("b", 1, 10));
        let out = r.replay(&ch("a"), 0);
        assert_eq!(out.gap, Some((1, 1)));
        assert!(out.messages.is_empty());
        assert_eq!(r.replay(&ch("b"), 0).messages.len(), 1);
    }
}
