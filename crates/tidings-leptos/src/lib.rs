//! Leptos 0.8 hooks for tidings: the connection's status, a channel's messages and gaps as signals, and publishing.
//!
//! ```no_run
//! use leptos::prelude::*;
//! use tidings_leptos::{use_channel, use_connection};
//!
//! fn chat_room() -> impl Fn() -> usize {
//!     let connection = use_connection("ws://127.0.0.1:3000/ws");
//!     let room = use_channel(connection, "room:lobby");
//!     // Publishes are queued while disconnected and delivered exactly once.
//!     let _ = room.publish(r#"{"text":"hello"}"#);
//!     // `messages` holds every message received, in order, never twice; `notices`
//!     // the gaps and channel resets (what was lost: reload state).
//!     move || room.messages.with(|m| m.len())
//! }
//! ```
//!
//! # SSR and hydration
//!
//! Only a `wasm32` build connects. On every other target (a server rendering the page, native
//! tests) the hooks return inert signals: status [`ConnectionStatus::Idle`], no messages, and
//! [`PublishError::is_inert`] from publishes, and no connection is attempted. In the browser the
//! signals start with the same values and no hook writes one during the render that called it:
//! the first change (`Connecting`) is made by the connection's event task, which runs once the
//! current (hydration) pass is over, so the server's HTML and the hydrating client agree. The
//! chat example (`examples/chat-web`) is rendered this way and hydrated in headless Chromium by
//! `cargo xtask test-browser` (`leptos-ssr-hydration`).
//!
//! # Cleanup
//!
//! [`use_connection`] registers an `on_cleanup` on the current reactive owner: when the component
//! that called it is unmounted, the client is closed (a `Close` frame, the WebSocket closed, the
//! event task ends). [`use_subscription`] / [`use_channel`] unsubscribe when their owner goes.

mod endpoint;
mod presence;
mod synced;

use std::collections::HashMap;
use std::fmt;

pub use endpoint::Endpoint;
pub use presence::{Presence, use_presence};
pub use synced::{SyncedError, SyncedText, use_synced};

#[cfg(target_arch = "wasm32")]
use leptos::prelude::WithValue;
use leptos::prelude::{
    GetUntracked, GetValue, LocalStorage, ReadSignal, Set, StoredValue, Update, UpdateValue,
    WriteSignal, on_cleanup, signal,
};
use tidings_protocol::ClientEvent;

pub use tidings_protocol::Message;
pub use tidings_runtime::ClientError;

/// The state of a [`Connection`], as a signal's value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Not started: server-side rendering, a native build, or before the browser client began.
    Idle,
    /// Opening the first connection.
    Connecting,
    /// The session is open.
    Open {
        /// Whether the earlier session was resumed (nothing lost).
        resumed: bool,
    },
    /// The connection dropped; the client reconnects by itself.
    Reconnecting {
        /// Why it dropped.
        reason: String,
    },
    /// Closed for good (the component unmounted, or the client was closed).
    Closed,
}

impl ConnectionStatus {
    /// Whether the session is open.
    pub fn is_open(&self) -> bool {
        matches!(self, Self::Open { .. })
    }

