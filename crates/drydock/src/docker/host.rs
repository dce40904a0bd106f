//! Where published ports are reached from, and where they are published.
//!
//! testcontainers-rs answers "the bridge gateway" whenever `/.dockerenv` exists, which is wrong on
//! VMs whose image carries a stray one: there the gateway is this machine's own docker0 address
//! and ports published on 127.0.0.1 are not reachable through it. drydock only believes it runs
//! inside a container when the gateway is *not* one of this machine's addresses.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use testcontainers::bollard::{query_parameters::InspectNetworkOptions, Docker};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub(crate) struct HostAddress {
    /// Where clients in this process connect to.
    pub host: String,
    /// Which host address ports are published on.
    pub bind_ip: String,
}

const LOOPBACK: &str = "127.0.0.1";

pub(crate) async fn resolve(docker: &Docker, endpoint: &str) -> Result<HostAddress> {
    let remote = remote_engine_host(endpoint);
    let bind_override = bind_ip_setting(remote.is_some())?;
    if let Some(ip) = &bind_override {
        warn_if_exposed(ip);
    }
    let explicit_host = ["DRYDOCK_HOST", "TESTCONTAINERS_HOST_OVERRIDE"]
        .into_iter()
        .find_map(|v| Some((v, std::env::var(v).ok().filter(|v| !v.is_empty())?)));
    if let Some((variable, host)) = explicit_host {
        check_host(variable, &host)?;
        let bind_ip = bind_override.unwrap_or_else(|| bind_ip_for(&host));
        return Ok(HostAddress { host, bind_ip });
    }
    if let Some(remote) = remote {
        // A remote engine publishes on its own interfaces; loopback there is unreachable from here.
        let bind_ip = bind_override.unwrap_or_else(|| bind_ip_for(&remote));
        return Ok(HostAddress {
            host: remote,
            bind_ip,
        });
    }
    if std::path::Path::new("/.dockerenv").exists() {
        if let Some(gateway) = bridge_gateway(docker).await {
            if !is_own_address(gateway) {
                let host = gateway.to_string();
                return Ok(HostAddress {
                    bind_ip: bind_override.unwrap_or_else(|| host.clone()),
                    host,
                });
            }
        }
    }
    Ok(HostAddress {
        host: LOOPBACK.into(),
        bind_ip: bind_override.unwrap_or_else(|| LOOPBACK.into()),
    })
}

/// `DRYDOCK_BIND_IP`, checked before any container is made: an address, and for an engine on
/// this machine one of this machine's (or `0.0.0.0`/`::`), since the engine publishes there.
/// Left unchecked, a bad value surfaces as the engine's refusal to start a container, naming
/// neither the variable nor the value.
fn bind_ip_setting(remote_engine: bool) -> Result<Option<String>> {
    const VARIABLE: &str = "DRYDOCK_BIND_IP";
    let Some(value) = std::env::var(VARIABLE).ok().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let setting = |problem: String| Error::Setting {
        variable: VARIABLE.into(),
        value: value.clone(),
        problem,
        fix: "give an IP address of this machine (127.0.0.1 is the default; 0.0.0.0 publishes \
              on every interface), or unset it"
            .into(),
    };
    let ip: IpAddr = value
        .trim()
        .parse()
        .map_err(|_| setting("not an IP address (a host name or port is not taken here)".into()))?;
    if !remote_engine && !ip.is_unspecified() && !is_own_address(ip) {
        return Err(setting(format!(
            "{ip} is not an address of this machine, and the engine runs here: it cannot \
             publish ports there"
        )));
    }
    Ok(Some(ip.to_string()))
}

/// `DRYDOCK_HOST` (or `TESTCONTAINERS_HOST_OVERRIDE`): a host name or address, nothing more,
/// since it is written into every URL and address handed out.
fn check_host(variable: &str, value: &str) -> Result<()> {
    let problem = if value.contains("://") {
        Some("holds a scheme; give the host alone".to_string())
    } else if value.parse::<IpAddr>().is_ok() {
        None
    } else if value.contains(':') || value.contains('/') {
        Some("holds a port or a path; give the host alone (ports are published per service)".into())
    } else if value.len() > 253
        || value.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        Some("is not a host name (letters, digits, `-` and dots) nor an IP address".into())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Setting {
            variable: variable.into(),
            value: value.into(),
            problem,
            fix: format!(
                "give the host name or address published ports are reached at, e.g. \
                 {variable}=127.0.0.1, or unset it"
            ),
        }),
        None => Ok(()),
    }
}

