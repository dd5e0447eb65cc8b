//! Shared in-memory harness: wires a `ClientSession` to a `ServerSession` with injected time and plays the hub by hand.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_codec::JsonCodec;
use tidings_protocol::{
    ChannelName, ClientConfig, ClientEvent, ClientSession, Frame, FrameCodec, Instant,
    MessageIdGen, ProtocolError, ResumeToken, ServerConfig, ServerEvent, ServerSession,
    ServerState, SessionId, SharedMessage, SubscriptionStart,
};

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A channel name (panics on invalid names; tests only use valid ones).
pub fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// The JSON codec as a shared trait object.
pub fn codec() -> Arc<dyn FrameCodec> {
    Arc::new(JsonCodec::new())
}

/// Encodes a frame with the JSON codec.
pub fn enc(frame: &Frame) -> Bytes {
    JsonCodec::new().encode_to_bytes(frame).unwrap()
}

/// Decodes a frame with the JSON codec.
pub fn dec(bytes: &Bytes) -> Frame {
    JsonCodec::new().decode(bytes).unwrap()
}

/// Drains a client's transmit queue, decoded.
pub fn drain_client(c: &mut ClientSession) -> Vec<Frame> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|b| dec(&b))
        .collect()
}

/// Drains a server's transmit queue, decoded.
pub fn drain_server(s: &mut ServerSession) -> Vec<Frame> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|b| dec(&b))
        .collect()
}

/// Drains a client's events.
pub fn client_events(c: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// A new server session `s1` (resume token `t1`) with [`server_config`].
pub fn accepted_server(now: Instant) -> ServerSession {
    ServerSession::accept(
        server_config(),
        SessionId("s1".into()),
        ResumeToken("t1".into()),
        codec(),
        now,
    )
}

/// Drains a server's events.
pub fn server_events(s: &mut ServerSession) -> Vec<ServerEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A `Message` frame (for feeding a client directly).
pub fn message_frame(channel: &str, seq: u64, payload: &str) -> Bytes {
    enc(&Frame::Message(tidings_protocol::Message {
        channel: ch(channel),
        seq,
        id: tidings_protocol::MessageId(seq),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }))
}

/// The hub: per-channel sequence numbers, full history, and what was published.
#[derive(Debug)]
pub struct Hub {
    channels: HashMap<ChannelName, Vec<Arc<SharedMessage>>>,
    ids: MessageIdGen,
    /// Every `ServerEvent::Publish` the hub received, in order.
    pub published: Vec<(ChannelName, Bytes)>,
    /// Every `ServerEvent::Subscribe` the hub received.
    pub subscribe_requests: Vec<(ChannelName, Option<u64>)>,
    /// Whether a re-subscription with `after` is served from history (else: gap).
    pub history: bool,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            channels: HashMap::new(),
            ids: MessageIdGen::new(7),
            published: Vec::new(),
            subscribe_requests: Vec::new(),
            history: true,
        }
    }
}

impl Hub {
    /// Assigns the next sequence number of `channel` and records the message.
    pub fn next_message(&mut self, channel: &ChannelName, payload: Bytes) -> Arc<SharedMessage> {
        let log = self.channels.entry(channel.clone()).or_default();
        let seq = log.len() as u64 + 1;
        let m = Arc::new(SharedMessage::new(
            channel.clone(),
            seq,
            self.ids.next_id(),
            payload,
        ));
        log.push(m.clone());
        m
    }

    /// Highest sequence number of `channel`.
    pub fn last_seq(&self, channel: &ChannelName) -> u64 {
        self.channels.get(channel).map_or(0, |l| l.len() as u64)
    }

    /// Every message of `channel`, in order.
    pub fn history(&self, channel: &ChannelName) -> &[Arc<SharedMessage>] {
        self.channels.get(channel).map_or(&[], |l| l.as_slice())
    }

