//! What an RPC trait says, read from its syntax: the service, its methods, their kind, parameters, result, items and error.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, FnArg, GenericArgument, Ident, ItemTrait, LitStr, Pat, Path, PathArguments,
    ReturnType, TraitItem, Type, TypeParamBound, Visibility,
};

/// The attribute's arguments.
pub(crate) struct Args {
    pub(crate) namespace: Option<String>,
    pub(crate) krate: Path,
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream, default_crate: Path) -> syn::Result<Self> {
        let mut args = Args {
            namespace: None,
            krate: default_crate,
        };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("namespace") {
                let lit: LitStr = meta.value()?.parse()?;
                let ns = lit.value();
                if ns.is_empty() || ns.contains(char::is_whitespace) {
                    return Err(meta.error("the namespace must be a non-empty word"));
                }
                args.namespace = Some(ns);
                Ok(())
            } else if meta.path.is_ident("crate") {
                args.krate = meta.value()?.parse()?;
                Ok(())
            } else {
                Err(meta.error("expected `namespace = \"..\"` or `crate = path`"))
            }
        });
        parser.parse2(tokens)?;
        Ok(args)
    }
}

/// One RPC trait.
pub(crate) struct Service {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) supertraits: Vec<TypeParamBound>,
    pub(crate) namespace: String,
    pub(crate) docs: String,
    pub(crate) krate: Path,
    pub(crate) methods: Vec<Method>,
}

/// How a method is called.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    ServerStream,
    Bidi,
}

impl Kind {
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Unary => "Unary",
            Kind::ServerStream => "ServerStream",
            Kind::Bidi => "BidiStream",
        }
    }
}

/// A parameter sent as part of the params.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// What one argument of the trait method is.
pub(crate) enum Arg {
    Param(usize),
    Context,
    Inbound,
}

/// One method.
pub(crate) struct Method {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    /// `namespace.method`.
    pub(crate) wire_name: String,
    pub(crate) docs: String,
    pub(crate) kind: Kind,
    /// The trait method's arguments in order.
    pub(crate) args: Vec<Arg>,
    /// The arguments as written (after `&self`), for the server trait.
    pub(crate) inputs: Vec<FnArg>,
    pub(crate) params: Vec<Param>,
    /// Unary: the result type; streams: the item type.
    pub(crate) output: Type,
    /// As written: unary, the return type; streams, the item type (both maybe a `Result`).
    pub(crate) written: Type,
    /// A typed error (`Result<T, E>`), if any.
    pub(crate) error: Option<Type>,
    /// True when the error is `RpcError` itself (passed through, not an application error).
    pub(crate) error_is_rpc: bool,
    /// Bidi: the type of the client's items.
    pub(crate) inbound: Option<Type>,
    pub(crate) span: Span,
}

