//! Reconnect backoff of the client session: exponential growth, full jitter, cap, reset after a session that stayed open, retry timing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tidings_protocol::{Backoff, ClientConfig, ClientEvent, ClientSession, ClientState, Instant};

const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_millis(3_200);

/// Fails `n` connection attempts in a row, each at the earliest allowed time.
/// Returns the `retry_in` of every attempt and checks the timing contract.
fn fail_attempts(c: &mut ClientSession, now: &mut Instant, n: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..n {
        assert!(c.wants_connect(*now));
        c.on_connecting();
        assert_eq!(c.state(), ClientState::Connecting);
        assert!(
            !c.wants_connect(*now),
            "no second connect while one is in progress"
        );
        assert_eq!(c.poll_timeout(), None, "no timer while the driver connects");
        c.on_transport_down(*now, "connection refused");
        assert_eq!(c.state(), ClientState::Disconnected);
        let events = client_events(c);
        let [ClientEvent::Disconnected { reason, retry_in }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(reason, "connection refused");
        let retry_at = *now + *retry_in;
        assert_eq!(
            c.poll_timeout(),
            Some(retry_at),
            "poll_timeout is the retry time"
        );
        if !retry_in.is_zero() {
            assert!(
                !c.wants_connect(retry_at - Duration::from_nanos(1)),
                "not before the retry time"
            );
            // Timers before the retry time change nothing.
            c.handle_timeout(retry_at - Duration::from_nanos(1));
            assert_eq!(c.state(), ClientState::Disconnected);
            assert!(client_events(c).is_empty());
        }
        assert!(c.wants_connect(retry_at), "at the retry time");
        assert!(c.wants_connect(retry_at + ms(1)), "and after it");
        delays.push(*retry_in);
        *now = retry_at;
    }
    delays
}

fn ceiling(attempt: usize) -> Duration {
    BASE.saturating_mul(1 << attempt.min(20)).min(CAP)
}

#[test]
fn a_new_client_wants_to_connect_at_once() {
    let t0 = Instant::now();
    let c = ClientSession::new(client_config(), 5, t0);
    assert_eq!(c.state(), ClientState::Disconnected);
    assert!(c.wants_connect(t0));
    assert_eq!(c.poll_timeout(), Some(t0));
}

#[test]
fn delays_are_the_seeded_full_jitter_sequence_under_a_growing_capped_ceiling() {
    for seed in [0, 1, 42, u64::MAX] {
        let mut now = Instant::now();
        let mut c = ClientSession::new(ClientConfig::default().with_backoff(BASE, CAP), seed, now);
        let delays = fail_attempts(&mut c, &mut now, 12);
        let mut reference = Backoff::new(BASE, CAP, seed);
        for (i, d) in delays.iter().enumerate() {
            assert!(
                *d <= ceiling(i),
                "attempt {i}: {d:?} above ceiling {:?}",
                ceiling(i)
            );
            assert_eq!(
                *d,
                reference.next_delay(),
                "attempt {i} follows the seeded Backoff"
            );
        }
    }
}

#[test]
fn delays_grow_exponentially_on_average_and_stop_at_the_cap() {
    const SEEDS: u64 = 400;
    const ATTEMPTS: usize = 9;
    let mut sums = [0f64; ATTEMPTS];
    let mut maxima = [Duration::ZERO; ATTEMPTS];
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..SEEDS {
        let mut now = Instant::now();
        let mut c = ClientSession::new(ClientConfig::default().with_backoff(BASE, CAP), seed, now);
        for (i, d) in fail_attempts(&mut c, &mut now, ATTEMPTS)
            .into_iter()
            .enumerate()
        {
            sums[i] += d.as_secs_f64();
            maxima[i] = maxima[i].max(d);
            if i == 0 {
                distinct.insert(d);
            }
        }
    }
    let means: Vec<f64> = sums.iter().map(|s| s / SEEDS as f64).collect();
    for (i, mean) in means.iter().enumerate() {
        // Full jitter: uniform in [0, ceiling], so the mean is about half the ceiling.
        let half = ceiling(i).as_secs_f64() / 2.0;
        assert!(
            (mean - half).abs() < half * 0.15,
            "attempt {i}: mean {mean} vs {half}"
        );
        assert!(maxima[i] <= ceiling(i));
        // ...and the spread reaches close to the ceiling.
        assert!(
            maxima[i].as_secs_f64() > ceiling(i).as_secs_f64() * 0.9,
            "attempt {i}"
        );
    }
    // Doubling while under the cap (attempts 0..=5: 100 ms .. 3.2 s), flat after.
    for i in 0..5 {
        let ratio = means[i + 1] / means[i];
        assert!(
            (1.6..2.4).contains(&ratio),
            "attempt {i}->{}: ratio {ratio}",
            i + 1
        );
    }
    for i in 6..ATTEMPTS {
        let ratio = means[i] / means[5];
        assert!(
            (0.8..1.25).contains(&ratio),
            "capped attempt {i}: ratio {ratio}"
        );
    }
    assert!(
        distinct.len() > 350,
        "jitter spreads the first delay: {} distinct",
        distinct.len()
    );
}

#[test]
fn many_failures_never_exceed_the_cap() {
    let mut now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::default().with_backoff(BASE, CAP), 9, now);
    for d in fail_attempts(&mut c, &mut now, 200) {
        assert!(d <= CAP);
    }
}

