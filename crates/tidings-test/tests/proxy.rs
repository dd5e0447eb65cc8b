//! Tests of the TCP fault proxy against real tokio servers on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tidings_test::{FaultProxy, MidFrameCut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Safety net so a broken proxy fails a test instead of hanging it. Never a
/// performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// An echo server: writes back everything it reads, half-closes on EOF.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that, for every connection, waits for one request byte, then
/// writes `len` bytes (64 KiB pattern blocks) and reports how its writing ended.
async fn blast_server(len: usize) -> (SocketAddr, mpsc::UnboundedReceiver<io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = async {
                    let mut req = [0_u8; 1];
                    s.read_exact(&mut req).await?;
                    let block = pattern(64 * 1024);
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(block.len());
                        s.write_all(&block[..n]).await?;
                        left -= n;
                    }
                    s.flush().await
                }
                .await;
                let _ = tx.send(result);
            });
        }
    });
    (addr, rx)
}

/// A server that writes an endless stream to every connection.
async fn firehose_server() -> (SocketAddr, mpsc::UnboundedReceiver<io::Error>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let chunk = pattern(64 * 1024);
                loop {
                    if let Err(e) = s.write_all(&chunk).await {
                        let _ = tx.send(e);
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads until EOF or error; returns the bytes read and how it ended.
async fn read_to_end_or_error(s: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

/// Whether a read outcome shows the connection was killed: a reset, or EOF.
fn killed(end: &io::Result<()>) -> bool {
    match end {
        Ok(()) => true,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ),
    }
}

async fn echo_round_trip(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let data = payload.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_round_trip_intact() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let payload = pattern(3 * 1024 * 1024 + 17);
    let got = tokio::time::timeout(HANG_GUARD, echo_round_trip(proxy.addr(), &payload))
        .await
        .unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "echoed bytes differ");

    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.bytes_client_to_server, payload.len() as u64);
    assert_eq!(stats.bytes_server_to_client, payload.len() as u64);
    assert_eq!(stats.cuts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_in_parallel() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8_usize {
        let addr = proxy.addr();
        tasks.push(tokio::spawn(async move {
            let payload: Vec<u8> = pattern(200_000 + i)
                .into_iter()
                .map(|b| b ^ i as u8)
                .collect();
            let got = echo_round_trip(addr, &payload).await;
            assert!(got == payload, "connection {i}: echoed bytes differ");
        }));
    }
    for t in tasks {
        tokio::time::timeout(HANG_GUARD, t).await.unwrap().unwrap();
    }
    assert_eq!(proxy.stats().accepted, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_adds_latency_in_each_direction() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    assert_eq!(proxy.delay(), delay);

    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    for round in 0..3_u8 {
        let start = Instant::now();
        s.write_all(&[round; 32]).await.unwrap();
        let mut back = [0_u8; 32];
        tokio::time::timeout(HANG_GUARD, s.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        let rtt = start.elapsed();
        assert_eq!(back, [round; 32]);
        // Each direction is delayed, so the round trip takes at least twice
        // the delay. Lower bound only: a correctness property, not a timing.
        assert!(
            rtt >= 2 * delay,
            "round {round}: rtt {rtt:?} < 2 x {delay:?}"
        );
    }

    // A delayed stream of many chunks still arrives complete and in order.
    let payload = pattern(1024 * 1024);
    let got = tokio::time::timeout(HANG_GUARD, echo_round_trip(proxy.addr(), &payload))
        .await
        .unwrap();
    assert!(got == payload, "delayed echo differs");

    proxy.set_delay(Duration::ZERO);
    assert_eq!(proxy.delay(), Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_all_resets_a_connection_mid_stream() {
    let (server, mut server_errors) = firehose_server().await;
    let proxy = FaultProxy::start(server).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();

    // The stream is flowing.
    let mut buf = vec![0_u8; 256 * 1024];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(proxy.stats().open, 1);

    assert_eq!(proxy.cut_all(), 1);
    let (_, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    println!("client after cut_all: {end:?}");
    assert!(killed(&end), "client saw {end:?}");

    // The server side was reset too: its endless write fails.
    let server_err = tokio::time::timeout(HANG_GUARD, server_errors.recv())
        .await
        .unwrap()
        .unwrap();
    println!("server after cut_all: {server_err:?}");
    assert!(matches!(
        server_err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    ));

    let stats = proxy.stats();
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.connections_cut, 1);
    assert_eq!(stats.open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_all_sends_a_reset_to_the_client() {
    // With no data in flight, the only thing the client can receive is the RST.
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut back = [0_u8; 4];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");

    assert_eq!(proxy.cut_all(), 1);
    let (got, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    assert!(got.is_empty());
    let err = end.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_all_discards_delayed_bytes() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    proxy.set_delay(Duration::from_secs(5));
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"never echoed").await.unwrap();
    // Let the proxy read and queue the bytes, then cut before they are due.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.cut_all(), 1);
    let (got, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    assert!(got.is_empty(), "got {got:?}");
    assert!(killed(&end), "client saw {end:?}");
    assert_eq!(proxy.stats().bytes_client_to_server, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_frame_forwards_only_part_of_a_large_write() {
    // Larger than what loopback socket buffers can absorb (tcp_rmem max is
    // typically 6-32 MiB), so the server's write is still in progress at the cut.
    const LEN: usize = 256 * 1024 * 1024;
    let (server, mut server_results) = blast_server(LEN).await;
    let proxy = FaultProxy::start(server).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();

    let cut = proxy.cut_mid_frame(); // armed now, before any data flows
    s.write_all(b"g").await.unwrap();
    let (got, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(HANG_GUARD, cut).await.unwrap();
    println!(
        "client got {} bytes, then {end:?}; cut: {outcome:?}",
        got.len()
    );

    let MidFrameCut::MidFrame {
        forwarded,
        discarded,
        connections,
    } = outcome
    else {
        panic!("expected a mid-frame cut, got {outcome:?}");
    };
    assert_eq!(connections, 1);
    assert!(forwarded >= 1);
    assert!(discarded >= 1);
    assert!(forwarded + discarded <= tidings_test::proxy::READ_BUF_SIZE);
    assert!(!got.is_empty(), "the first part of the chunk must arrive");
    assert!(got.len() < LEN, "the whole write got through");
    assert_eq!(got.len(), forwarded);
    assert!(
        got == pattern(got.len()),
        "forwarded bytes are not a prefix"
    );
    assert!(killed(&end), "client saw {end:?}");

    // The server's large write was interrupted.
    let server_result = tokio::time::timeout(HANG_GUARD, server_results.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        server_result.is_err(),
        "server finished its write: {server_result:?}"
    );

    let stats = proxy.stats();
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.bytes_server_to_client, forwarded as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_mid_frame_falls_back_to_cut_all_without_traffic() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut back = [0_u8; 1];
    s.read_exact(&mut back).await.unwrap();

    let outcome = tokio::time::timeout(HANG_GUARD, proxy.cut_mid_frame())
        .await
        .unwrap();
    assert_eq!(outcome, MidFrameCut::Fallback { connections: 1 });
    let (_, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    assert!(killed(&end), "client saw {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_mode_resets_new_connections_only() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut existing = TcpStream::connect(proxy.addr()).await.unwrap();
    existing.write_all(b"a").await.unwrap();
    let mut one = [0_u8; 1];
    existing.read_exact(&mut one).await.unwrap();

    proxy.set_refuse(true);
    // The kernel completes the handshake before the proxy accepts and resets,
    // so connect usually succeeds; if the RST wins the race, connect reports it.
    match TcpStream::connect(proxy.addr()).await {
        Ok(mut refused) => {
            // The write may or may not fail, depending on when the RST arrives.
            let _ = refused.write_all(b"hello").await;
            let (got, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut refused))
                .await
                .unwrap();
            assert!(got.is_empty(), "a refused connection echoed {got:?}");
            assert!(killed(&end), "refused connection saw {end:?}");
        }
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}"),
    }
    // The proxy counts the refusal once it has accepted and reset.
    let deadline = Instant::now() + HANG_GUARD;
    while proxy.stats().refused == 0 {
        assert!(Instant::now() < deadline, "refusal never counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(proxy.stats().refused, 1);

    // The existing connection is unaffected.
    existing.write_all(b"still here").await.unwrap();
    let mut back = [0_u8; 10];
    tokio::time::timeout(HANG_GUARD, existing.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"still here");

    // Link back up.
    proxy.set_refuse(false);
    let got = tokio::time::timeout(HANG_GUARD, echo_round_trip(proxy.addr(), b"back up"))
        .await
        .unwrap();
    assert_eq!(got, b"back up");
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 3);
    assert_eq!(stats.refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_work_after_a_cut() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let handle = proxy.handle();
    for round in 0..3 {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"hi").await.unwrap();
        let mut back = [0_u8; 2];
        s.read_exact(&mut back).await.unwrap();
        // The previous round's echo connection is closed by both ends, but the
        // proxy forgets it only when its forwarding task ends: wait for that
        // (under CPU load it can lag), so the cut below finds exactly one.
        tokio::time::timeout(HANG_GUARD, async {
            while handle.stats().open != 1 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("round {round}: {:?}", handle.stats()));
        // Cut from another thread through the clone-able handle.
        let h = handle.clone();
        let n = std::thread::spawn(move || h.cut_all()).join().unwrap();
        assert_eq!(n, 1, "round {round}");
        let (_, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
            .await
            .unwrap();
        assert!(killed(&end), "round {round}: client saw {end:?}");

        let got = tokio::time::timeout(HANG_GUARD, echo_round_trip(proxy.addr(), b"again"))
            .await
            .unwrap();
        assert_eq!(got, b"again", "round {round}");
    }
    assert_eq!(handle.stats().cuts, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_closes_everything() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let addr = proxy.addr();
    let handle = proxy.handle();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut one = [0_u8; 1];
    s.read_exact(&mut one).await.unwrap();

    drop(proxy);
    let (_, end) = tokio::time::timeout(HANG_GUARD, read_to_end_or_error(&mut s))
        .await
        .unwrap();
    assert!(killed(&end), "client saw {end:?}");
    assert_eq!(handle.stats().open, 0);
    assert_eq!(handle.cut_mid_frame().await, MidFrameCut::ProxyClosed);

    // The listener goes away once the accept task is dropped.
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match TcpStream::connect(addr).await {
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "proxy still listening");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
