//! Runs the shop from environment variables (see [`shop::Config::from_env`]); applies its
//! migrations first (`SHOP_MIGRATIONS`, the crate's `migrations/` by default).

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = shop::Config::from_env()?;
    let migrations = std::env::var_os("SHOP_MIGRATIONS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")),
        PathBuf::from,
    );
    let pool = sqlx::PgPool::connect(&config.database.url).await?;
    sqlx::migrate::Migrator::new(migrations)
        .await?
        .run(&pool)
        .await?;
    pool.close().await;
    let shop = shop::Shop::start(config).await?;
    tracing::info!(url = %shop.url(), "shop listening");
    tokio::select! {
        () = shop.wait() => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
