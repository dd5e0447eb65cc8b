//! Percentiles of sorted samples, the server probe (RSS, CPU, control `stats`) and the `RESULT` line.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::sys;

/// Round-trip samples in nanoseconds.
#[derive(Default)]
pub(crate) struct Samples(pub(crate) Vec<u64>);

impl Samples {
    /// p50, p99, p99.9 and max in microseconds (0 when empty). Sorts in place.
    pub(crate) fn percentiles_us(&mut self) -> [f64; 4] {
        let v = &mut self.0;
        if v.is_empty() {
            return [0.0; 4];
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1e3
        };
        [at(0.50), at(0.99), at(0.999), at(1.0)]
    }
}

/// Counts per power-of-two bucket of milliseconds (`<1 ms`, `1-2 ms`, `2-4 ms`, ...), for
/// spotting stalls of a fixed length (delayed ACKs, retransmission timers) in a tail.
pub(crate) fn log2_histogram_ms(sorted_ns: &[u64]) -> String {
    let mut buckets: Vec<u64> = Vec::new();
    for &ns in sorted_ns {
        let ms = ns / 1_000_000;
        let b = if ms == 0 {
            0
        } else {
            64 - ms.leading_zeros() as usize
        };
        if buckets.len() <= b {
            buckets.resize(b + 1, 0);
        }
        buckets[b] += 1;
    }
    let mut out = Vec::new();
    for (b, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let label = if b == 0 {
            "<1ms".to_owned()
        } else {
            format!("{}-{}ms", 1u64 << (b - 1), 1u64 << b)
        };
        out.push(format!("{label}:{n}"));
    }
    out.join(" ")
}

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
        let sessions = crate::proto::num_field(&line, "sessions").unwrap_or(0);
        let connections = crate::proto::num_field(&line, "connections").unwrap_or(0);
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
    fn percentiles() {
        let mut s = Samples((1..=1000).rev().map(|n| n * 1000).collect());
        assert_eq!(s.percentiles_us(), [500.0, 990.0, 999.0, 1000.0]);
        assert_eq!(Samples::default().percentiles_us(), [0.0; 4]);
    }

    #[test]
    fn record() {
        let mut r = Record::default();
        r.num("a", 1.5).text("k", "x\"y");
        assert_eq!(r.0, r#""a":1.5,"k":"x\"y""#);
    }
}
