//! `tidings doctor URL`: what a server offers — its discovery document (`/.well-known/tidings`) when it serves one, health endpoints, each WebSocket codec, SSE, WebTransport, TLS, authentication — probed with the real clients, and the round-trip latency.

use std::time::{Duration, Instant};

use tidings::protocol::ClientEvent;

use crate::client::{self, AnyClient, Codec, ConnectOpts, Transport};
use crate::error::CliError;
use crate::out::Out;

/// Where to probe, beside the URL.
#[derive(Clone, Debug)]
pub struct DoctorOpts {
    /// Path of the WebSocket endpoint when the URL has none.
    pub ws_path: String,
    /// Path of the SSE endpoint.
    pub sse_path: String,
    /// WebTransport URL (default: from the discovery document, else `https://HOST:PORT/wt`).
    pub webtransport: Option<String>,
    /// Echo round trips for the latency line.
    pub pings: u32,
}

/// The URL split into what the probes need.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub secure: bool,
    /// `host:port` (as given).
    pub authority: String,
    /// The path of the URL (`/ws`), empty when it has none.
    pub path: String,
}

impl Target {
    /// Parses `ws://`, `wss://`, `http://`, `https://` URLs.
    pub fn parse(url: &str) -> Result<Self, CliError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| CliError::BadUrl {
            url: url.to_owned(),
            reason: "no scheme (expected ws://, wss://, http:// or https://)".into(),
        })?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => {
                return Err(CliError::BadUrl {
                    url: url.to_owned(),
                    reason: format!("unknown scheme {other:?}"),
                });
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(CliError::BadUrl {
                url: url.to_owned(),
                reason: "no host".into(),
            });
        }
        let path = if path == "/" { "" } else { path };
        Ok(Self {
            secure,
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn http(&self, path: &str) -> String {
        let s = if self.secure { "https" } else { "http" };
        format!("{s}://{}{path}", self.authority)
    }

    fn ws(&self, path: &str) -> String {
        let s = if self.secure { "wss" } else { "ws" };
        format!("{s}://{}{path}", self.authority)
    }
}

/// The outcome of one check.
enum Check {
    Ok(String),
    Absent(String),
    Fail(String),
}

struct Report<'a> {
    out: &'a mut Out,
    failed: usize,
}

impl Report<'_> {
    fn row(&mut self, what: &str, check: Check) -> Result<(), CliError> {
        let (mark, text) = match check {
            Check::Ok(t) => ("ok  ", t),
            Check::Absent(t) => ("--  ", t),
            Check::Fail(t) => {
                self.failed += 1;
                ("FAIL", t)
            }
        };
        self.out.line(&format!("{mark} {what:<24} {text}"))
    }
}

/// The transports that opened a session, and the first one's client (for the latency line).
#[derive(Default)]
struct Opened {
    count: usize,
    first: Option<AnyClient>,
}

impl Opened {
    /// Counts a session that opened at `url` in `took`; its check line.
    fn adopt(&mut self, client: AnyClient, url: &str, took: Duration) -> Check {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(client);
        }
        Check::Ok(format!("{url} (session in {})", ms(took)))
    }
}

