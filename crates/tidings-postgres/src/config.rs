//! `PostgresConfig`: where the PostgreSQL backend connects, in which schema, and what it keeps.

use std::time::Duration;

use tidings_broker::Retention;

/// Settings of a [`crate::PostgresBackend`].
///
/// ```
/// use tidings_postgres::PostgresConfig;
/// let c = PostgresConfig::from_url("postgres://postgres@127.0.0.1/test?schema=chat&max_len=500").unwrap();
/// assert_eq!((c.schema.as_str(), c.retention.max_len), ("chat", Some(500)));
/// assert_eq!(c.url, "postgres://postgres@127.0.0.1/test");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The connection URL, without the tidings parameters below.
    pub url: String,
    /// The schema the backend creates its tables in (URL `?schema=`, default
    /// `tidings`; lower-case letters, digits and `_`).
    pub schema: String,
    /// History kept per channel (`?max_len=N&max_age_secs=S`; default the last 10,000).
    pub retention: Retention,
    /// How often a channel's feed reads even without a notification (a lost
    /// `NOTIFY` delays a message by this much at most; default 1 s).
    pub poll_interval: Duration,
}

/// A URL the PostgreSQL backend cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresConfigError {
    /// Not a `postgres://` or `postgresql://` URL.
    #[error("not a postgres:// URL: {0}")]
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

impl PostgresConfig {
    /// Reads a URL such as `postgres://postgres@127.0.0.1:5432/test?schema=app`.
    pub fn from_url(url: &str) -> Result<Self, PostgresConfigError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PostgresConfigError::Scheme(url.to_owned()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = Self {
            url: base.to_owned(),
            schema: "tidings".to_owned(),
            retention: Retention::default().with_max_len(10_000),
            poll_interval: Duration::from_secs(1),
        };
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || PostgresConfigError::Parameter {
                name: name.to_owned(),
                value: value.to_owned(),
            };
            let number = || value.parse::<u64>().map_err(|_| bad());
            match name {
                "schema" => {
                    if !valid_schema(value) {
                        return Err(bad());
                    }
                    config.schema = value.to_owned();
                }
                "max_len" => config.retention.max_len = Some(number()?).filter(|n| *n > 0),
                "max_age_secs" => {
                    config.retention.max_age =
                        Some(Duration::from_secs(number()?)).filter(|d| !d.is_zero())
                }
                _ => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            config.url = format!("{base}?{}", rest.join("&"));
        }
        Ok(config)
    }

    /// Sets the schema (see [`PostgresConfig::schema`]; an invalid name is
    /// refused when connecting).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the retention.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

/// Schema names go into SQL text: only `[a-z_][a-z0-9_]*`, up to 48 bytes.
pub(crate) fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()))
}
