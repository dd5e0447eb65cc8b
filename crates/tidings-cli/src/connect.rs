//! `tidings connect URL`: an interactive session — commands on stdin (`sub`, `unsub`, `pub`, `state`, `quit`), every event of the session on stdout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{AnyClient, ConnectOpts};
use crate::error::CliError;
use crate::events;
use crate::out::Out;

/// The commands `connect` reads, one per line.
pub const HELP: &str = "\
commands (one per line):
  sub CHANNEL...        subscribe (kept across reconnects)
  unsub CHANNEL...      unsubscribe
  pub CHANNEL MESSAGE   publish the rest of the line as the payload
  state                 print the session state and unacknowledged publishes
  help                  this text
  quit                  close (also at the end of input)";

/// One parsed stdin line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `sub CH...`.
    Sub(Vec<&'a str>),
    /// `unsub CH...`.
    Unsub(Vec<&'a str>),
    /// `pub CH MSG`.
    Pub(&'a str, &'a str),
    /// `state`.
    State,
    /// `help`.
    Help,
    /// `quit` / `exit`.
    Quit,
    /// An empty line.
    Nothing,
}

/// Parses one line of input.
pub fn parse(line: &str) -> Result<Command<'_>, String> {
    let trimmed = line.trim_end_matches(['\r', '\n']).trim_start();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let names: Vec<&str> = rest.split_whitespace().collect();
    match word {
        "" => Ok(Command::Nothing),
        "sub" | "subscribe" if !names.is_empty() => Ok(Command::Sub(names)),
        "unsub" | "unsubscribe" if !names.is_empty() => Ok(Command::Unsub(names)),
        "sub" | "subscribe" | "unsub" | "unsubscribe" => Err(format!("usage: {word} CHANNEL...")),
        "pub" | "publish" => {
            let rest = rest.trim_start();
            let (channel, message) = rest.split_once(' ').unwrap_or((rest, ""));
            if channel.is_empty() {
                Err("usage: pub CHANNEL MESSAGE".into())
            } else {
                Ok(Command::Pub(channel, message))
            }
        }
        "state" => Ok(Command::State),
        "help" | "?" => Ok(Command::Help),
        "quit" | "exit" => Ok(Command::Quit),
        other => Err(format!("unknown command {other:?} (type `help`)")),
    }
}

/// Runs the interactive session until `quit`, the end of stdin or a closed session.
pub async fn run(
    url: &str,
    subscribe: &[String],
    opts: &ConnectOpts,
    out: &mut Out,
) -> Result<(), CliError> {
    let client = AnyClient::start(url, opts)?;
    for channel in subscribe {
        client.subscribe(channel)?;
    }
    out.info(&format!(
        "connecting to {url}; type `help` for commands, end input (Ctrl-D) to quit"
    ));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            event = client.next_event() => match event {
                Some(event) => {
                    out.line(&events::line(&event))?;
                    if let tidings::protocol::ClientEvent::Closed { .. } = event {
                        return Ok(());
                    }
                }
                None => return Ok(()),
            },
            line = lines.next_line() => {
                let line = line.map_err(|e| CliError::io("reading stdin", e))?;
                let Some(line) = line else { break };
                match parse(&line) {
                    Ok(Command::Nothing) => {}
                    Ok(Command::Sub(channels)) => for ch in channels {
                        if let Err(e) = client.subscribe(ch) { out.warn(&e.to_string()); }
                    },
                    Ok(Command::Unsub(channels)) => for ch in channels {
                        match client.unsubscribe(ch) {
                            Ok(()) => out.line(&format!("unsubscribed {ch}"))?,
                            Err(e) => out.warn(&e.to_string()),
                        }
                    },
                    Ok(Command::Pub(channel, message)) => {
                        match client.publish(channel, message.as_bytes().to_vec()) {
                            Ok(seq) => out.line(&format!("sent publish {seq} on {channel}"))?,
                            Err(e) => out.warn(&e.to_string()),
                        }
                    }
                    Ok(Command::State) => out.line(&format!(
                        "state {:?}, {} unacknowledged publish(es)",
                        client.state(),
                        client.unacked()
                    ))?,
                    Ok(Command::Help) => out.line(HELP)?,
                    Ok(Command::Quit) => break,
                    Err(e) => out.warn(&e),
                }
            }
        }
    }
    drain(&client, opts.timeout()?, out).await?;
    client.close();
    Ok(())
}

/// At the end of input: waits (up to `timeout`) until every publish is acknowledged, printing
/// the events meanwhile and then those already received, so `echo 'pub ch hi' | tidings connect
/// URL` delivers its publish and shows what came back with the acknowledgement.
async fn drain(client: &AnyClient, timeout: Duration, out: &mut Out) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    while client.unacked() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next_event()).await {
            Ok(Some(event)) => out.line(&events::line(&event))?,
            Ok(None) => break,
            Err(_) => {
                return Err(CliError::Timeout {
                    what: format!(
                        "{} publish(es) to be acknowledged before quitting",
                        client.unacked()
                    ),
                    secs: timeout.as_secs_f64(),
                });
            }
        }
    }
    // What has arrived already (our own messages ride with their acknowledgement): shown,
    // without waiting for more.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::ZERO, client.next_event()).await {
        out.line(&events::line(&event))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("sub a b"), Ok(Command::Sub(vec!["a", "b"])));
        assert_eq!(
            parse("pub room:x hello world"),
            Ok(Command::Pub("room:x", "hello world"))
        );
        assert_eq!(parse("pub room:x"), Ok(Command::Pub("room:x", "")));
        assert_eq!(parse("  "), Ok(Command::Nothing));
        assert_eq!(parse("quit\r\n"), Ok(Command::Quit));
        assert!(parse("sub").is_err());
        assert!(parse("pub").is_err());
        assert!(parse("frobnicate").is_err());
    }
}
