//! The Leptos 0.8 front end of the tidings chat example, on the `tidings-leptos` hooks.
//!
//! * `ssr` (the chat server): [`render_page`] renders the whole page to HTML; the hooks are
//!   inert there, so rendering opens no connection.
//! * `hydrate` (the browser bundle, built for `wasm32-unknown-unknown` by the examples' build
//!   script): the exported `hydrate()` adopts the server's HTML with `leptos::mount::hydrate_body`
//!   and the hooks connect to the page's own `/ws`.
//!
//! The first render depends on nothing either side knows alone (status `Idle`, no messages,
//! empty name, room `lobby`), so the server's HTML and the hydrating client agree; what only the
//! browser has (the stored name, the connection) arrives after hydration, as signal updates.
//!
//! Dependencies: `leptos` (the framework the hooks are for) with no default features, the
//! application's choice of `ssr` / `hydrate` being made here; `serde_json` for the payloads
//! (already in the bundle through the JSON codec); `wasm-bindgen`, `web-sys` and `js-sys` for
//! the browser entry point, `localStorage` and a random guest name.

pub mod app;
mod browser;
pub mod editor;
mod line;
#[cfg(feature = "ssr")]
mod page;

pub use app::{App, Chat, Room};
pub use editor::{EDITOR_DOC, EDITOR_ROOM, Editor};
pub use line::Line;
#[cfg(feature = "ssr")]
pub use page::{BUNDLE_NAME, render_editor_page, render_page};

/// The rooms the chat offers (channels `room:<name>`).
pub const ROOMS: [&str; 3] = ["lobby", "random", "help"];

/// The browser entry point: hydrates the server-rendered page, then marks `<body>` with
/// `data-hydrated` (the browser tests wait for it).
#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    leptos::mount::hydrate_body(App);
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}

/// The browser entry point of the editor page (`/editor`): hydrates [`Editor`], then marks
/// `<body>` with `data-hydrated`.
#[cfg(all(feature = "hydrate", target_arch = "wasm32"))]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate_editor() {
    leptos::mount::hydrate_body(Editor);
    if let Some(body) = leptos::prelude::document().body() {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
