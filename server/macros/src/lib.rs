//! `#[service]`: turns an inherent impl block into an rpcx service, as Go's
//! `RegisterName("Arith", new(Arith), "")` turns a struct's exported methods into one.
//!
//! Re-exported as `ringrpc_server::service`; its documentation (the rules and an example) lives
//! there. This crate only checks signatures and writes the `IntoService` impl: every `pub` method
//! with a receiver becomes an rpcx method named in Go's exported style (`get_user` → `GetUser`,
//! `#[rpc(name = "...")]` overrides, `#[rpc(skip)]` leaves a method out); associated functions
//! without a receiver (constructors) and private methods are left alone. A plain `fn` runs
//! inline on the connection's task, an `async fn` as its own task.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, Attribute, Error, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl,
    LitStr, PathArguments, ReturnType, Type, Visibility,
};

/// See `ringrpc_server::service`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut service_name: Option<LitStr> = None;
    let attr_parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            service_name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[service] option: the only one is `name = \"Service\"`"))
        }
    });
    parse_macro_input!(attr with attr_parser);
    let mut block = parse_macro_input!(item as ItemImpl);
    match expand(service_name, &mut block) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#block #error).into()
        }
    }
}

/// One method to register.
struct RpcMethod {
    rpc_name: String,
    ident: syn::Ident,
    is_async: bool,
    takes_context: bool,
    args: Type,
    reply: Type,
    span: Span,
}

fn expand(service_name: Option<LitStr>, block: &mut ItemImpl) -> syn::Result<TokenStream2> {
    if let Some((_, path, _)) = &block.trait_ {
        return Err(Error::new(
            path.span(),
            "#[service] goes on an inherent impl block (`impl Arith { ... }`), not a trait impl",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(Error::new(
            block.generics.span(),
            "#[service] types cannot be generic: a service is registered under one name",
        ));
    }
    let self_ty = (*block.self_ty).clone();
    let name = match service_name {
        Some(name) => name.value(),
        None => type_name(&self_ty)?,
    };
    if name.is_empty() {
        return Err(Error::new(Span::call_site(), "the service name is empty"));
    }

    let mut methods = Vec::new();
    let mut errors: Option<Error> = None;
    for item in &mut block.items {
        let ImplItem::Fn(function) = item else {
            continue;
        };
        match method_of(function) {
            Ok(Some(method)) => methods.push(method),
            Ok(None) => {}
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    if methods.is_empty() {
        return Err(Error::new(
            self_ty.span(),
            format!(
                "service {name} has no rpc methods: make at least one `pub fn name(&self, ...)`"
            ),
        ));
    }

    let registrations = methods.iter().map(register);
    Ok(quote! {
        #block

        // The `map_err(Into::into)` is a no-op when the method already returns `ServiceError`.
        #[allow(clippy::useless_conversion)]
        impl ::ringrpc_server::IntoService for #self_ty {
            fn into_service(self) -> ::ringrpc_server::Service {
                let this = ::std::rc::Rc::new(self);
                let service = ::ringrpc_server::Service::new(#name);
                #(#registrations)*
                service
            }
        }
    })
}

/// The code that adds one method to `service`.
fn register(m: &RpcMethod) -> TokenStream2 {
    let RpcMethod {
        rpc_name,
        ident,
        args,
        reply,
        span,
        ..
    } = m;
    let borrows_payload = is_byte_slice(args);
    // A borrowed payload answered with borrowed bytes: the reply is raw, checked by the signature
    // of `method_borrowing_reply`.
    let borrows_reply = borrows_payload && is_byte_slice(reply);
    let check = if borrows_payload {
        quote!()
    } else {
        payload_check(args, "argument_is_a_payload")
    };
    let check_reply = if borrows_reply {
        quote!()
    } else {
        payload_check(reply, "reply_is_a_payload")
    };
    let call = if borrows_payload {
        let call_args = if m.takes_context {
            quote!(ctx, payload)
        } else {
            quote!(payload)
        };
        let register = if borrows_reply {
            quote!(method_borrowing_reply)
        } else {
            quote!(method_borrowing)
        };
        // No types on the closure's parameters: the registration's bound gives them, with the
        // higher-ranked lifetime a reply borrowing the payload needs.
        quote_spanned! {*span=>
            service.#register(#rpc_name, move |ctx, payload| {
                let _ = ctx;
                this.#ident(#call_args)
                    .map_err(::core::convert::Into::<::ringrpc_server::ServiceError>::into)
            })
        }
    } else if m.is_async {
        let call_args = if m.takes_context {
            quote!(&ctx, args)
        } else {
            quote!(args)
        };
        quote_spanned! {*span=>
            service.async_method(#rpc_name, move |ctx: ::std::rc::Rc<::ringrpc_server::Context>, args: #args| {
                let this = ::std::rc::Rc::clone(&this);
                async move {
                    let _ = &ctx;
                    this.#ident(#call_args)
                        .await
                        .map_err(::core::convert::Into::<::ringrpc_server::ServiceError>::into)
                }
            })
        }
    } else {
        let call_args = if m.takes_context {
            quote!(ctx, args)
        } else {
            quote!(args)
        };
        quote_spanned! {*span=>
            service.method(#rpc_name, move |ctx: &::ringrpc_server::Context, args: #args| -> ::core::result::Result<#reply, ::ringrpc_server::ServiceError> {
                let _ = ctx;
                this.#ident(#call_args)
                    .map_err(::core::convert::Into::<::ringrpc_server::ServiceError>::into)
            })
        }
    };
    quote! {
        #check
        #check_reply
        let service = {
            let this = ::std::rc::Rc::clone(&this);
            #call
        };
    }
}

