//! The `tidings` binary against a real server: every command spawned as a process, stdin scripted, stdout and exit codes asserted.

mod common;

use common::{Cli, Server, run};

/// `out` with every run of whitespace collapsed to one space (the doctor's columns).
fn squeeze(out: &str) -> String {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn connect_subscribes_publishes_and_shows_a_reconnect() {
    let server = Server::start(None);
    // Through a TCP proxy the test can cut, so the reconnect and resume show on stdout.
    let proxy = server
        .rt
        .block_on(tidings_test::FaultProxy::start(server.addr))
        .unwrap();
    let url = format!("ws://{}/ws", proxy.addr());
    let mut cli = Cli::spawn(&["connect", &url]);
    cli.expect_out("connected session=");
    cli.send("sub room:a");
    cli.expect_out("subscribed room:a at #0");
    cli.send("pub room:a hello there");
    cli.expect_out("sent publish 1 on room:a");
    cli.expect_out("message room:a #1 hello there");
    server.publish("room:a", r#"{"text":"from the server"}"#);
    cli.expect_out(r#"message room:a #2 {"text":"from the server"}"#);
    cli.send("frobnicate");
    cli.expect_err("unknown command \"frobnicate\"");
    cli.send("state");
    cli.expect_out("state Open");

    proxy.cut_all();
    cli.expect_out("disconnected:");
    cli.expect_out("(resumed: nothing lost)");
    server.publish("room:a", "after the cut");
    cli.expect_out("message room:a #3 after the cut");
    cli.send("unsub room:a");
    cli.expect_out("unsubscribed room:a");
    // End of input: the pending publish is acknowledged before the process exits.
    cli.send("pub room:b last words");
    cli.close_stdin();
    let (status, seen) = cli.wait();
    assert!(status.success(), "{status}: {seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("acked publish 2")),
        "{seen:#?}"
    );
}

#[test]
fn listen_prints_messages_with_their_seqs_and_stops_after_count() {
    let server = Server::start(None);
    let url = server.ws("/ws");
    let mut cli = Cli::spawn(&["listen", &url, "room:b", "room:c", "-n", "3"]);
    cli.expect_err("subscribed room:c");
    server.publish("room:b", "one");
    server.publish("room:c", r#"{"n":2}"#);
    server.publish("room:b", "three");
    assert_eq!(cli.expect(true, |_| true), "room:b #1 one");
    assert_eq!(cli.expect(true, |_| true), r#"room:c #1 {"n":2}"#);
    assert_eq!(cli.expect(true, |_| true), "room:b #2 three");
    let (status, seen) = cli.wait();
    assert!(status.success(), "{status}: {seen:#?}");
}

#[test]
fn listen_over_sse_and_webtransport() {
    let server = Server::start(None);
    let sse = server.http("/sse");
    let mut cli = Cli::spawn(&["listen", &sse, "room:s", "-n", "1"]);
    cli.expect_err("subscribed room:s");
    server.publish("room:s", "over sse");
    assert_eq!(cli.expect(true, |_| true), "room:s #1 over sse");
    assert!(cli.wait().0.success());

    let wt = format!("https://127.0.0.1:{}/wt", server.addr.port());
    let mut cli = Cli::spawn(&[
        "listen",
        &wt,
        "room:w",
        "-n",
        "1",
        "--transport",
        "webtransport",
        "--cert-hash",
        &server.cert_hash,
    ]);
    cli.expect_err("subscribed room:w");
    server.publish("room:w", "over webtransport");
    assert_eq!(cli.expect(true, |_| true), "room:w #1 over webtransport");
    assert!(cli.wait().0.success());
}

#[test]
fn send_is_acknowledged_and_refusals_have_their_exit_codes() {
    let server = Server::start(None);
    let url = server.ws("/ws");
    let mut listener = Cli::spawn(&["listen", &url, "room:d", "-n", "1", "--codec", "bin"]);
    listener.expect_err("subscribed room:d");
    let (status, out, err) = run(&["send", &url, "room:d", r#"{"text":"hi"}"#]);
    assert!(status.success(), "{status} {out} {err}");
    assert!(out.starts_with("sent to room:d"), "{out}");
    assert_eq!(
        listener.expect(true, |_| true),
        r#"room:d #1 {"text":"hi"}"#
    );
    assert!(listener.wait().0.success());

    // No credentials: HTTP 401 → exit 4 at once.
    let (status, _, err) = run(&["send", &server.ws("/private"), "public:x", "hi"]);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.contains("refused the connection") && err.contains("401"),
        "{err}"
    );
    // Credentials that may not publish there: the publish is refused → exit 4.
    let private = server.ws("/private?token=ok");
    let (status, _, err) = run(&["send", &private, "secret:x", "hi"]);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(
        err.contains("publish on secret:x refused: forbidden"),
        "{err}"
    );
    let (status, out, err) = run(&["send", &private, "public:x", "hi"]);
    assert!(status.success(), "{status} {out} {err}");

    // Nothing listening: exit 3 after the timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dead = format!("ws://127.0.0.1:{port}/ws");
    let (status, _, err) = run(&["send", &dead, "room:x", "hi", "--timeout", "1"]);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("could not open a session"), "{err}");
    // A bad URL: exit 2.
    let (status, _, err) = run(&["send", "ftp://x", "room:x", "hi"]);
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, _, err) = run(&["send", &url]);
    assert_eq!(status.code(), Some(2), "clap's usage error: {err}");
}

#[test]
fn bench_prints_the_echo_and_fanout_table() {
    let server = Server::start(None);
    let url = server.ws("/ws");
    let (status, out, err) = run(&[
        "bench",
        &url,
        "--messages",
        "50",
        "--subscribers",
        "4",
        "--fanout-messages",
        "10",
    ]);
    assert!(status.success(), "{status} {out} {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("test") && lines[0].contains("p99"),
        "{out}"
    );
    let echo: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&echo[..2], ["echo", "50"], "{out}");
    let fan: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&fan[..3], ["fan-out", "x4", "40"], "{out}");
}

#[test]
fn doctor_probes_every_transport_without_a_discovery_document() {
    let server = Server::start(None);
    let url = server.http("");
    let (status, out, err) = run(&["doctor", &url, "--cert-hash", &server.cert_hash]);
    assert!(status.success(), "{status} {out} {err}");
    for want in [
        "--   discovery                not served (HTTP 404)",
        "ok   health /healthz",
        "--   health /readyz",
        "ok   websocket tidings.v1.json",
        "ok   websocket tidings.v1.bin",
        "ok   sse tidings.v1.json",
        "ok   webtransport",
        "--   tls",
        "ok   auth                     not required",
        "ok   latency                  10 echo round trip(s)",
    ] {
        assert!(
            squeeze(&out).contains(&squeeze(want)),
            "missing {want:?} in:\n{out}"
        );
    }
    // An endpoint that wants credentials.
    let (_, out, _) = run(&[
        "doctor",
        &server.ws("/private"),
        "--cert-hash",
        &server.cert_hash,
    ]);
    assert!(squeeze(&out).contains("-- auth required"), "{out}");
    // Nothing there at all: exit 7.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (status, out, err) = run(&[
        "doctor",
        &format!("http://127.0.0.1:{port}"),
        "--timeout",
        "1",
    ]);
    assert_eq!(status.code(), Some(7), "{out} {err}");
}

