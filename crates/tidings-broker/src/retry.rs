//! `append_retrying`: the retry loop a durable backend runs around one append while its server is unreachable.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::StoreError;

/// Runs `attempt` until it succeeds, fails for good, or `timeout` has passed.
///
/// An `Unavailable` failure is retried (backoff 20 ms, doubling to 500 ms)
/// only when `keyed`: a message with an idempotency key is stored once
/// however often it is sent, so a retry after a lost reply cannot store it
/// twice; without a key the first failure is the answer. `attempt` gets the
/// deadline, for backends that bound each attempt by it.
pub async fn append_retrying<T, Fut>(
    keyed: bool,
    timeout: Duration,
    mut attempt: impl FnMut(Instant) -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        match attempt(deadline).await {
            Err(e) if e.is_unavailable() && keyed && Instant::now() + delay < deadline => {
                tracing::debug!(error = %e, "append failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}
