//! What `#[drydock::test]` expands to: a runtime, a slice, the test, and on failure its report.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::{EnvBuilder, Slice};

/// Whether a test's return value is a failure: `()` never is; a `Result` is when it is `Err`.
pub trait Outcome {
    /// True when the test failed.
    fn is_failure(&self) -> bool;
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

/// Runs `test` with a slice of the environment `spec` describes, on a runtime of its own (as
/// `#[tokio::test]` does). When the test fails — it panics or returns `Err` — its report
/// ([`explain`](super::explain)) is printed first, so that it appears with the test's output;
/// a panic then goes on unwinding (`#[should_panic]` sees it).
///
/// This is what `#[drydock::test]` calls; call it yourself only from a harness of your own.
///
/// ```no_run
/// use drydock::{harness::run_test, Env, Postgres};
///
/// #[test]
/// fn counts_users() {
///     run_test(
///         "counts_users",
///         || Env::builder().with_postgres(Postgres::default()),
///         async |slice: &drydock::Slice| {
///             let pool = slice.postgres().unwrap().pool().await.unwrap();
///             let (n,): (i64,) = sqlx::query_as("SELECT 1").fetch_one(&pool).await.unwrap();
///             assert_eq!(n, 1);
///         },
///     )
/// }
/// ```
pub fn run_test<R: Outcome>(
    name: &str,
    spec: impl FnOnce() -> EnvBuilder,
    test: impl AsyncFnOnce(&Slice) -> R,
) -> R {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("drydock: test {name}: cannot start a tokio runtime: {e}"));
    runtime.block_on(async {
        let slice = spec().attach().await.unwrap_or_else(|e| {
            panic!("drydock: test {name}: its environment could not be attached:\n{e}")
        });
        let outcome = AssertUnwindSafe(test(&slice)).catch_unwind().await;
        let failed = outcome.as_ref().map_or(true, Outcome::is_failure);
        if failed {
            eprintln!("{}", super::explain(&slice, slice.cut_at()).await);
            slice.mark_explained();
            if let Some(kept) = slice.keep_if_asked(name) {
                eprintln!("{kept}");
            }
        }
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
