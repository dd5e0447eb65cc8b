//! Opening one connection: TCP with `TCP_NODELAY`, the WebSocket handshake and, for a tidings session, `hello` → `welcome` and an optional `subscribe` → `subscribed`.

use std::io;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::read::Frame;
use crate::write::{HELLO, SUBPROTOCOL, subscribe};

/// A connection opened by [`connect`].
pub type WsStream = WebSocketStream<TcpStream>;

/// How far [`connect`] takes a connection before handing it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handshake<'a> {
    /// The WebSocket handshake alone, offering no subprotocol (a plain echo server, or a
    /// tidings server left before `hello`).
    WebSocket,
    /// A tidings session: [`SUBPROTOCOL`] offered, [`HELLO`] sent and `welcome` awaited.
    Session {
        /// A channel to subscribe to before returning, once `subscribed` arrived.
        subscribe: Option<&'a str>,
    },
}

/// Why [`connect`] failed. Its text names the step that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection could not be opened.
    #[error("connect: {source}")]
    Tcp {
        /// The socket's error.
        source: io::Error,
    },
    /// The WebSocket request could not be built from the address.
    #[error("{source}")]
    Request {
        /// tungstenite's error.
        source: tungstenite::Error,
    },
    /// The WebSocket handshake failed.
    #[error("handshake: {source}")]
    Handshake {
        /// tungstenite's error.
        source: tungstenite::Error,
    },
    /// A set-up frame could not be sent.
    #[error("{frame}: {source}")]
    Send {
        /// The frame's type: `hello` or `subscribe`.
        frame: &'static str,
        /// tungstenite's error.
        source: tungstenite::Error,
    },
    /// The server answered a set-up frame with an `error` or a `close`.
    #[error("waiting for {expected}: {frame}")]
    Refused {
        /// The frame type awaited: `welcome` or `subscribed`.
        expected: &'static str,
        /// The server's frame, as it was received.
        frame: String,
    },
    /// Reading from the connection failed during set-up.
    #[error("waiting for {expected}: {source}")]
    Read {
        /// The frame type awaited.
        expected: &'static str,
        /// tungstenite's error.
        source: tungstenite::Error,
    },
    /// The connection ended during set-up.
    #[error("waiting for {expected}: connection closed")]
    Closed {
        /// The frame type awaited.
        expected: &'static str,
    },
}

/// Opens one WebSocket to `ws://{addr}/` with `config` and takes it through `handshake`.
///
/// # Errors
///
/// [`ConnectError`] for the step that failed; the connection is dropped.
pub async fn connect(
    addr: SocketAddr,
    config: WebSocketConfig,
    handshake: Handshake<'_>,
) -> Result<WsStream, ConnectError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ConnectError::Tcp { source })?;
    let _ = stream.set_nodelay(true);
    let mut request = format!("ws://{addr}/")
        .into_client_request()
        .map_err(|source| ConnectError::Request { source })?;
    if let Handshake::Session { .. } = handshake {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|source| ConnectError::Handshake { source })?;
    if let Handshake::Session { subscribe: channel } = handshake {
        ws.send(Message::text(HELLO))
            .await
            .map_err(|source| ConnectError::Send {
                frame: "hello",
                source,
            })?;
        expect(&mut ws, "welcome", None).await?;
        if let Some(channel) = channel {
            ws.send(Message::text(subscribe(channel)))
                .await
                .map_err(|source| ConnectError::Send {
                    frame: "subscribe",
                    source,
                })?;
            expect(&mut ws, "subscribed", Some(channel)).await?;
        }
    }
    Ok(ws)
}

/// Reads until a frame of type `kind` (on `channel`, if given) arrives; other frames are
/// skipped, an `error` or a `close` ends the wait.
async fn expect(
    ws: &mut WsStream,
    kind: &'static str,
    channel: Option<&str>,
) -> Result<(), ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                let Some(frame) = Frame::parse(text) else {
                    continue;
                };
                let k = frame.kind;
                if k == kind && (channel.is_none() || frame.channel == channel) {
                    return Ok(());
                }
                if k == "error" || k == "close" {
                    return Err(ConnectError::Refused {
                        expected: kind,
                        frame: text.to_owned(),
                    });
                }
            }
            Some(Ok(_)) => {}
            Some(Err(source)) => {
                return Err(ConnectError::Read {
                    expected: kind,
                    source,
                });
            }
            None => return Err(ConnectError::Closed { expected: kind }),
        }
    }
}
