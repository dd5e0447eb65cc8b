//! A `Client`'s datagrams (`connect_with_datagrams`): an echo over the session, an oversized one refused by type, and the same handle working again over the new session after the server killed the first.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_runtime::ClientTransport;
use tidings_test::suite::{client_session_config, next};
use tidings_webtransport::{
    Accepted, Certificate, ClientDatagrams, DatagramError, ServerConfig, SessionCloser,
    WebTransport, WtServer,
};

/// Sends `payload` until it comes back (datagrams are lossy), at most 10 s.
async fn echo(datagrams: &ClientDatagrams, payload: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no echo of {payload:?} within 10 s"
        );
        match datagrams.send(payload) {
            Ok(()) => {}
            // Between sessions: retry below.
            Err(DatagramError::NotConnected) => {}
            Err(e) => panic!("send: {e}"),
        }
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), datagrams.recv()).await
            && got.unwrap() == payload
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_datagrams_echo_refuse_oversized_and_follow_a_reconnect() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let server = WtServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        cert,
    )
    .unwrap();
    let sessions: Arc<Mutex<Vec<SessionCloser>>> = Arc::default();
    let tracked = sessions.clone();
    let handle = server.serve(move |s: Accepted| {
        let hub = hub.clone();
        tracked.lock().unwrap().push(s.transport.closer());
        // The server echoes every datagram of the session.
        let datagrams = s.datagrams.clone();
        tokio::spawn(async move {
            while let Ok(d) = datagrams.recv().await {
                let _ = datagrams.send(&d);
            }
        });
        async move { hub.serve(s.transport, s.codec).await }
    });

    let (client, datagrams) = WebTransport::builder(format!("https://{}/", handle.local_addr()))
        .session_config(client_session_config())
        .server_certificate_hash(handle.certificate_hash())
        .connect_with_datagrams()
        .unwrap();
    loop {
        if let ClientEvent::Connected { .. } = next(&client).await {
            break;
        }
    }
    echo(&datagrams, b"cursor 1").await;
    let max = datagrams.max_size().unwrap();
    assert!(max > 1000, "loopback takes datagrams of {max} bytes");
    assert_eq!(
        datagrams.send(&vec![0u8; max + 1]),
        Err(DatagramError::TooLarge { size: max + 1, max })
    );

    // The server kills the session: the client resumes, the same handle works on the new one.
    for s in sessions.lock().unwrap().drain(..) {
        s.close(4200, "killed by the test");
    }
    let mut resumed = false;
    while !resumed {
        if let ClientEvent::Connected { resumed: r, .. } = next(&client).await {
            assert!(r, "the session is resumed after the kill");
            resumed = true;
        }
    }
    echo(&datagrams, b"cursor 2").await;
    client.close();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match datagrams.recv().await {
                Err(e) => return e,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("recv ends once the client is closed");
    assert_eq!(closed, DatagramError::Closed);
}
