//! The hub's name looked up before every connection attempt (record v2,
//! `provfmt.rs`): an `A` query to the provisioned DNS server through
//! smoltcp's DNS socket, waited on at most [`RESOLVE_TIMEOUT_MS`].
//!
//! Before every attempt, not once per power-on: a device that cannot reach
//! its hub asks again (the hub may have moved, which is why it has a name),
//! no answer outlives the attempt it was for (smoltcp does not give the
//! record's TTL, so nothing is cached past it), and the attempts are
//! already spaced by the reconnect backoff, so a failing server is not
//! flooded. A failed look-up is a failed attempt: the backoff counts it.
//!
//! Console lines: `dns: <name> = <ip>`, or `dns: <name> not resolved:
//! <why>` (the DUT file's `connection_failed` matches it), and no TCP
//! connection is tried.

use core::fmt::{self, Write};

use sha2::{Digest, Sha256};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::dns::{self, GetQueryResultError, StartQueryError};
use smoltcp::wire::{DnsQueryType, IpAddress, IpEndpoint, Ipv4Address};

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::provfmt::Hub;
use crate::provision::Provisioning;
use crate::uart::Uart;

/// How long one look-up may take: under smoltcp's own 10 s give-up time
/// for a server, so a failure reported by the socket before it is an
/// answer that carried no address, never a lost one.
pub const RESOLVE_TIMEOUT_MS: u64 = 5_000;

/// Why the name was not resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// The name cannot be asked for (smoltcp refused it).
    Query(StartQueryError),
    /// The server answered, without an IPv4 address: NXDOMAIN, or an
    /// answer with no A record.
    NoAddress(Ipv4Address),
    /// No answer within [`RESOLVE_TIMEOUT_MS`].
    NoAnswer(Ipv4Address),
    /// The record asks for no look-up (v1, an address): never reached.
    NoServer,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unresolved::Query(e) => write!(f, "the name cannot be queried ({e:?})"),
            Unresolved::NoAddress(s) => write!(
                f,
                "dns server {s} answered with no IPv4 address (NXDOMAIN or no A record)"
            ),
            Unresolved::NoAnswer(s) => write!(
                f,
                "no answer from dns server {s} within {RESOLVE_TIMEOUT_MS} ms"
            ),
            Unresolved::NoServer => write!(f, "no dns server provisioned"),
        }
    }
}

/// How the record says to reach the hub, for the console.
pub struct HubText<'a>(pub &'a Provisioning);

impl fmt::Display for HubText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.hub_name;
        match self.0.hub {
            Hub::Address(ip, port) => write!(f, "{name} ({}:{port})", ip4(ip)),
            Hub::Dns { server, port } => {
                write!(f, "{name} (port {port}, resolved by dns {})", ip4(server))
            }
        }
    }
}

fn ip4(a: [u8; 4]) -> Ipv4Address {
    Ipv4Address::new(a[0], a[1], a[2], a[3])
}

/// The DNS socket a v2 record needs (its server), over `queries` (one
/// look-up at a time); `None` for a v1 record.
pub fn socket<'a>(
    prov: &Provisioning,
    queries: &'a mut [Option<dns::DnsQuery>],
) -> Option<dns::Socket<'a>> {
    match prov.hub {
        Hub::Address(..) => None,
        Hub::Dns { server, .. } => Some(dns::Socket::new(&[IpAddress::Ipv4(ip4(server))], queries)),
    }
}

/// The seed of smoltcp's generator (a DNS query's id and source port, TCP
/// initial sequence numbers): from the unit's secret, so no one without it
/// can predict them. A fixed seed would make every unit's first query id
/// the same, and an off-path answer to it easy to forge.
pub fn random_seed(unit_secret: &[u8; 32], mac: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"device-mcu smoltcp seed");
    h.update(unit_secret);
    h.update(mac);
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Where to dial the hub this attempt: the v1 record's address, or the v2
/// record's name looked up now at its DNS server (through `handle`, the
/// socket from [`socket`]); `None` (said on the console) if the name did
/// not resolve.
#[allow(clippy::too_many_arguments)]
pub fn hub_endpoint(
    con: &mut Uart,
    clock: &mut Clock,
    iface: &mut Interface,
    eth: &mut Lan9118,
    sockets: &mut SocketSet<'_>,
    handle: Option<SocketHandle>,
    prov: &Provisioning,
    debug: crate::debugport::Listeners,
) -> Option<IpEndpoint> {
    let (server, port) = match prov.hub {
        Hub::Address(ip, port) => return Some(IpEndpoint::new(ip4(ip).into(), port)),
        Hub::Dns { server, port } => (ip4(server), port),
    };
    let name = prov.hub_name;
    let found = match handle {
        Some(handle) => resolve(clock, iface, eth, sockets, handle, server, name, debug),
        None => Err(Unresolved::NoServer),
    };
    match found {
        Ok(ip) => {
            let _ = writeln!(con, "dns: {name} = {ip}");
            Some(IpEndpoint::new(ip.into(), port))
        }
        Err(why) => {
            let _ = writeln!(con, "dns: {name} not resolved: {why}");
            None
        }
    }
}

/// One `A` look-up of `name`, driving the interface until the socket has
/// the answer or [`RESOLVE_TIMEOUT_MS`] has passed.
#[allow(clippy::too_many_arguments)]
fn resolve(
    clock: &mut Clock,
    iface: &mut Interface,
    eth: &mut Lan9118,
    sockets: &mut SocketSet<'_>,
    handle: SocketHandle,
    server: Ipv4Address,
    name: &str,
    debug: crate::debugport::Listeners,
) -> Result<Ipv4Address, Unresolved> {
    let query = sockets
        .get_mut::<dns::Socket>(handle)
        .start_query(iface.context(), name, DnsQueryType::A)
        .map_err(Unresolved::Query)?;
    let deadline = clock.now_ms() + RESOLVE_TIMEOUT_MS;
    loop {
        let t = crate::now(clock);
        crate::debugport::poll(iface, eth, sockets, t, debug);
        let socket = sockets.get_mut::<dns::Socket>(handle);
        match socket.get_query_result(query) {
            Ok(addresses) => {
                // The first IPv4 address (the query asked for A records).
                return addresses
                    .iter()
                    .find_map(|a| match a {
                        IpAddress::Ipv4(v4) => Some(*v4),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    })
                    .ok_or(Unresolved::NoAddress(server));
            }
            Err(GetQueryResultError::Failed) => return Err(Unresolved::NoAddress(server)),
            Err(GetQueryResultError::Pending) => {}
        }
        if clock.now_ms() >= deadline {
            socket.cancel_query(query);
            return Err(Unresolved::NoAnswer(server));
        }
    }
}
