//! `drydock up` and `drydock down`: an environment started before the tests, for a whole run.
//!
//! As a nextest setup script, `drydock up` starts the services named on its command line (or
//! attaches to them, if this run already has them), has the keeper hold them until
//! `drydock down` or the end of the run, and writes what the tests need to `$NEXTEST_ENV`:
//! the services' variables (`DATABASE_URL`, `REDIS_URL`, …) and `DRYDOCK_RUN_ID` /
//! `DRYDOCK_RUN_OWNER`, with which a test attaching with the same spec gets a slice of this
//! same environment.

use std::{collections::BTreeMap, io::Write, path::PathBuf, time::Instant};

use anyhow::{bail, Context, Result};
use drydock::{Env, EnvBuilder};

/// The services `drydock up` knows by name, as this build has them.
const KNOWN: &[(&str, bool)] = &[
    ("postgres", cfg!(feature = "postgres")),
    ("redis", cfg!(feature = "redis")),
    ("kafka", cfg!(feature = "kafka")),
    ("stub", cfg!(feature = "stub")),
];

/// The environment of `services`, each with its defaults.
fn spec(services: &[String]) -> Result<EnvBuilder> {
    if services.is_empty() {
        bail!(
            "no service named\n  to fix: name the services to start, e.g. `drydock up postgres \
             redis`; known: {}",
            known()
        );
    }
    let mut builder = Env::builder();
    for name in services {
        builder = add(builder, name)?;
    }
    Ok(builder)
}

/// `builder` with the service `argument` names, with its defaults: a kind (`stub`), or a kind
/// and a name of its own (`stub:payments`, for several of a kind; its variables are prefixed:
/// `PAYMENTS_STUB_URL`).
fn add(builder: EnvBuilder, argument: &str) -> Result<EnvBuilder> {
    let (kind, name) = match argument.split_once(':') {
        Some((kind, name)) => (kind, Some(name)),
        None => (argument, None),
    };
    // Each kind's default, named when asked.
    fn with<S: drydock::service::Service + Default>(
        builder: EnvBuilder,
        name: Option<&str>,
    ) -> EnvBuilder {
        use drydock::ServiceExt;
        match name {
            Some(name) => builder.with_service(S::default().named(name)),
            None => builder.with_service(S::default()),
        }
    }
    match kind {
        #[cfg(feature = "postgres")]
        "postgres" => Ok(with::<drydock::Postgres>(builder, name)),
        #[cfg(feature = "redis")]
        "redis" => Ok(with::<drydock::Redis>(builder, name)),
        #[cfg(feature = "kafka")]
        "kafka" => Ok(with::<drydock::Kafka>(builder, name)),
        #[cfg(feature = "stub")]
        "stub" => Ok(with::<drydock::HttpStub>(builder, name)),
        other => {
            drop(builder);
            match KNOWN.iter().find(|(known, _)| *known == other) {
                Some(_) => bail!(
                    "this drydock was built without the `{other}` feature\n  \
                     to fix: cargo install drydock-cli --features {other} (or build it with \
                     `cargo build -p drydock-cli --features {other}`)"
                ),
                None => bail!(
                    "no service `{other}`\n  to fix: name one of {} (each runs with its \
                     defaults)",
                    known()
                ),
            }
        }
    }
}

fn known() -> String {
    KNOWN
        .iter()
        .map(|(name, built)| {
            if *built {
                name.to_string()
            } else {
                format!("{name} (not built in)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `drydock up`.
pub async fn up(services: &[String], env_file: Option<PathBuf>) -> Result<()> {
    let started = Instant::now();
    let held = drydock::shared::hold(spec(services)?).await?;
    let mut lines = vec![
        ("DRYDOCK_RUN_ID".to_string(), held.run.clone()),
        ("DRYDOCK_INSTANCE".to_string(), held.instance.clone()),
    ];
    if let Some(owner) = held.owner {
        lines.push(("DRYDOCK_RUN_OWNER".into(), owner.to_string()));
    }
    let vars: BTreeMap<_, _> = held.vars.clone();
    lines.extend(vars);
    let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    // nextest's setup-script contract: KEY=VALUE lines in the file `$NEXTEST_ENV` names.
    let env_file = env_file.or_else(|| std::env::var_os("NEXTEST_ENV").map(PathBuf::from));
    if let Some(path) = &env_file {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("writing the variables to {}", path.display()))?;
    }
    print!("{text}");
    eprintln!(
        "drydock up: {} ready in {:.1?} (instance {}, run {}); held until `drydock down` or the \
         end of {}; keeper's log: {}{}",
        services.join(", "),
        started.elapsed(),
        &held.instance[..held.instance.len().min(12)],
        held.run,
        match held.owner {
            Some(pid) => format!("process {pid}"),
            None => "the run".into(),
        },
        held.log.display(),
        match &env_file {
            Some(path) => format!("; variables written to {}", path.display()),
            None => String::new(),
        }
    );
    Ok(())
}

/// `drydock down`.
pub async fn down(services: &[String], run: Option<String>) -> Result<()> {
    let run = run.unwrap_or_else(drydock::identity::run_id);
    let identity = if services.is_empty() {
        None
    } else {
        Some(spec(services)?.identity()?)
    };
    let ended = tokio::task::spawn_blocking({
        let run = run.clone();
        move || drydock::shared::down(&run, identity.as_deref())
    })
    .await??;
    if ended.is_empty() {
        println!("no environment of run {run} is running");
    }
    for status in &ended {
        println!(
            "removed the environment {} of run {} (keeper {}, {} leases and {} held at the end)",
            status.identity, status.run, status.pid, status.leases, status.held
        );
    }
    Ok(())
}
