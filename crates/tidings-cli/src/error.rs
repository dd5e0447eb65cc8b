//! `CliError`: every way a command fails, each with its documented exit code.

use std::path::PathBuf;

/// The exit codes of `tidings` (also in the crate README and `tidings --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Bad arguments or a bad URL (clap's own usage errors exit with 2 too).
    pub const USAGE: u8 = 2;
    /// The server could not be reached or never opened a session within the timeout.
    pub const UNREACHABLE: u8 = 3;
    /// The server refused: authentication (HTTP 401/403), a refused publish, an error frame.
    pub const REFUSED: u8 = 4;
    /// A wait ran out of time after the session was open (an acknowledgement, messages).
    pub const TIMEOUT: u8 = 5;
    /// Local I/O: stdin/stdout, files of `tidings new`.
    pub const IO: u8 = 6;
    /// `tidings doctor` found a problem (at least one check failed).
    pub const UNHEALTHY: u8 = 7;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The URL cannot be used with the chosen transport.
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument other than the URL is unusable.
    #[error("{0}")]
    BadArgument(String),
    /// No session opened within the timeout.
    #[error(
        "could not open a session with {url} within {secs:.1}s (last attempt: {last}); is the server running and is this its tidings endpoint?"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The timeout in seconds.
        secs: f64,
        /// The last reason the client gave.
        last: String,
    },
    /// The server refused the connection (HTTP 401/403).
    #[error(
        "{url} refused the connection: {reason} (pass credentials in the URL, e.g. ?token=...)"
    )]
    AuthRefused {
        /// The URL.
        url: String,
        /// The server's reason.
        reason: String,
    },
    /// The server refused a publish.
    #[error("publish on {channel} refused: {code}: {message}")]
    PublishRefused {
        /// The channel.
        channel: String,
        /// Wire error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server sent an error frame that ends the command.
    #[error("server error {code}: {message}")]
    Server {
        /// Wire error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The session closed for good.
    #[error("the session closed: {0}")]
    Closed(String),
    /// A wait ran out of time.
    #[error("timed out after {secs:.1}s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The timeout in seconds.
        secs: f64,
    },
    /// The client could not be built (bad certificate, bad URL for the transport...).
    #[error("client: {0}")]
    Client(String),
    /// `tidings new`: the target directory exists.
    #[error("{} already exists; choose another NAME or remove it", .0.display())]
    Exists(PathBuf),
    /// Local I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// `tidings doctor` found failing checks.
    #[error("{0} check(s) failed")]
    Unhealthy(usize),
}

impl CliError {
    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadUrl { .. } | CliError::BadArgument(_) | CliError::Client(_) => exit::USAGE,
            CliError::Unreachable { .. } | CliError::Closed(_) => exit::UNREACHABLE,
            CliError::AuthRefused { .. }
            | CliError::PublishRefused { .. }
            | CliError::Server { .. } => exit::REFUSED,
            CliError::Timeout { .. } => exit::TIMEOUT,
            CliError::Exists(_) | CliError::Io { .. } => exit::IO,
            CliError::Unhealthy(_) => exit::UNHEALTHY,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            source,
        }
    }
}
