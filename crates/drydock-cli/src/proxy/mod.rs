//! `drydock proxy`: Toxiproxy's HTTP API over drydock's [`FaultProxy`](drydock::fault::FaultProxy),
//! so that Toxiproxy's clients and tools drive drydock's proxies unchanged.
//!
//! One concept per file: [`error`] (Toxiproxy's error bodies and statuses), [`model`] (its JSON
//! shapes and their conversion to drydock's toxics), [`registry`] (the named proxies and what
//! the API does to them), [`routes`] (HTTP: paths, methods, bodies).
//!
//! Differences from Toxiproxy, all deliberate: a proxy created without a `listen` address
//! listens on `127.0.0.1:0` (Toxiproxy: every interface), and changing a proxy's `upstream`
//! only redirects new connections (Toxiproxy restarts the proxy and cuts open ones).

mod error;
mod model;
mod registry;
mod routes;

use std::{future::Future, net::SocketAddr, sync::Arc};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use registry::Registry;

/// Serves Toxiproxy's API on `listen` until Ctrl-C, printing the address it listens on (the
/// port is chosen when `listen` ends in `:0`).
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on --listen {listen}: {e}\n  to fix: give a free ip:port of this \
                 machine (`127.0.0.1:0` picks a port)"
        )
    })?;
    let address = listener.local_addr()?;
    // Scripts and tests read this line to learn the port.
    println!("drydock proxy: Toxiproxy API on http://{address}");
    serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}

/// Serves Toxiproxy's API on `listener` until `shutdown` completes; the proxies end with it.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let registry = Arc::new(Registry::default());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: the next accept may work; do not spin.
                    tracing::warn!(error = %e, "toxiproxy api: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        tokio::spawn(connection(Arc::clone(&registry), stream, peer));
    }
}

async fn connection(registry: Arc<Registry>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = hyper::service::service_fn(move |request| {
        let registry = Arc::clone(&registry);
        async move { Ok::<_, std::convert::Infallible>(routes::handle(registry, request).await) }
    });
    if let Err(e) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "toxiproxy api: connection ended");
    }
}