#[test]
fn doctor_checks_tls_with_and_without_the_ca() {
    let server = Server::start(None);
    let ca = std::env::temp_dir().join(format!("tidings-cli-ca-{}.pem", std::process::id()));
    let addr = common::start_tls(&server, &ca);
    let url = format!("https://{addr}");
    let (status, out, err) = run(&[
        "doctor",
        &url,
        "--ca",
        ca.to_str().unwrap(),
        "--timeout",
        "5",
    ]);
    assert!(status.success(), "{status} {out} {err}");
    let out = squeeze(&out);
    assert!(
        out.contains(&format!("ok websocket tidings.v1.json wss://{addr}/ws")),
        "{out}"
    );
    assert!(
        out.contains(&format!("ok sse tidings.v1.json https://{addr}/sse")),
        "{out}"
    );
    assert!(out.contains("ok tls certificate trusted"), "{out}");
    // Without the CA, nothing opens: the certificate is not trusted, exit 7.
    let (status, out, err) = run(&["doctor", &url, "--timeout", "2"]);
    assert_eq!(status.code(), Some(7), "{out} {err}");
    assert!(
        squeeze(&out).contains("FAIL tls no session over TLS"),
        "{out}"
    );
    let _ = std::fs::remove_file(&ca);
}

#[test]
fn doctor_reads_a_discovery_document() {
    let doc = r#"{"version":1,"transports":[{"kind":"websocket","url":"ws://{addr}/ws"},{"kind":"webtransport","url":"https://{addr}/wt"}]}"#;
    let server = Server::start(Some(doc));
    let (status, out, err) = run(&[
        "doctor",
        &server.http("/"),
        "--cert-hash",
        &server.cert_hash,
    ]);
    assert!(status.success(), "{status} {out} {err}");
    assert!(
        squeeze(&out).contains("ok discovery /.well-known/tidings: {"),
        "{out}"
    );
    assert!(
        squeeze(&out).contains(&format!("ok webtransport https://{}/wt", server.addr)),
        "{out}"
    );
}

#[test]
fn new_refuses_bad_names_and_existing_directories() {
    let dir = std::env::temp_dir().join(format!("tidings-cli-new-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (status, _, err) = run(&["new", "2bad", "--dir", dir.join("x").to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{err}");
    let (status, _, err) = run(&["new", "taken", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status.code(), Some(6), "{err}");
    assert!(err.contains("already exists"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
