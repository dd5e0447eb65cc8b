//! `UpgradeRefusingProxy`: a real HTTP/1.1 proxy on loopback that forwards plain requests (SSE streams, POSTs) and refuses WebSocket upgrades, as some corporate proxies do.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head read before deciding (larger ones are forwarded as is).
const MAX_HEAD: usize = 64 << 10;

/// Forwards every connection to `upstream`, except those whose first
/// request asks for `Upgrade: websocket`: those get `403 Forbidden` and are
/// closed. Stops when dropped.
#[derive(Debug)]
pub struct UpgradeRefusingProxy {
    addr: SocketAddr,
    refused: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl UpgradeRefusingProxy {
    /// Listens on `127.0.0.1:0` in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let refused = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (r, f) = (refused.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (r, f) = (r.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = serve(client, upstream, &r, &f).await;
                });
            }
        });
        Ok(Self {
            addr,
            refused,
            forwarded,
            task,
        })
    }

    /// The address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// WebSocket upgrades refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for UpgradeRefusingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    refused: &AtomicU64,
    forwarded: &AtomicU64,
) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let upgrade = text
        .lines()
        .any(|l| l.starts_with("upgrade:") && l.contains("websocket"));
    if upgrade {
        refused.fetch_add(1, Ordering::Relaxed);
        let body = "WebSocket upgrades are not allowed through this proxy";
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(response.as_bytes()).await?;
        return client.shutdown().await;
    }
    forwarded.fetch_add(1, Ordering::Relaxed);
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
