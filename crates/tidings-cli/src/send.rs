//! `tidings send URL CHANNEL MESSAGE`: publishes once and waits for the server's acknowledgement (exit 0) or refusal (exit 4).

use std::time::Instant;

use tidings::protocol::ClientEvent;

use crate::client::{self, AnyClient, ConnectOpts};
use crate::error::CliError;
use crate::events;
use crate::out::Out;

/// Publishes `message` on `channel` and waits until the server has it.
pub async fn run(
    url: &str,
    channel: &str,
    message: &str,
    opts: &ConnectOpts,
    out: &mut Out,
) -> Result<(), CliError> {
    let client = AnyClient::start(url, opts)?;
    let timeout = opts.timeout()?;
    let seq = client.publish(channel, message.as_bytes().to_vec())?;
    let started = Instant::now();
    for event in client::wait_open(&client, url, timeout).await? {
        out.info(&events::line(&event));
    }
    let deadline = started + timeout;
    loop {
        let what = || format!("the server to acknowledge the publish on {channel}");
        let event = client::next_by(&client, deadline, what, timeout).await?;
        match event {
            ClientEvent::PublishAcked { seq: acked } if acked >= seq => {
                out.line(&format!(
                    "sent to {channel} ({} bytes, acknowledged in {:.1} ms)",
                    message.len(),
                    started.elapsed().as_secs_f64() * 1e3
                ))?;
                client.close();
                return Ok(());
            }
            ClientEvent::PublishRefused {
                channel,
                code,
                message,
                ..
            } => {
                return Err(CliError::PublishRefused {
                    channel: channel.to_string(),
                    code: code.to_string(),
                    message,
                });
            }
            ClientEvent::Closed { reason } | ClientEvent::Disconnected { reason, .. }
                if client::is_auth_refusal(&reason) =>
            {
                return Err(CliError::AuthRefused {
                    url: url.to_owned(),
                    reason,
                });
            }
            ClientEvent::Closed { reason } => return Err(CliError::Closed(reason)),
            other => out.info(&events::line(&other)),
        }
    }
}
