//! `--add-host NAME:host-gateway`, Docker's special value: the address at
//! which the sandbox reaches the host. Docker writes its bridge's address
//! (docker0, 172.17.0.1), where the host's services that listen on every
//! interface answer; buildx asks the builder for the same. rbuild has no
//! bridge of its own, so:
//! - on the default network (slirp4netns, started with
//!   `--disable-host-loopback`, so 10.0.2.2 does not lead to the host's
//!   127.0.0.1) it is the host's own address on its default route (else
//!   its first non-loopback IPv4 address), which the helper's NAT reaches
//!   like any other: the services Docker's gateway would reach;
//! - on the host network it is 127.0.0.1, the host's own loopback;
//! - with no network there is no way to the host; the name gets the
//!   host's address as on the default network, as Docker writes its
//!   gateway whatever the network.
//!
//! The value is resolved when the sandbox is made, never earlier: a
//! build's cache key holds the word `host-gateway`, not a machine's
//! address.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use crate::{ExecError, Network};

/// The word that stands for the host's address.
pub const HOST_GATEWAY: &str = "host-gateway";

/// The address `host-gateway` stands for in a sandbox on `network`.
pub fn address(network: Network) -> Result<IpAddr, ExecError> {
    match network {
        Network::Host => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Network::Private | Network::None => route_source()
            .or_else(first_interface_address)
            .ok_or_else(|| {
                ExecError::Setup(format!(
                    "--add-host …:{HOST_GATEWAY}: the host has no address but loopback"
                ))
            }),
    }
}

/// The source address of the host's default route: a UDP socket
/// "connected" to a public address (no packet is sent) is bound to it.
fn route_source() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(203, 0, 113, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The first IPv4 address of an interface that is up, not loopback.
fn first_interface_address() -> Option<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|i| {
            i.flags.contains(InterfaceFlags::IFF_UP)
                && !i.flags.contains(InterfaceFlags::IFF_LOOPBACK)
        })
        .find_map(|i| i.address?.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_network_reaches_the_host_at_loopback_the_others_at_its_address() {
        assert_eq!(
            address(Network::Host).unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        let private = address(Network::Private).unwrap();
        assert!(!private.is_loopback(), "{private}");
        // An address of this host: a socket can be bound to it.
        assert!(UdpSocket::bind((private, 0)).is_ok(), "{private}");
        assert_eq!(address(Network::None).unwrap(), private);
    }
}
