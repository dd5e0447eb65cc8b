//! One client over whichever transport the URL and `--transport` name, built from the tidings client crates (no protocol code here), and the waits the commands share.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tidings::protocol::{ClientEvent, ClientState};

use crate::error::CliError;

/// The transport a command connects with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebSocket (`ws://`, `wss://`); the default for those schemes.
    Ws,
    /// Server-Sent Events + POST (`http://`, `https://`); the default for those schemes.
    Sse,
    /// WebTransport over HTTP/3 (`https://` only).
    Webtransport,
}

impl Transport {
    /// The transport a URL implies when none is named.
    pub fn for_url(url: &str) -> Result<Self, CliError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("ws://") || lower.starts_with("wss://") {
            Ok(Transport::Ws)
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Ok(Transport::Sse)
        } else {
            Err(CliError::BadUrl {
                url: url.to_owned(),
                reason: "expected ws://, wss://, http:// or https://".into(),
            })
        }
    }

    /// Its name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "websocket",
            Transport::Sse => "sse",
            Transport::Webtransport => "webtransport",
        }
    }
}

/// The codec to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// `tidings.v1.json`.
    Json,
    /// `tidings.v1.bin` (WebSocket and WebTransport only).
    Bin,
}

/// Connection options shared by every command that connects.
#[derive(Args, Clone, Debug)]
pub struct ConnectOpts {
    /// Transport (default: from the URL's scheme: ws/wss → websocket, http/https → sse).
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Codec to negotiate.
    #[arg(long, value_enum, default_value = "json")]
    pub codec: Codec,
    /// PEM file of a CA to trust for wss:// and https:// (beside the webpki roots).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// SHA-256 of a self-signed WebTransport server certificate (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub cert_hash: Option<String>,
    /// Seconds to wait for the session to open (and for each wait after it).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
}

impl ConnectOpts {
    /// The timeout as a `Duration` (refusing negative or absurd values).
    pub fn timeout(&self) -> Result<Duration, CliError> {
        Duration::try_from_secs_f64(self.timeout)
            .map_err(|e| CliError::BadArgument(format!("--timeout {}: {e}", self.timeout)))
    }
}

/// A connected client on one of the transports.
#[derive(Debug)]
pub enum AnyClient {
    /// WebSocket.
    Ws(tidings::ws::Client),
    /// Server-Sent Events.
    Sse(tidings::sse::Client),
    /// WebTransport.
    Wt(tidings::webtransport::Client),
}

macro_rules! each {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            AnyClient::Ws($c) => $e,
            AnyClient::Sse($c) => $e,
            AnyClient::Wt($c) => $e,
        }
    };
}