/// Says, once per process and loudly, that `DRYDOCK_BIND_IP` publishes the services beyond this
/// machine: the stub's admin API and the fault proxies' ports answer anyone who reaches them,
/// and the databases' logins are exposed.
fn warn_if_exposed(ip: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let loopback = ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        WARNED.call_once(|| {
            eprintln!(
                "drydock: WARNING: DRYDOCK_BIND_IP={ip} publishes every service's port on {ip}, \
                 not only on this machine's loopback: whoever reaches that address reaches \
                 the logins of Redis and PostgreSQL and the stub's admin API. Unset it \
                 unless the engine runs elsewhere and its clients need that address."
            );
        });
    }
}

/// The host of a `tcp://host:port` engine address, unless that host is this machine.
fn remote_engine_host(endpoint: &str) -> Option<String> {
    let rest = ["tcp://", "http://", "https://"]
        .into_iter()
        .find_map(|scheme| endpoint.strip_prefix(scheme))?;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() || is_own_address(ip) => None,
        _ if host == "localhost" => None,
        _ => Some(host.to_string()),
    }
}

/// Publish on the host address itself when it is one of ours, else on loopback.
fn bind_ip_for(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) if is_own_address(ip) => ip.to_string(),
        _ => LOOPBACK.into(),
    }
}

async fn bridge_gateway(docker: &Docker) -> Option<IpAddr> {
    let network = docker
        .inspect_network("bridge", None::<InspectNetworkOptions>)
        .await
        .ok()?;
    network
        .ipam?
        .config?
        .into_iter()
        .filter_map(|cfg| cfg.gateway)
        .find_map(|gw| gw.parse().ok())
}

/// An address is this machine's own when a socket can bind to it.
/// Whether containers on a network whose gateway is `gateway` can be reached from this process
/// at their own addresses without leaving this machine: the engine is this machine's (a
/// local socket, ports reached on loopback) and the gateway is one of this machine's addresses
/// (the bridge is here, not in a VM or a rootless engine's namespace).
pub(crate) fn is_local_bridge(engine: &super::Engine, gateway: IpAddr) -> bool {
    let local_engine =
        engine.endpoint().starts_with("unix://") || engine.endpoint().starts_with('/');
    local_engine
        && engine.host() == LOOPBACK
        && !gateway.is_unspecified()
        && is_own_address(gateway)
}

fn is_own_address(ip: IpAddr) -> bool {
    if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        return false;
    }
    UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_local_engines_are_not_remote() {
        assert_eq!(remote_engine_host("unix:///var/run/docker.sock"), None);
        assert_eq!(remote_engine_host("tcp://127.0.0.1:2375"), None);
        assert_eq!(remote_engine_host("tcp://localhost:2375"), None);
        assert_eq!(
            remote_engine_host("tcp://docker.example:2376").as_deref(),
            Some("docker.example")
        );
    }

    #[test]
    fn host_overrides_are_a_host_alone() {
        for good in ["127.0.0.1", "::1", "docker.example", "host-1.internal"] {
            assert!(check_host("DRYDOCK_HOST", good).is_ok(), "{good}");
        }
        for bad in ["tcp://1.2.3.4", "host:2375", "not a host!", "a..b", "-x"] {
            let message = check_host("DRYDOCK_HOST", bad)
                .map(|()| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(message.starts_with("DRYDOCK_HOST="), "{bad}: {message}");
            assert!(message.contains("to fix:"), "{bad}: {message}");
        }
    }

    #[test]
    fn own_addresses_are_recognised() {
        assert!(is_own_address(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        // TEST-NET-1 is never assigned to a machine.
        assert!(!is_own_address(
            "192.0.2.1"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        ));
    }
}
