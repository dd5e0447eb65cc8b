//! Browser platform of the client driver: `web_sys::WebSocket` transport and `setTimeout` timers.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use js_sys::{Array, Uint8Array};
use tidings_codec::{SUBPROTOCOL_BIN, SUBPROTOCOL_JSON, codec_for};
use tidings_protocol::CodecKind;
use tidings_runtime::{
    BoxFuture, Connected, Connector, Inbox, Timer, Transport, TransportError, TransportKind,
    TransportMetrics, WasmTimer,
};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use web_time::Instant;

use crate::client::ClientBuilder;

/// A browser WebSocket as a tidings [`Transport`].
pub struct WasmWsTransport {
    ws: WebSocket,
    text: bool,
    inbox: Rc<RefCell<Inbox<Result<Bytes, TransportError>>>>,
    _callbacks: [Closure<dyn FnMut(web_sys::Event)>; 4],
    metrics: TransportMetrics,
}

impl std::fmt::Debug for WasmWsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmWsTransport")
            .field("text", &self.text)
            .finish()
    }
}

impl Drop for WasmWsTransport {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

impl Transport for WasmWsTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        let item = std::task::ready!(self.inbox.borrow_mut().poll_next(cx));
        if let Some(Ok(b)) = &item {
            self.metrics.frames_received += 1;
            self.metrics.bytes_received += b.len() as u64;
        }
        Poll::Ready(item)
    }

    fn poll_send_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        // The browser buffers without bound and offers no write readiness event;
        // the session's queue limits bound what the application may enqueue.
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        let result = if self.text {
            let text = std::str::from_utf8(&frame).map_err(|e| {
                TransportError::Protocol(format!("text codec produced invalid UTF-8: {e}"))
            })?;
            self.ws.send_with_str(text)
        } else {
            self.ws.send_with_u8_array(&frame)
        };
        result.map_err(|e| TransportError::Protocol(format!("WebSocket.send failed: {e:?}")))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        // Browsers only allow 1000 and 3000-4999 from scripts.
        let code = if code == 1000 || (3000..5000).contains(&code) {
            code
        } else {
            1000
        };
        let _ = self.ws.close_with_code_and_reason(code, reason);
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::WebSocket
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}

/// Opens a browser WebSocket offering `protocols` and waits until it is open.
/// Gives up (closing the socket) after `timeout`.
pub(crate) async fn connect(
    url: &str,
    protocols: &[String],
    timeout: Duration,
) -> Result<Connected, TransportError> {
    let offers = Array::new();
    for p in protocols {
        offers.push(&p.into());
    }
    let ws =
        WebSocket::new_with_str_sequence(url, &offers).map_err(|e| TransportError::Handshake {
            status: None,
            reason: format!("{e:?}"),
        })?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let inbox = Inbox::shared();

    let i = inbox.clone();
    let onopen = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| i.borrow_mut().open());
    let i = inbox.clone();
    let onmessage = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        let Ok(e) = e.dyn_into::<MessageEvent>() else {
            return;
        };
        let data = e.data();
        let frame = if let Some(s) = data.as_string() {
            Bytes::from(s)
        } else if let Ok(buf) = data.dyn_into::<js_sys::ArrayBuffer>() {
            Bytes::from(Uint8Array::new(&buf).to_vec())
        } else {
            return;
        };
        i.borrow_mut().push(Ok(frame));
    });
    let i = inbox.clone();
    let onclose = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        let mut inbox = i.borrow_mut();
        if let Ok(c) = e.dyn_into::<CloseEvent>() {
            inbox.push(Err(TransportError::Closed {
                code: c.code(),
                reason: c.reason(),
            }));
        }
        inbox.end();
    });
    let i = inbox.clone();
    let onerror = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| i.borrow_mut().end());
    ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
    ws.set_onerror(Some(onerror.as_ref().unchecked_ref()));

    // The connect timeout: the timer may fire early, so the clock decides.
    let deadline = Instant::now() + timeout;
    let mut timer = WasmTimer::default();
    timer.reset(Some(deadline));
    let opened = std::future::poll_fn(|cx| {
        if let Poll::Ready(ok) = inbox.borrow_mut().poll_opened(cx) {
            return Poll::Ready(Some(ok));
        }
        while timer.poll_elapsed(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            timer.reset(Some(deadline));
        }
        Poll::Pending
    })
    .await;
    if opened != Some(true) {
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        ws.set_onerror(None);
        if opened.is_none() {
            let _ = ws.close();
            return Err(TransportError::Timeout("WebSocket connect"));
        }
        return Err(TransportError::Handshake {
            status: None,
            reason: format!("WebSocket to {url} failed to open"),
        });
    }

    let chosen = ws.protocol();
    let kind = if chosen.eq_ignore_ascii_case(SUBPROTOCOL_BIN) {
        CodecKind::Binary
    } else {
        CodecKind::Json
    };
    let _ = SUBPROTOCOL_JSON;
    let codec = codec_for(kind).ok_or_else(|| TransportError::Handshake {
        status: None,
        reason: format!("server chose subprotocol {chosen}, which this build cannot decode"),
    })?;
    let transport = WasmWsTransport {
        ws,
        text: codec.is_text(),
        inbox,
        _callbacks: [onopen, onmessage, onclose, onerror],
        metrics: TransportMetrics::default(),
    };
    Ok((Box::new(transport), codec))
}

struct Browser {
    url: String,
    protocols: Vec<String>,
    connect_timeout: Duration,
}

impl Connector for Browser {
    type Timer = WasmTimer;

    fn timer(&self) -> WasmTimer {
        WasmTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let (url, protocols) = (self.url.clone(), self.protocols.clone());
        let timeout = self.connect_timeout;
        Box::pin(async move { connect(&url, &protocols, timeout).await })
    }
}

/// The connector of a [`crate::Client`] built by `builder`.
pub(crate) fn connector(builder: ClientBuilder) -> Result<impl Connector, crate::Error> {
    // The browser verifies certificates itself (its own roots).
    Ok(Browser {
        url: builder.url,
        protocols: builder.subprotocols,
        connect_timeout: builder.connect_timeout,
    })
}
