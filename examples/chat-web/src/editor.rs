//! The collaborative editor page (`/editor`): a textarea bound to the shared Y.Text `t` of document `editor` (`use_synced`, on the tidings session) and who is editing (`use_presence` in room `room:editor`), on one connection.
//!
//! As on the chat page, the first render is the same on the server and in the hydrating browser
//! (status `idle`, empty text, nobody present); the name, the text and the members arrive after
//! hydration, as signal updates.

use leptos::prelude::*;
use tidings_leptos::{use_connection, use_presence, use_synced};

/// The document the editor edits (channel `doc:editor`).
pub const EDITOR_DOC: &str = "editor";
/// The presence room of the editor.
pub const EDITOR_ROOM: &str = "room:editor";

/// The editor: status, who is present, the shared text.
#[component]
pub fn Editor() -> impl IntoView {
    let connection = use_connection(&crate::browser::ws_url());
    let text = use_synced(connection, EDITOR_DOC, "t");
    let presence = use_presence(connection, EDITOR_ROOM, serde_json::Value::Null);
    let (name, set_name) = signal(String::new());
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| {
        if name.get_untracked().is_empty() {
            let n = crate::browser::initial_name();
            let _ = presence.set_meta(serde_json::json!({ "name": n }));
            set_name.set(n);
        }
    });
    // The element is kept in step with the document by the hook (no `prop:value`: a reactive
    // write would come a task later, and typing in between would be diffed against stale text).
    let area = NodeRef::<leptos::html::Textarea>::new();
    text.bind_textarea(area);
    let on_input = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        let _ = text.replace_all(&value);
    };
    let status = connection.status;
    view! {
        <main id="editor">
            <header>
                <h1>"tidings editor"</h1>
                <span id="status" class="status">{move || status.get().label()}</span>
                <span id="synced" data-synced=move || text.synced.get().to_string()>
                    {move || if text.synced.get() { "synced" } else { "syncing" }}
                </span>
                <span id="me" data-name=move || name.get()>{move || name.get()}</span>
            </header>
            <ul id="present">
                {move || {
                    presence
                        .members
                        .get()
                        .into_iter()
                        .map(|(key, metas)| {
                            let who = metas
                                .iter()
                                .find_map(|m| m.get("name").and_then(|n| n.as_str()))
                                .unwrap_or("…")
                                .to_owned();
                            let label = who.clone();
                            view! { <li data-member=key data-name=who>{label}</li> }
                        })
                        .collect_view()
                }}
            </ul>
            <textarea
                id="text"
                rows="16"
                cols="80"
                spellcheck="false"
                node_ref=area
                on:input=on_input
            ></textarea>
            <ul id="errors">
                {move || {
                    text.errors
                        .get()
                        .into_iter()
                        .map(|e| view! { <li class="notice">{e}</li> })
                        .collect_view()
                }}
            </ul>
        </main>
    }
}