impl AnyClient {
    /// Starts a client of `url` (it connects in the background, reconnecting by itself).
    pub fn start(url: &str, opts: &ConnectOpts) -> Result<Self, CliError> {
        let transport = match opts.transport {
            Some(t) => t,
            None => Transport::for_url(url)?,
        };
        let ca =
            match &opts.ca {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    CliError::io(format!("reading the CA file {}", path.display()), e)
                })?),
                None => None,
            };
        let client = |e: &dyn std::fmt::Display| CliError::Client(e.to_string());
        Ok(match transport {
            Transport::Ws => {
                let protocol = match opts.codec {
                    Codec::Json => tidings::codec::SUBPROTOCOL_JSON,
                    Codec::Bin => tidings::codec::SUBPROTOCOL_BIN,
                };
                let mut b = tidings::ws::Client::builder(url)
                    .subprotocols([protocol])
                    .connect_timeout(opts.timeout()?);
                if let Some(pem) = &ca {
                    b = b.root_certificate_pem(pem);
                }
                AnyClient::Ws(b.connect().map_err(|e| client(&e))?)
            }
            Transport::Sse => {
                if opts.codec == Codec::Bin {
                    return Err(CliError::BadArgument(
                        "SSE carries JSON only; drop --codec bin or use --transport ws".into(),
                    ));
                }
                let mut b = tidings::sse::Client::builder(url).connect_timeout(opts.timeout()?);
                if let Some(pem) = &ca {
                    b = b.root_certificate_pem(pem);
                }
                AnyClient::Sse(b.connect().map_err(|e| client(&e))?)
            }
            Transport::Webtransport => {
                let mut b =
                    tidings::webtransport::Client::builder(url).connect_timeout(opts.timeout()?);
                if opts.codec == Codec::Bin {
                    b = b.binary();
                }
                if let Some(hex) = &opts.cert_hash {
                    b = b.server_certificate_hash(parse_hash(hex)?);
                }
                AnyClient::Wt(b.connect().map_err(|e| client(&e))?)
            }
        })
    }

    /// Subscribes to `channel`.
    pub fn subscribe(&self, channel: &str) -> Result<(), CliError> {
        each!(self, c => c.subscribe(channel)).map_err(|e| CliError::BadArgument(e.to_string()))
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), CliError> {
        each!(self, c => c.unsubscribe(channel)).map_err(|e| CliError::BadArgument(e.to_string()))
    }

    /// Publishes `payload` on `channel`; the publish's sequence number.
    pub fn publish(&self, channel: &str, payload: Vec<u8>) -> Result<u64, CliError> {
        each!(self, c => c.publish(channel, payload))
            .map_err(|e| CliError::BadArgument(e.to_string()))
    }

    /// The next event (`None` once closed and drained).
    pub async fn next_event(&self) -> Option<ClientEvent> {
        each!(self, c => c.next_event().await)
    }

    /// Publishes not yet acknowledged.
    pub fn unacked(&self) -> usize {
        each!(self, c => c.unacked())
    }

    /// The session's state.
    pub fn state(&self) -> ClientState {
        each!(self, c => c.state())
    }

    /// Ends the session.
    pub fn close(&self) {
        each!(self, c => c.close())
    }
}

/// Parses 64 hex digits (colons allowed, as `openssl x509 -fingerprint` prints them).
pub fn parse_hash(hex: &str) -> Result<[u8; 32], CliError> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    let bad = || CliError::BadArgument(format!("--cert-hash {hex:?}: expected 64 hex digits"));
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The next event before `deadline`: a [`CliError::Timeout`] naming `what` (with the command's
/// `timeout`) when none comes, [`CliError::Closed`] when the client has ended.
pub async fn next_by(
    client: &AnyClient,
    deadline: Instant,
    what: impl FnOnce() -> String,
    timeout: Duration,
) -> Result<ClientEvent, CliError> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, client.next_event()).await {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err(CliError::Closed("the client closed".into())),
        Err(_) => Err(CliError::Timeout {
            what: what(),
            secs: timeout.as_secs_f64(),
        }),
    }
}

/// A channel name under `prefix` that no other run uses (process id and clock).
pub fn unique_channel(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}:{}-{nanos}", std::process::id())
}

/// Whether a disconnect reason is an authentication refusal (HTTP 401 or 403).
pub fn is_auth_refusal(reason: &str) -> bool {
    reason.contains("HTTP 401") || reason.contains("HTTP 403")
}

/// Waits for the session to open, printing nothing; events seen before it are returned so the
/// caller can show them. Fails on an auth refusal at once, else after `timeout`.
pub async fn wait_open(
    client: &AnyClient,
    url: &str,
    timeout: Duration,
) -> Result<Vec<ClientEvent>, CliError> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut last = "no attempt finished yet".to_owned();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, client.next_event()).await {
            Err(_) => {
                return Err(CliError::Unreachable {
                    url: url.to_owned(),
                    secs: timeout.as_secs_f64(),
                    last,
                });
            }
            Ok(None) => return Err(CliError::Closed(last)),
            Ok(Some(e)) => e,
        };
        match &event {
            ClientEvent::Connected { .. } => {
                seen.push(event);
                return Ok(seen);
            }
            ClientEvent::Disconnected { reason, .. } => {
                if is_auth_refusal(reason) {
                    return Err(CliError::AuthRefused {
                        url: url.to_owned(),
                        reason: reason.clone(),
                    });
                }
                last = reason.clone();
            }
            ClientEvent::Closed { reason } => return Err(CliError::Closed(reason.clone())),
            _ => seen.push(event),
        }
    }
}
