//! `drydock`: list and prune environments; build the local stand-in images.
//!
//! ```text
//! cargo run -p drydock-cli -- ls                # running environments, their leases
//! cargo run -p drydock-cli -- prune             # remove what dead runs left behind
//! cargo run -p drydock-cli -- up postgres redis  # start for the run (a nextest setup script)
//! cargo run -p drydock-cli -- down               # and remove it
//! cargo run -p drydock-cli -- images build      # idempotent: seconds when up to date
//! cargo run -p drydock-cli -- proxy             # Toxiproxy's API on 127.0.0.1:8474
//! ```

mod environments;
mod images;
mod proxy;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "drydock",
    version,
    about = "Real dependencies for Rust integration tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists running environments: run, spec, age, services, owner, leases.
    Ls,
    /// Removes environments whose owning process is gone; never a live run's.
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Starts the services named (or finds them, if this run has them) and keeps them for the
    /// run; writes their variables (DATABASE_URL, REDIS_URL, …, DRYDOCK_RUN_ID) to $NEXTEST_ENV
    /// and stdout. As a nextest setup script, tests find their dependencies started.
    Up {
        /// `postgres`, `redis`, `kafka`, `stub`: each with its defaults. `KIND:NAME`
        /// (`stub:payments`) names one, for several of a kind; its variables are prefixed
        /// with the name (`PAYMENTS_STUB_URL`).
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
        /// Write the variables here too (appended), besides $NEXTEST_ENV.
        #[arg(long, value_name = "PATH")]
        env_file: Option<std::path::PathBuf>,
    },
    /// Removes the environments `drydock up` keeps for this run (or only the one of the services
    /// named) and waits until they are gone.
    Down {
        /// Only the environment of these services, as given to `drydock up`.
        #[arg(value_name = "SERVICE")]
        services: Vec<String>,
        /// The run (default: this one: $DRYDOCK_RUN_ID, $NEXTEST_RUN_ID, else this shell's).
        #[arg(long)]
        run: Option<String>,
    },
    /// Local stand-in images, for machines that reach no container registry.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Serves Toxiproxy's HTTP API over drydock's fault proxies, for Toxiproxy's clients.
    Proxy {
        /// Where the API listens (Toxiproxy's default; `:0` picks a free port, printed).
        #[arg(long, default_value = "127.0.0.1:8474")]
        listen: String,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Builds the images that are missing or out of date.
    Build {
        /// Rebuild even when an image is up to date.
        #[arg(long)]
        force: bool,
        /// Build only these images (and what they are built on), e.g. `postgres`.
        #[arg(value_name = "IMAGE")]
        only: Vec<String>,
    },
    /// Lists the images and whether each is up to date.
    List,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Ls => environments::list().await,
        Command::Prune { dry_run } => environments::prune(dry_run).await,
        Command::Up { services, env_file } => up::up(&services, env_file).await,
        Command::Down { services, run } => up::down(&services, run).await,
        Command::Images { command } => match command {
            ImagesCommand::Build { force, only } => images::build(force, &only).await,
            ImagesCommand::List => images::list().await,
        },
        Command::Proxy { listen } => proxy::run(&listen).await,
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drydock: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