    /// Where a subscription to `channel` starts, given the client's resume point.
    pub fn start(&self, channel: &ChannelName, after: Option<u64>) -> SubscriptionStart {
        let last = self.last_seq(channel);
        match after {
            Some(a) if a < last => {
                if self.history {
                    let backlog = self.history(channel)[usize::try_from(a).unwrap()..].to_vec();
                    SubscriptionStart {
                        position: a,
                        gap: None,
                        backlog,
                    }
                } else {
                    SubscriptionStart {
                        position: a,
                        gap: Some((a + 1, last)),
                        backlog: vec![],
                    }
                }
            }
            _ => SubscriptionStart {
                position: last,
                gap: None,
                backlog: vec![],
            },
        }
    }
}

/// A client and a server session connected in memory.
#[derive(Debug)]
pub struct Net {
    /// Start of time.
    pub t0: Instant,
    /// The current time.
    pub now: Instant,
    /// The client.
    pub client: ClientSession,
    /// The server session (`None` until the first `Hello`, or after the hub forgot it).
    pub server: Option<ServerSession>,
    /// Settings for new server sessions.
    pub server_config: ServerConfig,
    /// The hub.
    pub hub: Hub,
    /// Every event the client app saw.
    pub client_events: Vec<ClientEvent>,
    /// Every event the server session gave the hub.
    pub server_events: Vec<ServerEvent>,
    /// Errors returned by `ServerSession::handle_input`.
    pub server_errors: Vec<ProtocolError>,
    /// Errors returned by `ClientSession::handle_input`.
    pub client_errors: Vec<ProtocolError>,
    /// Every frame written client → server (delivered or not).
    pub c2s: Vec<Frame>,
    /// Every frame written server → client.
    pub s2c: Vec<Frame>,
    /// Whether a transport is up between the two.
    pub connected: bool,
    /// Frames the server writes are lost (the server looks dead to the client).
    pub blackhole_s2c: bool,
    /// Frames the client writes are lost (the client looks dead to the server).
    pub blackhole_c2s: bool,
    /// Resume by frame number, as over SSE: the server records frame
    /// positions and a reconnect resumes with `resume_after_frame(last_frame)`
    /// instead of the `Hello`'s positions (the `Hello` still names the session).
    /// Not meant to be combined with `blackhole_s2c` (an ordered stream never
    /// delivers a frame after losing an earlier one).
    pub frame_mode: bool,
    /// Number of the last server frame the client received (frame mode).
    pub last_frame: u64,
    disconnect_requested: bool,
    sessions: u64,
    codec: Arc<dyn FrameCodec>,
}

