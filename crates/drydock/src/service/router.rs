//! Routing a service's addresses through fault proxies of the environment or slice that holds it.

use crate::{
    error::Result,
    fault::{FaultProxy, Protocol},
};

/// Hands out, for each address a service's clients connect to, the address of a fault proxy in
/// front of it. Services call it from [`Service::route`](super::Service::route).
///
/// ```
/// # fn demo() -> drydock::Result<()> {
/// let mut router = drydock::service::Router::new("queue");
/// let via = router.via("127.0.0.1:11300")?;      // "127.0.0.1:<proxy port>"
/// assert!(via.starts_with("127.0.0.1:"));
/// assert_eq!(router.proxies()[0].upstream(), "127.0.0.1:11300");
/// # Ok(()) }
/// ```
pub struct Router {
    service: String,
    proxies: Vec<FaultProxy>,
    /// When retargeting: the proxies already in place, handed out in order.
    existing: Option<std::collections::VecDeque<FaultProxy>>,
    /// The proxy the last `via…` handed out, made or retargeted.
    handed: Option<FaultProxy>,
}

impl Router {
    /// A router for the service `service`.
    pub fn new(service: impl Into<String>) -> Self {
        Router {
            service: service.into(),
            proxies: Vec::new(),
            existing: None,
            handed: None,
        }
    }

    /// A router that makes no proxy but points `proxies` (made by an earlier routing of the
    /// same service, in the same order) at the addresses it is given: a restarted container's.
    pub(crate) fn retarget(service: &str, proxies: &[FaultProxy]) -> Self {
        Router {
            service: service.to_string(),
            proxies: Vec::new(),
            existing: Some(proxies.iter().cloned().collect()),
            handed: None,
        }
    }

    /// A proxy in front of `address` (`host:port`); its address.
    pub fn via(&mut self, address: &str) -> Result<String> {
        self.via_protocol(address, Protocol::Raw)
    }

    /// [`via`](Self::via) for a host and a port: the proxy's host and port.
    pub fn via_host_port(&mut self, host: &str, port: u16) -> Result<(String, u16)> {
        let via = self.via(&format!("{host}:{port}"))?;
        Ok(split(&via).unwrap_or_else(|| (host.to_string(), port)))
    }

    /// A Kafka-aware proxy in front of the broker at `address`, which rewrites the broker
    /// addresses in the broker's answers to its own.
    pub fn via_kafka(&mut self, address: &str) -> Result<String> {
        self.via_protocol(address, Protocol::Kafka)
    }

    fn via_protocol(&mut self, address: &str, protocol: Protocol) -> Result<String> {
        if let Some(existing) = &mut self.existing {
            if let Some(proxy) = existing.pop_front() {
                proxy.set_upstream(address);
                let listen = proxy.listen_addr().to_string();
                self.handed = Some(proxy);
                return Ok(listen);
            }
        }
        let name = if self.proxies.is_empty() {
            self.service.clone()
        } else {
            format!("{}-{}", self.service, self.proxies.len() + 1)
        };
        let proxy = FaultProxy::start_with(name, address.to_string(), "127.0.0.1:0", protocol)?;
        let listen = proxy.listen_addr().to_string();
        self.handed = Some(proxy.clone());
        self.proxies.push(proxy);
        Ok(listen)
    }

    /// The proxy the last `via…` call handed out (made now, or retargeted): for a handle that
    /// must keep its route alive (see `KafkaConsumer`).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))] // only Kafka's handles keep it
    pub(crate) fn last_handed(&self) -> Option<&FaultProxy> {
        self.handed.as_ref()
    }

    /// The proxies made so far.
    pub fn proxies(&self) -> &[FaultProxy] {
        &self.proxies
    }

    pub(crate) fn into_proxies(self) -> Vec<FaultProxy> {
        self.proxies
    }
}

/// Splits `host:port`.
pub(crate) fn split(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// A server reached at one host and port, which a fault proxy can stand in front of: the
/// routing and un-routing every such server shares.
#[cfg(any(feature = "postgres", feature = "redis", feature = "stub"))]
pub(crate) trait HostPort: Clone {
    /// The host and port clients use, and the server's own when those are a proxy's.
    fn address_mut(&mut self) -> (&mut String, &mut u16, &mut Option<(String, u16)>);

    /// The same server behind a proxy of `router`.
    fn routed(&self, router: &mut Router) -> Result<Self> {
        let mut routed = self.clone();
        let (host, port, direct) = routed.address_mut();
        let (via_host, via_port) = router.via_host_port(host, *port)?;
        *direct = Some((
            std::mem::replace(host, via_host),
            std::mem::replace(port, via_port),
        ));
        Ok(routed)
    }

    /// The same server, reached directly.
    fn unrouted(&self) -> Self {
        let mut unrouted = self.clone();
        let (host, port, direct) = unrouted.address_mut();
        if let Some((direct_host, direct_port)) = direct.take() {
            (*host, *port) = (direct_host, direct_port);
        }
        unrouted
    }
}
