//! Partial outages of an owned environment: a service's container stopped, paused, restarted
//! or killed, and brought back with readiness awaited.
//!
//! What survives, per service (containers keep their data on tmpfs, so a stop loses it):
//!
//! | service | pause / unpause | stop / start, restart, kill / start |
//! |---|---|---|
//! | PostgreSQL | everything | the data; the schema (migrations, fixtures) is applied again |
//! | Redis | everything | the data |
//! | Kafka | everything | topics and offsets |
//! | stub | everything | stubs mounted by the test and the journal; the spec's mappings are mounted again |
//! | your container | everything | what the image keeps outside tmpfs |
//!
//! Published ports move when a container starts again; the environment's handles reach it
//! through their fault proxies, which are pointed at the new ports, so handles, URLs and
//! `vars()` stay valid. In a shared environment, a slice's outage is its proxy's link
//! [`down`](crate::fault::FaultProxy::down) instead: the server stays up for every other test.

use std::time::Duration;

use testcontainers::bollard::query_parameters::{
    KillContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use crate::{
    error::{Error, Result},
    fault::FaultProxy,
    service::{Sharing, Started},
};

/// The container of one service of an owned [`Env`](crate::Env), to take down and bring back.
///
/// ```no_run
/// # async fn demo() -> drydock::TestResult {
/// let env = drydock::Env::builder().with_redis(drydock::Redis::default()).start().await?;
/// let redis = env.outage("redis")?;
/// redis.pause().await?;      // commands hang: the container is frozen
/// redis.unpause().await?;    // back, and answering PING before this returns
/// redis.restart().await?;    // a fresh server (data lost), on a new port behind the same URL
/// # Ok(()) }
/// ```
pub struct Outage<'a> {
    pub(crate) service: &'a str,
    pub(crate) started: &'a dyn Started,
    pub(crate) proxies: &'a [FaultProxy],
}

impl Outage<'_> {
    fn docker_error(
        &self,
        what: &str,
    ) -> impl FnOnce(crate::docker::bollard::errors::Error) -> Error + '_ {
        let context = format!("{what} the {} container", self.service);
        move |e| Error::docker(context, e)
    }

    /// Stops the container (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .stop_container(
                &container.id,
                Some(StopContainerOptionsBuilder::new().t(10).build()),
            )
            .await
            .map_err(self.docker_error("stopping"))
    }

    /// Kills the container (SIGKILL): the server gets no chance to shut down.
    pub async fn kill(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .kill_container(
                &container.id,
                Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
            )
            .await
            .map_err(self.docker_error("killing"))
    }

    /// Starts a stopped or killed container and waits until it is ready again.
    pub async fn start(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .start_container(&container.id, None)
            .await
            .map_err(self.docker_error("starting"))?;
        self.started
            .recover(self.proxies, true, Sharing::Owned)
            .await
    }

    /// Restarts the container and waits until it is ready again.
    pub async fn restart(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .restart_container(
                &container.id,
                Some(RestartContainerOptionsBuilder::new().t(10).build()),
            )
            .await
            .map_err(self.docker_error("restarting"))?;
        self.started
            .recover(self.proxies, true, Sharing::Owned)
            .await
    }

    /// Freezes the container's processes: connections stay open, nothing answers.
    pub async fn pause(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .pause_container(&container.id)
            .await
            .map_err(self.docker_error("pausing"))
    }

    /// Thaws a paused container and waits until it answers again.
    pub async fn unpause(&self) -> Result<()> {
        let container = self.started.container();
        container
            .engine
            .docker()
            .unpause_container(&container.id)
            .await
            .map_err(self.docker_error("unpausing"))?;
        self.started
            .recover(self.proxies, false, Sharing::Owned)
            .await
    }

    /// Takes the service down for `duration` (stopped, then started and ready again).
    pub async fn down_for(&self, duration: Duration) -> Result<()> {
        self.stop().await?;
        tokio::time::sleep(duration).await;
        self.start().await
    }
}
