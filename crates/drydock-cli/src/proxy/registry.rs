//! The proxies the API made, by name, and what the API does to them.
//!
//! Every operation takes the one lock, so that a name is checked and taken at once. They are
//! synchronous (starting a proxy binds a socket; bringing one back up may wait a moment for its
//! old socket to close): the routes run them off the async workers.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, ToSocketAddrs},
    sync::{Mutex, MutexGuard},
};

use drydock::fault::FaultProxy;
use serde_json::Value;

use super::{
    error::ApiError,
    model::{toxic_from_json, toxic_json, toxic_updated, ProxyInput, ProxyView},
};

/// Where a proxy created without a `listen` address listens: a free port on loopback.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// The API's proxies. Toxics added through the API stay until removed through it: the
/// proxies hold them, no guard does.
#[derive(Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, FaultProxy>>,
}

/// A proxy to create: name and upstream given.
struct Wanted {
    name: String,
    listen: SocketAddr,
    upstream: String,
    enabled: bool,
}

impl Wanted {
    /// Checks `input` as Toxiproxy does; `at` names the proxy in a list (populate).
    fn from(input: ProxyInput, at: Option<usize>) -> Result<Self, ApiError> {
        let missing = |field: &str| {
            ApiError::MissingField(match at {
                Some(i) => format!("{field} at proxy {}", i + 1),
                None => field.to_owned(),
            })
        };
        let name = input
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| missing("name"))?;
        let upstream = input
            .upstream
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("upstream"))?;
        Ok(Wanted {
            name,
            listen: resolve(input.listen.as_deref())?,
            upstream,
            enabled: input.enabled.unwrap_or(true),
        })
    }

    fn start(self) -> Result<FaultProxy, ApiError> {
        let listen = self.listen.to_string();
        let mut attempts = 0;
        let proxy = loop {
            match FaultProxy::start_on(self.name.clone(), &listen, self.upstream.clone()) {
                Ok(proxy) => break proxy,
                // A proxy replaced on the same address closes its listener a moment later,
                // on the proxies' runtime: retry briefly before calling the address taken.
                Err(_) if self.listen.port() != 0 && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(listen_error(e)),
            }
        };
        proxy.set_enabled(self.enabled);
        Ok(proxy)
    }
}

/// `host:port` to one socket address; empty: [`DEFAULT_LISTEN`].
fn resolve(listen: Option<&str>) -> Result<SocketAddr, ApiError> {
    let listen = listen.filter(|l| !l.is_empty()).unwrap_or(DEFAULT_LISTEN);
    if let Ok(address) = listen.parse() {
        return Ok(address);
    }
    // A host name (`localhost:8080`): its first address, as Go's listener takes it.
    listen
        .to_socket_addrs()
        .map_err(|e| ApiError::Listen(format!("{listen:?} is not host:port: {e}")))?
        .next()
        .ok_or_else(|| ApiError::Listen(format!("{listen:?} resolves to no address")))
}