#[test]
fn backoff_resets_after_a_session_that_stayed_open() {
    let config = ClientConfig::default().with_backoff(BASE, CAP);
    let stable = config.stable_after;
    let mut net = Net::new(config, server_config());
    let mut now = net.now;
    let delays = fail_attempts(&mut net.client, &mut now, 6);
    assert!(delays.iter().enumerate().all(|(i, d)| *d <= ceiling(i)));
    net.now = now;
    net.connect();
    assert_eq!(net.client.state(), ClientState::Open);

    // Every drop after a session that stayed open starts again from the base ceiling.
    for seed_round in 0..20 {
        net.take_client_events();
        net.now += stable;
        net.drop_link();
        let events = net.take_client_events();
        let [ClientEvent::Disconnected { retry_in, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(
            *retry_in <= BASE,
            "round {seed_round}: {retry_in:?} after reset"
        );
        net.reconnect();
        assert_eq!(net.client.state(), ClientState::Open);
    }
}

#[test]
fn sessions_that_end_right_after_their_welcome_keep_growing_the_backoff() {
    let mut net = Net::new(
        ClientConfig::default().with_backoff(BASE, CAP),
        server_config(),
    );
    net.connect();
    assert_eq!(net.client.state(), ClientState::Open);
    // Refused at once after every welcome: the ceilings keep growing to the cap.
    let mut delays = Vec::new();
    for _ in 0..12 {
        net.take_client_events();
        net.drop_link();
        let events = net.take_client_events();
        let [ClientEvent::Disconnected { retry_in, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        delays.push(*retry_in);
        net.reconnect();
        assert_eq!(net.client.state(), ClientState::Open);
    }
    for (i, d) in delays.iter().enumerate() {
        assert!(*d <= ceiling(i), "attempt {i}: {d:?} over its ceiling");
    }
    let late = &delays[8..];
    assert!(
        late.iter().any(|d| *d > BASE * 4),
        "the delays must grow when no session stays open: {delays:?}"
    );
}

#[test]
fn failed_handshakes_keep_growing_the_backoff() {
    // A transport that comes up but never gets a Welcome is a failed attempt too.
    let mut now = Instant::now();
    let mut c = ClientSession::new(
        ClientConfig::default()
            .with_backoff(BASE, CAP)
            .with_handshake_timeout(ms(500)),
        3,
        now,
    );
    let mut reference = Backoff::new(BASE, CAP, 3);
    for i in 0..8 {
        assert!(c.wants_connect(now));
        c.on_connecting();
        c.on_transport_up(now, codec());
        assert_eq!(c.poll_timeout(), Some(now + ms(500)));
        now += ms(500);
        c.handle_timeout(now);
        assert_eq!(c.state(), ClientState::Disconnected);
        let events = client_events(&mut c);
        let [ClientEvent::Disconnected { retry_in, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*retry_in, reference.next_delay(), "attempt {i}");
        assert!(*retry_in <= ceiling(i));
        assert_eq!(c.poll_timeout(), Some(now + *retry_in));
        now += *retry_in;
    }
}

#[test]
fn transport_down_when_not_connecting_is_ignored() {
    let t0 = Instant::now();
    let mut c = ClientSession::new(client_config(), 1, t0);
    c.on_transport_down(t0, "spurious");
    assert!(client_events(&mut c).is_empty());
    assert!(c.wants_connect(t0), "retry time unchanged");
}
