//! `DocsExtension`: documents of a `tidings_sync::Docs` on the tidings session — the hub extension that serves channels `doc:NAME` with `tidings_sync::SessionDocs` (same connection, auth and grants as channels, RPC and presence).

use std::sync::Arc;

use bytes::Bytes;
use tidings_channels::{
    BrokerError, Delivery, Hub, HubExtension, Refusal, SessionInfo, SubscribeRule, SubscriberId,
    Subscription,
};
use tidings_protocol::ChannelName;
use tidings_sync::{Docs, SessionDocs};

/// Serves the documents of a [`Docs`] on hub channels `doc:NAME` (the same
/// documents the y-websocket route [`crate::YjsRoute`] serves: peers of
/// either kind edit one document). Grants as for the route: subscribing to
/// `doc:NAME` reads it, publishing changes it (a reader may still publish
/// its sync step 1 and awareness; its updates are refused `forbidden`).
///
/// ```no_run
/// # async fn demo(hub: tidings_channels::Hub) {
/// let docs = tidings_sync::Docs::new(Default::default());
/// tidings_axum::DocsExtension::attach(&hub, docs.clone());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DocsExtension {
    docs: SessionDocs,
}

impl DocsExtension {
    /// Serves `docs` on channels `doc:NAME` of `hub` (plug it in before
    /// serving connections).
    pub fn attach(hub: &Hub, docs: Docs) -> Self {
        Self::attach_with_prefix(hub, docs, "doc:")
    }

    /// [`DocsExtension::attach`] on channels `{prefix}NAME`.
    pub fn attach_with_prefix(hub: &Hub, docs: Docs, prefix: &str) -> Self {
        let ext = Self {
            docs: SessionDocs::new(docs, prefix),
        };
        hub.extend(Arc::new(ext.clone()));
        ext
    }

    /// The documents on the session.
    pub fn session_docs(&self) -> &SessionDocs {
        &self.docs
    }
}

impl HubExtension for DocsExtension {
    fn owns(&self, channel: &ChannelName) -> bool {
        self.docs.owns(channel)
    }

    fn subscribe_rule(&self, _channel: &ChannelName) -> SubscribeRule {
        SubscribeRule::Grants
    }

    fn subscribe(
        &self,
        session: &SessionInfo,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        self.docs
            .subscribe(session.id.0.as_str(), channel, after, sink)
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.docs.unsubscribe(channel, id);
    }

    fn accepts_publish(&self, channel: &ChannelName) -> bool {
        self.docs.owns(channel)
    }

    fn publish(
        &self,
        session: &SessionInfo,
        channel: &ChannelName,
        payload: Bytes,
        may_write: bool,
    ) -> Result<(), Refusal> {
        self.docs
            .publish(session.id.0.as_str(), channel, &payload, may_write)
            // The message names the channel first: a client that gets it as
            // an error report (no acknowledgement after store) can tell
            // which document it is about.
            .map_err(|e| Refusal::new(e.code(), format!("{channel}: {e}")))
    }
}