    /// A short lower-case label (`idle`, `connecting`, `open`, `reconnecting`, `closed`).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting => "connecting",
            Self::Open { .. } => "open",
            Self::Reconnecting { .. } => "reconnecting",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Something a channel's subscriber lost: reload the state it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelNotice {
    /// Messages `from..=to` are gone from the server's history.
    Gap {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// The server's channel restarted below the position seen (`seen`): messages of the old
    /// numbering not received are lost; numbering starts over.
    Reset {
        /// The last sequence number seen before the reset.
        seen: u64,
    },
}

/// Why a publish from a hook failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The hook is inert (server-side rendering or a native build): nothing was sent.
    #[error("tidings-leptos is inert here (SSR or a native build): publish from the browser")]
    Inert,
    /// The connection was closed (its component unmounted).
    #[error("the connection is closed: its component was unmounted")]
    Closed,
    /// The client refused the publish (queue full, payload too large...).
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl PublishError {
    /// Whether the hook was inert (SSR or native).
    pub fn is_inert(&self) -> bool {
        matches!(self, Self::Inert)
    }

    /// Whether the connection was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }
}

/// The signals one subscription writes.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Clone, Copy)]
struct Sink {
    id: u64,
    messages: WriteSignal<Vec<Message>>,
    notices: WriteSignal<Vec<ChannelNotice>>,
}

/// What the event task dispatches to: the status and the subscriptions by channel.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Default)]
struct Router {
    next_id: u64,
    channels: HashMap<String, Vec<Sink>>,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl Router {
    /// Hands one client event to the status and the subscriptions' signals. Writes to signals
    /// disposed of meanwhile are ignored (`try_*`).
    fn dispatch(&self, status: WriteSignal<ConnectionStatus>, event: ClientEvent) {
        match event {
            ClientEvent::Connected { resumed, .. } => {
                status.try_set(ConnectionStatus::Open { resumed });
            }
            ClientEvent::Disconnected { reason, .. } => {
                status.try_set(ConnectionStatus::Reconnecting { reason });
            }
            ClientEvent::Message(message) => {
                if let Some(sinks) = self.channels.get(message.channel.as_str()) {
                    for sink in sinks {
                        let copy = message.clone();
                        sink.messages.try_update(move |m| m.push(copy));
                    }
                }
            }
            ClientEvent::Gap(gap) => {
                let notice = ChannelNotice::Gap {
                    from: gap.from,
                    to: gap.to,
                };
                self.notify(gap.channel.as_str(), notice);
            }
            ClientEvent::ChannelReset { channel, seen } => {
                self.notify(channel.as_str(), ChannelNotice::Reset { seen });
            }
            _ => {}
        }
    }

    fn notify(&self, channel: &str, notice: ChannelNotice) {
        if let Some(sinks) = self.channels.get(channel) {
            for sink in sinks {
                let copy = notice.clone();
                sink.notices.try_update(move |n| n.push(copy));
            }
        }
    }

    /// Registers `sink`'s channel; whether it is the channel's first subscriber.
    fn add(&mut self, channel: &str, mut sink: Sink) -> (u64, bool) {
        self.next_id += 1;
        sink.id = self.next_id;
        let sinks = self.channels.entry(channel.to_owned()).or_default();
        sinks.push(sink);
        (sink.id, sinks.len() == 1)
    }

    /// Removes subscription `id`; whether it was the channel's last subscriber.
    fn remove(&mut self, channel: &str, id: u64) -> bool {
        let Some(sinks) = self.channels.get_mut(channel) else {
            return false;
        };
        sinks.retain(|s| s.id != id);
        if sinks.is_empty() {
            self.channels.remove(channel);
            true
        } else {
            false
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod live {
    //! The browser side: one client (adaptive over WebSocket with the SSE endpoint beside it as
    //! its fallback, or WebTransport) and the task that reads its events.

    use std::cell::RefCell;
    use std::rc::Rc;

    use leptos::prelude::{Set, WriteSignal};

    use super::{ConnectionStatus, Router};

    /// The client and the router, shared by the hooks and the event task.
    pub(crate) struct Shared {
        pub(crate) client: crate::endpoint::AnyClient,
        pub(crate) router: RefCell<Router>,
    }

    /// Owned by the connection's `StoredValue`: closes the client when dropped (cleanup or
    /// disposal, whichever comes first), which ends the event task.
    pub(crate) struct Live(pub(crate) Rc<Shared>);

    impl Drop for Live {
        fn drop(&mut self) {
            self.0.client.close();
        }
    }

    /// Starts a client of `endpoint` and its event task.
    pub(crate) fn start(
        endpoint: &crate::Endpoint,
        status: WriteSignal<ConnectionStatus>,
    ) -> Option<Live> {
        let client = match crate::endpoint::AnyClient::connect(endpoint) {
            Ok(client) => client,
            Err(error) => {
                // Reported after the current render, like every other status change.
                let reason = error.to_string();
                wasm_bindgen_futures::spawn_local(async move {
                    status.try_set(ConnectionStatus::Reconnecting { reason });
                });
                return None;
            }
        };
        let shared = Rc::new(Shared {
            client,
            router: RefCell::new(Router::default()),
        });
        let task = shared.clone();
        // The first status write happens in the task, never during the render that called
        // `use_connection`: a hydrating page must build its view from the values the server
        // rendered (`Idle`), and the task runs only once the current (hydration) pass is over.
        wasm_bindgen_futures::spawn_local(async move {
            status.try_set(ConnectionStatus::Connecting);
            while let Some(event) = task.client.next_event().await {
                task.router.borrow().dispatch(status, event);
            }
            status.try_set(ConnectionStatus::Closed);
        });
        Some(Live(shared))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod live {
    //! Not a browser: nothing connects; this type is never constructed.

    /// Never constructed off wasm32.
    pub(crate) enum Live {}
}

/// The SSE endpoint mounted beside the WebSocket endpoint `url` by the tidings-axum convention
/// (`ws://host/ws` → `http://host/sse`, `wss://` → `https://`): the adaptive client's fallback.
/// `None` when `url` does not end in `/ws`, or when it selects one transport with
/// `transport=websocket` in its query.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn sse_beside(url: &str) -> Option<String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if query.split('&').any(|p| p == "transport=websocket") {
        return None;
    }
    let rest = base
        .strip_prefix("ws://")
        .map(|r| ("http", r))
        .or_else(|| base.strip_prefix("wss://").map(|r| ("https", r)));
    let (scheme, rest) = rest?;
    let prefix = rest.strip_suffix("/ws")?;
    Some(format!("{scheme}://{prefix}/sse"))
}

/// A connection to a tidings WebSocket endpoint, owned by the component that called
/// [`use_connection`]. `Copy`: pass it to child components or put it in a context.
#[derive(Clone, Copy)]
pub struct Connection {
    /// The connection's status.
    pub status: ReadSignal<ConnectionStatus>,
    live: StoredValue<Option<live::Live>, LocalStorage>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("status", &self.status.get_untracked())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Whether this connection is inert (SSR, native): it never connects.
    pub fn is_inert(&self) -> bool {
        cfg!(not(target_arch = "wasm32"))
    }

    /// Closes the connection now (it is closed on unmount anyway). Idempotent.
    pub fn close(&self) {
        self.live.try_update_value(|live| live.take());
    }

    /// Publishes `payload` on `channel` (queued while disconnected, delivered exactly once).
    pub fn publish(
        &self,
        channel: &str,
        payload: impl Into<bytes_compat::Payload>,
    ) -> Result<u64, PublishError> {
        let payload = payload.into();
        if self.is_inert() {
            return Err(PublishError::Inert);
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.live
                .try_with_value(|live| {
                    live.as_ref()
                        .map(|l| l.0.client.publish(channel, payload.0.clone()))
                })
                .flatten()
                .ok_or(PublishError::Closed)?
                .map_err(PublishError::from)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (channel, payload);
            Err(PublishError::Inert)
        }
    }
}

/// Payload conversions accepted by [`Connection::publish`] and [`Publisher::publish`].
pub mod bytes_compat {
    /// A publish payload: from `&'static str`, `String`, `Vec<u8>` or `&'static [u8]`.
    #[derive(Clone, Debug)]
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub struct Payload(pub(crate) bytes::Bytes);

    impl From<&'static str> for Payload {
        fn from(s: &'static str) -> Self {
            Self(bytes::Bytes::from_static(s.as_bytes()))
        }
    }
    impl From<String> for Payload {
        fn from(s: String) -> Self {
            Self(s.into())
        }
    }
    impl From<Vec<u8>> for Payload {
        fn from(v: Vec<u8>) -> Self {
            Self(v.into())
        }
    }
    impl From<&'static [u8]> for Payload {
        fn from(v: &'static [u8]) -> Self {
            Self(bytes::Bytes::from_static(v))
        }
    }
}

/// Opens a connection to the tidings WebSocket endpoint at `url` (`ws://` or `wss://`), owned by
/// the current reactive owner (the calling component): closed when it is cleaned up. Also
/// provided as context, for [`expect_connection`].
///
/// The client is adaptive (`tidings-adaptive`): when `url` ends in `/ws`, the SSE endpoint
/// beside it (`/sse`, same host) is the fallback a refused WebSocket lands on, and the session
/// moves between the two without losing a message; `?transport=websocket` in `url` keeps it on
/// WebSocket alone.
///
/// Off wasm32 (SSR, native) nothing connects and the status stays [`ConnectionStatus::Idle`].
pub fn use_connection(url: &str) -> Connection {
    use_connection_to(Endpoint::web_socket(url))
}

/// Like [`use_connection`], to any [`Endpoint`]: a WebSocket endpoint or (feature
/// `webtransport`) a WebTransport server, e.g. one whose development certificate is pinned by
/// the hashes it serves:
///
/// ```no_run
/// use tidings_leptos::{Endpoint, use_connection_to};
/// let connection = use_connection_to(
///     Endpoint::web_transport("https://127.0.0.1:3000/")
///         .certificate_hashes_from("/webtransport-hashes.json"),
/// );
/// ```
pub fn use_connection_to(endpoint: Endpoint) -> Connection {
    let (status, set_status) = signal(ConnectionStatus::Idle);
    #[cfg(target_arch = "wasm32")]
    let started = live::start(&endpoint, set_status);
    #[cfg(not(target_arch = "wasm32"))]
    let started: Option<live::Live> = {
        let _ = (endpoint, set_status);
        None
    };
    let connection = Connection {
        status,
        live: StoredValue::new_local(started),
    };
    on_cleanup(move || connection.close());
    leptos::prelude::provide_context(connection);
    connection
}

/// The connection a parent component opened with [`use_connection`], if any.
pub fn use_connection_context() -> Option<Connection> {
    leptos::prelude::use_context::<Connection>()
}

/// The connection a parent component opened with [`use_connection`].
///
/// # Panics
///
/// When no parent called [`use_connection`].
pub fn expect_connection() -> Connection {
    leptos::prelude::expect_context::<Connection>()
}

/// A subscription to one channel: its messages and notices as signals.
#[derive(Clone, Copy, Debug)]
pub struct Subscription {
    /// Every message received on the channel since subscribing, in order, never twice.
    pub messages: ReadSignal<Vec<Message>>,
    /// Gaps and resets of the channel (what was lost: reload state).
    pub notices: ReadSignal<Vec<ChannelNotice>>,
}

/// Subscribes to `channel` on `connection` for as long as the current reactive owner lives
/// (unsubscribed on cleanup). Off wasm32 the signals stay empty.
pub fn use_subscription(connection: Connection, channel: &str) -> Subscription {
    let (messages, set_messages) = signal(Vec::new());
    let (notices, set_notices) = signal(Vec::new());
    let sink = Sink {
        id: 0,
        messages: set_messages,
        notices: set_notices,
    };
    #[cfg(target_arch = "wasm32")]
    {
        let registered = connection
            .live
            .try_with_value(|live| {
                live.as_ref().map(|l| {
                    let (id, first) = l.0.router.borrow_mut().add(channel, sink);
                    if first {
                        // The client keeps the subscription across reconnects; an error here is
                        // a bad channel name, reported as a notice-free empty subscription.
                        let _ = l.0.client.subscribe(channel);
                    }
                    id
                })
            })
            .flatten();
        if let Some(id) = registered {
            let channel = channel.to_owned();
            on_cleanup(move || {
                connection.live.try_with_value(|live| {
                    if let Some(l) = live.as_ref()
                        && l.0.router.borrow_mut().remove(&channel, id)
                    {
                        let _ = l.0.client.unsubscribe(&channel);
                    }
                });
            });
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (connection, channel, sink);
    }
    Subscription { messages, notices }
}

/// Publishes on one channel of a connection. `Copy`.
#[derive(Clone, Copy, Debug)]
pub struct Publisher {
    connection: Connection,
    channel: StoredValue<String>,
}

impl Publisher {
    /// Publishes `payload` (queued while disconnected, delivered exactly once); the publish's
    /// sequence number.
    pub fn publish(&self, payload: impl Into<bytes_compat::Payload>) -> Result<u64, PublishError> {
        let channel = self.channel.get_value();
        self.connection.publish(&channel, payload)
    }
}

/// A [`Publisher`] for `channel` on `connection`.
pub fn use_publish(connection: Connection, channel: &str) -> Publisher {
    Publisher {
        connection,
        channel: StoredValue::new(channel.to_owned()),
    }
}

/// A channel to read and write: [`use_subscription`] and [`use_publish`] together.
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    /// Every message received on the channel since subscribing, in order, never twice.
    pub messages: ReadSignal<Vec<Message>>,
    /// Gaps and resets of the channel.
    pub notices: ReadSignal<Vec<ChannelNotice>>,
    publisher: Publisher,
}

impl Channel {
    /// Publishes `payload` on the channel.
    pub fn publish(&self, payload: impl Into<bytes_compat::Payload>) -> Result<u64, PublishError> {
        self.publisher.publish(payload)
    }
}

/// Subscribes to `channel` and returns its messages, notices and a publisher.
pub fn use_channel(connection: Connection, channel: &str) -> Channel {
    let sub = use_subscription(connection, channel);
    Channel {
        messages: sub.messages,
        notices: sub.notices,
        publisher: use_publish(connection, channel),
    }
}

#[cfg(test)]
mod tests {
    //! The event router: messages and notices reach the subscribers of their channel only.

    use leptos::prelude::{GetUntracked, Owner};
    use tidings_protocol::{Gap, MessageId};

    use super::*;

    fn sink() -> (
        Sink,
        ReadSignal<Vec<Message>>,
        ReadSignal<Vec<ChannelNotice>>,
    ) {
        let (messages, set_messages) = signal(Vec::new());
        let (notices, set_notices) = signal(Vec::new());
        let s = Sink {
            id: 0,
            messages: set_messages,
            notices: set_notices,
        };
        (s, messages, notices)
    }

    #[test]
    fn events_reach_their_channel_subscribers_in_order() {
        let owner = Owner::new();
        owner.with(|| {
            let (status, set_status) = signal(ConnectionStatus::Idle);
            let mut router = Router::default();
            let (a, a_msgs, a_notes) = sink();
            let (b, b_msgs, _) = sink();
            let (a_id, first) = router.add("room:a", a);
            assert!(first);
            let (_, first) = router.add("room:b", b);
            assert!(first);
            let (a2, a2_msgs, _) = sink();
            let (a2_id, first) = router.add("room:a", a2);
            assert!(!first);

            router.dispatch(
                set_status,
                ClientEvent::Connected {
                    session: tidings_protocol::SessionId("s".into()),
                    resumed: false,
                },
            );
            assert_eq!(
                status.get_untracked(),
                ConnectionStatus::Open { resumed: false }
            );
            for seq in 1..=3 {
                router.dispatch(
                    set_status,
                    ClientEvent::Message(Message {
                        channel: tidings_protocol::ChannelName::new("room:a").expect("valid name"),
                        seq,
                        id: MessageId(seq),
                        payload: bytes::Bytes::from(format!("{seq}")),
                    }),
                );
            }
            router.dispatch(
                set_status,
                ClientEvent::Gap(Gap {
                    channel: tidings_protocol::ChannelName::new("room:a").expect("valid name"),
                    from: 4,
                    to: 9,
                }),
            );
            let seqs: Vec<u64> = a_msgs.get_untracked().iter().map(|m| m.seq).collect();
            assert_eq!(seqs, [1, 2, 3]);
            assert_eq!(a2_msgs.get_untracked().len(), 3);
            assert!(b_msgs.get_untracked().is_empty());
            assert_eq!(
                a_notes.get_untracked(),
                [ChannelNotice::Gap { from: 4, to: 9 }]
            );

            assert!(!router.remove("room:a", a_id));
            assert!(router.remove("room:a", a2_id));
        });
        owner.cleanup();
    }
}

#[cfg(test)]
mod sse_beside_tests {
    use super::sse_beside;

    #[test]
    fn the_sse_endpoint_beside_ws() {
        assert_eq!(sse_beside("ws://h:1/ws").as_deref(), Some("http://h:1/sse"));
        assert_eq!(
            sse_beside("wss://h/app/ws").as_deref(),
            Some("https://h/app/sse")
        );
        assert_eq!(sse_beside("ws://h/socket"), None);
        assert_eq!(sse_beside("ws://h/ws?transport=websocket"), None);
    }
}
