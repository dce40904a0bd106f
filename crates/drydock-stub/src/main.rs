//! `drydock-stub`: the stub server as a program, for containers and for trying stubs by hand.
//!
//! ```text
//! drydock-stub --bind 0.0.0.0 --port 8080 --mappings /home/stub
//! drydock-stub --admin-api-basic-auth admin:s3cret --allowed-upstreams http://payments:8080
//! ```
//!
//! Without `--admin-api-basic-auth` the admin API is open and any upstream may be proxied, as
//! WireMock's are by default; drydock's container gets both options (see `drydock::HttpStub`).

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
    /// Also serve HTTPS on this port, with a certificate from a CA made at start; the CA is at
    /// `GET /__admin/tls/ca` (over plain HTTP) and printed at start.
    #[arg(long, env = "DRYDOCK_STUB_HTTPS_PORT")]
    https_port: Option<u16>,
    /// More names the HTTPS certificate is valid for (a container's name or alias), besides
    /// localhost, 127.0.0.1 and ::1. Comma-separated in the environment variable.
    #[arg(long, env = "DRYDOCK_STUB_TLS_HOSTS", value_delimiter = ',')]
    tls_host: Vec<String>,
    /// The most requests each namespace's journal keeps; older ones are dropped, and counted
    /// (WireMock's flag of the same name). 0 keeps none.
    #[arg(long, default_value_t = drydock_stub::DEFAULT_JOURNAL_LIMIT, env = "DRYDOCK_STUB_MAX_REQUEST_JOURNAL_ENTRIES")]
    max_request_journal_entries: usize,
    /// Require HTTP basic credentials, `user:password`, on the admin API (`/__admin/*`), as
    /// WireMock's flag of the same name. Stubbed endpoints stay open.
    #[arg(long, env = "DRYDOCK_STUB_ADMIN_API_BASIC_AUTH", value_parser = drydock_stub::AdminCredentials::parse, hide_env_values = true)]
    admin_api_basic_auth: Option<drydock_stub::AdminCredentials>,
    /// Proxy stubs, pass-through and recording forward only to these origins
    /// (`http://host:port`, comma-separated; `none` for none), to the proxies of the --mappings
    /// files, and to those added with the admin credentials (`POST /__admin/upstreams`).
    /// Without it, any upstream is reached, as WireMock does.
    #[arg(long, env = "DRYDOCK_STUB_ALLOWED_UPSTREAMS", value_delimiter = ',')]
    allowed_upstreams: Option<Vec<String>>,
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
    let mut builder = StubServer::builder()
        .address(SocketAddr::new(args.bind, args.port))
        .threads(args.threads)
        .max_request_journal_entries(Some(args.max_request_journal_entries))
        .verify_on_drop(false)
        .admin_api_basic_auth(args.admin_api_basic_auth.clone());
    if let Some(upstreams) = &args.allowed_upstreams {
        builder = builder.allowed_upstreams(
            upstreams
                .iter()
                .map(|u| u.trim())
                .filter(|u| !u.is_empty() && *u != "none"),
        );
    }
    if let Some(dir) = &args.mappings {
        builder = builder.files(drydock_stub::mappings::files_dir(dir));
    }
    if let Some(port) = args.https_port {
        builder = builder.https_address(SocketAddr::new(args.bind, port));
        for host in &args.tls_host {
            builder = builder.tls_host(host.clone());
        }
    }
    let server = builder.start().await?;
    if let Some(dir) = &args.mappings {
        let ids = server.load_dir(dir).await?;
        println!("drydock-stub: {} stubs from {}", ids.len(), dir.display());
    }
    println!("drydock-stub: listening on {}", server.url());
    if let Some(credentials) = server.admin_credentials() {
        println!(
            "drydock-stub: the admin API asks for the credentials of user {:?}",
            credentials.user()
        );
    }
    if let (Some(url), Some(ca)) = (server.https_url(), server.certificate_authority()) {
        println!(
            "drydock-stub: HTTPS on {url}, certificate from this CA:\n{}",
            ca.pem()
        );
    }
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
