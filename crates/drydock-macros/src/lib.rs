//! `#[drydock::test]`: an async test with its dependencies injected. Use it through the
//! `drydock` crate, which re-exports it; see `drydock::test` for the documentation.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::{
    parse::Parser, parse_macro_input, punctuated::Punctuated, spanned::Spanned, Error, FnArg,
    ItemFn, Meta, Pat, ReturnType, Token, Type,
};

/// Marks an async function as a test that gets a slice of a drydock environment, or typed
/// pieces of it, as arguments. See `drydock::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = match Punctuated::<Meta, Token![,]>::parse_terminated.parse(args) {
        Ok(options) => options,
        Err(e) => return e.to_compile_error().into(),
    };
    let function = parse_macro_input!(item as ItemFn);
    match expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Where the test's environment comes from.
enum Source {
    /// `Env::builder()` with a default service for each argument that needs one.
    Inferred,
    /// `env = path`: a function returning the `EnvBuilder`.
    Function(syn::Path),
}

fn expand(
    options: Punctuated<Meta, Token![,]>,
    function: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut source = Source::Inferred;
    for option in options {
        match option {
            Meta::NameValue(pair) if pair.path.is_ident("env") => match pair.value {
                syn::Expr::Path(path) => source = Source::Function(path.path),
                other => {
                    return Err(Error::new(
                        other.span(),
                        "`env` takes the path of a function returning the environment's \
                         `drydock::EnvBuilder`: `#[drydock::test(env = my_env)]`",
                    ))
                }
            },
            other => {
                return Err(Error::new(
                    other.span(),
                    "unknown option of #[drydock::test]: the one option is \
                     `env = path::to::function` (a `fn() -> drydock::EnvBuilder`); without it, \
                     the services come from the arguments' types",
                ))
            }
        }
    }

    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "#[drydock::test] needs an `async fn`: the environment is attached asynchronously",
        ));
    }
    if let Some(generic) = sig.generics.params.first() {
        return Err(Error::new(
            generic.span(),
            "#[drydock::test] functions cannot be generic: the test runner calls them with no \
             type arguments",
        ));
    }
    if attrs.iter().any(|a| a.path().is_ident("test")) {
        return Err(Error::new(
            Span::call_site(),
            "#[drydock::test] already makes the function a test: remove the extra `#[test]`",
        ));
    }

    let slice = quote!(__drydock_slice);
    let mut requirements = Vec::new();
    let mut bindings = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(argument) = input else {
            return Err(Error::new(
                input.span(),
                "a test has no `self`: #[drydock::test] goes on a free function",
            ));
        };
        if !matches!(&*argument.pat, Pat::Ident(_) | Pat::Wild(_)) {
            return Err(Error::new(
                argument.pat.span(),
                "name each argument of a #[drydock::test] with an identifier (`pool: PgPool`): \
                 patterns are not supported",
            ));
        }
        let (pattern, ty) = (&argument.pat, &argument.ty);
        match &**ty {
            // A borrowed argument is the slice itself (`slice: &drydock::Slice`).
            Type::Reference(_) => bindings.push(quote_spanned! {ty.span()=>
                let #pattern: #ty = #slice;
            }),
            _ => {
                requirements.push(quote_spanned! {ty.span()=>
                    let builder = <#ty as ::drydock::harness::Inject>::require(builder);
                });
                bindings.push(quote_spanned! {ty.span()=>
                    let #pattern: #ty = ::drydock::harness::inject::<#ty>(#slice).await;
                });
            }
        }
    }

    let builder = match source {
        Source::Inferred => quote!(::drydock::Env::builder()),
        Source::Function(path) => quote!(#path()),
    };
    let name = &sig.ident;
    let output = &sig.output;
    let body_type = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    Ok(quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            ::drydock::harness::run_test(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                || {
                    let builder: ::drydock::EnvBuilder = #builder;
                    #(#requirements)*
                    builder
                },
                async move |#slice: &::drydock::Slice| -> #body_type {
                    #(#bindings)*
                    #block
                },
            )
        }
    })
}
