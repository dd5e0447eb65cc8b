//! The server probe (RSS, CPU, control `stats`), the kernel's TCP counters, the `RESULT` line and progress; round-trip statistics are `tidings_loadgen`'s.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tidings_loadgen::num_field;

use crate::sys;

/// Kernel TCP counters (`/proc/net/snmp` `Tcp:` and `/proc/net/netstat` `TcpExt:`) that
/// explain round-trip tails on loopback: retransmissions, loss probes, listen drops.
pub(crate) fn tcp_counters() -> Vec<(String, u64)> {
    const WANTED: [&str; 7] = [
        "RetransSegs",
        "TCPTimeouts",
        "TCPLossProbes",
        "DelayedACKLost",
        "TCPFastRetrans",
        "ListenDrops",
        "TCPBacklogDrop",
    ];
    let mut out = Vec::new();
    for (path, prefix) in [("/proc/net/snmp", "Tcp:"), ("/proc/net/netstat", "TcpExt:")] {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        if let [names, values, ..] = lines[..] {
            for (name, value) in names
                .split_whitespace()
                .zip(values.split_whitespace())
                .skip(1)
            {
                if WANTED.contains(&name) {
                    out.push((name.to_owned(), value.parse().unwrap_or(0)));
                }
            }
        }
    }
    out
}

/// `after - before` of [`tcp_counters`], as `name=delta` pairs (non-zero ones).
pub(crate) fn tcp_delta(before: &[(String, u64)], after: &[(String, u64)]) -> String {
    after
        .iter()
        .filter_map(|(name, a)| {
            let b = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, b)| *b);
            (a > &b).then(|| format!("{name}={}", a - b))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the server under test: its memory and CPU from `/proc`, its sessions from the
/// control port.
pub(crate) struct Probe {
    pub(crate) pid: u32,
    pub(crate) control: SocketAddr,
}

impl Probe {
    pub(crate) fn rss_kib(&self) -> u64 {
        sys::rss_kib(self.pid).unwrap_or(0)
    }

    pub(crate) fn cpu_secs(&self) -> f64 {
        sys::cpu_secs(self.pid).unwrap_or(0.0)
    }

    /// `(sessions, connections)` as the server counts them.
    pub(crate) fn sessions(&self) -> Result<(u64, u64), String> {
        let mut stream = TcpStream::connect_timeout(&self.control, Duration::from_secs(2))
            .map_err(|e| format!("control {}: {e}", self.control))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        writeln!(stream, "stats").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .map_err(|e| format!("control: {e}"))?;
        let sessions = num_field(&line, "sessions").unwrap_or(0);
        let connections = num_field(&line, "connections").unwrap_or(0);
        Ok((sessions, connections))
    }
}

/// A flat JSON object built field by field (numbers and strings only).
#[derive(Default)]
pub(crate) struct Record(String);

impl Record {
    pub(crate) fn num(&mut self, key: &str, value: f64) -> &mut Self {
        let value = if value.is_finite() { value } else { 0.0 };
        self.sep();
        let _ = write!(self.0, "\"{key}\":{value}");
        self
    }

    pub(crate) fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.sep();
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(self.0, "\"{key}\":\"{escaped}\"");
        self
    }

    fn sep(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }

    /// Prints `RESULT {...}` on stdout, where `cargo xtask load` looks for it.
    pub(crate) fn emit(&self) {
        println!("RESULT {{{}}}", self.0);
    }
}

/// Progress for the person watching, on stderr.
pub(crate) fn progress(tag: &str, message: &str) {
    eprintln!("  [{tag}] {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record() {
        let mut r = Record::default();
        r.num("a", 1.5).text("k", "x\"y");
        assert_eq!(r.0, r#""a":1.5,"k":"x\"y""#);
    }
}
