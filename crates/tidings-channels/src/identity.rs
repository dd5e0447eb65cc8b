//! `Identity`: who a connection is (as the integration's authentication established it) and which channels it may subscribe to and publish on.

use std::sync::Arc;
use std::time::SystemTime;

use tidings_protocol::{ChannelGuard, ChannelName};

/// Channel patterns: `room:lobby` (exactly that channel), `room:*` (every
/// channel starting with `room:`), `*` (every channel). `{sub}` in a pattern
/// stands for the identity's subject, so `user:{sub}` grants each user their
/// own channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelGrants {
    subscribe: Vec<Pattern>,
    publish: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(Box<str>),
    Prefix(Box<str>),
}

impl Pattern {
    fn new(pattern: &str, subject: &str) -> Self {
        let p = pattern.replace("{sub}", subject);
        match p.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.into()),
            None => Pattern::Exact(p.into()),
        }
    }

    fn matches(&self, channel: &str) -> bool {
        match self {
            Pattern::Exact(c) => &**c == channel,
            Pattern::Prefix(p) => channel.starts_with(&**p),
        }
    }
}

impl ChannelGrants {
    /// Every channel, both ways.
    pub fn all() -> Self {
        Self::default().subscribe("*").publish("*")
    }

    /// Nothing: add patterns with [`ChannelGrants::subscribe`] / [`ChannelGrants::publish`].
    pub fn none() -> Self {
        Self::default()
    }

    /// Also allows subscribing to channels matching `pattern`.
    pub fn subscribe(mut self, pattern: &str) -> Self {
        self.subscribe.push(Pattern::new(pattern, ""));
        self
    }

    /// Also allows publishing on channels matching `pattern`.
    pub fn publish(mut self, pattern: &str) -> Self {
        self.publish.push(Pattern::new(pattern, ""));
        self
    }

    /// Grants from pattern lists (a token's claims, say), `{sub}` read as `subject`.
    pub fn from_patterns<S: AsRef<str>>(subject: &str, subscribe: &[S], publish: &[S]) -> Self {
        Self {
            subscribe: subscribe
                .iter()
                .map(|p| Pattern::new(p.as_ref(), subject))
                .collect(),
            publish: publish
                .iter()
                .map(|p| Pattern::new(p.as_ref(), subject))
                .collect(),
        }
    }

    /// Whether subscribing to `channel` is allowed.
    pub fn may_subscribe(&self, channel: &str) -> bool {
        self.subscribe.iter().any(|p| p.matches(channel))
    }

    /// Whether publishing on `channel` is allowed.
    pub fn may_publish(&self, channel: &str) -> bool {
        self.publish.iter().any(|p| p.matches(channel))
    }
}

/// An authenticated connection: its subject (a user id), what it may do on
/// which channels, and when its credentials expire. The hub binds a session
/// to the identity that opened it: resuming it needs the same subject.
///
/// ```
/// use tidings_channels::{ChannelGrants, Identity};
/// let alice = Identity::new("alice")
///     .with_grants(ChannelGrants::none().subscribe("room:*").subscribe("user:alice").publish("room:*"));
/// assert!(alice.grants().may_subscribe("user:alice"));
/// assert!(!alice.grants().may_subscribe("user:bob"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    subject: Arc<str>,
    grants: ChannelGrants,
    expires: Option<SystemTime>,
}

impl Identity {
    /// `subject`, allowed every channel both ways, credentials without expiry.
    pub fn new(subject: impl Into<Arc<str>>) -> Self {
        Self {
            subject: subject.into(),
            grants: ChannelGrants::all(),
            expires: None,
        }
    }

    /// Restricts the channels to `grants`.
    pub fn with_grants(mut self, grants: ChannelGrants) -> Self {
        self.grants = grants;
        self
    }

    /// The credentials expire at `at`: the session ends then (close `4007`).
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// The subject (user id).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// What it may do on which channels.
    pub fn grants(&self) -> &ChannelGrants {
        &self.grants
    }

    /// When its credentials expire.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }
}

/// The guard a session of `identity` runs with.
#[derive(Debug)]
pub(crate) struct IdentityGuard(pub(crate) ChannelGrants);

impl ChannelGuard for IdentityGuard {
    fn may_subscribe(&self, channel: &ChannelName) -> bool {
        self.0.may_subscribe(channel.as_str())
    }

    fn may_publish(&self, channel: &ChannelName) -> bool {
        self.0.may_publish(channel.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_by_prefix_or_everything() {
        let g = ChannelGrants::from_patterns("ann", &["room:*", "user:{sub}"], &["*"]);
        assert!(g.may_subscribe("room:lobby"));
        assert!(g.may_subscribe("user:ann"));
        assert!(!g.may_subscribe("user:annie"), "exact, not a prefix");
        assert!(!g.may_subscribe("user:bob"));
        assert!(g.may_publish("anything"));
        assert!(!ChannelGrants::none().may_publish("room:lobby"));
    }
}
