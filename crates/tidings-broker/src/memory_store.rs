//! `MemoryStore`: the in-process `Store` (history that lives as long as the process), for tests and single nodes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tidings_protocol::{ChannelName, MessageId};
use tidings_runtime::BoxFuture;

use crate::store::{
    Appended, HistoryRange, NewMessage, Retention, Store, StoreError, StoredMessage,
};

/// Idempotency keys remembered per channel (the oldest are forgotten first).
const DEDUP_KEYS: usize = 4096;

#[derive(Default)]
struct Channel {
    seq: u64,
    messages: VecDeque<(Instant, StoredMessage)>,
    dedup: HashMap<Arc<str>, (u64, MessageId)>,
    dedup_order: VecDeque<Arc<str>>,
}

/// History in memory, with the same semantics as the durable stores
/// (idempotent appends, retention by count and age, explicit gaps).
#[derive(Default)]
pub struct MemoryStore {
    retention: Retention,
    channels: Mutex<HashMap<ChannelName, Channel>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store keeping what `retention` allows.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            channels: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelName, Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply_retention(&self, c: &mut Channel, now: Instant) -> u64 {
        let mut dropped = 0;
        if let Some(max) = self.retention.max_len {
            while c.messages.len() as u64 > max {
                c.messages.pop_front();
                dropped += 1;
            }
        }
        if let Some(age) = self.retention.max_age {
            while c
                .messages
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > age)
            {
                c.messages.pop_front();
                dropped += 1;
            }
        }
        dropped
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

impl Store for MemoryStore {
    fn append(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let now = Instant::now();
        let mut channels = self.lock();
        let c = channels.entry(channel.clone()).or_default();
        if let Some(key) = &message.dedup
            && let Some(&(seq, id)) = c.dedup.get(key)
        {
            return ready(Ok(Appended {
                seq,
                id,
                duplicate: true,
            }));
        }
        c.seq += 1;
        let seq = c.seq;
        if let Some(key) = message.dedup {
            if c.dedup_order.len() == DEDUP_KEYS
                && let Some(old) = c.dedup_order.pop_front()
            {
                c.dedup.remove(&old);
            }
            c.dedup.insert(key.clone(), (seq, message.id));
            c.dedup_order.push_back(key);
        }
        c.messages.push_back((
            now,
            StoredMessage {
                seq,
                id: message.id,
                payload: message.payload,
            },
        ));
        self.apply_retention(c, now);
        ready(Ok(Appended {
            seq,
            id: message.id,
            duplicate: false,
        }))
    }

    fn read_after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, StoreError>> {
        let now = Instant::now();
        let mut channels = self.lock();
        let Some(c) = channels.get_mut(channel) else {
            return ready(Ok(HistoryRange::default()));
        };
        self.apply_retention(c, now);
        let first_kept = c.messages.front().map_or(c.seq + 1, |(_, m)| m.seq);
        let gap = (after < c.seq && first_kept > after + 1).then(|| (after + 1, first_kept - 1));
        let messages = c
            .messages
            .iter()
            .filter(|(_, m)| m.seq > after)
            .take(limit)
            .map(|(_, m)| m.clone())
            .collect();
        ready(Ok(HistoryRange {
            gap,
            messages,
            last_seq: c.seq,
        }))
    }

    fn last_seq(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        ready(Ok(self.lock().get(channel).map_or(0, |c| c.seq)))
    }

    fn trim(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let now = Instant::now();
        let dropped = self
            .lock()
            .get_mut(channel)
            .map_or(0, |c| self.apply_retention(c, now));
        ready(Ok(dropped))
    }

    fn trim_through(
        &self,
        channel: &ChannelName,
        through: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let mut dropped = 0;
        if let Some(c) = self.lock().get_mut(channel) {
            while c.messages.front().is_some_and(|(_, m)| m.seq <= through) {
                c.messages.pop_front();
                dropped += 1;
            }
        }
        ready(Ok(dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn msg(n: u64, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: MessageId(n),
            dedup: key.map(Arc::from),
            payload: Bytes::from(n.to_string()),
        }
    }

    #[test]
    fn appends_are_numbered_once_per_key_and_retention_leaves_an_explicit_gap() {
        let store = MemoryStore::new(Retention::default().with_max_len(3));
        let ch = ChannelName::new("c").unwrap();
        for n in 1..=5 {
            let a = block_on(store.append(&ch, msg(n, Some(&format!("k{n}"))))).unwrap();
            assert_eq!((a.seq, a.duplicate), (n, false));
        }
        let again = block_on(store.append(&ch, msg(99, Some("k5")))).unwrap();
        assert_eq!(
            (again.seq, again.id, again.duplicate),
            (5, MessageId(5), true)
        );
        let r = block_on(store.read_after(&ch, 0, 100)).unwrap();
        assert_eq!(r.gap, Some((1, 2)));
        assert_eq!(
            r.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(r.last_seq, 5);
        let r = block_on(store.read_after(&ch, 3, 1)).unwrap();
        assert_eq!((r.gap, r.messages.len(), r.messages[0].seq), (None, 1, 4));
        assert_eq!(block_on(store.read_after(&ch, 5, 10)).unwrap().gap, None);
    }

    #[test]
    fn trim_through_drops_a_prefix_and_the_numbering_goes_on() {
        let store = MemoryStore::default();
        let ch = ChannelName::new("c").unwrap();
        for n in 1..=6 {
            block_on(store.append(&ch, msg(n, None))).unwrap();
        }
        assert_eq!(block_on(store.trim_through(&ch, 3)).unwrap(), 3);
        let r = block_on(store.read_after(&ch, 0, 10)).unwrap();
        assert_eq!((r.gap, r.messages.len(), r.last_seq), (Some((1, 3)), 3, 6));
        assert_eq!(block_on(store.trim_through(&ch, 99)).unwrap(), 3);
        assert_eq!(block_on(store.append(&ch, msg(7, None))).unwrap().seq, 7);
    }

    #[test]
    fn retention_by_age_drops_old_messages() {
        let store = MemoryStore::new(Retention::default().with_max_age(Duration::from_millis(20)));
        let ch = ChannelName::new("c").unwrap();
        block_on(store.append(&ch, msg(1, None))).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        block_on(store.append(&ch, msg(2, None))).unwrap();
        let r = block_on(store.read_after(&ch, 0, 10)).unwrap();
        assert_eq!((r.gap, r.messages.len()), (Some((1, 1)), 1));
        assert_eq!(block_on(store.last_seq(&ch)).unwrap(), 2);
    }
}