pub(crate) fn docs(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_owned());
        }
    }
    lines.join("\n").trim().to_owned()
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The last segment of a path type, with its generic arguments.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn type_args(seg: &syn::PathSegment) -> Vec<&Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Result<T, E>` → `(T, Some(E))`; anything else → `(ty, None)`.
fn split_result(ty: &Type) -> (Type, Option<Type>) {
    if let Some(seg) = last_segment(ty)
        && seg.ident == "Result"
        && let [ok, err] = type_args(seg)[..]
    {
        return ((*ok).clone(), Some((*err).clone()));
    }
    (ty.clone(), None)
}

pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// `impl Stream<Item = X>` → `X`.
fn stream_item(ty: &Type) -> Option<Type> {
    let Type::ImplTrait(it) = ty else {
        return None;
    };
    for bound in &it.bounds {
        let TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let seg = t.path.segments.last()?;
        if seg.ident != "Stream" {
            continue;
        }
        if let PathArguments::AngleBracketed(a) = &seg.arguments {
            for arg in &a.args {
                if let GenericArgument::AssocType(at) = arg
                    && at.ident == "Item"
                {
                    return Some(at.ty.clone());
                }
            }
        }
    }
    None
}

impl Service {
    pub(crate) fn from_trait(item: &ItemTrait, args: Args) -> syn::Result<Self> {
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            return Err(Error::new(
                item.generics.span(),
                "an RPC trait cannot be generic: its methods are named on the wire",
            ));
        }
        if let Some(unsafety) = &item.unsafety {
            return Err(Error::new(unsafety.span(), "an RPC trait cannot be unsafe"));
        }
        let namespace = args
            .namespace
            .unwrap_or_else(|| snake_case(&item.ident.to_string()));
        let mut methods = Vec::new();
        for ti in &item.items {
            let TraitItem::Fn(f) = ti else {
                return Err(Error::new(
                    ti.span(),
                    "an RPC trait holds methods only (no types, consts or macros)",
                ));
            };
            methods.push(Method::from_fn(f, &namespace)?);
        }
        let mut seen = std::collections::HashSet::new();
        for m in &methods {
            if !seen.insert(m.wire_name.clone()) {
                return Err(Error::new(m.span, "two methods with one name"));
            }
        }
        Ok(Service {
            attrs: item.attrs.clone(),
            vis: item.vis.clone(),
            ident: item.ident.clone(),
            supertraits: item.supertraits.iter().cloned().collect(),
            docs: docs(&item.attrs),
            namespace,
            krate: args.krate,
            methods,
        })
    }
}

impl Method {
    fn from_fn(f: &syn::TraitItemFn, namespace: &str) -> syn::Result<Self> {
        let sig = &f.sig;
        let span = sig.ident.span();
        if f.default.is_some() {
            return Err(Error::new(
                span,
                "RPC methods have no default body: the server implements them",
            ));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            return Err(Error::new(
                sig.generics.span(),
                "RPC methods cannot be generic",
            ));
        }
        if sig.constness.is_some() || sig.unsafety.is_some() || sig.abi.is_some() {
            return Err(Error::new(span, "RPC methods are plain `fn` or `async fn`"));
        }
        let inputs_written: Vec<FnArg> = sig.inputs.iter().skip(1).cloned().collect();
        let mut inputs = sig.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
            _ => {
                return Err(Error::new(
                    span,
                    "RPC methods take `&self` first (the server shares one value among calls)",
                ));
            }
        }
        let mut args = Vec::new();
        let mut params = Vec::new();
        let mut inbound = None;
        for input in inputs {
            let FnArg::Typed(pt) = input else {
                return Err(Error::new(input.span(), "unexpected receiver"));
            };
            let ty = (*pt.ty).clone();
            if is_named(&ty, "CallContext") {
                args.push(Arg::Context);
                continue;
            }
            if let Some(seg) = last_segment(&ty)
                && seg.ident == "Inbound"
            {
                let [item] = type_args(seg)[..] else {
                    return Err(Error::new(ty.span(), "expected `Inbound<Item>`"));
                };
                if inbound.is_some() {
                    return Err(Error::new(ty.span(), "one `Inbound` per method"));
                }
                inbound = Some((*item).clone());
                args.push(Arg::Inbound);
                continue;
            }
            let ident = match &*pt.pat {
                Pat::Ident(p) => p.ident.clone(),
                other => {
                    return Err(Error::new(
                        other.span(),
                        "RPC parameters are plain names (`name: Type`)",
                    ));
                }
            };
            args.push(Arg::Param(params.len()));
            params.push(Param { ident, ty });
        }
        let ret: Type = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        let (kind, output, error, written) = if sig.asyncness.is_some() {
            if inbound.is_some() {
                return Err(Error::new(
                    span,
                    "a method with `Inbound` is a stream: `fn .. -> impl Stream<Item = T>`",
                ));
            }
            let (ok, err) = split_result(&ret);
            (Kind::Unary, ok, err, ret.clone())
        } else if let Some(item) = stream_item(&ret) {
            let (ok, err) = split_result(&item);
            let kind = if inbound.is_some() {
                Kind::Bidi
            } else {
                Kind::ServerStream
            };
            (kind, ok, err, item)
        } else {
            return Err(Error::new(
                ret.span(),
                "an RPC method is `async fn` (a call) or returns `impl Stream<Item = T>` (a stream)",
            ));
        };
        let error_is_rpc = error.as_ref().is_some_and(|e| is_named(e, "RpcError"));
        Ok(Method {
            attrs: f.attrs.clone(),
            ident: sig.ident.clone(),
            wire_name: format!("{namespace}.{}", sig.ident),
            docs: docs(&f.attrs),
            kind,
            args,
            inputs: inputs_written,
            params,
            output,
            written,
            error,
            error_is_rpc,
            inbound,
            span,
        })
    }

    /// The type params travel as: `()`, the one parameter's type, or a tuple.
    pub(crate) fn params_type(&self) -> Type {
        match &self.params[..] {
            [] => syn::parse_quote!(()),
            [one] => one.ty.clone(),
            many => {
                let tys = many.iter().map(|p| &p.ty);
                syn::parse_quote!((#(#tys,)*))
            }
        }
    }
}
