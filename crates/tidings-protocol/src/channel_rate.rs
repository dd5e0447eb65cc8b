//! `ChannelRate`: publish rate limits for the channels matching a pattern, per session and per channel (one bucket shared by every publisher), and the bounded bucket tables behind them.

use std::sync::{Arc, Mutex};

use web_time::Instant;

use crate::ids::{ChannelMap, ChannelName};
use crate::rate::{Bucket, RateLimit};

/// Most channel-wide buckets kept per rule. Past it, buckets that refilled
/// (a full bucket is the same as a new one) are forgotten; if every one is
/// still in use, the channels past the cap share one overflow bucket of the
/// rule (stricter, never looser).
pub(crate) const MAX_SHARED_BUCKETS: usize = 4096;

/// Most per-session buckets a session keeps (one per channel it publishes on
/// under a rule). Past it, refilled ones are forgotten, then the oldest.
pub(crate) const MAX_SESSION_BUCKETS: usize = 64;

/// Publish limits on the channels matching a pattern: `room:lobby` (exactly
/// that channel), `room:*` (every channel starting with `room:`), `*` (every
/// channel). A publish over a limit is refused by name with `rate_limited`
/// (docs/protocol.md §6); the session goes on. The first rule whose pattern
/// matches a channel is the one that applies.
///
/// ```
/// use tidings_protocol::{ChannelRate, RateLimit, ServerConfig};
/// let config = ServerConfig::default().with_channel_rate(
///     ChannelRate::new("chat:*")
///         // each session: 5 publishes/s per chat channel, 10 at once
///         .per_session(RateLimit { per_second: 5, burst: 10 })
///         // every publisher of one chat channel together: 100/s
///         .per_channel(RateLimit { per_second: 100, burst: 200 }),
/// );
/// assert_eq!(config.channel_rates.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct ChannelRate {
    pattern: Pattern,
    per_session: Option<RateLimit>,
    per_channel: Option<RateLimit>,
    /// Channel-wide buckets, shared by every session of the configuration
    /// (and its clones).
    shared: Arc<Mutex<SharedBuckets>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl Pattern {
    fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::Exact(c) => &**c == channel,
            Pattern::Prefix(p) => channel.starts_with(&**p),
        }
    }
}

#[derive(Debug, Default)]
struct SharedBuckets {
    by_channel: ChannelMap<Bucket>,
    overflow: Option<Bucket>,
}

impl ChannelRate {
    /// A rule for the channels matching `pattern` (no limit until
    /// [`Self::per_session`] or [`Self::per_channel`] sets one).
    pub fn new(pattern: &str) -> Self {
        let pattern = match pattern.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.into()),
            None => Pattern::Exact(pattern.into()),
        };
        Self {
            pattern,
            per_session: None,
            per_channel: None,
            shared: Arc::default(),
        }
    }

    /// Each session may publish `limit` on each matching channel.
    pub fn per_session(mut self, limit: RateLimit) -> Self {
        self.per_session = Some(limit);
        self
    }

    /// All publishers of one matching channel together may publish `limit`
    /// (one bucket per channel, shared by every session of the hub).
    pub fn per_channel(mut self, limit: RateLimit) -> Self {
        self.per_channel = Some(limit);
        self
    }

    /// Whether the rule applies to `channel`.
    pub fn matches(&self, channel: &str) -> bool {
        self.pattern.matches(channel)
    }

    /// Takes a token from the channel-wide bucket of `channel`.
    fn take_shared(&self, channel: &ChannelName, now: Instant) -> bool {
        let Some(limit) = self.per_channel else {
            return true;
        };
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if !shared.by_channel.contains_key(channel) && shared.by_channel.len() >= MAX_SHARED_BUCKETS
        {
            shared.by_channel.retain(|_, b| !b.is_full(now));
            if shared.by_channel.len() >= MAX_SHARED_BUCKETS {
                return shared
                    .overflow
                    .get_or_insert_with(|| Bucket::new(limit, now))
                    .take(now);
            }
        }
        shared
            .by_channel
            .entry(channel.clone())
            .or_insert_with(|| Bucket::new(limit, now))
            .take(now)
    }
}

/// A session's own buckets for the rules with a per-session limit, one per
/// channel it published on (bounded by [`MAX_SESSION_BUCKETS`]).
#[derive(Debug, Default)]
pub(crate) struct SessionBuckets {
    /// (rule index, channel, bucket), oldest first.
    buckets: Vec<(usize, ChannelName, Bucket)>,
}

