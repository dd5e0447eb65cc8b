//! A PostgreSQL client that reconnects by itself: a dead connection is replaced on the next use, with backoff between failed attempts.

use std::sync::Arc;
use std::time::Duration;

use tidings_broker::StoreError;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};
use tracing::{debug, warn};

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Time a connection attempt gets.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn unavailable(e: &tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("postgres: {e}"))
}

struct State {
    client: Option<Arc<Client>>,
    next_try: Instant,
    delay: Duration,
}

/// One shared connection (queries are pipelined on it), re-opened after it dies.
pub(crate) struct Conn {
    url: String,
    state: tokio::sync::Mutex<State>,
}

/// Opens a connection and spawns the task that drives it.
pub(crate) async fn open(url: &str) -> Result<Client, StoreError> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| StoreError::Unavailable("postgres: connect timed out".into()))?
            .map_err(|e| unavailable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

impl Conn {
    pub(crate) fn new(url: String, client: Client) -> Self {
        Self {
            url,
            state: tokio::sync::Mutex::new(State {
                client: Some(Arc::new(client)),
                next_try: Instant::now(),
                delay: Duration::from_millis(50),
            }),
        }
    }

    /// The live client, reconnecting if the last one died (at most once per
    /// backoff delay: meanwhile callers get `Unavailable` at once).
    pub(crate) async fn get(&self) -> Result<Arc<Client>, StoreError> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.client
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        st.client = None;
        if Instant::now() < st.next_try {
            return Err(StoreError::Unavailable(
                "postgres: connection lost, reconnecting".into(),
            ));
        }
        match open(&self.url).await {
            Ok(c) => {
                debug!("postgres reconnected");
                let c = Arc::new(c);
                st.client = Some(c.clone());
                st.delay = Duration::from_millis(50);
                Ok(c)
            }
            Err(e) => {
                warn!(error = %e, retry_in = ?st.delay, "postgres reconnect failed");
                st.next_try = Instant::now() + st.delay;
                st.delay = (st.delay * 2).min(MAX_BACKOFF);
                Err(e)
            }
        }
    }
}
