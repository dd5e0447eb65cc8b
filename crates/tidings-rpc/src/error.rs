//! `RpcError`: the typed failure of a call, with a stable code (see `RpcCode`).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidings_protocol::{RpcCode, RpcFault};

/// Why a call failed. The code is stable and on the wire; the message is for
/// people; `data` carries a method's own typed error ([`RpcCode::Application`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rpc {code}: {message}")]
#[non_exhaustive]
pub struct RpcError {
    /// Stable code.
    pub code: RpcCode,
    /// Human-readable explanation.
    pub message: String,
    /// Encoded application error (JSON), for [`RpcCode::Application`].
    pub data: Option<Bytes>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: RpcCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A method's own typed error: its `Display` is the message, its JSON the data.
    pub fn application<E: Serialize + std::fmt::Display>(error: &E) -> Self {
        Self {
            code: RpcCode::Application,
            message: error.to_string(),
            data: serde_json::to_vec(error).ok().map(Bytes::from),
        }
    }

    /// The method's own typed error, when this is one and it decodes as `E`.
    pub fn application_error<E: DeserializeOwned>(&self) -> Option<E> {
        if self.code != RpcCode::Application {
            return None;
        }
        serde_json::from_slice(self.data.as_deref()?).ok()
    }

    /// The call was cancelled (by either side).
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(RpcCode::Cancelled, message)
    }

    /// The server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(RpcCode::Internal, message)
    }

    /// The parameters did not decode.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(RpcCode::InvalidParams, message)
    }

    /// The connection went away before the call finished: retry when idempotent.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(RpcCode::Unavailable, message)
    }

    /// True for [`RpcCode::UnknownMethod`].
    pub fn is_unknown_method(&self) -> bool {
        self.code == RpcCode::UnknownMethod
    }

    /// True for [`RpcCode::DeadlineExceeded`].
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code == RpcCode::DeadlineExceeded
    }

    /// True for [`RpcCode::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.code == RpcCode::Cancelled
    }

    /// True for [`RpcCode::RateLimited`]: slow down and retry.
    pub fn is_rate_limited(&self) -> bool {
        self.code == RpcCode::RateLimited
    }

    /// True for [`RpcCode::Unavailable`]: the connection dropped; retry when idempotent.
    pub fn is_unavailable(&self) -> bool {
        self.code == RpcCode::Unavailable
    }
}

impl From<RpcFault> for RpcError {
    fn from(f: RpcFault) -> Self {
        Self {
            code: f.code,
            message: f.message,
            data: f.data,
        }
    }
}

impl From<RpcError> for RpcFault {
    fn from(e: RpcError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            data: e.data,
        }
    }
}

/// The failure of a typed call whose method has its own error type `E` (generated clients of
/// `#[rpc]` traits): the method's error, decoded, or any other [`RpcError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The method returned its own error.
    #[error("{0}")]
    Application(E),
    /// The call failed otherwise (unknown method, deadline, connection lost, ...), or the
    /// application error did not decode as `E`.
    #[error(transparent)]
    Rpc(RpcError),
}

impl<E: DeserializeOwned> CallError<E> {
    /// Sorts `e`: an application error that decodes as `E`, or the error as it is.
    pub fn from_rpc(e: RpcError) -> Self {
        match e.application_error::<E>() {
            Some(app) => Self::Application(app),
            None => Self::Rpc(e),
        }
    }
}

impl<E> CallError<E> {
    /// The method's own error, if that is what this is.
    pub fn application(&self) -> Option<&E> {
        match self {
            Self::Application(e) => Some(e),
            Self::Rpc(_) => None,
        }
    }

    /// The RPC error, if this is not the method's own.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Self::Rpc(e) => Some(e),
            Self::Application(_) => None,
        }
    }
}
