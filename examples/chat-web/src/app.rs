//! The chat's components: `App` (join/leave toggle, name), `Chat` (one connection, rooms, status) and `Room` (one channel's messages, notices and the send form).
//!
//! Every value the first render shows is the same on the server and in the hydrating browser:
//! the hooks start `Idle` and empty on both sides, the name starts empty (the browser fills it
//! in from `localStorage` in an effect, after hydration) and the room starts at `lobby`.

use leptos::prelude::*;
use tidings_leptos::{
    Channel, ChannelNotice, Connection, ConnectionStatus, use_channel, use_connection_to,
};

use crate::ROOMS;
use crate::line::Line;

/// The whole page: a header with the connection toggle, the name field and the chat.
///
/// "Leave" unmounts [`Chat`], whose `use_connection` then closes the WebSocket (`on_cleanup`);
/// "Join" mounts a fresh one.
#[component]
pub fn App() -> impl IntoView {
    let (joined, set_joined) = signal(true);
    let (name, set_name) = signal(String::new());
    // Effects run only in the browser, after hydration: the server rendered an empty name.
    Effect::new(move |_| {
        if name.get_untracked().is_empty() {
            set_name.set(crate::browser::initial_name());
        }
    });
    let rename = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        crate::browser::remember_name(&value);
        set_name.set(value);
    };
    view! {
        <main id="chat">
            <header>
                <h1>"tidings chat"</h1>
                <label class="name">
                    "Name "
                    <input
                        id="name"
                        maxlength="32"
                        autocomplete="nickname"
                        placeholder="your name"
                        prop:value=move || name.get()
                        on:input=rename
                    />
                </label>
                <button
                    id="toggle"
                    type="button"
                    on:click=move |_| set_joined.update(|j| *j = !*j)
                >
                    {move || if joined.get() { "Leave" } else { "Join" }}
                </button>
            </header>
            <Show
                when=move || joined.get()
                fallback=|| view! { <p id="left" class="notice">"You left the chat: no connection is open."</p> }
            >
                <Chat name=name />
            </Show>
        </main>
    }
}

/// One connection to the server (its `/ws`, or WebTransport with `?transport=webtransport`) for
/// as long as this component is mounted, the room list, the status and the current room.
#[component]
pub fn Chat(
    /// The name messages are sent under.
    name: ReadSignal<String>,
) -> impl IntoView {
    let connection = use_connection_to(crate::browser::endpoint());
    let (room, set_room) = signal(ROOMS[0].to_owned());
    let status = connection.status;
    view! {
        <div class="bar">
            <nav id="rooms">
                {ROOMS
                    .iter()
                    .map(|r| {
                        let r: &'static str = r;
                        view! {
                            <button
                                type="button"
                                data-room=r
                                class:active=move || room.with(|cur| cur == r)
                                on:click=move |_| set_room.set(r.to_owned())
                            >
                                {r}
                            </button>
                        }
                    })
                    .collect_view()}
            </nav>
            <span
                id="status"
                role="status"
                class=move || status.with(|s| s.label())
                title=move || status.with(describe)
            >
                {move || status.with(|s| s.label())}
            </span>
        </div>
        // A new `Room` per room: the old one's owner is cleaned up, which unsubscribes it.
        {move || {
            let room = room.get();
            view! { <Room connection=connection room=room name=name /> }
        }}
    }
}

/// A longer description of a status, for the badge's tooltip.
fn describe(status: &ConnectionStatus) -> String {
    match status {
        ConnectionStatus::Idle => "not connected yet".to_owned(),
        ConnectionStatus::Connecting => "opening the connection".to_owned(),
        ConnectionStatus::Open { resumed: true } => "session resumed: nothing was lost".to_owned(),
        ConnectionStatus::Open { .. } => "session open".to_owned(),
        ConnectionStatus::Reconnecting { reason } => format!("reconnecting ({reason})"),
        ConnectionStatus::Closed => "closed".to_owned(),
        _ => status.label().to_owned(),
    }
}

/// One room: `room:<name>` subscribed with `use_channel` while mounted.
#[component]
pub fn Room(
    /// The chat's connection (owned by [`Chat`]).
    connection: Connection,
    /// The room's name (the channel is `room:<name>`).
    room: String,
    /// The name messages are sent under.
    name: ReadSignal<String>,
) -> impl IntoView {
    let channel = use_channel(connection, &format!("room:{room}"));
    let (draft, set_draft) = signal(String::new());
    let (problem, set_problem) = signal(None::<String>);
    let send = move || {
        let text = draft.get_untracked();
        if text.trim().is_empty() {
            return;
        }
        let payload = Line::text(&name.get_untracked(), &text);
        match channel.publish(payload) {
            Ok(_) => {
                set_draft.set(String::new());
                set_problem.set(None);
            }
            Err(e) => set_problem.set(Some(format!("not sent: {e}"))),
        }
    };
    view! {
        <section class="room" data-room=room.clone()>
            <ol id="log" aria-live="polite">
                <For each=move || 0..channel.messages.with(Vec::len) key=|i| *i let:i>
                    {message(channel, name, i)}
                </For>
            </ol>
            <ul id="notices">
                <For each=move || 0..channel.notices.with(Vec::len) key=|i| *i let:i>
                    <li class="notice warn">
                        {channel.notices.with_untracked(|n| n.get(i).map(notice).unwrap_or_default())}
                    </li>
                </For>
            </ul>
            <form
                id="send"
                on:submit=move |ev: leptos::ev::SubmitEvent| {
                    ev.prevent_default();
                    send();
                }
            >
                <input
                    id="input"
                    placeholder=format!("Say something in {room}…")
                    autocomplete="off"
                    maxlength="2000"
                    prop:value=move || draft.get()
                    on:input=move |ev| set_draft.set(event_target_value(&ev))
                />
                <button id="send-button" type="submit">"Send"</button>
            </form>
            <p id="problem" class="notice warn">{move || problem.get()}</p>
        </section>
    }
}

/// The `i`-th message of `channel` as a list item (messages are only ever appended, so the
/// index is a stable key).
fn message(channel: Channel, name: ReadSignal<String>, i: usize) -> impl IntoView {
    let (seq, line) = channel
        .messages
        .with_untracked(|m| m.get(i).map(|m| (m.seq, Line::parse(&m.payload))))
        .unwrap_or((0, Line::Other(String::new())));
    match line {
        Line::Text { from, text } => {
            let mine = {
                let from = from.clone();
                move || name.with(|n| *n == from)
            };
            view! {
                <li class="msg" class:mine=mine data-seq=seq>
                    <span class="from">{from}</span>
                    <span class="text">{text}</span>
                    <span class="seq">{format!("#{seq}")}</span>
                </li>
            }
            .into_any()
        }
        Line::Join { from } => view! {
            <li class="notice" data-seq=seq>{format!("{from} joined")}</li>
        }
        .into_any(),
        Line::Other(raw) => view! {
            <li class="msg" data-seq=seq>
                <span class="from">"?"</span>
                <span class="text">{raw}</span>
            </li>
        }
        .into_any(),
    }
}

/// What a notice tells the reader.
fn notice(n: &ChannelNotice) -> String {
    match n {
        ChannelNotice::Gap { from, to } => {
            let count = to - from + 1;
            let noun = if count == 1 { "message" } else { "messages" };
            format!("{count} {noun} (#{from}–#{to}) no longer available: history was lost")
        }
        ChannelNotice::Reset { seen } => {
            format!("the room restarted after #{seen}: messages not shown here are lost")
        }
        _ => "something was lost: reload".to_owned(),
    }
}
