//! `NatsConfig`: where the NATS backend connects, under which stream prefix, and what it keeps.

use std::time::Duration;

use tidings_broker::Retention;

/// Settings of a [`crate::NatsBackend`].
///
/// ```
/// use tidings_nats::NatsConfig;
/// let c = NatsConfig::from_url("nats://127.0.0.1:4222?prefix=chat&max_len=1000").unwrap();
/// assert_eq!((c.prefix.as_str(), c.retention.max_len), ("chat", Some(1000)));
/// assert_eq!(c.url, "nats://127.0.0.1:4222");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NatsConfig {
    /// The NATS server URL (`nats://[user:pass@]host:port`, or several
    /// separated by commas), without the tidings parameters below.
    pub url: String,
    /// Every stream is named `{prefix}_{channel}` and listens on subject
    /// `{prefix}.{channel}` (URL `?prefix=`; default `tidings`; letters,
    /// digits, `-` and `_` only): applications and tests sharing one NATS
    /// never collide.
    pub prefix: String,
    /// History kept per channel (URL `?max_len=N&max_age_secs=S`; default:
    /// the last 10,000 messages).
    pub retention: Retention,
    /// How long an idempotency key is remembered: the streams' duplicate
    /// window (URL `?dedup_secs=`; default 120 s; never longer than
    /// `max_age`, which JetStream requires).
    pub dedup_ttl: Duration,
    /// How long a publish waits for JetStream's ack and keeps retrying (with
    /// a key) while NATS is unreachable before it fails with `Unavailable`
    /// (default 2 s).
    pub publish_timeout: Duration,
}

/// A URL the NATS backend cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsConfigError {
    /// Not a `nats://` (or `tls://`) URL.
    #[error("not a nats:// URL: {0}")]
    Scheme(String),
    /// A tidings parameter has a bad value.
    #[error("bad value for URL parameter {name}: {value:?}")]
    Parameter {
        /// Parameter name.
        name: String,
        /// What was given.
        value: String,
    },
}

/// Whether `prefix` can start a stream name and a subject.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl NatsConfig {
    /// Reads a URL such as `nats://127.0.0.1:4222?prefix=app&max_age_secs=3600`.
    pub fn from_url(url: &str) -> Result<Self, NatsConfigError> {
        if !(url.starts_with("nats://") || url.starts_with("tls://")) {
            return Err(NatsConfigError::Scheme(url.to_owned()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = Self {
            url: base.to_owned(),
            prefix: "tidings".to_owned(),
            retention: Retention::default().with_max_len(10_000),
            dedup_ttl: Duration::from_secs(120),
            publish_timeout: Duration::from_secs(2),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || NatsConfigError::Parameter {
                name: name.to_owned(),
                value: value.to_owned(),
            };
            let number = || value.parse::<u64>().map_err(|_| bad());
            match name {
                "prefix" if valid_prefix(value) => config.prefix = value.to_owned(),
                "max_len" => config.retention.max_len = Some(number()?).filter(|n| *n > 0),
                "max_age_secs" => {
                    config.retention.max_age =
                        Some(Duration::from_secs(number()?)).filter(|d| !d.is_zero())
                }
                "dedup_secs" => config.dedup_ttl = Duration::from_secs(number()?.max(1)),
                _ => return Err(bad()),
            }
        }
        Ok(config)
    }

    /// Sets the stream prefix (letters, digits, `-`, `_`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the retention.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets the publish timeout.
    pub fn with_publish_timeout(mut self, t: Duration) -> Self {
        self.publish_timeout = t;
        self
    }

    /// Checks the prefix (a builder may have set any string).
    pub(crate) fn check(&self) -> Result<(), NatsConfigError> {
        if valid_prefix(&self.prefix) {
            Ok(())
        } else {
            Err(NatsConfigError::Parameter {
                name: "prefix".into(),
                value: self.prefix.clone(),
            })
        }
    }
}
