//! The code an RPC trait expands to: the server trait with `into_router`, the typed client and the `{Trait}Api` descriptor with its schema.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use crate::model::{Arg, Kind, Method, Service};

pub(crate) fn expand(s: &Service) -> TokenStream {
    let server = server(s);
    let client = client(s);
    let api = api(s);
    quote! {
        #server
        #client
        #api
    }
}

fn doc_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("doc"))
}

/// Bindings of the params on the server: a pattern and its type.
fn params_pattern(m: &Method) -> TokenStream {
    let ty = m.params_type();
    match m.params.len() {
        0 => quote!((): #ty),
        1 => quote!(__p0: #ty),
        n => {
            let names = (0..n).map(|i| format_ident!("__p{i}"));
            quote!((#(#names,)*): #ty)
        }
    }
}

/// The arguments of the trait method, in the order written.
fn call_args(m: &Method) -> Vec<TokenStream> {
    m.args
        .iter()
        .map(|a| match a {
            Arg::Param(i) => {
                let p = format_ident!("__p{i}");
                quote!(#p)
            }
            Arg::Context => quote!(::core::clone::Clone::clone(&__ctx)),
            Arg::Inbound => quote!(__inbound),
        })
        .collect()
}

fn server(s: &Service) -> TokenStream {
    let k = &s.krate;
    let attrs = &s.attrs;
    let vis = &s.vis;
    let ident = &s.ident;
    let supertraits = &s.supertraits;
    let sigs = s.methods.iter().map(|m| {
        let attrs = &m.attrs;
        let name = &m.ident;
        let inputs = &m.inputs;
        let written = &m.written;
        let span = m.span;
        match m.kind {
            Kind::Unary => quote_spanned! {span=>
                #(#attrs)*
                fn #name(&self, #(#inputs),*)
                    -> impl ::core::future::Future<Output = #written> + ::core::marker::Send;
            },
            Kind::ServerStream | Kind::Bidi => quote_spanned! {span=>
                #(#attrs)*
                fn #name(&self, #(#inputs),*)
                    -> impl #k::__private::Stream<Item = #written> + ::core::marker::Send + 'static + use<Self>;
            },
        }
    });
    let routes = s.methods.iter().map(|m| route(k, m));
    let namespace = &s.namespace;
    let router_doc = format!(
        "Serves this implementation's methods (`{namespace}.*`) as a `Router`: \
         `hub.set_rpc(Arc::new(RpcServer::new(service.into_router())))`, \
         or merged into a larger router and wrapped in layers."
    );
    quote! {
        #k::__if_server! {
            #(#attrs)*
            #vis trait #ident: #(#supertraits +)* ::core::marker::Send + ::core::marker::Sync + 'static {
                #(#sigs)*

                #[doc = #router_doc]
                fn into_router(self) -> #k::server::Router
                where
                    Self: ::core::marker::Sized,
                {
                    let __svc = #k::__private::Arc::new(self);
                    let __router = #k::server::Router::new();
                    #(#routes)*
                    __router
                }
            }
        }
    }
}

fn route(k: &syn::Path, m: &Method) -> TokenStream {
    let wire = &m.wire_name;
    let name = &m.ident;
    let pattern = params_pattern(m);
    let args = call_args(m);
    let span = m.span;
    match m.kind {
        Kind::Unary => {
            let map = match (&m.error, m.error_is_rpc) {
                (None, _) => quote!(::core::result::Result::Ok::<_, #k::RpcError>(__r)),
                (Some(_), true) => quote!(__r),
                (Some(_), false) => quote!(__r.map_err(|__e| #k::RpcError::application(&__e))),
            };
            quote_spanned! {span=>
                let __router = {
                    let __svc = ::core::clone::Clone::clone(&__svc);
                    __router.unary(#wire, move |__ctx: #k::server::CallContext, #pattern| {
                        let __svc = ::core::clone::Clone::clone(&__svc);
                        async move {
                            let _ = &__ctx;
                            let __r = Self::#name(&*__svc, #(#args),*).await;
                            #map
                        }
                    })
                };
            }
        }
        Kind::ServerStream | Kind::Bidi => {
            let wrap = match (&m.error, m.error_is_rpc) {
                (None, _) => quote!(#k::__private::ok_items(__items)),
                (Some(_), true) => quote!(__items),
                (Some(_), false) => quote!(#k::__private::app_items(__items)),
            };
            let (register, inbound_arg) = if m.kind == Kind::Bidi {
                let item = m.inbound.as_ref();
                (
                    quote!(bidi),
                    quote!(, __inbound: #k::server::Inbound<#item>),
                )
            } else {
                (quote!(stream), quote!())
            };
            quote_spanned! {span=>
                let __router = {
                    let __svc = ::core::clone::Clone::clone(&__svc);
                    __router.#register(#wire, move |__ctx: #k::server::CallContext, #pattern #inbound_arg| {
                        let _ = &__ctx;
                        let __items = Self::#name(&*__svc, #(#args),*);
                        #wrap
                    })
                };
            }
        }
    }
}

/// How the client sends the params: `&()`, `&p`, or a tuple of references.
fn client_params(m: &Method) -> TokenStream {
    let names: Vec<_> = m.params.iter().map(|p| &p.ident).collect();
    match &names[..] {
        [] => quote!(&()),
        [one] => quote!(&#one),
        many => quote!(&(#(&#many,)*)),
    }
}

fn client(s: &Service) -> TokenStream {
    let k = &s.krate;
    let vis = &s.vis;
    let client = format_ident!("{}Client", s.ident);
    let doc = format!(
        "The typed client of [`{}`]'s methods (`{}.*`) over an `RpcClient`; cheap to clone.",
        s.ident, s.namespace
    );
    let methods = s.methods.iter().map(|m| client_method(k, m));
    quote! {
        #k::__if_client! {
            #[doc = #doc]
            #[derive(Clone, Debug)]
            #vis struct #client {
                rpc: #k::client::RpcClient,
            }

            #[allow(unreachable_pub, dead_code)]
            impl #client {
                /// Calls through `rpc` (one per connection, shared with any other client).
                pub fn new(rpc: &#k::client::RpcClient) -> Self {
                    Self { rpc: ::core::clone::Clone::clone(rpc) }
                }

                /// The untyped client underneath.
                pub fn rpc(&self) -> &#k::client::RpcClient {
                    &self.rpc
                }

                #(#methods)*
            }
        }
    }
}

fn client_method(k: &syn::Path, m: &Method) -> TokenStream {
    let wire = &m.wire_name;
    let name = &m.ident;
    let with = format_ident!("{}_with", m.ident);
    let docs: Vec<_> = doc_attrs(&m.attrs).collect();
    let summary = format!("Calls `{wire}`.");
    let with_doc = format!("[`Self::{name}`] with call options (deadline, stream credit).");
    let params: Vec<_> = m
        .params
        .iter()
        .map(|p| {
            let (i, t) = (&p.ident, &p.ty);
            quote!(#i: #t)
        })
        .collect();
    let names: Vec<_> = m.params.iter().map(|p| &p.ident).collect();
    let sent = client_params(m);
    let out = &m.output;
    let span = m.span;
    match m.kind {
        Kind::Unary => {
            let (ret, map) = match (&m.error, m.error_is_rpc) {
                (Some(e), false) => (
                    quote!(::core::result::Result<#out, #k::CallError<#e>>),
                    quote!(.map_err(#k::CallError::from_rpc)),
                ),
                _ => (quote!(::core::result::Result<#out, #k::RpcError>), quote!()),
            };
            quote_spanned! {span=>
                #[doc = #summary]
                #(#docs)*
                pub async fn #name(&self, #(#params),*) -> #ret {
                    self.#with(::core::default::Default::default(), #(#names),*).await
                }

                #[doc = #with_doc]
                pub async fn #with(&self, opts: #k::client::CallOptions, #(#params),*) -> #ret {
                    self.rpc.call_with::<_, #out>(#wire, #sent, opts).await #map
                }
            }
        }
        Kind::ServerStream => quote_spanned! {span=>
            #[doc = #summary]
            #(#docs)*
            pub fn #name(&self, #(#params),*)
                -> ::core::result::Result<#k::client::RpcStream<#out>, #k::RpcError>
            {
                self.#with(::core::default::Default::default(), #(#names),*)
            }

            #[doc = #with_doc]
            pub fn #with(&self, opts: #k::client::CallOptions, #(#params),*)
                -> ::core::result::Result<#k::client::RpcStream<#out>, #k::RpcError>
            {
                self.rpc.server_stream::<_, #out>(#wire, #sent, opts)
            }
        },
        Kind::Bidi => {
            let input = m.inbound.as_ref();
            quote_spanned! {span=>
                #[doc = #summary]
                #(#docs)*
                pub fn #name(&self, #(#params),*)
                    -> ::core::result::Result<(#k::client::RpcSink<#input>, #k::client::RpcStream<#out>), #k::RpcError>
                {
                    self.#with(::core::default::Default::default(), #(#names),*)
                }

                #[doc = #with_doc]
                pub fn #with(&self, opts: #k::client::CallOptions, #(#params),*)
                    -> ::core::result::Result<(#k::client::RpcSink<#input>, #k::client::RpcStream<#out>), #k::RpcError>
                {
                    self.rpc.bidi_stream::<_, #input, #out>(#wire, #sent, opts)
                }
            }
        }
    }
}

fn api(s: &Service) -> TokenStream {
    let k = &s.krate;
    let vis = &s.vis;
    let api = format_ident!("{}Api", s.ident);
    let namespace = &s.namespace;
    let trait_name = s.ident.to_string();
    let service_docs = &s.docs;
    let doc = format!(
        "The wire description of [`{}`]: namespace, methods and (feature `schema`) their JSON Schema.",
        s.ident
    );
    let methods = s.methods.iter().map(|m| {
        let wire = &m.wire_name;
        let kind = format_ident!("{}", m.kind.variant());
        quote!((#wire, #k::MethodKind::#kind))
    });
    let entries = s.methods.iter().map(|m| {
        let wire = &m.wire_name;
        let kind = format_ident!("{}", m.kind.variant());
        let docs = &m.docs;
        let params = m.params_type();
        let names = m.params.iter().map(|p| p.ident.to_string());
        let out = &m.output;
        let error = m
            .error
            .as_ref()
            .filter(|_| !m.error_is_rpc)
            .map(|e| quote!(__b.error::<#e>();));
        let input = m.inbound.as_ref().map(|i| quote!(__b.input::<#i>();));
        quote! {
            __b.method::<#params, #out>(#wire, #k::MethodKind::#kind, #docs, &[#(#names),*]);
            #error
            #input
        }
    });
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #api;

        #[allow(unreachable_pub, dead_code)]
        impl #api {
            /// The prefix of every method name (`namespace.method`).
            pub const NAMESPACE: &'static str = #namespace;
            /// Every method's wire name and kind.
            pub const METHODS: &'static [(&'static str, #k::MethodKind)] = &[#(#methods),*];

            #k::__if_schema! {
                /// The JSON Schema (2020-12) of every method's params, result or items, and
                /// error, with the types under `$defs` (see `tidings_rpc::schema`).
                pub fn schema() -> #k::__private::serde_json::Value {
                    let mut __b = #k::schema::SchemaBuilder::new(#trait_name, #namespace, #service_docs);
                    #(#entries)*
                    __b.finish()
                }
            }
        }
    }
}
