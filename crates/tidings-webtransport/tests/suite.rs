//! The transport suite over WebTransport: bad input refused with the session intact, resume after a dead path, and 10,000 messages through 5 path disruptions (UDP fault proxy: drop, delay, rebind) exactly once and in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use tidings_protocol::ClientEvent;
use tidings_test::UdpFaultProxy;
use tidings_test::suite::{self, client_session_config, next, subscribed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_session_lives_on() {
    let handle = common::server(common::fast_wt()).await;
    suite::bad_input_is_refused_and_the_session_lives_on(common::connector(
        handle.local_addr(),
        handle.certificate_hash(),
        common::fast_wt(),
    ))
    .await;
    handle.shutdown().await;
}

fn index_of(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).unwrap();
    text.trim_start_matches(r#"{"i":"#)
        .trim_end_matches('}')
        .parse()
        .unwrap()
}

/// 10,000 messages from one client to another, both through a UDP fault
/// proxy, while the path is disrupted 5 times (dead path for 3 s, past the 1 s idle
/// timeout, NAT rebinding, 100 ms delay with 5 % loss, dead path again,
/// rebinding again): every message arrives exactly once, in order, no gap,
/// and every reconnect resumes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_survive_five_path_disruptions() {
    const N: usize = 10_000;
    const DISRUPTIONS: usize = 5;
    let handle = common::server(common::fast_wt()).await;
    let proxy = UdpFaultProxy::start(handle.local_addr()).await.unwrap();
    let connect = common::connector(proxy.addr(), handle.certificate_hash(), common::fast_wt());
    let receiver = connect(client_session_config());
    let sender = connect(client_session_config());
    receiver.subscribe("fault").unwrap();
    subscribed(&receiver, "fault").await;
    let started = Instant::now();

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let receiving = async {
        let mut got = Vec::with_capacity(N);
        let (mut gaps, mut reconnects) = (Vec::new(), 0);
        while got.len() < N {
            match next(&receiver).await {
                ClientEvent::Message(m) => {
                    got.push((m.seq, index_of(&m.payload)));
                    let _ = progress_tx.send(got.len());
                }
                ClientEvent::Gap(g) => gaps.push(g),
                ClientEvent::Connected { resumed, .. } => {
                    assert!(resumed, "the receiver's session must resume, not restart");
                    reconnects += 1;
                    eprintln!(
                        "receiver connected at {:?}, {} messages",
                        started.elapsed(),
                        got.len()
                    );
                }
                _ => {}
            }
        }
        (got, gaps, reconnects)
    };
    let publishing = async {
        let per = N / DISRUPTIONS;
        let mut done = Vec::new();
        for slice in 0..DISRUPTIONS {
            for i in slice * per..(slice + 1) * per {
                sender.publish("fault", format!(r#"{{"i":{i}}}"#)).unwrap();
            }
            progress
                .wait_for(|n| *n >= slice * per + per / 4)
                .await
                .unwrap();
            match slice % 3 {
                0 => {
                    // Dead path for longer than the 1 s idle timeout: both ends drop the connection.
                    proxy.set_blackhole(true);
                    tokio::time::sleep(Duration::from_millis(3000)).await;
                    proxy.set_blackhole(false);
                    done.push("drop 3 s");
                    eprintln!("blackout over at {:?}", started.elapsed());
                }
                1 => {
                    let n = proxy.rebind().await.unwrap();
                    assert!(n >= 2, "both clients rebound");
                    done.push("rebind");
                }
                _ => {
                    proxy.set_delay(Duration::from_millis(100));
                    proxy.set_loss_per_mille(50);
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    proxy.set_loss_per_mille(0);
                    proxy.set_delay(Duration::ZERO);
                    done.push("delay 100 ms + 5 % loss");
                }
            }
        }
        done
    };
    let ((got, gaps, reconnects), done) = tokio::time::timeout(Duration::from_secs(180), async {
        tokio::join!(receiving, publishing)
    })
    .await
    .expect("the scenario did not finish within 180 s");
    assert!(gaps.is_empty(), "no gap may be reported: {gaps:?}");
    assert_eq!(got.len(), N);
    for (k, (seq, i)) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            k as u64 + 1,
            "per-channel sequence gap-free and ordered"
        );
        assert_eq!(*i, k as u64, "exactly once, in publish order");
    }
    assert!(
        reconnects >= 2,
        "the two dead paths cost a reconnect each: {reconnects}"
    );
    println!(
        "webtransport path disruptions: {done:?}, receiver reconnects {reconnects}, {:?} total, proxy {:?}",
        started.elapsed(),
        proxy.stats()
    );
    sender.close();
    receiver.close();
    handle.shutdown().await;
}
