//! Browser platform of the SSE client: `web_sys::EventSource` down, `fetch` POSTs up, `setTimeout` timers.
//!
//! The browser's own reconnect is not used: when the stream fails the
//! `EventSource` is closed and the session driver reconnects (with its
//! backoff) through a new one whose URL carries `last_event_id=<id>` (a script
//! cannot set `Last-Event-ID`). Browsers do not show the `retry:` field to
//! scripts, so the reconnect delay is the session's backoff.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tidings_codec::JsonCodec;
use tidings_protocol::FrameCodec;
use tidings_runtime::{
    BoxFuture, Connected, Connector, Inbox, Transport, TransportError, TransportKind,
    TransportMetrics, WasmTimer,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, Headers, MessageEvent, Request, RequestInit, Response};

use super::{
    ClientBuilder, Error, HelloSource, StreamState, Upstream, with_last_event_id, with_param,
};
use crate::TOKEN_HEADER;

/// `EventSource.readyState` once closed.
const CLOSED: u16 = 2;

fn js_error(what: &str, e: JsValue) -> TransportError {
    TransportError::Protocol(format!("{what}: {e:?}"))
}

/// POSTs `body` with `fetch`; resolves once the server accepted it.
async fn post(url: String, token: String, body: Bytes) -> Result<(), TransportError> {
    let window = web_sys::window().ok_or_else(|| TransportError::Protocol("no window".into()))?;
    let headers = Headers::new().map_err(|e| js_error("Headers", e))?;
    headers
        .set(TOKEN_HEADER, &token)
        .map_err(|e| js_error("Headers.set", e))?;
    headers
        .set("content-type", "application/x-ndjson")
        .map_err(|e| js_error("Headers.set", e))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| TransportError::Protocol("SSE carries text: a frame is not UTF-8".into()))?;
    init.set_body(&JsValue::from_str(&text));
    let request =
        Request::new_with_str_and_init(&url, &init).map_err(|e| js_error("Request", e))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|e| TransportError::Io(std::io::Error::other(format!("POST {url}: {e:?}"))))?
        .dyn_into()
        .map_err(|e| js_error("fetch result", e))?;
    if response.ok() {
        return Ok(());
    }
    let status = response.status();
    let reason = match response.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    Err(TransportError::Protocol(format!(
        "POST {url}: HTTP {status}: {reason}"
    )))
}

/// A browser `EventSource` plus `fetch` POSTs as a tidings [`Transport`].
struct WasmSseTransport {
    es: EventSource,
    inbox: Rc<RefCell<Inbox<(Bytes, String)>>>,
    state: Rc<RefCell<StreamState>>,
    up: Upstream,
    _callbacks: [Closure<dyn FnMut(web_sys::Event)>; 3],
    metrics: TransportMetrics,
}

impl Drop for WasmSseTransport {
    fn drop(&mut self) {
        self.es.set_onopen(None);
        self.es.set_onmessage(None);
        self.es.set_onerror(None);
        self.es.close();
    }
}

impl Transport for WasmSseTransport {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, TransportError>>> {
        let next = std::task::ready!(self.inbox.borrow_mut().poll_next(cx));
        let Some((frame, id)) = next else {
            return Poll::Ready(None);
        };
        self.state.borrow_mut().last_event_id = Some(id);
        self.up.received(&frame);
        self.metrics.frames_received += 1;
        self.metrics.bytes_received += frame.len() as u64;
        Poll::Ready(Some(Ok(frame)))
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.up
            .poll_send_ready(cx, |u, t, b| Box::pin(post(u, t, b)))
    }

    fn start_send(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.metrics.frames_sent += 1;
        self.metrics.bytes_sent += frame.len() as u64;
        self.up.send(&frame);
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.up.poll_flush(cx, |u, t, b| Box::pin(post(u, t, b)))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _code: u16,
        _reason: &str,
    ) -> Poll<Result<(), TransportError>> {
        self.es.close();
        Poll::Ready(Ok(()))
    }

    fn kind(&self) -> TransportKind {
        TransportKind::Sse
    }

    fn metrics(&self) -> TransportMetrics {
        self.metrics
    }
}

/// Opens an `EventSource` on `url` and waits until it is open.
async fn connect(
    url: String,
    state: Rc<RefCell<StreamState>>,
    hello: Option<String>,
) -> Result<Connected, TransportError> {
    let last_event_id = state
        .borrow()
        .last_event_id
        .clone()
        .filter(|id| !id.is_empty());
    let target = match (&hello, &last_event_id) {
        (Some(h), _) => with_param(&url, crate::HELLO_PARAM, h),
        (None, Some(id)) => with_last_event_id(&url, id),
        (None, None) => url.clone(),
    };
    let es = EventSource::new(&target).map_err(|e| TransportError::Handshake {
        status: None,
        reason: format!("EventSource {target}: {e:?}"),
    })?;
    let inbox = Inbox::shared();

    let i = inbox.clone();
    let onopen = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| i.borrow_mut().open());
    let i = inbox.clone();
    let onmessage = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        let Ok(e) = e.dyn_into::<MessageEvent>() else {
            return;
        };
        let Some(data) = e.data().as_string() else {
            return;
        };
        i.borrow_mut().push((Bytes::from(data), e.last_event_id()));
    });
    let i = inbox.clone();
    let source = es.clone();
    let onerror = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        // The stream failed: stop the browser's own retry, the driver reconnects.
        source.close();
        i.borrow_mut().end();
    });
    es.set_onopen(Some(onopen.as_ref().unchecked_ref()));
    es.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    es.set_onerror(Some(onerror.as_ref().unchecked_ref()));

    let opened = std::future::poll_fn(|cx| {
        if es.ready_state() == CLOSED {
            return Poll::Ready(false);
        }
        inbox.borrow_mut().poll_opened(cx)
    })
    .await;
    if !opened {
        // The closures are dropped with this function: unhook them first, so
        // no later event of this source calls a dropped closure.
        es.close();
        es.set_onopen(None);
        es.set_onmessage(None);
        es.set_onerror(None);
        return Err(TransportError::Handshake {
            status: None,
            reason: format!("EventSource to {url} failed to open"),
        });
    }

    let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
    let transport = WasmSseTransport {
        es,
        inbox,
        state,
        up: Upstream::new(&url, codec.clone()),
        _callbacks: [onopen, onmessage, onerror],
        metrics: TransportMetrics::default(),
    };
    Ok((Box::new(transport), codec))
}

struct Browser {
    url: String,
    state: Rc<RefCell<StreamState>>,
    hello: Option<HelloSource>,
}

impl Connector for Browser {
    type Timer = WasmTimer;

    fn timer(&self) -> WasmTimer {
        WasmTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let hello = self.hello.as_ref().and_then(super::HelloSource::hello);
        Box::pin(connect(self.url.clone(), self.state.clone(), hello))
    }
}

/// The connector of a [`super::Client`] built by `builder`.
pub(crate) fn connector(builder: ClientBuilder) -> Result<impl Connector, Error> {
    let connector = Browser {
        url: builder.url,
        state: Rc::new(RefCell::new(StreamState::default())),
        hello: builder.hello,
    };
    Ok(connector)
}
