//! The README's test signature, as written: `?` on drydock's and on sqlx's errors.

use drydock::{sqlx, Env, Postgres};

#[tokio::test]
async fn counts_with_only_postgres_compiled_in() -> drydock::TestResult {
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .start()
        .await?;
    let pool = env.postgres()?.pool().await?;
    let one: i32 = sqlx::query_scalar(postgres_only::COUNT_ONE)
        .fetch_one(&pool)
        .await?;
    assert_eq!(one, 1);
    Ok(())
}

#[tokio::test]
async fn a_drydock_result_composes_with_sqlx_errors() -> drydock::Result<()> {
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .start()
        .await?;
    let pool = env.postgres()?.pool().await?;
    // `From<sqlx::Error> for drydock::Error`: `?` works in a `drydock::Result` too.
    let error = sqlx::query("SELECT * FROM no_such_table")
        .execute(&pool)
        .await
        .map(drop)
        .map_err(drydock::Error::from)
        .expect_err("no such table");
    assert!(error.to_string().contains("no_such_table"), "{error}");
    Ok(())
}
