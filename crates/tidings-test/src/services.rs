//! The machine's shared services (PostgreSQL, Redis, NATS) for backend tests: their URLs, unique names per test, and loud skips (or failures under `TIDINGS_REQUIRE_SERVICES=1`).
//!
//! Tests never stop a shared service: to cut one, they put a
//! [`crate::FaultProxy`] in front of it.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Set to `1` (by `cargo xtask ci`): a test whose service is unreachable fails instead of skipping.
pub const REQUIRE_SERVICES_ENV: &str = "TIDINGS_REQUIRE_SERVICES";

/// `TIDINGS_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("TIDINGS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `TIDINGS_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
pub fn postgres_url() -> String {
    std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `TIDINGS_NATS_URL`, default `nats://127.0.0.1:4222`.
pub fn nats_url() -> String {
    std::env::var("TIDINGS_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Whether `TIDINGS_REQUIRE_SERVICES=1` is set.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| v == "1")
}

/// A service a test needs is unreachable: panics under
/// `TIDINGS_REQUIRE_SERVICES=1`, else prints a `SKIPPED:` line saying why
/// (the caller then returns).
pub fn unreachable(test: &str, service: &str, url: &str, error: &dyn Display) {
    let why = format!("{service} at {url} is unreachable ({error})");
    if services_required() {
        panic!("{test}: {why}; {REQUIRE_SERVICES_ENV}=1 requires it");
    }
    eprintln!(
        "SKIPPED: {test}: {why}. Start the service or set its URL (TIDINGS_*_URL); \
         {REQUIRE_SERVICES_ENV}=1 makes this a failure"
    );
}

/// A name no other test (or run) uses: `{base}_{pid}_{time}_{n}`, lower case,
/// fit for a key prefix, a schema or a stream name.
pub fn unique_name(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() % 1_000_000_000_000);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{base}_{}_{t}_{n}", std::process::id())
}