impl SessionBuckets {
    fn take(&mut self, rule: usize, limit: RateLimit, channel: &ChannelName, now: Instant) -> bool {
        if let Some((_, _, b)) = self
            .buckets
            .iter_mut()
            .find(|(r, c, _)| *r == rule && c == channel)
        {
            return b.take(now);
        }
        if self.buckets.len() >= MAX_SESSION_BUCKETS {
            self.buckets.retain(|(_, _, b)| !b.is_full(now));
            if self.buckets.len() >= MAX_SESSION_BUCKETS {
                self.buckets.remove(0);
            }
        }
        let mut bucket = Bucket::new(limit, now);
        let ok = bucket.take(now);
        self.buckets.push((rule, channel.clone(), bucket));
        ok
    }
}

/// What [`admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within the limits (or no rule matches).
    Yes,
    /// Over the session's own limit on the channel.
    SessionLimit,
    /// Over the channel's limit for all its publishers together.
    ChannelLimit,
}

/// Whether a publish on `channel` is within the first matching rule of
/// `rules` (its per-session bucket in `mine`, then its channel-wide one).
pub(crate) fn admit(
    rules: &[ChannelRate],
    mine: &mut Option<Box<SessionBuckets>>,
    channel: &ChannelName,
    now: Instant,
) -> Admit {
    let Some((i, rule)) = rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(channel.as_str()))
    else {
        return Admit::Yes;
    };
    if let Some(limit) = rule.per_session
        && !mine
            .get_or_insert_with(Default::default)
            .take(i, limit, channel, now)
    {
        return Admit::SessionLimit;
    }
    if rule.take_shared(channel, now) {
        Admit::Yes
    } else {
        Admit::ChannelLimit
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::new(s).expect("channel")
    }

    #[test]
    fn per_session_buckets_are_per_channel_and_the_shared_one_counts_everyone() {
        let t0 = Instant::now();
        let rules = [ChannelRate::new("chat:*")
            .per_session(RateLimit {
                per_second: 1,
                burst: 2,
            })
            .per_channel(RateLimit {
                per_second: 1,
                burst: 3,
            })];
        let (mut a, mut b) = (None, None);
        let lobby = ch("chat:lobby");
        assert_eq!(Admit::Yes, admit(&rules, &mut a, &lobby, t0));
        assert_eq!(Admit::Yes, admit(&rules, &mut a, &lobby, t0));
        assert_ne!(
            Admit::Yes,
            admit(&rules, &mut a, &lobby, t0),
            "a's burst of 2"
        );
        assert_eq!(
            Admit::Yes,
            admit(&rules, &mut b, &lobby, t0),
            "b has its own bucket"
        );
        assert_ne!(
            Admit::Yes,
            admit(&rules, &mut b, &lobby, t0),
            "the channel's 3 are used"
        );
        assert_eq!(
            Admit::Yes,
            admit(&rules, &mut a, &ch("chat:other"), t0),
            "another channel"
        );
        assert_eq!(
            Admit::Yes,
            admit(&rules, &mut a, &ch("news"), t0),
            "no rule: no limit"
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(Admit::Yes, admit(&rules, &mut b, &lobby, later), "refilled");
    }

    #[test]
    fn bucket_tables_stay_bounded() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 1,
            burst: 1,
        };
        let rules = [ChannelRate::new("*").per_session(limit).per_channel(limit)];
        let mut mine = None;
        for i in 0..MAX_SHARED_BUCKETS {
            assert_eq!(
                Admit::Yes,
                admit(&rules, &mut mine, &ch(&format!("c{i}")), t0)
            );
        }
        // Every bucket is in use: the channels past the cap share one.
        assert_eq!(Admit::Yes, admit(&rules, &mut mine, &ch("past-1"), t0));
        assert_ne!(
            Admit::Yes,
            admit(&rules, &mut mine, &ch("past-2"), t0),
            "stricter, never looser"
        );
        let shared = rules[0].shared.lock().expect("lock");
        assert!(shared.by_channel.len() <= MAX_SHARED_BUCKETS);
        assert!(mine.expect("buckets").buckets.len() <= MAX_SESSION_BUCKETS);
    }
}
