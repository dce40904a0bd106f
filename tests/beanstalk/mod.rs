//! A service drydock does not know, added the way a user adds one: beanstalkd (Debian's
//! package, in the `drydock.local/beanstalkd:1` image), with a tube of its own per test.
//!
//! This module and its one `register_service!` line are the whole cost of a service: nothing in
//! drydock names it.

use std::{sync::Arc, time::Duration};

use drydock::{
    service::{
        Common, ContainerPlan, Lease, PlanContext, Service, Sharing, SliceId, StartedContainer,
    },
    BoxError, ImageRef, Result,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// The port beanstalkd listens on in its container.
pub const PORT: u16 = 11300;

/// A beanstalkd work queue; each test gets a tube of its own.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Beanstalkd {
    common: Common,
}

/// Where the server is reached.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BeanstalkdServer {
    address: String,
}

/// One test's tube on the server: `default` in an owned environment, its own in a slice.
#[derive(Clone, Debug)]
pub struct Tube {
    server: BeanstalkdServer,
    name: String,
}

impl Tube {
    /// The tube's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `host:port` from this process.
    pub fn address(&self) -> &str {
        &self.server.address
    }

    /// A connection that puts to and reserves from this tube only.
    pub async fn connect(&self) -> std::result::Result<Client, BoxError> {
        let mut client = Client::connect(&self.server.address).await?;
        client.use_tube(&self.name).await?;
        client.watch_only(&self.name).await?;
        Ok(client)
    }
}

/// A beanstalkd protocol client: just what the tests need.
pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    /// A connection to the server at `address`.
    pub async fn connect(address: &str) -> std::result::Result<Self, BoxError> {
        Ok(Client {
            stream: BufReader::new(TcpStream::connect(address).await?),
        })
    }

    async fn command(&mut self, line: &str) -> std::result::Result<String, BoxError> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut reply))
            .await
            .map_err(|_| format!("beanstalkd did not answer `{line}` within 10 s"))??;
        Ok(reply.trim_end().to_string())
    }

    async fn expect(&mut self, line: &str, answer: &str) -> std::result::Result<String, BoxError> {
        let reply = self.command(line).await?;
        if reply.starts_with(answer) {
            Ok(reply)
        } else {
            Err(format!("`{line}` answered {reply:?}, not {answer}").into())
        }
    }

    async fn body(&mut self, bytes: usize) -> std::result::Result<Vec<u8>, BoxError> {
        let mut body = vec![0; bytes + 2];
        self.stream.read_exact(&mut body).await?;
        body.truncate(bytes);
        Ok(body)
    }

    /// Puts later jobs into `tube`.
    pub async fn use_tube(&mut self, tube: &str) -> std::result::Result<(), BoxError> {
        self.expect(&format!("use {tube}"), "USING").await.map(drop)
    }

    /// Reserves from `tube` only.
    pub async fn watch_only(&mut self, tube: &str) -> std::result::Result<(), BoxError> {
        self.expect(&format!("watch {tube}"), "WATCHING").await?;
        if tube != "default" {
            self.expect("ignore default", "WATCHING").await?;
        }
        Ok(())
    }

    /// Whether the used tube has a ready job, without reserving it.
    pub async fn has_ready_job(&mut self) -> std::result::Result<bool, BoxError> {
        let reply = self.command("peek-ready").await?;
        if reply == "NOT_FOUND" {
            return Ok(false);
        }
        let bytes: usize = reply
            .rsplit(' ')
            .next()
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| format!("peek-ready answered {reply:?}"))?;
        self.body(bytes).await?;
        Ok(true)
    }

    /// Puts a job; its id.
    pub async fn put(&mut self, body: &[u8]) -> std::result::Result<u64, BoxError> {
        self.stream
            .get_mut()
            .write_all(format!("put 0 0 60 {}\r\n", body.len()).as_bytes())
            .await?;
        self.stream.get_mut().write_all(body).await?;
        let reply = self.command("").await?;
        reply
            .strip_prefix("INSERTED ")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("put answered {reply:?}").into())
    }

    /// The next ready job, or `None` when none comes within `timeout_secs`.
    pub async fn reserve(
        &mut self,
        timeout_secs: u32,
    ) -> std::result::Result<Option<(u64, Vec<u8>)>, BoxError> {
        let reply = self
            .command(&format!("reserve-with-timeout {timeout_secs}"))
            .await?;
        if reply == "TIMED_OUT" {
            return Ok(None);
        }
        let mut parts = reply.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("RESERVED"), Some(id), Some(bytes)) => {
                let body = self.body(bytes.parse()?).await?;
                Ok(Some((id.parse()?, body)))
            }
            _ => Err(format!("reserve answered {reply:?}").into()),
        }
    }

    /// Deletes a job.
    pub async fn delete(&mut self, id: u64) -> std::result::Result<(), BoxError> {
        self.expect(&format!("delete {id}"), "DELETED")
            .await
            .map(drop)
    }

    /// Server statistics (YAML), which only a live server answers.
    pub async fn stats(&mut self) -> std::result::Result<String, BoxError> {
        let reply = self.expect("stats", "OK").await?;
        let bytes: usize = reply.trim_start_matches("OK ").parse()?;
        Ok(String::from_utf8(self.body(bytes).await?)?)
    }
}

