//! `drydock`: build the local stand-in images; (later) list and prune environments.
//!
//! ```text
//! cargo run -p drydock-cli -- images build     # idempotent: seconds when up to date
//! cargo run -p drydock-cli -- images list
//! ```

mod images;

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
    /// Local stand-in images, for machines that reach no container registry.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
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
        Command::Images { command } => match command {
            ImagesCommand::Build { force, only } => images::build(force, &only).await,
            ImagesCommand::List => images::list().await,
        },
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drydock: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
