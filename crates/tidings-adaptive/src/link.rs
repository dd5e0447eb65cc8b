//! The active transport, wrapped: watches it (frames in and out, heartbeat round trips), runs the policy's probes in the background, and ends it with a switch once a better connection is ready.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tidings_protocol::{Frame, FrameCodec};
use tidings_runtime::{
    Attachment, BoxFuture, Connected, Timer, Transport, TransportError, TransportKind,
    TransportMetrics,
};
use tracing::debug;
use web_time::Instant;

use crate::core::{PlatformTimer, Ready, Shared};
use crate::events::{AdaptiveEvent, kind_name};
use crate::policy::{Action, Activity, SwitchReason};

/// Frames up to this size are decoded to spot heartbeats (pings and pongs
/// are a few dozen bytes; messages are larger).
const HEARTBEAT_FRAME_MAX: usize = 48;

struct Probe {
    kind: TransportKind,
    reason: SwitchReason,
    started: Instant,
    fut: BoxFuture<'static, Result<Connected, TransportError>>,
}

/// The transport the session runs on, as the driver sees it.
pub(crate) struct Link {
    inner: Box<dyn Transport>,
    kind: TransportKind,
    codec: Arc<dyn FrameCodec>,
    shared: Arc<Shared>,
    timer: PlatformTimer,
    activity: Activity,
    probe: Option<Probe>,
    /// Set once a switch is decided: every later read ends the connection.
    switching: Option<(TransportKind, SwitchReason)>,
    /// The ping sent last and when.
    ping: Option<(u64, Instant)>,
}

impl Link {
    pub(crate) fn new(
        inner: Box<dyn Transport>,
        kind: TransportKind,
        codec: Arc<dyn FrameCodec>,
        shared: Arc<Shared>,
        now: Instant,
    ) -> Self {
        Self {
            inner,
            kind,
            codec,
            shared,
            timer: PlatformTimer::default(),
            activity: Activity::new(now),
            probe: None,
            switching: None,
            ping: None,
        }
    }

    fn switch_error(&self) -> Option<TransportError> {
        self.switching.map(|(to, reason)| {
            TransportError::Switch(format!(
                "{} → {} ({reason:?})",
                kind_name(self.kind),
                kind_name(to)
            ))
        })
    }

    fn start_probe(&mut self, kind: TransportKind, reason: SwitchReason, now: Instant) {
        let Some(dialer) = self.shared.dialer(kind) else {
            self.shared.lock().policy.probe_failed(now, kind);
            return;
        };
        debug!(
            from = kind_name(self.kind),
            to = kind_name(kind),
            ?reason,
            "probe"
        );
        {
            let mut core = self.shared.lock();
            core.stats.attempts.bump(kind);
            core.policy.probe_started();
        }
        self.probe = Some(Probe {
            kind,
            reason,
            started: now,
            fut: dialer.dial(),
        });
    }

    /// Runs the policy and the probe; `true` once the switch is decided.
    fn watch(&mut self, cx: &mut Context<'_>) -> bool {
        self.shared.link.register(cx.waker());
        loop {
            let now = Instant::now();
            if self.probe.is_none() {
                let forced = self.shared.lock().forced.take();
                match forced {
                    Some(kind) if kind != self.kind => {
                        self.start_probe(kind, SwitchReason::Forced, now)
                    }
                    _ => {
                        let action = self.shared.lock().policy.poll_action(now, &self.activity);
                        if let Some(Action::Probe { kind, reason }) = action {
                            self.start_probe(kind, reason, now);
                        }
                    }
                }
            }
            let timeout = self.shared.lock().policy.config().attempt_timeout;
            if let Some(p) = self.probe.as_mut() {
                let outcome = match p.fut.as_mut().poll(cx) {
                    Poll::Ready(r) => Some(r),
                    Poll::Pending if now >= p.started + timeout => {
                        Some(Err(TransportError::Timeout("adaptive probe")))
                    }
                    Poll::Pending => None,
                };
                match outcome {
                    Some(Ok(connected)) => {
                        let p = self.probe.take().map(|p| (p.kind, p.reason, p.started));
                        if let Some((kind, reason, started)) = p {
                            self.shared.lock().ready = Some(Ready {
                                kind,
                                connected,
                                reason,
                                handshake: now.saturating_duration_since(started),
                            });
                            self.switching = Some((kind, reason));
                            return true;
                        }
                    }
                    Some(Err(e)) => {
                        if let Some(p) = self.probe.take() {
                            debug!(transport = kind_name(p.kind), error = %e, "probe failed");
                            {
                                let mut core = self.shared.lock();
                                core.policy.probe_failed(now, p.kind);
                                core.stats.failures.bump(p.kind);
                            }
                            self.shared.event(AdaptiveEvent::AttemptFailed {
                                kind: p.kind,
                                error: e.to_string(),
                            });
                        }
                        continue;
                    }
                    None => {}
                }
            }
            let mut deadline = self.shared.lock().policy.poll_timeout(&self.activity);
            if let Some(p) = &self.probe {
                let d = p.started + timeout;
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
            self.timer.reset(deadline);
            if self.timer.poll_elapsed(cx).is_ready() {
                continue;
            }
            return false;
        }
    }

    fn heartbeat_in(&mut self, frame: &Bytes, now: Instant) {
        if frame.len() > HEARTBEAT_FRAME_MAX {
            return;
        }
        if let (Ok(Frame::Pong(p)), Some((nonce, at))) = (self.codec.decode(frame), self.ping)
            && p.nonce == nonce
        {
            self.ping = None;
            let rtt = now.saturating_duration_since(at);
            self.shared.lock().policy.rtt_sample(rtt);
        }
    }

    fn heartbeat_out(&mut self, frame: &Bytes, now: Instant) {
        if frame.len() > HEARTBEAT_FRAME_MAX {
            return;
        }
        if let Ok(Frame::Ping(p)) = self.codec.decode(frame) {
            self.ping = Some((p.nonce, now));
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(p) = self.probe.take() {
            self.shared.lock().interrupted = Some((p.kind, p.reason));
        }
    }
}

impl Transport for Link {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        if self.switching.is_none() {
            self.watch(cx);
        }
        if let Some(e) = self.switch_error() {
            return Poll::Ready(Some(Err(e)));
        }
        match self.inner.poll_recv(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                self.activity.last_recv = now;
                self.heartbeat_in(&frame, now);
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.inner.poll_send_ready(cx)
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        let now = Instant::now();
        if self.activity.last_sent <= self.activity.last_recv {
            // The first frame since the last one received: from here on,
            // silence from the peer is a stall.
            self.activity.last_sent = now;
        }
        self.heartbeat_out(&frame, now);
        self.inner.start_send(frame)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.inner.poll_flush(cx)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        if matches!(self.switching, Some((_, SwitchReason::Downgrade))) {
            // A stalled connection cannot be closed in an orderly way: drop it
            // (with this link), the session is ready elsewhere.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_close(cx, code, reason)
    }

    fn kind(&self) -> TransportKind {
        self.kind
    }

    fn metrics(&self) -> TransportMetrics {
        self.inner.metrics()
    }

    fn numbers_frames(&self) -> bool {
        self.inner.numbers_frames()
    }

    fn resume_after_frame(&self) -> Option<u64> {
        self.inner.resume_after_frame()
    }

    fn attached(&mut self, attachment: &Attachment) {
        self.inner.attached(attachment)
    }
}

/// How long the active connection has been up.
pub(crate) fn lived(since: Option<Instant>, now: Instant) -> Duration {
    since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
}
