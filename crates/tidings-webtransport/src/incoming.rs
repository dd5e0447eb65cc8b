//! The client's side of channel streams: accepts the server's unidirectional streams, checks each header and reads each channel's frames on its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tidings_protocol::FrameCodec;
use tokio::io::{AsyncRead, ReadBuf};
use wtransport::error::ConnectionError;
use wtransport::{Connection, RecvStream};

pub(crate) use crate::lane_reader::Incoming;
use crate::lane_reader::LaneReader;

type AcceptFuture = Pin<Box<dyn Future<Output = Result<RecvStream, ConnectionError>> + Send>>;

struct Lane {
    recv: RecvStream,
    parse: LaneReader,
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
                        parse: LaneReader::new(self.max_frame),
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
        if let Some(got) = lane.parse.next(codec, lane.done) {
            return Poll::Ready(got);
        }
        let mut buf = ReadBuf::new(&mut *scratch);
        match Pin::new(&mut lane.recv).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            // Ended on a frame boundary (the server finished it on close) or not.
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                lane.done = true;
                return Poll::Ready(lane.parse.ended());
            }
            Poll::Ready(Ok(())) => lane.parse.extend(buf.filled()),
            // Reset by the server or the session is gone: the control stream reports why.
            Poll::Ready(Err(_)) => {
                lane.done = true;
                return Poll::Ready(None);
            }
        }
    }
}
