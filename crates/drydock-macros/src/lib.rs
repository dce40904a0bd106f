//! `#[drydock::test]`: an async test with its dependencies injected. Use it through the
//! `drydock` crate, which re-exports it; see `drydock::test` for the documentation.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::{
    parse::Parser, parse_macro_input, punctuated::Punctuated, spanned::Spanned, Error, FnArg,
    ItemFn, Meta, Pat, ReturnType, Token, Type,
};

/// An async test with its dependencies as arguments: it attaches to a drydock environment,
/// gives the test its own slice of it (or typed pieces of the slice), and when the test fails
/// prints what the dependencies saw (see `drydock::harness::explain`).
///
/// ```no_run
/// use drydock::{redis::aio::ConnectionManager, sqlx::PgPool, Env, EnvBuilder, Postgres, Slice};
///
/// // The arguments' types bring their services: PostgreSQL and Redis, defaults.
/// #[drydock::test]
/// async fn stores_and_caches(pool: PgPool, redis: ConnectionManager) -> drydock::TestResult {
///     sqlx::query("CREATE TABLE orders (id int)").execute(&pool).await?;
///     Ok(())
/// }
///
/// // Or an environment of your own, and the slice itself.
/// fn shop() -> EnvBuilder {
///     Env::builder().with_postgres(Postgres::default().migrations("migrations"))
/// }
///
/// #[drydock::test(env = shop)]
/// #[ignore = "slow"] // other attributes work as with #[tokio::test]
/// async fn sees_the_whole_slice(slice: &Slice) {
///     assert!(slice.vars().contains_key("DATABASE_URL"));
/// }
/// ```
///
/// - Arguments: `&drydock::Slice`, or any type implementing `drydock::harness::Inject`
///   (`PgPool`, `PostgresDb`, a Redis `ConnectionManager`, `RedisDb`, `KafkaSlice`,
///   `StubEndpoint`, the variables as a `HashMap<String, String>`, your own types).
/// - `env = path`: a `fn() -> drydock::EnvBuilder`. Without it, each argument's type adds the
///   default service it needs.
/// - The test runs on a current-thread tokio runtime of its own, as `#[tokio::test]`'s do;
///   names, filters, `#[ignore]`, `#[should_panic]` and `-> Result<(), E>` behave as with it,
///   under `cargo test` and `cargo nextest run`.
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
    let mut checks = Vec::new();
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
                // Checked outside the test too: `#[test]` functions are compiled only for
                // tests, and an argument that cannot be injected is a mistake in any build.
                checks.push(quote_spanned! {ty.span()=>
                    ::drydock::harness::assert_injectable::<#ty>();
                });
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
    let checks = (!checks.is_empty()).then(|| {
        quote! {
            const _: fn() = || {
                #(#checks)*
            };
        }
    });
    Ok(quote! {
        #checks

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
