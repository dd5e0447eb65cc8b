//! `HubExtension`: what a service built on the hub (presence, say) sees of its sessions — their lifecycle, their subscriptions — and the virtual channels it serves itself.

use std::sync::Arc;

use bytes::Bytes;
use tidings_broker::{BrokerError, Delivery, SubscriberId, Subscription};
use tidings_protocol::{ChannelGuard, ChannelName, ErrorCode, SessionId};

use crate::identity::ChannelGrants;

/// One session, as an extension sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionInfo {
    /// The session's id (stable across its reconnects on this node).
    pub id: SessionId,
    /// The authenticated subject that owns it (`None`: anonymous).
    pub owner: Option<Arc<str>>,
}

impl SessionInfo {
    /// Who this session is for counting people: its owner's subject, or the
    /// session id of an anonymous session.
    pub fn key(&self) -> &str {
        self.owner.as_deref().unwrap_or(self.id.0.as_str())
    }
}

/// Who may subscribe to a channel an extension [owns](HubExtension::owns).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeRule {
    /// Whoever the identity's grants allow on the channel itself.
    Grants,
    /// Whoever may subscribe to this other channel (a room's presence is
    /// visible to those who may be in the room).
    SameAs(ChannelName),
    /// Nobody: the channel is internal (`forbidden`).
    Nobody,
}

/// Why an extension refused a client's publish on a channel it owns: the
/// client gets the publish refused by name with this code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    /// The wire error code (`malformed_frame`, `frame_too_large`, `forbidden`...).
    pub code: ErrorCode,
    /// What the client should know (what was wrong, what to do).
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Hooks a service plugs into a [`crate::Hub`] with [`crate::Hub::extend`].
///
/// Called on the hub's tasks, outside every session lock: must be quick and
/// must not block. Every method has a default that does nothing, so an
/// extension implements only what it needs.
pub trait HubExtension: Send + Sync + 'static {
    /// Whether `channel` is one this extension serves itself (a virtual
    /// channel: subscribing goes to [`HubExtension::subscribe`], and clients
    /// may not publish on it).
    fn owns(&self, channel: &ChannelName) -> bool {
        let _ = channel;
        false
    }

    /// Who may subscribe to `channel`, one this extension owns.
    fn subscribe_rule(&self, channel: &ChannelName) -> SubscribeRule {
        let _ = channel;
        SubscribeRule::Grants
    }

    /// Subscribes `sink` to a channel this extension [owns](HubExtension::owns).
    /// `after` is the client's last position on it, if it resumes.
    fn subscribe(
        &self,
        session: &SessionInfo,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        let _ = (session, after, sink);
        Err(BrokerError::Unavailable(format!(
            "no extension serves {channel}"
        )))
    }

    /// Whether clients may publish on `channel`, one this extension owns:
    /// those who may subscribe to it may, and their publishes go to
    /// [`HubExtension::publish`] instead of the broker. Default: nobody.
    fn accepts_publish(&self, channel: &ChannelName) -> bool {
        let _ = channel;
        false
    }

    /// A client's publish on a channel this extension owns and
    /// [accepts publishes on](HubExtension::accepts_publish). `may_write`:
    /// whether the identity's grants allow publishing on the channel itself
    /// (without it a client may still read: e.g. ask for state). `Err`
    /// refuses the publish by name; the session lives on.
    fn publish(
        &self,
        session: &SessionInfo,
        channel: &ChannelName,
        payload: Bytes,
        may_write: bool,
    ) -> Result<(), Refusal> {
        let _ = (session, payload, may_write);
        Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("{channel} takes no publishes"),
        ))
    }

    /// Ends a subscription made by [`HubExtension::subscribe`].
    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let _ = (channel, id);
    }

    /// `session` subscribed to a (broker) channel.
    fn subscribed(&self, session: &SessionInfo, channel: &ChannelName) {
        let _ = (session, channel);
    }

    /// `session` left a (broker) channel.
    fn unsubscribed(&self, session: &SessionInfo, channel: &ChannelName) {
        let _ = (session, channel);
    }

    /// A connection of `session` attached (`resumed`: to a session that had
    /// lost its connection).
    fn attached(&self, session: &SessionInfo, resumed: bool) {
        let _ = (session, resumed);
    }

    /// `session` lost its connection and waits for its client to resume it.
    fn detached(&self, session: &SessionInfo) {
        let _ = session;
    }

    /// `session` ended (closed, or not resumed in time): it is gone.
    fn ended(&self, session: &SessionInfo) {
        let _ = session;
    }
}

/// A session's guard while extensions are plugged in: the identity's grants
/// (if any), and no publishing on channels an extension owns.
pub(crate) struct ExtensionGuard {
    pub(crate) grants: Option<ChannelGrants>,
    pub(crate) extensions: Arc<[Arc<dyn HubExtension>]>,
}

impl std::fmt::Debug for ExtensionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionGuard")
            .field("grants", &self.grants)
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl ChannelGuard for ExtensionGuard {
    fn may_subscribe(&self, channel: &ChannelName) -> bool {
        let rule = self
            .extensions
            .iter()
            .find(|e| e.owns(channel))
            .map_or(SubscribeRule::Grants, |e| e.subscribe_rule(channel));
        let granted = |c: &ChannelName| {
            self.grants
                .as_ref()
                .is_none_or(|g| g.may_subscribe(c.as_str()))
        };
        match rule {
            SubscribeRule::Grants => granted(channel),
            SubscribeRule::SameAs(other) => granted(&other),
            SubscribeRule::Nobody => false,
        }
    }

    fn may_publish(&self, channel: &ChannelName) -> bool {
        match self.extensions.iter().find(|e| e.owns(channel)) {
            // The extension decides about writing (it is told the grants).
            Some(owner) => owner.accepts_publish(channel) && self.may_subscribe(channel),
            None => self
                .grants
                .as_ref()
                .is_none_or(|g| g.may_publish(channel.as_str())),
        }
    }
}
