//! The load generator: N WebSocket connections to one server, driven through phases by one coordinator.
//!
//! Phases (each connection is one tokio task; the coordinator switches phases through a
//! `watch` channel and waits until every live connection has seen the switch):
//!
//! 1. **connect** N connections, at most [`CONNECT_CONCURRENCY`] handshakes at a time. A
//!    tidings connection offers `tidings.v1.json`, sends `hello`, waits for `welcome`,
//!    subscribes to its own channel `load:<i>` and waits for `subscribed`.
//! 2. **idle**: the server's RSS once every connection is up, minus its RSS before the
//!    first one, divided by N = memory per idle connection.
//! 3. **echo, closed loop**: every connection keeps one message in flight. Raw servers
//!    echo the 32-byte text message; on tidings the connection publishes it to its own
//!    channel and the hub delivers it back (plus, as the real client does by default, an
//!    `ack` per 64 messages or 1 s, sent with the next publish). A warm-up, then a measured
//!    window: messages per second, round trip percentiles, server CPU seconds per million
//!    messages, server RSS at the end (busy).
//! 4. **echo, paced**: each connection sends once per `N / rate` seconds, spread evenly:
//!    round trips at a load every server sustains (latency without queueing).
//! 5. **fan-out** (tidings only): every connection subscribes to `load:fanout`; an extra
//!    connection publishes one message there, a few rounds; time from the publish to the
//!    last of the N receipts.
//! 6. **close**.
//!
//! With `--real-client` the connections are `tidings_ws::Client`s instead (phases 1–3,
//! 5 and 6), to show the cost of the real client. `--kind tidings-wt` runs the same
//! phases with `tidings_webtransport::Client`s against the tidings server over
//! WebTransport (`--cert-hash` pins its development certificate); its fan-out publisher
//! is a real client too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use tidings_benches::{tidings_ws_config, tungstenite_config};
use tidings_loadgen::{self as proto, Handshake, Samples, WsStream, now_ns};
use tidings_protocol::ClientEvent;
use tidings_runtime::{Client, ClientTransport};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{self, Probe, Record, progress};
use crate::{Args, sys};

/// Handshakes in flight at once while connecting (the listen backlog is 1,024; a dropped
/// SYN costs a one-second retransmission).
pub(crate) const CONNECT_CONCURRENCY: usize = 128;

/// Time allowed for one connection's set-up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The channel of the fan-out phase.
const FANOUT_CHANNEL: &str = "load:fanout";

/// "Do not record" as a recording start.
const NEVER: u64 = u64::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Idle,
    /// Closed loop; round trips of messages sent at or after `record_from` are recorded.
    Echo {
        record_from: u64,
    },
    /// One message per `period` per connection, the first at `start + period * i / N`.
    Paced {
        start: u64,
        period: u64,
    },
    FanoutSubscribe,
    Close,
}

struct Shared {
    tidings: bool,
    /// The real client's default ack policy, which tidings connections follow:
    /// an `ack` after this many messages...
    ack_every: u64,
    /// ...or this long (ns) after the first unacknowledged one.
    ack_delay_ns: u64,
    conns: usize,
    /// Connections up and not failed.
    alive: AtomicUsize,
    /// Connections whose set-up failed.
    connect_failed: AtomicUsize,
    /// Connections lost after set-up (closed by the server, errors).
    lost: AtomicUsize,
    /// Live connections that have seen the latest mode.
    seen: AtomicUsize,
    /// Samples handed over by the connections when the mode changes.
    samples: Mutex<Vec<u64>>,
    /// Round trips per connection in the measured closed-loop window (fairness).
    per_conn: Mutex<Vec<u64>>,
    fan_ready: AtomicUsize,
    fan_received: AtomicUsize,
    fan_last_ns: AtomicU64,
    /// Publishes sent and `message` frames received over the whole run, every
    /// phase (each connection adds its own counts once, when it closes): what
    /// the server's `/metrics` must show.
    published: AtomicU64,
    received: AtomicU64,
    /// Connections set up (handshake and session done), the fan-out publisher's too.
    opened: AtomicU64,
    /// The first error met, for the report.
    first_error: Mutex<Option<String>>,
}

impl Shared {
    /// A connection leaves `mode`: hands over its samples (and, after the measured
    /// closed-loop window, how many it had).
    fn hand_over(&self, mode: Mode, local: &mut Vec<u64>) {
        if matches!(mode, Mode::Echo { record_from } if record_from != NEVER) {
            self.per_conn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(local.len() as u64);
        }
        if !local.is_empty() {
            self.samples
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(local);
        }
    }

