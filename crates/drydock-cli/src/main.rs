//! `drydock`: list and prune environments; build the local stand-in images.
//!
//! ```text
//! cargo run -p drydock-cli -- ls                # running environments, their leases
//! cargo run -p drydock-cli -- prune             # remove what dead runs left behind
//! cargo run -p drydock-cli -- images build      # idempotent: seconds when up to date
//! cargo run -p drydock-cli -- proxy             # Toxiproxy's API on 127.0.0.1:8474
//! ```

mod environments;
mod images;
mod proxy;

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
