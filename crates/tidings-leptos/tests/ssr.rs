//! Off wasm32 (server-side rendering, native builds) the hooks are inert: no connection attempt, idle status, empty signals, publishes refused as inert.

use std::net::TcpListener;

use leptos::prelude::{GetUntracked, Owner};
use tidings_leptos::{
    ConnectionStatus, use_channel, use_connection, use_publish, use_subscription,
};

#[test]
fn no_connection_is_attempted_during_ssr_and_the_signals_are_inert() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let url = format!("ws://{}/ws", listener.local_addr().expect("local addr"));

    let owner = Owner::new();
    owner.with(|| {
        let connection = use_connection(&url);
        assert!(connection.is_inert());
        assert_eq!(connection.status.get_untracked(), ConnectionStatus::Idle);
        let room = use_channel(connection, "room:lobby");
        let sub = use_subscription(connection, "room:other");
        assert!(room.messages.get_untracked().is_empty());
        assert!(room.notices.get_untracked().is_empty());
        assert!(sub.messages.get_untracked().is_empty());
        let err = room.publish("hello").expect_err("inert publish");
        assert!(err.is_inert(), "{err}");
        let err = use_publish(connection, "room:lobby")
            .publish(String::from("hi"))
            .expect_err("inert publish");
        assert!(err.is_inert());
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("SSR opened a connection: {other:?}"),
    }
    owner.cleanup();
}
