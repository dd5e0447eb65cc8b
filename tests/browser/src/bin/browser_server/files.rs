//! The static files of the tests: pages from `--pages` at `/`, the wasm bundle from `--pkg` at `/pkg/`, the chat example's page at `/chat.html`.
//!
//! Only plain file names are served (letters, digits, `.`, `-`, `_`; no leading dot), so no
//! request can reach outside the two directories. `.wasm` goes out as `application/wasm`: the
//! bindings compile it with `WebAssembly.instantiateStreaming`, which requires that type.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

struct Dirs {
    pages: PathBuf,
    pkg: PathBuf,
}

pub(crate) fn routes(pages: PathBuf, pkg: PathBuf) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/chat.html", get(chat))
        .route("/{file}", get(page))
        .route("/pkg/{file}", get(bundle))
        .with_state(Arc::new(Dirs { pages, pkg }))
}

async fn index(State(dirs): State<Arc<Dirs>>) -> Response {
    serve(dirs.pages.clone(), "index.html").await
}

/// The chat example's page (the protocol's plain-JS reference client), as the demo serves it.
async fn chat() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        include_str!("../../../../../examples/static/chat.html"),
    )
        .into_response()
}

async fn page(State(dirs): State<Arc<Dirs>>, Path(file): Path<String>) -> Response {
    serve(dirs.pages.clone(), &file).await
}

async fn bundle(State(dirs): State<Arc<Dirs>>, Path(file): Path<String>) -> Response {
    serve(dirs.pkg.clone(), &file).await
}

async fn serve(dir: PathBuf, file: &str) -> Response {
    let plain = !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !plain {
        return (StatusCode::BAD_REQUEST, "not a plain file name").into_response();
    }
    let Some(kind) = content_type(file) else {
        return (StatusCode::NOT_FOUND, "no such file type here").into_response();
    };
    match tokio::fs::read(dir.join(file)).await {
        // Rebuilt on every run: never let the browser keep an old copy.
        Ok(body) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, format!("{file}: not found")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{file}: {e}")).into_response(),
    }
}

fn content_type(file: &str) -> Option<&'static str> {
    let (_, ext) = file.rsplit_once('.')?;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        _ => return None,
    })
}
