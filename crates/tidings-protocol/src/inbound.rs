//! Receiver side of per-channel sequencing: duplicate drop and gap detection.

use crate::ids::{ChannelMap, ChannelName};

/// What to do with a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Next in order: deliver it.
    Deliver,
    /// Already seen: drop it silently (it is a resend).
    Duplicate,
    /// Messages `from..=to` were skipped: report the gap, then deliver this one.
    Gap {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
}

/// Last sequence number seen per channel.
///
/// ```
/// use tidings_protocol::{ChannelName, Inbound, InboundTracker};
/// let ch = ChannelName::new("c").unwrap();
/// let mut t = InboundTracker::default();
/// assert_eq!(t.accept(&ch, 1), Inbound::Deliver);
/// assert_eq!(t.accept(&ch, 1), Inbound::Duplicate);
/// assert_eq!(t.accept(&ch, 4), Inbound::Gap { from: 2, to: 3 });
/// ```
#[derive(Clone, Debug, Default)]
pub struct InboundTracker {
    last: ChannelMap<u64>,
}

impl InboundTracker {
    /// Classifies message `seq` of `channel` and records it when it is new.
    pub fn accept(&mut self, channel: &ChannelName, seq: u64) -> Inbound {
        let last = self.last.entry(channel.clone()).or_insert(0);
        if seq <= *last {
            return Inbound::Duplicate;
        }
        let verdict = if seq == *last + 1 {
            Inbound::Deliver
        } else {
            Inbound::Gap {
                from: *last + 1,
                to: seq - 1,
            }
        };
        *last = seq;
        verdict
    }

    /// Sets the position of a channel (after `Subscribed` or an explicit gap).
    pub fn set(&mut self, channel: &ChannelName, seq: u64) {
        self.last.insert(channel.clone(), seq);
    }

    /// Moves the position forward to `seq` if it is behind.
    pub fn advance(&mut self, channel: &ChannelName, seq: u64) {
        let last = self.last.entry(channel.clone()).or_insert(0);
        *last = (*last).max(seq);
    }

    /// The last sequence number seen on `channel`, if it is tracked.
    pub fn position(&self, channel: &ChannelName) -> Option<u64> {
        self.last.get(channel).copied()
    }

    /// Forgets a channel.
    pub fn remove(&mut self, channel: &ChannelName) {
        self.last.remove(channel);
    }

    /// Every tracked channel and its position.
    pub fn positions(&self) -> impl Iterator<Item = (&ChannelName, u64)> {
        self.last.iter().map(|(c, s)| (c, *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_arrival_order_delivers_each_seq_at_most_once(seqs in proptest::collection::vec(1u64..200, 0..400)) {
            let ch = ChannelName::new("c").unwrap();
            let mut t = InboundTracker::default();
            let mut delivered = Vec::new();
            for s in seqs {
                match t.accept(&ch, s) {
                    Inbound::Deliver | Inbound::Gap { .. } => delivered.push(s),
                    Inbound::Duplicate => {}
                }
            }
            prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
