//! Server-side rendering of the whole chat page: the document shell around [`App`]'s HTML, with the module script that loads the wasm bundle and hydrates.

use leptos::prelude::*;
use leptos::tachys::view::RenderHtml;

use crate::App;

/// The file stem of the wasm-bindgen output the page loads: `/pkg/{BUNDLE_NAME}.js` and
/// `/pkg/{BUNDLE_NAME}_bg.wasm`.
pub const BUNDLE_NAME: &str = "tidings_chat_web";

const STYLE: &str = include_str!("style.css");

/// The chat page: `<head>` (style, the module script that runs `hydrate()`) and `<body>`
/// holding the server-rendered [`App`], hydration markers included.
///
/// The app's HTML is the body's first child, with no whitespace before it: hydration walks the
/// body's nodes from the first one. Rendering runs the components under a fresh reactive owner
/// on this thread; the hooks are inert off wasm32, so no connection is opened.
pub fn render_page() -> String {
    let owner = Owner::new();
    let app = owner.with(|| view! { <App /> }.to_html());
    owner.cleanup();
    document("tidings chat", &app, "hydrate")
}

/// The collaborative editor page (`/editor`): the same shell around [`crate::Editor`], hydrated
/// by the bundle's `hydrate_editor()`.
pub fn render_editor_page() -> String {
    let owner = Owner::new();
    let app = owner.with(|| view! { <crate::Editor /> }.to_html());
    owner.cleanup();
    document("tidings editor", &app, "hydrate_editor")
}

/// The document shell: `<head>` (title, style, the module script that runs the bundle's `entry`)
/// and `<body>` holding `app`.
fn document(title: &str, app: &str, entry: &str) -> String {
    let mut html = String::with_capacity(app.len() + STYLE.len() + 512);
    html.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    // No favicon request (a 404 in the console of every page otherwise).
    html.push_str(&format!(
        "<link rel=\"icon\" href=\"data:,\"><title>{title}</title><style>"
    ));
    html.push_str(STYLE);
    html.push_str("</style>");
    html.push_str(&format!(
        "<link rel=\"modulepreload\" href=\"/pkg/{BUNDLE_NAME}.js\">\
         <link rel=\"preload\" href=\"/pkg/{BUNDLE_NAME}_bg.wasm\" as=\"fetch\" type=\"application/wasm\" crossorigin>\
         <script type=\"module\">import init, {{ {entry} }} from \"/pkg/{BUNDLE_NAME}.js\"; \
         await init({{ module_or_path: \"/pkg/{BUNDLE_NAME}_bg.wasm\" }}); {entry}();</script>"
    ));
    html.push_str("</head><body>");
    html.push_str(app);
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    //! The rendered page: what the server sends before any wasm runs.

    #[test]
    fn the_page_renders_the_app_idle_with_its_rooms_and_loads_the_bundle() {
        let html = super::render_page();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.contains("<body><main id=\"chat\""), "{html}");
        assert!(html.contains("id=\"status\""), "{html}");
        assert!(
            html.contains(">idle<"),
            "status must render as idle: {html}"
        );
        for room in crate::ROOMS {
            assert!(
                html.contains(&format!("data-room=\"{room}\"")),
                "{room}: {html}"
            );
        }
        assert!(html.contains("/pkg/tidings_chat_web.js"), "{html}");
        assert!(html.ends_with("</body></html>"), "{html}");
    }
}