/// Opens a session with `url` over `transport`/`codec`: the time to the open session, or why not.
async fn probe(
    url: &str,
    transport: Transport,
    codec: Codec,
    opts: &ConnectOpts,
    timeout: Duration,
) -> Result<(AnyClient, Duration), CliError> {
    let mut o = opts.clone();
    o.transport = Some(transport);
    o.codec = codec;
    o.timeout = timeout.as_secs_f64();
    let started = Instant::now();
    let client = AnyClient::start(url, &o)?;
    client::wait_open(&client, url, timeout).await?;
    Ok((client, started.elapsed()))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A short form of a probe's failure.
fn why(e: &CliError) -> String {
    match e {
        CliError::Unreachable { last, .. } => format!("no session ({last})"),
        CliError::AuthRefused { reason, .. } => format!("refused: {reason}"),
        other => other.to_string(),
    }
}

/// Finds a WebTransport URL in a discovery document: any `https://` string under a key or in
/// an object that names WebTransport. The document's exact shape is the server's (see
/// docs/protocol.md); this reads it loosely on purpose.
pub fn webtransport_url(doc: &serde_json::Value) -> Option<String> {
    fn names_wt(v: &serde_json::Value) -> bool {
        v.as_str()
            .is_some_and(|s| s.to_ascii_lowercase().contains("webtransport"))
    }
    match doc {
        serde_json::Value::Object(map) => {
            let here = map
                .iter()
                .any(|(k, v)| k.to_ascii_lowercase().contains("webtransport") || names_wt(v));
            for (k, v) in map {
                if let Some(s) = v.as_str()
                    && s.starts_with("https://")
                    && (here || k.to_ascii_lowercase().contains("webtransport"))
                {
                    return Some(s.to_owned());
                }
            }
            map.values().find_map(webtransport_url)
        }
        serde_json::Value::Array(items) => items.iter().find_map(webtransport_url),
        _ => None,
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Result<(u16, String), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Runs every check and prints one line each; fails (exit 7) when no transport opens a session.
pub async fn run(
    url: &str,
    d: &DoctorOpts,
    opts: &ConnectOpts,
    out: &mut Out,
) -> Result<(), CliError> {
    let target = Target::parse(url)?;
    let timeout = opts.timeout()?;
    tidings::runtime::install_tls_provider();
    let mut http = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = &opts.ca {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::io(format!("reading the CA file {}", path.display()), e))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| CliError::BadArgument(format!("--ca {}: {e}", path.display())))?;
        http = http.add_root_certificate(cert);
    }
    let http = http
        .build()
        .map_err(|e| CliError::Client(format!("HTTP client: {e}")))?;
    let mut r = Report { out, failed: 0 };
    r.out.line(&format!("tidings doctor {url}"))?;

    // The discovery document, when the server serves one.
    let discovery = target.http("/.well-known/tidings");
    let mut wt_url = d.webtransport.clone();
    match get(&http, &discovery).await {
        Ok((200, body)) => match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(doc) => {
                let compact = doc.to_string();
                let shown: String = compact.chars().take(300).collect();
                r.row(
                    "discovery",
                    Check::Ok(format!("/.well-known/tidings: {shown}")),
                )?;
                if wt_url.is_none() {
                    wt_url = webtransport_url(&doc);
                }
            }
            Err(e) => r.row(
                "discovery",
                Check::Fail(format!("{discovery}: not JSON: {e}")),
            )?,
        },
        Ok((status, _)) => r.row(
            "discovery",
            Check::Absent(format!("not served (HTTP {status}); probing directly")),
        )?,
        Err(e) => r.row("discovery", Check::Fail(format!("{discovery}: {e}")))?,
    }
    for path in ["/healthz", "/readyz"] {
        let check = match get(&http, &target.http(path)).await {
            Ok((200, body)) => Check::Ok(format!("HTTP 200 {}", body.trim())),
            Ok((404, _)) => Check::Absent("not served (HTTP 404)".into()),
            Ok((status, body)) => Check::Fail(format!("HTTP {status} {}", body.trim())),
            Err(e) => Check::Fail(e),
        };
        r.row(&format!("health {path}"), check)?;
    }

    let ws_path = if target.path.is_empty() {
        d.ws_path.clone()
    } else {
        target.path.clone()
    };
    let ws_url = target.ws(&ws_path);
    let mut opened = Opened::default();
    let mut auth_refused = None;
    for (codec, name) in [
        (Codec::Json, "tidings.v1.json"),
        (Codec::Bin, "tidings.v1.bin"),
    ] {
        let check = match probe(&ws_url, Transport::Ws, codec, opts, timeout).await {
            Ok((client, took)) => opened.adopt(client, &ws_url, took),
            Err(e) => {
                if let CliError::AuthRefused { reason, .. } = &e {
                    auth_refused = Some(reason.clone());
                }
                Check::Fail(why(&e))
            }
        };
        r.row(&format!("websocket {name}"), check)?;
    }
    let sse_url = target.http(&d.sse_path);
    let check = match probe(&sse_url, Transport::Sse, Codec::Json, opts, timeout).await {
        Ok((client, took)) => opened.adopt(client, &sse_url, took),
        Err(CliError::Unreachable { last, .. }) if last.contains("HTTP 404") => {
            Check::Absent(format!("{sse_url}: not served (HTTP 404)"))
        }
        Err(e) => Check::Absent(why(&e)),
    };
    r.row("sse tidings.v1.json", check)?;
    let (wt, named) = match wt_url {
        Some(u) => (u, true),
        None => (format!("https://{}/wt", target.authority), false),
    };
    let wt_timeout = if named {
        timeout
    } else {
        timeout.min(Duration::from_secs(2))
    };
    let check = match probe(&wt, Transport::Webtransport, Codec::Json, opts, wt_timeout).await {
        Ok((client, took)) => opened.adopt(client, &wt, took),
        Err(e) if named => Check::Fail(why(&e)),
        Err(e) => Check::Absent(format!("{wt}: {}", why(&e))),
    };
    r.row("webtransport", check)?;

    let tls = if !target.secure {
        Check::Absent("plain http/ws: no TLS".into())
    } else if opened.count > 0 {
        Check::Ok("certificate trusted".into())
    } else {
        Check::Fail("no session over TLS (see the lines above)".into())
    };
    r.row("tls", tls)?;
    let auth = match (&auth_refused, opened.count) {
        (Some(reason), _) => Check::Absent(format!("required: {reason}")),
        (None, n) if n > 0 => Check::Ok("not required for this URL".into()),
        (None, _) => Check::Absent("unknown (no session)".into()),
    };
    r.row("auth", auth)?;

    match &opened.first {
        Some(client) => {
            let check = match latency(client, d.pings, timeout).await {
                Ok(mut samples) => {
                    samples.sort_unstable();
                    Check::Ok(format!(
                        "{} echo round trip(s): p50 {}, max {}",
                        samples.len(),
                        ms(crate::bench::quantile(&samples, 0.5)),
                        ms(samples.last().copied().unwrap_or_default())
                    ))
                }
                Err(e) => Check::Absent(format!("not measured: {e}")),
            };
            r.row("latency", check)?;
        }
        None => {
            r.row(
                "transports",
                Check::Fail(
                    "none opened a session (is the URL the tidings endpoint? credentials?)".into(),
                ),
            )?;
        }
    }
    if r.failed > 0 && opened.count == 0 {
        return Err(CliError::Unhealthy(r.failed));
    }
    if r.failed > 0 {
        r.out.info(&format!(
            "{} check(s) failed; the server is reachable",
            r.failed
        ));
    }
    Ok(())
}

