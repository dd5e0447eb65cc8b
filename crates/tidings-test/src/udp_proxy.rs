//! `UdpFaultProxy`: a real UDP proxy for QUIC / WebTransport tests that drops, delays and rebinds on command.
//!
//! Each client address gets its own upstream socket, so the server sees one
//! peer per client. Faults:
//! * **drop** ([`UdpFaultProxy::set_blackhole`]): every datagram in both
//!   directions is discarded (a dead path; past the QUIC idle timeout both
//!   ends drop the connection and the client must reconnect and resume);
//! * **loss** ([`UdpFaultProxy::set_loss_per_mille`]): every n-th datagram is dropped;
//! * **delay** ([`UdpFaultProxy::set_delay`]): datagrams are held back (in order);
//! * **rebind** ([`UdpFaultProxy::rebind`]): every client's upstream socket is
//!   replaced by a new one (a NAT rebinding: the server sees a new source port).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Counters of a [`UdpFaultProxy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpProxyStats {
    /// Datagrams forwarded (both directions).
    pub forwarded: u64,
    /// Datagrams dropped (blackhole or loss).
    pub dropped: u64,
    /// Rebinds done.
    pub rebinds: u64,
}

#[derive(Default)]
struct Shared {
    blackhole: AtomicBool,
    loss_per_mille: AtomicU64,
    delay_us: AtomicU64,
    counter: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    rebinds: AtomicU64,
}

impl Shared {
    /// Whether the next datagram is dropped (and counts it).
    fn drop_now(&self) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let loss = self.loss_per_mille.load(Ordering::Relaxed);
        let drop = self.blackhole.load(Ordering::Relaxed) || (loss > 0 && (n * 7919) % 1000 < loss);
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.forwarded.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }
}

struct Mapping {
    /// Client → server delay line (towards this client's upstream socket).
    up: DelayLine,
    tasks: [JoinHandle<()>; 3],
}

impl Mapping {
    fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A UDP proxy between QUIC clients and a server on loopback.
pub struct UdpFaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    mappings: Arc<Mutex<HashMap<SocketAddr, Mapping>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for UdpFaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpFaultProxy")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

/// One direction's delay line: datagrams wait until their due time, in
/// order, without holding back the reading side (a serial sleep per datagram
/// would cut throughput to one datagram per delay).
type DelayLine = tokio::sync::mpsc::UnboundedSender<(tokio::time::Instant, Vec<u8>)>;

fn delay_line(socket: Arc<UdpSocket>, to: Option<SocketAddr>) -> (DelayLine, JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let task = tokio::spawn(async move {
        while let Some((due, data)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            let _ = match to {
                Some(to) => socket.send_to(&data, to).await,
                None => socket.send(&data).await,
            };
        }
    });
    (tx, task)
}

/// Sends `data` through `line` after the proxy's delay, unless it is dropped.
fn forward(shared: &Shared, line: &DelayLine, data: &[u8]) {
    if shared.drop_now() {
        return;
    }
    let _ = line.send((tokio::time::Instant::now() + shared.delay(), data.to_vec()));
}

/// Starts forwarding for `client` through `upstream`: server → client reader and both delay lines.
fn mapping(
    shared: Arc<Shared>,
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
) -> Mapping {
    let (up, up_task) = delay_line(upstream.clone(), None);
    let (down, down_task) = delay_line(front, Some(client));
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = upstream.recv(&mut buf).await {
            forward(&shared, &down, &buf[..n]);
        }
    });
    Mapping {
        up,
        tasks: [up_task, down_task, back],
    }
}

async fn new_upstream(to: SocketAddr) -> io::Result<Arc<UdpSocket>> {
    let s = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    s.connect(to).await?;
    Ok(Arc::new(s))
}

impl UdpFaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let front = Arc::new(UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared::default());
        let mappings: Arc<Mutex<HashMap<SocketAddr, Mapping>>> = Arc::default();
        let task = tokio::spawn({
            let (front, shared, mappings) = (front.clone(), shared.clone(), mappings.clone());
            async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let Ok((n, client)) = front.recv_from(&mut buf).await else {
                        continue;
                    };
                    let known = mappings
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&client).map(|m| m.up.clone()));
                    let line = match known {
                        Some(line) => line,
                        None => {
                            let Ok(up) = new_upstream(upstream).await else {
                                continue;
                            };
                            let m = mapping(shared.clone(), up, front.clone(), client);
                            let line = m.up.clone();
                            if let Ok(mut all) = mappings.lock() {
                                all.insert(client, m);
                            }
                            line
                        }
                    };
                    forward(&shared, &line, &buf[..n]);
                }
            }
        });
        Ok(Self {
            addr,
            shared,
            front,
            upstream,
            mappings,
            task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram in both directions while `on`.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::Relaxed);
    }

    /// Drops about `per_mille` of every thousand datagrams (0: none).
    pub fn set_loss_per_mille(&self, per_mille: u64) {
        self.shared
            .loss_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Holds every datagram back for `delay` (a delay line: order kept, throughput not cut).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }

    /// Replaces every client's upstream socket by a new one (new source
    /// port towards the server); returns how many were rebound.
    pub async fn rebind(&self) -> io::Result<usize> {
        let clients: Vec<SocketAddr> = match self.mappings.lock() {
            Ok(m) => m.keys().copied().collect(),
            Err(_) => return Ok(0),
        };
        let mut n = 0;
        for client in clients {
            let up = new_upstream(self.upstream).await?;
            let new = mapping(self.shared.clone(), up, self.front.clone(), client);
            if let Ok(mut m) = self.mappings.lock()
                && let Some(old) = m.insert(client, new)
            {
                old.abort();
            }
            n += 1;
        }
        self.shared.rebinds.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Counters so far.
    pub fn stats(&self) -> UdpProxyStats {
        UdpProxyStats {
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            rebinds: self.shared.rebinds.load(Ordering::Relaxed),
        }
    }
}

impl Drop for UdpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(m) = self.mappings.lock() {
            for mapping in m.values() {
                mapping.abort();
            }
        }
    }
}