impl Net {
    /// A disconnected pair at a fresh `t0`.
    pub fn new(client: ClientConfig, server: ServerConfig) -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            client: ClientSession::new(client, 42, t0),
            server: None,
            server_config: server,
            hub: Hub::default(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            server_errors: Vec::new(),
            client_errors: Vec::new(),
            c2s: Vec::new(),
            s2c: Vec::new(),
            connected: false,
            blackhole_s2c: false,
            blackhole_c2s: false,
            frame_mode: false,
            last_frame: 0,
            disconnect_requested: false,
            sessions: 0,
            codec: codec(),
        }
    }

    /// Defaults on both sides, connected and pumped.
    pub fn connected(client: ClientConfig, server: ServerConfig) -> Self {
        let mut net = Self::new(client, server);
        net.connect();
        net
    }

    /// The server session (panics when there is none).
    pub fn server(&mut self) -> &mut ServerSession {
        self.server.as_mut().unwrap()
    }

    /// Opens a transport: `Hello` goes out, the hub resumes the session named
    /// by its token or accepts a new one. Nothing else is pumped.
    pub fn connect_no_pump(&mut self) {
        assert!(
            self.client.wants_connect(self.now),
            "client does not want to connect yet"
        );
        assert!(!self.connected);
        self.client.on_connecting();
        self.client.on_transport_up(self.now, self.codec.clone());
        let hello_bytes = self.client.poll_transmit().unwrap();
        self.c2s.push(dec(&hello_bytes));
        let hello =
            ServerSession::read_hello(&*self.codec, &hello_bytes, &self.server_config.limits)
                .unwrap();
        let known = self.server.as_ref().is_some_and(|s| {
            s.state() != ServerState::Closed && hello.resume.as_ref() == Some(s.token())
        });
        if known && self.frame_mode {
            let (now, frame) = (self.now, self.last_frame);
            let codec = self.codec.clone();
            self.server()
                .resume_after_frame(now, codec, frame)
                .expect("the client's last frame was sent by this session");
        } else if known {
            let now = self.now;
            let codec = self.codec.clone();
            self.server().resume(now, codec, &hello);
        } else {
            self.sessions += 1;
            let n = self.sessions;
            self.server = Some(ServerSession::accept(
                self.server_config.clone(),
                SessionId(format!("session-{n}")),
                ResumeToken(format!("token-{n}")),
                self.codec.clone(),
                self.now,
            ));
            self.last_frame = 0;
            if self.frame_mode {
                self.server().record_frame_positions();
            }
        }
        self.connected = true;
        self.disconnect_requested = false;
    }

    /// Opens a transport and pumps until quiet.
    pub fn connect(&mut self) {
        self.connect_no_pump();
        self.pump();
    }

    /// Moves time to the client's retry time if needed, then connects (no pump).
    pub fn reconnect_no_pump(&mut self) {
        if !self.client.wants_connect(self.now) {
            let at = self.client.poll_timeout().unwrap();
            assert!(at > self.now);
            self.now = at;
            self.tick();
        }
        self.connect_no_pump();
    }

    /// Moves time to the client's retry time if needed, connects and pumps.
    pub fn reconnect(&mut self) {
        self.reconnect_no_pump();
        self.pump();
    }

    /// The transport breaks: both sides notice, frames in flight are lost.
    pub fn drop_link(&mut self) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.disconnect_requested = false;
        let now = self.now;
        self.client.on_transport_down(now, "link dropped");
        if let Some(s) = self.server.as_mut() {
            s.detach(now);
        }
        self.collect();
    }

    /// The link breaks while up to `n` server frames are in flight: they were
    /// handed out (and numbered) by the server but never reach the client.
    pub fn cut_in_flight(&mut self, n: usize) {
        if !self.connected {
            return;
        }
        for _ in 0..n {
            let Some(b) = self.server.as_mut().and_then(ServerSession::poll_transmit) else {
                break;
            };
            self.s2c.push(dec(&b));
        }
        self.drop_link();
    }

    /// Publishes from another node of the hub: next seq, delivered to the session.
    pub fn inject(&mut self, channel: &str, payload: &str) -> u64 {
        let m = self
            .hub
            .next_message(&ch(channel), Bytes::copy_from_slice(payload.as_bytes()));
        if let Some(s) = self.server.as_mut() {
            s.deliver(&m);
        }
        m.seq()
    }

    /// Plays the hub role on the server's events.
    pub fn run_hub(&mut self) {
        let Some(server) = self.server.as_mut() else {
            return;
        };
        while let Some(ev) = server.poll_event() {
            match &ev {
                ServerEvent::Subscribe { channel, after } => {
                    self.hub.subscribe_requests.push((channel.clone(), *after));
                    let start = self.hub.start(channel, *after);
                    server.subscribed(channel, start);
                }
                ServerEvent::Publish {
                    channel, payload, ..
                } => {
                    self.hub.published.push((channel.clone(), payload.clone()));
                    let m = self.hub.next_message(channel, payload.clone());
                    server.deliver(&m);
                }
                ServerEvent::Disconnect { .. } => self.disconnect_requested = true,
                _ => {}
            }
            self.server_events.push(ev);
        }
    }

    /// Collects client events.
    pub fn collect(&mut self) {
        while let Some(ev) = self.client.poll_event() {
            self.client_events.push(ev);
        }
    }

    /// Sends one client frame to the server. False when there was none.
    pub fn step_c2s(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        let Some(b) = self.client.poll_transmit() else {
            return false;
        };
        self.c2s.push(dec(&b));
        if !self.blackhole_c2s
            && let Some(s) = self.server.as_mut()
            && let Err(e) = s.handle_input(self.now, b)
        {
            self.server_errors.push(e);
        }
        self.run_hub();
        self.after_step();
        true
    }

    /// Sends one server frame to the client. False when there was none.
    pub fn step_s2c(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        let Some(b) = self.server.as_mut().and_then(ServerSession::poll_transmit) else {
            return false;
        };
        self.s2c.push(dec(&b));
        if !self.blackhole_s2c {
            self.last_frame = self.server.as_ref().map_or(0, ServerSession::frames_sent);
            if let Err(e) = self.client.handle_input(self.now, b) {
                self.client_errors.push(e);
            }
        }
        self.collect();
        self.after_step();
        true
    }

    fn after_step(&mut self) {
        if !self.connected {
            return;
        }
        if !self.client.has_transport() {
            // The client dropped the transport (protocol error, Close frame, timeout,
            // `close`): flush what it still queued, then close.
            while let Some(b) = self.client.poll_transmit() {
                self.c2s.push(dec(&b));
                if !self.blackhole_c2s
                    && let Some(s) = self.server.as_mut()
                    && let Err(e) = s.handle_input(self.now, b)
                {
                    self.server_errors.push(e);
                }
            }
            self.connected = false;
            if let Some(s) = self.server.as_mut() {
                s.detach(self.now);
            }
            self.run_hub();
        } else if self.disconnect_requested
            && self.server.as_mut().is_none_or(|s| s.queued_bytes() == 0)
        {
            // The server asked to close after flushing what is queued.
            self.disconnect_requested = false;
            self.drop_link();
        }
    }

    /// Moves frames both ways until neither side has anything to write.
    pub fn pump(&mut self) {
        self.run_hub();
        self.after_step();
        loop {
            let mut moved = false;
            while self.step_c2s() {
                moved = true;
            }
            while self.step_s2c() {
                moved = true;
            }
            if !moved {
                break;
            }
        }
        self.collect();
    }

    /// Handles timers on both sides at `now`, then pumps.
    pub fn tick(&mut self) {
        let now = self.now;
        self.client.handle_timeout(now);
        if let Some(s) = self.server.as_mut() {
            s.handle_timeout(now);
        }
        self.collect();
        self.pump();
    }

    /// Runs every timer due up to `end` (in order), then sets the clock to `end`.
    pub fn run_until(&mut self, end: Instant) {
        loop {
            let next = [
                self.client.poll_timeout(),
                self.server.as_ref().and_then(ServerSession::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > self.now)
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t;
                    self.tick();
                }
                _ => break,
            }
        }
        self.now = end;
        self.tick();
    }

    /// Runs timers for `d`.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Takes the client events seen so far.
    pub fn take_client_events(&mut self) -> Vec<ClientEvent> {
        self.collect();
        std::mem::take(&mut self.client_events)
    }

    /// Takes the server events seen so far.
    pub fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// `(seq, payload)` of every `Message` event the client app saw on `channel`.
    pub fn received(&self, channel: &str) -> Vec<(u64, String)> {
        let channel = ch(channel);
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) if m.channel == channel => {
                    Some((m.seq, String::from_utf8(m.payload.to_vec()).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    /// Payloads the hub received from the client, as strings.
    pub fn hub_published(&self) -> Vec<String> {
        self.hub
            .published
            .iter()
            .map(|(_, p)| String::from_utf8(p.to_vec()).unwrap())
            .collect()
    }
}

/// Client settings used by most tests: acks every message, quick backoff.
/// Long enough for a delayed ack (the client's `ack_delay`) or publish ack
/// (the server's) to go out.
pub fn past_ack_delay() -> Duration {
    client_config().ack_delay.max(server_config().ack_delay) + ms(1)
}

pub fn client_config() -> ClientConfig {
    ClientConfig::default().with_backoff(ms(100), ms(1_000))
}

/// Server settings used by most tests: a 1 s heartbeat.
pub fn server_config() -> ServerConfig {
    ServerConfig::default().with_heartbeat(ms(1_000))
}
