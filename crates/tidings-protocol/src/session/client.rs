//! The client session state machine: handshake, heartbeat, reconnect backoff, acks and resume.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use web_time::Instant;

use super::{AckBatch, decode_checked, earliest};
use crate::backoff::Backoff;
use crate::codec::{FrameCodec, FrameEncoder};
use crate::codes::{CloseCode, ErrorCode};
use crate::error::{ProtocolError, SessionError};
use crate::frame::{
    Ack, ChannelPosition, Close, Frame, Gap, Hello, Message, PROTOCOL_VERSION, Ping, Publish,
    Publisher, Subscribe, Unsubscribe, Welcome,
};
use crate::ids::{ChannelMap, ChannelName, ResumeToken, SessionId};
use crate::inbound::{Inbound, InboundTracker};
use crate::limits::Limits;
use crate::rpc::RpcFrame;

/// Settings of a [`ClientSession`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Heartbeat interval used until the server's `Welcome` sets its own.
    pub heartbeat: Duration,
    /// The peer is declared dead after this many heartbeat intervals of silence.
    pub dead_after_heartbeats: u32,
    /// Time allowed between transport up and `Welcome`.
    pub handshake_timeout: Duration,
    /// First reconnect delay ceiling.
    pub backoff_base: Duration,
    /// Largest reconnect delay.
    pub backoff_cap: Duration,
    /// Local limits (queue size, frame size).
    pub limits: Limits,
    /// Send an `Ack` after this many messages...
    pub ack_every: u32,
    /// ...or this long after the first unacknowledged one.
    ///
    /// An ack only lets the server drop messages from the session's replay
    /// buffer (a resume sends the client's positions, so nothing depends on
    /// it for correctness), and `ack_every` already bounds what a busy
    /// channel leaves there. So the delay is long: a client receiving a few
    /// messages a second sends one ack for several of them instead of one
    /// frame per message (an HTTP request per message on SSE).
    pub ack_delay: Duration,
    /// A session must stay open this long before the reconnect backoff starts
    /// over: a server that refuses the client right after every `welcome`
    /// (the same bad frame each time, say) still sees the delays grow.
    pub stable_after: Duration,
    /// A stable publisher id sent in every `Hello` (1 to 64 ASCII letters,
    /// digits, `-`, `_`; see [`crate::Publisher`]): with it, a publish
    /// re-sent to another server after a failover is stored once. `None`
    /// (the default of the sans-IO session; the runtime's `Client` picks a
    /// random one): publishes are deduplicated per server session only.
    pub publisher_id: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            dead_after_heartbeats: 3,
            handshake_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(30),
            limits: Limits::default(),
            ack_every: 64,
            ack_delay: Duration::from_secs(1),
            stable_after: Duration::from_secs(5),
            publisher_id: None,
        }
    }
}

impl ClientConfig {
    /// Sets the backoff base and cap.
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// Sets [`ClientConfig::publisher_id`] (an invalid id is left out of the
    /// `Hello`: see [`crate::Publisher::new`]).
    pub fn with_publisher_id(mut self, id: impl Into<String>) -> Self {
        self.publisher_id = Some(id.into());
        self
    }

    /// Sets [`ClientConfig::stable_after`].
    pub fn with_stable_after(mut self, after: Duration) -> Self {
        self.stable_after = after;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }
}

/// Where the client is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// No transport; waiting for the reconnect time.
    Disconnected,
    /// The driver is opening a transport.
    Connecting,
    /// Transport up, `Hello` sent, waiting for `Welcome`.
    Handshaking,
    /// Session open.
    Open,
    /// Closed for good.
    Closed,
}

