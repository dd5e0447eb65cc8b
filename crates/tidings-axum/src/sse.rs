//! The SSE route: `GET <path>` opens an event stream served by the hub, `POST <path>/<session>` carries the client's frames; the framework-free endpoint is `tidings_sse::SseEndpoint`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tidings_channels::Hub;
use tidings_sse::{SseConfig, SseEndpoint};
use tracing::{Instrument, debug, debug_span};

use crate::auth::{AuthHook, admit};
use crate::origin::Origins;
use crate::rejection::Rejection;

/// A tidings SSE endpoint: hub, optional auth hook, limits.
///
/// Mount it with [`crate::SseRouterExt`]. `GET <path>` opens an event stream
/// (a new session, or a resumed one when the request carries a
/// `Last-Event-ID`); `POST <path>/<session id>` with the session's resume
/// token in `x-tidings-token` (or `Authorization: Bearer`) delivers the
/// client's frames. The auth hook runs before a stream opens (401/403 with
/// the reason); POSTs are authorized by the token the authorized stream
/// handed out.
///
/// ```no_run
/// # async fn demo() {
/// use std::sync::Arc;
/// use axum::Router;
/// use tidings_axum::{AuthError, SseRoute, SseRouterExt, UpgradeRequest};
/// use tidings_channels::{Hub, MemoryBroker};
///
/// let hub = Hub::new(Arc::new(MemoryBroker::default()));
/// // One line, no auth:
/// let app: Router = Router::new().tidings_sse("/sse", hub.clone());
/// // With an auth hook:
/// let route = SseRoute::new(hub).auth(|req: UpgradeRequest| async move {
///     match req.headers.get("cookie") {
///         Some(_) => Ok(()),
///         None => Err(AuthError::Unauthorized("log in first".into())),
///     }
/// });
/// let app: Router = Router::new().tidings_sse_route("/sse", route);
/// # }
/// ```
#[derive(Clone)]
pub struct SseRoute {
    hub: Hub,
    auth: Option<Arc<dyn AuthHook>>,
    origins: Origins,
    endpoint: SseEndpoint,
}

impl std::fmt::Debug for SseRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseRoute")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl SseRoute {
    /// An endpoint served by `hub`, no auth, default settings.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            auth: None,
            origins: Origins::any(),
            endpoint: SseEndpoint::default(),
        }
    }

    /// Runs `hook` before every stream opens; a refusal answers 401/403 with the reason.
    pub fn auth(mut self, hook: impl AuthHook) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// Only pages from these origins may connect (see [`Origins`]).
    pub fn origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// SSE settings (retry hint, keep-alive, POST limits). Resets the connection limit.
    pub fn config(mut self, config: SseConfig) -> Self {
        self.endpoint = SseEndpoint::new(config);
        self
    }

    /// Most concurrent streams on this endpoint; further ones get 503.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.endpoint = self.endpoint.with_max_connections(n);
        self
    }

    /// `GET <path>`: opens an event stream for a new or resumed session.
    pub(crate) async fn stream(self, req: Request) -> Response {
        match self.open(req).await {
            Ok(resp) => resp,
            Err(rejection) => {
                debug!(error = %rejection, "event stream refused");
                rejection.into_response()
            }
        }
    }

    async fn open(self, req: Request) -> Result<Response, Rejection> {
        let access = admit(self.auth.as_ref(), &self.origins, req.headers(), req.uri()).await?;
        let owner = access.identity().map(|i| Arc::from(i.subject()));
        let stream = self.endpoint.open_as(req.headers(), req.uri(), owner)?;
        let span = debug_span!(
            "tidings_sse_stream",
            conn = stream.conn,
            resume = stream.resumed
        );
        let (transport, codec, permit) = (stream.transport, stream.codec, stream.permit);
        let hub = self.hub.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                hub.serve_as(transport, codec, access.into_identity()).await;
                debug!("event stream served");
            }
            .instrument(span),
        );
        let mut resp = Response::new(Body::from_stream(stream.body));
        resp.headers_mut().extend(SseEndpoint::stream_headers());
        Ok(resp)
    }

    /// `POST <path>/<session>`: frames from the client of `session`.
    pub(crate) async fn upstream(self, session: String, req: Request) -> Response {
        let span = debug_span!("tidings_sse_post", session = %session);
        async move {
            match self.post(session, req).await {
                Ok(frames) => {
                    debug!(frames, "POST queued");
                    StatusCode::ACCEPTED.into_response()
                }
                Err(rejection) => {
                    debug!(error = %rejection, "POST refused");
                    rejection.into_response()
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn post(self, session: String, req: Request) -> Result<usize, Rejection> {
        // A POST is checked like the stream it feeds: same origin rules, and
        // the same identity as the one that opened the stream.
        let access = admit(self.auth.as_ref(), &self.origins, req.headers(), req.uri()).await?;
        let subject = access.identity().map(|i| i.subject());
        let target = self
            .endpoint
            .post_target_as(&session, req.headers(), subject)?;
        let max = target.max_body();
        let body = axum::body::to_bytes(req.into_body(), max)
            .await
            .map_err(|_| Rejection::BodyTooLarge { max })?;
        // Twice the frame limit of the hub's sessions: a publish over their
        // limit reaches the session and is refused by name (an `error` frame
        // naming it) rather than failing the whole POST.
        let max_frame = self
            .hub
            .config()
            .session
            .limits
            .max_frame_bytes
            .saturating_mul(2);
        Ok(target.deliver(&body, max_frame).await?)
    }
}
