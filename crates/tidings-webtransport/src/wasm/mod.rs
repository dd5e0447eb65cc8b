//! Browser platform of the WebTransport `Client`: sessions opened with the page's `WebTransport`, `setTimeout` timers.

mod datagrams;
mod js;
mod stream;
mod transport;

use tidings_codec::codec_for;
use tidings_runtime::{BoxFuture, Connected, Connector, TransportError, WasmTimer};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub use datagrams::ClientDatagrams;
pub use transport::WasmWtTransport;

use std::rc::Rc;

use crate::client::ClientBuilder;
use datagrams::DatagramSlot;

/// The connector of a [`crate::Client`] built by `builder`; each session's
/// datagrams go to `datagrams`, when given.
pub(crate) fn connector(builder: ClientBuilder, datagrams: Option<DatagramSlot>) -> impl Connector {
    Browser {
        builder,
        datagrams: datagrams.map(Rc::new),
    }
}

/// The handle on the datagrams of the client whose connector gets the slot.
pub(crate) fn datagrams() -> (DatagramSlot, ClientDatagrams) {
    datagrams::slot()
}

struct Browser {
    builder: ClientBuilder,
    datagrams: Option<Rc<DatagramSlot>>,
}

impl Connector for Browser {
    type Timer = WasmTimer;

    fn timer(&self) -> WasmTimer {
        WasmTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        Box::pin(connect(self.builder.clone(), self.datagrams.clone()))
    }
}

fn handshake(reason: String) -> TransportError {
    TransportError::Handshake {
        status: None,
        reason,
    }
}

/// Opens one session and its control stream, within the connect timeout.
async fn connect(
    mut b: ClientBuilder,
    datagrams: Option<Rc<DatagramSlot>>,
) -> Result<Connected, TransportError> {
    let url = b.session_url();
    let span = tracing::debug_span!("wt_connect", %url);
    let _e = span.enter();
    if let Some(from) = b.hashes_url.clone() {
        let fetched = stream::within(js::fetch_hashes(&from), b.connect_timeout)
            .await
            .ok_or(TransportError::Timeout("fetching the certificate hashes"))?
            .map_err(|e| handshake(format!("certificate hashes from {from}: {e}")))?;
        b.hashes.extend(fetched);
    }
    let codec = codec_for(b.codec_kind())
        .ok_or_else(|| handshake(format!("this build cannot speak {}", b.protocol)))?;
    let wt = js::WebTransport::new(&url, &js::options(&b.hashes))
        .map_err(|e| handshake(format!("new WebTransport({url}): {}", js::message(&e))))?;
    // Watched from the start: a session that fails rejects `closed` (and
    // `ready`), and a rejection nobody handles is an error in the console.
    let closed = JsFuture::from(wt.closed());
    let ready = JsFuture::from(wt.ready());
    let open = async {
        ready.await?;
        JsFuture::from(wt.create_bidirectional_stream()).await
    };
    let control = match stream::within(open, b.connect_timeout).await {
        Some(Ok(control)) => control.unchecked_into::<js::BidirectionalStream>(),
        Some(Err(e)) => {
            let _ = wt.close(&js::close_info(0, "handshake failed"));
            return Err(handshake(format!(
                "WebTransport session to {url}: {}",
                js::message(&e)
            )));
        }
        None => {
            let _ = wt.close(&js::close_info(0, "connect timeout"));
            return Err(TransportError::Timeout("WebTransport connect"));
        }
    };
    let transport = WasmWtTransport::new(
        wt.clone(),
        closed,
        control,
        codec.clone(),
        b.wt.max_frame_bytes,
        b.wt.write_buffer_bytes,
        b.wt.max_channel_streams as usize,
    )
    .map_err(|e| {
        let _ = wt.close(&js::close_info(0, "stream setup failed"));
        handshake(format!("control stream: {}", js::message(&e)))
    })?;
    if let Some(slot) = datagrams {
        slot.set(&wt);
    }
    Ok((Box::new(transport), codec))
}
