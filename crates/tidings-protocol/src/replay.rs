//! Server side of resume: a bounded per-session buffer of sent, not yet acknowledged messages.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::few_map::FewMap;
use crate::ids::ChannelName;
use crate::message::SharedMessage;

/// Bookkeeping bytes charged per buffered message on top of its payload.
pub(crate) const ENTRY_OVERHEAD: usize = 64;

fn cost(m: &SharedMessage) -> usize {
    m.message().payload.len() + ENTRY_OVERHEAD
}

/// Sent-but-unacknowledged messages of one session, bounded in bytes
/// (payload plus a fixed per-entry overhead).
///
/// One queue in delivery order for all channels: pushing costs no hashing
/// (fan-out calls it for every receiver), eviction takes the oldest entry.
/// Acknowledged entries leave as soon as they reach the front. Messages are
/// kept as shared [`SharedMessage`]s, so a client that resumes with another
/// codec still gets correctly encoded frames. Evicted, unacknowledged entries
/// are remembered per channel, so a later resume reports an explicit gap
/// instead of a silent hole.
#[derive(Debug)]
pub struct ReplayBuffer {
    /// Only pointers: a detached session buffering for its resume may hold
    /// thousands (every message of its channels while it is away), so what
    /// an acknowledgement reads (channel, seq, cost) is not copied in here,
    /// though the messages are cold cache lines by then.
    entries: VecDeque<Arc<SharedMessage>>,
    /// Cumulative acknowledgement per channel.
    acked: FewMap<u64>,
    /// Highest sequence number evicted unacknowledged, per channel.
    evicted: FewMap<u64>,
    bytes: usize,
    budget: usize,
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
            entries: VecDeque::new(),
            acked: FewMap::default(),
            evicted: FewMap::default(),
            bytes: 0,
            budget,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn is_acked(&self, m: &SharedMessage) -> bool {
        self.acked.get(m.channel()).is_some_and(|a| m.seq() <= *a)
    }

    /// Records a sent message.
    pub fn push(&mut self, message: Arc<SharedMessage>) {
        self.bytes += cost(&message);
        self.entries.push_back(message);
        while self.bytes > self.budget {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= cost(&oldest);
            if !self.is_acked(&oldest) {
                let e = self.evicted.get_or_insert_with(oldest.channel(), || 0);
                *e = (*e).max(oldest.seq());
            }
        }
    }

    /// Drops acknowledged entries from the front. `hint` is a channel whose
    /// acknowledgement is known (the one just acknowledged): the usual front
    /// entry belongs to it, and needs no map lookup.
    fn pop_acked_front(&mut self, hint: (&ChannelName, u64)) {
        while let Some(front) = self.entries.front() {
            let acked = if front.channel() == hint.0 {
                front.seq() <= hint.1
            } else {
                self.is_acked(front)
            };
            if !acked {
                break;
            }
            self.bytes -= cost(front);
            self.entries.pop_front();
        }
    }

    /// Drops every message of `channel` up to `seq` (the peer has it).
    pub fn ack(&mut self, channel: &ChannelName, seq: u64) {
        match self.acked.get_mut(channel) {
            Some(a) if *a >= seq => return,
            Some(a) => *a = seq,
            None => {
                self.acked.insert(channel.clone(), seq);
            }
        }
        self.pop_acked_front((channel, seq));
    }

    /// Forgets a channel entirely.
    pub fn remove(&mut self, channel: &ChannelName) {
        let mut freed = 0;
        self.entries.retain(|m| {
            let keep = m.channel() != channel;
            if !keep {
                freed += cost(m);
            }
            keep
        });
        self.bytes -= freed;
        self.acked.remove(channel);
        self.evicted.remove(channel);
    }

    /// What to re-send to a peer whose last received sequence on `channel` is `after`.
    pub fn replay(&mut self, channel: &ChannelName, after: u64) -> Replay {
        self.ack(channel, after);
        let messages: Vec<Arc<SharedMessage>> = self
            .entries
            .iter()
            .filter(|m| m.channel() == channel && m.seq() > after)
            .cloned()
            .collect();
        let evicted = self.evicted.get(channel).copied().unwrap_or(0);
        let gap_end = match messages.first().map(|m| m.seq()) {
            Some(first) if first > after + 1 => Some(first - 1),
            None if evicted > after => Some(evicted),
            _ => None,
        };
        Replay {
            gap: gap_end.map(|to| (after + 1, to)),
            messages,
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
