//! Stream positions for peers that resume by frame number (SSE `Last-Event-ID`): which channel position each numbered frame carried.

use std::collections::VecDeque;

use crate::ids::{ChannelMap, ChannelName};

/// Where a server session's frames left each channel, by frame number.
///
/// A server session numbers the frames it hands out (1, 2, 3, … over its
/// whole life, across connections). Transports whose peer can only say "I
/// received every frame up to number `n`" (SSE: the `Last-Event-ID` is the
/// number of the last event) need that number mapped back to per-channel
/// positions: this log records, for every `Message`, `Gap` and `Subscribed`
/// frame handed out, `(frame number, channel, position after it)`.
///
/// Bounded: at most `cap` entries; the oldest are folded into a per-channel
/// floor that is valid for any `n` at or after the last evicted frame. Every
/// loss of detail makes [`FrameLog::positions_at`] answer *lower* positions,
/// never higher ones: the peer then gets duplicates (dropped by sequence
/// number) or an explicit gap, never a silent hole. Acknowledged entries leave
/// as soon as they reach the front (the acknowledgement itself is a position).
#[derive(Debug)]
pub(crate) struct FrameLog {
    entries: VecDeque<(u64, ChannelName, u64)>,
    cap: usize,
    /// Highest frame number evicted by the cap (0: none).
    evicted_through: u64,
    /// Highest position per channel among evicted entries.
    floor: ChannelMap<u64>,
    /// Cumulative acknowledgements from the peer (valid whatever `n`).
    acked: ChannelMap<u64>,
}

