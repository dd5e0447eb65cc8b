//! Polling a `ReadableStreamDefaultReader` and a `WritableStreamDefaultWriter` from Rust: one pending `read()` / `write()` promise at a time, and a deadline on the browser's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use js_sys::Uint8Array;
use tidings_runtime::{Timer, WasmTimer};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader};
use web_time::Instant;

use super::js;

/// A stream's reader with at most one `read()` in flight.
pub(crate) struct Reader {
    reader: ReadableStreamDefaultReader,
    pending: Option<JsFuture>,
}

impl Reader {
    /// Locks `stream` to a new default reader.
    pub(crate) fn new(stream: &ReadableStream) -> Result<Self, JsValue> {
        Ok(Self {
            reader: ReadableStreamDefaultReader::new(stream)?,
            pending: None,
        })
    }

    /// The next chunk, `Ok(None)` once the stream is done, `Err` when it failed.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<JsValue>, JsValue>> {
        let reader = &self.reader;
        let pending = self
            .pending
            .get_or_insert_with(|| JsFuture::from(reader.read()));
        let result = ready!(Pin::new(pending).poll(cx));
        self.pending = None;
        let (done, value) = js::read_result(&result?);
        Poll::Ready(Ok((!done).then_some(value)))
    }

    /// The next chunk as bytes (`Uint8Array` chunks, as WebTransport streams give).
    pub(crate) fn poll_bytes(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Vec<u8>>, JsValue>> {
        let chunk = ready!(self.poll_read(cx))?;
        Poll::Ready(Ok(chunk.map(|c| match c.dyn_ref::<Uint8Array>() {
            Some(bytes) => bytes.to_vec(),
            None => Uint8Array::new(&c).to_vec(),
        })))
    }

    /// Stops reading (the stream is cancelled; a pending read resolves done).
    pub(crate) fn cancel(&self) {
        settle(self.reader.cancel());
    }
}

/// Lets `promise` settle unobserved: its outcome does not matter, but a
/// rejection nobody handles (cancelling a stream the session's failure
/// errored, a lost datagram's write) would be an uncaught error in the page.
pub(crate) fn settle(promise: js_sys::Promise) {
    // A `JsFuture` attaches both handlers at once; dropping it leaves them
    // attached, self-contained.
    drop(JsFuture::from(promise));
}

/// Runs `f` until it completes or `timeout` elapses (`None`), on `setTimeout`.
/// The timer may fire early, so the clock decides.
pub(crate) async fn within<F: Future>(f: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let mut timer = WasmTimer::default();
    timer.reset(Some(deadline));
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while timer.poll_elapsed(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            timer.reset(Some(deadline));
        }
        Poll::Pending
    })
    .await
}
