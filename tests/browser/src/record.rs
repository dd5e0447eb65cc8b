//! A `ClientEvent` as a plain JavaScript object, the form the Node driver reads.

use js_sys::{Object, Reflect};
use tidings::core::ClientEvent;
use wasm_bindgen::JsValue;

/// One recorded event: `{ kind, at, ...fields }`, `at` in milliseconds since the epoch.
pub(crate) fn event(e: &ClientEvent) -> JsValue {
    let o = Object::new();
    let set = |key: &str, value: JsValue| {
        // `Reflect.set` fails only on frozen objects or throwing setters; a new object has neither.
        let _ = Reflect::set(&o, &key.into(), &value);
    };
    set("at", js_sys::Date::now().into());
    let num = |n: u64| JsValue::from_f64(n as f64);
    match e {
        ClientEvent::Connected { session, resumed } => {
            set("kind", "connected".into());
            set("session", session.0.as_str().into());
            set("resumed", (*resumed).into());
        }
        ClientEvent::Disconnected { reason, retry_in } => {
            set("kind", "disconnected".into());
            set("reason", reason.as_str().into());
            set("retryInMs", num(retry_in.as_millis() as u64));
        }
        ClientEvent::Message(m) => {
            set("kind", "message".into());
            set("channel", m.channel.as_str().into());
            set("seq", num(m.seq));
            set("id", m.id.0.to_string().into());
            set(
                "payload",
                String::from_utf8_lossy(&m.payload).as_ref().into(),
            );
        }
        ClientEvent::Gap(g) => {
            set("kind", "gap".into());
            set("channel", g.channel.as_str().into());
            set("from", num(g.from));
            set("to", num(g.to));
        }
        ClientEvent::ChannelReset { channel, seen } => {
            set("kind", "reset".into());
            set("channel", channel.as_str().into());
            set("seen", num(*seen));
        }
        ClientEvent::Subscribed { channel, seq } => {
            set("kind", "subscribed".into());
            set("channel", channel.as_str().into());
            set("seq", num(*seq));
        }
        ClientEvent::PublishAcked { seq } => {
            set("kind", "publishAcked".into());
            set("seq", num(*seq));
        }
        ClientEvent::Error { code, message } => {
            set("kind", "error".into());
            set("code", format!("{code:?}").into());
            set("message", message.as_str().into());
        }
        ClientEvent::Closed { reason } => {
            set("kind", "closed".into());
            set("reason", reason.as_str().into());
        }
        // `ClientEvent` is non-exhaustive: record a later kind rather than drop it.
        other => {
            set("kind", "other".into());
            set("debug", format!("{other:?}").into());
        }
    }
    o.into()
}