impl FrameLog {
    /// An empty log keeping at most `cap` entries (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            cap: cap.max(1),
            evicted_through: 0,
            floor: ChannelMap::default(),
            acked: ChannelMap::default(),
        }
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Frame number `frame` (increasing) moved `channel` to `seq`.
    pub(crate) fn record(&mut self, frame: u64, channel: ChannelName, seq: u64) {
        self.entries.push_back((frame, channel, seq));
        while self.entries.len() > self.cap {
            let Some((f, c, s)) = self.entries.pop_front() else {
                break;
            };
            self.evicted_through = f;
            let e = self.floor.entry(c).or_insert(0);
            *e = (*e).max(s);
        }
    }

    /// The peer acknowledged every message of `channel` up to `seq`.
    pub(crate) fn ack(&mut self, channel: &ChannelName, seq: u64) {
        match self.acked.get_mut(channel) {
            Some(a) if *a >= seq => return,
            Some(a) => *a = seq,
            None => {
                self.acked.insert(channel.clone(), seq);
            }
        }
        while let Some((_, c, s)) = self.entries.front() {
            if self.acked.get(c).is_none_or(|a| s > a) {
                break;
            }
            self.entries.pop_front();
        }
    }

    /// Forgets `channel` (unsubscribed): a later subscription starts over.
    pub(crate) fn remove(&mut self, channel: &ChannelName) {
        self.entries.retain(|(_, c, _)| c != channel);
        self.floor.remove(channel);
        self.acked.remove(channel);
    }

    /// The peer resumes from `frame`: frames after it never reached it (they
    /// are re-sent under new numbers), so their entries go.
    pub(crate) fn truncate_after(&mut self, frame: u64) {
        while self.entries.back().is_some_and(|(f, _, _)| *f > frame) {
            self.entries.pop_back();
        }
        if frame < self.evicted_through {
            // The floor may hold positions of frames after `frame`: it no longer
            // says anything certain. Dropping it only lowers positions.
            self.floor.clear();
        }
    }

    /// Position per channel of a peer that received every frame up to `frame`.
    /// Channels it has no known position on are absent.
    pub(crate) fn positions_at(&self, frame: u64) -> ChannelMap<u64> {
        let mut out = if frame >= self.evicted_through {
            self.floor.clone()
        } else {
            ChannelMap::default()
        };
        let mut raise = |c: &ChannelName, s: u64| match out.get_mut(c) {
            Some(p) => *p = (*p).max(s),
            None => {
                out.insert(c.clone(), s);
            }
        };
        for (f, c, s) in &self.entries {
            if *f > frame {
                break;
            }
            raise(c, *s);
        }
        for (c, a) in &self.acked {
            raise(c, *a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(n: &str) -> ChannelName {
        ChannelName::new(n).unwrap()
    }

    fn at(log: &FrameLog, frame: u64, channel: &str) -> Option<u64> {
        log.positions_at(frame).get(&ch(channel)).copied()
    }

    #[test]
    fn positions_follow_frame_numbers() {
        let mut log = FrameLog::new(100);
        log.record(2, ch("a"), 0); // subscribed a at 0
        log.record(3, ch("a"), 1);
        log.record(4, ch("b"), 7); // subscribed b at 7
        log.record(5, ch("a"), 2);
        assert_eq!(at(&log, 1, "a"), None);
        assert_eq!(at(&log, 2, "a"), Some(0));
        assert_eq!(at(&log, 4, "a"), Some(1));
        assert_eq!(at(&log, 4, "b"), Some(7));
        assert_eq!(at(&log, 3, "b"), None);
        assert_eq!(at(&log, 99, "a"), Some(2));
    }

    #[test]
    fn truncation_forgets_frames_never_received() {
        let mut log = FrameLog::new(100);
        for f in 1..=10 {
            log.record(f, ch("a"), f);
        }
        log.truncate_after(4);
        assert_eq!(log.len(), 4);
        // The same messages go out again under new numbers.
        log.record(11, ch("a"), 5);
        assert_eq!(at(&log, 10, "a"), Some(4), "frames 5..=10 were dropped");
        assert_eq!(at(&log, 11, "a"), Some(5));
    }

    #[test]
    fn eviction_folds_into_a_floor_valid_after_it() {
        let mut log = FrameLog::new(3);
        for f in 1..=6 {
            log.record(f, ch("a"), f * 10);
        }
        assert_eq!(log.len(), 3);
        // Frames 1..=3 were evicted: exact from frame 3 on...
        assert_eq!(at(&log, 3, "a"), Some(30));
        assert_eq!(at(&log, 5, "a"), Some(50));
        // ...and unknown (never guessed high) before it.
        assert_eq!(at(&log, 2, "a"), None);
    }

    #[test]
    fn acks_are_positions_and_prune_the_front() {
        let mut log = FrameLog::new(100);
        for f in 1..=5 {
            log.record(f, ch("a"), f);
        }
        log.record(6, ch("b"), 1);
        log.ack(&ch("a"), 3);
        assert_eq!(log.len(), 3);
        assert_eq!(at(&log, 0, "a"), Some(3), "an ack holds whatever the frame");
        assert_eq!(at(&log, 5, "a"), Some(5));
        log.ack(&ch("a"), 5);
        assert_eq!(log.len(), 1, "only b's entry is left");
        log.ack(&ch("a"), 2);
        assert_eq!(at(&log, 0, "a"), Some(5), "acks never go back");
    }

    #[test]
    fn truncating_before_the_floor_drops_it() {
        let mut log = FrameLog::new(2);
        for f in 1..=4 {
            log.record(f, ch("a"), f);
        }
        log.truncate_after(1);
        assert_eq!(log.len(), 0);
        log.record(5, ch("a"), 2);
        assert_eq!(at(&log, 4, "a"), None, "frames 2..=4 were not received");
        assert_eq!(at(&log, 5, "a"), Some(2));
    }

    #[test]
    fn remove_forgets_a_channel() {
        let mut log = FrameLog::new(100);
        log.record(1, ch("a"), 1);
        log.record(2, ch("b"), 1);
        log.ack(&ch("a"), 1);
        log.remove(&ch("a"));
        assert_eq!(at(&log, 9, "a"), None);
        assert_eq!(at(&log, 9, "b"), Some(1));
    }
}
