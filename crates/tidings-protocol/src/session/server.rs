//! The server session state machine: welcome, subscriptions, dedup of publishes, acks, replay on resume, slow consumers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use web_time::Instant;

use super::{AckBatch, decode_checked};
use crate::channel_rate::{Admit, ChannelRate, SessionBuckets, admit};
use crate::codec::{FrameCodec, FrameEncoder};
use crate::codes::{CloseCode, ErrorCode};
use crate::error::ProtocolError;
use crate::few_map::FewMap;
use crate::frame::{
    ChannelPosition, Close, ErrorFrame, Frame, Gap, Hello, PROTOCOL_VERSION, PublishAck,
    Subscribed, Welcome,
};
use crate::frame_log::FrameLog;
use crate::guard::ChannelGuard;
use crate::ids::{ChannelMap, ChannelName, ResumeToken, SessionId};
use crate::limits::Limits;
use crate::message::SharedMessage;
use crate::rate::{Bucket, RateLimit};
use crate::replay::ReplayBuffer;
use crate::rpc::RpcFrame;

/// What to do when a client does not read fast enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection (code 4002); the session stays resumable and the
    /// replay buffer re-sends what it still holds (or reports a gap).
    #[default]
    Disconnect,
    /// Drop the oldest queued frames; the client sees an explicit gap.
    DropOldest,
}

