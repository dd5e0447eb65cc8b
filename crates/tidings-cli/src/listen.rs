//! `tidings listen URL CHANNEL...`: subscribes and prints each message (`CHANNEL #SEQ PAYLOAD`), gaps and resets on stdout; connection changes on stderr.

use std::time::Instant;

use tidings::protocol::ClientEvent;

use crate::client::{self, AnyClient, ConnectOpts};
use crate::error::CliError;
use crate::events;
use crate::out::Out;

/// Listens until `count` messages arrived (if given), the session closes, or Ctrl-C.
pub async fn run(
    url: &str,
    channels: &[String],
    count: Option<u64>,
    opts: &ConnectOpts,
    out: &mut Out,
) -> Result<(), CliError> {
    let client = AnyClient::start(url, opts)?;
    for channel in channels {
        client.subscribe(channel)?;
    }
    let timeout = opts.timeout()?;
    for event in client::wait_open(&client, url, timeout).await? {
        out.info(&events::line(&event));
    }
    let mut received = 0u64;
    if count == Some(0) {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let event = tokio::select! {
            e = client.next_event() => e,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(event) = event else { break };
        match &event {
            ClientEvent::Message(m) => {
                out.line(&format!(
                    "{} #{} {}",
                    m.channel,
                    m.seq,
                    events::payload_text(&m.payload)
                ))?;
                received += 1;
                if count.is_some_and(|n| received >= n) {
                    break;
                }
            }
            ClientEvent::Gap(_) | ClientEvent::ChannelReset { .. } => {
                out.line(&events::line(&event))?
            }
            ClientEvent::Error { code, message } if code.as_str() == "forbidden" => {
                return Err(CliError::Server {
                    code: code.to_string(),
                    message: message.clone(),
                });
            }
            ClientEvent::Closed { reason } => return Err(CliError::Closed(reason.clone())),
            _ => out.info(&events::line(&event)),
        }
    }
    out.info(&format!(
        "{received} message(s) in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    client.close();
    Ok(())
}
