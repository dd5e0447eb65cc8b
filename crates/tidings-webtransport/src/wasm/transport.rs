//! `WasmWtTransport`: the tidings `Transport` over a browser `WebTransport` session: length-prefixed frames on the bidirectional control stream, each channel's frames on a unidirectional stream the server opens (docs/protocol.md §10).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use js_sys::Uint8Array;
use tidings_protocol::FrameCodec;
use tidings_runtime::{Transport, TransportError, TransportKind, TransportMetrics};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, WritableStreamDefaultWriter};

use super::js;
use super::stream::{Reader, within};
use crate::framing::{FrameReader, write_frame};
use crate::lane_reader::{Incoming, LaneReader, RecvState};

/// How long a graceful close waits for the last frames to be written.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

type CloseFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A browser WebTransport session carrying tidings frames, as a [`Transport`].
///
/// The control stream is read first (nothing of a channel stream before the
/// `welcome`), then the channel streams in turn, so no channel's backlog
/// delays another's frames. Writes are coalesced up to the write buffer and
/// handed to the stream's writer one chunk at a time: a writer that does not
/// take more (QUIC flow control) holds back `poll_send_ready`. Bad input on
/// any stream (oversized, garbage, a channel stream carrying another
/// channel's frames, more channel streams than accepted) ends the session
/// with the typed error and its application close code ([`crate::close_code`]).
pub struct WasmWtTransport {
    wt: js::WebTransport,
    /// `closed`, until it settled.
    closed: Option<JsFuture>,
    writer: WritableStreamDefaultWriter,
    /// The chunk being written.
    write: Option<JsFuture>,
    wbuf: BytesMut,
    write_buffer: usize,
    control: Reader,
    frames: FrameReader,
    lanes: WasmLanes,
    /// The welcome passed, a framing failure, the end.
    state: RecvState,
    closing: Option<CloseFuture>,
    closed_by_us: bool,
    metrics: TransportMetrics,
}

impl std::fmt::Debug for WasmWtTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmWtTransport")
            .field("channel_streams", &self.lanes.lanes.len())
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl Drop for WasmWtTransport {
    fn drop(&mut self) {
        if !self.closed_by_us {
            // Dropped without a close (the driver gave up on it): end the session.
            let _ = self.wt.close(&js::close_info(0, "dropped"));
        }
    }
}

/// The error a settled `closed` promise stands for.
fn session_ended(result: Result<JsValue, JsValue>) -> TransportError {
    match result {
        Ok(info) => {
            let (code, reason) = js::close_code_and_reason(&info);
            TransportError::Closed {
                code: u16::try_from(code).unwrap_or(u16::MAX),
                reason,
            }
        }
        Err(e) => TransportError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            format!("WebTransport session failed: {}", js::message(&e)),
        )),
    }
}

impl WasmWtTransport {
    /// Wraps an established session and its control stream; channel streams
    /// are accepted up to `max_channel_streams`.
    pub(crate) fn new(
        wt: js::WebTransport,
        closed: JsFuture,
        control: js::BidirectionalStream,
        codec: Arc<dyn FrameCodec>,
        max_frame_bytes: usize,
        write_buffer: usize,
        max_channel_streams: usize,
    ) -> Result<Self, JsValue> {
        let writer = control.writable().get_writer()?;
        let reader = Reader::new(&control.readable())?;
        let accept = Reader::new(&wt.incoming_unidirectional_streams())?;
        Ok(Self {
            wt,
            closed: Some(closed),
            writer,
            write: None,
            wbuf: BytesMut::new(),
            write_buffer: write_buffer.max(1024),
            control: reader,
            frames: FrameReader::new(max_frame_bytes),
            lanes: WasmLanes {
                accept: Some(accept),
                lanes: Vec::new(),
                max_lanes: max_channel_streams,
                max_frame: max_frame_bytes,
                codec,
                next: 0,
            },
            state: RecvState::default(),
            closing: None,
            closed_by_us: false,
            metrics: TransportMetrics::default(),
        })
    }

    /// Channel streams the server has opened so far.
    pub fn channel_streams(&self) -> usize {
        self.lanes.lanes.len()
    }

    fn received(&mut self, frame: Bytes) -> Bytes {
        self.metrics.frames_received += 1;
        self.metrics.bytes_received += frame.len() as u64 + 4;
        frame
    }

    /// `Ready` with the session's end once `closed` settled (polled once).
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<TransportError> {
        let Some(closed) = self.closed.as_mut() else {
            return Poll::Ready(TransportError::Closed {
                code: 1006,
                reason: "session closed".into(),
            });
        };
        let result = ready!(Pin::new(closed).poll(cx));
        self.closed = None;
        Poll::Ready(session_ended(result))
    }

    /// The control stream's failure, explained by the session's end when
    /// that is known already.
    fn stream_failed(&mut self, cx: &mut Context<'_>, what: &str, e: &JsValue) -> TransportError {
        match self.poll_closed(cx) {
            Poll::Ready(end) => end,
            Poll::Pending => {
                TransportError::Io(std::io::Error::other(format!("{what}: {}", js::message(e))))
            }
        }
    }

