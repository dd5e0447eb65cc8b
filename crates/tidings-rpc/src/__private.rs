//! What the code of `#[rpc]` names through this crate (not a public API): re-exports and the stream adapters of generated routers.

pub use futures_core::Stream;
pub use serde_json;
pub use std::sync::Arc;

#[cfg(feature = "schema")]
pub use schemars;

#[cfg(feature = "server")]
pub use adapters::{app_items, ok_items};

#[cfg(feature = "server")]
mod adapters {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;
    use serde::Serialize;

    use crate::RpcError;

    /// A stream of plain items as the router takes them (`Ok` each).
    pub fn ok_items<S, T>(s: S) -> OkItems<S>
    where
        S: Stream<Item = T>,
    {
        OkItems(Box::pin(s))
    }

    /// A stream of `Result<T, E>` with `E` the method's own error (sent as `application`).
    pub fn app_items<S, T, E>(s: S) -> AppItems<S>
    where
        S: Stream<Item = Result<T, E>>,
        E: Serialize + std::fmt::Display,
    {
        AppItems(Box::pin(s))
    }

    /// See [`ok_items`].
    pub struct OkItems<S>(Pin<Box<S>>);

    impl<S: Stream> Stream for OkItems<S> {
        type Item = Result<S::Item, RpcError>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.get_mut().0.as_mut().poll_next(cx).map(|o| o.map(Ok))
        }
    }

    /// See [`app_items`].
    pub struct AppItems<S>(Pin<Box<S>>);

    impl<S, T, E> Stream for AppItems<S>
    where
        S: Stream<Item = Result<T, E>>,
        E: Serialize + std::fmt::Display,
    {
        type Item = Result<T, RpcError>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.get_mut()
                .0
                .as_mut()
                .poll_next(cx)
                .map(|o| o.map(|r| r.map_err(|e| RpcError::application(&e))))
        }
    }
}