/// Settings of a [`ServerSession`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Interval at which clients must send something.
    pub heartbeat: Duration,
    /// A client silent for this many heartbeat intervals is dead.
    pub dead_after_heartbeats: u32,
    /// How long a detached session waits for its client to resume.
    pub resume_window: Duration,
    /// Limits.
    pub limits: Limits,
    /// Slow consumer handling.
    pub slow_consumer: SlowConsumerPolicy,
    /// Acknowledge publishes after this many...
    pub ack_every: u32,
    /// ...or once they carry this many payload bytes (64 KiB; keep it well
    /// under the clients' `Limits::max_queued_bytes`, 4 MiB by default: a
    /// client whose unacknowledged publishes reach that limit gets
    /// `QueueFull` until the ack comes)...
    pub ack_bytes: usize,
    /// ...or this long after the first unacknowledged one. A pending
    /// acknowledgement also rides along with a message sent to the client
    /// once it is half this delay old, or at once when publishes are sparse
    /// (half this delay or more apart): a client whose publishes come back to
    /// it (chat, echo) then gets one ack per several messages when busy, and
    /// one with each message when not.
    pub ack_delay: Duration,
    /// Most publishes a session may make (token bucket); a publish over it is
    /// refused by name with `rate_limited` and dropped, the session goes on.
    /// `None` (the default): no limit.
    pub publish_rate: Option<RateLimit>,
    /// Publish limits per channel pattern ([`ChannelRate`]: per session and
    /// channel, and per channel for every publisher together), checked after
    /// [`Self::publish_rate`] and the channel guard; a publish over one is
    /// refused by name with `rate_limited`. Empty (the default): none.
    pub channel_rates: Vec<ChannelRate>,
    /// Acknowledge a client's publish only once the hub reports that the
    /// broker stored it ([`ServerSession::publish_stored`]); a broker failure
    /// refuses it by name ([`ServerSession::publish_failed`]). The hub sets
    /// it for durable brokers (a backend that can be down); off (the
    /// default), a publish is acknowledged as soon as it is read, which is
    /// right for the in-process broker (it cannot fail).
    pub ack_after_store: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            dead_after_heartbeats: 3,
            resume_window: Duration::from_secs(60),
            limits: Limits::default(),
            slow_consumer: SlowConsumerPolicy::default(),
            ack_every: 64,
            ack_bytes: 64 * 1024,
            ack_delay: Duration::from_secs(1),
            publish_rate: None,
            channel_rates: Vec::new(),
            ack_after_store: false,
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::publish_rate`].
    pub fn with_publish_rate(mut self, limit: RateLimit) -> Self {
        self.publish_rate = Some(limit);
        self
    }

    /// Adds a rule to [`ServerConfig::channel_rates`] (rules are tried in
    /// the order they were added; the first that matches applies).
    pub fn with_channel_rate(mut self, rule: ChannelRate) -> Self {
        self.channel_rates.push(rule);
        self
    }

    /// Sets [`ServerConfig::ack_after_store`].
    pub fn with_ack_after_store(mut self, on: bool) -> Self {
        self.ack_after_store = on;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the heartbeat interval.
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets the resume window.
    pub fn with_resume_window(mut self, window: Duration) -> Self {
        self.resume_window = window;
        self
    }

    /// Sets the slow-consumer policy.
    pub fn with_slow_consumer(mut self, policy: SlowConsumerPolicy) -> Self {
        self.slow_consumer = policy;
        self
    }
}

/// Where a server session is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// A connection is attached.
    Open,
    /// The connection is gone; the session waits for a resume.
    Detached,
    /// Ended for good.
    Closed,
}

/// What the server runtime (hub) must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Subscribe the session to `channel`, then call [`ServerSession::subscribed`].
    Subscribe {
        /// The channel.
        channel: ChannelName,
        /// Resume point requested by the client.
        after: Option<u64>,
    },
    /// Remove the session's subscription to `channel`.
    Unsubscribe {
        /// The channel.
        channel: ChannelName,
    },
    /// Publish `payload` on `channel` (already deduplicated). With
    /// [`ServerConfig::ack_after_store`], report the outcome with
    /// [`ServerSession::publish_stored`] or [`ServerSession::publish_failed`].
    Publish {
        /// The client's publish number (the session's own count).
        seq: u64,
        /// The channel.
        channel: ChannelName,
        /// The payload.
        payload: Bytes,
    },
    /// Flush what is queued, then close the connection with `code` and `reason`.
    /// The session stays resumable unless a `Closed` event follows.
    Disconnect {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The session ended for good: drop it and its subscriptions.
    Closed {
        /// Why.
        reason: String,
    },
    /// An RPC frame for the RPC layer (answer with [`ServerSession::send_rpc`]).
    Rpc(RpcFrame),
}

#[derive(Debug)]
enum Sub {
    /// Waiting for the broker; live messages are parked here.
    Pending(Vec<Arc<SharedMessage>>),
    /// Active; `start` is the position sent in `Subscribed`, `last` the highest
    /// sequence number queued for the client.
    Active { start: u64, last: u64 },
}

/// Result of subscribing on the broker: where the stream starts and what to replay.
#[derive(Debug, Default)]
pub struct SubscriptionStart {
    /// Position reported to the client (next message is `position + 1`).
    pub position: u64,
    /// Messages `from..=to` that history cannot provide.
    pub gap: Option<(u64, u64)>,
    /// Messages from history to send before live ones.
    pub backlog: Vec<Arc<SharedMessage>>,
}

/// What a [`ServerSession`] counted over its whole life (every connection
/// it was served on), read by [`ServerSession::counters`]: the hub sums them
/// for its metrics when they are scraped, so the message path pays a few
/// additions on fields it touches anyway, no atomics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionCounters {
    /// Publishes taken from the client (refused ones not counted; resends
    /// of one already taken neither).
    pub messages_received: u64,
    /// `message` frames handed to the transport.
    pub messages_sent: u64,
    /// Bytes of the frames received from the client.
    pub bytes_received: u64,
    /// Bytes of the frames handed to the transport.
    pub bytes_sent: u64,
    /// Frames handed to the transport (every kind).
    pub frames_sent: u64,
    /// Publishes refused by name (too large, not allowed, over a rate limit).
    pub publishes_refused: u64,
    /// Of those, refused as over a rate limit (`rate_limited`).
    pub publishes_rate_limited: u64,
    /// Publishes the broker failed to take (`ack_after_store`: refused
    /// `unavailable` or `internal`; else reported as errors).
    pub publishes_failed: u64,
    /// Messages shed by the drop-oldest slow-consumer policy.
    pub messages_dropped: u64,
    /// `gap` frames queued (history or the replay buffer lacked messages).
    pub gaps: u64,
    /// Connections closed for reading too slowly (close 4002).
    pub slow_consumer_disconnects: u64,
    /// Times the session was resumed on a new connection.
    pub resumes: u64,
}

impl SessionCounters {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &SessionCounters) {
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        self.frames_sent += other.frames_sent;
        self.publishes_refused += other.publishes_refused;
        self.publishes_rate_limited += other.publishes_rate_limited;
        self.publishes_failed += other.publishes_failed;
        self.messages_dropped += other.messages_dropped;
        self.gaps += other.gaps;
        self.slow_consumer_disconnects += other.slow_consumer_disconnects;
        self.resumes += other.resumes;
    }
}

/// Sans-IO server session, one per client session (survives reconnects).
#[derive(Debug)]
#[repr(C)] // hot fields first, in the order a message touches them (see below)
pub struct ServerSession {
    // The fields every message reads or writes come first and together: at
    // 10,000 sessions every session is cold when its next message comes, so
    // each cache line a message touches is a miss (`repr(C)` keeps this
    // order; the hub's lock and waker sit on the line before `epoch`).
    epoch: u64,
    state: ServerState,
    /// The attached connection has handled input (late frames of a superseded
    /// connection are taken only before that: see `handle_late_input`).
    heard: bool,
    /// The last publish came half the ack delay or more after the one
    /// before (or was the first): its ack need not wait for company.
    publishes_sparse: bool,
    last_recv: Instant,
    /// A client silent this long is dead (from the config, computed once:
    /// the pump asks for the deadline on every poll).
    dead_after: Duration,
    ack_batch: AckBatch,
    events: VecDeque<ServerEvent>,
    /// Encoded frames to write, with what they are (see [`Mark`]).
    transmit: VecDeque<(Bytes, Mark)>,
    codec: Arc<dyn FrameCodec>,
    /// Shared by every session of a hub: its lines stay cached.
    config: Arc<ServerConfig>,
    subs: FewMap<Sub>,
    last_publish: u64,
    publish_acked: u64,
    /// With `ack_after_store`: the last publish the broker stored (or that
    /// was refused); acknowledgements go up to it, never past it.
    publish_stored: u64,
    /// What the client may subscribe to and publish on (`None`: everything).
    guard: Option<Arc<dyn ChannelGuard>>,
    /// The publish rate limit's bucket (`None`: no limit).
    bucket: Option<Bucket>,
    /// Per-channel buckets of [`ServerConfig::channel_rates`] (made at the
    /// first publish a rule limits per session).
    channel_buckets: Option<Box<SessionBuckets>>,
    queued_bytes: usize,
    /// When the last new publish arrived.
    last_publish_at: Option<Instant>,
    /// Payload bytes of the publishes `ack_batch` holds.
    ack_batch_bytes: usize,
    /// Frames handed out by `poll_transmit` so far: the number of the last one.
    frames_sent: u64,
    /// What [`ServerSession::counters`] reports (`messages_received`,
    /// `frames_sent` are derived).
    counters: SessionCounters,
    replay: ReplayBuffer,
    encoder: FrameEncoder,
    /// Channel positions by frame number, for peers that resume by frame
    /// number ([`ServerSession::record_frame_positions`]); off by default,
    /// so boxed: a session without it carries 8 bytes for it, not 128.
    frame_log: Option<Box<FrameLog>>,
    // Cold: set up once, read on resume, detach and expiry.
    /// When the credentials the session was opened with expire.
    credentials_expire: Option<Instant>,
    /// The last publishes refused by name, repeated after a resume's
    /// `welcome` (the client may not have read the first refusal). Boxed:
    /// 8 bytes in every session, the deque only in those that refused one.
    #[allow(clippy::box_collection)]
    refused: Option<Box<VecDeque<ErrorFrame>>>,
    detached_at: Option<Instant>,
    id: SessionId,
    token: ResumeToken,
}

/// Refusals a session repeats after a resume (the most recent ones).
const MAX_REMEMBERED_REFUSALS: usize = 64;

/// What a queued frame is.
#[derive(Debug)]
enum Mark {
    /// A control frame (`Welcome`, acks, errors, `Close`...): never shed.
    Control,
    /// A `Message` frame: the drop-oldest policy may shed it.
    Message,
    /// A frame that moves the client to position `seq` on `channel`
    /// (`Message`, `Gap`, `Subscribed`), queued while the frame log is on.
    Position {
        channel: ChannelName,
        seq: u64,
        message: bool,
    },
}

impl Mark {
    fn is_message(&self) -> bool {
        matches!(self, Mark::Message | Mark::Position { message: true, .. })
    }
}

impl ServerSession {
    /// Decodes and checks the first frame of a connection, which must be a `Hello`.
    pub fn read_hello(
        codec: &dyn FrameCodec,
        input: &Bytes,
        limits: &Limits,
    ) -> Result<Hello, ProtocolError> {
        match decode_checked(codec, input, limits.max_frame_bytes)? {
            Frame::Hello(h) if h.version == PROTOCOL_VERSION => Ok(h),
            Frame::Hello(h) => Err(ProtocolError::UnsupportedVersion {
                got: h.version,
                supported: PROTOCOL_VERSION,
            }),
            other => Err(ProtocolError::UnexpectedFrame {
                frame: other.frame_type(),
                state: "awaiting hello",
            }),
        }
    }

    /// Encodes the `Error` + `Close` frames that refuse a connection before any session exists.
    pub fn refusal(codec: &dyn FrameCodec, error: &ProtocolError) -> Vec<Bytes> {
        let frames = [
            Frame::Error(ErrorFrame::new(error.code(), error.to_string())),
            Frame::Close(Close {
                code: error.close_code(),
                reason: error.to_string(),
            }),
        ];
        frames
            .iter()
            .filter_map(|f| codec.encode_to_bytes(f).ok())
            .collect()
    }

    /// A new session for a client whose `Hello` carried no (known) resume token.
    ///
    /// Pass an `Arc<ServerConfig>` to share one config among many sessions
    /// (the hub does): its cache lines then stay warm.
    pub fn accept(
        config: impl Into<Arc<ServerConfig>>,
        id: SessionId,
        token: ResumeToken,
        codec: Arc<dyn FrameCodec>,
        now: Instant,
    ) -> Self {
        let config = config.into();
        let ack_batch = AckBatch::new(config.ack_every, config.ack_delay);
        let dead_after = config
            .heartbeat
            .saturating_mul(config.dead_after_heartbeats.max(2));
        // A resume queues the whole replay at once: keep it well under the
        // transmit limit so replaying can never trip the slow-consumer check.
        let budget = config
            .limits
            .replay_buffer_bytes
            .min(config.limits.max_queued_bytes / 2);
        let replay = ReplayBuffer::new(budget);
        let bucket = config.publish_rate.map(|limit| Bucket::new(limit, now));
        let mut s = Self {
            config,
            state: ServerState::Open,
            id,
            token,
            codec,
            epoch: 1,
            last_recv: now,
            dead_after,
            heard: false,
            detached_at: None,
            refused: None,
            credentials_expire: None,
            guard: None,
            bucket,
            channel_buckets: None,
            last_publish: 0,
            publish_acked: 0,
            publish_stored: 0,
            ack_batch,
            ack_batch_bytes: 0,
            last_publish_at: None,
            publishes_sparse: true,
            subs: FewMap::default(),
            replay,
            transmit: VecDeque::new(),
            queued_bytes: 0,
            events: VecDeque::new(),
            encoder: FrameEncoder::default(),
            frames_sent: 0,
            counters: SessionCounters::default(),
            frame_log: None,
        };
        s.queue_welcome(false);
        s
    }

    /// Records which channel position every frame handed out carries, so that
    /// [`ServerSession::resume_after_frame`] can map a frame number back to
    /// positions. For transports that show frame numbers to their peer (SSE
    /// event ids); costs one bounded log entry per `Message` / `Gap` /
    /// `Subscribed` frame sent, so it is off unless asked for. Idempotent.
    pub fn record_frame_positions(&mut self) {
        if self.frame_log.is_none() {
            // As many entries as the replay buffer can hold messages: the log
            // never forgets a position the replay buffer could still serve.
            let cap = self.config.limits.replay_buffer_bytes / crate::replay::ENTRY_OVERHEAD;
            self.frame_log = Some(Box::new(FrameLog::new(cap.max(1024))));
        }
    }

    /// Number of the last frame handed out by [`ServerSession::poll_transmit`].
    ///
    /// Frames are numbered 1, 2, 3, … over the session's whole life, across
    /// connections; numbers are never reused. The next frame sent gets
    /// `frames_sent() + 1`.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// What the session counted so far (see [`SessionCounters`]).
    pub fn counters(&self) -> SessionCounters {
        SessionCounters {
            messages_received: self.last_publish - self.counters.publishes_refused,
            frames_sent: self.frames_sent,
            ..self.counters
        }
    }

    /// Attaches a new connection whose peer received every frame of this
    /// session up to number `frame` (SSE: the number in its `Last-Event-ID`)
    /// instead of reporting per-channel positions in a `Hello`.
    ///
    /// The positions are derived from the frame log (turned on here if it was
    /// not), then the session resumes as with [`ServerSession::resume`]:
    /// what the peer missed is re-sent under new frame numbers, lost history is
    /// an explicit `Gap`. When the log no longer knows a position the answer
    /// is the lower, safe one (duplicates the client drops, or a gap).
    ///
    /// Returns the new epoch, or `None` when `frame` was never sent (a forged
    /// or foreign id): the caller should start a new session instead.
    pub fn resume_after_frame(
        &mut self,
        now: Instant,
        codec: Arc<dyn FrameCodec>,
        frame: u64,
    ) -> Option<u64> {
        if frame > self.frames_sent || self.state == ServerState::Closed {
            return None;
        }
        self.record_frame_positions();
        let positions = match self.frame_log.as_mut() {
            Some(log) => {
                log.truncate_after(frame);
                log.positions_at(frame)
            }
            None => ChannelMap::default(),
        };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            resume: Some(self.token.clone()),
            positions: positions
                .into_iter()
                .filter(|(c, _)| self.subs.contains_key(c))
                .map(|(channel, seq)| ChannelPosition { channel, seq })
                .collect(),
            publisher: None,
        };
        Some(self.resume(now, codec, &hello))
    }

    /// Attaches a new connection to this session (the client presented its
    /// resume token). Re-sends what the client missed, or reports gaps.
    /// Returns the new connection epoch; older connections must stop.
    pub fn resume(&mut self, now: Instant, codec: Arc<dyn FrameCodec>, hello: &Hello) -> u64 {
        self.epoch += 1;
        self.counters.resumes += 1;
        self.heard = false;
        self.state = ServerState::Open;
        self.codec = codec;
        self.detached_at = None;
        self.last_recv = now;
        self.transmit.clear();
        self.queued_bytes = 0;
        self.ack_batch.clear();
        self.ack_batch_bytes = 0;
        self.queue_welcome(true);
        let positions: HashMap<&ChannelName, u64> = hello
            .positions
            .iter()
            .map(|p| (&p.channel, p.seq))
            .collect();
        let channels: Vec<ChannelName> = self.subs.keys().cloned().collect();
        for channel in channels {
            let after = match (positions.get(&channel), self.subs.get(&channel)) {
                (Some(&after), _) => after,
                // The client never saw `Subscribed` (lost with the old connection):
                // confirm again and replay from the start of the subscription.
                (None, Some(Sub::Active { start, .. })) => {
                    let start = *start;
                    self.queue_at(
                        &Frame::Subscribed(Subscribed {
                            channel: channel.clone(),
                            seq: start,
                        }),
                        &channel,
                        start,
                    );
                    start
                }
                // Still pending: `subscribed` will confirm it on this connection.
                (None, _) => continue,
            };
            let replay = self.replay.replay(&channel, after);
            if let Some((from, to)) = replay.gap {
                self.counters.gaps += 1;
                self.queue_at(
                    &Frame::Gap(Gap {
                        channel: channel.clone(),
                        from,
                        to,
                    }),
                    &channel,
                    to,
                );
            }
            for m in replay.messages {
                self.queue_message(&m, false);
            }
        }
        self.epoch
    }

    fn queue_welcome(&mut self, resumed: bool) {
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            session: self.id.clone(),
            resume_token: self.token.clone(),
            resumed,
            heartbeat_ms: u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            max_frame: u32::try_from(self.config.limits.max_frame_bytes).unwrap_or(u32::MAX),
            publish_acked: self.ackable(),
        };
        self.publish_acked = self.ackable();
        self.queue(&Frame::Welcome(welcome));
        if resumed {
            let refused: Vec<ErrorFrame> = self
                .refused
                .iter()
                .flat_map(|r| r.iter().cloned())
                .collect();
            for e in refused {
                self.queue(&Frame::Error(e));
            }
        }
    }

    /// Restricts what the client may subscribe to and publish on (see
    /// [`ChannelGuard`]); the default allows everything.
    pub fn set_guard(&mut self, guard: Arc<dyn ChannelGuard>) {
        self.guard = Some(guard);
    }

    /// Ends the session at `at` (the expiry of the credentials it was opened
    /// with): an `error unauthorized` and `close 4007` go to the client, and
    /// the session cannot be resumed (a new one needs fresh credentials).
    /// Called again (a refresh), it moves the deadline.
    pub fn set_credentials_expiry(&mut self, at: Option<Instant>) {
        self.credentials_expire = at;
    }

    /// Refuses publish `seq` for good with `code` and `message`: the client
    /// gets an `error` frame naming it, drops it and never re-sends it; its
    /// number counts as received (the next publish is `seq + 1`), and nothing
    /// reaches a channel. The session goes on. A hook deciding that a client
    /// may not publish somewhere calls this; the session itself does for a
    /// publish over the frame limit. A publish that is not the next one in
    /// order is a protocol error, as for any publish.
    pub fn refuse_publish(
        &mut self,
        now: Instant,
        seq: u64,
        code: ErrorCode,
        message: String,
    ) -> Result<(), ProtocolError> {
        let error = ErrorFrame::refusing(seq, code, message);
        if seq <= self.last_publish {
            // A resend of a refused publish: refuse it again.
            self.queue(&Frame::Error(error));
            return Ok(());
        }
        let expected = self.last_publish + 1;
        if seq != expected {
            return Err(ProtocolError::PublishOutOfOrder { expected, got: seq });
        }
        self.last_publish = seq;
        self.counters.publishes_refused += 1;
        if code == ErrorCode::RateLimited {
            self.counters.publishes_rate_limited += 1;
        }
        self.queue(&Frame::Error(error.clone()));
        let refused = self.refused.get_or_insert_with(Default::default);
        if refused.len() == MAX_REMEMBERED_REFUSALS {
            refused.pop_front();
        }
        refused.push_back(error);
        if self.publish_stored == seq - 1 {
            self.publish_stored = seq;
        }
        self.note_publish(now, 0);
        Ok(())
    }

    /// The publishes the client may be told are safe: all it sent, or with
    /// `ack_after_store` those the broker has.
    fn ackable(&self) -> u64 {
        if self.config.ack_after_store {
            self.publish_stored
        } else {
            self.last_publish
        }
    }

    /// With [`ServerConfig::ack_after_store`]: the broker stored publish
    /// `seq` (publishes are reported in order); its acknowledgement goes out
    /// with the next batch. Without, a no-op.
    pub fn publish_stored(&mut self, now: Instant, seq: u64, bytes: usize) {
        if !self.config.ack_after_store || seq <= self.publish_stored {
            return;
        }
        self.publish_stored = seq;
        self.note_publish(now, bytes);
    }

    /// With [`ServerConfig::ack_after_store`]: the broker failed to store
    /// publish `seq`. It is refused by name with `code` (e.g.
    /// [`ErrorCode::Unavailable`]: the client's caller may publish again
    /// later) and never acknowledged. Without the flag, the client has had
    /// its ack already: only an error is reported.
    pub fn publish_failed(&mut self, now: Instant, seq: u64, code: ErrorCode, message: String) {
        self.counters.publishes_failed += 1;
        if !self.config.ack_after_store {
            self.report_error(code, message);
            return;
        }
        if seq <= self.publish_stored {
            return;
        }
        let error = ErrorFrame::refusing(seq, code, message);
        self.queue(&Frame::Error(error.clone()));
        let refused = self.refused.get_or_insert_with(Default::default);
        if refused.len() == MAX_REMEMBERED_REFUSALS {
            refused.pop_front();
        }
        refused.push_back(error);
        self.publish_stored = seq;
        self.note_publish(now, 0);
    }

    /// An input over the frame limit that is a publish is refused by name
    /// (`Some`: handled) instead of ending the session; anything else over
    /// the limit (`None`) is a protocol error like any oversized frame.
    fn refuse_oversized(
        &mut self,
        now: Instant,
        codec: &dyn FrameCodec,
        input: &Bytes,
    ) -> Option<Result<(), ProtocolError>> {
        let max = self.config.limits.max_frame_bytes;
        let Ok(Frame::Publish(p)) = codec.decode(input) else {
            return None;
        };
        let e = ProtocolError::FrameTooLarge {
            size: input.len(),
            max,
        };
        Some(
            match self.refuse_publish(now, p.seq, e.code(), e.to_string()) {
                Ok(()) => Ok(()),
                Err(e) => self.handle_decoded(now, Err(e)),
            },
        )
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The resume token.
    pub fn token(&self) -> &ResumeToken {
        &self.token
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// Connection epoch: increases on every resume.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The codec of the attached connection.
    pub fn codec(&self) -> &Arc<dyn FrameCodec> {
        &self.codec
    }

    /// Bytes waiting in the transmit queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Bytes held for resume.
    pub fn replay_bytes(&self) -> usize {
        self.replay.bytes()
    }

    /// Channels this session is subscribed to (active or pending).
    pub fn channels(&self) -> impl Iterator<Item = &ChannelName> {
        self.subs.keys()
    }

    /// Handles one frame received from the client.
    pub fn handle_input(&mut self, now: Instant, input: Bytes) -> Result<(), ProtocolError> {
        if self.state != ServerState::Open {
            return Ok(());
        }
        self.last_recv = now;
        self.heard = true;
        self.counters.bytes_received += input.len() as u64;
        let max = self.config.limits.max_frame_bytes;
        if input.len() > max {
            let codec = self.codec.clone();
            if let Some(handled) = self.refuse_oversized(now, &*codec, &input) {
                return handled;
            }
        }
        let frame = decode_checked(&*self.codec, &input, max);
        self.handle_decoded(now, frame)
    }

    /// Handles a frame that a connection received (with `codec`, its own)
    /// before this session was resumed on another connection: it reaches the
    /// driver after the takeover.
    ///
    /// The client sent it before it moved, so it is handled as long as it
    /// still comes first, before the new connection's own input. After that it
    /// is dropped (`Ok(false)`), which the protocol covers: the client re-sends
    /// the publishes after its `welcome`'s `publish_acked`, and its pending
    /// subscriptions. An SSE client's POST answered 202 just before it
    /// reconnected is such a frame.
    pub fn handle_late_input(
        &mut self,
        now: Instant,
        codec: &dyn FrameCodec,
        input: Bytes,
    ) -> Result<bool, ProtocolError> {
        if self.heard || self.state != ServerState::Open {
            return Ok(false);
        }
        self.counters.bytes_received += input.len() as u64;
        let max = self.config.limits.max_frame_bytes;
        if input.len() > max
            && let Some(handled) = self.refuse_oversized(now, codec, &input)
        {
            return handled.map(|()| true);
        }
        let frame = decode_checked(codec, &input, max);
        self.handle_decoded(now, frame).map(|()| true)
    }

    fn handle_decoded(
        &mut self,
        now: Instant,
        frame: Result<Frame, ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                self.violation(&e);
                return Err(e);
            }
        };
        let result = self.on_frame(now, frame);
        if let Err(e) = &result {
            self.violation(e);
        }
        // Answers (pongs, errors) count against the queue too: a client that
        // pings without reading is a slow consumer like any other.
        self.check_slow_consumer();
        result
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) -> Result<(), ProtocolError> {
        match frame {
            Frame::Publish(p) => {
                if p.seq <= self.last_publish {
                    // A resend of something we have: acknowledge again, deliver
                    // nothing (with `ack_after_store`, only once it is stored:
                    // one still in the broker's hands is acknowledged then).
                    if p.seq <= self.ackable() {
                        self.note_publish(now, p.payload.len());
                    }
                    return Ok(());
                }
                let expected = self.last_publish + 1;
                if p.seq != expected {
                    return Err(ProtocolError::PublishOutOfOrder {
                        expected,
                        got: p.seq,
                    });
                }
                if self.bucket.as_mut().is_some_and(|b| !b.take(now)) {
                    let message = "publish rate limit reached: slow down".to_string();
                    return self.refuse_publish(now, p.seq, ErrorCode::RateLimited, message);
                }
                if !self
                    .guard
                    .as_ref()
                    .is_none_or(|g| g.may_publish(&p.channel))
                {
                    let message = format!("publishing on {} is not allowed", p.channel);
                    return self.refuse_publish(now, p.seq, ErrorCode::Forbidden, message);
                }
                if !self.config.channel_rates.is_empty() {
                    let over = match admit(
                        &self.config.channel_rates,
                        &mut self.channel_buckets,
                        &p.channel,
                        now,
                    ) {
                        Admit::Yes => None,
                        Admit::SessionLimit => Some("this session's"),
                        Admit::ChannelLimit => Some("all publishers'"),
                    };
                    if let Some(whose) = over {
                        let message = format!(
                            "{whose} publish rate limit on {} reached: slow down",
                            p.channel
                        );
                        return self.refuse_publish(now, p.seq, ErrorCode::RateLimited, message);
                    }
                }
                self.last_publish = p.seq;
                self.publishes_sparse = self.last_publish_at.is_none_or(|at| {
                    now.saturating_duration_since(at) >= self.config.ack_delay / 2
                });
                self.last_publish_at = Some(now);
                let bytes = p.payload.len();
                self.events.push_back(ServerEvent::Publish {
                    seq: p.seq,
                    channel: p.channel,
                    payload: p.payload,
                });
                if !self.config.ack_after_store {
                    self.note_publish(now, bytes);
                }
            }
            Frame::Ack(a) => {
                self.replay.ack(&a.channel, a.seq);
                if let Some(log) = self.frame_log.as_mut() {
                    log.ack(&a.channel, a.seq);
                }
            }
            Frame::Subscribe(s) => {
                if self.subs.contains_key(&s.channel) {
                    return Ok(());
                }
                if !self
                    .guard
                    .as_ref()
                    .is_none_or(|g| g.may_subscribe(&s.channel))
                {
                    self.queue(&Frame::Error(ErrorFrame::new(
                        ErrorCode::Forbidden,
                        format!("subscribing to {} is not allowed", s.channel),
                    )));
                    return Ok(());
                }
                let max = self.config.limits.max_subscriptions;
                if self.subs.len() >= max {
                    let e = ProtocolError::TooManySubscriptions { max };
                    self.queue(&Frame::Error(ErrorFrame::new(e.code(), e.to_string())));
                    return Ok(());
                }
                self.subs
                    .insert(s.channel.clone(), Sub::Pending(Vec::new()));
                self.events.push_back(ServerEvent::Subscribe {
                    channel: s.channel,
                    after: s.after,
                });
            }
            Frame::Unsubscribe(u) => {
                if self.subs.remove(&u.channel).is_some() {
                    self.replay.remove(&u.channel);
                    if let Some(log) = self.frame_log.as_mut() {
                        log.remove(&u.channel);
                    }
                    self.events
                        .push_back(ServerEvent::Unsubscribe { channel: u.channel });
                }
            }
            Frame::Ping(p) => self.queue(&Frame::Pong(p)),
            Frame::Rpc(r) => self.events.push_back(ServerEvent::Rpc(r)),
            Frame::Pong(_) | Frame::Error(_) => {}
            Frame::Close(c) => {
                self.queue(&Frame::Close(Close {
                    code: CloseCode::NORMAL,
                    reason: "bye".into(),
                }));
                self.end(format!("client closed: {}", c.reason), CloseCode::NORMAL);
            }
            other => {
                return Err(ProtocolError::UnexpectedFrame {
                    frame: other.frame_type(),
                    state: "open",
                });
            }
        }
        Ok(())
    }

    fn note_publish(&mut self, now: Instant, bytes: usize) {
        self.ack_batch_bytes = self.ack_batch_bytes.saturating_add(bytes);
        if self.ack_batch.note(now) || self.ack_batch_bytes >= self.config.ack_bytes {
            self.flush_acks();
        }
    }

    fn flush_acks(&mut self) {
        self.ack_batch.clear();
        self.ack_batch_bytes = 0;
        let ackable = self.ackable();
        if ackable > self.publish_acked {
            self.publish_acked = ackable;
            self.queue(&Frame::PublishAck(PublishAck { seq: ackable }));
        }
    }

    fn violation(&mut self, e: &ProtocolError) {
        self.queue(&Frame::Error(ErrorFrame::new(e.code(), e.to_string())));
        let close = Frame::Close(Close {
            code: e.close_code(),
            reason: e.to_string(),
        });
        self.queue(&close);
        self.end(e.to_string(), e.close_code());
    }

    fn end(&mut self, reason: String, code: u16) {
        self.state = ServerState::Closed;
        self.events.push_back(ServerEvent::Disconnect {
            code,
            reason: reason.clone(),
        });
        self.events.push_back(ServerEvent::Closed { reason });
    }

    /// The broker subscription for `channel` is live: report the position, send
    /// the gap and backlog, then any live messages that arrived meanwhile.
    pub fn subscribed(&mut self, channel: &ChannelName, start: SubscriptionStart) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let parked = match sub {
            Sub::Pending(parked) => std::mem::take(parked),
            Sub::Active { .. } => return,
        };
        *sub = Sub::Active {
            start: start.position,
            last: start.position,
        };
        self.queue_at(
            &Frame::Subscribed(Subscribed {
                channel: channel.clone(),
                seq: start.position,
            }),
            channel,
            start.position,
        );
        if let Some((from, to)) = start.gap {
            self.counters.gaps += 1;
            self.queue_at(
                &Frame::Gap(Gap {
                    channel: channel.clone(),
                    from,
                    to,
                }),
                channel,
                to,
            );
            if let Some(Sub::Active { last, .. }) = self.subs.get_mut(channel) {
                *last = (*last).max(to);
            }
        }
        // Encoded for this session alone: the backlog comes from history and
        // parked messages come after the fan-out they were part of, so a
        // cached encoding would be shared with nobody and stay behind in the
        // retained messages.
        for m in start.backlog.iter().chain(parked.iter()) {
            self.deliver_as(m, false);
        }
    }

    /// Reports an error to the client (e.g. a publish the broker refused); the session goes on.
    pub fn report_error(&mut self, code: ErrorCode, message: String) {
        self.queue(&Frame::Error(ErrorFrame::new(code, message)));
    }

    /// Takes the next event if it is a `Publish`, for a hub whose broker
    /// publishes synchronously (no `await`, so no trip out of the pump), and
    /// says whether the event after it is a `Publish` too. Events keep their
    /// order: a publish behind a subscribe stays queued.
    pub fn poll_publish(&mut self) -> Option<(ChannelName, Bytes, bool)> {
        self.poll_publish_except(&|_| false)
    }

    /// [`ServerSession::poll_publish`], leaving queued (as events, in order)
    /// the publishes on channels for which `keep` holds (channels the hub
    /// serves itself rather than through its broker).
    pub fn poll_publish_except(
        &mut self,
        keep: &dyn Fn(&ChannelName) -> bool,
    ) -> Option<(ChannelName, Bytes, bool)> {
        let takeable = |e: Option<&ServerEvent>| matches!(e, Some(ServerEvent::Publish { channel, .. }) if !keep(channel));
        if !takeable(self.events.front()) {
            return None;
        }
        match self.events.pop_front() {
            Some(ServerEvent::Publish {
                channel, payload, ..
            }) => {
                let more = takeable(self.events.front());
                Some((channel, payload, more))
            }
            _ => None,
        }
    }

    /// Subscribing failed: tell the client and forget the subscription.
    pub fn subscribe_failed(&mut self, channel: &ChannelName, code: ErrorCode, message: String) {
        self.subs.remove(channel);
        self.queue(&Frame::Error(ErrorFrame::new(code, message)));
    }

    /// Queues a message of a subscribed channel (fan-out entry point).
    ///
    /// The encoded frame is shared with every other receiver using the same codec.
    pub fn deliver(&mut self, message: &Arc<SharedMessage>) {
        self.deliver_as(message, true);
    }

    /// [`ServerSession::deliver`] for the message's only receiver: the frame
    /// is encoded for this session alone, without the message's shared cache
    /// (nobody would share it).
    pub fn deliver_alone(&mut self, message: &Arc<SharedMessage>) {
        self.deliver_as(message, false);
    }

    fn deliver_as(&mut self, message: &Arc<SharedMessage>, shared: bool) {
        let Some(sub) = self.subs.get_mut(message.channel()) else {
            return;
        };
        match sub {
            Sub::Pending(parked) => {
                parked.push(message.clone());
                return;
            }
            Sub::Active { last, .. } => {
                if message.seq() <= *last {
                    return;
                }
                *last = message.seq();
            }
        }
        if self.state == ServerState::Closed {
            return;
        }
        self.replay.push(message.clone());
        if self.state == ServerState::Open {
            self.queue_message(message, shared);
            // A write is going out anyway: a pending publish ack rides along
            // instead of costing its own write when the timer fires, if
            // publishes are sparse (no other message is likely to come before
            // the timer) or it is half its delay old. A younger one among
            // frequent publishes waits, so that a busy client whose publishes
            // come back to it (chat, echo) gets one ack per several messages,
            // not one per message. `last_recv` stands in for the time: a
            // delivery has none of its own, and it can only be later.
            if self.ackable() > self.publish_acked
                && (self.publishes_sparse || self.ack_batch.is_ripe(self.last_recv))
            {
                self.flush_acks();
            }
            self.check_slow_consumer();
        }
    }

    /// Queues `message`'s frame; `shared`: through the message's encoding
    /// cache (fan-out to several receivers), else encoded for this session
    /// alone (a single receiver, a replay, a parked message).
    fn queue_message(&mut self, message: &SharedMessage, shared: bool) {
        let encoded = if shared {
            message.encoded(&*self.codec)
        } else {
            message.encode_unshared(&*self.codec, &mut self.encoder)
        };
        match encoded {
            Ok(bytes) => {
                let mark = if self.frame_log.is_some() {
                    Mark::Position {
                        channel: message.channel().clone(),
                        seq: message.seq(),
                        message: true,
                    }
                } else {
                    Mark::Message
                };
                self.push_transmit(bytes, mark);
            }
            Err(e) => {
                let code = ErrorCode::Internal;
                self.queue(&Frame::Error(ErrorFrame::new(
                    code,
                    format!("cannot encode message: {e}"),
                )));
            }
        }
    }

    fn check_slow_consumer(&mut self) {
        let limit = self.config.limits.max_queued_bytes;
        if self.state != ServerState::Open || self.queued_bytes <= limit {
            return;
        }
        match self.config.slow_consumer {
            SlowConsumerPolicy::Disconnect => {
                let reason = format!(
                    "slow consumer: {} bytes queued, limit {limit}",
                    self.queued_bytes
                );
                self.transmit.clear();
                self.queued_bytes = 0;
                self.counters.slow_consumer_disconnects += 1;
                self.events.push_back(ServerEvent::Disconnect {
                    code: CloseCode::SLOW_CONSUMER,
                    reason,
                });
                self.state = ServerState::Detached;
                self.detached_at = None; // set by `detach` when the driver lets go
            }
            SlowConsumerPolicy::DropOldest => {
                // Shed the oldest messages (the client sees a gap); control frames
                // (Welcome, Subscribed, acks, errors, Close) are never dropped.
                while self.queued_bytes > limit {
                    let Some(i) = self.transmit.iter().position(|(_, mark)| mark.is_message())
                    else {
                        break;
                    };
                    if let Some((b, _)) = self.transmit.remove(i) {
                        self.queued_bytes -= b.len();
                        self.counters.messages_dropped += 1;
                    }
                }
            }
        }
    }

    /// The connection is gone (error, close or slow-consumer disconnect): keep
    /// the session for `resume_window`, buffering for replay.
    pub fn detach(&mut self, now: Instant) {
        if self.state == ServerState::Closed {
            return;
        }
        self.state = ServerState::Detached;
        self.detached_at = Some(now);
        self.transmit.clear();
        self.queued_bytes = 0;
    }

    /// Handles timers: dead clients, resume-window expiry, delayed acks.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            ServerState::Open => {
                if self.credentials_expire.is_some_and(|at| now >= at) {
                    let reason = "credentials expired: reconnect with fresh ones".to_string();
                    self.queue(&Frame::Error(ErrorFrame::new(
                        ErrorCode::Unauthorized,
                        reason.clone(),
                    )));
                    self.queue(&Frame::Close(Close {
                        code: CloseCode::CREDENTIALS_EXPIRED,
                        reason: reason.clone(),
                    }));
                    self.end(reason, CloseCode::CREDENTIALS_EXPIRED);
                    return;
                }
                if now >= self.last_recv + self.dead_after {
                    self.events.push_back(ServerEvent::Disconnect {
                        code: CloseCode::HEARTBEAT_TIMEOUT,
                        reason: "heartbeat timeout: no data from the client".into(),
                    });
                    self.detach(now);
                    return;
                }
                if self.ack_batch.is_due(now) {
                    self.flush_acks();
                }
            }
            ServerState::Detached => {
                if let Some(at) = self.detached_at
                    && now >= at + self.config.resume_window
                {
                    self.state = ServerState::Closed;
                    self.events.push_back(ServerEvent::Closed {
                        reason: "resume window expired".into(),
                    });
                }
            }
            ServerState::Closed => {}
        }
    }

    /// When [`ServerSession::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ServerState::Open => {
                let dead = self.last_recv + self.dead_after;
                let next = self.ack_batch.deadline().map_or(dead, |ack| ack.min(dead));
                Some(self.credentials_expire.map_or(next, |at| at.min(next)))
            }
            ServerState::Detached => self.detached_at.map(|at| at + self.config.resume_window),
            ServerState::Closed => None,
        }
    }

    /// Asks the client to go away (server shutdown): queue `Close`, then disconnect.
    pub fn shutdown(&mut self, reason: &str) {
        if self.state == ServerState::Open {
            self.flush_acks();
            let code = CloseCode::GOING_AWAY;
            self.queue(&Frame::Close(Close {
                code,
                reason: reason.into(),
            }));
            self.events.push_back(ServerEvent::Disconnect {
                code,
                reason: reason.into(),
            });
        }
    }

    /// Queues an RPC frame for the client (a control frame: never shed).
    /// False when the session has no open connection (the frame is dropped:
    /// calls live on one connection).
    pub fn send_rpc(&mut self, frame: RpcFrame) -> bool {
        if self.state != ServerState::Open {
            return false;
        }
        self.queue(&Frame::Rpc(frame));
        true
    }

    /// Next encoded frame to write.
    ///
    /// Frames are numbered as they are handed out (see [`ServerSession::frames_sent`]).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let (b, mark) = self.transmit.pop_front()?;
        self.queued_bytes -= b.len();
        self.frames_sent += 1;
        self.counters.bytes_sent += b.len() as u64;
        self.counters.messages_sent += u64::from(mark.is_message());
        if let (Mark::Position { channel, seq, .. }, Some(log)) = (mark, self.frame_log.as_mut()) {
            log.record(self.frames_sent, channel, seq);
        }
        Some(b)
    }

    /// True when frames wait for [`ServerSession::poll_transmit`].
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// True when events wait for the hub.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Next event for the hub.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Queues a frame that moves the client to `seq` on `channel`.
    fn queue_at(&mut self, frame: &Frame, channel: &ChannelName, seq: u64) {
        let mark = if self.frame_log.is_some() {
            Mark::Position {
                channel: channel.clone(),
                seq,
                message: false,
            }
        } else {
            Mark::Control
        };
        self.queue_marked(frame, mark);
    }

    fn queue(&mut self, frame: &Frame) {
        self.queue_marked(frame, Mark::Control);
    }

    fn queue_marked(&mut self, frame: &Frame, mark: Mark) {
        match self.encoder.encode(&*self.codec, frame) {
            Ok(b) => self.push_transmit(b, mark),
            Err(e) => debug_assert!(
                false,
                "control frame {:?} failed to encode: {e}",
                frame.frame_type()
            ),
        }
    }

    fn push_transmit(&mut self, b: Bytes, mark: Mark) {
        self.queued_bytes += b.len();
        self.transmit.push_back((b, mark));
    }
}
