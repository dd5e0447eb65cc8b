//! The chat's RPC reference in docs/rpc-schema/ (JSON Schema and Markdown) is what the `#[tidings::rpc]` trait `Chat` generates today; `TIDINGS_BLESS=1` rewrites it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use tidings_examples::ChatApi;

#[test]
fn the_rpc_reference_in_docs_is_current() {
    let schema = ChatApi::schema();
    let json = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    let md = tidings::rpc::schema::markdown(&schema);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/rpc-schema");
    let files = [("chat.json", json), ("chat.md", md)];
    if std::env::var("TIDINGS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    for (name, text) in &files {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == *text,
            "docs/rpc-schema/{name} is out of date with the `Chat` trait (examples/src/lib.rs): \
             run `TIDINGS_BLESS=1 cargo test -p tidings-examples --test rpc_docs`"
        );
    }
}