/// What the application sees.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The session is open (new or resumed).
    Connected {
        /// Session id.
        session: SessionId,
        /// Whether the earlier session was resumed (nothing lost).
        resumed: bool,
    },
    /// The transport is gone; a reconnect follows after `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// A message of a subscribed channel, in order, never twice.
    Message(Message),
    /// Messages were lost for this client (history no longer has them): reload state.
    Gap(Gap),
    /// The server's channel restarted below the position this client had seen
    /// (the server lost its state and has no durable history): messages of the
    /// old numbering that were not received are lost. Reload state; numbering
    /// starts over with the next `Subscribed`.
    ChannelReset {
        /// The channel.
        channel: ChannelName,
        /// The last sequence number seen before the reset.
        seen: u64,
    },
    /// A subscription is active from `seq` on.
    Subscribed {
        /// The channel.
        channel: ChannelName,
        /// Position from which messages follow.
        seq: u64,
    },
    /// The server has every publish up to `seq`.
    PublishAcked {
        /// Cumulative publish sequence.
        seq: u64,
    },
    /// A publish was refused for good and dropped from the queue: it will
    /// never be sent again. By the server (an `error` frame naming it: too
    /// large, not allowed on that channel...), or by this client when the
    /// limit a `welcome` announced is smaller than the publish queued before.
    PublishRefused {
        /// The publish's sequence number (as `publish` returned it).
        seq: u64,
        /// Its channel.
        channel: ChannelName,
        /// Why, as a wire error code (`frame_too_large`, `forbidden`, ...).
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The server reported an error.
    Error {
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The session ended for good.
    Closed {
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
struct PendingPublish {
    seq: u64,
    channel: ChannelName,
    payload: Bytes,
}

/// Sans-IO client session. See the crate docs for the driving loop.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    state: ClientState,
    codec: Option<Arc<dyn FrameCodec>>,
    backoff: Backoff,
    retry_at: Instant,
    /// When the open session got its `welcome` (the backoff starts over once
    /// it stayed open `stable_after`).
    opened_at: Option<Instant>,
    /// Publishes the last resumed `welcome` settled (its `publish_acked`):
    /// the server repeats its refusals right after that `welcome`, and a
    /// refused one among these is reported then.
    settled_by_welcome: Vec<(u64, ChannelName)>,
    session: Option<SessionId>,
    token: Option<ResumeToken>,
    heartbeat: Duration,
    max_frame: usize,
    last_recv: Instant,
    last_sent: Instant,
    ping_nonce: u64,
    ping_outstanding: bool,
    handshake_deadline: Option<Instant>,
    next_publish: u64,
    /// The client's publish number just before this server session's
    /// publish 1 (publish `seq` is the client's number `publish_base + seq`).
    publish_base: u64,
    /// The base the last `Hello` announced, taken on a fresh `Welcome`.
    hello_base: u64,
    unacked: VecDeque<PendingPublish>,
    unacked_bytes: usize,
    subscriptions: BTreeSet<ChannelName>,
    /// Subscriptions the current server session confirmed with `Subscribed`.
    confirmed: BTreeSet<ChannelName>,
    /// Channels left while disconnected: the resumed server session must be told.
    left: BTreeSet<ChannelName>,
    inbound: InboundTracker,
    acked: ChannelMap<u64>,
    ack_batch: AckBatch,
    transmit: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
    encoder: FrameEncoder,
    names: HashMap<Box<str>, ChannelName>,
    /// RPC frames received, for the RPC layer ([`ClientSession::poll_rpc`]).
    rpc_in: VecDeque<RpcFrame>,
}

impl ClientSession {
    /// A new session that wants to connect at once. `seed` seeds the backoff jitter.
    pub fn new(config: ClientConfig, seed: u64, now: Instant) -> Self {
        let backoff = Backoff::new(config.backoff_base, config.backoff_cap, seed);
        let ack_batch = AckBatch::new(config.ack_every, config.ack_delay);
        Self {
            heartbeat: config.heartbeat,
            max_frame: config.limits.max_frame_bytes,
            config,
            state: ClientState::Disconnected,
            codec: None,
            backoff,
            retry_at: now,
            opened_at: None,
            settled_by_welcome: Vec::new(),
            session: None,
            token: None,
            last_recv: now,
            last_sent: now,
            ping_nonce: 0,
            ping_outstanding: false,
            handshake_deadline: None,
            next_publish: 1,
            publish_base: 0,
            hello_base: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            subscriptions: BTreeSet::new(),
            confirmed: BTreeSet::new(),
            left: BTreeSet::new(),
            inbound: InboundTracker::default(),
            acked: ChannelMap::default(),
            ack_batch,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            encoder: FrameEncoder::default(),
            names: HashMap::new(),
            rpc_in: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// True while a transport is up (handshaking or open).
    pub fn has_transport(&self) -> bool {
        matches!(self.state, ClientState::Handshaking | ClientState::Open)
    }

    /// The session id once welcomed.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// Bytes of publishes not yet acknowledged by the server.
    pub fn unacked_bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// Number of publishes not yet acknowledged by the server.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// Last sequence number received on `channel`.
    pub fn position(&self, channel: &ChannelName) -> Option<u64> {
        self.inbound.position(channel)
    }

    /// True when the driver should open a transport now.
    pub fn wants_connect(&self, now: Instant) -> bool {
        self.state == ClientState::Disconnected && now >= self.retry_at
    }

    /// The driver started opening a transport.
    pub fn on_connecting(&mut self) {
        if self.state == ClientState::Disconnected {
            self.state = ClientState::Connecting;
        }
    }

    /// The transport is up: queue `Hello` (with resume token and positions).
    pub fn on_transport_up(&mut self, now: Instant, codec: Arc<dyn FrameCodec>) {
        if self.state == ClientState::Closed {
            return;
        }
        self.codec = Some(codec);
        self.state = ClientState::Handshaking;
        self.transmit.clear();
        self.last_recv = now;
        self.last_sent = now;
        self.ping_outstanding = false;
        self.handshake_deadline = Some(now + self.config.handshake_timeout);
        self.hello_base = self.fresh_base();
        let hello = self.hello_with_base(self.hello_base);
        self.queue(now, &Frame::Hello(hello));
    }

    /// The `Hello` the next connection would send: the resume token of the
    /// server session (if one welcomed this client), the last position of
    /// every subscribed channel and the publisher. For a transport that must
    /// carry the hello in its connection request (SSE opening a stream for a
    /// session that lives on another transport: `tidings-adaptive`).
    pub fn resume_hello(&self) -> Hello {
        self.hello_with_base(self.fresh_base())
    }

    fn hello_with_base(&self, base: u64) -> Hello {
        let positions = self
            .inbound
            .positions()
            .filter(|(c, _)| self.subscriptions.contains(*c))
            .map(|(c, seq)| ChannelPosition {
                channel: c.clone(),
                seq,
            })
            .collect();
        let publisher = self
            .config
            .publisher_id
            .as_deref()
            .and_then(|id| Publisher::new(id, base).ok());
        Hello {
            version: PROTOCOL_VERSION,
            resume: self.token.clone(),
            positions,
            publisher,
        }
    }

    /// The publish base a fresh server session would get: the pending
    /// publishes keep their numbers (renumbered 1, 2, ... they stay
    /// `base + seq`) when they are consecutive up to the last number used;
    /// else every number used so far is skipped, so that no key is ever
    /// reused for a different publish (one refused may have been stored).
    fn fresh_base(&self) -> u64 {
        let used = self.publish_base + self.next_publish - 1;
        let Some(first) = self.unacked.front() else {
            return used;
        };
        let consecutive = self
            .unacked
            .iter()
            .enumerate()
            .all(|(i, p)| p.seq == first.seq + i as u64);
        let reaches_end = self
            .unacked
            .back()
            .is_some_and(|p| p.seq + 1 == self.next_publish);
        if consecutive && reaches_end {
            self.publish_base + first.seq - 1
        } else {
            used
        }
    }

    /// The transport failed or closed: schedule a reconnect with backoff.
    pub fn on_transport_down(&mut self, now: Instant, reason: impl Into<String>) {
        self.transport_down(now, reason.into(), false);
    }

    /// The driver ends the transport on purpose to move the session to
    /// another one (a transport switch): like
    /// [`ClientSession::on_transport_down`], but the reconnect is due at
    /// once and the backoff does not grow. The `Disconnected` event says
    /// `retry_in: 0`.
    pub fn on_transport_switch(&mut self, now: Instant, reason: impl Into<String>) {
        self.transport_down(now, reason.into(), true);
    }

    fn transport_down(&mut self, now: Instant, reason: String, switch: bool) {
        if !matches!(
            self.state,
            ClientState::Connecting | ClientState::Handshaking | ClientState::Open
        ) {
            return;
        }
        let stable = self
            .opened_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) >= self.config.stable_after);
        if stable {
            self.backoff.reset();
        }
        let delay = if switch {
            Duration::ZERO
        } else {
            self.backoff.next_delay()
        };
        self.retry_at = now + delay;
        self.state = ClientState::Disconnected;
        self.transmit.clear();
        self.ack_batch.clear();
        self.handshake_deadline = None;
        self.events.push_back(ClientEvent::Disconnected {
            reason,
            retry_in: delay,
        });
    }

    /// Publishes `payload` on `channel`. Returns the publish sequence number.
    ///
    /// Works while disconnected too: the publish is queued and sent (or re-sent)
    /// once a session is open, until the server acknowledges it. Fails with
    /// [`SessionError::QueueFull`] when unacknowledged publishes exceed
    /// `limits.max_queued_bytes`.
    pub fn publish(
        &mut self,
        now: Instant,
        channel: ChannelName,
        payload: Bytes,
    ) -> Result<u64, SessionError> {
        if self.state == ClientState::Closed {
            return Err(SessionError::Closed {
                reason: "session closed".into(),
            });
        }
        let limit = self.config.limits.max_queued_bytes;
        if self.unacked_bytes + payload.len() > limit {
            return Err(SessionError::QueueFull {
                queued: self.unacked_bytes,
                limit,
            });
        }
        let seq = self.next_publish;
        let frame = Frame::Publish(Publish {
            channel: channel.clone(),
            seq,
            payload: payload.clone(),
        });
        // The limit applies to the encoded frame; before the first connection
        // the codec is unknown, so leave room for the envelope.
        let encoded =
            match &self.codec {
                Some(codec) => Some(self.encoder.encode(&**codec, &frame).map_err(|e| {
                    SessionError::Closed {
                        reason: format!("cannot encode publish: {e}"),
                    }
                })?),
                None => None,
            };
        let size = encoded
            .as_ref()
            .map_or(payload.len() + channel.as_str().len() + 128, |b| b.len());
        if size > self.max_frame {
            return Err(SessionError::MessageTooLarge {
                size,
                limit: self.max_frame,
            });
        }
        self.next_publish += 1;
        self.unacked_bytes += payload.len();
        if let (ClientState::Open, Some(bytes)) = (self.state, encoded) {
            self.last_sent = now;
            self.transmit.push_back(bytes);
        }
        self.unacked.push_back(PendingPublish {
            seq,
            channel,
            payload,
        });
        Ok(seq)
    }

    /// The [`ChannelName`] for `name`, validated once and then shared from a
    /// small cache (publishing to a name costs no allocation after the first
    /// time).
    pub fn channel(&mut self, name: &str) -> Result<ChannelName, ProtocolError> {
        if let Some(c) = self.names.get(name) {
            return Ok(c.clone());
        }
        let c = ChannelName::new(name)?;
        if self.names.len() >= Self::NAME_CACHE {
            self.names.clear();
        }
        self.names.insert(name.into(), c.clone());
        Ok(c)
    }

    /// Most channel names kept by [`ClientSession::channel`].
    const NAME_CACHE: usize = 1024;

    /// Subscribes to `channel` (kept across reconnects).
    pub fn subscribe(&mut self, now: Instant, channel: ChannelName) -> Result<(), SessionError> {
        if self.subscriptions.contains(&channel) {
            return Ok(());
        }
        let max = self.config.limits.max_subscriptions;
        if self.subscriptions.len() >= max {
            return Err(ProtocolError::TooManySubscriptions { max }.into());
        }
        self.subscriptions.insert(channel.clone());
        if self.state == ClientState::Open {
            let after = self.inbound.position(&channel);
            self.queue(now, &Frame::Subscribe(Subscribe { channel, after }));
        }
        Ok(())
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&mut self, now: Instant, channel: &ChannelName) {
        if !self.subscriptions.remove(channel) {
            return;
        }
        self.inbound.remove(channel);
        self.confirmed.remove(channel);
        self.acked.remove(channel);
        if self.state == ClientState::Open {
            self.queue(
                now,
                &Frame::Unsubscribe(Unsubscribe {
                    channel: channel.clone(),
                }),
            );
        } else {
            self.left.insert(channel.clone());
        }
    }

    /// Ends the session for good (sends `Close` if a transport is up).
    pub fn close(&mut self, now: Instant, reason: &str) {
        if self.has_transport() {
            self.flush_acks(now);
            let frame = Frame::Close(Close {
                code: CloseCode::NORMAL,
                reason: reason.into(),
            });
            self.queue(now, &frame);
        }
        self.state = ClientState::Closed;
        self.events.push_back(ClientEvent::Closed {
            reason: reason.into(),
        });
    }

    /// Handles one frame received from the transport.
    ///
    /// On a protocol violation the transport must be dropped (the state is then
    /// `Disconnected`, or `Closed` for fatal errors) and the error is returned.
    pub fn handle_input(&mut self, now: Instant, input: Bytes) -> Result<(), ProtocolError> {
        if !self.has_transport() {
            return Ok(());
        }
        let Some(codec) = self.codec.clone() else {
            return Ok(());
        };
        self.last_recv = now;
        self.ping_outstanding = false;
        let max = self.config.limits.max_frame_bytes;
        if input.len() > max && self.state == ClientState::Open {
            // The transport already holds the bytes (its own limit bounds them).
            // A message over our limit is skipped as an explicit gap and
            // acknowledged, so the server does not replay it after every
            // reconnect; anything else over the limit is a protocol error.
            if let Ok(Frame::Message(m)) = codec.decode(&input) {
                self.skip_oversized(now, m, input.len(), max);
                return Ok(());
            }
        }
        let frame = match decode_checked(&*codec, &input, max) {
            Ok(f) => f,
            Err(e) => {
                self.fail(now, &e);
                return Err(e);
            }
        };
        let result = match frame {
            Frame::Welcome(w) => self.on_welcome(now, w),
            Frame::Rpc(r) if self.state == ClientState::Open => {
                self.rpc_in.push_back(r);
                Ok(())
            }
            Frame::Message(m) if self.state == ClientState::Open => {
                self.on_message(now, m);
                Ok(())
            }
            Frame::Gap(mut g) if self.state == ClientState::Open => {
                if self.subscriptions.contains(&g.channel) {
                    // What this client received already is no loss (a resume from
                    // positions older than what it has, the replay buffer trimmed
                    // up to its acknowledgements): only the rest is reported.
                    let seen = self.inbound.position(&g.channel).unwrap_or(0);
                    if g.to <= seen {
                        return Ok(());
                    }
                    g.from = g.from.max(seen + 1);
                    self.inbound.advance(&g.channel, g.to);
                    self.events.push_back(ClientEvent::Gap(g));
                }
                Ok(())
            }
            Frame::Subscribed(s) if self.state == ClientState::Open => {
                if self.subscriptions.contains(&s.channel) {
                    self.confirmed.insert(s.channel.clone());
                    if let Some(seen) = self
                        .inbound
                        .position(&s.channel)
                        .filter(|seen| s.seq < *seen)
                    {
                        // The server's channel starts below what we saw: it lost its
                        // state (restart without durable history). Say so; never hide it.
                        self.acked.remove(&s.channel);
                        self.events.push_back(ClientEvent::ChannelReset {
                            channel: s.channel.clone(),
                            seen,
                        });
                    }
                    self.inbound.set(&s.channel, s.seq);
                    self.events.push_back(ClientEvent::Subscribed {
                        channel: s.channel,
                        seq: s.seq,
                    });
                }
                Ok(())
            }
            Frame::PublishAck(a) if self.state == ClientState::Open => {
                self.drop_acked(a.seq);
                self.events
                    .push_back(ClientEvent::PublishAcked { seq: a.seq });
                Ok(())
            }
            Frame::Ping(p) => {
                self.queue(now, &Frame::Pong(p));
                Ok(())
            }
            Frame::Pong(_) => Ok(()),
            Frame::Error(e) => {
                match e.publish {
                    Some(seq) => self.on_publish_refused(seq, e.code, e.message),
                    None => self.events.push_back(ClientEvent::Error {
                        code: e.code,
                        message: e.message,
                    }),
                }
                Ok(())
            }
            Frame::Close(c) => {
                self.on_close(now, c);
                Ok(())
            }
            other => Err(ProtocolError::UnexpectedFrame {
                frame: other.frame_type(),
                state: self.state_name(),
            }),
        };
        if let Err(e) = &result {
            self.fail(now, e);
        }
        result
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            ClientState::Handshaking => "handshaking",
            ClientState::Open => "open",
            _ => "disconnected",
        }
    }

    fn fail(&mut self, now: Instant, e: &ProtocolError) {
        self.events.push_back(ClientEvent::Error {
            code: e.code(),
            message: e.to_string(),
        });
        let fatal = matches!(e, ProtocolError::UnsupportedVersion { .. });
        self.on_transport_down(now, format!("protocol error: {e}"));
        if fatal {
            self.state = ClientState::Closed;
            self.events.push_back(ClientEvent::Closed {
                reason: e.to_string(),
            });
        }
    }

    fn on_close(&mut self, now: Instant, c: Close) {
        let fatal = matches!(
            c.code,
            CloseCode::UNSUPPORTED_VERSION | CloseCode::PROTOCOL_ERROR
        );
        self.on_transport_down(now, format!("server closed ({}): {}", c.code, c.reason));
        if fatal {
            self.state = ClientState::Closed;
            self.events
                .push_back(ClientEvent::Closed { reason: c.reason });
        }
    }

    fn on_welcome(&mut self, now: Instant, w: Welcome) -> Result<(), ProtocolError> {
        if self.state != ClientState::Handshaking {
            return Err(ProtocolError::UnexpectedFrame {
                frame: crate::frame::FrameType::Welcome,
                state: self.state_name(),
            });
        }
        if w.version != PROTOCOL_VERSION {
            return Err(ProtocolError::UnsupportedVersion {
                got: w.version,
                supported: PROTOCOL_VERSION,
            });
        }
        self.state = ClientState::Open;
        self.handshake_deadline = None;
        self.opened_at = Some(now);
        self.heartbeat = Duration::from_millis(w.heartbeat_ms.max(1));
        self.max_frame = (w.max_frame as usize).min(self.config.limits.max_frame_bytes);
        self.token = Some(w.resume_token);
        self.session = Some(w.session.clone());
        self.settled_by_welcome.clear();
        if w.resumed {
            let settled = self
                .unacked
                .iter()
                .take_while(|p| p.seq <= w.publish_acked)
                .map(|p| (p.seq, p.channel.clone()));
            self.settled_by_welcome.extend(settled);
            self.drop_acked(w.publish_acked);
            // Leave first what was left while disconnected (a later re-subscribe
            // then starts a fresh subscription on the server).
            for channel in std::mem::take(&mut self.left) {
                self.queue(now, &Frame::Unsubscribe(Unsubscribe { channel }));
            }
            // Subscriptions this server session never confirmed (made while
            // disconnected, or whose `Subscribe` was lost with the old transport)
            // may be unknown to it: ask again. The server ignores channels it has.
            let unconfirmed: Vec<_> = self
                .subscriptions
                .iter()
                .filter(|c| !self.confirmed.contains(*c))
                .cloned()
                .collect();
            for channel in unconfirmed {
                let after = self.inbound.position(&channel);
                self.queue(now, &Frame::Subscribe(Subscribe { channel, after }));
            }
        } else {
            // A fresh server session: drop what its limit refuses (the numbering
            // starts over, so nothing has to fill the hole), renumber what is
            // pending and subscribe again, asking history for whatever came
            // after our last position. A resumed session keeps its numbering:
            // a publish over its limit is sent and refused by the server by name.
            self.refuse_oversized_queued();
            // The server numbers this session's publishes from the base the
            // `Hello` announced.
            self.publish_base = self.hello_base;
            for (i, p) in self.unacked.iter_mut().enumerate() {
                p.seq = i as u64 + 1;
            }
            self.next_publish = self.unacked.len() as u64 + 1;
            self.acked.clear();
            self.confirmed.clear();
            self.left.clear();
            let subs: Vec<_> = self.subscriptions.iter().cloned().collect();
            for channel in subs {
                let after = self.inbound.position(&channel);
                self.queue(now, &Frame::Subscribe(Subscribe { channel, after }));
            }
        }
        let resend: Vec<Frame> = self
            .unacked
            .iter()
            .map(|p| {
                Frame::Publish(Publish {
                    channel: p.channel.clone(),
                    seq: p.seq,
                    payload: p.payload.clone(),
                })
            })
            .collect();
        for f in &resend {
            self.queue(now, f);
        }
        self.events.push_back(ClientEvent::Connected {
            session: w.session,
            resumed: w.resumed,
        });
        Ok(())
    }

    fn on_message(&mut self, now: Instant, m: Message) {
        if !self.subscriptions.contains(&m.channel) {
            return;
        }
        match self.inbound.accept(&m.channel, m.seq) {
            Inbound::Duplicate => return,
            Inbound::Deliver => {}
            Inbound::Gap { from, to } => {
                self.events.push_back(ClientEvent::Gap(Gap {
                    channel: m.channel.clone(),
                    from,
                    to,
                }));
            }
        }
        self.events.push_back(ClientEvent::Message(m));
        if self.ack_batch.note(now) {
            self.flush_acks(now);
        }
    }

    fn skip_oversized(&mut self, now: Instant, m: Message, size: usize, max: usize) {
        if !self.subscriptions.contains(&m.channel) {
            return;
        }
        let e = ProtocolError::FrameTooLarge { size, max };
        self.events.push_back(ClientEvent::Error {
            code: e.code(),
            message: format!("message {} of {} skipped: {e}", m.seq, m.channel),
        });
        match self.inbound.accept(&m.channel, m.seq) {
            Inbound::Duplicate => return,
            Inbound::Deliver => {}
            Inbound::Gap { from, .. } => {
                self.events.push_back(ClientEvent::Gap(Gap {
                    channel: m.channel.clone(),
                    from,
                    to: m.seq - 1,
                }));
            }
        }
        self.events.push_back(ClientEvent::Gap(Gap {
            channel: m.channel,
            from: m.seq,
            to: m.seq,
        }));
        if self.ack_batch.note(now) {
            self.flush_acks(now);
        }
    }

    /// Drops the queued publishes whose frame exceeds `max_frame` (the limit
    /// of the `welcome` just received), each reported as `PublishRefused`.
    fn refuse_oversized_queued(&mut self) {
        let Some(codec) = self.codec.clone() else {
            return;
        };
        let limit = self.max_frame;
        let mut kept = VecDeque::with_capacity(self.unacked.len());
        for p in std::mem::take(&mut self.unacked) {
            let frame = Frame::Publish(Publish {
                channel: p.channel.clone(),
                seq: p.seq,
                payload: p.payload.clone(),
            });
            let size = self
                .encoder
                .encode(&*codec, &frame)
                .map_or(usize::MAX, |b| b.len());
            if size <= limit {
                kept.push_back(p);
                continue;
            }
            self.unacked_bytes -= p.payload.len();
            let e = SessionError::MessageTooLarge { size, limit };
            self.events.push_back(ClientEvent::PublishRefused {
                seq: p.seq,
                channel: p.channel,
                code: ErrorCode::FrameTooLarge,
                message: e.to_string(),
            });
        }
        self.unacked = kept;
    }

    /// The server refused publish `seq` for good: drop it (never re-sent) and report it.
    fn on_publish_refused(&mut self, seq: u64, code: ErrorCode, message: String) {
        let Some(i) = self.unacked.iter().position(|p| p.seq == seq) else {
            // Settled by a resumed `welcome` the refusal follows: report it
            // now. Otherwise it was reported before (a resume repeats the
            // server's refusals).
            if let Some(j) = self.settled_by_welcome.iter().position(|(s, _)| *s == seq) {
                let (_, channel) = self.settled_by_welcome.swap_remove(j);
                self.events.push_back(ClientEvent::PublishRefused {
                    seq,
                    channel,
                    code,
                    message,
                });
            }
            return;
        };
        if let Some(p) = self.unacked.remove(i) {
            self.unacked_bytes -= p.payload.len();
            self.events.push_back(ClientEvent::PublishRefused {
                seq,
                channel: p.channel,
                code,
                message,
            });
        }
    }

    fn drop_acked(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|p| p.seq <= seq) {
            if let Some(p) = self.unacked.pop_front() {
                self.unacked_bytes -= p.payload.len();
            }
        }
    }

    fn flush_acks(&mut self, now: Instant) {
        self.ack_batch.clear();
        if self.state != ClientState::Open {
            return;
        }
        let mut acks = Vec::new();
        for (channel, seq) in self.inbound.positions() {
            let sent = self.acked.get(channel).copied().unwrap_or(0);
            if seq > sent && self.subscriptions.contains(channel) {
                acks.push(Ack {
                    channel: channel.clone(),
                    seq,
                });
            }
        }
        for a in acks {
            self.acked.insert(a.channel.clone(), a.seq);
            self.queue(now, &Frame::Ack(a));
        }
    }

    /// Handles timers: heartbeat pings, dead-peer and handshake timeouts, delayed acks.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.handshake_deadline
            && now >= deadline
            && self.state == ClientState::Handshaking
        {
            self.on_transport_down(now, "handshake timed out");
            return;
        }
        if self.state != ClientState::Open {
            return;
        }
        if now >= self.last_recv + self.dead_after() {
            self.on_transport_down(now, "heartbeat timeout: no data from the server");
            return;
        }
        if self.ack_batch.is_due(now) {
            self.flush_acks(now);
        }
        let idle_since = self.last_sent.min(self.last_recv);
        if !self.ping_outstanding && now >= idle_since + self.heartbeat {
            self.ping_nonce += 1;
            self.ping_outstanding = true;
            self.queue(
                now,
                &Frame::Ping(Ping {
                    nonce: self.ping_nonce,
                }),
            );
        }
    }

    fn dead_after(&self) -> Duration {
        self.heartbeat
            .saturating_mul(self.config.dead_after_heartbeats.max(2))
    }

    /// When [`ClientSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientState::Disconnected => Some(self.retry_at),
            ClientState::Handshaking => self.handshake_deadline,
            ClientState::Open => {
                let ping = if self.ping_outstanding {
                    None
                } else {
                    Some(self.last_sent.min(self.last_recv) + self.heartbeat)
                };
                earliest([
                    ping,
                    Some(self.last_recv + self.dead_after()),
                    self.ack_batch.deadline(),
                ])
            }
            ClientState::Connecting | ClientState::Closed => None,
        }
    }

    /// Next encoded frame to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// True when frames wait for [`ClientSession::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// Events waiting for the application.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Queues an RPC frame. Calls live on one connection: when the session
    /// is not open, nothing is queued and the call fails with
    /// [`SessionError::Closed`] (the RPC layer reports it as `unavailable`).
    pub fn send_rpc(&mut self, now: Instant, frame: RpcFrame) -> Result<(), SessionError> {
        if self.state != ClientState::Open {
            return Err(SessionError::Closed {
                reason: "not connected".into(),
            });
        }
        self.queue(now, &Frame::Rpc(frame));
        Ok(())
    }

    /// Next RPC frame received from the server.
    pub fn poll_rpc(&mut self) -> Option<RpcFrame> {
        self.rpc_in.pop_front()
    }

    /// True when RPC frames wait for [`ClientSession::poll_rpc`].
    pub fn has_rpc(&self) -> bool {
        !self.rpc_in.is_empty()
    }

    fn queue(&mut self, now: Instant, frame: &Frame) {
        let Some(codec) = &self.codec else { return };
        match self.encoder.encode(&**codec, frame) {
            Ok(bytes) => {
                self.last_sent = now;
                self.transmit.push_back(bytes);
            }
            Err(e) => self.events.push_back(ClientEvent::Error {
                code: ErrorCode::Internal,
                message: format!("could not encode {:?}: {e}", frame.frame_type()),
            }),
        }
    }
}