fn listen_error(error: drydock::Error) -> ApiError {
    match error {
        drydock::Error::Fault { problem, .. } => ApiError::Listen(problem),
        other => ApiError::Listen(other.to_string()),
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, FaultProxy>> {
        // A handler that panicked mid-operation leaves a map of whole proxies: carry on.
        self.proxies.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&FaultProxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        f(self.lock().get(name).ok_or(ApiError::ProxyNotFound)?)
    }

    /// Every proxy, by name.
    pub fn list(&self) -> BTreeMap<String, ProxyView> {
        self.lock()
            .iter()
            .map(|(name, proxy)| (name.clone(), ProxyView::of(proxy)))
            .collect()
    }

    /// The proxy `name`.
    pub fn get(&self, name: &str) -> Result<ProxyView, ApiError> {
        self.with(name, |proxy| Ok(ProxyView::of(proxy)))
    }

    /// A new proxy; 409 if the name is taken.
    pub fn create(&self, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let wanted = Wanted::from(input, None)?;
        let mut proxies = self.lock();
        if proxies.contains_key(&wanted.name) {
            return Err(ApiError::ProxyExists);
        }
        let proxy = wanted.start()?;
        let view = ProxyView::of(&proxy);
        proxies.insert(view.name.clone(), proxy);
        Ok(view)
    }

    /// Changes the upstream, the listen address (a new listener, toxics kept) or whether the
    /// proxy is up; what the input leaves out stays.
    pub fn update(&self, name: &str, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let mut proxies = self.lock();
        let proxy = proxies.get(name).ok_or(ApiError::ProxyNotFound)?;
        if let Some(upstream) = input.upstream.filter(|u| !u.is_empty()) {
            proxy.set_upstream(upstream);
        }
        let enabled = input.enabled.unwrap_or(proxy.is_enabled());
        // Toxiproxy restarts a proxy whose address differs, `:0` included (a new free port).
        let moved = match input.listen.as_deref().filter(|l| !l.is_empty()) {
            Some(listen) => Some(resolve(Some(listen))?).filter(|a| *a != proxy.listen_addr()),
            None => None,
        };
        if let Some(listen) = moved {
            let replacement = Wanted {
                name: name.to_owned(),
                listen,
                upstream: proxy.upstream(),
                enabled,
            }
            .start()?;
            for toxic in proxy.toxics() {
                replacement
                    .add(toxic)
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .keep();
            }
            // The old proxy stops as it is dropped here; its open links close with it.
            proxies.insert(name.to_owned(), replacement);
        } else {
            proxy.set_enabled(enabled);
        }
        self.view_in(&proxies, name)
    }

    fn view_in(
        &self,
        proxies: &BTreeMap<String, FaultProxy>,
        name: &str,
    ) -> Result<ProxyView, ApiError> {
        proxies
            .get(name)
            .map(ProxyView::of)
            .ok_or(ApiError::ProxyNotFound)
    }

    /// Stops and forgets the proxy `name`.
    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.lock()
            .remove(name)
            .map(drop)
            .ok_or(ApiError::ProxyNotFound)
    }

    /// The toxics of proxy `name`, in order.
    pub fn toxics(&self, name: &str) -> Result<Vec<Value>, ApiError> {
        self.with(name, |proxy| {
            Ok(proxy.toxics().iter().map(toxic_json).collect())
        })
    }

    /// Adds a toxic (Toxiproxy's JSON) to proxy `name`, after those in place.
    pub fn add_toxic(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        self.with(name, |proxy| {
            let toxic = toxic_from_json(body)?;
            let toxic_name = toxic.name();
            if proxy.toxics().iter().any(|t| t.name() == toxic_name) {
                return Err(ApiError::ToxicExists);
            }
            let json = toxic_json(&toxic);
            // The API removes toxics by name: nothing else holds them.
            proxy
                .add(toxic)
                .map_err(|e| ApiError::BadBody(e.to_string()))?
                .keep();
            Ok(json)
        })
    }

    /// The toxic `toxic` of proxy `name`.
    pub fn toxic(&self, name: &str, toxic: &str) -> Result<Value, ApiError> {
        self.with(name, |proxy| {
            proxy
                .toxics()
                .iter()
                .find(|t| t.name() == toxic)
                .map(toxic_json)
                .ok_or(ApiError::ToxicNotFound)
        })
    }

    /// Changes the attributes or toxicity of toxic `toxic` of proxy `name`.
    pub fn update_toxic(&self, name: &str, toxic: &str, body: &Value) -> Result<Value, ApiError> {
        self.with(name, |proxy| {
            let existing = proxy
                .toxics()
                .into_iter()
                .find(|t| t.name() == toxic)
                .ok_or(ApiError::ToxicNotFound)?;
            let updated = toxic_updated(&existing, body)?;
            let json = toxic_json(&updated);
            proxy.update(updated).map_err(|_| ApiError::ToxicNotFound)?;
            Ok(json)
        })
    }

    /// Removes toxic `toxic` from proxy `name`.
    pub fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        self.with(name, |proxy| {
            proxy.remove(toxic).map_err(|_| ApiError::ToxicNotFound)
        })
    }

    /// Every proxy up, every toxic gone.
    pub fn reset(&self) {
        for proxy in self.lock().values() {
            proxy.up();
            proxy.clear();
        }
    }

    /// Creates the proxies of `inputs`, replacing those of the same name unless they already
    /// listen and forward where asked (then they stay as they are, toxics and all). All are
    /// checked before any is made; on a failure, the proxies made before it and the error.
    pub fn populate(&self, inputs: Vec<ProxyInput>) -> (Vec<ProxyView>, Option<ApiError>) {
        let wanted: Result<Vec<Wanted>, ApiError> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| Wanted::from(input, Some(i)))
            .collect();
        let wanted = match wanted {
            Ok(wanted) => wanted,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut proxies = self.lock();
        let mut made = Vec::with_capacity(wanted.len());
        for wanted in wanted {
            if let Some(existing) = proxies.get(&wanted.name) {
                if existing.listen_addr() == wanted.listen && existing.upstream() == wanted.upstream
                {
                    made.push(ProxyView::of(existing));
                    continue;
                }
                // Stop it first: the replacement may want its address.
                proxies.remove(&wanted.name);
            }
            match wanted.start() {
                Ok(proxy) => {
                    made.push(ProxyView::of(&proxy));
                    proxies.insert(proxy.name().to_owned(), proxy);
                }
                Err(e) => return (made, Some(e)),
            }
        }
        (made, None)
    }
}
