//! Off wasm32 `use_presence` and `use_synced` are inert like the other hooks: no member, empty text, not synced, edits and metas refused as inert.

use leptos::prelude::{GetUntracked, Owner};
use tidings_leptos::{SyncedError, use_connection, use_presence, use_synced};

#[test]
fn presence_and_synced_text_are_inert_under_ssr() {
    let owner = Owner::new();
    owner.with(|| {
        let connection = use_connection("ws://server-side-rendering.invalid/ws");
        let presence = use_presence(
            connection,
            "room:editor",
            serde_json::json!({"name": "ann"}),
        );
        assert!(presence.members.get_untracked().is_empty());
        let err = presence
            .set_meta(serde_json::json!({"name": "bob"}))
            .expect_err("inert");
        assert!(err.is_inert(), "{err}");
        let text = use_synced(connection, "editor", "t");
        assert_eq!(text.text.get_untracked(), "");
        assert!(!text.synced.get_untracked());
        assert!(matches!(text.insert(0, "x"), Err(SyncedError::Inert)));
        assert!(matches!(text.replace_all("abc"), Err(SyncedError::Inert)));
        assert_eq!(text.text.get_untracked(), "", "nothing was edited");
    });
    owner.cleanup();
}
