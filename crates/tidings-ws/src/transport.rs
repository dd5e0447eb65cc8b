//! `WsTransport`: the tidings `Transport` over a tokio-tungstenite `WebSocketStream` (native).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tidings_protocol::Instant;
use tidings_runtime::{
    Timer, TokioTimer, Transport, TransportError, TransportKind, TransportMetrics,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A WebSocket connection carrying tidings frames.
///
/// Text codecs send text messages, binary codecs binary messages; WebSocket
/// pings are answered by tungstenite. In text mode a frame handed to
/// `start_send` must be valid UTF-8, as a text codec's frames are
/// ([`FrameCodec::is_text`](tidings_protocol::FrameCodec::is_text)): it is sent
/// without a second check (debug builds check). An idle timeout (no message at all for
/// `idle_timeout`) ends the connection with [`TransportError::Timeout`].
pub struct WsTransport<S> {
    ws: WebSocketStream<S>,
    text: bool,
    idle_timeout: Option<Duration>,
    /// The idle timer: a `TokioTimer`, which skips polling its sleep while
    /// the same task waits on it (this is polled after every message).
    idle: Option<TokioTimer>,
    /// Messages received since the idle timer was last armed.
    active: bool,
    max_message: usize,
    state: State,
    metrics: TransportMetrics,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// The peer sent a close frame (tungstenite queues the reply).
    PeerClosed,
    /// Reading failed; the close frame to send (if the socket is still writable).
    Failed(Option<(u16, String)>),
    /// Our close frame is queued; the peer's answer is not read yet.
    Closing,
    /// The closing handshake is over (both close frames went), or the peer
    /// is gone: nothing more to read or send.
    Closed,
}

impl<S> std::fmt::Debug for WsTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("text", &self.text)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsTransport<S> {
    /// Wraps an established WebSocket. `text` selects text messages (JSON codec).
    pub fn new(ws: WebSocketStream<S>, text: bool, idle_timeout: Option<Duration>) -> Self {
        let max_message = ws.get_config().max_message_size.unwrap_or(usize::MAX);
        Self {
            ws,
            text,
            idle_timeout,
            idle: idle_timeout.map(|t| {
                let mut timer = TokioTimer::default();
                timer.reset(Some(Instant::now() + t));
                timer
            }),
            active: false,
            max_message,
            state: State::Open,
            metrics: TransportMetrics::default(),
        }
    }

    /// The underlying WebSocket stream.
    pub fn get_ref(&self) -> &WebSocketStream<S> {
        &self.ws
    }

    /// Notes activity. The timer is not touched on the hot path: when it fires
    /// after activity it is simply re-armed, so an idle connection is closed
    /// between one and two `idle_timeout`s after its last message.
    fn touch(&mut self) {
        self.active = true;
    }

    /// True when the idle timer fired with no activity since it was armed.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(idle), Some(t)) = (self.idle.as_mut(), self.idle_timeout) else {
            return false;
        };
        while idle.poll_elapsed(cx).is_ready() {
            if !std::mem::take(&mut self.active) {
                return true;
            }
            idle.reset(Some(Instant::now() + t));
        }
        false
    }
}

/// Maps a tungstenite error to the transport error.
pub(crate) fn map_ws_error(e: WsError, max: usize) -> TransportError {
    use tokio_tungstenite::tungstenite::error::CapacityError;
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed {
            code: 1006,
            reason: "connection closed".into(),
        },
        WsError::Io(io) => TransportError::Io(io),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::MessageTooLarge {
                size,
                max: max_size,
            }
        }
        WsError::Capacity(c) => TransportError::Protocol(format!("{c} (limit {max} bytes)")),
        WsError::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            TransportError::Handshake {
                status: Some(status),
                reason: format!("HTTP {status}: {body}"),
            }
        }
        other => TransportError::Protocol(other.to_string()),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WsTransport<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        loop {
            if self.state != State::Open {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    self.touch();
                    let data = match msg {
                        Message::Text(t) => Bytes::from(t),
                        Message::Binary(b) => b,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                        Message::Close(frame) => {
                            self.state = State::PeerClosed;
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            return Poll::Ready(Some(Err(TransportError::Closed { code, reason })));
                        }
                    };
                    self.metrics.frames_received += 1;
                    self.metrics.bytes_received += data.len() as u64;
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.state =
                        State::Failed(crate::close_for_error(&e).map(|(c, r)| (c, r.to_string())));
                    return Poll::Ready(Some(Err(map_ws_error(e, self.max_message))));
                }
                Poll::Ready(None) => {
                    self.state = State::Failed(None);
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if self.idle_expired(cx) {
                        self.state = State::Failed(Some((1001, "idle timeout".into())));
                        return Poll::Ready(Some(Err(TransportError::Timeout(
                            "idle timeout: nothing received",
                        ))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let max = self.max_message;
        Pin::new(&mut self.ws)
            .poll_ready(cx)
            .map_err(|e| map_ws_error(e, max))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        let msg = if self.text {
            // A text codec's frames are valid UTF-8 (`FrameCodec::is_text`): send them as
            // a text frame without the second UTF-8 check `Message::Text` would make on
            // every message. Same bytes on the wire.
            debug_assert!(
                std::str::from_utf8(&frame).is_ok(),
                "a text codec produced invalid UTF-8"
            );
            Message::Frame(Frame::message(frame, OpCode::Data(Data::Text), true))
        } else {
            Message::Binary(frame)
        };
        let max = self.max_message;
        Pin::new(&mut self.ws)
            .start_send(msg)
            .map_err(|e| map_ws_error(e, max))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let max = self.max_message;
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(|e| map_ws_error(e, max))
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        let max = self.max_message;
        let to_send = match &self.state {
            State::Open => Some((code, reason.to_string())),
            State::Failed(Some((c, r))) => Some((*c, r.clone())),
            State::Failed(None) => return Poll::Ready(Ok(())),
            State::PeerClosed | State::Closing | State::Closed => None,
        };
        if let Some((code, reason)) = to_send {
            if ready!(Pin::new(&mut self.ws).poll_ready(cx)).is_err() {
                return Poll::Ready(Ok(())); // already gone: nothing left to close
            }
            let frame = CloseFrame {
                code: WsCloseCode::from(code),
                reason: truncate_reason(&reason).into(),
            };
            if Pin::new(&mut self.ws)
                .start_send(Message::Close(Some(frame)))
                .is_err()
            {
                return Poll::Ready(Ok(()));
            }
            self.state = State::Closing;
        }
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {}
            Err(e) => return Poll::Ready(Err(map_ws_error(e, max))),
        }
        if self.state == State::Closing {
            // We sent the first close frame: read until the peer's answer
            // (RFC 6455 §7.1.1: the TCP connection is closed after both).
            // Dropping the socket earlier, with the peer's close frame (or
            // anything it sent before it saw ours) unread, makes the kernel
            // answer with a reset instead of a FIN, which can destroy our
            // close frame before the peer reads it (a browser then reports
            // `wasClean: false`). The caller bounds the wait (the pump's
            // `CLOSE_GRACE`).
            loop {
                match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {} // sent before it saw our close: dropped
                }
            }
            self.state = State::Closed;
        }
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::WebSocket
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut on a char boundary.
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
