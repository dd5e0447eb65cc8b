//! The code samples of the tidings guide: one module per chapter, each sample between `// ANCHOR: name` and `// ANCHOR_END: name` lines that the book includes.
//!
//! Nothing here is an API of its own: the functions are what a reader would write, compiled so
//! the guide cannot drift from the crates.

pub mod delivery;
pub mod getting_started;
pub mod leptos_hooks;
pub mod migration;
pub mod operations;
pub mod presence_sync;
pub mod rpc;
pub mod scaling;
pub mod security;
pub mod transports;
