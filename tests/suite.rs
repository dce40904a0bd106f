//! The suite harness (libtest-mimic, `harness = false`): setup before the first test, tests in
//! the order given, libtest's command line (list, filters, `--exact`, `--ignored`), a failing
//! test's report. The last test runs this binary again to check what a runner sees.

use std::{path::Path, process::Command, process::ExitCode};

use drydock::{harness::Suite, Env, Postgres, TestResult};

fn main() -> ExitCode {
    Suite::new(|| Env::builder().with_postgres(Postgres::default()))
        .setup(async |env| {
            if let Ok(marker) = std::env::var("SUITE_SETUP_MARKER") {
                std::fs::write(marker, "setup ran")?;
            }
            let pool = env.postgres()?.pool().await?;
            sqlx::raw_sql("CREATE TABLE seen (n int); INSERT INTO seen VALUES (1)")
                .execute(&pool)
                .await?;
            Ok(())
        })
        .test("setup_ran_before_this_test", async |env| {
            let pool = env.postgres()?.pool().await?;
            let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM seen")
                .fetch_one(&pool)
                .await?;
            assert_eq!(rows, 1);
            Ok(())
        })
        .ignored_test("order_1", async |_| note_order("order_1"))
        .ignored_test("order_2", async |_| note_order("order_2"))
        .ignored_test("deliberately_failing", async |env| {
            let pool = env.postgres()?.pool().await?;
            sqlx::query("SELECT 1").execute(&pool).await?;
            Err("the deliberate failure".into())
        })
        .test("the_command_line_is_libtests", async |_| command_line())
        .ordered()
        .run()
}

/// Appends `name` to the file `SUITE_ORDER_LOG` names.
fn note_order(name: &str) -> TestResult {
    let log = std::env::var("SUITE_ORDER_LOG")?;
    let mut seen = std::fs::read_to_string(&log).unwrap_or_default();
    seen.push_str(name);
    seen.push('\n');
    std::fs::write(&log, seen)?;
    Ok(())
}

/// This binary with `args`: whether it succeeded, and its output.
fn run(args: &[&str], vars: &[(&str, &Path)]) -> Result<(bool, String), std::io::Error> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args);
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = command.output()?;
    Ok((
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

fn command_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("setup-ran");

    // Listing, as nextest does it: every test, in libtest's terse format; nothing starts.
    let (ok, listed) = run(
        &["--list", "--format", "terse"],
        &[("SUITE_SETUP_MARKER", &marker)],
    )?;
    assert!(ok, "{listed}");
    for name in [
        "setup_ran_before_this_test: test",
        "order_1: test",
        "deliberately_failing: test",
        "the_command_line_is_libtests: test",
    ] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name:?} not in:\n{listed}"
        );
    }
    assert!(!marker.exists(), "listing ran the suite's setup");

    // A filter with --exact selects one test; the setup runs before it.
    let (ok, out) = run(
        &["--exact", "setup_ran_before_this_test"],
        &[("SUITE_SETUP_MARKER", &marker)],
    )?;
    assert!(ok && out.contains("1 passed"), "{out}");
    assert!(marker.exists(), "the setup did not run before the test");

    // --ignored runs the ignored tests only; an ordered suite runs them in the order given.
    let order = dir.path().join("order");
    let (ok, out) = run(&["--ignored", "order_"], &[("SUITE_ORDER_LOG", &order)])?;
    assert!(ok && out.contains("2 passed"), "{out}");
    assert_eq!(std::fs::read_to_string(&order)?, "order_1\norder_2\n");

    // A failing test fails the run, with drydock's report in its output.
    let (ok, out) = run(&["--ignored", "--exact", "deliberately_failing"], &[])?;
    assert!(!ok, "the deliberate failure failed nothing:\n{out}");
    for expected in [
        "the deliberate failure",
        "drydock: the failing test's dependencies",
        "psql -h 127.0.0.1",
        "postgres's log since the slice was cut",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    Ok(())
}
