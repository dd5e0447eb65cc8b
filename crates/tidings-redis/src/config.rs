//! `RedisConfig`: where the Redis backend connects, under which key prefix, and what it keeps.

use std::time::Duration;

use tidings_broker::Retention;

/// Settings of a [`crate::RedisBackend`].
///
/// ```
/// use tidings_redis::RedisConfig;
/// let c = RedisConfig::from_url("redis://127.0.0.1:6379/0?prefix=chat&max_len=1000").unwrap();
/// assert_eq!((c.prefix.as_str(), c.retention.max_len), ("chat", Some(1000)));
/// assert_eq!(c.url, "redis://127.0.0.1:6379/0");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The Redis URL (`redis://[user:pass@]host:port[/db]`), without the
    /// tidings parameters below.
    pub url: String,
    /// Every key starts with `{prefix}:` (URL `?prefix=`; default `tidings`):
    /// applications and tests sharing one Redis never collide.
    pub prefix: String,
    /// History kept per channel (URL `?max_len=N&max_age_secs=S`; default:
    /// the last 10,000 messages).
    pub retention: Retention,
    /// How long an idempotency key is remembered (URL `?dedup_secs=`;
    /// default 300 s): a client re-sending a publish later than this stores it again.
    pub dedup_ttl: Duration,
    /// How long a publish keeps retrying while Redis is unreachable before
    /// it fails with `Unavailable` (default 2 s).
    pub publish_timeout: Duration,
}

/// A URL the Redis backend cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// Not a `redis://` or `rediss://` URL.
    #[error("not a redis:// URL: {0}")]
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

impl RedisConfig {
    /// Reads a URL such as `redis://127.0.0.1:6379?prefix=app`.
    pub fn from_url(url: &str) -> Result<Self, RedisConfigError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(RedisConfigError::Scheme(url.to_owned()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = Self {
            url: base.to_owned(),
            prefix: "tidings".to_owned(),
            retention: Retention::default().with_max_len(10_000),
            dedup_ttl: Duration::from_secs(300),
            publish_timeout: Duration::from_secs(2),
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| RedisConfigError::Parameter {
                        name: name.to_owned(),
                        value: value.to_owned(),
                    })
            };
            match name {
                "prefix" if !value.is_empty() => config.prefix = value.to_owned(),
                "max_len" => config.retention.max_len = Some(number()?).filter(|n| *n > 0),
                "max_age_secs" => {
                    config.retention.max_age =
                        Some(Duration::from_secs(number()?)).filter(|d| !d.is_zero())
                }
                "dedup_secs" => config.dedup_ttl = Duration::from_secs(number()?.max(1)),
                _ => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            config.url = format!("{base}?{}", rest.join("&"));
        }
        Ok(config)
    }

    /// Sets the key prefix.
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
}