    fn error(&self, e: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    }
}

struct Coordinator {
    shared: Arc<Shared>,
    tx: watch::Sender<Mode>,
    tag: String,
}

impl Coordinator {
    /// Switches every connection to `mode` and waits (up to `limit`) until all live ones saw it.
    async fn switch(&self, mode: Mode, limit: Duration) {
        self.shared.seen.store(0, Ordering::SeqCst);
        let _ = self.tx.send(mode);
        let deadline = Instant::now() + limit;
        while self.shared.seen.load(Ordering::SeqCst) < self.shared.alive.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn take_samples(&self) -> Samples {
        Samples(std::mem::take(
            &mut *self
                .shared
                .samples
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        ))
    }

    fn progress(&self, message: &str) {
        progress(&self.tag, message);
    }
}

/// `tidings-load gen ...`.
pub(crate) fn run(args: &Args) -> Result<(), String> {
    let kind: String = args.req("kind")?;
    let addr: SocketAddr = args.req("addr")?;
    let probe = Probe {
        pid: args.req("server-pid")?,
        control: args.req("control")?,
    };
    let conns: usize = args.get("conns", 10_000)?;
    let secs: f64 = args.get("secs", 10.0)?;
    let warmup: f64 = args.get("warmup-secs", 2.0)?;
    let paced_secs: f64 = args.get("paced-secs", 5.0)?;
    let rate: f64 = args.get("rate", conns as f64)?;
    let rounds: usize = args.get("fanout-rounds", 5)?;
    let settle: f64 = args.get("settle-secs", 2.0)?;
    let webtransport = kind == "tidings-wt";
    let real = args.flag("real-client") || webtransport;
    let cert_hash = match args.get("cert-hash", String::new())? {
        h if h.is_empty() => None,
        h => Some(parse_hash(&h)?),
    };
    if webtransport && cert_hash.is_none() {
        return Err(
            "--kind tidings-wt needs --cert-hash (the server's certificate SHA-256)".into(),
        );
    }
    let nofile = sys::raise_nofile(conns as u64 + 1_024)?;
    if nofile < conns as u64 + 64 {
        return Err(format!(
            "open-file limit {nofile} is too low for {conns} connections"
        ));
    }
    let tidings = kind == "tidings" || webtransport;
    if real && !tidings {
        return Err("--real-client needs --kind tidings (or tidings-wt)".into());
    }
    let tag = if real {
        format!("{kind}+Client")
    } else {
        kind.clone()
    };
    let config = Config {
        addr,
        conns,
        secs,
        warmup,
        paced_secs,
        rate,
        rounds: if tidings { rounds } else { 0 },
        settle,
        real,
        webtransport: cert_hash.filter(|_| webtransport),
    };
    let rt = crate::runtime();
    let mut record = rt.block_on(drive(&config, tidings, &tag, &probe))?;
    record
        .text("kind", &kind)
        .text("client", if real { "Client" } else { "raw" });
    record.emit();
    // Leave without dropping thousands of sockets one by one through the runtime.
    std::process::exit(0);
}

struct Config {
    addr: SocketAddr,
    conns: usize,
    secs: f64,
    warmup: f64,
    paced_secs: f64,
    rate: f64,
    rounds: usize,
    settle: f64,
    real: bool,
    /// Real clients over WebTransport, trusting this certificate hash.
    webtransport: Option<[u8; 32]>,
}

/// A SHA-256 in hex.
fn parse_hash(hex: &str) -> Result<[u8; 32], String> {
    let bad = || format!("--cert-hash: expected 64 hex digits, got `{hex}`");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// How a real client connects.
#[derive(Clone, Copy)]
enum Dial {
    Ws(SocketAddr),
    Wt(SocketAddr, [u8; 32]),
}

impl Dial {
    fn of(c: &Config) -> Self {
        match c.webtransport {
            Some(hash) => Dial::Wt(c.addr, hash),
            None => Dial::Ws(c.addr),
        }
    }
}
async fn drive(c: &Config, tidings: bool, tag: &str, probe: &Probe) -> Result<Record, String> {
    let mut r = Record::default();
    let client = tidings_protocol::ClientConfig::default();
    let shared = Arc::new(Shared {
        tidings,
        ack_every: u64::from(client.ack_every),
        ack_delay_ns: client.ack_delay.as_nanos() as u64,
        conns: c.conns,
        alive: AtomicUsize::new(0),
        connect_failed: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        seen: AtomicUsize::new(0),
        samples: Mutex::new(Vec::new()),
        per_conn: Mutex::new(Vec::new()),
        fan_ready: AtomicUsize::new(0),
        fan_received: AtomicUsize::new(0),
        published: AtomicU64::new(0),
        received: AtomicU64::new(0),
        opened: AtomicU64::new(0),
        fan_last_ns: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let (tx, rx) = watch::channel(Mode::Idle);
    let co = Coordinator {
        shared: shared.clone(),
        tx,
        tag: tag.to_owned(),
    };
    now_ns();

    // 1. Connect.
    let rss0 = probe.rss_kib();
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    for i in 0..c.conns {
        let (shared, rx, permits, addr) = (shared.clone(), rx.clone(), permits.clone(), c.addr);
        if c.real {
            match Dial::of(c) {
                Dial::Ws(addr) => {
                    tokio::spawn(real_conn(ws_client(addr), i, shared, rx, permits));
                }
                Dial::Wt(addr, hash) => {
                    tokio::spawn(real_conn(wt_client(addr, hash), i, shared, rx, permits));
                }
            }
        } else {
            tokio::spawn(raw_conn(addr, i, shared, rx, permits));
        }
    }
    let connect_limit = Instant::now() + Duration::from_secs(60) + CONNECT_TIMEOUT;
    let mut last_report = Instant::now();
    loop {
        let up = shared.alive.load(Ordering::SeqCst) + shared.lost.load(Ordering::SeqCst);
        let failed = shared.connect_failed.load(Ordering::SeqCst);
        if up + failed >= c.conns || Instant::now() > connect_limit {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            co.progress(&format!("connecting: {up}/{} up, {failed} failed", c.conns));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = shared.alive.load(Ordering::SeqCst);
    co.progress(&format!(
        "{connected}/{} connected in {connect_secs:.1}s ({} failed)",
        c.conns,
        shared.connect_failed.load(Ordering::SeqCst)
    ));
    r.num("conns", c.conns as f64)
        .num("connected", connected as f64)
        .num(
            "connect_failed",
            shared.connect_failed.load(Ordering::SeqCst) as f64,
        )
        .num("connect_secs", connect_secs);
    if connected == 0 {
        return Err(format!(
            "no connection could be set up: {}",
            shared
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default()
        ));
    }

    // 2. Idle.
    tokio::time::sleep(Duration::from_secs_f64(c.settle)).await;
    let rss_idle = probe.rss_kib();
    let (sessions_idle, server_conns_idle) = probe.sessions().unwrap_or((0, 0));
    let per_conn = |rss: u64| (rss.saturating_sub(rss0)) as f64 / connected as f64;
    co.progress(&format!(
        "idle: server RSS {rss0} -> {rss_idle} KiB, {:.1} KiB/conn; server counts {server_conns_idle} connections, {sessions_idle} sessions",
        per_conn(rss_idle)
    ));
    r.num("rss0_kib", rss0 as f64)
        .num("rss_idle_kib", rss_idle as f64)
        .num("idle_kib_per_conn", per_conn(rss_idle))
        .num("server_sessions_idle", sessions_idle as f64)
        .num("server_conns_idle", server_conns_idle as f64);

    // 3. Echo, closed loop.
    co.switch(Mode::Echo { record_from: NEVER }, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs_f64(c.warmup)).await;
    let (cpu0, gen0, all0) = (probe.cpu_secs(), own_cpu(), sys::machine_busy_secs());
    let tcp0 = stats::tcp_counters();
    let t0 = now_ns();
    co.switch(Mode::Echo { record_from: t0 }, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs_f64(c.secs)).await;
    let (cpu1, gen1, all1) = (probe.cpu_secs(), own_cpu(), sys::machine_busy_secs());
    let tcp = stats::tcp_delta(&tcp0, &stats::tcp_counters());
    let t1 = now_ns();
    let rss_busy = probe.rss_kib();
    // Stop recording (and sending, for the real client) before the next phase.
    co.switch(Mode::Idle, Duration::from_secs(10)).await;
    let mut echo = co.take_samples();
    let mut counts =
        std::mem::take(&mut *shared.per_conn.lock().unwrap_or_else(|p| p.into_inner()));
    counts.sort_unstable();
    let nth = |q: f64| {
        let v = &counts;
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
    };
    r.num("echo_conn_min", nth(0.0))
        .num("echo_conn_p1", nth(0.01))
        .num("echo_conn_p50", nth(0.5))
        .num("echo_conn_max", nth(1.0));
    let window = (t1 - t0) as f64 / 1e9;
    let msgs = echo.0.len() as f64;
    let [p50, p99, p999, max] = echo.percentiles_us();
    co.progress(&format!(
        "echo round trips by duration: {}; kernel TCP in the window: {}",
        proto::log2_histogram_ms(&echo.0),
        if tcp.is_empty() { "-" } else { &tcp }
    ));
    r.text("echo_tcp", &tcp);
    let per_m = |cpu: f64| if msgs > 0.0 { cpu / msgs * 1e6 } else { 0.0 };
    co.progress(&format!(
        "echo: {:.0} msg/s (per connection: min {:.0}, 1st percentile {:.0}, median {:.0}, max {:.0}), round trip p50 {p50:.0} µs p99 {p99:.0} µs p99.9 {p999:.0} µs; server {:.2} CPU s/1M msgs ({:.0}% of a core), generator {:.2}, other processes {:.0}% of a core; busy RSS {:.1} KiB/conn",
        msgs / window,
        nth(0.0),
        nth(0.01),
        nth(0.5),
        nth(1.0),
        per_m(cpu1 - cpu0),
        (cpu1 - cpu0) / window * 100.0,
        per_m(gen1 - gen0),
        ((all1 - all0) - (cpu1 - cpu0) - (gen1 - gen0)).max(0.0) / window * 100.0,
        per_conn(rss_busy)
    ));
    r.num("echo_secs", window)
        .num("echo_msgs", msgs)
        .num("echo_msg_s", msgs / window)
        .num("echo_p50_us", p50)
        .num("echo_p99_us", p99)
        .num("echo_p999_us", p999)
        .num("echo_max_us", max)
        .num("server_cpu_s", cpu1 - cpu0)
        .num("server_cpu_s_per_m", per_m(cpu1 - cpu0))
        .num("server_cpu_share", (cpu1 - cpu0) / window)
        .num("gen_cpu_s", gen1 - gen0)
        .num("gen_cpu_s_per_m", per_m(gen1 - gen0))
        .num("gen_cpu_share", (gen1 - gen0) / window)
        .num(
            "other_cpu_share",
            ((all1 - all0) - (cpu1 - cpu0) - (gen1 - gen0)).max(0.0) / window,
        )
        .num("rss_busy_kib", rss_busy as f64)
        .num("busy_kib_per_conn", per_conn(rss_busy));

    // 4. Echo, paced.
    if c.paced_secs > 0.0 && c.rate > 0.0 && !c.real {
        let alive = shared.alive.load(Ordering::SeqCst).max(1);
        let period = (alive as f64 / c.rate * 1e9) as u64;
        let start = now_ns() + 50_000_000;
        co.switch(Mode::Paced { start, period }, Duration::from_secs(10))
            .await;
        let until = Duration::from_nanos(start.saturating_sub(now_ns()))
            + Duration::from_secs_f64(c.paced_secs);
        let cpu0 = probe.cpu_secs() + own_cpu();
        let (all0, w0) = (sys::machine_busy_secs(), Instant::now());
        tokio::time::sleep(until).await;
        let cpu1 = probe.cpu_secs() + own_cpu();
        let (all1, w1) = (sys::machine_busy_secs(), w0.elapsed().as_secs_f64());
        co.switch(Mode::Idle, Duration::from_secs(10)).await;
        r.num(
            "paced_other_cpu_share",
            ((all1 - all0) - (cpu1 - cpu0)).max(0.0) / w1,
        );
        let mut paced = co.take_samples();
        let [p50, p99, p999, max] = paced.percentiles_us();
        let achieved = paced.0.len() as f64 / c.paced_secs;
        co.progress(&format!(
            "paced at {:.0} msg/s (asked {:.0}): round trip p50 {p50:.0} µs p99 {p99:.0} µs p99.9 {p999:.0} µs",
            achieved, c.rate
        ));
        r.num("paced_rate", c.rate)
            .num("paced_msg_s", achieved)
            .num("paced_p50_us", p50)
            .num("paced_p99_us", p99)
            .num("paced_p999_us", p999)
            .num("paced_max_us", max);
    }

    // 5. Fan-out.
    if c.rounds > 0 {
        fanout(c, &co, &mut r).await;
    }

    // 6. Close.
    let alive = shared.alive.load(Ordering::SeqCst);
    let lost = shared.lost.load(Ordering::SeqCst);
    r.num("held", alive as f64).num("lost", lost as f64);
    co.progress(&format!(
        "{alive} connections held to the end, {lost} lost{}",
        shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    ));
    if let Some(e) = shared
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        r.text("first_error", e);
    }
    co.switch(Mode::Close, Duration::from_secs(10)).await;
    if tidings && !c.real {
        // The run's own counts, for the comparison with the server's `/metrics`.
        r.num(
            "gen_published",
            shared.published.load(Ordering::SeqCst) as f64,
        )
        .num(
            "gen_received",
            shared.received.load(Ordering::SeqCst) as f64,
        )
        .num("gen_opened", shared.opened.load(Ordering::SeqCst) as f64);
    }
    Ok(r)
}

fn own_cpu() -> f64 {
    sys::cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// The fan-out phase's publisher: a raw connection, or a real client of either transport.
enum Publishing {
    Raw(Box<WsStream>),
    Ws(Client<tidings_ws::WebSocket>),
    Wt(Client<tidings_webtransport::WebTransport>),
}

impl Publishing {
    async fn connect(c: &Config) -> Result<Self, String> {
        if !c.real {
            return connect(c.addr, Handshake::Session { subscribe: None })
                .await
                .map(|ws| Publishing::Raw(Box::new(ws)))
                .map_err(|e| e.to_string());
        }
        match Dial::of(c) {
            Dial::Ws(addr) => real_connect(ws_client(addr), None)
                .await
                .map(Publishing::Ws),
            Dial::Wt(addr, hash) => real_connect(wt_client(addr, hash), None)
                .await
                .map(Publishing::Wt),
        }
    }

    async fn publish(&mut self, round: u64, t: u64) -> bool {
        match self {
            Publishing::Raw(ws) => ws
                .send(Message::text(proto::publish(FANOUT_CHANNEL, round, t)))
                .await
                .is_ok(),
            Publishing::Ws(c) => c.publish(FANOUT_CHANNEL, proto::payload(t)).is_ok(),
            Publishing::Wt(c) => c.publish(FANOUT_CHANNEL, proto::payload(t)).is_ok(),
        }
    }

    async fn close(self) {
        match self {
            Publishing::Raw(mut ws) => {
                let _ = (*ws).close(None).await;
            }
            Publishing::Ws(c) => c.close(),
            Publishing::Wt(c) => c.close(),
        }
    }
}

async fn fanout(c: &Config, co: &Coordinator, r: &mut Record) {
    let shared = &co.shared;
    co.switch(Mode::FanoutSubscribe, Duration::from_secs(10))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.fan_ready.load(Ordering::SeqCst) < shared.alive.load(Ordering::SeqCst)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let subscribers = shared.fan_ready.load(Ordering::SeqCst);
    let mut publisher = match Publishing::connect(c).await {
        Ok(p) => {
            shared.opened.fetch_add(1, Ordering::SeqCst);
            p
        }
        Err(e) => {
            co.progress(&format!("fan-out publisher could not connect: {e}"));
            return;
        }
    };
    let mut times_ms = Vec::new();
    let mut delivered_min = usize::MAX;
    for round in 1..=c.rounds as u64 {
        shared.fan_received.store(0, Ordering::SeqCst);
        shared.fan_last_ns.store(0, Ordering::SeqCst);
        let t = now_ns();
        if !publisher.publish(round, t).await {
            co.progress("fan-out publisher lost its connection");
            break;
        }
        shared.published.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.fan_received.load(Ordering::SeqCst) < subscribers && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let received = shared.fan_received.load(Ordering::SeqCst);
        let last = shared.fan_last_ns.load(Ordering::SeqCst);
        delivered_min = delivered_min.min(received);
        times_ms.push(last.saturating_sub(t) as f64 / 1e6);
        // Let the connections' queues drain before the next round.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    publisher.close().await;
    if times_ms.is_empty() {
        return;
    }
    let mut sorted = times_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    let min = sorted[0];
    co.progress(&format!(
        "fan-out to {subscribers}: last receipt after {median:.1} ms (median of {} rounds; min {min:.1}, max {max:.1}), {:.2} M deliveries/s; fewest delivered {delivered_min}",
        times_ms.len(),
        subscribers as f64 / median / 1e3
    ));
    r.num("fanout_subscribers", subscribers as f64)
        .num("fanout_rounds", times_ms.len() as f64)
        .num("fanout_median_ms", median)
        .num("fanout_min_ms", min)
        .num("fanout_max_ms", max)
        .num("fanout_delivered_min", delivered_min as f64);
}

/// Opens one WebSocket with the baseline's buffers (see [`proto::connect`]).
pub(crate) async fn connect(
    addr: SocketAddr,
    handshake: Handshake<'_>,
) -> Result<WsStream, proto::ConnectError> {
    proto::connect(addr, tungstenite_config(), handshake).await
}

/// One connection of the raw generator.
async fn raw_conn(
    addr: SocketAddr,
    i: usize,
    shared: Arc<Shared>,
    rx: watch::Receiver<Mode>,
    permits: Arc<Semaphore>,
) {
    let channel = format!("load:{i}");
    let ws = {
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        let handshake = if shared.tidings {
            Handshake::Session {
                subscribe: Some(channel.as_str()),
            }
        } else {
            Handshake::WebSocket
        };
        let mut result = Err(String::new());
        // A SYN dropped under a connect burst costs a retransmission: retry a little.
        for _ in 0..3 {
            result = match tokio::time::timeout(CONNECT_TIMEOUT, connect(addr, handshake)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("set-up timed out".into()),
            };
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match result {
            Ok(ws) => ws,
            Err(e) => {
                shared.error(format!("connection {i}: {e}"));
                shared.connect_failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    shared.alive.fetch_add(1, Ordering::SeqCst);
    shared.opened.fetch_add(1, Ordering::SeqCst);
    let mut conn = RawConn {
        ws,
        i,
        channel,
        shared: shared.clone(),
        local: Vec::new(),
        out: proto::FrameBuf::default(),
        publish_seq: 0,
        messages: 0,
        received_seq: 0,
        acked_seq: 0,
        first_unacked: 0,
        outstanding: false,
        next_send: 0,
    };
    match conn.run(rx).await {
        Ok(()) => {
            shared.seen.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => {
            shared.error(format!("connection {i}: {e}"));
            shared.lost.fetch_add(1, Ordering::SeqCst);
        }
    }
    shared.alive.fetch_sub(1, Ordering::SeqCst);
}

struct RawConn {
    ws: WsStream,
    i: usize,
    channel: String,
    shared: Arc<Shared>,
    /// Round trips recorded since the last mode change (ns).
    local: Vec<u64>,
    /// The outgoing hot frames, written into one reused buffer.
    out: proto::FrameBuf,
    publish_seq: u64,
    /// `message` frames received (every channel, every phase).
    messages: u64,
    /// Last `seq` received on the own channel, and last acknowledged.
    received_seq: u64,
    acked_seq: u64,
    first_unacked: u64,
    outstanding: bool,
    next_send: u64,
}

impl RawConn {
    async fn run(&mut self, mut rx: watch::Receiver<Mode>) -> Result<(), String> {
        let mut mode = *rx.borrow_and_update();
        let mut switches = mode_switches(rx.clone());
        loop {
            let now = now_ns();
            let due = match mode {
                Mode::Echo { .. } => !self.outstanding,
                Mode::Paced { .. } => !self.outstanding && now >= self.next_send,
                _ => false,
            };
            if due {
                self.send_echo(now).await?;
                if let Mode::Paced { period, .. } = mode {
                    self.next_send += period;
                }
            }
            let wait = match mode {
                Mode::Paced { .. } if !self.outstanding => Some(Duration::from_nanos(
                    self.next_send.saturating_sub(now_ns()),
                )),
                _ => None,
            };
            tokio::select! {
                biased;
                msg = self.ws.next() => {
                    // A switch published by now applies before this frame, as it did
                    // when the loop polled `rx.changed()` first (one atomic load).
                    if self.follow(&mut rx, &mut mode).await? {
                        return Ok(());
                    }
                    match msg {
                        Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), mode).await?,
                        Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.to_string()),
                        None => return Err("connection ended".into()),
                    }
                }
                _ = switches.next() => {
                    if self.follow(&mut rx, &mut mode).await? {
                        return Ok(());
                    }
                }
                () = sleep_for(wait) => {}
            }
        }
    }

    /// Takes the coordinator's mode if it switched since the last look; `Ok(true)` when
    /// the connection ends here.
    async fn follow(
        &mut self,
        rx: &mut watch::Receiver<Mode>,
        mode: &mut Mode,
    ) -> Result<bool, String> {
        match rx.has_changed() {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            // The coordinator is gone.
            Err(_) => return Ok(true),
        }
        let left = std::mem::replace(mode, *rx.borrow_and_update());
        self.shared.hand_over(left, &mut self.local);
        match *mode {
            Mode::Close => {
                self.shared
                    .published
                    .fetch_add(self.publish_seq, Ordering::SeqCst);
                self.shared
                    .received
                    .fetch_add(self.messages, Ordering::SeqCst);
                if self.shared.tidings {
                    let _ = self.ws.feed(Message::text(proto::CLOSE)).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
                return Ok(true);
            }
            Mode::FanoutSubscribe => {
                self.ws
                    .send(Message::text(proto::subscribe(FANOUT_CHANNEL)))
                    .await
                    .map_err(|e| format!("subscribe: {e}"))?;
            }
            Mode::Paced { start, period } => {
                let offset = (period as u128 * self.i as u128 / self.shared.conns as u128) as u64;
                self.next_send = start + offset;
            }
            _ => {}
        }
        self.shared.seen.fetch_add(1, Ordering::SeqCst);
        Ok(false)
    }

    /// Sends the next message: on tidings a publish (after an `ack` when one is due).
    async fn send_echo(&mut self, now: u64) -> Result<(), String> {
        let frame = if self.shared.tidings {
            let pending = self.received_seq - self.acked_seq;
            if pending > 0
                && (pending >= self.shared.ack_every
                    || now - self.first_unacked >= self.shared.ack_delay_ns)
            {
                // Fed, not flushed: it leaves in the same write as the publish.
                let ack = self.out.ack(&self.channel, self.received_seq);
                self.ws.feed(ack).await.map_err(|e| format!("ack: {e}"))?;
                self.acked_seq = self.received_seq;
            }
            self.publish_seq += 1;
            self.out.publish(&self.channel, self.publish_seq, now)
        } else {
            self.out.payload(now)
        };
        self.outstanding = true;
        self.ws.send(frame).await.map_err(|e| format!("send: {e}"))
    }

    async fn on_text(&mut self, text: &str, mode: Mode) -> Result<(), String> {
        let now = now_ns();
        if !self.shared.tidings {
            self.echoed(proto::sent_ns(text), now, mode);
            return Ok(());
        }
        // Unreadable frames are ignored, as unknown ones are.
        let Some(frame) = proto::Frame::parse(text) else {
            return Ok(());
        };
        match frame.kind {
            "message" => {
                self.messages += 1;
                if frame.channel == Some(self.channel.as_str()) {
                    if self.received_seq == self.acked_seq {
                        self.first_unacked = now;
                    }
                    self.received_seq = self.received_seq.max(frame.seq.unwrap_or(0));
                    self.echoed(frame.sent_ns, now, mode);
                } else if frame.channel == Some(FANOUT_CHANNEL) {
                    self.shared.fan_last_ns.fetch_max(now, Ordering::SeqCst);
                    self.shared.fan_received.fetch_add(1, Ordering::SeqCst);
                }
            }
            "subscribed" if frame.channel == Some(FANOUT_CHANNEL) => {
                self.shared.fan_ready.fetch_add(1, Ordering::SeqCst);
            }
            "ping" => {
                let pong = self.out.pong(frame.nonce.unwrap_or(0));
                self.ws.send(pong).await.map_err(|e| format!("pong: {e}"))?;
            }
            "error" | "close" | "gap" => return Err(format!("server sent {text}")),
            _ => {}
        }
        Ok(())
    }

    /// The echo of the message in flight came back at `now`, carrying its send time.
    fn echoed(&mut self, sent: Option<u64>, now: u64, mode: Mode) {
        self.outstanding = false;
        let Some(sent) = sent else {
            return;
        };
        let record_from = match mode {
            Mode::Echo { record_from } => record_from,
            Mode::Paced { start, .. } => start,
            _ => NEVER,
        };
        if sent >= record_from {
            self.local.push(now.saturating_sub(sent));
        }
    }
}

/// Yields whenever the coordinator publishes a mode (ends when it is gone).
///
/// It keeps one waiter registered on the `watch` channel across the connection loop's
/// iterations: a fresh `rx.changed()` in every `select!` registers and unregisters a
/// waiter (locks on lists shared by every connection) once per message. It watches a
/// clone of the loop's receiver; the loop reads the mode itself (`follow`), so a wake
/// for a switch already taken is harmless.
fn mode_switches(rx: watch::Receiver<Mode>) -> BoxStream<'static, ()> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
    .fuse()
    .boxed()
}

/// Sleeps for `wait`, or forever without one. The timer is only made when this is first
/// polled: a `sleep()` built in every `select!` reads the clock and clones the runtime
/// handle (a shared reference count) even when its branch is disabled.
async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

/// Starts a real client: what [`real_conn`] connects with.
type Start<T> = Box<dyn Fn() -> Result<Client<T>, String> + Send + Sync>;

fn ws_client(addr: SocketAddr) -> Start<tidings_ws::WebSocket> {
    Box::new(move || {
        tidings_ws::WebSocket::builder(format!("ws://{addr}/"))
            .ws_config(tidings_ws_config())
            .subprotocols([proto::SUBPROTOCOL])
            .connect()
            .map_err(|e| e.to_string())
    })
}

fn wt_client(addr: SocketAddr, hash: [u8; 32]) -> Start<tidings_webtransport::WebTransport> {
    Box::new(move || {
        tidings_webtransport::WebTransport::builder(format!("https://{addr}/"))
            .server_certificate_hash(hash)
            .connect()
            .map_err(|e| e.to_string())
    })
}

/// One real client (`tidings_ws::Client` or `tidings_webtransport::Client`): subscribed
/// to its own channel, closed-loop publish → message; in the fan-out phase it also
/// subscribes to the fan-out channel and counts its messages.
async fn real_conn<T: ClientTransport>(
    start: Start<T>,
    i: usize,
    shared: Arc<Shared>,
    mut rx: watch::Receiver<Mode>,
    permits: Arc<Semaphore>,
) {
    let channel = format!("load:{i}");
    let client = {
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, real_connect(start, Some(&channel))).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                shared.error(format!("client {i}: {e}"));
                shared.connect_failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(_) => {
                shared.error(format!("client {i}: set-up timed out"));
                shared.connect_failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    shared.alive.fetch_add(1, Ordering::SeqCst);
    let mut local = Vec::new();
    let mut mode = *rx.borrow_and_update();
    // `changed()` marks the value seen: remember that it fired.
    let mut switched = false;
    let ok = loop {
        if std::mem::take(&mut switched) || rx.has_changed().unwrap_or(true) {
            let left = std::mem::replace(&mut mode, *rx.borrow_and_update());
            shared.hand_over(left, &mut local);
            if mode == Mode::Close {
                client.close();
                shared.seen.fetch_add(1, Ordering::SeqCst);
                break true;
            }
            if mode == Mode::FanoutSubscribe
                && let Err(e) = client.subscribe(FANOUT_CHANNEL)
            {
                shared.error(format!("client {i}: subscribe: {e}"));
                break false;
            }
            shared.seen.fetch_add(1, Ordering::SeqCst);
        }
        match mode {
            Mode::Echo { record_from } => {
                let sent = now_ns();
                if let Err(e) = client.publish(&channel, proto::payload(sent)) {
                    shared.error(format!("client {i}: publish: {e}"));
                    break false;
                }
                let got = tokio::time::timeout(Duration::from_secs(10), async {
                    loop {
                        match client.next_event().await {
                            Some(ClientEvent::Message(_)) => return true,
                            Some(_) => {}
                            None => return false,
                        }
                    }
                })
                .await;
                if got != Ok(true) {
                    shared.error(format!("client {i}: no echo within 10 s"));
                    break false;
                }
                if sent >= record_from {
                    local.push(now_ns() - sent);
                }
            }
            _ => {
                // Idle: keep reading events (acks, fan-out), wake on the next mode.
                tokio::select! {
                    r = rx.changed() => {
                        if r.is_err() {
                            client.close();
                            break true;
                        }
                        switched = true;
                    }
                    e = client.next_event() => match e {
                        None => {
                            shared.error(format!("client {i}: closed"));
                            break false;
                        }
                        Some(ClientEvent::Subscribed { channel: c, .. })
                            if c.as_str() == FANOUT_CHANNEL =>
                        {
                            shared.fan_ready.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(ClientEvent::Message(m)) if m.channel.as_str() == FANOUT_CHANNEL => {
                            shared.fan_last_ns.fetch_max(now_ns(), Ordering::SeqCst);
                            shared.fan_received.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(_) => {}
                    },
                }
            }
        }
    };
    if !ok {
        shared.lost.fetch_add(1, Ordering::SeqCst);
    }
    shared.alive.fetch_sub(1, Ordering::SeqCst);
}

/// Starts a real client and waits for its session (and its subscription to `channel`).
async fn real_connect<T: ClientTransport>(
    start: Start<T>,
    channel: Option<&str>,
) -> Result<Client<T>, String> {
    let client = start()?;
    let mut subscribed = false;
    loop {
        match client.next_event().await {
            Some(ClientEvent::Connected { .. }) if !subscribed => {
                let Some(channel) = channel else {
                    return Ok(client);
                };
                client.subscribe(channel).map_err(|e| e.to_string())?;
                subscribed = true;
            }
            Some(ClientEvent::Subscribed { .. }) => return Ok(client),
            Some(_) => {}
            None => return Err("client closed during set-up".into()),
        }
    }
}
