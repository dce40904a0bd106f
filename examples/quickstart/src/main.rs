//! drydock's quickstart: PostgreSQL and Redis in containers, started together, used through
//! `sqlx` and `redis`, and removed at the end.
//!
//! ```text
//! scripts/run-example quickstart
//! ```

use std::time::Instant;

use anyhow::Context;
use drydock::{Env, Postgres, Redis};
use redis::AsyncCommands;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "drydock=info".into()),
        )
        .init();

    let started = Instant::now();
    let env = Env::builder()
        .with_postgres(Postgres::default())
        .with_redis(Redis::default())
        .start()
        .await?;
    println!("PostgreSQL and Redis ready in {:.2?}", started.elapsed());

    let postgres = env.postgres()?;
    println!(
        "postgres: {}:{} (user {}, password generated)",
        postgres.host(),
        postgres.port(),
        postgres.user()
    );
    let pool = postgres.pool().await?;
    sqlx::query("CREATE TABLE visits (id serial PRIMARY KEY, page text NOT NULL)")
        .execute(&pool)
        .await
        .context("creating a table")?;
    for page in ["/", "/about", "/"] {
        sqlx::query("INSERT INTO visits (page) VALUES ($1)")
            .bind(page)
            .execute(&pool)
            .await
            .context("inserting a row")?;
    }
    let home: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE page = '/'")
        .fetch_one(&pool)
        .await
        .context("counting rows")?;
    println!("postgres: {home} visits to / stored and counted");

    let redis = env.redis()?;
    println!("redis:    {}:{}", redis.host(), redis.port());
    let mut conn = redis.connection_manager().await?;
    let _: () = conn.set("greeting", "hello from drydock").await?;
    let greeting: String = conn.get("greeting").await?;
    let hits: i64 = conn.incr("hits", 1).await?;
    println!("redis:    greeting = {greeting:?}, hits = {hits}");

    let stopping = Instant::now();
    env.teardown().await?;
    println!(
        "removed containers and network in {:.2?}",
        stopping.elapsed()
    );
    Ok(())
}
