//! Native platform of the WebTransport `Client`: tokio timers and sessions opened with wtransport.

use std::sync::Arc;
use tidings_codec::codec_for;

use tidings_runtime::{BoxFuture, Connected, Connector, TokioTimer, Transport, TransportError};
use wtransport::Endpoint;
use wtransport::tls::Sha256Digest;

use crate::client::ClientBuilder;
use crate::client_datagrams::{ClientDatagrams, DatagramSlot};
use crate::transport::WtTransport;

/// The connector of a [`crate::Client`] built by `builder`; each session's
/// datagrams go to `datagrams`, when given.
pub(crate) fn connector(
    builder: ClientBuilder,
    datagrams: Option<DatagramSlot>,
) -> impl Connector + Send {
    Native {
        builder,
        datagrams: datagrams.map(Arc::new),
    }
}

/// The handle on the datagrams of the client whose connector gets the slot.
pub(crate) fn datagrams() -> (DatagramSlot, ClientDatagrams) {
    crate::client_datagrams::slot()
}

struct Native {
    builder: ClientBuilder,
    datagrams: Option<Arc<DatagramSlot>>,
}

impl Connector for Native {
    type Timer = TokioTimer;

    fn timer(&self) -> TokioTimer {
        TokioTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let b = self.builder.clone();
        let slot = self.datagrams.clone();
        Box::pin(async move {
            let (transport, codec) = tokio::time::timeout(b.connect_timeout, connect(&b))
                .await
                .map_err(|_| TransportError::Timeout("WebTransport connect"))??;
            if let Some(slot) = slot {
                slot.send_replace(Some(transport.datagrams()));
            }
            Ok((Box::new(transport) as Box<dyn Transport>, codec))
        })
    }
}

fn handshake(reason: String) -> TransportError {
    TransportError::Handshake {
        status: None,
        reason,
    }
}

/// Opens one session and its control stream.
async fn connect(
    b: &ClientBuilder,
) -> Result<
    (
        WtTransport,
        std::sync::Arc<dyn tidings_protocol::FrameCodec>,
    ),
    TransportError,
> {
    let span = tracing::debug_span!("wt_connect", url = %b.url);
    let _e = span.enter();
    let config = wtransport::ClientConfig::builder().with_bind_default();
    let config = if b.hashes.is_empty() {
        config.with_native_certs()
    } else {
        config.with_server_certificate_hashes(b.hashes.iter().map(|h| Sha256Digest::new(*h)))
    };
    let mut config = config.build();
    config
        .quic_config_mut()
        .transport_config(std::sync::Arc::new(b.wt.quic()));
    let endpoint = Endpoint::client(config)?;
    let url = b.session_url();
    let conn = endpoint
        .connect(&url)
        .await
        .map_err(|e| handshake(format!("WebTransport session to {url}: {e}")))?;
    let control = conn
        .open_bi()
        .await
        .map_err(|e| handshake(format!("control stream: {e}")))?
        .await
        .map_err(|e| handshake(format!("control stream: {e}")))?;
    let codec = codec_for(b.codec_kind())
        .ok_or_else(|| handshake(format!("this build cannot speak {}", b.protocol)))?;
    let transport = WtTransport::new(conn, control, b.wt.max_frame_bytes, b.wt.write_buffer_bytes)
        .accepting_channel_streams(codec.clone(), b.wt.max_channel_streams as usize)
        .with_endpoint(endpoint);
    Ok((transport, codec))
}
