//! Waiting until a service answers its own protocol, never a log line.
//!
//! A log line says a process *meant* to serve; a login that runs `SELECT 1` says it does. Probing
//! by protocol also makes the official postgres image's restart after initdb harmless: its first
//! server listens on a Unix socket only, so no TCP login can reach it.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use crate::{
    docker::{exit_code, log_tail},
    error::{BoxError, Error, Result},
    service::StartedContainer,
};

/// One probe attempt may take this long before it counts as failed, so a probe that hangs (a
/// connection accepted by the port proxy and never answered) cannot eat the whole bound.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_PAUSE: Duration = Duration::from_millis(25);
const MAX_PAUSE: Duration = Duration::from_millis(250);
const LOG_TAIL_LINES: usize = 40;

/// Probes until `probe` succeeds, the container exits, or `bound` runs out.
pub(crate) async fn wait_until_ready<F, Fut>(
    container: &StartedContainer,
    bound: Duration,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<(), BoxError>>,
{
    let service = container.service.clone();
    let engine = &container.engine;
    let started = Instant::now();
    let deadline = started + bound;
    let mut pause = FIRST_PAUSE;
    let mut attempts = 0u32;
    let mut last_error = String::new();
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let allowed = remaining.min(ATTEMPT_TIMEOUT);
        match tokio::time::timeout(allowed, probe()).await {
            Ok(Ok(())) => {
                tracing::debug!(%service, attempts, elapsed = ?started.elapsed(), "ready");
                return Ok(());
            }
            Ok(Err(e)) => last_error = crate::error::chain(&*e),
            // A last attempt cut short by the bound says less than the attempt before it.
            Err(_) if allowed == ATTEMPT_TIMEOUT || last_error.is_empty() => {
                last_error = format!("the probe did not answer within {allowed:?}")
            }
            Err(_) => {}
        }
        if let Some(exit_code) = exit_code(engine, &container.id).await {
            return Err(Error::ContainerExited {
                service,
                image: container.image.clone(),
                exit_code,
                log_tail: log_tail(engine, &container.id, LOG_TAIL_LINES).await,
            });
        }
        if Instant::now() + pause >= deadline {
            return Err(Error::NotReady {
                service,
                waited: started.elapsed(),
                bound,
                last_error: last_error.clone(),
                log_tail: log_tail(engine, &container.id, LOG_TAIL_LINES).await,
            });
        }
        tracing::trace!(%service, attempts, %last_error, "not ready yet");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
