//! Leptos: the `tidings::leptos` hooks in a component (they connect in the browser build and are inert when the server renders the page).

use leptos::prelude::*;
use tidings::leptos::{use_channel, use_connection};

// ANCHOR: component
/// A room: its messages as a signal, a status line, and a button that publishes.
#[component]
pub fn Room() -> impl IntoView {
    let connection = use_connection("ws://127.0.0.1:3000/ws");
    let room = use_channel(connection, "room:lobby");
    let status = connection.status;
    let say = move |_| {
        // Queued while disconnected, delivered exactly once.
        let _ = room.publish(r#"{"text":"hello"}"#);
    };
    view! {
        <p>"status: " {move || status.get().label()}</p>
        <p>{move || room.messages.with(|m| m.len())} " messages"</p>
        <button on:click=say>"Say hello"</button>
    }
}
// ANCHOR_END: component