/// A tube in use by a test, emptied when the lease ends, so a reused name starts empty.
struct LeasedTube(Tube);

impl Drop for LeasedTube {
    fn drop(&mut self) {
        let tube = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Ok(mut client) = tube.connect().await {
                    while let Ok(Some((id, _))) = client.reserve(0).await {
                        let _ = client.delete(id).await;
                    }
                }
            });
        }
    }
}

impl Service for Beanstalkd {
    const KIND: &'static str = "beanstalkd";
    type Server = BeanstalkdServer;
    type Slicer = BeanstalkdServer;
    type Scope = String;
    type Handle = Tube;

    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }

    fn default_image(&self) -> &str {
        "drydock.local/beanstalkd:1"
    }

    fn plan(&self, image: ImageRef, _: &mut PlanContext) -> Result<ContainerPlan> {
        Ok(ContainerPlan::new(image).port(PORT))
    }

    fn server(&self, _: &ContainerPlan, container: &StartedContainer) -> Result<BeanstalkdServer> {
        Ok(BeanstalkdServer {
            address: format!("{}:{}", container.host(), container.host_port(PORT)?),
        })
    }

    async fn probe(
        &self,
        server: &BeanstalkdServer,
        _: &StartedContainer,
    ) -> std::result::Result<(), BoxError> {
        Client::connect(&server.address)
            .await?
            .stats()
            .await
            .map(drop)
    }

    async fn prepare(&self, server: &BeanstalkdServer, _: Sharing) -> Result<BeanstalkdServer> {
        Ok(server.clone())
    }

    fn owned_scope(_: &BeanstalkdServer) -> String {
        "default".into()
    }

    async fn cut(server: &Arc<BeanstalkdServer>, slice: SliceId) -> Result<Lease<String>> {
        let tube = Tube {
            server: (**server).clone(),
            name: slice.name(),
        };
        Ok(Lease::new(tube.name.clone(), LeasedTube(tube)))
    }

    fn handle(server: &BeanstalkdServer, name: String) -> Tube {
        Tube {
            server: server.clone(),
            name,
        }
    }

    fn vars(tube: &Tube) -> Vec<(String, String)> {
        vec![
            ("BEANSTALKD_ADDR".into(), tube.server.address.clone()),
            ("BEANSTALKD_TUBE".into(), tube.name.clone()),
        ]
    }

    fn diagnose(tube: &Tube) -> Vec<String> {
        vec![format!(
            "inspect: printf 'stats-tube {}\\r\\n' | nc {}",
            tube.name,
            tube.server.address.replace(':', " ")
        )]
    }
}

drydock::register_service!(Beanstalkd);
