//! `drydock-stub`: the stub server as a program, for containers and for trying stubs by hand.
//!
//! ```text
//! drydock-stub --bind 0.0.0.0 --port 8080 --mappings /home/stub
//! ```

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use drydock_stub::StubServer;

/// An HTTP stub server with WireMock's mapping format and admin API (`/__admin`).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The address to listen on; a container passes 0.0.0.0.
    #[arg(long, default_value = "127.0.0.1", env = "DRYDOCK_STUB_BIND")]
    bind: std::net::IpAddr,
    /// The port to listen on.
    #[arg(long, default_value_t = 8080, env = "DRYDOCK_STUB_PORT")]
    port: u16,
    /// A directory of WireMock mappings to serve from the start.
    #[arg(long, env = "DRYDOCK_STUB_MAPPINGS")]
    mappings: Option<PathBuf>,
    /// Threads serving requests.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("drydock-stub: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drydock-stub: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), drydock_stub::StubError> {
    let server = StubServer::builder()
        .address(SocketAddr::new(args.bind, args.port))
        .threads(args.threads)
        .verify_on_drop(false)
        .start()
        .await?;
    if let Some(dir) = &args.mappings {
        let ids = server.load_dir(dir).await?;
        println!("drydock-stub: {} stubs from {}", ids.len(), dir.display());
    }
    println!("drydock-stub: listening on {}", server.url());
    wait_for_stop().await;
    Ok(())
}

/// Until SIGTERM (what `docker stop` sends) or Ctrl-C.
async fn wait_for_stop() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
