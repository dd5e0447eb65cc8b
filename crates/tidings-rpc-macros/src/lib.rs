//! `#[tidings::rpc]`: from one trait, the server trait and its routing into `tidings_rpc::server::Router`, the typed client (native and wasm32) and a JSON Schema of the methods.
//!
//! ```ignore
//! #[tidings::rpc(namespace = "chat")]
//! pub trait Chat {
//!     /// Sends a message; the server's acknowledgement.
//!     async fn send(&self, m: Msg) -> Result<Ack, ChatError>;
//!     /// The messages of a room, oldest first.
//!     fn history(&self, room: Room) -> impl Stream<Item = Msg>;
//! }
//! ```
//!
//! generates
//!
//! * `trait Chat: Send + Sync + 'static` with `fn send(&self, m: Msg) -> impl Future<Output =
//!   Result<Ack, ChatError>> + Send` and `fn history(&self, room: Room) -> impl Stream<Item =
//!   Msg> + Send + 'static + use<Self>`, and the provided `fn into_router(self) -> Router`
//!   serving `chat.send` and `chat.history` (tidings-rpc feature `server`). Implement a call
//!   with `async fn send(&self, m: Msg) -> Result<Ack, ChatError>`, a stream with `fn
//!   history(&self, room: Room) -> impl Stream<Item = Msg> + Send + use<>`: a stream outlives
//!   the call that made it, so it owns what it needs (clone it out of `self`) and says so
//!   with `use<>`;
//! * `ChatClient::new(&rpc_client)` with `async fn send(&self, m: Msg) -> Result<Ack,
//!   CallError<ChatError>>` and `fn history(&self, room: Room) -> Result<RpcStream<Msg>,
//!   RpcError>` (feature `client`);
//! * `ChatApi::NAMESPACE`, `ChatApi::METHODS` and `ChatApi::schema()`: the JSON Schema of
//!   every method (feature `schema`; the types derive `schemars::JsonSchema`).
//!
//! Methods: `async fn` is a unary call (`-> T`, or `-> Result<T, E>` with `E` a typed
//! application error — `Serialize + Display` on the server, `Deserialize` on the client — or
//! `RpcError` itself); `fn .. -> impl Stream<Item = T>` (or `Item = Result<T, E>`) a server
//! stream; a stream method with a parameter of type `Inbound<I>` a bidirectional stream. A
//! parameter of type `CallContext` receives the call's context on the server and is not sent.
//! Params are JSON: the one parameter itself, `null` for none, an array for several.
//!
//! Why these dependencies: syn (`full`: trait items), quote and proc-macro2, nothing else.
//! The generated code names the runtime crate by path (`::tidings_rpc`, or `::tidings::rpc`
//! through the facade; `#[rpc(crate = path)]` for a renamed dependency) and compiles each part
//! only when that crate has the feature, through its `__if_*!` macros.

mod expand;
mod model;

use proc_macro::TokenStream;

/// Generates the server trait, its router, the typed client and the schema of an RPC trait
/// (see the crate docs). Arguments: `namespace = "name"` (method prefix; default: the trait
/// name in snake case), `crate = path` (default `::tidings_rpc`).
#[proc_macro_attribute]
pub fn rpc(args: TokenStream, item: TokenStream) -> TokenStream {
    run(args, item, syn::parse_quote!(::tidings_rpc))
}

/// [`rpc`] as the facade re-exports it: the generated code names `::tidings::rpc`.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn rpc_via_facade(args: TokenStream, item: TokenStream) -> TokenStream {
    run(args, item, syn::parse_quote!(::tidings::rpc))
}

fn run(args: TokenStream, item: TokenStream, default_crate: syn::Path) -> TokenStream {
    let result = model::Args::parse(args.into(), default_crate).and_then(|args| {
        let item: syn::ItemTrait = syn::parse(item)?;
        let service = model::Service::from_trait(&item, args)?;
        Ok(expand::expand(&service))
    });
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
