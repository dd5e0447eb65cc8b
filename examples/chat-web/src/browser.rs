//! What only the browser knows: the page's own endpoint (WebSocket, or WebTransport with `?transport=webtransport`) and the name kept in `localStorage`. Off wasm32 (the server rendering the page) these are placeholders the hooks never use.

/// The `localStorage` key of the chat name.
#[cfg(target_arch = "wasm32")]
const NAME_KEY: &str = "tidings-chat-name";

/// `ws://host/ws` (or `wss://` on an https page) of the page's own server.
#[cfg(target_arch = "wasm32")]
pub(crate) fn ws_url() -> String {
    let location = leptos::prelude::window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location
        .host()
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    format!("{scheme}://{host}/ws")
}

/// Never used to connect: off wasm32 the hooks are inert.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn ws_url() -> String {
    "ws://server-side-rendering.invalid/ws".to_owned()
}

/// The page's server over WebSocket, or with `?transport=webtransport` in the page URL over
/// WebTransport: the chat server listens for it on the UDP port of the same number as its HTTP
/// port, and serves the SHA-256 of its development certificate at `/webtransport-hashes.json`.
#[cfg(target_arch = "wasm32")]
pub(crate) fn endpoint() -> tidings_leptos::Endpoint {
    let location = leptos::prelude::window().location();
    let search = location.search().unwrap_or_default();
    let webtransport = search
        .trim_start_matches('?')
        .split('&')
        .any(|kv| kv == "transport=webtransport");
    if !webtransport {
        return tidings_leptos::Endpoint::web_socket(ws_url());
    }
    let host = location
        .host()
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    tidings_leptos::Endpoint::web_transport(format!("https://{host}/"))
        .certificate_hashes_from("/webtransport-hashes.json")
}

/// Never used to connect: off wasm32 the hooks are inert.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn endpoint() -> tidings_leptos::Endpoint {
    tidings_leptos::Endpoint::web_socket(ws_url())
}

/// The name kept from an earlier visit, else `guest-NNNN`.
#[cfg(target_arch = "wasm32")]
pub(crate) fn initial_name() -> String {
    let stored = leptos::prelude::window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item(NAME_KEY).ok().flatten())
        .filter(|n| !n.trim().is_empty());
    stored.unwrap_or_else(|| {
        // 1000..=9999: short enough to read, varied enough for a demo.
        let n = 1000.0 + (js_sys::Math::random() * 9000.0).floor();
        format!("guest-{n}")
    })
}

/// Off wasm32 effects never run; nothing calls this.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn initial_name() -> String {
    String::new()
}

/// Keeps `name` for the next visit (best effort: private windows may refuse).
#[cfg(target_arch = "wasm32")]
pub(crate) fn remember_name(name: &str) {
    if let Some(storage) = leptos::prelude::window().local_storage().ok().flatten() {
        let _ = storage.set_item(NAME_KEY, name);
    }
}

/// Off wasm32 there is no storage.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn remember_name(_name: &str) {}
