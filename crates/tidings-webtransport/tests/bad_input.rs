//! Bad input over WebTransport: garbage and oversized frames on the control stream, too many streams, oversized datagrams: typed errors and close codes, and other sessions unaffected.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use tidings_protocol::ClientEvent;
use tidings_test::suite::{client_session_config, next, subscribed};
use tidings_webtransport::{
    Accepted, Certificate, DatagramError, Datagrams, ServerConfig, WtConfig, WtServer, close_code,
};
use wtransport::error::ConnectionError;

/// The application close code a raw session ended with.
async fn close_code_of(conn: &wtransport::Connection) -> (u64, String) {
    match tokio::time::timeout(Duration::from_secs(10), conn.closed())
        .await
        .expect("the server closes the session")
    {
        ConnectionError::ApplicationClosed(c) => (
            c.code().into_inner(),
            String::from_utf8_lossy(c.reason()).into_owned(),
        ),
        other => panic!("expected an application close, got {other}"),
    }
}

/// A healthy client that publishes and receives after the bad sessions are gone.
async fn healthy_client_still_flows(client: &tidings_webtransport::Client, text: &str) {
    client
        .publish("ok", format!(r#"{{"t":"{text}"}}"#))
        .unwrap();
    loop {
        match next(client).await {
            ClientEvent::Message(m) => {
                assert_eq!(m.payload, format!(r#"{{"t":"{text}"}}"#).as_bytes());
                return;
            }
            ClientEvent::Disconnected { .. } => {
                panic!("another session's bad input cost this one its link")
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_end_only_their_session_with_typed_codes() {
    let wt = WtConfig::default().with_max_frame_bytes(64 << 10);
    let handle = common::server(wt.clone()).await;
    let (addr, hash) = (handle.local_addr(), handle.certificate_hash());
    let client = common::connector(addr, hash, wt)(client_session_config());
    client.subscribe("ok").unwrap();
    subscribed(&client, "ok").await;

    // A length prefix over the limit: closed with FRAME_TOO_LARGE before anything is buffered.
    let bad = common::raw_session(addr, hash).await;
    let (mut send, _recv) = bad.open_bi().await.unwrap().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let (code, reason) = close_code_of(&bad).await;
    assert_eq!(code, u64::from(close_code::FRAME_TOO_LARGE), "{reason}");
    assert!(reason.contains("exceeds the limit"), "{reason}");
    healthy_client_still_flows(&client, "after oversized").await;

    // An empty frame: garbage.
    let bad = common::raw_session(addr, hash).await;
    let (mut send, _recv) = bad.open_bi().await.unwrap().await.unwrap();
    send.write_all(&[0, 0, 0, 0]).await.unwrap();
    let (code, reason) = close_code_of(&bad).await;
    assert_eq!(code, u64::from(close_code::GARBAGE), "{reason}");

    // Text that is not a length-prefixed frame (an HTTP request line reads as a 1.2 GB length).
    let bad = common::raw_session(addr, hash).await;
    let (mut send, _recv) = bad.open_bi().await.unwrap().await.unwrap();
    send.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let (code, _) = close_code_of(&bad).await;
    assert_eq!(code, u64::from(close_code::FRAME_TOO_LARGE));

    // A well-framed frame that is not a tidings frame: the session layer refuses it with a close code.
    let bad = common::raw_session(addr, hash).await;
    let (mut send, _recv) = bad.open_bi().await.unwrap().await.unwrap();
    send.write_all(&common::framed(b"\xff\xfenot a frame"))
        .await
        .unwrap();
    let (code, reason) = close_code_of(&bad).await;
    assert!(code >= 1000, "a protocol close code, got {code}: {reason}");
    println!("undecodable frame closed with {code}: {reason}");

    healthy_client_still_flows(&client, "after garbage").await;
    client.close();
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_opening_too_many_streams_loses_its_session_and_others_flow() {
    let wt = WtConfig::default().with_max_streams(4, 4);
    let handle = common::server(wt.clone()).await;
    let (addr, hash) = (handle.local_addr(), handle.certificate_hash());
    let client = common::connector(addr, hash, wt)(client_session_config());
    client.subscribe("ok").unwrap();
    subscribed(&client, "ok").await;

    let bad = common::raw_session(addr, hash).await;
    let (mut control, _recv) = bad.open_bi().await.unwrap().await.unwrap();
    control
        .write_all(&common::framed(
            br#"{"type":"hello","version":1,"positions":[]}"#,
        ))
        .await
        .unwrap();
    // Open stream after stream (each refused by the server) until the session is closed.
    let mut opened = 0;
    while opened <= 64 {
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = bad.open_uni().await.ok()?.await.ok()?;
            s.write_all(b"x").await.ok()?;
            Some(())
        })
        .await;
        match attempt {
            Ok(Some(())) => opened += 1,
            _ => break,
        }
    }
    let (code, reason) = close_code_of(&bad).await;
    assert_eq!(code, u64::from(close_code::UNEXPECTED_STREAM), "{reason}");
    assert!(reason.contains("beyond the session's 4"), "{reason}");
    println!("too many streams: closed after {opened} streams opened: {reason}");
    healthy_client_still_flows(&client, "after too many streams").await;
    client.close();
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_echo_and_an_oversized_one_is_a_typed_error() {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let server = WtServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        cert,
    )
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(), DatagramError>>();
    let tx = std::sync::Mutex::new(Some(tx));
    let handle = server.serve(move |s: Accepted| {
        let tx = tx.lock().unwrap().take();
        async move {
            let max = s.datagrams.max_size().expect("datagrams are on");
            if let Some(tx) = tx {
                let _ = tx.send(s.datagrams.send(&vec![0u8; max + 1]));
            }
            while let Ok(d) = s.datagrams.recv().await {
                if s.datagrams.send(&d).is_err() {
                    break;
                }
            }
            drop(s.transport);
        }
    });
    let conn = common::raw_session(handle.local_addr(), handle.certificate_hash()).await;
    let (mut control, _recv) = conn.open_bi().await.unwrap().await.unwrap();
    control.write_all(&common::framed(b"{}")).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap()
    {
        Err(DatagramError::TooLarge { size, max }) => assert_eq!(size, max + 1),
        other => panic!("an oversized datagram must be refused: {other:?}"),
    }
    let datagrams = Datagrams::new(conn.clone());
    let max = datagrams.max_size().unwrap();
    let err = datagrams.send(&vec![1u8; max + 1]).unwrap_err();
    assert!(err.is_too_large(), "{err}");
    // Lossy by design; on loopback one of a few tries comes back.
    let mut echoed = None;
    for _ in 0..10 {
        datagrams.send(b"cursor 10,20").unwrap();
        if let Ok(Ok(d)) = tokio::time::timeout(Duration::from_millis(300), datagrams.recv()).await
        {
            echoed = Some(d);
            break;
        }
    }
    assert_eq!(echoed.as_deref(), Some(&b"cursor 10,20"[..]));
    println!("max datagram size on loopback: {max} bytes");
    handle.shutdown().await;
}
