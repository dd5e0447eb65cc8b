//! RPC over WebTransport (`tidings-webtransport`, HTTP/3 on loopback with a pinned development certificate): a call, a server stream with a small credit, and cancellation both ways — a dropped call aborts the server task, a server cancel ends the client's stream.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tidings_rpc::RpcError;
use tidings_rpc::client::CallOptions;
use tidings_rpc::server::{Router, RpcServer};

use common::{STEP, Served, eventually};

/// What the handlers report to the test.
#[derive(Default)]
struct Probe {
    /// `slow.wait` calls that started.
    started: AtomicU64,
    /// A `slow.wait` future was dropped before it finished (aborted).
    aborted: AtomicBool,
}

struct AbortedOnDrop(Arc<Probe>, bool);
impl Drop for AbortedOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.aborted.store(true, Ordering::SeqCst);
        }
    }
}

fn router(probe: Arc<Probe>) -> Router {
    Router::new()
        .unary("math.add", |_ctx, (a, b): (i64, i64)| async move {
            Ok::<_, RpcError>(a + b)
        })
        .unary("slow.wait", move |_ctx, ms: u64| {
            let probe = probe.clone();
            async move {
                probe.started.fetch_add(1, Ordering::SeqCst);
                let mut guard = AbortedOnDrop(probe, false);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                guard.1 = true;
                Ok::<_, RpcError>(ms)
            }
        })
        .stream("feed.count", |_ctx, n: u64| {
            futures_util::stream::iter((1..=n).map(Ok::<_, RpcError>))
        })
        .stream("feed.cancelled_after", |_ctx, n: u64| {
            futures_util::stream::iter((1..=n + 1).map(move |i| {
                if i > n {
                    Err(RpcError::cancelled("the server ended this stream"))
                } else {
                    Ok(i)
                }
            }))
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_streams_and_cancellation_over_webtransport() {
    let probe = Arc::new(Probe::default());
    let served = Served::webtransport(RpcServer::new(router(probe.clone()))).await;
    let (_client, rpc) = served.wt_client().await;

    // A call.
    let sum: i64 = tokio::time::timeout(STEP, rpc.call("math.add", &(40, 2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sum, 42);

    // A server stream through a window of 4 credits, in order, to its end.
    let items: Vec<u64> = rpc
        .server_stream::<_, u64>("feed.count", &300u64, CallOptions::default().credit(4))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(items, (1..=300).collect::<Vec<_>>());

    // The client drops a call: the server task is aborted.
    let mut call = Box::pin(rpc.call::<_, u64>("slow.wait", &60_000u64));
    let p = probe.clone();
    tokio::select! {
        r = &mut call => panic!("the call should still be running: {r:?}"),
        () = eventually("the server started the call", move || p.started.load(Ordering::SeqCst) == 1) => {}
    }
    drop(call);
    assert_eq!(rpc.open_calls(), 0);
    let p = probe.clone();
    eventually("the server task is aborted", move || {
        p.aborted.load(Ordering::SeqCst)
    })
    .await;

    // The server cancels a stream: the client's stream ends with `cancelled`.
    let mut stream = rpc
        .server_stream::<_, u64>("feed.cancelled_after", &3u64, CallOptions::default())
        .unwrap();
    for i in 1..=3 {
        assert_eq!(stream.next().await.unwrap().unwrap(), i);
    }
    let e = stream.next().await.unwrap().unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(stream.next().await.is_none());

    // The session still serves calls.
    let sum: i64 = rpc.call("math.add", &(1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    assert_eq!(rpc.open_calls(), 0);
    served.stop().await;
}