    /// Waits for the chunk in flight, if any.
    fn poll_write_done(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if let Some(write) = self.write.as_mut() {
            let result = ready!(Pin::new(write).poll(cx));
            self.write = None;
            if let Err(e) = result {
                return Poll::Ready(Err(self.stream_failed(
                    cx,
                    "writing the control stream",
                    &e,
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Transport for WasmWtTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        if let Some(over) = self.state.over() {
            return Poll::Ready(over);
        }
        loop {
            if let Some(got) = self.state.control(&mut self.frames) {
                return Poll::Ready(Some(got.map(|frame| self.received(frame))));
            }
            match self.control.poll_bytes(cx) {
                Poll::Ready(Ok(Some(chunk))) => {
                    self.frames.extend(&chunk);
                    continue;
                }
                Poll::Ready(Ok(None)) => {
                    self.state.eof = true;
                    if let Err(e) = self.frames.finish() {
                        return Poll::Ready(Some(Err(self.state.fail(e))));
                    }
                    return match self.poll_closed(cx) {
                        Poll::Ready(end) => Poll::Ready(Some(Err(end))),
                        Poll::Pending => Poll::Ready(None),
                    };
                }
                Poll::Ready(Err(e)) => {
                    self.state.eof = true;
                    let err = self.stream_failed(cx, "reading the control stream", &e);
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Pending => {}
            }
            // The control stream has nothing now: the channel streams' turn
            // (none before the `welcome`, which comes first on the control stream).
            if self.state.welcomed
                && let Poll::Ready(got) = self.lanes.poll_next(cx)
            {
                return Poll::Ready(Some(self.state.channel(got).map(|f| self.received(f))));
            }
            // Nothing to read: has the session ended meanwhile?
            return match self.poll_closed(cx) {
                Poll::Ready(end) => {
                    self.state.eof = true;
                    Poll::Ready(Some(Err(end)))
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        if self.wbuf.len() >= self.write_buffer {
            ready!(self.poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64 + 4;
        write_frame(&mut self.wbuf, &frame);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        loop {
            ready!(self.poll_write_done(cx))?;
            if self.wbuf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let chunk = Uint8Array::from(&self.wbuf[..]);
            self.wbuf.clear();
            self.write = Some(JsFuture::from(self.writer.write_with_chunk(&chunk)));
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        if self.closing.is_none() {
            let (code, reason, linger) = match self.state.failed.take() {
                // Bad input: close at once with the framing error's code.
                Some((c, r)) => (c, r, false),
                None => (u32::from(code), reason.to_string(), true),
            };
            let span = tracing::debug_span!("wt_close", code, %reason);
            let _e = span.enter();
            let pending = std::mem::take(&mut self.wbuf);
            let write = self.write.take();
            let writer = self.writer.clone();
            let wt = self.wt.clone();
            self.closed_by_us = true;
            self.lanes.cancel();
            self.closing = Some(Box::pin(async move {
                if linger {
                    let drain = async {
                        if let Some(write) = write {
                            let _ = write.await;
                        }
                        if !pending.is_empty() {
                            let chunk = Uint8Array::from(&pending[..]);
                            let _ = JsFuture::from(writer.write_with_chunk(&chunk)).await;
                        }
                        let _ = JsFuture::from(writer.close()).await;
                    };
                    let _ = within(drain, CLOSE_LINGER).await;
                }
                if let Err(e) = wt.close(&js::close_info(code, &reason)) {
                    tracing::debug!(error = %js::message(&e), "WebTransport.close");
                }
            }));
        }
        if let Some(fut) = self.closing.as_mut() {
            ready!(fut.as_mut().poll(cx));
        }
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::WebTransport
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}

/// One channel stream of the server.
struct Lane {
    reader: Reader,
    parse: LaneReader,
    done: bool,
}

/// The channel streams the server opens, read in turn (round robin).
struct WasmLanes {
    /// The reader of `incomingUnidirectionalStreams` (`None` once it ended).
    accept: Option<Reader>,
    lanes: Vec<Lane>,
    max_lanes: usize,
    max_frame: usize,
    codec: Arc<dyn FrameCodec>,
    next: usize,
}

impl WasmLanes {
    /// The next frame of any channel stream (`Pending` when none has one).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Incoming> {
        while let Some(accept) = self.accept.as_mut() {
            match accept.poll_read(cx) {
                Poll::Ready(Ok(Some(stream))) => {
                    if self.lanes.len() >= self.max_lanes {
                        return Poll::Ready(Incoming::TooMany {
                            limit: self.max_lanes,
                        });
                    }
                    let Ok(reader) = Reader::new(&stream.unchecked_into::<ReadableStream>()) else {
                        continue;
                    };
                    self.lanes.push(Lane {
                        reader,
                        parse: LaneReader::new(self.max_frame),
                        done: false,
                    });
                }
                // The session is over: the control stream reports why.
                Poll::Ready(Ok(None) | Err(_)) => self.accept = None,
                Poll::Pending => break,
            }
        }
        let n = self.lanes.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Poll::Ready(Some(got)) = poll_lane(&mut self.lanes[i], self.codec.as_ref(), cx) {
                self.next = (i + 1) % n;
                return Poll::Ready(got);
            }
        }
        Poll::Pending
    }

    /// Stops reading every stream (closing).
    fn cancel(&mut self) {
        for lane in &self.lanes {
            lane.reader.cancel();
        }
        if let Some(accept) = &self.accept {
            accept.cancel();
        }
    }
}

/// The next frame of one lane; `Ready(None)` when the lane has ended.
fn poll_lane(
    lane: &mut Lane,
    codec: &dyn FrameCodec,
    cx: &mut Context<'_>,
) -> Poll<Option<Incoming>> {
    loop {
        if let Some(got) = lane.parse.next(codec, lane.done) {
            return Poll::Ready(got);
        }
        match ready!(lane.reader.poll_bytes(cx)) {
            Ok(Some(chunk)) => lane.parse.extend(&chunk),
            // Ended on a frame boundary (the server finished it on close) or not.
            Ok(None) => {
                lane.done = true;
                return Poll::Ready(lane.parse.ended());
            }
            // Reset by the server or the session is gone: the control stream reports why.
            Err(_) => {
                lane.done = true;
                return Poll::Ready(None);
            }
        }
    }
}