/// Echo round trips on a channel of its own: publish → the message back.
async fn latency(
    client: &AnyClient,
    pings: u32,
    timeout: Duration,
) -> Result<Vec<Duration>, CliError> {
    let channel = client::unique_channel("doctor");
    client.subscribe(&channel)?;
    let mut samples = Vec::new();
    let mut subscribed = false;
    for i in 0..pings.max(1) {
        let sent = Instant::now();
        let mut published = false;
        if subscribed {
            client.publish(&channel, i.to_string().into_bytes())?;
            published = true;
        }
        loop {
            let what = || format!("an echo on {channel}");
            let event = client::next_by(client, sent + timeout, what, timeout).await?;
            match event {
                ClientEvent::Subscribed { .. } if !published => {
                    subscribed = true;
                    client.publish(&channel, i.to_string().into_bytes())?;
                    published = true;
                }
                ClientEvent::Message(m) if m.payload.as_ref() == i.to_string().as_bytes() => {
                    samples.push(sent.elapsed());
                    break;
                }
                ClientEvent::PublishRefused { code, message, .. } => {
                    return Err(CliError::PublishRefused {
                        channel,
                        code: code.to_string(),
                        message,
                    });
                }
                ClientEvent::Error { code, message } => {
                    return Err(CliError::Server {
                        code: code.to_string(),
                        message,
                    });
                }
                _ => {}
            }
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("ws://127.0.0.1:3000/ws").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.http("/healthz"), "http://127.0.0.1:3000/healthz");
        assert_eq!(t.path, "/ws");
        let t = Target::parse("https://example.com/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.ws("/ws"), "wss://example.com/ws");
        assert!(t.path.is_empty());
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("nothing").is_err());
        assert!(Target::parse("http:///ws").is_err());
    }

    #[test]
    fn a_webtransport_url_is_found_loosely() {
        let doc = serde_json::json!({"transports": [
            {"kind": "websocket", "url": "ws://h/ws"},
            {"kind": "webtransport", "url": "https://h:4433/wt"}
        ]});
        assert_eq!(webtransport_url(&doc).as_deref(), Some("https://h:4433/wt"));
        let doc = serde_json::json!({"webtransport": "https://h/wt"});
        assert_eq!(webtransport_url(&doc).as_deref(), Some("https://h/wt"));
        assert_eq!(webtransport_url(&serde_json::json!({"ws": "ws://h"})), None);
    }
}
