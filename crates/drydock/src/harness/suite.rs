//! A test binary of your own (`harness = false`) on libtest-mimic: one owned environment for
//! the whole suite, setup and teardown around it, tests in the order you give when you ask.
//!
//! It honours libtest's command line, as nextest and IDEs expect: `--list --format terse`,
//! filters, `--exact`, `--ignored`, `--include-ignored`, `--test-threads`. Listing starts
//! nothing: the environment starts when the first selected test runs. Under `cargo nextest
//! run`, every test is a process of its own, so each gets its own environment; to share one
//! between processes, attach instead ([`EnvBuilder::attach`](crate::EnvBuilder::attach)).
//!
//! ```no_run
//! // tests/suite.rs, with `[[test]] name = "suite" harness = false` in Cargo.toml
//! use drydock::{harness::Suite, Env, Postgres};
//!
//! fn main() -> std::process::ExitCode {
//!     Suite::new(|| Env::builder().with_postgres(Postgres::default()))
//!         .setup(async |env| {
//!             let pool = env.postgres()?.pool().await?;
//!             sqlx::query("CREATE TABLE seen (n int)").execute(&pool).await?;
//!             Ok(())
//!         })
//!         .test("inserts", async |env| {
//!             let pool = env.postgres()?.pool().await?;
//!             sqlx::query("INSERT INTO seen VALUES (1)").execute(&pool).await?;
//!             Ok(())
//!         })
//!         .ordered() // one at a time, in the order above
//!         .run()
//! }
//! ```

use std::{
    process::ExitCode,
    sync::{Arc, Mutex, OnceLock},
    time::SystemTime,
};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{Env, EnvBuilder, TestResult};

type Spec = Box<dyn Fn() -> EnvBuilder + Send + Sync>;
// Run with `block_on`: their futures need not be `Send`.
type Hook = Box<dyn FnOnce(&Env) -> futures::future::LocalBoxFuture<'_, TestResult> + Send>;

/// What every test of the suite shares: the runtime, and the environment once started.
struct Shared {
    runtime: tokio::runtime::Runtime,
    spec: Spec,
    setup: Mutex<Option<Hook>>,
    /// The environment, or why it could not start (every test then fails with that).
    env: OnceLock<Result<Env, String>>,
}

impl Shared {
    /// The suite's environment, started (and set up) by the first test that needs it.
    fn env(&self) -> Result<&Env, Failed> {
        let env = self.env.get_or_init(|| {
            self.runtime.block_on(async {
                let env = (self.spec)()
                    .start()
                    .await
                    .map_err(|e| format!("the suite's environment did not start:\n{e}"))?;
                let setup = self.setup.lock().map(|mut s| s.take()).unwrap_or(None);
                if let Some(setup) = setup {
                    if let Err(e) = setup(&env).await {
                        let _ = env.teardown().await;
                        return Err(format!("the suite's setup failed: {e}"));
                    }
                }
                Ok(env)
            })
        });
        env.as_ref().map_err(|e| Failed::from(e.as_str()))
    }
}

/// A suite: one environment, setup, tests, teardown. See the [module](self).
#[must_use = "a Suite does nothing until `.run()`"]
pub struct Suite {
    shared: Arc<Shared>,
    trials: Vec<Trial>,
    teardown: Option<Hook>,
    ordered: bool,
}

impl Suite {
    /// A suite whose environment `spec` describes (started when the first test runs).
    pub fn new(spec: impl Fn() -> EnvBuilder + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("drydock: the suite cannot start a tokio runtime: {e}"));
        Suite {
            shared: Arc::new(Shared {
                runtime,
                spec: Box::new(spec),
                setup: Mutex::new(None),
                env: OnceLock::new(),
            }),
            trials: Vec::new(),
            teardown: None,
            ordered: false,
        }
    }

    /// Runs once, after the environment started and before the first test.
    pub fn setup(self, setup: impl AsyncFnOnce(&Env) -> TestResult + Send + 'static) -> Self {
        let hook: Hook = Box::new(move |env| Box::pin(async move { setup(env).await }));
        if let Ok(mut slot) = self.shared.setup.lock() {
            *slot = Some(hook);
        }
        self
    }

    /// Runs once after the last test, if the environment was started; the environment is
    /// removed after it.
    pub fn teardown(
        mut self,
        teardown: impl AsyncFnOnce(&Env) -> TestResult + Send + 'static,
    ) -> Self {
        self.teardown = Some(Box::new(move |env| {
            Box::pin(async move { teardown(env).await })
        }));
        self
    }

    /// Adds a test.
    pub fn test(
        self,
        name: impl Into<String>,
        test: impl AsyncFnOnce(&Env) -> TestResult + Send + 'static,
    ) -> Self {
        self.trial(name.into(), false, test)
    }

    /// Adds a test that runs only when asked for (`--ignored`, `--include-ignored`).
    pub fn ignored_test(
        self,
        name: impl Into<String>,
        test: impl AsyncFnOnce(&Env) -> TestResult + Send + 'static,
    ) -> Self {
        self.trial(name.into(), true, test)
    }

    fn trial(
        mut self,
        name: String,
        ignored: bool,
        test: impl AsyncFnOnce(&Env) -> TestResult + Send + 'static,
    ) -> Self {
        let shared = Arc::clone(&self.shared);
        let trial = Trial::test(name, move || {
            let env = shared.env()?;
            let started = SystemTime::now();
            shared.runtime.block_on(async {
                match test(env).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(Failed::from(format!(
                        "{e}\n{}",
                        super::explain(env, started).await
                    ))),
                }
            })
        })
        .with_ignored_flag(ignored);
        self.trials.push(trial);
        self
    }

    /// Runs the tests one at a time, in the order they were added.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// Reads the command line, runs the selected tests, then the teardown, and removes the
    /// environment. The exit code is libtest's: failure when a test failed.
    pub fn run(self) -> ExitCode {
        let mut arguments = Arguments::from_args();
        if self.ordered {
            arguments.test_threads = Some(1);
        }
        let conclusion = libtest_mimic::run(&arguments, self.trials);
        let mut failed = conclusion.has_failed();
        let Ok(shared) = Arc::try_unwrap(self.shared) else {
            // A test still holds the suite (cannot happen once run returned); leave it.
            return conclusion.exit_code();
        };
        if let Some(Ok(env)) = shared.env.into_inner() {
            shared.runtime.block_on(async {
                if let Some(teardown) = self.teardown {
                    if let Err(e) = teardown(&env).await {
                        eprintln!("drydock: the suite's teardown failed: {e}");
                        failed = true;
                    }
                }
                if let Err(e) = env.teardown().await {
                    eprintln!("drydock: the suite's environment was not removed: {e}");
                    failed = true;
                }
            });
        }
        if failed {
            ExitCode::from(101)
        } else {
            ExitCode::SUCCESS
        }
    }
}
