//! The shorter way from a fault proxy to a container: its address on the engine's bridge
//! instead of the port published for it.
//!
//! A published port on loopback is itself a proxy — the engine's `docker-proxy` copies every
//! byte between `127.0.0.1:<port>` and the container. A fault proxy in front of that port would
//! make two hops where a test without drydock makes one. When the engine runs on this machine
//! and the container's network is a bridge whose gateway is one of this machine's own
//! addresses, the container's address on it is reachable from here without leaving the
//! machine, and a proxy's link connects there: a test with drydock's proxy in the path pays
//! about what a test connecting to the published port pays.
//!
//! The table maps a published address (what a proxy's upstream names) to the container's
//! address. It is learnt where containers are inspected (the process that starts them) and
//! handed to attaching test processes with their slice. Anything else — a remote engine, a
//! rootless one, a network whose gateway is not ours — learns nothing, and links connect to
//! the published port as before. A connection the shortcut refuses falls back to it too.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
};

/// Published address → (container id, the container's address on the bridge).
fn table() -> std::sync::MutexGuard<'static, HashMap<String, (String, SocketAddr)>> {
    static TABLE: OnceLock<Mutex<HashMap<String, (String, SocketAddr)>>> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records `routes` (published address, container address) of `container`, replacing what was
/// known of it: after a restart its ports and address may have moved.
pub(crate) fn learn(container: &str, routes: impl IntoIterator<Item = (String, SocketAddr)>) {
    let mut table = table();
    table.retain(|_, (id, _)| id != container);
    for (published, address) in routes {
        table.insert(published, (container.to_string(), address));
    }
}

/// Records shortcuts another process learnt (a keeper's, with a slice it grants).
pub(crate) fn learn_granted(routes: &[Granted]) {
    let mut table = table();
    for route in routes {
        table.insert(
            route.published.clone(),
            (route.container.clone(), route.address),
        );
    }
}

/// Every shortcut known, to hand to another process.
pub(crate) fn known() -> Vec<Granted> {
    table()
        .iter()
        .map(|(published, (container, address))| Granted {
            published: published.clone(),
            container: container.clone(),
            address: *address,
        })
        .collect()
}

/// The container's address behind `upstream`, when there is a shortcut to it.
pub(crate) fn lookup(upstream: &str) -> Option<SocketAddr> {
    table().get(upstream).map(|(_, address)| *address)
}

/// Forgets the shortcut behind `upstream` (a connection to it failed).
pub(crate) fn forget(upstream: &str) {
    table().remove(upstream);
}

/// One shortcut, as handed from a keeper to a test process.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Granted {
    pub published: String,
    pub container: String,
    pub address: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_replaces_what_was_known_of_the_container() {
        let old: SocketAddr = "172.30.0.2:5432".parse().expect("an address");
        let new: SocketAddr = "172.30.0.3:5432".parse().expect("an address");
        learn("shortcut-test", [("127.0.0.1:40001".to_string(), old)]);
        assert_eq!(lookup("127.0.0.1:40001"), Some(old));
        learn("shortcut-test", [("127.0.0.1:40002".to_string(), new)]);
        assert_eq!(lookup("127.0.0.1:40001"), None, "the old port is gone");
        assert_eq!(lookup("127.0.0.1:40002"), Some(new));
        forget("127.0.0.1:40002");
        assert_eq!(lookup("127.0.0.1:40002"), None);
    }

    /// A listener that greets every connection with `greeting`.
    fn greeter(greeting: &'static [u8]) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("its address");
        std::thread::spawn(move || {
            for mut socket in listener.incoming().flatten() {
                let _ = std::io::Write::write_all(&mut socket, greeting);
            }
        });
        address
    }

    fn greeting_through(proxy: &crate::fault::FaultProxy) -> Vec<u8> {
        let mut socket = std::net::TcpStream::connect(proxy.listen_addr()).expect("the proxy");
        let mut greeting = [0u8; 9];
        std::io::Read::read_exact(&mut socket, &mut greeting).expect("a greeting");
        greeting.to_vec()
    }

    #[test]
    fn a_link_takes_the_shortcut_and_falls_back_when_it_fails() {
        let published = greeter(b"published").to_string();
        let bridge = greeter(b"bridge!!!");
        let proxy = crate::fault::FaultProxy::start("shortcut", published.clone()).expect("proxy");
        learn("shortcut-fallback-test", [(published.clone(), bridge)]);
        assert_eq!(greeting_through(&proxy), b"bridge!!!");

        // A container gone from its address: the link connects to the published port.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        learn("shortcut-fallback-test", [(published.clone(), closed)]);
        assert_eq!(greeting_through(&proxy), b"published");
        assert_eq!(lookup(&published), None, "a failed shortcut is forgotten");
    }
}
