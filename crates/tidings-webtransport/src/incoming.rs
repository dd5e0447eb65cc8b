//! The client's side of channel streams: accepts the server's unidirectional streams, checks each header and reads each channel's frames on its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tidings_protocol::FrameCodec;
use tokio::io::{AsyncRead, ReadBuf};
use wtransport::error::ConnectionError;
use wtransport::{Connection, RecvStream};

use crate::channel_stream::read_header;
use crate::error::FramingError;
use crate::framing::FrameReader;
use crate::route::channel_of;

type AcceptFuture = Pin<Box<dyn Future<Output = Result<RecvStream, ConnectionError>> + Send>>;

/// What reading the channel streams gave.
pub(crate) enum Incoming {
    /// A frame of some channel.
    Frame(Bytes),
    /// Bad input on a channel stream: end the session with this error.
    Bad(FramingError),
    /// The server opened more channel streams than allowed.
    TooMany { limit: usize },
}

struct Lane {
    recv: RecvStream,
    /// The channel named by the header, once read.
    channel: Option<String>,
    head: BytesMut,
    reader: FrameReader,
    done: bool,
}

/// The channel streams of one client session.
pub(crate) struct IncomingLanes {
    conn: Connection,
    codec: Arc<dyn FrameCodec>,
    accept: Option<AcceptFuture>,
    lanes: Vec<Lane>,
    max_lanes: usize,
    max_frame: usize,
    /// Lane to look at first next time (round robin: no lane starves another).
    next: usize,
}

impl IncomingLanes {
    pub(crate) fn new(
        conn: Connection,
        codec: Arc<dyn FrameCodec>,
        max_lanes: usize,
        max_frame: usize,
    ) -> Self {
        Self {
            conn,
            codec,
            accept: None,
            lanes: Vec::new(),
            max_lanes,
            max_frame,
            next: 0,
        }
    }

    /// The next frame of any channel stream (`Pending` when none has one;
    /// every stream then holds the waker).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>, scratch: &mut [u8]) -> Poll<Incoming> {
        loop {
            let conn = self.conn.clone();
            let accept = self
                .accept
                .get_or_insert_with(|| Box::pin(async move { conn.accept_uni().await }));
            match accept.as_mut().poll(cx) {
                Poll::Ready(Ok(recv)) => {
                    self.accept = None;
                    if self.lanes.len() >= self.max_lanes {
                        return Poll::Ready(Incoming::TooMany {
                            limit: self.max_lanes,
                        });
                    }
                    self.lanes.push(Lane {
                        recv,
                        channel: None,
                        head: BytesMut::new(),
                        reader: FrameReader::new(self.max_frame),
                        done: false,
                    });
                }
                // The session is over: the control stream reports why.
                Poll::Ready(Err(_)) => break,
                Poll::Pending => break,
            }
        }
        let n = self.lanes.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            match poll_lane(&mut self.lanes[i], self.codec.as_ref(), cx, scratch) {
                Poll::Ready(Some(got)) => {
                    self.next = (i + 1) % n;
                    return Poll::Ready(got);
                }
                Poll::Ready(None) | Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

/// The next frame of one lane; `Ready(None)` when the lane has ended.
fn poll_lane(
    lane: &mut Lane,
    codec: &dyn FrameCodec,
    cx: &mut Context<'_>,
    scratch: &mut [u8],
) -> Poll<Option<Incoming>> {
    loop {
        if let Some(channel) = &lane.channel {
            match lane.reader.next_frame() {
                Ok(Some(frame)) => {
                    if channel_of(codec, &frame).as_deref() != Some(channel.as_str()) {
                        return Poll::Ready(Some(Incoming::Bad(FramingError::WrongChannel {
                            stream: channel.clone(),
                        })));
                    }
                    return Poll::Ready(Some(Incoming::Frame(frame)));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Incoming::Bad(e))),
            }
        } else {
            match read_header(&lane.head) {
                Ok(Some((channel, len))) => {
                    lane.head.advance(len);
                    lane.reader.extend(&lane.head);
                    lane.head.clear();
                    lane.channel = Some(channel);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Incoming::Bad(e))),
            }
        }
        if lane.done {
            return Poll::Ready(None);
        }
        let mut buf = ReadBuf::new(&mut *scratch);
        match Pin::new(&mut lane.recv).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                lane.done = true;
                // Ended on a frame boundary (the server finished it on close) or not.
                let ended = match &lane.channel {
                    Some(_) => lane.reader.finish(),
                    None if lane.head.is_empty() => Ok(()),
                    None => Err(FramingError::StreamHeader(
                        "the stream ended inside its header".into(),
                    )),
                };
                if let Err(e) = ended {
                    return Poll::Ready(Some(Incoming::Bad(e)));
                }
                return Poll::Ready(None);
            }
            Poll::Ready(Ok(())) => {
                let data = buf.filled();
                if lane.channel.is_some() {
                    lane.reader.extend(data);
                } else {
                    lane.head.extend_from_slice(data);
                }
            }
            // Reset by the server or the session is gone: the control stream reports why.
            Poll::Ready(Err(_)) => {
                lane.done = true;
                return Poll::Ready(None);
            }
        }
    }
}