/// A check that `ty` is a `Payload`, spanned on `ty` so that the compile error points at it and
/// names the rule (`check`, the checking function's name).
fn payload_check(ty: &Type, check: &str) -> TokenStream2 {
    let check = syn::Ident::new(check, ty.span());
    quote_spanned! {ty.span()=>
        {
            fn #check<T: ::ringrpc_server::Payload>() {}
            #check::<#ty>();
        }
    }
}

/// What `#[rpc(...)]` on a method says.
#[derive(Default)]
struct RpcOptions {
    name: Option<LitStr>,
    skip: bool,
    present: bool,
}

/// Takes the `#[rpc(...)]` attributes off a method and reads them.
fn take_options(attrs: &mut Vec<Attribute>) -> syn::Result<RpcOptions> {
    let mut options = RpcOptions::default();
    let mut result = Ok(());
    attrs.retain(|attr| {
        if !attr.path().is_ident("rpc") {
            return true;
        }
        options.present = true;
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                options.name = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("skip") {
                options.skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown #[rpc] option: use `name = \"Method\"` or `skip`"))
            }
        });
        if let Err(e) = parsed {
            result = Err(e);
        }
        false
    });
    result.map(|()| options)
}

/// The rpc method a function stands for, `None` if it is not one, or why its signature is wrong.
fn method_of(function: &mut ImplItemFn) -> syn::Result<Option<RpcMethod>> {
    let options = take_options(&mut function.attrs)?;
    let sig = &function.sig;
    let has_receiver = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    let is_pub = matches!(function.vis, Visibility::Public(_));
    if options.skip {
        return Ok(None);
    }
    if !has_receiver || !is_pub {
        if options.present {
            return Err(Error::new(
                sig.ident.span(),
                "#[rpc] is for rpc methods: `pub fn name(&self, ...)`",
            ));
        }
        return Ok(None);
    }
    let span = sig.span();
    let wrong = |span: Span, what: &str| {
        Err(Error::new(
            span,
            format!(
                "rpc method `{}`: {what}; the shape is `pub fn {}(&self, ctx: &Context, args: Args) -> Result<Reply, ServiceError>` (`async fn` too; `ctx` may be left out); `#[rpc(skip)]` leaves a method out",
                sig.ident, sig.ident
            ),
        ))
    };
    // Lifetimes are allowed: a method borrowing its payload names the one its reply borrows.
    if sig
        .generics
        .params
        .iter()
        .any(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
    {
        return wrong(sig.generics.span(), "generic methods cannot be rpc methods");
    }
    let Some(FnArg::Receiver(receiver)) = sig.inputs.first() else {
        unreachable!("checked above");
    };
    if receiver.reference.is_none() || receiver.mutability.is_some() {
        return wrong(
            receiver.span(),
            "take `&self` (per-core state that changes goes in a Cell or RefCell)",
        );
    }
    let typed: Vec<&Type> = sig
        .inputs
        .iter()
        .skip(1)
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(&*pat.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let (takes_context, args) = match typed.as_slice() {
        [args] => (false, *args),
        [ctx, args] => {
            if !is_context_ref(ctx) {
                return wrong(
                    ctx.span(),
                    "the first argument after `&self` is `ctx: &Context`",
                );
            }
            (true, *args)
        }
        [] => return wrong(sig.inputs.span(), "it takes no arguments value"),
        _ => return wrong(sig.inputs.span(), "too many arguments"),
    };
    let borrows_payload = is_byte_slice(args);
    if borrows_payload && sig.asyncness.is_some() {
        return wrong(
            args.span(),
            "an async method outlives the receive buffer: take the payload as `Bytes`, not `&[u8]`",
        );
    }
    if matches!(args, Type::Reference(_)) && !borrows_payload {
        return wrong(
            args.span(),
            "arguments are decoded from the payload into an owned value: take `Args`, not `&Args` (only the raw payload can be borrowed, as `&[u8]`)",
        );
    }
    let ReturnType::Type(_, output) = &sig.output else {
        return wrong(
            sig.ident.span(),
            "it must return `Result<Reply, ServiceError>`",
        );
    };
    let Some(reply) = result_ok_type(output) else {
        return wrong(
            output.span(),
            "it must return `Result<Reply, ServiceError>`",
        );
    };
    let rpc_name = match options.name {
        Some(name) if name.value().is_empty() => {
            return Err(Error::new(
                name.span(),
                "an rpc method name cannot be empty",
            ))
        }
        Some(name) => name.value(),
        None => go_name(&sig.ident.to_string()),
    };
    Ok(Some(RpcMethod {
        rpc_name,
        ident: sig.ident.clone(),
        is_async: sig.asyncness.is_some(),
        takes_context,
        args: args.clone(),
        reply,
        span,
    }))
}

/// What `ty` refers to, if it is a shared reference (`&T`, any lifetime).
fn shared_referent(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
        _ => None,
    }
}

/// `&[u8]`: the raw payload, borrowed.
fn is_byte_slice(ty: &Type) -> bool {
    matches!(shared_referent(ty), Some(Type::Slice(slice))
        if matches!(&*slice.elem, Type::Path(path) if path.path.is_ident("u8")))
}

/// `&Context` (any path ending in `Context`).
fn is_context_ref(ty: &Type) -> bool {
    matches!(shared_referent(ty), Some(Type::Path(path))
        if path.path.segments.last().is_some_and(|s| s.ident == "Context"))
}

/// `R` of `Result<R, E>`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if args.args.len() != 2 {
        return None;
    }
    match args.args.first()? {
        GenericArgument::Type(ok) => Some(ok.clone()),
        _ => None,
    }
}

/// The last segment of the implementing type: the default service name, as Go's `Register` takes
/// the type's name.
fn type_name(ty: &Type) -> syn::Result<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => Ok(path
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default()),
        other => Err(Error::new(
            other.span(),
            "#[service] needs a named type, or a name: #[service(name = \"Arith\")]",
        )),
    }
}

/// Go's exported name for a Rust method name: `mul` → `Mul`, `get_user` → `GetUser`.
fn go_name(rust_name: &str) -> String {
    let rust_name = rust_name.strip_prefix("r#").unwrap_or(rust_name);
    rust_name
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::go_name;

    #[test]
    fn go_names() {
        assert_eq!(go_name("mul"), "Mul");
        assert_eq!(go_name("get_user"), "GetUser");
        assert_eq!(go_name("say_hello_2"), "SayHello2");
        assert_eq!(go_name("r#type"), "Type");
        assert_eq!(go_name("alreadyCamel"), "AlreadyCamel");
    }
}
