//! A database's schema: `sqlx` migrations and SQL fixtures, applied once, named in every error.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use sha2::{Digest, Sha256};
use sqlx::{
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    AssertSqlSafe,
};

use crate::error::{Error, Result};

/// A hash of the schema files' names and contents, so that a changed migration gives another
/// environment identity and never meets a template built from the old one.
pub(crate) fn fingerprint(migrations: Option<&Path>, fixtures: &[PathBuf]) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    if let Some(dir) = migrations {
        let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_error(dir, e))?.path();
            if path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        check_versions(&files)?;
    }
    files.extend(fixtures.iter().cloned());
    for file in files {
        let content = std::fs::read(&file).map_err(|e| io_error(&file, e))?;
        hasher.update(file.display().to_string().as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}

/// Two migrations of one version (`1_a.sql`, `1_b.sql`) are refused naming both, before the
/// database answers with a bare unique-key violation. Reversible migrations share a version
/// between their `.up.sql` and `.down.sql`, which is fine.
fn check_versions(files: &[PathBuf]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &PathBuf> = std::collections::HashMap::new();
    for file in files {
        let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((version, _)) = name.split_once('_') else {
            continue;
        };
        if version.is_empty()
            || !version.chars().all(|c| c.is_ascii_digit())
            || name.ends_with(".down.sql")
        {
            continue;
        }
        if let Some(first) = seen.insert(version.to_string(), file) {
            return Err(Error::Schema {
                file: file.clone(),
                message: format!(
                    "migration version {version} is also the version of {}; give each migration \
                     a version of its own",
                    first.display()
                ),
                source: None,
            });
        }
    }
    Ok(())
}

/// How long migrations and fixtures together may take (a statement waiting on a lock must not
/// hang a start forever).
const APPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// Applies the migrations, then the fixtures, to the database `options` points at, bounded.
pub(crate) async fn apply(
    options: &PgConnectOptions,
    migrations: Option<&Path>,
    fixtures: &[PathBuf],
) -> Result<()> {
    if migrations.is_none() && fixtures.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(
        APPLY_TIMEOUT,
        apply_unbounded(options, migrations, fixtures),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: "applying the migrations and fixtures".into(),
        bound: APPLY_TIMEOUT,
    })?
}

async fn apply_unbounded(
    options: &PgConnectOptions,
    migrations: Option<&Path>,
    fixtures: &[PathBuf],
) -> Result<()> {
    // A one-connection pool rather than a connection: `Migrator::run(&mut PgConnection)` is not
    // `Send` for every lifetime, and this runs inside the keeper's spawned tasks.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await
        .map_err(|e| Error::Schema {
            file: "(connection to the database)".into(),
            message: "cannot connect to apply the schema".into(),
            source: Some(e.into()),
        })?;
    if let Some(dir) = migrations {
        let migrator = Migrator::new(dir).await.map_err(|e| Error::Schema {
            file: dir.to_path_buf(),
            message: "the migrations cannot be read".into(),
            source: Some(e.into()),
        })?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| migration_error(dir, &migrator, e))?;
    }
    for fixture in fixtures {
        let sql = tokio::fs::read_to_string(fixture)
            .await
            .map_err(|e| io_error(fixture, e))?;
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .map_err(|e| Error::Schema {
                file: fixture.clone(),
                message: database_message(&e),
                source: Some(e.into()),
            })?;
    }
    pool.close().await;
    Ok(())
}

/// Names the migration file that failed, with the database's own message.
fn migration_error(dir: &Path, migrator: &Migrator, error: MigrateError) -> Error {
    match error {
        MigrateError::ExecuteMigration(source, version) => {
            let description = migrator
                .iter()
                .find(|m| m.version == version)
                .map(|m| m.description.to_string())
                .unwrap_or_default();
            let file = std::fs::read_dir(dir)
                .ok()
                .and_then(|entries| {
                    entries.flatten().map(|e| e.path()).find(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&format!("{version}_")))
                    })
                })
                .unwrap_or_else(|| dir.join(format!("{version}_{description}")));
            Error::Schema {
                file,
                message: database_message(&source),
                source: Some(source.into()),
            }
        }
        other => Error::Schema {
            file: dir.to_path_buf(),
            message: "the migrations could not be applied".into(),
            source: Some(other.into()),
        },
    }
}

/// The server's message (and its position hint) rather than sqlx's wrapper text.
fn database_message(error: &sqlx::Error) -> String {
    match error.as_database_error() {
        Some(db) => format!(
            "{} (SQLSTATE {})",
            db.message(),
            db.code().unwrap_or_default()
        ),
        None => error.to_string(),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Schema {
        file: path.to_path_buf(),
        message: "cannot read it".into(),
        source: Some(e.into()),
    }
}
